//! The process runner: the agent as a child process of the worker, inside a
//! bubblewrap sandbox (`--runner process`, [`super::sandbox`]) or, for
//! trusted local use only, without any isolation (`--runner host`).
//!
//! For each run it makes `<work_dir>/<execution>-<attempt>/` holding
//! `workspace/` (a copy of the project; the project itself is never
//! written) and `home/` (the agent's own `HOME`, so parallel runs never
//! share `~/.claude.json`). The child gets an environment built from
//! nothing: `PATH`, `HOME`, `CLAUDE_CONFIG_DIR`, `LANG`, the variables named
//! in `pass_env` (e.g. `ANTHROPIC_API_KEY`) and the run's own env.
//!
//! In the sandbox the workspace is `/workspace` and the home
//! `/home/agent`; the agent sees nothing else of the host that is not
//! read-only system files, and reaches the network only through the run's
//! egress proxy ([`super::egress_proxy`], on a Unix socket in the run
//! directory): the model's API host always, the project's
//! `security.allowedDomains` besides; with `networkMode: none`, nothing.
//!
//! The child leads a process group of its own and is killed with the whole
//! group: on `stop`, after it exits (whatever it left running), and — via
//! `PR_SET_PDEATHSIG` — when the worker itself dies, so a SIGKILLed worker
//! leaves no agent behind (in the sandbox, bwrap's PID namespace makes that
//! hold for every process the agent started, double-forked or not). The
//! files the agent changed in its workspace are listed
//! ([`super::workspace`]), then the run directory is removed.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Instant;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::process::Command;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::checks::{self, CheckRun};
use super::egress_proxy::{EgressPolicy, EgressProxy, EgressSettings};
use super::lines::forward;
use super::sandbox::{self, Rlimits, Sandbox, SandboxRun};
use super::{OutputLine, RunExit, RunSpec, Runner, RunnerError, Stream};
use crate::project_config::NetworkMode;

/// Runs the agent command as a local child process.
#[derive(Debug, Clone)]
pub struct ProcessRunner {
    /// The agent program and its leading arguments (`claude`, or the test
    /// agent's path).
    pub command: Vec<String>,
    /// Where run directories are made (an absolute path).
    pub work_dir: PathBuf,
    /// Names of the worker's environment variables the agent may see.
    pub pass_env: Vec<String>,
    /// How the agent is isolated from the worker's host.
    pub isolation: Isolation,
}

/// How a process runner isolates the agent.
#[derive(Debug, Clone)]
pub enum Isolation {
    /// A bubblewrap sandbox per run (`--runner process`), with egress only
    /// through the run's proxy.
    Sandbox {
        sandbox: Sandbox,
        egress: EgressSettings,
    },
    /// None at all (`--runner host`): the agent runs as the worker's user
    /// and sees what the worker sees. Trusted local use only.
    Host,
}

/// Variables of the worker never passed to a sandboxed agent: the sandbox
/// sets its own proxy.
const PROXY_VARS: &[&str] = &[
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "http_proxy",
    "https_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// What one run's children are started with.
struct Launch<'a> {
    run_dir: &'a Path,
    workspace: &'a Path,
    home: &'a Path,
    mcp_config: Option<&'a Path>,
    egress_socket: Option<&'a Path>,
    spec: &'a RunSpec,
}

