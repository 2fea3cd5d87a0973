-- apalis-mysql's `jobs` and `workers` tables, in their final shape as of
-- apalis-mysql 1.0.0-rc.8, written for MariaDB as well as MySQL 8.
--
-- Why ccs creates them instead of calling apalis-mysql's own migrations:
-- * those name the collation `utf8mb4_0900_ai_ci`, which exists only in
--   MySQL 8, so they fail on MariaDB;
-- * they declare `jobs.lock_by REFERENCES workers(id) ON DELETE CASCADE`:
--   deleting a dead worker's row would silently delete the jobs it had
--   claimed. Here there is no such foreign key; ccs's reaper
--   (src/queue/reaper.rs) hands such jobs back instead.
CREATE TABLE IF NOT EXISTS workers (
    id VARCHAR(36) NOT NULL,
    worker_type VARCHAR(200) NOT NULL,
    storage_name VARCHAR(200) NOT NULL,
    layers VARCHAR(1000) NOT NULL DEFAULT '',
    last_seen TIMESTAMP DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP,
    started_at TIMESTAMP NULL,
    PRIMARY KEY (id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

CREATE INDEX WTIdx ON workers (worker_type);
CREATE INDEX LSIdx ON workers (last_seen);

-- Column order matters: apalis-mysql maps `SELECT *` rows by position.
CREATE TABLE IF NOT EXISTS jobs (
    id VARCHAR(36) NOT NULL,
    job_type VARCHAR(200) NOT NULL,
    status VARCHAR(20) NOT NULL DEFAULT 'Pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL DEFAULT 25,
    run_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
    last_result VARCHAR(1000) DEFAULT NULL,
    lock_at TIMESTAMP NULL,
    lock_by VARCHAR(36) DEFAULT NULL,
    done_at TIMESTAMP NULL,
    priority INTEGER NOT NULL DEFAULT 0,
    job LONGBLOB NOT NULL,
    metadata JSON NULL,
    idempotency_key VARCHAR(36),
    PRIMARY KEY (id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

CREATE INDEX job_status ON jobs (status);
CREATE INDEX LIdx ON jobs (lock_by);
CREATE INDEX JRTIdx ON jobs (run_at);
CREATE INDEX idx_jobs_fetch ON jobs (job_type, status, run_at, priority, id);
CREATE UNIQUE INDEX idx_jobs_idempotency_key ON jobs (job_type, idempotency_key);
