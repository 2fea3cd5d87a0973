-- Dashboard sign-ins (src/ui/session.rs). A session is a random token in an
-- HttpOnly cookie; only its SHA-256 is stored, with the API key it acts as,
-- so every API replica accepts it and signing out ends it everywhere.
CREATE TABLE ui_sessions (
    token_hash TEXT PRIMARY KEY,
    api_key_id BIGINT NOT NULL REFERENCES api_keys(id),
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX ui_sessions_expires ON ui_sessions (expires_at);

-- One-time sign-in links (`ccs up` prints one): used once, then dead.
CREATE TABLE ui_sign_in_links (
    token_hash TEXT PRIMARY KEY,
    api_key_id BIGINT NOT NULL REFERENCES api_keys(id),
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT
);

-- The executions page filters by time and pages by (created_at, id).
CREATE INDEX executions_created ON executions (created_at, id);

-- The overview's charts: finished and started per minute, last hour.
CREATE INDEX executions_finished ON executions (finished_at);
CREATE INDEX executions_started ON executions (started_at);
