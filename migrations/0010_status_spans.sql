-- status_durations without a window or a join (issue 10, benchmark 7). The view paired every
-- status entry with the next of its order by lead() (PostgreSQL's WindowAgg spools each order's
-- entries through a tuplestore: about 1.4 s of the view's time at a million orders, even reading
-- the index in order) and joined orders for terminal (a hash join against the 1.5 GB heap): 3.7 s
-- for the whole view. Both now live in order_status_entries, kept by the same triggers as the
-- rest of it: left_at, the entered_at of the order's next entry, and terminal, the order's flag.
-- The view reads one narrow row per entry (about 0.5 s at a million orders).
--
-- left_at is set as entries arrive: an appended status writes the new entry and the previous
-- last one's left_at (one more row update per status change); a whole first scan or a backfill
-- writes each order's entries with their left_at in one statement. terminal is copied when an
-- entry is written and when an order's flag changes (once in an order's life).

ALTER TABLE mailtrail.order_status_entries ADD COLUMN left_at timestamptz;
ALTER TABLE mailtrail.order_status_entries ADD COLUMN terminal boolean;
COMMENT ON COLUMN mailtrail.order_status_entries.left_at IS
    'The entered_at of the order''s next entry (by entered_at, change_id); NULL for its current status (as status_durations.left_at).';
COMMENT ON COLUMN mailtrail.order_status_entries.terminal IS 'The order''s terminal flag.';

-- 0008's per-order recompute, now with each entry's left_at and the order's terminal flag.
CREATE OR REPLACE FUNCTION mailtrail.summarize_orders(order_ids text[]) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM mailtrail.count_status_spans(order_ids, -1);
    DELETE FROM mailtrail.order_status_entries WHERE order_id = ANY (order_ids);
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
          WHERE c.order_id = ANY (order_ids) AND c.field = 'status' AND c.new_value IS NOT NULL) e;
    PERFORM mailtrail.count_status_spans(order_ids, 1);

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

-- 0008's rebuild from scratch, now with left_at and terminal; the histogram reads left_at.
CREATE OR REPLACE FUNCTION mailtrail.rebuild_order_summaries() RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    TRUNCATE mailtrail.order_status_entries, mailtrail.order_stage_times,
             mailtrail.status_duration_buckets;
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

