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

# Runs are isolated with bubblewrap by default (perl and bash, which it also needs, are
# essential packages on Debian): install it as root, else say what is missing.
ensure_bwrap() {
  command -v bwrap >/dev/null && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap) >/dev/null
  else
    echo "bwrap missing: runs refuse to start until it is installed (apt-get install bubblewrap) or the node runs with --isolation none" >&2
  fi
}
