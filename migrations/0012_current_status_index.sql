-- stuck_orders from the open orders' current status entries (issue 10, benchmark 7). The view
-- found each open order's current status by a backward probe of the entries index per order
-- (LIMIT 1), and named orders twice (once to drive the probes, once for the output), so it read
-- the heap pages of every open order twice: at a million orders (42,654 open, one heap page each
-- of the 1.5 GB orders table) 1.1-1.4 s in a slow hour. Since 0010 the current entry of an order
-- is the one with left_at NULL, and its terminal flag is the order's, so a partial index holds
-- exactly one row per open order, in entered_at order: the view takes the orders whose current
-- status began before the shortest threshold from it and reads orders once (0.8-1.0 s in the same
-- hour). The "stuck for N days" recipe of docs/sql.md reads the same index (1.4-1.9 s to
-- 0.8-1.0 s).
--
-- The index costs the write path little: an entry enters it only while it is the current status of
-- an open order (a backfill of finished orders adds nothing), and leaves it when the next status
-- arrives (left_at set) or the order ends (terminal set), once each per status change.

CREATE INDEX order_status_entries_current_idx ON mailtrail.order_status_entries (entered_at)
    INCLUDE (order_id) WHERE left_at IS NULL AND NOT terminal;

-- The thresholds and output of 0004's definition, unchanged (views_equivalence_pgtest compares
-- them). A status is stuck when now() - since > allowed, and since >= entered_at (for ready it is
-- the later of entered_at and sendDate), so entered_at < now() - the shortest allowed holds for
-- every stuck order: a range of the index.
CREATE OR REPLACE VIEW mailtrail.stuck_orders AS
WITH thresholds(status, allowed) AS (
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
       CASE WHEN o.status = 'ready' THEN greatest(e.entered_at, o.send_date) ELSE e.entered_at END
                                              AS since,
       now() - CASE WHEN o.status = 'ready' THEN greatest(e.entered_at, o.send_date)
                    ELSE e.entered_at END    AS stuck_for,
       t.allowed,
       o.last_checked_at
FROM mailtrail.order_status_entries e
JOIN mailtrail.orders o ON o.id = e.order_id
JOIN thresholds t ON t.status = o.status
WHERE e.left_at IS NULL AND NOT e.terminal
  AND e.entered_at < now() - (SELECT min(allowed) FROM thresholds)
  AND NOT o.terminal
  AND now() - CASE WHEN o.status = 'ready' THEN greatest(e.entered_at, o.send_date)
                   ELSE e.entered_at END > t.allowed;
