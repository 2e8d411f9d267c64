"""Test helpers that more than one test folder needs, imported as `_shared.<module>`.

Each test folder is its own import root (its conftest.py and *kit.py); this package is
found from all of them because pytest puts tests/ itself on sys.path for tests/conftest.py,
and mypy through `mypy_path` (pyproject.toml).
"""
