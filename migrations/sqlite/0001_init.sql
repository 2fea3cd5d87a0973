-- ccs schema, SQLite. Times are Unix epoch milliseconds (BIGINT) on every
-- backend, so one set of Rust types serves SQLite, MariaDB and PostgreSQL.
-- Money is USD as a double. Never edit an applied migration: add a new one.

CREATE TABLE users (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    email TEXT,
    role TEXT NOT NULL DEFAULT 'user',
    created_at BIGINT NOT NULL
);

CREATE TABLE projects (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    path TEXT NOT NULL,
    description TEXT,
    container_yaml TEXT,
    workflow_yaml TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE api_keys (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    key_hash TEXT NOT NULL UNIQUE,
    key_prefix TEXT NOT NULL,
    permissions TEXT NOT NULL,
    expires_at BIGINT,
    revoked_at BIGINT,
    last_used_at BIGINT,
    use_count BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL
);

CREATE TABLE workflows (
    id TEXT PRIMARY KEY,
    project_id BIGINT NOT NULL REFERENCES projects(id),
    status TEXT NOT NULL,
    current_agent TEXT,
    iteration INTEGER NOT NULL DEFAULT 0,
    cost_usd DOUBLE NOT NULL DEFAULT 0,
    context TEXT NOT NULL DEFAULT '{}',
    source TEXT NOT NULL,
    error TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    finished_at BIGINT
);

CREATE TABLE executions (
    id TEXT PRIMARY KEY,
    project_id BIGINT NOT NULL REFERENCES projects(id),
    workflow_id TEXT REFERENCES workflows(id),
    status TEXT NOT NULL,
    prompt TEXT NOT NULL,
    source TEXT NOT NULL,
    idempotency_key TEXT,
    api_key_id BIGINT,
    result TEXT,
    error TEXT,
    cost_usd DOUBLE,
    cost_estimated INTEGER NOT NULL DEFAULT 0,
    num_turns INTEGER,
    session_id TEXT,
    exit_code INTEGER,
    duration_ms BIGINT,
    attempts INTEGER NOT NULL DEFAULT 0,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    worker_id TEXT,
    created_at BIGINT NOT NULL,
    started_at BIGINT,
    finished_at BIGINT,
    UNIQUE (project_id, idempotency_key)
);
CREATE INDEX executions_status ON executions (status, created_at);
CREATE INDEX executions_project ON executions (project_id, created_at);

CREATE TABLE agent_executions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    workflow_id TEXT NOT NULL REFERENCES workflows(id),
    agent TEXT NOT NULL,
    iteration INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    execution_id TEXT REFERENCES executions(id),
    status TEXT NOT NULL,
    cost_usd DOUBLE NOT NULL DEFAULT 0,
    output TEXT,
    created_at BIGINT NOT NULL,
    finished_at BIGINT,
    UNIQUE (workflow_id, iteration, agent, attempt)
);

CREATE TABLE logs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    execution_id TEXT NOT NULL REFERENCES executions(id),
    attempt INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    at BIGINT NOT NULL,
    kind TEXT NOT NULL,
    text TEXT NOT NULL,
    UNIQUE (execution_id, seq)
);

CREATE TABLE notifications (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id BIGINT,
    kind TEXT NOT NULL,
    title TEXT NOT NULL,
    body TEXT NOT NULL,
    dedup_key TEXT UNIQUE,
    read_at BIGINT,
    created_at BIGINT NOT NULL
);

CREATE TABLE budget_tracking (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    scope TEXT NOT NULL,
    day TEXT NOT NULL,
    limit_usd DOUBLE,
    reserved_usd DOUBLE NOT NULL DEFAULT 0,
    spent_usd DOUBLE NOT NULL DEFAULT 0,
    updated_at BIGINT NOT NULL,
    UNIQUE (scope, day)
);

CREATE TABLE audit_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    subject TEXT NOT NULL,
    detail TEXT
);

CREATE TABLE webhook_deliveries (
    source TEXT NOT NULL,
    delivery_id TEXT NOT NULL,
    execution_id TEXT,
    received_at BIGINT NOT NULL,
    PRIMARY KEY (source, delivery_id)
);