-- 0008's insert trigger (every write path of mailtrail, once per statement), now keeping left_at
-- and terminal. The entries of orders that had none before (a first observation, a backfill)
-- get their left_at in the insert; for the others, the pass 0008 made over the touched orders'
-- entries for the histogram now also stores each changed left_at, and takes the spans as they
-- were from the stored left_at instead of a second lead().
CREATE OR REPLACE FUNCTION mailtrail.order_changes_inserted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- left_at here is the next of the statement's own entries; an order that had entries before
    -- is set right below.
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
          FROM new_changes c
          JOIN mailtrail.orders o ON o.id = c.order_id
          WHERE c.field = 'status' AND c.new_value IS NOT NULL) e;

    -- No status entered (a tracking number, an IMB scan), or every order touched has only the
    -- one entry this statement added (a first observation: a whole first scan): no span moved.
    -- The probe reads at most two index entries per order and stops at the first that has more.
    IF FOUND AND EXISTS (
        SELECT 1
        FROM (SELECT order_id, count(*) AS added
              FROM new_changes
              WHERE field = 'status' AND new_value IS NOT NULL
              GROUP BY order_id) t
        WHERE t.added > 1
           OR EXISTS (SELECT 1 FROM mailtrail.order_status_entries x
                      WHERE x.order_id = t.order_id OFFSET 1)) THEN
    -- Each entry of the touched orders with its next entry now (left_after) and as stored
    -- (left_at: the next before this statement for an entry that was there, the next among the
    -- statement's own entries for an added one). The histogram moves from the spans as they
    -- were (entries that were there, with their stored left_at) to the spans as they are; the
    -- entries whose next changed get it stored.
    WITH spans AS (
        SELECT e.order_id, e.change_id, e.order_type, e.mailing_class, e.live, e.status,
               e.entered_at, e.added, e.left_at,
               lead(e.entered_at) OVER (PARTITION BY e.order_id ORDER BY e.entered_at, e.change_id)
                   AS left_after
        FROM (SELECT order_id, array_agg(id) AS added_ids
              FROM new_changes
              WHERE field = 'status' AND new_value IS NOT NULL
              GROUP BY order_id) touched
        CROSS JOIN LATERAL (
            SELECT x.*, x.change_id = ANY (touched.added_ids) AS added
            FROM mailtrail.order_status_entries x
            WHERE x.order_id = touched.order_id) e
    ),
    -- x.order_id = ANY (...): whatever join the cached plan uses, it reads only the entries of
    -- the orders with a span to set, through the index (none for a backfill's new orders, whose
    -- entries got their left_at in the insert).
    moved AS (
        UPDATE mailtrail.order_status_entries x SET left_at = s.left_after
        FROM spans s
        WHERE x.order_id = ANY (ARRAY(SELECT DISTINCT m.order_id FROM spans m
                                      WHERE m.left_at IS DISTINCT FROM m.left_after))
          AND x.order_id = s.order_id AND x.entered_at = s.entered_at
          AND x.change_id = s.change_id AND x.left_at IS DISTINCT FROM s.left_after
    )
    INSERT INTO mailtrail.status_duration_buckets AS b
        (order_type, mailing_class, live, status, bucket, spans)
    SELECT s.order_type, s.mailing_class, s.live, s.status,
           mailtrail.duration_bucket(d.left_at - s.entered_at), sum(d.sign)
    FROM spans s
    CROSS JOIN LATERAL (VALUES (s.left_after, 1),
                               (CASE WHEN NOT s.added THEN s.left_at END, -1)) AS d(left_at, sign)
    WHERE d.left_at IS NOT NULL
    GROUP BY 1, 2, 3, 4, 5
    HAVING sum(d.sign) <> 0
    ORDER BY 1, 2, 3, 4, 5
    ON CONFLICT (order_type, mailing_class, live, status, bucket) DO UPDATE SET
        spans = b.spans + excluded.spans;
    END IF;

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
    ORDER BY order_id
    ON CONFLICT (order_id) DO UPDATE SET
        carrier_delivered_at = least(s.carrier_delivered_at, excluded.carrier_delivered_at),
        completed_at = least(s.completed_at, excluded.completed_at),
        signature_recorded_at = least(s.signature_recorded_at, excluded.signature_recorded_at);
    RETURN NULL;
END $$;

-- An order's terminal flag into its entries, when it changes (the WHEN clause keeps every other
-- update of orders, one per poll, from calling anything). enable_seqscan = off: PL/pgSQL keeps
-- the plan it made for the UPDATE at the first call of a session, and one made while the entries
-- were few would go on scanning them all as they grow (see 0011).
CREATE FUNCTION mailtrail.order_terminal_updated() RETURNS trigger
LANGUAGE plpgsql
SET enable_seqscan = off
AS $$
BEGIN
    UPDATE mailtrail.order_status_entries SET terminal = NEW.terminal
    WHERE order_id = NEW.id AND terminal IS DISTINCT FROM NEW.terminal;
    RETURN NULL;
END $$;

CREATE TRIGGER orders_terminal_entries
    AFTER UPDATE OF terminal ON mailtrail.orders
    FOR EACH ROW
    WHEN (OLD.terminal IS DISTINCT FROM NEW.terminal)
    EXECUTE FUNCTION mailtrail.order_terminal_updated();

-- The backfill: left_at and terminal for the entries recorded so far.
SELECT mailtrail.rebuild_order_summaries();
ALTER TABLE mailtrail.order_status_entries ALTER COLUMN terminal SET NOT NULL;

-- The same columns, names, types and rows as 0006's definition: the entries carry the order's
-- type, mailing class and live flag (kept equal to the order's by 0006 and 0008) and now its
-- terminal flag and each span's end.
CREATE OR REPLACE VIEW mailtrail.status_durations AS
SELECT e.order_id,
       e.order_type,
       e.mailing_class,
       e.live,
       e.status,
       e.entered_at,
       e.left_at,
       (e.left_at IS NULL)                                       AS is_current,
       CASE
           WHEN e.left_at IS NOT NULL THEN e.left_at - e.entered_at
           WHEN NOT e.terminal THEN now() - e.entered_at
       END                                                       AS duration
FROM mailtrail.order_status_entries e;
