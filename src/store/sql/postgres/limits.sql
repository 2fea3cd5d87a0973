-- Limits and budgets for PostgreSQL (see src/store/limits.rs). Placeholders: `$n`.

-- name: project_slot_ensure
INSERT INTO project_slots (project_id, locked_at) VALUES ($1, 0)
ON CONFLICT (project_id) DO NOTHING;

-- name: project_slot_lock
UPDATE project_slots SET locked_at = $1 WHERE project_id = $2;

-- name: admission_execution
SELECT status, reserved_usd, reserved_day, reserved_scopes, ceiling_usd
FROM executions WHERE id = $1;

-- name: project_running_count
SELECT COUNT(*) FROM executions WHERE project_id = $1 AND status = 'running' AND id <> $2;

-- name: project_recent_starts
SELECT COUNT(*), MIN(started_at) FROM executions
WHERE project_id = $1 AND started_at >= $2 AND id <> $3;

-- name: execution_admit
UPDATE executions
SET status = 'running', attempts = attempts + 1, worker_id = $1, started_at = $2,
    reserved_usd = $3, reserved_day = $4, reserved_scopes = $5, ceiling_usd = $6
WHERE id = $7 AND status IN ('queued', 'running');

-- name: execution_refuse
UPDATE executions
SET status = 'budget_exceeded', error = $1, cost_usd = 0, finished_at = $2
WHERE id = $3 AND status IN ('queued', 'running') AND reserved_usd = 0;

-- name: execution_reservation
SELECT project_id, reserved_usd, reserved_day, reserved_scopes FROM executions WHERE id = $1;

-- name: execution_release
UPDATE executions SET reserved_usd = 0 WHERE id = $1;

-- name: budget_row_ensure
INSERT INTO budget_tracking (scope, day, limit_usd, reserved_usd, spent_usd, updated_at)
VALUES ($1, $2, NULL, 0, 0, $3)
ON CONFLICT (scope, day) DO NOTHING;

-- name: budget_reserve_within
-- The guard: the reservation is taken only if it fits under the limit
-- (a micro-dollar of slack absorbs floating-point noise).
UPDATE budget_tracking
SET limit_usd = $1, alert_percent = $2, reserved_usd = reserved_usd + $3, updated_at = $4
WHERE scope = $5 AND day = $6 AND spent_usd + reserved_usd + $7 <= $8 + 0.000001;

-- name: budget_reserve_unlimited
UPDATE budget_tracking
SET limit_usd = NULL, alert_percent = $1, reserved_usd = reserved_usd + $2, updated_at = $3
WHERE scope = $4 AND day = $5;

-- name: budget_settle
UPDATE budget_tracking
SET reserved_usd = GREATEST(reserved_usd - $1, 0), spent_usd = spent_usd + $2, updated_at = $3
WHERE scope = $4 AND day = $5;

-- name: budget_row
SELECT scope, day, limit_usd, reserved_usd, spent_usd, alert_percent
FROM budget_tracking WHERE scope = $1 AND day = $2;

-- name: budget_rows_of_day
SELECT scope, day, limit_usd, reserved_usd, spent_usd, alert_percent
FROM budget_tracking WHERE day = $1 ORDER BY scope;

-- name: budget_exhausted
SELECT scope, day, limit_usd, reserved_usd, spent_usd, alert_percent
FROM budget_tracking
WHERE day = $1 AND scope IN ($2, $3, $4) AND limit_usd IS NOT NULL AND spent_usd >= limit_usd
ORDER BY scope;

-- name: budget_row_set_limit
UPDATE budget_tracking SET limit_usd = $1, updated_at = $2 WHERE scope = $3 AND day = $4;

-- name: budget_limit_upsert
INSERT INTO budget_limits (scope, daily_limit_usd, per_execution_usd, updated_at)
VALUES ($1, $2, $3, $4)
ON CONFLICT (scope) DO UPDATE SET daily_limit_usd = excluded.daily_limit_usd,
    per_execution_usd = excluded.per_execution_usd, updated_at = excluded.updated_at;

-- name: budget_limits_for
SELECT scope, daily_limit_usd, per_execution_usd FROM budget_limits WHERE scope IN ($1, $2, $3);

-- name: budget_limits_all
SELECT scope, daily_limit_usd, per_execution_usd FROM budget_limits ORDER BY scope;

-- name: job_reschedule
-- Hands a claimed job back to the queue to run again `?` seconds from now,
-- without counting an attempt. Guarded by the claiming worker; apalis's own
-- ack afterwards then matches no row and changes nothing.
UPDATE apalis.jobs
SET status = 'Pending', lock_by = NULL, lock_at = NULL, done_at = NULL,
    run_at = now() + make_interval(secs => $1)
WHERE id = $2 AND lock_by = $3;

-- name: notification_insert
-- At most one notification per dedup key: a repeated alert is a no-op.
INSERT INTO notifications (project_id, kind, title, body, dedup_key, created_at)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (dedup_key) DO NOTHING;

-- name: notification_list
SELECT id, project_id, kind, title, body, dedup_key, read_at, created_at
FROM notifications ORDER BY id DESC LIMIT $1;
