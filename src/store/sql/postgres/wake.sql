-- Used by src/queue/pg_wake.rs (PostgreSQL only): notifies the listening
-- workers of every pending ccs job whose run_at passed within the last
-- $1 seconds, with the payload apalis's insert trigger sends. The
-- index on status (SIdx, apalis's) narrows it to the pending rows.
SELECT pg_notify(
    'apalis::job::insert',
    json_build_object('job_type', job_type, 'id', id, 'run_at', run_at)::text
)
FROM apalis.jobs
WHERE status = 'Pending'
  AND job_type = ANY($2)
  AND run_at < now()
  AND run_at >= now() - make_interval(secs => $1)
