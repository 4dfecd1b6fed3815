#!/usr/bin/env bash
# README command 1: from a fresh clone on a fresh Debian 12 machine, installs what is needed,
# builds, and runs mailtrail against an embedded default: a throwaway PostgreSQL and postgrid-sim
# (a simulated PostGrid with a few hundred orders of every type, progressing quickly, sending
# signed webhooks in both formats). Ctrl-C stops everything and removes the temporary files.
#
#   DEMO_SECONDS=N   how long to watch the live progress (default 60)
#   DEMO_HOLD=0|1    keep the database open for psql after the summary until Ctrl-C
#                    (default: 1 in a terminal, 0 otherwise)
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
cmake --preset release >/dev/null
cmake --build --preset release -j "$(nproc)" --target mailtrail postgrid-sim

exec bash scripts/pg_tmp.sh -- bash scripts/demo_session.sh
