#!/usr/bin/env bash
# Lab CI (issue 7): a real PostgreSQL 15 server for the store tests (started by the tests
# themselves on a temporary directory, loopback, a high port; the packaged cluster is not
# used), Debian's Chromium for the report's browser test and kaleido's static figures,
# cgroup-tools for the throttled-board test, and the Python clients.
set -euo pipefail
need=()
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v cgexec >/dev/null 2>&1 || need+=(cgroup-tools)
fc-list 2>/dev/null | grep -qi dejavu || need+=(fonts-dejavu-core)   # text in screenshots
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# Debian starts a cluster on 5432 at install time; the tests never use it.
python -m pip install -q "psycopg[binary]" "kaleido>=1" websocket-client
