-- Retention (src/jobs/retention.rs): each statement deletes one bounded
-- batch (at most the second parameter's rows) of what finished before the
-- cutoff (the first). The inner derived table lets MariaDB delete from the
-- table it selects from, with a LIMIT.

-- name: retention_logs
DELETE FROM logs WHERE id IN (SELECT id FROM (
    SELECT l.id FROM logs l JOIN executions e ON e.id = l.execution_id
    WHERE e.finished_at < ? LIMIT ?) batch);

-- name: retention_workflow_events
DELETE FROM workflow_events WHERE id IN (SELECT id FROM (
    SELECT v.id FROM workflow_events v JOIN workflows w ON w.id = v.workflow_id
    WHERE w.finished_at < ? LIMIT ?) batch);

-- name: retention_packs
-- A step's pack is its successor's start: kept while its workflow runs.
DELETE FROM execution_changes WHERE execution_id IN (SELECT execution_id FROM (
    SELECT c.execution_id FROM execution_changes c
    JOIN executions e ON e.id = c.execution_id
    LEFT JOIN workflows w ON w.id = e.workflow_id
    WHERE e.finished_at < ? AND (e.workflow_id IS NULL OR w.finished_at IS NOT NULL)
    LIMIT ?) batch);

-- name: retention_jobs
-- Done apalis job rows; the cutoff in epoch seconds.
DELETE FROM Jobs WHERE id IN (SELECT id FROM (
    SELECT id FROM Jobs WHERE status = 'Done' AND done_at < ? LIMIT ?) batch);

-- name: job_insert_once
-- A job due at epoch second (5th parameter), unless the queue already has
-- one with this idempotency key (then nothing).
INSERT OR IGNORE INTO Jobs (job, id, job_type, status, attempts, max_attempts, run_at, priority, metadata, idempotency_key)
VALUES (?, ?, ?, 'Pending', 0, ?, ?, 0, '{}', ?);
