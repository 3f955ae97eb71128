#!/usr/bin/env bash
# Shared set-up of the README's commands: a virtualenv in .venv holding the harness with
# its runtimes (onnxruntime, LiteRT). With --system (the test command, CI) it also runs
# .ci/install.d/*.sh, which install what the tests' real parts need (sshd, QEMU and the
# Arm toolchain, PostgreSQL, Chromium) when this user may install packages.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  if ! "$PY" -m venv .venv 2>/dev/null; then
    rm -rf .venv
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
    fi
    "$PY" -m venv .venv
  fi
fi
export PATH="$PWD/.venv/bin:$PATH"
stamp=.venv/.harness-installed
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "setup: installing the harness into .venv (first run takes a few minutes)"
  pip install -q --upgrade pip
  pip install -q -e ".[litert,test]"
  echo "$want" > "$stamp"
fi

if [ "${1:-}" = "--system" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    for script in .ci/install.d/*.sh; do
      [ -e "$script" ] || continue
      echo "setup: $script"
      bash "$script"
    done
  else
    echo "setup: not root (or no apt-get): skipping system packages; tests that need sshd," \
         "QEMU, PostgreSQL or Chromium will be skipped with the reason"
  fi
fi
