-- State the sync engine shares between runs and replicas, so `mailtrail status` (another
-- process) can report it and a restarted backfill can continue where it stopped.

-- One row per periodic job (discovery, full_scan, backfill:<type>, ...).
CREATE TABLE mailtrail.sync_runs (
    job             text PRIMARY KEY,
    last_started_at timestamptz,
    last_success_at timestamptz,
    last_failure_at timestamptz,
    last_error      text,
    detail          jsonb
);
COMMENT ON TABLE mailtrail.sync_runs IS
    'The last run of each periodic sync job (discovery, full_scan, backfill): when it started, last succeeded or failed, and why.';

-- Backfill position per order type: the list offset reached, so a restarted backfill resumes.
CREATE TABLE mailtrail.backfill_progress (
    order_type  text PRIMARY KEY,
    next_skip   bigint NOT NULL DEFAULT 0,
    since       timestamptz,
    started_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz
);
COMMENT ON TABLE mailtrail.backfill_progress IS
    'How far `mailtrail backfill` has walked each list endpoint; a restarted backfill continues from next_skip.';

-- Live `mailtrail run` processes: each refreshes its row; PostGrid's rate limit is shared by the
-- account, so each replica takes requests_per_second / (live replicas).
CREATE TABLE mailtrail.replicas (
    id           text PRIMARY KEY,
    hostname     text NOT NULL,
    pid          integer NOT NULL,
    started_at   timestamptz NOT NULL,
    last_seen_at timestamptz NOT NULL,
    is_leader    boolean NOT NULL DEFAULT false
);
COMMENT ON TABLE mailtrail.replicas IS
    'Running mailtrail daemons (heartbeat every few seconds); the leader runs discovery and full scans.';

-- API requests made, by purpose, endpoint and HTTP status (0: no response), summed over all
-- processes and runs; daemons add their counts every few seconds.
CREATE TABLE mailtrail.api_request_totals (
    purpose  text NOT NULL,
    endpoint text NOT NULL,
    status   integer NOT NULL,
    requests bigint NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (purpose, endpoint, status)
);
COMMENT ON TABLE mailtrail.api_request_totals IS
    'PostGrid API requests made by every mailtrail process, by purpose (poll, discovery, full_scan, webhook, backfill, manual, check), endpoint and HTTP status.';
