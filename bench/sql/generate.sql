-- A synthetic mailtrail history of :orders orders (psql variable), for timing the views and the
-- cookbook queries (bench/sql/run.sh). Deterministic (setseed) for a given :orders. Created over
-- the last 365 days; each order moves ready -> printing -> processed_for_delivery -> completed
-- about a day per stage and 2-6 days in the mail, as far as its age allows. The mix:
--   types    letters 50%, postcards 25%, self_mailers 8%, cheques 7%, boxes 3%, snap_packs 3%,
--            return_envelope_orders 4% (placed -> filled)
--   classes  first_class 60%, standard_class 25%, certified 7%, certified_return_receipt 3%,
--            express 3%, registered 2%; the last four get a tracking number, carrier statuses
--            and 5 carrier events (certified ones a signature)
--   live     95%; untracked live first_class letters/postcards get 2 IMB statuses
--   outcome  3% cancelled after ready, 1% stuck in printing, 1% stuck in processed_for_delivery
-- Order number 1 is the cookbook's example `letter_cert_1` with tracking number
-- 9407111899223197428490; every 5000th customer id is the cookbook's C-1042.
\set ON_ERROR_STOP on
SET client_min_messages = warning;
SELECT setseed(0.42);

CREATE TEMP TABLE gen AS
SELECT i,
       CASE WHEN i = 1 THEN 0.0 ELSE random() END AS r_type,
       CASE WHEN i = 1 THEN 0.86 ELSE random() END AS r_class,
       CASE WHEN i = 1 THEN 60.0 / 365 ELSE random() END AS r_age,
       random() AS r_state,
       CASE WHEN i = 1 THEN 0.5 ELSE random() END AS r_outcome,
       random() AS r_pace
FROM generate_series(1, :orders) AS i;

CREATE TEMP TABLE plan AS
WITH typed AS (
    SELECT g.*,
           CASE WHEN r_type < 0.50 THEN 'letters' WHEN r_type < 0.75 THEN 'postcards'
                WHEN r_type < 0.83 THEN 'self_mailers' WHEN r_type < 0.90 THEN 'cheques'
                WHEN r_type < 0.93 THEN 'boxes' WHEN r_type < 0.96 THEN 'snap_packs'
                ELSE 'return_envelope_orders' END AS order_type,
           CASE WHEN r_class < 0.60 THEN 'first_class' WHEN r_class < 0.85 THEN 'standard_class'
                WHEN r_class < 0.92 THEN 'certified' WHEN r_class < 0.95 THEN 'certified_return_receipt'
                WHEN r_class < 0.98 THEN 'express' ELSE 'registered' END AS mailing_class,
           date_trunc('second', now() - r_age * interval '365 days') AS created_at,
           (ARRAY['CA', 'NY', 'TX', 'FL', 'IL', 'PA', 'OH', 'GA', 'NC', 'MI', 'NJ', 'VA', 'WA',
                  'AZ', 'MA', 'TN', 'IN', 'MO', 'MD', 'WI'])[1 + floor(r_state * 20)::int] AS state
    FROM gen g
),
timed AS (
    SELECT t.*,
           (r_state < 0.95 OR i = 1) AS live,
           mailing_class NOT IN ('first_class', 'standard_class') AND order_type <> 'return_envelope_orders'
               AS tracked,
           created_at + interval '1 day' + r_pace * interval '12 hours' AS at_printing,
           created_at + interval '2 days' + r_pace * interval '24 hours' AS at_pfd,
           created_at + interval '4 days' + r_pace * interval '4 days' AS at_completed
    FROM typed t
)
SELECT i, order_type, mailing_class, live, tracked, state, created_at,
       CASE WHEN i = 1 THEN 'letter_cert_1'
            ELSE rtrim(CASE order_type WHEN 'boxes' THEN 'box' WHEN 'return_envelope_orders'
                           THEN 'return_envelope_order' ELSE rtrim(order_type, 's') END, '_')
                 || '_' || substr(md5(i::text), 1, 22) END AS id,
       CASE WHEN i = 1 THEN '9407111899223197428490'
            WHEN tracked THEN '94' || lpad(i::text, 20, '0') END AS tracking_number,
       -- the moments each status is reached; NULL when not (yet) reached
       created_at AS at_ready,
       CASE WHEN r_outcome < 0.03 AND order_type <> 'return_envelope_orders'
            THEN created_at + interval '6 hours' END AS at_cancelled,
       CASE WHEN r_outcome >= 0.03 AND order_type <> 'return_envelope_orders'
                 AND at_printing < now() THEN at_printing END AS at_printing,
       CASE WHEN r_outcome >= 0.04 AND order_type <> 'return_envelope_orders'
                 AND at_pfd < now() THEN at_pfd END AS at_pfd,
       CASE WHEN r_outcome >= 0.05 AND order_type <> 'return_envelope_orders'
                 AND at_completed < now() THEN at_completed END AS at_completed,
       CASE WHEN order_type = 'return_envelope_orders' AND r_outcome >= 0.2
                 AND at_completed < now() THEN at_completed END AS at_filled
