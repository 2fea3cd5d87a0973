-- Claude Code sessions kept for a later execution to resume
-- (src/runner/session.rs): the execution whose session a run continues,
-- and the gzip-compressed transcript a run left (bounded at 8 MiB),
-- written with the execution's end, read when a resuming run starts.
ALTER TABLE executions ADD COLUMN resume_from VARCHAR(36);

CREATE TABLE execution_sessions (
    execution_id VARCHAR(36) PRIMARY KEY REFERENCES executions(id),
    session_id VARCHAR(64) NOT NULL,
    transcript LONGBLOB NOT NULL,
    size_bytes BIGINT NOT NULL,
    created_at BIGINT NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;
