-- The store's queries for PostgreSQL. Placeholders: `$n`. Times: epoch ms.

-- name: ping
SELECT 1;

-- name: project_insert
INSERT INTO projects (name, path, description, container_yaml, workflow_yaml, created_at, updated_at, repository, github_config)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9);

-- name: project_by_id
SELECT * FROM projects WHERE id = $1;

-- name: project_by_name
SELECT * FROM projects WHERE name = $1;

-- name: project_list
SELECT * FROM projects ORDER BY id;

-- name: api_key_insert
INSERT INTO api_keys (name, key_hash, key_prefix, permissions, expires_at, created_at)
VALUES ($1, $2, $3, $4, $5, $6);

-- name: api_key_by_hash
SELECT * FROM api_keys WHERE key_hash = $1;

-- name: api_key_touch
UPDATE api_keys SET last_used_at = $1, use_count = use_count + 1 WHERE id = $2;

-- name: api_key_count
SELECT COUNT(*) FROM api_keys;

-- name: execution_insert
INSERT INTO executions (id, project_id, workflow_id, status, prompt, source, idempotency_key, api_key_id, created_at, resume_from)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10);


-- name: job_insert
-- apalis-postgres's apalis.jobs table.
INSERT INTO apalis.jobs (job, id, job_type, status, attempts, max_attempts, run_at, priority, idempotency_key)
VALUES ($1, $2, $3, 'Pending', 0, $4, now(), 0, $5);

-- name: execution_by_id
SELECT * FROM executions WHERE id = $1;

-- name: execution_by_idempotency_key
SELECT * FROM executions WHERE project_id = $1 AND idempotency_key = $2;

-- name: execution_list
SELECT * FROM executions ORDER BY created_at DESC, id DESC LIMIT $1;

-- name: execution_start
UPDATE executions
SET status = 'running', attempts = attempts + 1, worker_id = $1, started_at = $2
WHERE id = $3 AND status IN ('queued', 'running');

-- name: execution_finish
UPDATE executions
SET status = $1, result = $2, error = $3, cost_usd = $4, cost_estimated = $5, num_turns = $6,
    session_id = $7, exit_code = $8, duration_ms = $9, validation = $10, finished_at = $11
WHERE id = $12 AND attempts = $13 AND status = 'running';

-- name: execution_cancel_queued
UPDATE executions
SET status = 'cancelled', cancel_requested = 1, error = 'cancelled before it started', finished_at = $1
WHERE id = $2 AND status = 'queued';

-- name: execution_request_cancel
UPDATE executions SET cancel_requested = 1 WHERE id = $1 AND status = 'running';

-- name: execution_cancel_requested
SELECT cancel_requested FROM executions WHERE id = $1;

-- name: execution_counts
SELECT status, COUNT(*) FROM executions GROUP BY status;

-- name: log_max_seq
SELECT MAX(seq) FROM logs WHERE execution_id = $1;

-- name: log_insert
INSERT INTO logs (execution_id, attempt, seq, at, kind, text)
SELECT $1, $2, $3, $4, $5, $6 FROM executions WHERE id = $1 AND attempts = $2 AND status = 'running';

-- name: log_list
SELECT seq, at, kind, text FROM logs WHERE execution_id = $1 AND seq > $2 ORDER BY seq LIMIT $3;

-- name: queue_counts
SELECT job_type, status, COUNT(*) FROM apalis.jobs GROUP BY job_type, status;

-- name: job_reenqueue_orphaned
-- Claimed jobs whose worker stopped heartbeating, or whose worker row is gone.
UPDATE apalis.jobs
SET status = 'Pending', done_at = NULL, lock_by = NULL, lock_at = NULL, attempts = attempts + 1,
    run_at = now(),  -- due now, so src/queue/pg_wake.rs notifies the listeners
    last_result = '{"Err": "Re-enqueued: its worker stopped heartbeating."}'
WHERE id IN (
    SELECT j.id FROM apalis.jobs j
    WHERE j.status IN ('Running', 'Queued')
      AND j.job_type = $2
      AND NOT EXISTS (
          SELECT 1 FROM apalis.workers w
          WHERE w.id = j.lock_by AND w.last_seen > now() - make_interval(secs => $1)
      )
    FOR UPDATE SKIP LOCKED
);

-- name: job_orphans_count
-- The reaper's cheap look (no row locks) before it updates anything.
SELECT COUNT(*) FROM apalis.jobs j
WHERE j.status IN ('Running', 'Queued')
  AND j.job_type = $2
  AND NOT EXISTS (
      SELECT 1 FROM apalis.workers w
      WHERE w.id = j.lock_by AND w.last_seen > now() - make_interval(secs => $1)
  );

-- name: audit_insert
INSERT INTO audit_log (at, actor, action, subject, detail) VALUES ($1, $2, $3, $4, $5);

-- name: execution_changes_insert
INSERT INTO execution_changes (execution_id, packed, size_bytes, created_at) VALUES ($1, $2, $3, $4);

-- name: execution_changes_get
SELECT packed FROM execution_changes WHERE execution_id = $1;

-- name: execution_changes_exists
SELECT COUNT(*) AS n FROM execution_changes WHERE execution_id = $1;
