-- PROPOSED, not applied by mailtrail: changes for a later migration (migrations/ belongs to the
-- lead), each measured by bench/sql/run.sh with MAILTRAIL_BENCH_EXTRA_SQL=bench/sql/proposed.sql.
-- Same columns and the same answers as 0002_views.sql; CREATE OR REPLACE keeps the comments.

-- 1. delivery_performance: PostgreSQL inlines the `delivered` CTE, so the three correlated
--    sub-selects behind delivered_at run once per aggregate that uses it (six times per order).
--    MATERIALIZED computes them once per order.
CREATE OR REPLACE VIEW mailtrail.delivery_performance AS
WITH delivered AS MATERIALIZED (
    SELECT o.id,
           o.order_type,
           o.mailing_class,
           coalesce(o.raw -> 'to' ->> 'countryCode', o.raw -> 'to' -> 'address' ->> 'countryCode')
               AS destination_country,
           coalesce(o.raw -> 'to' ->> 'provinceOrState', o.raw -> 'to' -> 'address' ->> 'provinceOrState')
               AS destination_state,
           coalesce(o.send_date, o.created_at) AS sent_at,
           coalesce(
               (SELECT min(e.occurred_at) FROM mailtrail.carrier_tracking_events e
                 WHERE e.order_id = o.id AND e.status = 'delivered'),
               (SELECT min(coalesce(c.api_updated_at, c.observed_at)) FROM mailtrail.order_changes c
                 WHERE c.order_id = o.id AND c.field = 'carrier_status' AND c.new_value = 'delivered'),
               CASE WHEN o.tracking_number IS NULL THEN
                   (SELECT min(coalesce(c.api_updated_at, c.observed_at)) FROM mailtrail.order_changes c
                     WHERE c.order_id = o.id AND c.field = 'status' AND c.new_value = 'completed')
               END
           ) AS delivered_at
    FROM mailtrail.orders o
    WHERE o.status = 'completed'
      AND (o.carrier_status = 'delivered' OR o.tracking_number IS NULL)
)
SELECT order_type,
       mailing_class,
       destination_country,
       destination_state,
       count(*) AS orders_delivered,
       avg(delivered_at - sent_at) AS avg_duration,
       justify_hours(percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM delivered_at - sent_at))
           * interval '1 second') AS p50_duration,
       justify_hours(percentile_cont(0.9) WITHIN GROUP (ORDER BY extract(epoch FROM delivered_at - sent_at))
           * interval '1 second') AS p90_duration,
       min(delivered_at - sent_at) AS min_duration,
       max(delivered_at - sent_at) AS max_duration
FROM delivered
WHERE delivered_at IS NOT NULL AND sent_at IS NOT NULL
GROUP BY order_type, mailing_class, destination_country, destination_state;

-- 2. stuck_orders: the current status of the non-terminal orders only (a few percent of all
--    orders), read through order_changes_order_idx, instead of status_durations' window over
--    every status change of every order. The same row as `is_current`: the last by (entered_at, id).
CREATE OR REPLACE VIEW mailtrail.stuck_orders AS
WITH current_status AS (
    SELECT o.id AS order_id, cs.entered_at
    FROM mailtrail.orders o
    CROSS JOIN LATERAL (
        SELECT CASE
                   WHEN c.old_value IS NULL AND c.new_value IN ('ready', 'placed') AND o.created_at IS NOT NULL
                       THEN o.created_at
                   ELSE coalesce(c.api_updated_at, c.observed_at)
               END AS entered_at
        FROM mailtrail.order_changes c
        WHERE c.order_id = o.id AND c.field = 'status' AND c.new_value IS NOT NULL
        ORDER BY 1 DESC, c.id DESC
        LIMIT 1
    ) cs
    WHERE NOT o.terminal
),
thresholds(status, allowed) AS (
    VALUES ('ready', interval '2 days'),
           ('printing', interval '3 days'),
           ('processed_for_delivery', interval '10 days'),
           ('completed', interval '14 days'),
           ('placed', interval '30 days')
)
SELECT o.id                                   AS order_id,
       o.order_type,
       o.live,
       o.status,
       o.mailing_class,
       o.tracking_number,
       o.carrier_status,
       CASE WHEN o.status = 'ready' THEN greatest(cs.entered_at, o.send_date) ELSE cs.entered_at END
                                              AS since,
       now() - CASE WHEN o.status = 'ready' THEN greatest(cs.entered_at, o.send_date)
                    ELSE cs.entered_at END    AS stuck_for,
       t.allowed,
       o.last_checked_at
FROM mailtrail.orders o
JOIN current_status cs ON cs.order_id = o.id
JOIN thresholds t ON t.status = o.status
WHERE NOT o.terminal
  AND now() - CASE WHEN o.status = 'ready' THEN greatest(cs.entered_at, o.send_date)
                   ELSE cs.entered_at END > t.allowed;

-- 3. daily_status_counts needs when each status was entered, not how long it lasted: group the
--    status changes directly, without status_durations' sort and window over all of them.
CREATE OR REPLACE VIEW mailtrail.daily_status_counts AS
SELECT (CASE
            WHEN c.old_value IS NULL AND c.new_value IN ('ready', 'placed') AND o.created_at IS NOT NULL
                THEN o.created_at
            ELSE coalesce(c.api_updated_at, c.observed_at)
        END AT TIME ZONE 'UTC')::date AS day,
       o.order_type,
       o.live,
       c.new_value                    AS status,
       count(*)                       AS orders_entered
FROM mailtrail.order_changes c
JOIN mailtrail.orders o ON o.id = c.order_id
WHERE c.field = 'status' AND c.new_value IS NOT NULL
GROUP BY 1, 2, 3, 4;

-- 4. Lookups people do by hand (docs/sql.md "find-order"): by tracking number, by metadata keys.
CREATE INDEX orders_tracking_number_idx ON mailtrail.orders (tracking_number)
    WHERE tracking_number IS NOT NULL;
CREATE INDEX orders_metadata_idx ON mailtrail.orders USING gin (metadata jsonb_path_ops);
