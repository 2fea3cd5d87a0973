//! Claude Code sessions kept across runs, so a later execution can
//! `--resume` the conversation of an earlier one on any worker.
//!
//! The CLI keeps a session's transcript (one JSON object a line) at
//! `$CLAUDE_CONFIG_DIR/projects/<slug of the working directory>/<session id>.jsonl`,
//! inside the run's own `HOME`, which the runner throws away with the run.
//! After the agent exited by itself the runner [`collect`]s that file,
//! gzip-compressed and bounded ([`MAX_SESSION_BYTES`]); the execution job
//! stores it with the execution's end (table `execution_sessions`). A run
//! that resumes one gets it [`place`]d under its own fresh `HOME`, at the
//! slug of its own working directory, before the agent starts with
//! `--resume <session id>`; the resumed run keeps the same session id, and
//! its transcript (the whole conversation so far) is collected again.
//!
//! The transcript is the agent's own output: it is only ever handed back to
//! an agent of the same project, never parsed by ccs.

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};

/// Largest compressed transcript kept; a longer session cannot be resumed
/// (the run says so in its log).
pub const MAX_SESSION_BYTES: usize = 8 << 20;

/// Largest transcript accepted when unpacking one (decompressed).
const MAX_TRANSCRIPT_BYTES: u64 = 256 << 20;

/// A session to continue, or one a run left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The CLI's session id (a UUID ccs chose with `--session-id`).
    pub session_id: String,
    /// The transcript, gzip-compressed.
    pub transcript_gz: Vec<u8>,
}

/// The CLI's directory name for a working directory: every character that
/// is not an ASCII letter or digit becomes `-` (`/tmp/x.y` → `-tmp-x-y`).
pub fn project_slug(cwd: &str) -> String {
    cwd.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect()
}

/// A session id ccs can use in a path: a UUID's characters only.
fn valid_id(session_id: &str) -> bool {
    !session_id.is_empty()
        && session_id.len() <= 64
        && session_id
            .chars()
            .all(|c| c.is_ascii_hexdigit() || c == '-')
}

/// The transcript of `session_id` under `config_dir` (the CLI's
/// `CLAUDE_CONFIG_DIR`), compressed; `Ok(None)` when the CLI wrote none.
/// `Err` says why it cannot be kept (too large, unreadable).
pub async fn collect(config_dir: &Path, session_id: &str) -> Result<Option<Session>, String> {
    if !valid_id(session_id) {
        return Ok(None);
    }
    let projects = config_dir.join("projects");
    let file_name = format!("{session_id}.jsonl");
    let session_id = session_id.to_owned();
    tokio::task::spawn_blocking(move || {
        // Real directories and a regular file only: never a link the agent
        // planted to make the worker read something else.
        let is_dir = |p: &Path| p.symlink_metadata().is_ok_and(|m| m.file_type().is_dir());
        if !is_dir(&projects) {
            return Ok(None);
        }
        let Ok(dirs) = std::fs::read_dir(&projects) else {
            return Ok(None);
        };
        let found: Option<PathBuf> = dirs
            .flatten()
            .filter(|d| d.file_type().is_ok_and(|t| t.is_dir()))
            .map(|d| d.path().join(&file_name))
            .find(|p| p.symlink_metadata().is_ok_and(|m| m.file_type().is_file()));
        let Some(path) = found else {
            return Ok(None);
        };
        use std::os::unix::fs::OpenOptionsExt as _;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
            .map_err(|e| format!("cannot read it: {e}"))?;
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        let mut limited = file.take(MAX_TRANSCRIPT_BYTES + 1);
        let copied = std::io::copy(&mut limited, &mut encoder)
            .map_err(|e| format!("cannot read it: {e}"))?;
        if copied > MAX_TRANSCRIPT_BYTES {
            return Err(format!(
                "its transcript is over {} MiB",
                MAX_TRANSCRIPT_BYTES >> 20
            ));
        }
        let transcript_gz = encoder
            .finish()
            .map_err(|e| format!("cannot compress it: {e}"))?;
        if transcript_gz.len() > MAX_SESSION_BYTES {
            return Err(format!(
                "its transcript is {} KiB compressed; the limit is {} KiB",
                transcript_gz.len() / 1024,
                MAX_SESSION_BYTES / 1024
            ));
        }
        Ok(Some(Session {
            session_id,
            transcript_gz,
        }))
    })
    .await
    .map_err(|e| format!("cannot read it: {e}"))?
}

