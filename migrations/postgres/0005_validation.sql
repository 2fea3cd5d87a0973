-- What a workflow's safety.validation gate found after a step
-- (src/workflows/validation.rs): a JSON report, NULL when no gate applied.
ALTER TABLE executions ADD COLUMN validation TEXT;
