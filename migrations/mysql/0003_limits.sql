-- Limits and budgets (see docs/limits.md and src/limits/mod.rs).

-- One row per project: the lock every worker's admission transaction takes
-- (an UPDATE of this row) before it counts the project's running executions
-- and recent starts, so two workers cannot both take the last slot.
CREATE TABLE project_slots (
    project_id BIGINT PRIMARY KEY,
    locked_at BIGINT NOT NULL DEFAULT 0
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

-- Limits set through the API (`PUT /api/v1/budget`); they win over the
-- project's files and the service's settings. scope: `global`,
-- `project:<id>` or `key:<id>`; NULL: not overridden.
CREATE TABLE budget_limits (
    scope VARCHAR(200) PRIMARY KEY,
    daily_limit_usd DOUBLE,
    per_execution_usd DOUBLE,
    updated_at BIGINT NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

-- The alert threshold of a day's budget, written with its limit at admission.
ALTER TABLE budget_tracking ADD COLUMN alert_percent INTEGER;

-- An execution's reservation: set when it is admitted, zeroed when it
-- settles (in the transaction that records its outcome), so it settles once.
ALTER TABLE executions ADD COLUMN reserved_usd DOUBLE NOT NULL DEFAULT 0;
ALTER TABLE executions ADD COLUMN reserved_day VARCHAR(10);
ALTER TABLE executions ADD COLUMN reserved_scopes VARCHAR(500);
-- The per-execution ceiling the run was admitted with.
ALTER TABLE executions ADD COLUMN ceiling_usd DOUBLE;

CREATE INDEX executions_project_status ON executions (project_id, status);
CREATE INDEX executions_project_started ON executions (project_id, started_at);
