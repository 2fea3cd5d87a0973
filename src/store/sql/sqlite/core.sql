-- The store's queries for SQLite. Placeholders: `?`. Times: epoch ms.

-- name: ping
SELECT 1;

-- name: project_insert
INSERT INTO projects (name, path, description, container_yaml, workflow_yaml, created_at, updated_at, repository, github_config)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?);

-- name: project_by_id
SELECT * FROM projects WHERE id = ?;

-- name: project_by_name
SELECT * FROM projects WHERE name = ?;

-- name: project_list
SELECT * FROM projects ORDER BY id;

-- name: api_key_insert
INSERT INTO api_keys (name, key_hash, key_prefix, permissions, expires_at, created_at)
VALUES (?, ?, ?, ?, ?, ?);

-- name: api_key_by_hash
SELECT * FROM api_keys WHERE key_hash = ?;

-- name: api_key_touch
UPDATE api_keys SET last_used_at = ?, use_count = use_count + 1 WHERE id = ?;

-- name: api_key_count
SELECT COUNT(*) FROM api_keys;

-- name: execution_insert
INSERT INTO executions (id, project_id, workflow_id, status, prompt, source, idempotency_key, api_key_id, created_at, resume_from)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?);


-- name: job_insert
-- apalis-sqlite's Jobs table; run_at in epoch seconds.
INSERT INTO Jobs (job, id, job_type, status, attempts, max_attempts, run_at, priority, metadata, idempotency_key)
VALUES (?, ?, ?, 'Pending', 0, ?, strftime('%s', 'now'), 0, '{}', ?);

-- name: execution_by_id
SELECT * FROM executions WHERE id = ?;

-- name: execution_by_idempotency_key
SELECT * FROM executions WHERE project_id = ? AND idempotency_key = ?;

-- name: execution_list
SELECT * FROM executions ORDER BY created_at DESC, id DESC LIMIT ?;

-- name: execution_start
UPDATE executions
SET status = 'running', attempts = attempts + 1, worker_id = ?, started_at = ?
WHERE id = ? AND status IN ('queued', 'running');

-- name: execution_finish
UPDATE executions
SET status = ?, result = ?, error = ?, cost_usd = ?, cost_estimated = ?, num_turns = ?,
    session_id = ?, exit_code = ?, duration_ms = ?, validation = ?, finished_at = ?
WHERE id = ? AND attempts = ? AND status = 'running';

-- name: execution_cancel_queued
UPDATE executions
SET status = 'cancelled', cancel_requested = 1, error = 'cancelled before it started', finished_at = ?
WHERE id = ? AND status = 'queued';

-- name: execution_request_cancel
UPDATE executions SET cancel_requested = 1 WHERE id = ? AND status = 'running';

-- name: execution_cancel_requested
SELECT cancel_requested FROM executions WHERE id = ?;

-- name: execution_counts
SELECT status, COUNT(*) FROM executions GROUP BY status;

-- name: log_max_seq
SELECT MAX(seq) FROM logs WHERE execution_id = ?;

-- name: log_insert
INSERT INTO logs (execution_id, attempt, seq, at, kind, text)
SELECT ?, ?, ?, ?, ?, ? FROM executions WHERE id = ? AND attempts = ? AND status = 'running';

-- name: log_list
SELECT seq, at, kind, text FROM logs WHERE execution_id = ? AND seq > ? ORDER BY seq LIMIT ?;

-- name: queue_counts
SELECT job_type, status, COUNT(*) FROM Jobs GROUP BY job_type, status;

-- name: job_reenqueue_orphaned
-- Claimed jobs whose worker stopped heartbeating, or whose worker row is gone.
UPDATE Jobs
SET status = 'Pending', done_at = NULL, lock_by = NULL, lock_at = NULL, attempts = attempts + 1,
    last_result = '{"Err": "Re-enqueued: its worker stopped heartbeating."}'
WHERE status IN ('Running', 'Queued')
  AND job_type = ?2
  AND (lock_by IS NULL
       OR lock_by NOT IN (SELECT id FROM Workers WHERE strftime('%s', 'now') - last_seen < ?1));

-- name: job_orphans_count
-- The reaper's cheap look (no write lock) before it updates anything.
SELECT COUNT(*) FROM Jobs
WHERE status IN ('Running', 'Queued')
  AND job_type = ?2
  AND (lock_by IS NULL
       OR lock_by NOT IN (SELECT id FROM Workers WHERE strftime('%s', 'now') - last_seen < ?1));

-- name: audit_insert
INSERT INTO audit_log (at, actor, action, subject, detail) VALUES (?, ?, ?, ?, ?);

-- name: execution_changes_insert
INSERT INTO execution_changes (execution_id, packed, size_bytes, created_at) VALUES (?, ?, ?, ?);

-- name: execution_changes_get
SELECT packed FROM execution_changes WHERE execution_id = ?;

-- name: execution_changes_exists
SELECT COUNT(*) AS n FROM execution_changes WHERE execution_id = ?;
