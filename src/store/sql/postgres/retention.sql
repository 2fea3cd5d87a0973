-- Retention (src/jobs/retention.rs): each statement deletes one bounded
-- batch (at most the second parameter's rows) of what finished before the
-- cutoff (the first). The inner derived table lets MariaDB delete from the
-- table it selects from, with a LIMIT.

-- name: retention_logs
DELETE FROM logs WHERE id IN (SELECT id FROM (
    SELECT l.id FROM logs l JOIN executions e ON e.id = l.execution_id
    WHERE e.finished_at < $1 LIMIT $2) batch);

-- name: retention_workflow_events
DELETE FROM workflow_events WHERE id IN (SELECT id FROM (
    SELECT v.id FROM workflow_events v JOIN workflows w ON w.id = v.workflow_id
    WHERE w.finished_at < $1 LIMIT $2) batch);

-- name: retention_packs
-- A step's pack is its successor's start: kept while its workflow runs.
DELETE FROM execution_changes WHERE execution_id IN (SELECT execution_id FROM (
    SELECT c.execution_id FROM execution_changes c
    JOIN executions e ON e.id = c.execution_id
    LEFT JOIN workflows w ON w.id = e.workflow_id
    WHERE e.finished_at < $1 AND (e.workflow_id IS NULL OR w.finished_at IS NOT NULL)
    LIMIT $2) batch);

-- name: retention_jobs
-- Done apalis job rows; the cutoff in epoch seconds.
DELETE FROM apalis.jobs WHERE id IN (SELECT id FROM (
    SELECT id FROM apalis.jobs WHERE status = 'Done' AND done_at < to_timestamp($1::double precision) LIMIT $2) batch);

-- name: job_insert_once
-- A job due at epoch second (5th parameter), unless the queue already has
-- one with this idempotency key (then nothing).
INSERT INTO apalis.jobs (job, id, job_type, status, attempts, max_attempts, run_at, priority, idempotency_key)
VALUES ($1, $2, $3, 'Pending', 0, $4, to_timestamp($5::double precision), 0, $6)
ON CONFLICT DO NOTHING;
