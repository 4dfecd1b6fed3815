-- Stage percentiles without sorting every span (issue 10, benchmark 7). The cookbook's p50/p90/p99
-- time per stage was percentile_cont over status_durations: at a million orders it sorted 3.6
-- million spans on every query (9 s; 2.3 s even from a narrow copy of the spans). A histogram of
-- the ended spans with 1 %-wide buckets, kept by the same triggers as 0006's summaries, answers the
-- same question from tens of thousands of rows, to within half a bucket (0.5 %).
--
-- The histogram is a pure function of order_status_entries: every ended span of an order (an
-- entry and the next one of that order, in status_durations' order) counted once in the bucket of
-- its duration, under the order's type, mailing class, live flag and the span's status. Every
-- change of an order's entries subtracts that order's spans as they were and adds them as they
-- are, so an entry that arrives out of order (splitting a span) is counted right too.
-- mailtrail.rebuild_order_summaries() recomputes it with the other summaries.

-- Bucket 0 holds spans under a second; bucket k >= 1 holds [1.01^(k-1), 1.01^k) seconds (a year
-- is bucket 1,736).
CREATE FUNCTION mailtrail.duration_bucket(duration interval) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN extract(epoch FROM duration) < 1 THEN 0
                ELSE 1 + floor(ln(extract(epoch FROM duration)::double precision)
                               / ln(1.01::double precision))::integer END
$$;

-- The middle of a bucket (geometric), in seconds: within 0.5 % of every duration in it.
CREATE FUNCTION mailtrail.duration_bucket_seconds(bucket integer) RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN bucket <= 0 THEN 0 ELSE power(1.01::double precision, bucket - 0.5) END
$$;

-- percentile_cont(fraction) of the spans counted in a histogram (buckets ascending, spans[i] in
-- buckets[i]), with each span at its bucket's middle: the same rank and the same interpolation
-- between neighbours as percentile_cont, so even a handful of spans gets the exact answer's shape.
-- Whole seconds; NULL when there is no span.
CREATE FUNCTION mailtrail.duration_percentile(buckets integer[], spans bigint[],
                                              fraction double precision) RETURNS interval
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    total bigint := 0;
    rank double precision;
    lower_index bigint;
    upper_index bigint;
    lower_seconds double precision;
    upper_seconds double precision;
    counted bigint := 0;
BEGIN
    FOR i IN 1 .. coalesce(array_length(buckets, 1), 0) LOOP
        total := total + spans[i];
    END LOOP;
    IF total <= 0 THEN
        RETURN NULL;
    END IF;
    rank := fraction * (total - 1);
    lower_index := floor(rank);
    upper_index := least(lower_index + 1, total - 1);
    FOR i IN 1 .. array_length(buckets, 1) LOOP
        counted := counted + spans[i];
        IF lower_seconds IS NULL AND counted > lower_index THEN
            lower_seconds := mailtrail.duration_bucket_seconds(buckets[i]);
        END IF;
        IF counted > upper_index THEN
            upper_seconds := mailtrail.duration_bucket_seconds(buckets[i]);
            EXIT;
        END IF;
    END LOOP;
    RETURN make_interval(secs => round(lower_seconds
                                       + (rank - lower_index) * (upper_seconds - lower_seconds)));
END $$;

COMMENT ON FUNCTION mailtrail.duration_bucket(interval) IS
    'The status_duration_buckets bucket of a duration: 0 under a second, else k with 1.01^(k-1) <= seconds < 1.01^k.';
COMMENT ON FUNCTION mailtrail.duration_bucket_seconds(integer) IS
    'The geometric middle of a duration bucket in seconds (within 0.5 % of every duration in it).';
COMMENT ON FUNCTION mailtrail.duration_percentile(integer[], bigint[], double precision) IS
    'percentile_cont over a duration histogram (buckets ascending, their span counts, the fraction), each span at its bucket''s middle; whole seconds.';

-- The mailing class a span is counted under, kept beside the entry (orders.mailing_class is the
-- order's present one): the spans subtracted when an order's class changes are the ones added.
ALTER TABLE mailtrail.order_status_entries ADD COLUMN mailing_class text;
COMMENT ON COLUMN mailtrail.order_status_entries.mailing_class IS 'The order''s mailing_class.';

CREATE TABLE mailtrail.status_duration_buckets (
    order_type     text NOT NULL,
    mailing_class  text,
    live           boolean NOT NULL,
    status         text NOT NULL,
    bucket         integer NOT NULL,
    spans          bigint NOT NULL
);
CREATE UNIQUE INDEX status_duration_buckets_key
    ON mailtrail.status_duration_buckets (order_type, mailing_class, live, status, bucket)
    NULLS NOT DISTINCT;

COMMENT ON TABLE mailtrail.status_duration_buckets IS
    'Derived from order_status_entries by triggers (do not write it): how many ended status spans (status_durations rows with left_at) fall in each duration bucket, per order type, mailing class, live flag and status. A row whose spans went back to 0 may stay. mailtrail.rebuild_order_summaries() recomputes it.';
COMMENT ON COLUMN mailtrail.status_duration_buckets.bucket IS 'mailtrail.duration_bucket(left_at - entered_at); mailtrail.duration_bucket_seconds(bucket) is its middle.';
COMMENT ON COLUMN mailtrail.status_duration_buckets.spans IS 'The number of ended spans in the bucket.';

-- Adds sign x (the ended spans of these orders' entries) to the histogram: -1 before the entries
-- change, +1 after.
CREATE FUNCTION mailtrail.count_status_spans(order_ids text[], sign integer) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO mailtrail.status_duration_buckets AS b
        (order_type, mailing_class, live, status, bucket, spans)
    SELECT order_type, mailing_class, live, status, mailtrail.duration_bucket(left_at - entered_at),
           sign * count(*)
    FROM (SELECT e.order_type, e.mailing_class, e.live, e.status, e.entered_at,
                 lead(e.entered_at) OVER (PARTITION BY e.order_id ORDER BY e.entered_at, e.change_id)
                     AS left_at
          FROM mailtrail.order_status_entries e
          WHERE e.order_id = ANY (order_ids)) s
    WHERE left_at IS NOT NULL
    GROUP BY 1, 2, 3, 4, 5
    ORDER BY 1, 2, 3, 4, 5  -- rows locked in one order by every writer: no deadlock
    ON CONFLICT (order_type, mailing_class, live, status, bucket) DO UPDATE SET
        spans = b.spans + excluded.spans;
END $$;

-- 0006's per-order recompute, now with the entries' mailing_class and the histogram.
CREATE OR REPLACE FUNCTION mailtrail.summarize_orders(order_ids text[]) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM mailtrail.count_status_spans(order_ids, -1);
    DELETE FROM mailtrail.order_status_entries WHERE order_id = ANY (order_ids);
    INSERT INTO mailtrail.order_status_entries (change_id, order_id, order_type, mailing_class, live,
        status, entered_at)
    SELECT c.id, c.order_id, o.order_type, o.mailing_class, o.live, c.new_value,
           CASE
               WHEN c.old_value IS NULL AND c.new_value IN ('ready', 'placed') AND o.created_at IS NOT NULL
                   THEN o.created_at
               ELSE coalesce(c.api_updated_at, c.observed_at)
           END
    FROM mailtrail.order_changes c
    JOIN mailtrail.orders o ON o.id = c.order_id
    WHERE c.order_id = ANY (order_ids) AND c.field = 'status' AND c.new_value IS NOT NULL;
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

-- 0006's rebuild from scratch, now with the entries' mailing_class and the histogram.
CREATE OR REPLACE FUNCTION mailtrail.rebuild_order_summaries() RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    TRUNCATE mailtrail.order_status_entries, mailtrail.order_stage_times,
             mailtrail.status_duration_buckets;
    INSERT INTO mailtrail.order_status_entries (change_id, order_id, order_type, mailing_class, live,
        status, entered_at)
    SELECT c.id, c.order_id, o.order_type, o.mailing_class, o.live, c.new_value,
           CASE
               WHEN c.old_value IS NULL AND c.new_value IN ('ready', 'placed') AND o.created_at IS NOT NULL
                   THEN o.created_at
               ELSE coalesce(c.api_updated_at, c.observed_at)
           END
    FROM mailtrail.order_changes c
    JOIN mailtrail.orders o ON o.id = c.order_id
    WHERE c.field = 'status' AND c.new_value IS NOT NULL;

    INSERT INTO mailtrail.status_duration_buckets (order_type, mailing_class, live, status, bucket, spans)
    SELECT order_type, mailing_class, live, status, mailtrail.duration_bucket(left_at - entered_at),
           count(*)
    FROM (SELECT e.order_type, e.mailing_class, e.live, e.status, e.entered_at,
                 lead(e.entered_at) OVER (PARTITION BY e.order_id ORDER BY e.entered_at, e.change_id)
                     AS left_at
          FROM mailtrail.order_status_entries e) s
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

-- 0006's insert trigger (every write path of mailtrail, once per statement), now with the
-- entries' mailing_class and the histogram. One pass over the statement's orders' entries gives
-- their spans before the statement (the entries it did not add, among themselves) and after (all
-- of them); only the difference is written, so an order whose new status is appended changes one
-- bucket row, and the spans that did not change are not touched. Every step is linear in the
-- statement's rows, whatever plan PL/pgSQL cached: the entries are read per order through the
-- index, and an entry is known as added by the order's own few ids (a lookup in the whole
-- transition table per entry, `IN (SELECT id FROM new_changes)`, is not hashed past work_mem and
-- made a million-order bulk insert quadratic).
CREATE OR REPLACE FUNCTION mailtrail.order_changes_inserted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO mailtrail.order_status_entries (change_id, order_id, order_type, mailing_class, live,
        status, entered_at)
    SELECT c.id, c.order_id, o.order_type, o.mailing_class, o.live, c.new_value,
           CASE
               WHEN c.old_value IS NULL AND c.new_value IN ('ready', 'placed') AND o.created_at IS NOT NULL
                   THEN o.created_at
               ELSE coalesce(c.api_updated_at, c.observed_at)
           END
    FROM new_changes c
    JOIN mailtrail.orders o ON o.id = c.order_id
    WHERE c.field = 'status' AND c.new_value IS NOT NULL;

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
    INSERT INTO mailtrail.status_duration_buckets AS b
        (order_type, mailing_class, live, status, bucket, spans)
    SELECT s.order_type, s.mailing_class, s.live, s.status,
           mailtrail.duration_bucket(d.left_at - s.entered_at), sum(d.sign)
    FROM (SELECT e.order_type, e.mailing_class, e.live, e.status, e.entered_at,
                 lead(e.entered_at) OVER (PARTITION BY e.order_id ORDER BY e.entered_at, e.change_id)
                     AS left_after,
                 CASE WHEN NOT e.added THEN
                     lead(e.entered_at) OVER (PARTITION BY e.order_id, e.added
                                              ORDER BY e.entered_at, e.change_id)
                 END AS left_before
          FROM (SELECT order_id, array_agg(id) AS added_ids
                FROM new_changes
                WHERE field = 'status' AND new_value IS NOT NULL
                GROUP BY order_id) touched
          CROSS JOIN LATERAL (
              SELECT x.*, x.change_id = ANY (touched.added_ids) AS added
              FROM mailtrail.order_status_entries x
              WHERE x.order_id = touched.order_id) e) s
    CROSS JOIN LATERAL (VALUES (s.left_after, 1), (s.left_before, -1)) AS d(left_at, sign)
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

-- An order's mailing class now shapes its entries too: a change of it recomputes the order, as a
-- change of created_at, order_type or live did.
DROP TRIGGER orders_summarize_identity ON mailtrail.orders;
CREATE TRIGGER orders_summarize_identity
    AFTER UPDATE OF created_at, order_type, live, mailing_class ON mailtrail.orders
    FOR EACH ROW
    WHEN (OLD.created_at IS DISTINCT FROM NEW.created_at
          OR OLD.order_type IS DISTINCT FROM NEW.order_type
          OR OLD.live IS DISTINCT FROM NEW.live
          OR OLD.mailing_class IS DISTINCT FROM NEW.mailing_class)
    EXECUTE FUNCTION mailtrail.order_identity_updated();

-- status_durations pairs every entry with the next of its order, and stuck_orders reads each open
-- order's last one, both through this index and both needing only (order_id, entered_at, change_id,
-- status): with status in the index they read the index alone, in its order, instead of visiting
-- the heap at random (once VACUUM, autovacuum's too, has marked the pages all-visible). At a
-- million orders the whole status_durations view went from 6.4 s to about 4 s (issue 10).
DROP INDEX mailtrail.order_status_entries_order_idx;
CREATE INDEX order_status_entries_order_idx
    ON mailtrail.order_status_entries (order_id, entered_at, change_id) INCLUDE (status);

-- The backfill: the entries' new column and the histogram, from the history recorded so far.
SELECT mailtrail.rebuild_order_summaries();
