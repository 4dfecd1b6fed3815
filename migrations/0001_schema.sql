-- mailtrail schema v1: the tables of contract.md.
-- Statuses are text, never enums: PostGrid adds values and mailtrail keeps unknown ones verbatim.
-- Applied by `mailtrail migrate` (and `mailtrail run` at start-up) inside one transaction.

CREATE SCHEMA IF NOT EXISTS mailtrail;

CREATE TABLE mailtrail.orders (
    id                    text PRIMARY KEY,
    order_type            text NOT NULL,
    live                  boolean NOT NULL,
    status                text,
    imb_status            text,
    imb_date              timestamptz,
    imb_zip_code          text,
    tracking_number       text,
    mailing_class         text,
    extra_service         text,
    send_date             timestamptz,
    carrier               text,
    carrier_status        text,
    carrier_status_detail text,
    est_delivery_date     timestamptz,
    signed_by             text,
    cancellation_reason   text,
    description           text,
    metadata              jsonb,
    created_at            timestamptz,
    updated_at            timestamptz,
    first_seen_at         timestamptz NOT NULL DEFAULT now(),
    last_checked_at       timestamptz,
    last_changed_at       timestamptz,
    next_check_at         timestamptz,
    terminal              boolean NOT NULL DEFAULT false,
    raw                   jsonb,
    -- Beyond the contract, for the scheduler: why next_check_at has its value, so "why was (or
    -- wasn't) this order polled" is one query, and the envelope a return envelope order lives under
    -- (its GET path needs it).
    check_reason          text,
    envelope_id           text,
    CONSTRAINT orders_order_type_known CHECK (order_type IN (
        'letters', 'postcards', 'cheques', 'self_mailers', 'boxes', 'snap_packs',
        'return_envelope_orders'))
);

COMMENT ON TABLE mailtrail.orders IS
    'The latest known state of every PostGrid order mailtrail has seen: one row per order id.';
COMMENT ON COLUMN mailtrail.orders.order_type IS
    'PostGrid endpoint name: letters, postcards, cheques, self_mailers, boxes, snap_packs, return_envelope_orders.';
COMMENT ON COLUMN mailtrail.orders.live IS 'true for live-mode orders, false for test-mode orders.';
COMMENT ON COLUMN mailtrail.orders.status IS
    'PostGrid status (ready, printing, processed_for_delivery, completed, cancelled; placed/filled for return envelope orders), verbatim.';
COMMENT ON COLUMN mailtrail.orders.imb_status IS 'USPS Intelligent Mail barcode status, verbatim.';
COMMENT ON COLUMN mailtrail.orders.imb_zip_code IS 'ZIP code of the latest USPS facility that scanned the piece.';
COMMENT ON COLUMN mailtrail.orders.carrier_status IS 'carrierTracking.status, verbatim (delivered, in_transit, ...).';
COMMENT ON COLUMN mailtrail.orders.carrier_status_detail IS 'carrierTracking.statusDetail, verbatim.';
COMMENT ON COLUMN mailtrail.orders.metadata IS 'The customer''s own metadata object, for BI joins.';
COMMENT ON COLUMN mailtrail.orders.updated_at IS 'PostGrid''s updatedAt of the stored snapshot.';
COMMENT ON COLUMN mailtrail.orders.first_seen_at IS 'When mailtrail first stored this order.';
COMMENT ON COLUMN mailtrail.orders.last_checked_at IS 'When mailtrail last fetched this order from PostGrid.';
COMMENT ON COLUMN mailtrail.orders.last_changed_at IS 'When mailtrail last recorded a change of a tracked field.';
COMMENT ON COLUMN mailtrail.orders.next_check_at IS 'When the scheduler will poll this order next; NULL when terminal.';
COMMENT ON COLUMN mailtrail.orders.terminal IS 'true when nothing more will change; terminal orders are never polled again.';
COMMENT ON COLUMN mailtrail.orders.raw IS 'The last API object as PostGrid sent it, unknown fields kept.';
COMMENT ON COLUMN mailtrail.orders.check_reason IS 'Why next_check_at has its value (the scheduler tier).';
COMMENT ON COLUMN mailtrail.orders.envelope_id IS 'For return envelope orders: the return envelope they belong to.';

-- The scheduler asks "which non-terminal orders are due" constantly: keep that index small.
CREATE INDEX orders_due_idx ON mailtrail.orders (next_check_at) WHERE NOT terminal;
CREATE INDEX orders_type_status_idx ON mailtrail.orders (order_type, status);
CREATE INDEX orders_created_at_idx ON mailtrail.orders (created_at);

