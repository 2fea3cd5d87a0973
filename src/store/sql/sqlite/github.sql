-- GitHub deliveries (src/store/github.rs; migrations 0040+).

-- name: github_delivery_insert
-- A redelivery (same delivery id) violates the primary key: the caller
-- rolls back and answers that nothing was done.
INSERT INTO github_deliveries
    (delivery_id, event, action, repository, sender, installation_id, payload, status, outcome, received_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?);

-- name: github_delivery_by_id
SELECT * FROM github_deliveries WHERE delivery_id = ?;

-- name: github_delivery_finish
-- Records what the inbound-events job made of a queued delivery; a
-- delivery already finished keeps its first outcome.
UPDATE github_deliveries SET status = ?, outcome = ?, processed_at = ?
WHERE delivery_id = ? AND status = 'queued';

-- name: github_delivery_list
SELECT * FROM github_deliveries ORDER BY received_at DESC, delivery_id DESC LIMIT ?;

-- name: project_by_repository
-- The project that answers for a repository: the oldest, when several name it.
SELECT * FROM projects WHERE repository = ? ORDER BY id LIMIT 1;

-- name: github_run_insert
INSERT INTO github_runs
    (delivery_id, project_id, repository, number, is_pull_request, installation_id,
     execution_id, workflow_id, created_at, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?);

-- name: github_run_by_delivery
SELECT * FROM github_runs WHERE delivery_id = ?;

-- name: github_run_set_tracking
-- The tracking comment is created once: a second writer keeps the first's.
UPDATE github_runs SET tracking_comment_id = ?, updated_at = ?
WHERE delivery_id = ? AND tracking_comment_id IS NULL;

-- name: github_run_set_answered
UPDATE github_runs SET answered = ?, updated_at = ? WHERE delivery_id = ?;

-- name: github_runs_active_in_thread
-- Executions started from a thread that have not ended.
SELECT r.execution_id AS execution_id
FROM github_runs r JOIN executions e ON e.id = r.execution_id
WHERE r.repository = ? AND r.number = ? AND e.status IN ('queued', 'running');
