-- Worker liveness (src/store/workers.rs), from apalis's workers table.
-- PostgreSQL.

-- name: worker_live_ids
-- Workers whose last heartbeat is younger than $1 seconds.
SELECT id FROM apalis.workers WHERE last_seen > now() - make_interval(secs => $1);
