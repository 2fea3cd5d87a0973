-- Multi-agent workflow runs as chains of jobs (see src/workflows/mod.rs).
ALTER TABLE workflows ADD COLUMN definition TEXT;
ALTER TABLE workflows ADD COLUMN started_at BIGINT;
ALTER TABLE workflows ADD COLUMN consecutive_failures INTEGER NOT NULL DEFAULT 0;
ALTER TABLE workflows ADD COLUMN steps_run INTEGER NOT NULL DEFAULT 0;

-- One row per step of a run: `step` numbers them 1, 2, … in order; `routed`
-- is set in the transaction that enqueues what comes next, exactly once.
ALTER TABLE agent_executions ADD COLUMN step INTEGER NOT NULL DEFAULT 0;
ALTER TABLE agent_executions ADD COLUMN routed INTEGER NOT NULL DEFAULT 0;
CREATE UNIQUE INDEX agent_executions_step ON agent_executions (workflow_id, step);

-- A step's wall-clock limit when its run's maxRuntime leaves less than the
-- container's timeout.
ALTER TABLE executions ADD COLUMN timeout_ms BIGINT;

-- What a run did, in order; the SSE stream of a run replays it by `seq`.
CREATE TABLE workflow_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    workflow_id TEXT NOT NULL REFERENCES workflows(id),
    seq INTEGER NOT NULL,
    at BIGINT NOT NULL,
    kind TEXT NOT NULL,
    data TEXT NOT NULL,
    UNIQUE (workflow_id, seq)
);
