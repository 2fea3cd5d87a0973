-- GitHub webhook deliveries (src/github/ingest.rs): one row per
-- X-GitHub-Delivery, written by the API in the transaction that enqueues its
-- ccs::inbound-events job (none for an ignored event); the job
-- (src/jobs/github_event.rs) records what it made of it.
-- status: queued | ignored | processed | failed.
CREATE TABLE github_deliveries (
    delivery_id VARCHAR(100) PRIMARY KEY,
    event VARCHAR(100) NOT NULL,
    action VARCHAR(100),
    repository VARCHAR(200),
    sender VARCHAR(200),
    installation_id BIGINT,
    payload LONGTEXT,
    status VARCHAR(32) NOT NULL,
    outcome TEXT,
    received_at BIGINT NOT NULL,
    processed_at BIGINT
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;
CREATE INDEX idx_github_deliveries_received ON github_deliveries (received_at);
