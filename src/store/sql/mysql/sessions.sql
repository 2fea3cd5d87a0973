-- Claude Code sessions kept for a later run to resume (src/runner/session.rs).

-- name: execution_session_insert
INSERT INTO execution_sessions (execution_id, session_id, transcript, size_bytes, created_at) VALUES (?, ?, ?, ?, ?);

-- name: execution_session_get
SELECT session_id, transcript FROM execution_sessions WHERE execution_id = ?;

-- name: execution_session_exists
SELECT COUNT(*) AS n FROM execution_sessions WHERE execution_id = ?;
