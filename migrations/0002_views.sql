-- Views for people and BI tools (contract.md). Times are timestamptz; durations are intervals.

-- Every recorded change and carrier event of an order, in time order.
CREATE VIEW mailtrail.order_timeline AS
SELECT c.order_id,
       o.order_type,
       c.observed_at                         AS occurred_at,
       'change'::text                        AS kind,
       c.field,
       c.old_value,
       c.new_value,
       NULL::text                            AS message,
       NULL::text                            AS location,
       c.source,
       c.api_updated_at,
       c.id                                  AS change_id
FROM mailtrail.order_changes c
JOIN mailtrail.orders o ON o.id = c.order_id
UNION ALL
SELECT e.order_id,
       o.order_type,
       e.occurred_at,
       'carrier_event'::text,
       'carrier_event'::text,
       NULL::text,
       e.status,
       e.message,
       NULLIF(concat_ws(', ', e.city, e.province_or_state, e.postal_or_zip, e.country_code), ''),
       e.source,
       NULL::timestamptz,
       NULL::bigint
FROM mailtrail.carrier_tracking_events e
JOIN mailtrail.orders o ON o.id = e.order_id;

COMMENT ON VIEW mailtrail.order_timeline IS
    'An order''s history: every recorded field change (kind = change, at observed_at) and every carrier tracking update (kind = carrier_event, at the carrier''s time). Order by order_id, occurred_at, change_id.';
COMMENT ON COLUMN mailtrail.order_timeline.occurred_at IS 'For changes: when mailtrail observed it; for carrier events: when the carrier reported it.';
COMMENT ON COLUMN mailtrail.order_timeline.kind IS 'change or carrier_event.';
COMMENT ON COLUMN mailtrail.order_timeline.field IS 'The changed field, or carrier_event.';
COMMENT ON COLUMN mailtrail.order_timeline.new_value IS 'The new value; for carrier events the carrier status.';
COMMENT ON COLUMN mailtrail.order_timeline.message IS 'For carrier events: the carrier''s message.';
COMMENT ON COLUMN mailtrail.order_timeline.location IS 'For carrier events: city, state, ZIP and country where known.';
COMMENT ON COLUMN mailtrail.order_timeline.source IS 'For changes: discovery, poll, webhook, backfill or manual; for carrier events: the carrier.';

-- The time each order spent in each status. A status is entered at the best known moment: the
-- order's createdAt for its first status when that is ready/placed (orders are born there),
-- otherwise PostGrid's updatedAt of the snapshot that showed it (an upper bound), else observed_at.
CREATE VIEW mailtrail.status_durations AS
WITH status_changes AS (
    SELECT c.order_id,
           c.id,
           c.new_value AS status,
           CASE
               WHEN c.old_value IS NULL AND c.new_value IN ('ready', 'placed') AND o.created_at IS NOT NULL
                   THEN o.created_at
               ELSE coalesce(c.api_updated_at, c.observed_at)
           END AS entered_at
    FROM mailtrail.order_changes c
    JOIN mailtrail.orders o ON o.id = c.order_id
    WHERE c.field = 'status' AND c.new_value IS NOT NULL
),
spans AS (
    SELECT s.order_id,
           s.status,
           s.entered_at,
           lead(s.entered_at) OVER (PARTITION BY s.order_id ORDER BY s.entered_at, s.id) AS left_at
    FROM status_changes s
)
SELECT sp.order_id,
       o.order_type,
       o.mailing_class,
       o.live,
       sp.status,
       sp.entered_at,
       sp.left_at,
       (sp.left_at IS NULL)                                      AS is_current,
       CASE
           WHEN sp.left_at IS NOT NULL THEN sp.left_at - sp.entered_at
           WHEN NOT o.terminal THEN now() - sp.entered_at
       END                                                       AS duration
FROM spans sp
JOIN mailtrail.orders o ON o.id = sp.order_id;

