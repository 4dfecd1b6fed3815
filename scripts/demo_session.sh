#!/usr/bin/env bash
# The part of the demo that runs inside scripts/pg_tmp.sh (MAILTRAIL_TEST_DSN is set).
set -euo pipefail
cd "$(dirname "$0")/.."

DEMO_SECONDS=${DEMO_SECONDS:-60}
if [ -t 1 ]; then DEMO_HOLD=${DEMO_HOLD:-1}; else DEMO_HOLD=${DEMO_HOLD:-0}; fi

workdir=$(mktemp -d "${TMPDIR:-/tmp}/mailtrail-demo.XXXXXX")
sim_pid=""
daemon_pid=""
cleanup() {
  [ -n "$daemon_pid" ] && kill -TERM "$daemon_pid" 2>/dev/null && wait "$daemon_pid" 2>/dev/null
  [ -n "$sim_pid" ] && kill -TERM "$sim_pid" 2>/dev/null && wait "$sim_pid" 2>/dev/null
  rm -rf "$workdir"
}
trap cleanup 0
trap 'exit 130' INT TERM

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

webhook_port=$(free_port)
metrics_port=$(free_port)
jwt_secret="whsec_demo_jwt_0123456789abcdef"
json_secret="whsec_demo_json_0123456789abcdef"
webhook_url="http://127.0.0.1:$webhook_port/webhooks/postgrid"

step "postgrid-sim: 400 orders of every type, an hour of PostGrid time per second"
build/postgrid-sim --orders 400 --seed 42 --speed 3600 --history-days 3 \
  --webhook-url "$webhook_url" --webhook-secret "$jwt_secret" --webhook-format jwt \
  --webhook-url "$webhook_url" --webhook-secret "$json_secret" --webhook-format json \
  > "$workdir/sim.out" 2> "$workdir/sim.log" &
sim_pid=$!
for _ in $(seq 1 100); do
  if [ -s "$workdir/sim.out" ]; then break; fi
  sleep 0.1
done
sim_address=$(head -1 "$workdir/sim.out" | sed 's/^listening on //')
echo "simulated PostGrid on http://$sim_address/print-mail/v1"

config="$workdir/mailtrail.yaml"
cat > "$config" <<EOC
# The demo's config: the simulator instead of api.postgrid.com, short polling intervals.
postgrid:
  base_url: http://$sim_address/print-mail/v1
  api_key: live_sk_sim
  requests_per_second: 100
database:
  url: $MAILTRAIL_TEST_DSN
poll:
  interval: 20s
  carrier_interval: 30s
  discovery_interval: 10s
  full_scan_interval: 2m
webhook:
  listen: 127.0.0.1:$webhook_port
  path: /webhooks/postgrid
  secrets: [$jwt_secret, $json_secret]
metrics:
  listen: 127.0.0.1:$metrics_port
log:
  level: warn
EOC

step "mailtrail check-config"
build/mailtrail check-config --config "$config" | grep -vE '^  |^(postgrid|database|poll|webhook|metrics|log):$'

step "mailtrail run (log: $workdir/mailtrail.log)"
build/mailtrail run --config "$config" > "$workdir/mailtrail.log" 2>&1 &
daemon_pid=$!

q() { psql -X -Atq -c "$1" 2>/dev/null || echo "-"; }
end=$((SECONDS + DEMO_SECONDS))
while [ "$SECONDS" -lt "$end" ]; do
  if ! kill -0 "$daemon_pid" 2>/dev/null; then
    echo "mailtrail exited; its log:" >&2
    cat "$workdir/mailtrail.log" >&2
    exit 1
  fi
  line=$(q "SELECT format('%s orders (%s terminal), %s changes, %s carrier events, %s webhooks (%s refused), ready: %s',
      (SELECT count(*) FROM mailtrail.orders), (SELECT count(*) FROM mailtrail.orders WHERE terminal),
      (SELECT count(*) FROM mailtrail.order_changes), (SELECT count(*) FROM mailtrail.carrier_tracking_events),
      (SELECT count(*) FROM mailtrail.webhook_deliveries), (SELECT count(*) FROM mailtrail.webhook_deliveries WHERE NOT verified),
      '$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$metrics_port/readyz")')")
  if [ -t 1 ]; then printf '\r\033[K[%3ss] %s' "$((end - SECONDS))" "$line"; else printf '[%3ss] %s\n' "$((end - SECONDS))" "$line"; fi
  sleep 2
done
[ -t 1 ] && echo

step "mailtrail status"
build/mailtrail status --config "$config"

letter=$(q "SELECT o.id FROM mailtrail.orders o WHERE o.order_type = 'letters' AND o.tracking_number IS NOT NULL
            ORDER BY (SELECT count(*) FROM mailtrail.carrier_tracking_events e WHERE e.order_id = o.id) DESC, o.id LIMIT 1")
if [ -n "$letter" ] && [ "$letter" != "-" ]; then
  step "mailtrail history $letter   (a certified letter)"
  build/mailtrail history "$letter" --config "$config"
fi

step "BI: median time in each status (mailtrail.status_durations)"
psql -X -q -c "SELECT order_type, status, count(*) AS orders,
                      justify_hours(percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM duration)) * interval '1 second') AS median
               FROM mailtrail.status_durations WHERE NOT is_current AND duration IS NOT NULL
               GROUP BY 1, 2 ORDER BY 1, 2 LIMIT 20"
step "BI: send -> delivered (mailtrail.delivery_performance)"
psql -X -q -c "SELECT order_type, mailing_class, destination_state, orders_delivered, p50_duration
               FROM mailtrail.delivery_performance ORDER BY orders_delivered DESC LIMIT 10"
step "BI: orders that entered each status per day (mailtrail.daily_status_counts)"
psql -X -q -c "SELECT day, status, sum(orders_entered) AS orders FROM mailtrail.daily_status_counts
               GROUP BY 1, 2 ORDER BY 1 DESC, 2 LIMIT 12"
step "webhook deliveries by format and result"
psql -X -q -c "SELECT payload_format, verified, count(*), count(processed_at) AS processed
               FROM mailtrail.webhook_deliveries GROUP BY 1, 2 ORDER BY 1, 2"

cat <<EON

Look around yourself (while this demo runs):
  psql "$MAILTRAIL_TEST_DSN"
  SELECT * FROM mailtrail.order_timeline WHERE order_id = '${letter:-<id>}' ORDER BY occurred_at;
  curl http://127.0.0.1:$metrics_port/metrics
EON

if [ "$DEMO_HOLD" = "1" ]; then
  echo "mailtrail keeps running. Press Ctrl-C to stop everything and remove the temporary files."
  wait "$daemon_pid"
fi
