-- ccs schema, MySQL 8 / MariaDB 10.6+. Times are Unix epoch milliseconds (BIGINT) on every
-- backend, so one set of Rust types serves SQLite, MariaDB and PostgreSQL.
-- Money is USD as a double. Never edit an applied migration: add a new one.

CREATE TABLE users (
    id BIGINT AUTO_INCREMENT PRIMARY KEY,
    name TEXT NOT NULL,
    email TEXT,
    role VARCHAR(32) NOT NULL DEFAULT 'user',
    created_at BIGINT NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

CREATE TABLE projects (
    id BIGINT AUTO_INCREMENT PRIMARY KEY,
    name VARCHAR(200) NOT NULL UNIQUE,
    path TEXT NOT NULL,
    description TEXT,
    container_yaml TEXT,
    workflow_yaml TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

CREATE TABLE api_keys (
    id BIGINT AUTO_INCREMENT PRIMARY KEY,
    name TEXT NOT NULL,
    key_hash VARCHAR(64) NOT NULL UNIQUE,
    key_prefix VARCHAR(32) NOT NULL,
    permissions VARCHAR(100) NOT NULL,
    expires_at BIGINT,
    revoked_at BIGINT,
    last_used_at BIGINT,
    use_count BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

CREATE TABLE workflows (
    id VARCHAR(36) PRIMARY KEY,
    project_id BIGINT NOT NULL REFERENCES projects(id),
    status VARCHAR(32) NOT NULL,
    current_agent VARCHAR(200),
    iteration INTEGER NOT NULL DEFAULT 0,
    cost_usd DOUBLE NOT NULL DEFAULT 0,
    context LONGTEXT NOT NULL,
    source VARCHAR(64) NOT NULL,
    error TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    finished_at BIGINT
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

CREATE TABLE executions (
    id VARCHAR(36) PRIMARY KEY,
    project_id BIGINT NOT NULL REFERENCES projects(id),
    workflow_id VARCHAR(36) REFERENCES workflows(id),
    status VARCHAR(32) NOT NULL,
    prompt MEDIUMTEXT NOT NULL,
    source VARCHAR(64) NOT NULL,
    idempotency_key VARCHAR(200),
    api_key_id BIGINT,
    result MEDIUMTEXT,
    error TEXT,
    cost_usd DOUBLE,
    cost_estimated INTEGER NOT NULL DEFAULT 0,
    num_turns INTEGER,
    session_id VARCHAR(100),
    exit_code INTEGER,
    duration_ms BIGINT,
    attempts INTEGER NOT NULL DEFAULT 0,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    worker_id VARCHAR(200),
    created_at BIGINT NOT NULL,
    started_at BIGINT,
    finished_at BIGINT,
    UNIQUE (project_id, idempotency_key)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;
CREATE INDEX executions_status ON executions (status, created_at);
CREATE INDEX executions_project ON executions (project_id, created_at);

CREATE TABLE agent_executions (
    id BIGINT AUTO_INCREMENT PRIMARY KEY,
    workflow_id VARCHAR(36) NOT NULL REFERENCES workflows(id),
    agent VARCHAR(200) NOT NULL,
    iteration INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    execution_id VARCHAR(36) REFERENCES executions(id),
    status VARCHAR(32) NOT NULL,
    cost_usd DOUBLE NOT NULL DEFAULT 0,
    output MEDIUMTEXT,
    created_at BIGINT NOT NULL,
    finished_at BIGINT,
    UNIQUE (workflow_id, iteration, agent, attempt)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

CREATE TABLE logs (
    id BIGINT AUTO_INCREMENT PRIMARY KEY,
    execution_id VARCHAR(36) NOT NULL REFERENCES executions(id),
    attempt INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    at BIGINT NOT NULL,
    kind VARCHAR(32) NOT NULL,
    text MEDIUMTEXT NOT NULL,
    UNIQUE (execution_id, seq)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

CREATE TABLE notifications (
    id BIGINT AUTO_INCREMENT PRIMARY KEY,
    project_id BIGINT,
    kind VARCHAR(32) NOT NULL,
    title VARCHAR(500) NOT NULL,
    body TEXT NOT NULL,
    dedup_key VARCHAR(200) UNIQUE,
    read_at BIGINT,
    created_at BIGINT NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

CREATE TABLE budget_tracking (
    id BIGINT AUTO_INCREMENT PRIMARY KEY,
    scope VARCHAR(200) NOT NULL,
    day VARCHAR(10) NOT NULL,
    limit_usd DOUBLE,
    reserved_usd DOUBLE NOT NULL DEFAULT 0,
    spent_usd DOUBLE NOT NULL DEFAULT 0,
    updated_at BIGINT NOT NULL,
    UNIQUE (scope, day)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

CREATE TABLE audit_log (
    id BIGINT AUTO_INCREMENT PRIMARY KEY,
    at BIGINT NOT NULL,
    actor VARCHAR(200) NOT NULL,
    action VARCHAR(100) NOT NULL,
    subject VARCHAR(200) NOT NULL,
    detail TEXT
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

CREATE TABLE webhook_deliveries (
    source VARCHAR(64) NOT NULL,
    delivery_id VARCHAR(200) NOT NULL,
    execution_id VARCHAR(36),
    received_at BIGINT NOT NULL,
    PRIMARY KEY (source, delivery_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;