FROM timed;

INSERT INTO mailtrail.orders (id, order_type, live, status, mailing_class, tracking_number,
    carrier_status, signed_by, imb_status, send_date, created_at, updated_at, first_seen_at,
    last_checked_at, last_changed_at, next_check_at, terminal, metadata, raw)
SELECT p.id, p.order_type, p.live, s.status, p.mailing_class,
       CASE WHEN p.at_pfd IS NOT NULL THEN p.tracking_number END,
       CASE WHEN p.tracked AND p.at_completed IS NOT NULL THEN 'delivered'
            WHEN p.tracked AND p.at_pfd IS NOT NULL THEN 'in_transit' END,
       CASE WHEN p.tracked AND p.at_completed IS NOT NULL AND p.mailing_class LIKE 'certified%'
            THEN 'J SMITH' END,
       NULL, p.created_at, p.created_at, s.at, p.created_at, now(), s.at,
       CASE WHEN s.status NOT IN ('completed', 'cancelled', 'filled') THEN now() + interval '1 hour' END,
       s.status IN ('completed', 'cancelled', 'filled'),
       jsonb_build_object('customer_id', 'C-' || (p.i % 5000 + 1000)),
       -- A PostGrid-sized object (about 1.3 KB, as the write path benchmark's), stored inline
       -- like the daemon's: the views that read orders scan rows of the real width.
       jsonb_build_object(
           'id', p.id, 'object', rtrim(p.order_type, 's'), 'live', p.live, 'status', s.status,
           'description', 'Invoice reminder ' || p.i,
           'to', jsonb_build_object('id', 'contact_' || md5(p.id), 'firstName', 'Jane',
               'lastName', 'Doe', 'companyName', 'Acme Corporation',
               'addressLine1', p.i || ' Main Street', 'addressLine2', 'Suite 400',
               'city', 'Springfield', 'provinceOrState', p.state, 'postalOrZip', '62701',
               'country', 'UNITED STATES', 'countryCode', 'US'),
           'from', jsonb_build_object('id', 'contact_sender', 'companyName', 'Sender Inc',
               'addressLine1', '1 Sender Way', 'city', 'Toronto', 'provinceOrState', 'ON',
               'postalOrZip', 'M5V 2T6', 'countryCode', 'CA'),
           'addressPlacement', 'top_first_page', 'color', false, 'doubleSided', true,
           'envelopeType', 'standard_double_window', 'mailingClass', p.mailing_class,
           'pageCount', 2, 'size', 'us_letter', 'template', 'template_abc',
           'url', 'https://pg-prod-bucket-1.s3.amazonaws.com/live/' || p.id || '.pdf',
           'metadata', jsonb_build_object('customer_id', 'C-' || (p.i % 5000 + 1000)),
           'mergeVariables', jsonb_build_object('name', 'Jane', 'amount', '$120.00',
               'due', '2026-02-01'),
           'createdAt', to_char(p.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
           'updatedAt', to_char(s.at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'))
FROM plan p
CROSS JOIN LATERAL (
    SELECT CASE WHEN p.order_type = 'return_envelope_orders' THEN
                    CASE WHEN p.at_filled IS NOT NULL THEN 'filled' ELSE 'placed' END
                WHEN p.at_cancelled IS NOT NULL THEN 'cancelled'
                WHEN p.at_completed IS NOT NULL THEN 'completed'
                WHEN p.at_pfd IS NOT NULL THEN 'processed_for_delivery'
                WHEN p.at_printing IS NOT NULL THEN 'printing'
                ELSE 'ready' END AS status,
           greatest(p.created_at, p.at_cancelled, p.at_printing, p.at_pfd, p.at_completed,
                    p.at_filled) AS at
) s;

-- Field changes, observed 10 minutes after PostGrid's updatedAt; each carries its order's type,
-- as the daemon writes them (migration 0009).
INSERT INTO mailtrail.order_changes (order_id, order_type, field, old_value, new_value, observed_at,
    source, api_updated_at)
SELECT p.id, p.order_type, c.field, c.old_value, c.new_value, c.at + interval '10 minutes', c.source, c.at
FROM plan p
CROSS JOIN LATERAL (VALUES
    (1, 'status', NULL, CASE WHEN p.order_type = 'return_envelope_orders' THEN 'placed' ELSE 'ready' END,
        p.at_ready, 'discovery'),
    (2, 'status', 'ready', 'cancelled', p.at_cancelled, 'webhook'),
    (3, 'status', 'ready', 'printing', p.at_printing, 'poll'),
    (4, 'status', 'printing', 'processed_for_delivery', p.at_pfd, 'poll'),
    (5, 'tracking_number', NULL, p.tracking_number, CASE WHEN p.tracked THEN p.at_pfd END, 'poll'),
    (6, 'carrier_status', NULL, 'pre_transit',
        CASE WHEN p.tracked THEN p.at_pfd + interval '6 hours' END, 'poll'),
    (7, 'carrier_status', 'pre_transit', 'in_transit',
        CASE WHEN p.tracked THEN p.at_pfd + interval '1 day' END, 'poll'),
    (8, 'imb_status', NULL, 'entered_mail_stream',
        CASE WHEN NOT p.tracked AND p.live AND p.mailing_class = 'first_class'
                  AND p.order_type IN ('letters', 'postcards')
             THEN p.at_pfd + interval '12 hours' END, 'poll'),
    (9, 'imb_status', 'entered_mail_stream', 'out_for_delivery',
        CASE WHEN NOT p.tracked AND p.live AND p.mailing_class = 'first_class'
                  AND p.order_type IN ('letters', 'postcards')
             THEN p.at_completed - interval '12 hours' END, 'poll'),
    (10, 'carrier_status', 'in_transit', 'delivered',
        CASE WHEN p.tracked THEN p.at_completed END, 'webhook'),
    (11, 'signed_by', NULL, 'J SMITH',
        CASE WHEN p.tracked AND p.mailing_class LIKE 'certified%' THEN p.at_completed END, 'webhook'),
    (12, 'status', 'processed_for_delivery', 'completed', p.at_completed, 'poll'),
    (13, 'status', 'placed', 'filled', p.at_filled, 'poll')
) AS c(seq, field, old_value, new_value, at, source)
WHERE c.at IS NOT NULL AND c.at < now();

-- Carrier tracking updates of the tracked orders.
INSERT INTO mailtrail.carrier_tracking_events (order_id, order_type, occurred_at, status, message,
    source, city, province_or_state, country_code, postal_or_zip)
SELECT p.id, p.order_type, e.at, e.status, e.message, 'USPS', e.city, e.st, 'US', e.zip
FROM plan p
CROSS JOIN LATERAL (VALUES
    (p.at_pfd + interval '5 hours', 'pre_transit', 'Shipping label created', NULL, NULL, NULL),
    (p.at_pfd + interval '20 hours', 'in_transit', 'Accepted at USPS origin facility', 'Chicago', 'IL', '60607'),
    (p.at_pfd + interval '44 hours', 'in_transit', 'Arrived at USPS regional facility', 'Springfield', p.state, '10001'),
    (p.at_completed - interval '6 hours', 'out_for_delivery', 'Out for delivery', 'Springfield', p.state, '10002'),
    (p.at_completed - interval '1 hour', 'delivered', 'Delivered, left with individual', 'Springfield', p.state, '10002')
) AS e(at, status, message, city, st, zip)
WHERE p.tracked AND e.at IS NOT NULL AND e.at < now() AND e.at > p.at_pfd;

DROP TABLE plan;
DROP TABLE gen;
