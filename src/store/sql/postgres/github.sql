-- GitHub deliveries (src/store/github.rs; migrations 0040+).

-- name: github_delivery_insert
-- A redelivery (same delivery id) violates the primary key: the caller
-- rolls back and answers that nothing was done.
INSERT INTO github_deliveries
    (delivery_id, event, action, repository, sender, installation_id, payload, status, outcome, received_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10);

-- name: github_delivery_by_id
SELECT * FROM github_deliveries WHERE delivery_id = $1;

-- name: github_delivery_finish
-- Records what the inbound-events job made of a queued delivery; a
-- delivery already finished keeps its first outcome.
UPDATE github_deliveries SET status = $1, outcome = $2, processed_at = $3
WHERE delivery_id = $4 AND status = 'queued';

-- name: github_delivery_list
SELECT * FROM github_deliveries ORDER BY received_at DESC, delivery_id DESC LIMIT $1;
