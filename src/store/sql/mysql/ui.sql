-- The dashboard (src/store/ui.rs, src/ui/): sessions, sign-in links, and the
-- reads behind its pages. MySQL / MariaDB.

-- name: ui_session_insert
INSERT INTO ui_sessions (token_hash, api_key_id, created_at, expires_at) VALUES (?, ?, ?, ?);

-- name: ui_session_key
-- The API key a live session acts as.
SELECT k.* FROM ui_sessions s JOIN api_keys k ON k.id = s.api_key_id
WHERE s.token_hash = ? AND s.expires_at > ?;

-- name: ui_session_delete
DELETE FROM ui_sessions WHERE token_hash = ?;

-- name: ui_session_purge
DELETE FROM ui_sessions WHERE expires_at <= ?;

-- name: ui_link_insert
INSERT INTO ui_sign_in_links (token_hash, api_key_id, created_at, expires_at) VALUES (?, ?, ?, ?);

-- name: ui_link_use
-- Marks a link used; changes one row only the first time, before expiry.
UPDATE ui_sign_in_links SET used_at = ? WHERE token_hash = ? AND used_at IS NULL AND expires_at > ?;

-- name: ui_link_key
SELECT api_key_id FROM ui_sign_in_links WHERE token_hash = ?;

-- name: ui_api_key_by_id
SELECT * FROM api_keys WHERE id = ?;

-- name: ui_first_admin_key
-- The oldest live admin key (what `ccs up`'s sign-in link acts as).
SELECT * FROM api_keys
WHERE revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?)
  AND CONCAT(',', permissions, ',') LIKE '%,admin,%'
ORDER BY id LIMIT 1;

-- name: ui_execution_page
-- One page of executions, newest first, after the cursor (created_at, id).
-- Each filter is skipped when its parameter is NULL.
SELECT * FROM executions
WHERE (? IS NULL OR status = ?)
  AND (? IS NULL OR project_id = ?)
  AND (? IS NULL OR source = ?)
  AND created_at >= ? AND created_at < ?
  AND (? IS NULL OR prompt LIKE ? ESCAPE '!')
  AND (created_at < ? OR (created_at = ? AND id < ?))
ORDER BY created_at DESC, id DESC
LIMIT ?;

-- name: ui_execution_page_counts
-- Executions per status under the same filters (status aside).
SELECT status, COUNT(*) AS n FROM executions
WHERE (? IS NULL OR project_id = ?)
  AND (? IS NULL OR source = ?)
  AND created_at >= ? AND created_at < ?
  AND (? IS NULL OR prompt LIKE ? ESCAPE '!')
GROUP BY status;

-- name: ui_execution_sources
SELECT DISTINCT source FROM executions ORDER BY source LIMIT 50;

-- name: ui_finished_per_minute
SELECT finished_at DIV 60000 AS minute, COUNT(*) AS n FROM executions
WHERE finished_at >= ? GROUP BY finished_at DIV 60000;

-- name: ui_start_latency_per_minute
-- Mean and worst enqueue→start time of executions started per minute.
SELECT started_at DIV 60000 AS minute,
       CAST(AVG(started_at - created_at) AS SIGNED) AS mean_ms,
       MAX(started_at - created_at) AS max_ms
FROM executions WHERE started_at >= ? GROUP BY started_at DIV 60000;

-- name: ui_last_failures
SELECT * FROM executions
WHERE finished_at IS NOT NULL AND status IN ('failed', 'timed_out', 'budget_exceeded')
ORDER BY finished_at DESC LIMIT ?;

-- name: ui_running
SELECT * FROM executions WHERE status = 'running' ORDER BY started_at LIMIT 200;

-- name: ui_workers
SELECT id, worker_type,
       CAST(UNIX_TIMESTAMP(last_seen) * 1000 AS SIGNED) AS last_seen_ms,
       CAST(UNIX_TIMESTAMP(started_at) * 1000 AS SIGNED) AS started_ms
FROM workers ORDER BY last_seen DESC LIMIT 200;

-- name: ui_jobs
-- One queue's jobs in one apalis state, newest first.
SELECT id, job_type, status, attempts, max_attempts,
       CAST(UNIX_TIMESTAMP(run_at) * 1000 AS SIGNED) AS run_at_ms,
       last_result, lock_by, CAST(UNIX_TIMESTAMP(done_at) * 1000 AS SIGNED) AS done_at_ms, job
FROM jobs WHERE job_type = ? AND status = ?
ORDER BY run_at DESC, id DESC LIMIT ?;

-- name: ui_job_retry
-- A failed or killed job runs again, now, with its attempts reset.
UPDATE jobs SET status = 'Pending', attempts = 0, run_at = CURRENT_TIMESTAMP,
    lock_by = NULL, lock_at = NULL, done_at = NULL
WHERE id = ? AND job_type = ? AND status IN ('Failed', 'Killed');

-- name: ui_job_kill
-- A job not yet claimed will not run.
UPDATE jobs SET status = 'Killed', done_at = CURRENT_TIMESTAMP,
    last_result = '{"Err": "Killed from the dashboard."}'
WHERE id = ? AND job_type = ? AND status = 'Pending';

-- name: ui_job_delete
-- Only jobs no worker holds can be deleted.
DELETE FROM jobs WHERE id = ? AND job_type = ? AND status IN ('Pending', 'Failed', 'Killed', 'Done');

-- name: ui_workflow_list
SELECT * FROM workflows ORDER BY created_at DESC, id DESC LIMIT ?;

-- name: ui_api_keys
-- Every key, newest first (the admin page; never the secret).
SELECT * FROM api_keys ORDER BY id DESC LIMIT 500;
