-- Summaries written with the history (issue 10, benchmark 7): the whole-history views re-derived
-- every order's stage times from millions of order_changes rows on every query. Two narrow tables,
-- kept up to date by triggers in the transaction of every write (per-order Apply, ApplyBatch,
-- webhook refresh, backfill: no store code knows about them), give the views the same answers
-- from far fewer and narrower rows. Both are derived data: mailtrail.rebuild_order_summaries()
-- recomputes them from scratch, and order_stage_summaries_pgtest checks that the triggers leave them
-- equal to such a rebuild and the views equal to their 0004 definitions.

-- One row per status change with a non-null new status (what status_durations and
-- daily_status_counts count), with the moment the order entered that status as the views define
-- it: createdAt for a first ready/placed, else PostGrid's updatedAt of the snapshot, else
-- observed_at. order_type and live are the order's (they never change in practice; an update of
-- them, or of created_at, rewrites the order's rows).
-- No primary key: change_id is order_changes' (unique there), and every index here costs the
-- write path (the benchmark's backfill records ~5 status entries per order).
CREATE TABLE mailtrail.order_status_entries (
    change_id   bigint NOT NULL,
    order_id    text NOT NULL,
    order_type  text NOT NULL,
    live        boolean NOT NULL,
    status      text NOT NULL,
    entered_at  timestamptz NOT NULL
);
-- status_durations pairs each entry with the next of its order, stuck_orders reads an order's
-- last one: both in this order. daily_status_counts' `day` is this expression, so a date range on
-- it (a dashboard's last 30 days) reads only those days.
CREATE INDEX order_status_entries_order_idx
    ON mailtrail.order_status_entries (order_id, entered_at, change_id);
CREATE INDEX order_status_entries_day_idx
    ON mailtrail.order_status_entries (((entered_at AT TIME ZONE 'UTC')::date));

COMMENT ON TABLE mailtrail.order_status_entries IS
    'Derived from order_changes by triggers (do not write it): one row per status change with a non-null new status, with the moment the order entered that status as status_durations defines it. mailtrail.rebuild_order_summaries() recomputes it.';

COMMENT ON COLUMN mailtrail.order_status_entries.change_id IS 'The order_changes.id of the status change (orders entries entered at the same moment).';
COMMENT ON COLUMN mailtrail.order_status_entries.order_id IS 'The PostGrid order id.';
COMMENT ON COLUMN mailtrail.order_status_entries.order_type IS 'The order''s order_type.';
COMMENT ON COLUMN mailtrail.order_status_entries.live IS 'The order''s live flag.';
COMMENT ON COLUMN mailtrail.order_status_entries.status IS 'The status entered (new_value of the change).';
COMMENT ON COLUMN mailtrail.order_status_entries.entered_at IS 'createdAt for a first ready/placed, else api_updated_at, else observed_at (as status_durations.entered_at).';

-- One row per order that has any of these moments: the first of each, as delivery_performance
-- and the certified-mail recipe define them. min() only ever moves earlier as rows arrive, so an
-- insert needs only the new rows, in whatever order they come.
CREATE TABLE mailtrail.order_stage_times (
    order_id               text PRIMARY KEY,
    delivered_event_at     timestamptz,
    carrier_delivered_at   timestamptz,
    completed_at           timestamptz,
    signature_recorded_at  timestamptz
);

COMMENT ON TABLE mailtrail.order_stage_times IS
    'Derived from order_changes and carrier_tracking_events by triggers (do not write it): per order, the first moment of each stage. mailtrail.rebuild_order_summaries() recomputes it.';
COMMENT ON COLUMN mailtrail.order_stage_times.delivered_event_at IS 'Earliest occurred_at of a carrier tracking event with status delivered.';
COMMENT ON COLUMN mailtrail.order_stage_times.carrier_delivered_at IS 'Earliest coalesce(api_updated_at, observed_at) of a carrier_status change to delivered.';
COMMENT ON COLUMN mailtrail.order_stage_times.completed_at IS 'Earliest coalesce(api_updated_at, observed_at) of a status change to completed.';
COMMENT ON COLUMN mailtrail.order_stage_times.signature_recorded_at IS 'Earliest observed_at of a signed_by change to a non-null value.';

-- Recomputes both summaries of the given orders from their history (after an update or delete
-- of history rows, or of an order's created_at, order_type or live).
CREATE FUNCTION mailtrail.summarize_orders(order_ids text[]) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM mailtrail.order_status_entries WHERE order_id = ANY (order_ids);
    INSERT INTO mailtrail.order_status_entries (change_id, order_id, order_type, live, status, entered_at)
    SELECT c.id, c.order_id, o.order_type, o.live, c.new_value,
           CASE
               WHEN c.old_value IS NULL AND c.new_value IN ('ready', 'placed') AND o.created_at IS NOT NULL
                   THEN o.created_at
               ELSE coalesce(c.api_updated_at, c.observed_at)
           END
    FROM mailtrail.order_changes c
    JOIN mailtrail.orders o ON o.id = c.order_id
    WHERE c.order_id = ANY (order_ids) AND c.field = 'status' AND c.new_value IS NOT NULL;

    DELETE FROM mailtrail.order_stage_times WHERE order_id = ANY (order_ids);
    INSERT INTO mailtrail.order_stage_times (order_id, delivered_event_at, carrier_delivered_at,
        completed_at, signature_recorded_at)
    SELECT coalesce(c.order_id, e.order_id), e.delivered_event_at, c.carrier_delivered_at,
           c.completed_at, c.signature_recorded_at
    FROM (SELECT order_id,
                 min(coalesce(api_updated_at, observed_at))
                     FILTER (WHERE field = 'carrier_status' AND new_value = 'delivered') AS carrier_delivered_at,
                 min(coalesce(api_updated_at, observed_at))
                     FILTER (WHERE field = 'status' AND new_value = 'completed') AS completed_at,
                 min(observed_at)
                     FILTER (WHERE field = 'signed_by' AND new_value IS NOT NULL) AS signature_recorded_at
          FROM mailtrail.order_changes
          WHERE order_id = ANY (order_ids)
            AND ((field = 'carrier_status' AND new_value = 'delivered')
                 OR (field = 'status' AND new_value = 'completed')
                 OR (field = 'signed_by' AND new_value IS NOT NULL))
          GROUP BY order_id) c
    FULL JOIN (SELECT order_id, min(occurred_at) AS delivered_event_at
               FROM mailtrail.carrier_tracking_events
               WHERE order_id = ANY (order_ids) AND status = 'delivered'
               GROUP BY order_id) e ON e.order_id = c.order_id;
END $$;

-- Recomputes both summaries of every order from scratch, set-based (the backfill below; also
-- what a TRUNCATE of a history table does, and what the tests compare the triggers with).
CREATE FUNCTION mailtrail.rebuild_order_summaries() RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    TRUNCATE mailtrail.order_status_entries, mailtrail.order_stage_times;
    INSERT INTO mailtrail.order_status_entries (change_id, order_id, order_type, live, status, entered_at)
    SELECT c.id, c.order_id, o.order_type, o.live, c.new_value,
           CASE
               WHEN c.old_value IS NULL AND c.new_value IN ('ready', 'placed') AND o.created_at IS NOT NULL
                   THEN o.created_at
               ELSE coalesce(c.api_updated_at, c.observed_at)
           END
    FROM mailtrail.order_changes c
    JOIN mailtrail.orders o ON o.id = c.order_id
    WHERE c.field = 'status' AND c.new_value IS NOT NULL;

    INSERT INTO mailtrail.order_stage_times (order_id, delivered_event_at, carrier_delivered_at,
        completed_at, signature_recorded_at)
    SELECT coalesce(c.order_id, e.order_id), e.delivered_event_at, c.carrier_delivered_at,
           c.completed_at, c.signature_recorded_at
    FROM (SELECT order_id,
                 min(coalesce(api_updated_at, observed_at))
                     FILTER (WHERE field = 'carrier_status' AND new_value = 'delivered') AS carrier_delivered_at,
                 min(coalesce(api_updated_at, observed_at))
                     FILTER (WHERE field = 'status' AND new_value = 'completed') AS completed_at,
                 min(observed_at)
                     FILTER (WHERE field = 'signed_by' AND new_value IS NOT NULL) AS signature_recorded_at
          FROM mailtrail.order_changes
          WHERE (field = 'carrier_status' AND new_value = 'delivered')
             OR (field = 'status' AND new_value = 'completed')
             OR (field = 'signed_by' AND new_value IS NOT NULL)
          GROUP BY order_id) c
    FULL JOIN (SELECT order_id, min(occurred_at) AS delivered_event_at
               FROM mailtrail.carrier_tracking_events
               WHERE status = 'delivered'
               GROUP BY order_id) e ON e.order_id = c.order_id;
END $$;

-- Inserts (every write path of mailtrail): once per statement, from the statement's new rows.
CREATE FUNCTION mailtrail.order_changes_inserted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO mailtrail.order_status_entries (change_id, order_id, order_type, live, status, entered_at)
    SELECT c.id, c.order_id, o.order_type, o.live, c.new_value,
           CASE
               WHEN c.old_value IS NULL AND c.new_value IN ('ready', 'placed') AND o.created_at IS NOT NULL
                   THEN o.created_at
               ELSE coalesce(c.api_updated_at, c.observed_at)
           END
    FROM new_changes c
    JOIN mailtrail.orders o ON o.id = c.order_id
    WHERE c.field = 'status' AND c.new_value IS NOT NULL;

    INSERT INTO mailtrail.order_stage_times AS s (order_id, carrier_delivered_at, completed_at,
        signature_recorded_at)
    SELECT order_id,
           min(coalesce(api_updated_at, observed_at))
               FILTER (WHERE field = 'carrier_status' AND new_value = 'delivered'),
           min(coalesce(api_updated_at, observed_at))
               FILTER (WHERE field = 'status' AND new_value = 'completed'),
           min(observed_at) FILTER (WHERE field = 'signed_by' AND new_value IS NOT NULL)
    FROM new_changes
    WHERE (field = 'carrier_status' AND new_value = 'delivered')
       OR (field = 'status' AND new_value = 'completed')
       OR (field = 'signed_by' AND new_value IS NOT NULL)
    GROUP BY order_id
    ORDER BY order_id  -- rows locked in one order by every writer: no deadlock between batches
    ON CONFLICT (order_id) DO UPDATE SET
        carrier_delivered_at = least(s.carrier_delivered_at, excluded.carrier_delivered_at),
        completed_at = least(s.completed_at, excluded.completed_at),
        signature_recorded_at = least(s.signature_recorded_at, excluded.signature_recorded_at);
    RETURN NULL;
END $$;

CREATE FUNCTION mailtrail.carrier_events_inserted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO mailtrail.order_stage_times AS s (order_id, delivered_event_at)
    SELECT order_id, min(occurred_at)
    FROM new_events
    WHERE status = 'delivered'
    GROUP BY order_id
    ORDER BY order_id
    ON CONFLICT (order_id) DO UPDATE SET
        delivered_event_at = least(s.delivered_event_at, excluded.delivered_event_at);
    RETURN NULL;
END $$;

-- History is append-only in mailtrail; a hand edit or delete still leaves the summaries right.
CREATE FUNCTION mailtrail.history_rows_edited() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM mailtrail.summarize_orders(ARRAY(SELECT DISTINCT order_id FROM old_rows));
    IF TG_OP = 'UPDATE' THEN
        PERFORM mailtrail.summarize_orders(ARRAY(SELECT DISTINCT order_id FROM new_rows));
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION mailtrail.history_truncated() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM mailtrail.rebuild_order_summaries();
    RETURN NULL;
END $$;

-- The views derive entered_at from created_at and copy order_type and live: rare, so per row,
-- and the WHEN clause keeps the ordinary update (every poll) from calling anything.
CREATE FUNCTION mailtrail.order_identity_updated() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM mailtrail.summarize_orders(ARRAY[NEW.id]);
    RETURN NULL;
END $$;

CREATE TRIGGER order_changes_summarize_insert
    AFTER INSERT ON mailtrail.order_changes
    REFERENCING NEW TABLE AS new_changes
    FOR EACH STATEMENT EXECUTE FUNCTION mailtrail.order_changes_inserted();
CREATE TRIGGER order_changes_summarize_update
    AFTER UPDATE ON mailtrail.order_changes
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION mailtrail.history_rows_edited();
CREATE TRIGGER order_changes_summarize_delete
    AFTER DELETE ON mailtrail.order_changes
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION mailtrail.history_rows_edited();
CREATE TRIGGER order_changes_summarize_truncate
    AFTER TRUNCATE ON mailtrail.order_changes
    FOR EACH STATEMENT EXECUTE FUNCTION mailtrail.history_truncated();

CREATE TRIGGER carrier_events_summarize_insert
    AFTER INSERT ON mailtrail.carrier_tracking_events
    REFERENCING NEW TABLE AS new_events
    FOR EACH STATEMENT EXECUTE FUNCTION mailtrail.carrier_events_inserted();
CREATE TRIGGER carrier_events_summarize_update
    AFTER UPDATE ON mailtrail.carrier_tracking_events
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION mailtrail.history_rows_edited();
CREATE TRIGGER carrier_events_summarize_delete
    AFTER DELETE ON mailtrail.carrier_tracking_events
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION mailtrail.history_rows_edited();
CREATE TRIGGER carrier_events_summarize_truncate
    AFTER TRUNCATE ON mailtrail.carrier_tracking_events
    FOR EACH STATEMENT EXECUTE FUNCTION mailtrail.history_truncated();

CREATE TRIGGER orders_summarize_identity
    AFTER UPDATE OF created_at, order_type, live ON mailtrail.orders
    FOR EACH ROW
    WHEN (OLD.created_at IS DISTINCT FROM NEW.created_at
          OR OLD.order_type IS DISTINCT FROM NEW.order_type
          OR OLD.live IS DISTINCT FROM NEW.live)
    EXECUTE FUNCTION mailtrail.order_identity_updated();

-- The backfill of the history recorded so far (one set-based pass per table).
SELECT mailtrail.rebuild_order_summaries();

-- The views, reading the summaries: the same columns, names, types and rows as before.

-- daily_status_counts: one narrow row per status entry, no join.
CREATE OR REPLACE VIEW mailtrail.daily_status_counts AS
SELECT (e.entered_at AT TIME ZONE 'UTC')::date AS day,
       e.order_type,
       e.live,
       e.status,
       count(*)                                 AS orders_entered
FROM mailtrail.order_status_entries e
GROUP BY 1, 2, 3, 4;

-- status_durations: the entries in their index's order pair each with the next without a sort
-- of the whole history; orders gives the columns that change (mailing_class, terminal).
CREATE OR REPLACE VIEW mailtrail.status_durations AS
WITH spans AS (
    SELECT e.order_id,
           e.status,
           e.entered_at,
           lead(e.entered_at) OVER (PARTITION BY e.order_id ORDER BY e.entered_at, e.change_id) AS left_at
    FROM mailtrail.order_status_entries e
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

-- stuck_orders: each non-terminal order's last entry, one backward index probe each.
CREATE OR REPLACE VIEW mailtrail.stuck_orders AS
WITH current_status AS (
    SELECT o.id AS order_id, cs.entered_at
    FROM mailtrail.orders o
    CROSS JOIN LATERAL (
        SELECT e.entered_at
        FROM mailtrail.order_status_entries e
        WHERE e.order_id = o.id
        ORDER BY e.entered_at DESC, e.change_id DESC
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

-- delivery_performance: the three "first moments" are columns of order_stage_times.
CREATE OR REPLACE VIEW mailtrail.delivery_performance AS
WITH delivered AS (
    SELECT o.order_type,
           o.mailing_class,
           coalesce(o.raw -> 'to' ->> 'countryCode', o.raw -> 'to' -> 'address' ->> 'countryCode')
               AS destination_country,
           coalesce(o.raw -> 'to' ->> 'provinceOrState', o.raw -> 'to' -> 'address' ->> 'provinceOrState')
               AS destination_state,
           coalesce(o.send_date, o.created_at) AS sent_at,
           coalesce(s.delivered_event_at,
                    s.carrier_delivered_at,
                    CASE WHEN o.tracking_number IS NULL THEN s.completed_at END) AS delivered_at
    FROM mailtrail.orders o
    LEFT JOIN mailtrail.order_stage_times s ON s.order_id = o.id
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
