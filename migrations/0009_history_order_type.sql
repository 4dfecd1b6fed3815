-- The order's type beside every history row (issue 10, benchmark 7). order_timeline joined
-- order_changes and carrier_tracking_events to orders for order_type alone: at a million orders
-- that is two hash joins of 5.9 million rows against the whole 1.5 GB orders heap (its raw
-- objects inline), split into batches on disk, 4.4 s for the whole view. The same view reading the
-- type from the history rows themselves scans them once (under a second). An order's type never
-- changes in practice (it is the endpoint the order lives under); should an update change it,
-- order_identity_updated copies the new one into the order's history.
--
-- mailtrail writes the type with every row; a row written without it (by hand, by a script)
-- gets it from orders by a BEFORE INSERT trigger whose WHEN clause keeps it from running for the
-- daemon's rows.

ALTER TABLE mailtrail.order_changes ADD COLUMN order_type text;
ALTER TABLE mailtrail.carrier_tracking_events ADD COLUMN order_type text;

COMMENT ON COLUMN mailtrail.order_changes.order_type IS
    'The order''s order_type (a copy of orders.order_type, kept equal to it; filled from orders when a row is written without it).';
COMMENT ON COLUMN mailtrail.carrier_tracking_events.order_type IS
    'The order''s order_type (a copy of orders.order_type, kept equal to it; filled from orders when a row is written without it).';

-- The backfill of the history recorded so far. Copying the type changes nothing that the
-- summaries of 0006 and 0008 derive, so their UPDATE triggers (which would recompute every order's
-- summaries) are off while it runs, inside this migration's transaction.
ALTER TABLE mailtrail.order_changes DISABLE TRIGGER order_changes_summarize_update;
ALTER TABLE mailtrail.carrier_tracking_events DISABLE TRIGGER carrier_events_summarize_update;
UPDATE mailtrail.order_changes c SET order_type = o.order_type
FROM mailtrail.orders o
WHERE o.id = c.order_id;
UPDATE mailtrail.carrier_tracking_events e SET order_type = o.order_type
FROM mailtrail.orders o
WHERE o.id = e.order_id;
ALTER TABLE mailtrail.order_changes ENABLE TRIGGER order_changes_summarize_update;
ALTER TABLE mailtrail.carrier_tracking_events ENABLE TRIGGER carrier_events_summarize_update;
ALTER TABLE mailtrail.order_changes ALTER COLUMN order_type SET NOT NULL;
ALTER TABLE mailtrail.carrier_tracking_events ALTER COLUMN order_type SET NOT NULL;

-- A history row's copy of its order's type: filled when a row arrives without one, and taken
-- from orders again when a row is moved to another order or its copy is edited.
-- enable_seqscan = off keeps the lookup on the primary key whatever plan PL/pgSQL cached while
-- orders was small.
CREATE FUNCTION mailtrail.history_row_order_type() RETURNS trigger
LANGUAGE plpgsql
SET enable_seqscan = off
AS $$
BEGIN
    SELECT o.order_type INTO NEW.order_type FROM mailtrail.orders o WHERE o.id = NEW.order_id;
    IF NOT FOUND THEN
        RAISE foreign_key_violation USING
            MESSAGE = format('%s row for order %L: the order is not in mailtrail.orders',
                             TG_TABLE_NAME, NEW.order_id);
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER order_changes_order_type_insert
    BEFORE INSERT ON mailtrail.order_changes
    FOR EACH ROW WHEN (NEW.order_type IS NULL)
    EXECUTE FUNCTION mailtrail.history_row_order_type();
CREATE TRIGGER order_changes_order_type_update
    BEFORE UPDATE OF order_id, order_type ON mailtrail.order_changes
    FOR EACH ROW EXECUTE FUNCTION mailtrail.history_row_order_type();
CREATE TRIGGER carrier_events_order_type_insert
    BEFORE INSERT ON mailtrail.carrier_tracking_events
    FOR EACH ROW WHEN (NEW.order_type IS NULL)
    EXECUTE FUNCTION mailtrail.history_row_order_type();
CREATE TRIGGER carrier_events_order_type_update
    BEFORE UPDATE OF order_id, order_type ON mailtrail.carrier_tracking_events
    FOR EACH ROW EXECUTE FUNCTION mailtrail.history_row_order_type();

-- 0006's per-row trigger on a change of an order's created_at, order_type, live or mailing_class
-- (0008): now also keeps the history's copy of the type equal to the order's.
CREATE OR REPLACE FUNCTION mailtrail.order_identity_updated() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.order_type IS DISTINCT FROM NEW.order_type THEN
        UPDATE mailtrail.order_changes SET order_type = NEW.order_type
        WHERE order_id = NEW.id AND order_type <> NEW.order_type;
        UPDATE mailtrail.carrier_tracking_events SET order_type = NEW.order_type
        WHERE order_id = NEW.id AND order_type <> NEW.order_type;
    END IF;
    PERFORM mailtrail.summarize_orders(ARRAY[NEW.id]);
    RETURN NULL;
END $$;

-- The same columns, names, types and rows as 0002's definition.
CREATE OR REPLACE VIEW mailtrail.order_timeline AS
SELECT c.order_id,
       c.order_type,
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
UNION ALL
SELECT e.order_id,
       e.order_type,
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
FROM mailtrail.carrier_tracking_events e;
