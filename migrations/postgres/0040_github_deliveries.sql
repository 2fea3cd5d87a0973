-- GitHub webhook deliveries (src/github/ingest.rs): one row per
-- X-GitHub-Delivery, written by the API in the transaction that enqueues its
-- ccs::inbound-events job (none for an ignored event); the job
-- (src/jobs/github_event.rs) records what it made of it.
-- status: queued | ignored | processed | failed.
CREATE TABLE github_deliveries (
    delivery_id TEXT PRIMARY KEY,
    event TEXT NOT NULL,
    action TEXT,
    repository TEXT,
    sender TEXT,
    installation_id BIGINT,
    payload TEXT,
    status TEXT NOT NULL,
    outcome TEXT,
    received_at BIGINT NOT NULL,
    processed_at BIGINT
);
CREATE INDEX idx_github_deliveries_received ON github_deliveries (received_at);
