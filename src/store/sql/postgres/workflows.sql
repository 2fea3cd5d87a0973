-- Workflow runs, steps and events (src/store/workflows.rs). PostgreSQL.

-- name: workflow_insert
INSERT INTO workflows (id, project_id, status, current_agent, iteration, context, source, definition, created_at, updated_at, started_at)
VALUES ($1, $2, $3, $4, 1, $5, $6, $7, $8, $9, $10);

-- name: workflow_execution_insert
INSERT INTO executions (id, project_id, workflow_id, status, prompt, source, timeout_ms, created_at, base_execution_id)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9);

-- name: workflow_step_insert
INSERT INTO agent_executions (workflow_id, agent, iteration, attempt, execution_id, status, step, created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8);

-- name: job_insert_at
-- apalis-postgres's apalis.jobs table; runs no earlier than `delay` seconds from now.
INSERT INTO apalis.jobs (job, id, job_type, status, attempts, max_attempts, run_at, priority, idempotency_key)
VALUES ($1, $2, $3, 'Pending', 0, $4, now() + make_interval(secs => $5), 0, NULL);

-- name: workflow_event_max_seq
SELECT MAX(seq) FROM workflow_events WHERE workflow_id = $1;

-- name: workflow_event_insert
INSERT INTO workflow_events (workflow_id, seq, at, kind, data) VALUES ($1, $2, $3, $4, $5);

-- name: workflow_events
SELECT seq, at, kind, data FROM workflow_events WHERE workflow_id = $1 AND seq > $2 ORDER BY seq;

-- name: workflow_by_id
SELECT * FROM workflows WHERE id = $1;

-- name: workflow_steps
SELECT * FROM agent_executions WHERE workflow_id = $1 ORDER BY step;

-- name: workflow_step
SELECT * FROM agent_executions WHERE workflow_id = $1 AND step = $2;

-- name: workflow_step_set_status
UPDATE agent_executions SET status = $1 WHERE workflow_id = $2 AND step = $3 AND routed = 0;

-- name: workflow_touch
UPDATE workflows SET updated_at = $1 WHERE id = $2;

-- name: workflow_mark_running
UPDATE workflows
SET status = CASE WHEN status IN ('queued', 'running') THEN 'running' ELSE status END,
    current_agent = $1, iteration = $2, steps_run = steps_run + 1, updated_at = $3
WHERE id = $4;

-- name: workflow_step_finish
UPDATE agent_executions SET status = $1, cost_usd = $2, output = $3, finished_at = $4, routed = 1
WHERE workflow_id = $5 AND step = $6 AND routed = 0;

-- name: workflow_notification_insert
INSERT INTO notifications (project_id, kind, title, body, dedup_key, created_at)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (dedup_key) DO NOTHING;

-- name: workflow_after_step
UPDATE workflows
SET status = $1, error = $2, current_agent = COALESCE($3, current_agent), context = $4,
    cost_usd = cost_usd + $5, consecutive_failures = $6, finished_at = $7, updated_at = $8
WHERE id = $9;

-- name: workflow_set_status
UPDATE workflows SET status = $1, error = COALESCE($2, error), finished_at = $3, updated_at = $4 WHERE id = $5;
