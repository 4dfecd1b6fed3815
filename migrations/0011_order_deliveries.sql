-- delivery_performance from one narrow row per delivered order (issue 10, benchmark 7). The view
-- scanned the whole 1.5 GB orders heap for each completed order's destination (in raw), carried
-- the wide rows through a hash join with order_stage_times and a sort of 900,000 rows by group
-- spilled to disk: 2.7-3.1 s at a million orders. order_deliveries holds exactly the rows the
-- view's `delivered` step produced (one per delivered order, with its send and delivery moment),
-- kept by triggers; an index in the view's group order with the duration last lets the view read
-- it in order, so no sort is left but the percentiles' own, of input already in order
-- (about 0.4 s at a million orders).
--
-- An order's row is recomputed from orders and order_stage_times whenever one of its inputs
-- changes: a row of order_stage_times written or deleted (by the triggers of 0006/0008 as history
-- arrives, by summarize_orders, by rebuild_order_summaries), or a change on orders of a column the
-- row derives from while the order is completed. An order cannot be delivered before it has
-- history (delivered_at needs a stage moment), so inserting an order needs nothing.

CREATE TABLE mailtrail.order_deliveries (
    order_id             text PRIMARY KEY,
    order_type           text NOT NULL,
    mailing_class        text,
    destination_country  text,
    destination_state    text,
    sent_at              timestamptz NOT NULL,
    delivered_at         timestamptz NOT NULL,
    duration             interval GENERATED ALWAYS AS (delivered_at - sent_at) STORED
);
CREATE INDEX order_deliveries_group_idx ON mailtrail.order_deliveries
    (order_type, mailing_class, destination_country, destination_state, duration);

COMMENT ON TABLE mailtrail.order_deliveries IS
    'Derived from orders and order_stage_times by triggers (do not write it): one row per delivered order (completed, and carrier-delivered or untracked), with its send and delivery moment, as delivery_performance counts it. mailtrail.rebuild_order_summaries() recomputes it.';
COMMENT ON COLUMN mailtrail.order_deliveries.order_type IS 'The order''s order_type.';
COMMENT ON COLUMN mailtrail.order_deliveries.mailing_class IS 'The order''s mailing_class.';
COMMENT ON COLUMN mailtrail.order_deliveries.destination_country IS 'The recipient''s countryCode (raw to.countryCode, or to.address.countryCode).';
COMMENT ON COLUMN mailtrail.order_deliveries.destination_state IS 'The recipient''s provinceOrState (raw to.provinceOrState, or to.address.provinceOrState).';
COMMENT ON COLUMN mailtrail.order_deliveries.sent_at IS 'send_date, else created_at.';
COMMENT ON COLUMN mailtrail.order_deliveries.delivered_at IS 'The first delivered carrier event, else the first carrier_status change to delivered, else (untracked orders) the first status change to completed.';
COMMENT ON COLUMN mailtrail.order_deliveries.duration IS 'delivered_at - sent_at.';

-- The rows of the orders whose stage moments were written, recomputed in the statement's trigger
-- from the transition table (the stage moments) and each order's row in orders.
--
-- Every lookup goes through a primary key. PL/pgSQL plans each statement once per session and
-- keeps the plan, and a plan made while the tables were small (the start of a first sync or a
-- backfill) went on scanning them as they grew, one scan per page of orders: the write path
-- benchmark fell from 60,000 to 3,000 change rows/s. The DELETE had taken a sequential scan of
-- order_deliveries, the INSERT's lookup (flattened into a join) every completed order through the
-- status index. OFFSET 0 keeps the lookup a subquery run per order, an equality on the primary
-- key, and enable_seqscan = off, for these functions only, keeps the DELETE on the primary key:
-- the cost grows with the rows written, not with the tables, whatever plan is cached.
CREATE FUNCTION mailtrail.order_stage_times_written() RETURNS trigger
LANGUAGE plpgsql
SET enable_seqscan = off
AS $$
BEGIN
    -- A statement-level trigger runs for statements that wrote no row as well (every insert
    -- trigger of 0006 upserts order_stage_times, mostly nothing).
    IF NOT EXISTS (SELECT 1 FROM stage_rows) THEN
        RETURN NULL;
    END IF;
    -- An order gets its first stage row here, so it had no delivery row to remove.
    IF TG_OP <> 'INSERT' THEN
        DELETE FROM mailtrail.order_deliveries
        WHERE order_id = ANY (ARRAY(SELECT order_id FROM stage_rows));
    END IF;
    IF TG_OP <> 'DELETE' THEN
        INSERT INTO mailtrail.order_deliveries (order_id, order_type, mailing_class,
            destination_country, destination_state, sent_at, delivered_at)
        SELECT d.*
        FROM stage_rows s
        CROSS JOIN LATERAL (
            SELECT o.id, o.order_type, o.mailing_class,
                   coalesce(o.raw -> 'to' ->> 'countryCode',
                            o.raw -> 'to' -> 'address' ->> 'countryCode'),
                   coalesce(o.raw -> 'to' ->> 'provinceOrState',
                            o.raw -> 'to' -> 'address' ->> 'provinceOrState'),
                   coalesce(o.send_date, o.created_at) AS sent_at,
                   coalesce(s.delivered_event_at,
                            s.carrier_delivered_at,
                            CASE WHEN o.tracking_number IS NULL THEN s.completed_at END) AS delivered_at
            FROM mailtrail.orders o
            WHERE o.id = s.order_id
              AND o.status = 'completed'
              AND (o.carrier_status = 'delivered' OR o.tracking_number IS NULL)
            OFFSET 0) d
        WHERE d.delivered_at IS NOT NULL AND d.sent_at IS NOT NULL;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER order_stage_times_deliveries_insert
    AFTER INSERT ON mailtrail.order_stage_times
    REFERENCING NEW TABLE AS stage_rows
    FOR EACH STATEMENT EXECUTE FUNCTION mailtrail.order_stage_times_written();
