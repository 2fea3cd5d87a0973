-- Limits and budgets for SQLite (see src/store/limits.rs). Placeholders: `?`.

-- name: project_slot_ensure
INSERT INTO project_slots (project_id, locked_at) VALUES (?, 0)
ON CONFLICT (project_id) DO NOTHING;

-- name: project_slot_lock
UPDATE project_slots SET locked_at = ? WHERE project_id = ?;

-- name: admission_execution
SELECT status, reserved_usd, reserved_day, reserved_scopes, ceiling_usd
FROM executions WHERE id = ?;

-- name: project_running_count
SELECT COUNT(*) FROM executions WHERE project_id = ? AND status = 'running' AND id <> ?;

-- name: project_recent_starts
SELECT COUNT(*), MIN(started_at) FROM executions
WHERE project_id = ? AND started_at >= ? AND id <> ?;

-- name: execution_admit
UPDATE executions
SET status = 'running', attempts = attempts + 1, worker_id = ?, started_at = ?,
    reserved_usd = ?, reserved_day = ?, reserved_scopes = ?, ceiling_usd = ?
WHERE id = ? AND status IN ('queued', 'running');

-- name: execution_refuse
UPDATE executions
SET status = 'budget_exceeded', error = ?, cost_usd = 0, finished_at = ?
WHERE id = ? AND status IN ('queued', 'running') AND reserved_usd = 0;

-- name: execution_reservation
SELECT project_id, reserved_usd, reserved_day, reserved_scopes FROM executions WHERE id = ?;

-- name: execution_release
UPDATE executions SET reserved_usd = 0 WHERE id = ?;

-- name: budget_row_ensure
INSERT INTO budget_tracking (scope, day, limit_usd, reserved_usd, spent_usd, updated_at)
VALUES (?, ?, NULL, 0, 0, ?)
ON CONFLICT (scope, day) DO NOTHING;

-- name: budget_reserve_within
-- The guard: the reservation is taken only if it fits under the limit
-- (a micro-dollar of slack absorbs floating-point noise).
UPDATE budget_tracking
SET limit_usd = ?, alert_percent = ?, reserved_usd = reserved_usd + ?, updated_at = ?
WHERE scope = ? AND day = ? AND spent_usd + reserved_usd + ? <= ? + 0.000001;

-- name: budget_reserve_unlimited
UPDATE budget_tracking
SET limit_usd = NULL, alert_percent = ?, reserved_usd = reserved_usd + ?, updated_at = ?
WHERE scope = ? AND day = ?;

-- name: budget_settle
UPDATE budget_tracking
SET reserved_usd = MAX(reserved_usd - ?, 0), spent_usd = spent_usd + ?, updated_at = ?
WHERE scope = ? AND day = ?;

-- name: budget_row
SELECT scope, day, limit_usd, reserved_usd, spent_usd, alert_percent
FROM budget_tracking WHERE scope = ? AND day = ?;

-- name: budget_rows_of_day
SELECT scope, day, limit_usd, reserved_usd, spent_usd, alert_percent
FROM budget_tracking WHERE day = ? ORDER BY scope;

-- name: budget_exhausted
SELECT scope, day, limit_usd, reserved_usd, spent_usd, alert_percent
FROM budget_tracking
WHERE day = ? AND scope IN (?, ?, ?) AND limit_usd IS NOT NULL AND spent_usd >= limit_usd
ORDER BY scope;

-- name: budget_row_set_limit
UPDATE budget_tracking SET limit_usd = ?, updated_at = ? WHERE scope = ? AND day = ?;

-- name: budget_limit_upsert
INSERT INTO budget_limits (scope, daily_limit_usd, per_execution_usd, updated_at)
VALUES (?, ?, ?, ?)
ON CONFLICT (scope) DO UPDATE SET daily_limit_usd = excluded.daily_limit_usd,
    per_execution_usd = excluded.per_execution_usd, updated_at = excluded.updated_at;

-- name: budget_limits_for
SELECT scope, daily_limit_usd, per_execution_usd FROM budget_limits WHERE scope IN (?, ?, ?);

-- name: budget_limits_all
SELECT scope, daily_limit_usd, per_execution_usd FROM budget_limits ORDER BY scope;

-- name: job_reschedule
-- Hands a claimed job back to the queue to run again `?` seconds from now,
-- without counting an attempt. Guarded by the claiming worker; apalis's own
-- ack afterwards then matches no row and changes nothing.
UPDATE Jobs
SET status = 'Pending', lock_by = NULL, lock_at = NULL, done_at = NULL,
    run_at = strftime('%s', 'now') + ?
WHERE id = ? AND lock_by = ?;

-- name: notification_insert
-- At most one notification per dedup key: a repeated alert is a no-op.
INSERT INTO notifications (project_id, kind, title, body, dedup_key, created_at)
VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (dedup_key) DO NOTHING;

-- name: notification_list
SELECT id, project_id, kind, title, body, dedup_key, read_at, created_at
FROM notifications ORDER BY id DESC LIMIT ?;
