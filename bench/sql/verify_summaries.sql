-- Run by bench/sql/run.sh after generating the history: the summaries the triggers of migrations
-- 0006, 0008, 0010 and 0011 wrote while generate.sql inserted it (order_status_entries,
-- order_stage_times, status_duration_buckets, order_deliveries) must equal a from-scratch rebuild. The rebuild is rolled back, so the
-- benchmark times the tables exactly as the triggers left them. Prints one line; fails
-- (ON_ERROR_STOP) when they differ.
BEGIN;
CREATE TEMP TABLE kept_entries AS SELECT * FROM mailtrail.order_status_entries;
CREATE TEMP TABLE kept_stages AS SELECT * FROM mailtrail.order_stage_times;
CREATE TEMP TABLE kept_deliveries AS SELECT * FROM mailtrail.order_deliveries;
-- A histogram row whose spans went back to 0 may stay; it means nothing.
CREATE TEMP TABLE kept_buckets AS SELECT * FROM mailtrail.status_duration_buckets WHERE spans <> 0;
SELECT mailtrail.rebuild_order_summaries();
DO $$
DECLARE
    entries_differ bigint;
    stages_differ bigint;
    buckets_differ bigint;
    deliveries_differ bigint;
BEGIN
    SELECT count(*) INTO entries_differ
    FROM ((TABLE kept_entries EXCEPT ALL TABLE mailtrail.order_status_entries)
          UNION ALL (TABLE mailtrail.order_status_entries EXCEPT ALL TABLE kept_entries)) d;
    SELECT count(*) INTO stages_differ
    FROM ((TABLE kept_stages EXCEPT ALL TABLE mailtrail.order_stage_times)
          UNION ALL (TABLE mailtrail.order_stage_times EXCEPT ALL TABLE kept_stages)) d;
    SELECT count(*) INTO buckets_differ
    FROM ((TABLE kept_buckets EXCEPT ALL TABLE mailtrail.status_duration_buckets)
          UNION ALL (TABLE mailtrail.status_duration_buckets EXCEPT ALL TABLE kept_buckets)) d;
    SELECT count(*) INTO deliveries_differ
    FROM ((TABLE kept_deliveries EXCEPT ALL TABLE mailtrail.order_deliveries)
          UNION ALL (TABLE mailtrail.order_deliveries EXCEPT ALL TABLE kept_deliveries)) d;
    RAISE NOTICE 'summaries vs rebuild: % of % status entries, % of % stage rows, % of % duration buckets and % of % deliveries differ',
        entries_differ, (SELECT count(*) FROM kept_entries),
        stages_differ, (SELECT count(*) FROM kept_stages),
        buckets_differ, (SELECT count(*) FROM kept_buckets),
        deliveries_differ, (SELECT count(*) FROM kept_deliveries);
    IF entries_differ <> 0 OR stages_differ <> 0 OR buckets_differ <> 0 OR deliveries_differ <> 0 THEN
        RAISE EXCEPTION 'the triggers'' summaries differ from a rebuild';
    END IF;
END $$;
ROLLBACK;