CREATE TRIGGER order_stage_times_deliveries_update
    AFTER UPDATE ON mailtrail.order_stage_times
    REFERENCING NEW TABLE AS stage_rows
    FOR EACH STATEMENT EXECUTE FUNCTION mailtrail.order_stage_times_written();
CREATE TRIGGER order_stage_times_deliveries_delete
    AFTER DELETE ON mailtrail.order_stage_times
    REFERENCING OLD TABLE AS stage_rows
    FOR EACH STATEMENT EXECUTE FUNCTION mailtrail.order_stage_times_written();

-- The row of an order whose inputs on orders changed, from the updated row and its stage row. An
-- order without a stage row has no delivery moment, so no row here either (removing its stage
-- row removed it): the usual case, an order completing in a poll that also records its first
-- stage moment (the stage trigger above then does the work), stops at one index probe.
CREATE FUNCTION mailtrail.order_delivery_inputs_updated() RETURNS trigger
LANGUAGE plpgsql
SET enable_seqscan = off
AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM mailtrail.order_stage_times WHERE order_id = NEW.id) THEN
        RETURN NULL;
    END IF;
    DELETE FROM mailtrail.order_deliveries WHERE order_id = NEW.id;
    INSERT INTO mailtrail.order_deliveries (order_id, order_type, mailing_class,
        destination_country, destination_state, sent_at, delivered_at)
    SELECT d.*
    FROM (SELECT NEW.id, NEW.order_type, NEW.mailing_class,
                 coalesce(NEW.raw -> 'to' ->> 'countryCode',
                          NEW.raw -> 'to' -> 'address' ->> 'countryCode'),
                 coalesce(NEW.raw -> 'to' ->> 'provinceOrState',
                          NEW.raw -> 'to' -> 'address' ->> 'provinceOrState'),
                 coalesce(NEW.send_date, NEW.created_at) AS sent_at,
                 coalesce(s.delivered_event_at,
                          s.carrier_delivered_at,
                          CASE WHEN NEW.tracking_number IS NULL THEN s.completed_at END) AS delivered_at
          FROM mailtrail.order_stage_times s
          WHERE s.order_id = NEW.id
            AND NEW.status = 'completed'
            AND (NEW.carrier_status = 'delivered' OR NEW.tracking_number IS NULL)) d
    WHERE d.delivered_at IS NOT NULL AND d.sent_at IS NOT NULL;
    RETURN NULL;
END $$;

