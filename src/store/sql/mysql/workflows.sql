-- Workflow runs, steps and events (src/store/workflows.rs). MySQL 8 / MariaDB 10.6+.

-- name: workflow_insert
INSERT INTO workflows (id, project_id, status, current_agent, iteration, context, source, definition, created_at, updated_at, started_at)
VALUES (?, ?, ?, ?, 1, ?, ?, ?, ?, ?, ?);

-- name: workflow_execution_insert
INSERT INTO executions (id, project_id, workflow_id, status, prompt, source, timeout_ms, created_at, base_execution_id)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?);

-- name: workflow_step_insert
INSERT INTO agent_executions (workflow_id, agent, iteration, attempt, execution_id, status, step, created_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?);

-- name: job_insert_at
-- apalis-mysql's jobs table; runs no earlier than `delay` seconds from now.
INSERT INTO jobs (job, id, job_type, status, attempts, max_attempts, run_at, priority, idempotency_key)
VALUES (?, ?, ?, 'Pending', 0, ?, TIMESTAMPADD(SECOND, ?, CURRENT_TIMESTAMP), 0, NULL);

-- name: workflow_event_max_seq
SELECT MAX(seq) FROM workflow_events WHERE workflow_id = ?;

-- name: workflow_event_insert
INSERT INTO workflow_events (workflow_id, seq, at, kind, data) VALUES (?, ?, ?, ?, ?);

-- name: workflow_events
SELECT seq, at, kind, data FROM workflow_events WHERE workflow_id = ? AND seq > ? ORDER BY seq;

-- name: workflow_by_id
SELECT * FROM workflows WHERE id = ?;

-- name: workflow_steps
SELECT * FROM agent_executions WHERE workflow_id = ? ORDER BY step;

-- name: workflow_step
SELECT * FROM agent_executions WHERE workflow_id = ? AND step = ?;

-- name: workflow_step_set_status
UPDATE agent_executions SET status = ? WHERE workflow_id = ? AND step = ? AND routed = 0;

-- name: workflow_touch
UPDATE workflows SET updated_at = ? WHERE id = ?;

-- name: workflow_mark_running
UPDATE workflows
SET status = CASE WHEN status IN ('queued', 'running') THEN 'running' ELSE status END,
    current_agent = ?, iteration = ?, steps_run = steps_run + 1, updated_at = ?
WHERE id = ?;

-- name: workflow_step_finish
UPDATE agent_executions SET status = ?, cost_usd = ?, output = ?, finished_at = ?, routed = 1
WHERE workflow_id = ? AND step = ? AND routed = 0;

-- name: workflow_notification_insert
INSERT IGNORE INTO notifications (project_id, kind, title, body, dedup_key, created_at)
VALUES (?, ?, ?, ?, ?, ?);

-- name: workflow_after_step
UPDATE workflows
SET status = ?, error = ?, current_agent = COALESCE(?, current_agent), context = ?,
    cost_usd = cost_usd + ?, consecutive_failures = ?, finished_at = ?, updated_at = ?
WHERE id = ?;

-- name: workflow_set_status
UPDATE workflows SET status = ?, error = COALESCE(?, error), finished_at = ?, updated_at = ? WHERE id = ?;
