#!/usr/bin/env bash
# The part of the demo that runs inside scripts/pg_tmp.sh (MAILTRAIL_TEST_DSN is set).
set -euo pipefail
cd "$(dirname "$0")/.."

workdir=$(mktemp -d "${TMPDIR:-/tmp}/mailtrail-demo.XXXXXX")
trap 'rm -rf "$workdir"' 0

config="$workdir/mailtrail.yaml"
sed "s|@DATABASE_URL@|$MAILTRAIL_TEST_DSN|" config/demo.yaml.in > "$config"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "mailtrail migrate --config $config"
build/mailtrail migrate --config "$config"

step "mailtrail migrate again: idempotent"
build/mailtrail migrate --config "$config"

step "mailtrail check-config --config $config"
build/mailtrail check-config --config "$config"

step "what is in the database"
psql -X -q -c "\\dt+ mailtrail.*" -c "\\dv+ mailtrail.*"
psql -X -q -c "SELECT version, name, applied_at FROM mailtrail.schema_migrations ORDER BY version"

cat <<EON

The schema is in place. The sync daemon, the webhook listener and the PostGrid simulator are
being built (see the README's "Status"); this demo grows with them.
EON
