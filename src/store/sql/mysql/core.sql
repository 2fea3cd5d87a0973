-- The store's queries for MySQL 8 / MariaDB 10.6+. Placeholders: `?`. Times: epoch ms.

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
-- The `jobs` table of apalis-mysql (see migrations/mysql/0002_apalis_queue.sql).
INSERT INTO jobs (job, id, job_type, status, attempts, max_attempts, run_at, priority, idempotency_key)
VALUES (?, ?, ?, 'Pending', 0, ?, CURRENT_TIMESTAMP, 0, ?);

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
SELECT job_type, status, COUNT(*) FROM jobs GROUP BY job_type, status;

-- name: job_reenqueue_orphaned
-- Claimed jobs whose worker stopped heartbeating, or whose worker row is gone.
-- (apalis-mysql's own query computes `UNIX_TIMESTAMP() - last_seen` on a
-- TIMESTAMP column, which MySQL evaluates as a YYYYMMDDhhmmss number, so it
-- never finds a dead worker; this one compares times as times.)
UPDATE jobs j
LEFT JOIN workers w ON w.id = j.lock_by
    AND w.last_seen > TIMESTAMPADD(SECOND, -?, CURRENT_TIMESTAMP)
SET j.status = 'Pending', j.done_at = NULL, j.lock_by = NULL, j.lock_at = NULL,
    j.attempts = j.attempts + 1,
    j.last_result = '{"Err": "Re-enqueued: its worker stopped heartbeating."}'
WHERE j.status IN ('Running', 'Queued') AND j.job_type = ? AND w.id IS NULL;

-- name: job_orphans_count
-- The reaper's cheap look (a plain read takes no row locks) before it
-- updates anything: a locking scan every heartbeat deadlocked with
-- apalis-mysql's SKIP LOCKED fetch.
SELECT COUNT(*) FROM jobs j
LEFT JOIN workers w ON w.id = j.lock_by
    AND w.last_seen > TIMESTAMPADD(SECOND, -?, CURRENT_TIMESTAMP)
WHERE j.status IN ('Running', 'Queued') AND j.job_type = ? AND w.id IS NULL;

-- name: audit_insert
INSERT INTO audit_log (at, actor, action, subject, detail) VALUES (?, ?, ?, ?, ?);

-- name: execution_changes_insert
INSERT INTO execution_changes (execution_id, packed, size_bytes, created_at) VALUES (?, ?, ?, ?);

-- name: execution_changes_get
SELECT packed FROM execution_changes WHERE execution_id = ?;

-- name: execution_changes_exists
SELECT COUNT(*) AS n FROM execution_changes WHERE execution_id = ?;