CREATE TABLE mailtrail.order_changes (
    id              bigserial PRIMARY KEY,
    order_id        text NOT NULL REFERENCES mailtrail.orders (id),
    field           text NOT NULL,
    old_value       text,
    new_value       text,
    observed_at     timestamptz NOT NULL DEFAULT now(),
    source          text NOT NULL,
    api_updated_at  timestamptz,
    CONSTRAINT order_changes_field_known CHECK (field IN (
        'status', 'imb_status', 'imb_zip_code', 'tracking_number', 'carrier_status',
        'carrier_status_detail', 'est_delivery_date', 'signed_by', 'cancellation_reason')),
    CONSTRAINT order_changes_source_known CHECK (source IN (
        'discovery', 'poll', 'webhook', 'backfill', 'manual'))
);

COMMENT ON TABLE mailtrail.order_changes IS
    'One row per observed change of a tracked field, each true change exactly once. The first observation of an order writes a row per non-null field with old_value NULL.';
COMMENT ON COLUMN mailtrail.order_changes.field IS
    'status, imb_status, imb_zip_code, tracking_number, carrier_status, carrier_status_detail, est_delivery_date, signed_by or cancellation_reason.';
COMMENT ON COLUMN mailtrail.order_changes.old_value IS 'Value before the change (NULL on first observation); timestamps as ISO-8601 UTC text.';
COMMENT ON COLUMN mailtrail.order_changes.new_value IS 'Value after the change; timestamps as ISO-8601 UTC text.';
COMMENT ON COLUMN mailtrail.order_changes.observed_at IS 'When mailtrail saw the change.';
COMMENT ON COLUMN mailtrail.order_changes.source IS 'What fetched the snapshot: discovery, poll, webhook, backfill or manual.';
COMMENT ON COLUMN mailtrail.order_changes.api_updated_at IS 'PostGrid''s updatedAt of the snapshot the change was seen in: an upper bound on when it really happened.';

CREATE INDEX order_changes_order_idx ON mailtrail.order_changes (order_id, observed_at, id);
CREATE INDEX order_changes_field_observed_idx ON mailtrail.order_changes (field, observed_at);

CREATE TABLE mailtrail.carrier_tracking_events (
    order_id          text NOT NULL REFERENCES mailtrail.orders (id),
    occurred_at       timestamptz NOT NULL,
    status            text NOT NULL,
    message           text NOT NULL,
    source            text,
    city              text,
    province_or_state text,
    country_code      text,
    postal_or_zip     text,
    first_seen_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT carrier_tracking_events_unique UNIQUE (order_id, occurred_at, status, message)
);

COMMENT ON TABLE mailtrail.carrier_tracking_events IS
    'Every carrierTracking.trackingUpdates entry, exactly once per (order_id, occurred_at, status, message).';
COMMENT ON COLUMN mailtrail.carrier_tracking_events.occurred_at IS 'The update''s createdAt: when the carrier reported it.';
COMMENT ON COLUMN mailtrail.carrier_tracking_events.status IS 'The carrier status of this update, verbatim.';
COMMENT ON COLUMN mailtrail.carrier_tracking_events.source IS 'The carrier that reported it (for example USPS).';
COMMENT ON COLUMN mailtrail.carrier_tracking_events.first_seen_at IS 'When mailtrail first stored this update.';

CREATE INDEX carrier_tracking_events_status_idx ON mailtrail.carrier_tracking_events (status, occurred_at);

CREATE TABLE mailtrail.webhook_deliveries (
    id               bigserial PRIMARY KEY,
    received_at      timestamptz NOT NULL DEFAULT now(),
    event_id         text,
    event_type       text,
    order_id         text,
    payload_format   text,
    verified         boolean NOT NULL,
    rejection_reason text,
    processed_at     timestamptz,
    payload          jsonb,
    -- Beyond the contract: a digest of the raw body, so a byte-for-byte replay is recognised.
    body_sha256      text
);

COMMENT ON TABLE mailtrail.webhook_deliveries IS
    'Every webhook delivery received, refused ones included (verified = false with the reason).';
COMMENT ON COLUMN mailtrail.webhook_deliveries.payload_format IS 'jwt or json.';
COMMENT ON COLUMN mailtrail.webhook_deliveries.rejection_reason IS 'Why a delivery was refused; NULL when verified.';
COMMENT ON COLUMN mailtrail.webhook_deliveries.processed_at IS 'When the refresh the delivery triggered was done.';
COMMENT ON COLUMN mailtrail.webhook_deliveries.payload IS 'The delivery''s payload (the decoded event), kept for audits.';

CREATE UNIQUE INDEX webhook_deliveries_verified_body_idx
    ON mailtrail.webhook_deliveries (body_sha256) WHERE verified;
CREATE INDEX webhook_deliveries_received_idx ON mailtrail.webhook_deliveries (received_at);
CREATE INDEX webhook_deliveries_order_idx ON mailtrail.webhook_deliveries (order_id);
