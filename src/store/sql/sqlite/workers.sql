-- Worker liveness (src/store/workers.rs), from apalis's Workers table. SQLite.

-- name: worker_live_ids
-- Workers whose last heartbeat (epoch seconds) is younger than ? seconds.
SELECT id FROM Workers WHERE strftime('%s', 'now') - last_seen < ?;