#[async_trait::async_trait]
impl Runner for ProcessRunner {
    fn name(&self) -> &'static str {
        match self.isolation {
            Isolation::Sandbox { .. } => "process",
            Isolation::Host => "host",
        }
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
                Some(path)
            }
            None => None,
        };
        if let Some(session) = &spec.resume {
            super::session::place(
                &home.join(".claude"),
                &self.agent_workspace(&workspace),
                session,
            )
            .await
            .map_err(RunnerError::Start)?;
        }
        let proxy = self.start_egress(run_dir, &spec, &lines).await?;
        let socket = run_dir.join("egress.sock");
        let launch = Launch {
            run_dir,
            workspace: &workspace,
            home: &home,
            mcp_config: mcp_path.as_deref(),
            egress_socket: proxy.is_some().then_some(socket.as_path()),
            spec: &spec,
        };

        let (program, leading) = self
            .command
            .split_first()
            .ok_or_else(|| RunnerError::Start("empty agent command".into()))?;
        let mcp_arg = match (&self.isolation, &mcp_path) {
            (_, None) => None,
            (Isolation::Sandbox { .. }, Some(_)) => Some(sandbox::MCP_CONFIG.to_owned()),
            (Isolation::Host, Some(path)) => Some(path.display().to_string()),
        };
        let mut args: Vec<String> = leading.to_vec();
        args.extend(spec.agent.to_args(mcp_arg.as_deref()));
        let mut cmd = self.command_in(program, &args, &launch).await?;
        cmd.stdin(Stdio::piped());
        // On an early return the proxy is dropped, which stops it.
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
                let (tx, tail) = checks::relay(lines.clone());
                let args = ["-c".to_owned(), command.to_owned()];
                let ran = match self.command_in("sh", &args, &launch).await {
                    Ok(cmd) => run_child(cmd, "sh", None, tx, &stop, max_line).await,
                    Err(e) => Err(e),
                };
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

        if let Some(proxy) = proxy {
            proxy.stop().await;
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

    /// The workspace's path as the agent sees it (Claude Code keys its
    /// sessions by it).
    fn agent_workspace(&self, workspace: &Path) -> String {
        match self.isolation {
            Isolation::Sandbox { .. } => sandbox::WORKSPACE.to_owned(),
            Isolation::Host => workspace.display().to_string(),
        }
    }

    /// The run's egress proxy on `<run_dir>/egress.sock`, when the agent
    /// runs sandboxed with a network (`networkMode` other than `none`): it
    /// admits the operator's model API host and the project's
    /// `security.allowedDomains`, and refusals become notes on the run.
    async fn start_egress(
        &self,
        run_dir: &Path,
        spec: &RunSpec,
        lines: &mpsc::Sender<OutputLine>,
    ) -> Result<Option<EgressProxy>, RunnerError> {
        let Isolation::Sandbox { egress, .. } = &self.isolation else {
            return Ok(None);
        };
        if spec.container.security.network_mode == NetworkMode::None {
            return Ok(None);
        }
        let allowed = spec
            .container
            .security
            .allowed_domains
            .clone()
            .unwrap_or_default();
        let policy: EgressPolicy = egress.policy(&allowed);
        let proxy = EgressProxy::start_unix(&run_dir.join("egress.sock"), policy, lines.clone())
            .await
            .map_err(|e| RunnerError::Start(format!("egress proxy: {e}")))?;
        Ok(Some(proxy))
    }

    /// `program` with `args` set up to run in the run's workspace with an
    /// environment built from nothing, in a process group of its own that
    /// dies with the worker; in the sandbox unless this is the host runner.
    async fn command_in(
        &self,
        program: &str,
        args: &[String],
        launch: &Launch<'_>,
    ) -> Result<Command, RunnerError> {
        let mut env: Vec<(String, String)> = Vec::new();
        let (home, config_dir) = match &self.isolation {
            Isolation::Sandbox { .. } => (
                sandbox::HOME.to_owned(),
                format!("{}/.claude", sandbox::HOME),
            ),
            Isolation::Host => (
                launch.home.display().to_string(),
                launch.home.join(".claude").display().to_string(),
            ),
        };
        env.push(("HOME".into(), home));
        env.push(("CLAUDE_CONFIG_DIR".into(), config_dir));
        env.push(("LANG".into(), "C.UTF-8".into()));
        let sandboxed = matches!(self.isolation, Isolation::Sandbox { .. });
        for name in &self.pass_env {
            if sandboxed && PROXY_VARS.contains(&name.as_str()) {
                continue;
            }
            if let Ok(value) = std::env::var(name) {
                env.push((name.clone(), value));
            }
        }
        env.extend(launch.spec.env.iter().cloned());

        let mut cmd = match &self.isolation {
            Isolation::Host => {
                env.push((
                    "PATH".into(),
                    std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into()),
                ));
                let mut cmd = Command::new(program);
                cmd.current_dir(launch.workspace).args(args);
                cmd.env_clear().envs(env);
                cmd
            }
            Isolation::Sandbox { sandbox, .. } => {
                let program_path = resolve_program(program)
                    .ok_or_else(|| RunnerError::Start(format!("{program}: not found")))?;
                let uid = sandbox::sandbox_uid(&launch.spec.container).unwrap_or(1000);
                let passwd = launch.run_dir.join("passwd");
                tokio::fs::write(&passwd, sandbox::passwd(uid)).await?;
                env.push((
                    "PATH".into(),
                    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
                ));
                if launch.egress_socket.is_some() {
                    let proxy = format!("http://127.0.0.1:{}", sandbox::PROXY_PORT);
                    for name in ["HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"] {
                        env.push((name.into(), proxy.clone()));
                    }
                }
                let run = SandboxRun {
                    workspace: launch.workspace,
                    home: launch.home,
                    passwd: &passwd,
                    mcp_config: launch.mcp_config,
                    egress_socket: launch.egress_socket,
                    program: &program_path,
                    uid,
                    env: &env,
                };
                let mut cmd = Command::new(&sandbox.bwrap);
                cmd.env_clear()
                    .args(sandbox.args(&run))
                    .arg(&program_path)
                    .args(args);
                Rlimits::of(&launch.spec.container).apply(&mut cmd);
                cmd
            }
        };
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .process_group(0);
        die_with_parent(&mut cmd);
        Ok(cmd)
    }
}

/// `program`'s absolute path with links resolved: as given when it has a
/// `/`, else the first executable of that name on the worker's `PATH`.
fn resolve_program(program: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt as _;
    let candidates: Vec<PathBuf> = if program.contains('/') {
        vec![PathBuf::from(program)]
    } else {
        std::env::var("PATH")
            .unwrap_or_else(|_| "/usr/bin:/bin".into())
            .split(':')
            .map(|dir| Path::new(dir).join(program))
            .collect()
    };
    candidates.into_iter().find_map(|path| {
        let real = std::fs::canonicalize(&path).ok()?;
        let meta = std::fs::metadata(&real).ok()?;
        (meta.is_file() && meta.permissions().mode() & 0o111 != 0).then_some(real)
    })
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
