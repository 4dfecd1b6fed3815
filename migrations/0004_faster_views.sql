-- Faster views at a million orders (measured by bench/sql/run.sh; figures in docs/sql.md), with
-- the same columns and answers as 0002_views.sql (checked by docs_sql_pgtest), and the column
-- comments 0002 left out. CREATE OR REPLACE keeps the views' existing comments.

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
CREATE INDEX IF NOT EXISTS orders_tracking_number_idx ON mailtrail.orders (tracking_number)
    WHERE tracking_number IS NOT NULL;
CREATE INDEX IF NOT EXISTS orders_metadata_idx ON mailtrail.orders USING gin (metadata jsonb_path_ops);

-- 5. Every column a dashboard shows is documented.
COMMENT ON COLUMN mailtrail.order_timeline.order_id IS 'The PostGrid order id.';
COMMENT ON COLUMN mailtrail.order_timeline.order_type IS 'PostGrid endpoint name of the order (letters, postcards, ...).';
COMMENT ON COLUMN mailtrail.order_timeline.old_value IS 'For changes: the value before (NULL on first observation); NULL for carrier events.';
COMMENT ON COLUMN mailtrail.order_timeline.api_updated_at IS 'For changes: PostGrid''s updatedAt of the snapshot the change was seen in.';
COMMENT ON COLUMN mailtrail.order_timeline.change_id IS 'For changes: order_changes.id (orders changes seen at the same moment); NULL for carrier events.';
COMMENT ON COLUMN mailtrail.status_durations.order_id IS 'The PostGrid order id.';
COMMENT ON COLUMN mailtrail.status_durations.order_type IS 'PostGrid endpoint name of the order.';
COMMENT ON COLUMN mailtrail.status_durations.mailing_class IS 'The order''s mailing class, verbatim.';
COMMENT ON COLUMN mailtrail.status_durations.live IS 'true for live-mode orders.';
COMMENT ON COLUMN mailtrail.status_durations.status IS 'The status the order was in.';
COMMENT ON COLUMN mailtrail.stuck_orders.order_id IS 'The PostGrid order id.';
COMMENT ON COLUMN mailtrail.stuck_orders.order_type IS 'PostGrid endpoint name of the order.';
COMMENT ON COLUMN mailtrail.stuck_orders.live IS 'true for live-mode orders.';
COMMENT ON COLUMN mailtrail.stuck_orders.status IS 'The status the order is stuck in.';
COMMENT ON COLUMN mailtrail.stuck_orders.mailing_class IS 'The order''s mailing class, verbatim.';
COMMENT ON COLUMN mailtrail.stuck_orders.tracking_number IS 'The carrier tracking number, if any.';
COMMENT ON COLUMN mailtrail.stuck_orders.carrier_status IS 'The latest carrier status, if any.';
COMMENT ON COLUMN mailtrail.stuck_orders.last_checked_at IS 'When mailtrail last fetched the order.';
COMMENT ON COLUMN mailtrail.daily_status_counts.order_type IS 'PostGrid endpoint name of the orders.';
COMMENT ON COLUMN mailtrail.daily_status_counts.live IS 'true for live-mode orders.';
COMMENT ON COLUMN mailtrail.daily_status_counts.status IS 'The status entered.';
COMMENT ON COLUMN mailtrail.delivery_performance.order_type IS 'PostGrid endpoint name of the orders.';
COMMENT ON COLUMN mailtrail.delivery_performance.mailing_class IS 'Mailing class, verbatim.';
COMMENT ON COLUMN mailtrail.delivery_performance.destination_country IS 'countryCode of the order''s to address (NULL when PostGrid gave only a contact id).';
COMMENT ON COLUMN mailtrail.delivery_performance.destination_state IS 'provinceOrState of the order''s to address.';
COMMENT ON COLUMN mailtrail.delivery_performance.min_duration IS 'Fastest time from send to delivery in the group.';
COMMENT ON COLUMN mailtrail.delivery_performance.max_duration IS 'Slowest time from send to delivery in the group.';
