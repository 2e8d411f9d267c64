# Sourced by the scripts: one virtualenv in .venv, (re)installed when pyproject.toml changes.
VENV="${CRONHIVE_VENV:-$PWD/.venv}"
ensure_venv() {
  local extra="${1:-}" stamp
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
  stamp="$VENV/.installed-$(sha1sum pyproject.toml | cut -c1-12)-${extra:-base}"
  if [ ! -f "$stamp" ]; then
    "$VENV/bin/python" -m pip install -q --upgrade pip
    if [ -n "$extra" ]; then
      "$VENV/bin/python" -m pip install -q -e ".[$extra]"
    else
      "$VENV/bin/python" -m pip install -q -e .
    fi
    touch "$stamp"
  fi
}
