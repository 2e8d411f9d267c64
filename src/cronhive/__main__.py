from __future__ import annotations

from cronhive.cli import main

main()
