-- What a workflow's safety.validation gate found after a step
-- (src/workflows/validation.rs): a JSON report, NULL when no gate applied.
ALTER TABLE executions ADD COLUMN validation TEXT;

-- A workflow step starts from the workspace its predecessor left
-- (src/runner/changes.rs): the execution whose packed changes it applies.
ALTER TABLE executions ADD COLUMN base_execution_id VARCHAR(36);

-- The packed workspace changes of a step that ended cleanly, written with
-- the execution's end, read by the next step.
CREATE TABLE execution_changes (
    execution_id VARCHAR(36) PRIMARY KEY REFERENCES executions(id),
    packed LONGBLOB NOT NULL,
    size_bytes BIGINT NOT NULL,
    created_at BIGINT NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;
