-- A project answers GitHub for one repository (`owner/name`), with its
-- trigger settings (JSON of src/github/triggers.rs TriggerConfig; NULL:
-- the defaults).
ALTER TABLE projects ADD COLUMN repository TEXT;
ALTER TABLE projects ADD COLUMN github_config TEXT;
CREATE INDEX idx_projects_repository ON projects (repository);

-- What a GitHub delivery started, and where it answers (src/jobs/github_event.rs
-- writes it with the run; src/jobs/github_answer.rs keeps the tracking
-- comment up to date until the run ends). One row per delivery: a job run
-- twice finds it and starts nothing again.
CREATE TABLE github_runs (
    delivery_id TEXT PRIMARY KEY,
    project_id BIGINT NOT NULL,
    repository TEXT NOT NULL,
    number BIGINT NOT NULL,
    is_pull_request INTEGER NOT NULL,
    installation_id BIGINT,
    execution_id TEXT,
    workflow_id TEXT,
    tracking_comment_id BIGINT,
    answered TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX idx_github_runs_thread ON github_runs (repository, number);
