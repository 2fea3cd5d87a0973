//! The process runner: the agent as a child process of the worker.
//!
//! For each run it makes `<work_dir>/<execution>-<attempt>/` holding
//! `workspace/` (a copy of the project; the project itself is never
//! written) and `home/` (the agent's own `HOME`, so parallel runs never
//! share `~/.claude.json`). The child gets a scrubbed environment: only
//! `PATH`, `HOME`, `CLAUDE_CONFIG_DIR`, `LANG`, the variables named in
//! `pass_env` (e.g. `ANTHROPIC_API_KEY`) and the run's own env.
//!
//! The child leads a process group of its own and is killed with the whole
//! group: on `stop`, after it exits (whatever it left running), and — via
//! `PR_SET_PDEATHSIG` — when the worker itself dies, so a SIGKILLed worker
//! leaves no agent behind. The files the agent changed in its workspace are
//! listed ([`super::workspace`]), then the run directory is removed.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Instant;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::process::Command;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::checks::{self, CheckRun};
use super::lines::forward;
use super::{OutputLine, RunExit, RunSpec, Runner, RunnerError, Stream};

/// Runs the agent command as a local child process.
#[derive(Debug, Clone)]
pub struct ProcessRunner {
    /// The agent program and its leading arguments (`claude`, or the test
    /// agent's path).
    pub command: Vec<String>,
    /// Where run directories are made.
    pub work_dir: PathBuf,
    /// Names of the worker's environment variables the agent may see.
    pub pass_env: Vec<String>,
}

#[async_trait::async_trait]
impl Runner for ProcessRunner {
    fn name(&self) -> &'static str {
        "process"
    }

    async fn run(
        &self,
        spec: RunSpec,
        lines: mpsc::Sender<OutputLine>,
        stop: CancellationToken,
    ) -> Result<RunExit, RunnerError> {
        let run_dir = self
            .work_dir
            .join(format!("{}-{}", spec.execution_id, spec.attempt));
        let result = self.run_in(&run_dir, spec, lines, stop).await;
        if let Err(e) = tokio::fs::remove_dir_all(&run_dir).await
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(dir = %run_dir.display(), error = %e, "could not remove run directory");
        }
        result
    }
}

impl ProcessRunner {
    async fn run_in(
        &self,
        run_dir: &Path,
        spec: RunSpec,
        lines: mpsc::Sender<OutputLine>,
        stop: CancellationToken,
    ) -> Result<RunExit, RunnerError> {
        let workspace = run_dir.join("workspace");
        let home = run_dir.join("home");
        if run_dir.exists() {
            // Left over by an attempt whose worker died: start clean.
            tokio::fs::remove_dir_all(run_dir).await?;
        }
        tokio::fs::create_dir_all(&home).await?;
        let project_dir = spec.project_dir.clone();
        let start = super::changes::prepare(
            &project_dir,
            &workspace,
            spec.base_changes.clone(),
            &run_dir.join("start"),
        )
        .await
        .map_err(RunnerError::Start)?;

        let mcp_path = match &spec.agent.mcp_config {
            Some(config) => {
                let path = run_dir.join("mcp.json");
                tokio::fs::write(&path, serde_json::to_vec_pretty(config).unwrap_or_default())
                    .await?;
                Some(path.display().to_string())
            }
            None => None,
        };
        if let Some(session) = &spec.resume {
            super::session::place(
                &home.join(".claude"),
                &workspace.display().to_string(),
                session,
            )
            .await
            .map_err(RunnerError::Start)?;
        }

        let (program, leading) = self
            .command
            .split_first()
            .ok_or_else(|| RunnerError::Start("empty agent command".into()))?;
        let mut cmd = self.command_in(program, &workspace, &home, &spec.env);
        cmd.args(leading)
            .args(spec.agent.to_args(mcp_path.as_deref()))
            .stdin(Stdio::piped());
        let max_line = spec.max_line_bytes;
        let agent = run_child(
            cmd,
            program,
            Some(&spec.prompt),
            lines.clone(),
            &stop,
            max_line,
        )
        .await?;
        let session = if agent.stopped {
            None
        } else {
            super::session::keep(&home.join(".claude"), &spec.agent, &lines).await
        };
        let cumulative =
            super::workspace::list_changes(project_dir.clone(), workspace.clone()).await;
        let changed_files =
            super::changes::agent_changes(&project_dir, start.as_ref(), &workspace, &cumulative)
                .await;
        let changes = if spec.keep_changes && agent.status.success() && !agent.stopped {
            super::changes::keep(&workspace, &cumulative, &lines).await
        } else {
            None
        };

        let mut checks = Vec::new();
        if checks::should_run(
            spec.checks.as_ref(),
            agent.status.code(),
            agent.stopped,
            &changed_files,
        ) && let Some(spec_checks) = &spec.checks
        {
            for (kind, command) in spec_checks.commands() {
                if stop.is_cancelled() {
                    break;
                }
                let mut cmd = self.command_in("sh", &workspace, &home, &spec.env);
                cmd.arg("-c").arg(command);
                let (tx, tail) = checks::relay(lines.clone());
                let ran = run_child(cmd, "sh", None, tx, &stop, max_line).await;
                let tail = tail.await.unwrap_or_default();
                checks.push(match ran {
                    Ok(child) => CheckRun {
                        kind,
                        exit_code: child.status.code(),
                        error: child.stopped.then(|| "stopped".to_owned()),
                        duration: child.duration,
                        tail,
                    },
                    Err(e) => CheckRun::not_run(kind, e.to_string(), tail),
                });
            }
        }

        use std::os::unix::process::ExitStatusExt as _;
        Ok(RunExit {
            exit_code: agent.status.code(),
            signal: agent.status.signal(),
            stopped: agent.stopped || stop.is_cancelled(),
            oom_killed: false,
            duration: agent.duration,
            changed_files,
            checks,
            changes,
            session,
        })
    }