-- Only for a completed order (before or after) whose inputs changed: a poll's update of an order
-- in the mail, or of one whose inputs stayed, calls nothing.
CREATE TRIGGER orders_deliveries_update
    AFTER UPDATE OF status, carrier_status, tracking_number, send_date, created_at, order_type,
                    mailing_class, raw ON mailtrail.orders
    FOR EACH ROW
    WHEN ((OLD.status = 'completed' OR NEW.status = 'completed')
          AND (OLD.status IS DISTINCT FROM NEW.status
               OR OLD.carrier_status IS DISTINCT FROM NEW.carrier_status
               OR OLD.tracking_number IS DISTINCT FROM NEW.tracking_number
               OR OLD.send_date IS DISTINCT FROM NEW.send_date
               OR OLD.created_at IS DISTINCT FROM NEW.created_at
               OR OLD.order_type IS DISTINCT FROM NEW.order_type
               OR OLD.mailing_class IS DISTINCT FROM NEW.mailing_class
               OR coalesce(OLD.raw -> 'to' ->> 'countryCode', OLD.raw -> 'to' -> 'address' ->> 'countryCode')
                  IS DISTINCT FROM
                  coalesce(NEW.raw -> 'to' ->> 'countryCode', NEW.raw -> 'to' -> 'address' ->> 'countryCode')
               OR coalesce(OLD.raw -> 'to' ->> 'provinceOrState', OLD.raw -> 'to' -> 'address' ->> 'provinceOrState')
                  IS DISTINCT FROM
                  coalesce(NEW.raw -> 'to' ->> 'provinceOrState', NEW.raw -> 'to' -> 'address' ->> 'provinceOrState')))
    EXECUTE FUNCTION mailtrail.order_delivery_inputs_updated();

-- 0010's rebuild from scratch now starts order_deliveries over too; the trigger on
-- order_stage_times above fills it as the rebuild writes the stage rows.
CREATE OR REPLACE FUNCTION mailtrail.rebuild_order_summaries() RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    TRUNCATE mailtrail.order_status_entries, mailtrail.order_stage_times,
             mailtrail.status_duration_buckets, mailtrail.order_deliveries;
    INSERT INTO mailtrail.order_status_entries (change_id, order_id, order_type, mailing_class, live,
        status, entered_at, left_at, terminal)
    SELECT id, order_id, order_type, mailing_class, live, status, entered_at,
           lead(entered_at) OVER (PARTITION BY order_id ORDER BY entered_at, id), terminal
    FROM (SELECT c.id, c.order_id, o.order_type, o.mailing_class, o.live, c.new_value AS status,
                 CASE
                     WHEN c.old_value IS NULL AND c.new_value IN ('ready', 'placed') AND o.created_at IS NOT NULL
                         THEN o.created_at
                     ELSE coalesce(c.api_updated_at, c.observed_at)
                 END AS entered_at,
                 o.terminal
          FROM mailtrail.order_changes c
          JOIN mailtrail.orders o ON o.id = c.order_id
          WHERE c.field = 'status' AND c.new_value IS NOT NULL) e;

    INSERT INTO mailtrail.status_duration_buckets (order_type, mailing_class, live, status, bucket, spans)
    SELECT order_type, mailing_class, live, status, mailtrail.duration_bucket(left_at - entered_at),
           count(*)
    FROM mailtrail.order_status_entries
    WHERE left_at IS NOT NULL
    GROUP BY 1, 2, 3, 4, 5;

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

-- The backfill, set-based: every delivered order recorded so far.
INSERT INTO mailtrail.order_deliveries (order_id, order_type, mailing_class, destination_country,
    destination_state, sent_at, delivered_at)
SELECT *
FROM (SELECT o.id, o.order_type, o.mailing_class,
             coalesce(o.raw -> 'to' ->> 'countryCode', o.raw -> 'to' -> 'address' ->> 'countryCode'),
             coalesce(o.raw -> 'to' ->> 'provinceOrState',
                      o.raw -> 'to' -> 'address' ->> 'provinceOrState'),
             coalesce(o.send_date, o.created_at) AS sent_at,
             coalesce(s.delivered_event_at,
                      s.carrier_delivered_at,
                      CASE WHEN o.tracking_number IS NULL THEN s.completed_at END) AS delivered_at
      FROM mailtrail.orders o
      JOIN mailtrail.order_stage_times s ON s.order_id = o.id
      WHERE o.status = 'completed'
        AND (o.carrier_status = 'delivered' OR o.tracking_number IS NULL)) d
WHERE d.delivered_at IS NOT NULL AND d.sent_at IS NOT NULL;

-- The same columns, names, types and rows as 0006's definition.
CREATE OR REPLACE VIEW mailtrail.delivery_performance AS
SELECT order_type,
       mailing_class,
       destination_country,
       destination_state,
       count(*) AS orders_delivered,
       avg(duration) AS avg_duration,
       justify_hours(percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM duration))
           * interval '1 second') AS p50_duration,
       justify_hours(percentile_cont(0.9) WITHIN GROUP (ORDER BY extract(epoch FROM duration))
           * interval '1 second') AS p90_duration,
       min(duration) AS min_duration,
       max(duration) AS max_duration
FROM mailtrail.order_deliveries
GROUP BY order_type, mailing_class, destination_country, destination_state;