/// Puts `session` where the CLI looks for it when run in `cwd` (the
/// working directory as the agent sees it) with `config_dir` as its
/// `CLAUDE_CONFIG_DIR` (as the runner sees it). Returns the file written.
pub async fn place(config_dir: &Path, cwd: &str, session: &Session) -> Result<PathBuf, String> {
    if !valid_id(&session.session_id) {
        return Err(format!("invalid session id {:?}", session.session_id));
    }
    let dir = config_dir.join("projects").join(project_slug(cwd));
    let path = dir.join(format!("{}.jsonl", session.session_id));
    let gz = session.transcript_gz.clone();
    let target = path.clone();
    tokio::task::spawn_blocking(move || {
        std::fs::create_dir_all(&dir)?;
        let mut decoder = flate2::read::GzDecoder::new(gz.as_slice()).take(MAX_TRANSCRIPT_BYTES);
        let mut file = std::fs::File::create(&target)?;
        std::io::copy(&mut decoder, &mut file)?;
        file.flush()
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| format!("cannot write the session: {e}"))?;
    Ok(path)
}

/// The session of a run that ended by itself, from its `config_dir`;
/// `None` (with a note in the run's log when it could not be kept) when
/// there is none to keep.
pub async fn keep(
    config_dir: &Path,
    agent: &super::AgentOptions,
    lines: &tokio::sync::mpsc::Sender<super::OutputLine>,
) -> Option<Session> {
    let id = agent.resume.as_deref().or(agent.session_id.as_deref())?;
    match collect(config_dir, id).await {
        Ok(session) => session,
        Err(why) => {
            let _ = lines
                .send(super::OutputLine {
                    stream: super::Stream::Note,
                    text: format!("the agent's session is not kept for resuming: {why}"),
                })
                .await;
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_as_the_cli_makes_them() {
        assert_eq!(project_slug("/tmp/realcli-dl"), "-tmp-realcli-dl");
        assert_eq!(
            project_slug("/work/runs/01J9-1/workspace"),
            "-work-runs-01J9-1-workspace"
        );
        assert_eq!(project_slug("/a.b_c"), "-a-b-c");
    }

    #[tokio::test]
    async fn a_session_round_trips_into_another_working_directory() {
        let dir = tempfile::tempdir().unwrap();
        let first = dir.path().join("first/.claude");
        let id = "11111111-2222-4333-8444-555555555555";
        let original = first.join("projects/-old-workspace");
        std::fs::create_dir_all(&original).unwrap();
        let transcript = "{\"type\":\"user\"}\n{\"type\":\"assistant\"}\n".repeat(1000);
        std::fs::write(original.join(format!("{id}.jsonl")), &transcript).unwrap();

        let session = collect(&first, id).await.unwrap().expect("a session");
        assert!(session.transcript_gz.len() < transcript.len() / 10);
        let second = dir.path().join("second/.claude");
        let path = place(&second, "/new/workspace", &session).await.unwrap();
        assert_eq!(
            path,
            second.join(format!("projects/-new-workspace/{id}.jsonl"))
        );
        assert_eq!(std::fs::read_to_string(path).unwrap(), transcript);
        // Nothing for another id, or none at all.
        assert_eq!(
            collect(&first, "99999999-2222-4333-8444-555555555555")
                .await
                .unwrap(),
            None
        );
        assert_eq!(collect(&dir.path().join("none"), id).await.unwrap(), None);
        // Ids that could name another path are not used.
        assert_eq!(collect(&first, "../../etc/passwd").await.unwrap(), None);
        let bad = Session {
            session_id: "../x".into(),
            transcript_gz: session.transcript_gz.clone(),
        };
        assert!(place(&second, "/w", &bad).await.is_err());
    }

    #[tokio::test]
    async fn planted_links_are_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join(".claude");
        let id = "11111111-2222-4333-8444-555555555555";
        std::fs::create_dir_all(config.join("projects/p")).unwrap();
        std::fs::write(dir.path().join("secret"), "worker secret").unwrap();
        std::os::unix::fs::symlink(
            dir.path().join("secret"),
            config.join(format!("projects/p/{id}.jsonl")),
        )
        .unwrap();
        assert_eq!(collect(&config, id).await.unwrap(), None);
        // Nor a linked directory.
        std::fs::remove_dir_all(config.join("projects/p")).unwrap();
        std::fs::create_dir_all(dir.path().join("elsewhere")).unwrap();
        std::fs::write(dir.path().join(format!("elsewhere/{id}.jsonl")), "x").unwrap();
        std::os::unix::fs::symlink(dir.path().join("elsewhere"), config.join("projects/p"))
            .unwrap();
        assert_eq!(collect(&config, id).await.unwrap(), None);
    }
}
