#!/usr/bin/env bash
# README command 1: from a fresh clone on a fresh Debian 12 machine, installs what is needed,
# builds, and runs mailtrail against an embedded default: a throwaway PostgreSQL (and, once the
# daemon exists, the PostGrid simulator). Everything it starts is stopped and removed on exit,
# including on Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
cmake --preset release >/dev/null
cmake --build --preset release -j "$(nproc)" --target mailtrail

exec bash scripts/pg_tmp.sh -- bash scripts/demo_session.sh