    /// `program` set up to run in `workspace` with the run's scrubbed
    /// environment, in a process group of its own that dies with the worker.
    fn command_in(
        &self,
        program: &str,
        workspace: &Path,
        home: &Path,
        run_env: &[(String, String)],
    ) -> Command {
        let mut cmd = Command::new(program);
        cmd.current_dir(workspace)
            .env_clear()
            .env("HOME", home)
            .env("CLAUDE_CONFIG_DIR", home.join(".claude"))
            .env("LANG", "C.UTF-8")
            .env(
                "PATH",
                std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .process_group(0);
        for name in &self.pass_env {
            if let Ok(value) = std::env::var(name) {
                cmd.env(name, value);
            }
        }
        cmd.envs(run_env.iter().map(|(k, v)| (k, v)));
        die_with_parent(&mut cmd);
        cmd
    }
}

/// How a child ended.
struct ChildExit {
    status: std::process::ExitStatus,
    stopped: bool,
    duration: std::time::Duration,
}

/// Runs `cmd` to its end, `input` written on its (piped) stdin, its output
/// lines sent to `lines`; on `stop`, kills its whole group. Whatever it left
/// running dies with the group.
async fn run_child(
    mut cmd: Command,
    program: &str,
    input: Option<&str>,
    lines: mpsc::Sender<OutputLine>,
    stop: &CancellationToken,
    max_line: usize,
) -> Result<ChildExit, RunnerError> {
    let started = Instant::now();
    let mut child = cmd
        .spawn()
        .map_err(|e| RunnerError::Start(format!("{program}: {e}")))?;
    let pgid = child.id().map(|id| Pid::from_raw(id as i32));
    if let (Some(input), Some(mut stdin)) = (input, child.stdin.take()) {
        let input = input.to_owned();
        // Written beside the output readers (a large prompt must not block
        // on a full pipe); closed when written, which ends the input. An
        // agent that exits without reading it is no error.
        tokio::spawn(async move {
            use tokio::io::AsyncWriteExt as _;
            let _ = stdin.write_all(input.as_bytes()).await;
        });
    }
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let out_task = tokio::spawn(forward(stdout, Stream::Stdout, max_line, lines.clone()));
    let err_task = tokio::spawn(forward(stderr, Stream::Stderr, max_line, lines));

    let mut stopped = false;
    let status = tokio::select! {
        status = child.wait() => status?,
        _ = stop.cancelled() => {
            stopped = true;
            kill_group(pgid);
            child.wait().await?
        }
    };
    kill_group(pgid);
    // The pipes close once every process holding them is gone.
    let _ = out_task.await;
    let _ = err_task.await;
    Ok(ChildExit {
        status,
        stopped,
        duration: started.elapsed(),
    })
}

fn kill_group(pgid: Option<Pid>) {
    if let Some(pgid) = pgid {
        // ESRCH (already gone) is the usual, harmless answer.
        let _ = killpg(pgid, Signal::SIGKILL);
    }
}

/// Asks the kernel to SIGKILL the child when the worker thread that
/// spawned it dies (Linux `PR_SET_PDEATHSIG`).
#[cfg(target_os = "linux")]
#[expect(
    unsafe_code,
    reason = "pre_exec is unsafe; the closure only calls the async-signal-safe prctl(2)"
)]
fn die_with_parent(cmd: &mut Command) {
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

#[cfg(not(target_os = "linux"))]
fn die_with_parent(_cmd: &mut Command) {}

/// Copies a directory tree: files, directories and symlinks (as links).
pub fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let target = to.join(entry.file_name());
        if kind.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else if kind.is_symlink() {
            let link = std::fs::read_link(entry.path())?;
            std::os::unix::fs::symlink(link, &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}