COMMENT ON VIEW mailtrail.status_durations IS
    'One row per order and status it was in: when it entered, when it left (NULL while current) and how long it stayed. The current status of a non-terminal order counts until now; the final status of a terminal order has no duration.';
COMMENT ON COLUMN mailtrail.status_durations.entered_at IS 'Best known moment the order entered the status: createdAt for a first ready/placed, else PostGrid''s updatedAt of the snapshot that showed it (an upper bound), else when mailtrail observed it.';
COMMENT ON COLUMN mailtrail.status_durations.left_at IS 'When the order entered its next status; NULL while this is the current status.';
COMMENT ON COLUMN mailtrail.status_durations.is_current IS 'true for the order''s current status.';
COMMENT ON COLUMN mailtrail.status_durations.duration IS 'left_at - entered_at; for the current status of a non-terminal order, now() - entered_at; NULL for the final status of a terminal order.';

-- Non-terminal orders that have stayed in their status longer than PostGrid's normal pace.
-- The thresholds are in the view so a dashboard needs no parameters; change them with
-- CREATE OR REPLACE VIEW in a later migration, or query status_durations with your own.
CREATE VIEW mailtrail.stuck_orders AS
WITH current_status AS (
    SELECT DISTINCT ON (d.order_id) d.order_id, d.entered_at
    FROM mailtrail.status_durations d
    WHERE d.is_current
    ORDER BY d.order_id, d.entered_at DESC
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
       -- An order waiting for its send date is not stuck: count ready from the later of the two.
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

COMMENT ON VIEW mailtrail.stuck_orders IS
    'Non-terminal orders in their current status for longer than allowed: ready 2 days past the later of entering it and sendDate, printing 3 days, processed_for_delivery 10 days, completed (still awaiting carrier data) 14 days, placed 30 days.';
COMMENT ON COLUMN mailtrail.stuck_orders.since IS 'When the order entered its current status (for ready: no earlier than its sendDate).';
COMMENT ON COLUMN mailtrail.stuck_orders.stuck_for IS 'now() - since.';
COMMENT ON COLUMN mailtrail.stuck_orders.allowed IS 'The threshold this status is held to.';

-- How many orders entered each status on each UTC day, by order type.
CREATE VIEW mailtrail.daily_status_counts AS
SELECT (d.entered_at AT TIME ZONE 'UTC')::date AS day,
       d.order_type,
       d.live,
       d.status,
       count(*)                                 AS orders_entered
FROM mailtrail.status_durations d
GROUP BY 1, 2, 3, 4;

COMMENT ON VIEW mailtrail.daily_status_counts IS
    'Per UTC day, order type, mode and status: how many orders entered that status that day.';
COMMENT ON COLUMN mailtrail.daily_status_counts.day IS 'The UTC calendar day the orders entered the status.';
COMMENT ON COLUMN mailtrail.daily_status_counts.orders_entered IS 'Number of orders that entered the status that day.';

-- Send date to delivery, grouped by type, mailing class and destination. Delivered means the
-- carrier reported delivered (its earliest delivered update, else the moment carrier_status became
-- delivered); orders without carrier data are delivered when they completed.
CREATE VIEW mailtrail.delivery_performance AS
WITH delivered AS (
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

COMMENT ON VIEW mailtrail.delivery_performance IS
    'Send date to delivery by order type, mailing class and destination (country, state from the order''s to address). Delivered: the carrier''s first delivered update, else when carrier_status became delivered; orders without a tracking number count as delivered when they completed.';
COMMENT ON COLUMN mailtrail.delivery_performance.orders_delivered IS 'Number of delivered orders in the group.';
COMMENT ON COLUMN mailtrail.delivery_performance.avg_duration IS 'Mean time from sendDate (else createdAt) to delivery.';
COMMENT ON COLUMN mailtrail.delivery_performance.p50_duration IS 'Median time from send to delivery.';
COMMENT ON COLUMN mailtrail.delivery_performance.p90_duration IS '90th percentile time from send to delivery.';
