-- Worker liveness (src/store/workers.rs), from apalis's workers table.
-- MySQL / MariaDB.

-- name: worker_live_ids
-- Workers whose last heartbeat is younger than ? seconds.
SELECT id FROM workers WHERE last_seen > TIMESTAMPADD(SECOND, -?, CURRENT_TIMESTAMP);
