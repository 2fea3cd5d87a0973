//! The Docker runner: every run in a locked-down container of its own.
//!
//! For each run ([`RunSpec`]) the runner, talking to the Docker daemon with
//! bollard:
//!
//! 1. **refuses** what the worker does not allow before anything exists: a
//!    `security.runAsUser` of root (unless `--allow-root-containers`), an
//!    egress allow-list with a network mode that cannot enforce it;
//! 2. makes `<work_dir>/<execution>-<attempt>/` with `workspace/` (a copy of
//!    the project, handed to the container's user; the project itself is
//!    never written) and `mcp.json` (the `--mcp-config`, when the project has
//!    MCP servers);
//! 3. when `security.allowedDomains` is set, creates an `--internal` network
//!    `ccs-<execution>-<attempt>` (no route beyond the host) and starts an
//!    [`EgressProxy`] on its gateway address — the container's only way out,
//!    given to it as `HTTP_PROXY`/`HTTPS_PROXY`; an empty list means no
//!    network at all;
//! 4. creates the container `ccs-<execution>-<attempt>` from `baseImage` (or
//!    `--agent-image`): memory (swap equal: none), CPUs, pids, user,
//!    read-only root with tmpfs `/tmp` and `HOME` (`/home/agent`; always
//!    tmpfs, so runs never share `~/.claude`), `no-new-privileges`, dropped
//!    capabilities, network, an init process, labels `ccs.managed=true`,
//!    `ccs.execution`, `ccs.attempt`, `ccs.worker`, `ccs.project`; workspace
//!    bind-mounted at `/workspace`, `mcp.json` read-only at
//!    `/ccs/mcp.json`;
//! 5. attaches before starting, so every stdout/stderr line reaches the
//!    caller as it is printed; waits for the exit, or on `stop` kills it;
//! 6. inspects the dead container (exit code, `OOMKilled`), lists the files
//!    the agent changed, and — on every path, errors included — removes the
//!    container, the proxy, the network and the run directory.
//!
//! **Crash**: if the worker dies, its containers keep running (the daemon
//! owns them). Every worker sweeps at start and then periodically
//! ([`super::orphans`]): containers and networks labelled with the id of a
//! worker that no longer heartbeats, for an execution of this deployment's
//! database, are removed with their run directories; those of live workers,
//! and those of other deployments sharing the Docker host, are left alone.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::errors::Error as DockerError;
use bollard::models::{ContainerCreateBody, HostConfig, NetworkCreateRequest};
use bollard::query_parameters::{
    AttachContainerOptionsBuilder, CreateContainerOptionsBuilder, CreateImageOptionsBuilder,
    EventsOptionsBuilder, KillContainerOptionsBuilder, ListContainersOptionsBuilder,
    ListNetworksOptionsBuilder, RemoveContainerOptionsBuilder,
};
use futures::StreamExt as _;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::changes;
use super::checks::{self, CheckRun};
use super::egress_proxy::{EgressPolicy, EgressProxy, Subnet};
use super::lines::BoundedLines;
use super::{
    Leftover, LeftoverKind, OutputLine, RunExit, RunSpec, Runner, RunnerError, Stream, workspace,
};
use crate::project_config::{NetworkMode, RunAsUser};

/// The agent's working directory in the container.
pub const WORKSPACE: &str = "/workspace";
/// The agent's `HOME` in the container (a tmpfs).
pub const HOME: &str = "/home/agent";
/// Where the MCP config file is mounted (read-only).
pub const MCP_CONFIG: &str = "/ccs/mcp.json";
/// How long after an exit with 137 the runner looks for the daemon's `oom`
/// event.
const OOM_EVENT_GRACE: Duration = Duration::from_secs(2);
/// Size caps of the tmpfs mounts (they count against the memory limit).
const HOME_TMPFS_SIZE: &str = "512m";
const TMP_TMPFS_SIZE: &str = "512m";
/// Label keys.
pub const LABEL_MANAGED: &str = "ccs.managed";
pub const LABEL_EXECUTION: &str = "ccs.execution";
pub const LABEL_ATTEMPT: &str = "ccs.attempt";
pub const LABEL_WORKER: &str = "ccs.worker";
pub const LABEL_PROJECT: &str = "ccs.project";

/// How the runner is set up (from [`crate::settings::DockerArgs`] and the
/// worker's settings).
#[derive(Debug, Clone)]
pub struct DockerRunnerConfig {
    /// The daemon (`unix://…`, `tcp://…`); `None`: the local socket.
    pub docker_host: Option<String>,
    /// The agent program and leading arguments, inside the container.
    pub command: Vec<String>,
    /// The image when a project names no `baseImage`.
    pub default_image: String,
    /// Where run directories are made (on the daemon's host).
    pub work_dir: PathBuf,
    /// Variables of the worker passed to every agent (`ANTHROPIC_API_KEY`…),
    /// read when the worker started.
    pub pass_env: Vec<(String, String)>,
    /// Whether a project may run the agent as root.
    pub allow_root: bool,
    /// Extra `/etc/hosts` entries, `NAME:IP`; the egress proxy resolves
    /// these names the same way.
    pub extra_hosts: Vec<String>,
    /// When set, each container's inspect JSON is written there before it
    /// is removed (tests, debugging). The dumps hold the containers'
    /// environment, resolved secrets included: never set it in production.
    pub inspect_dir: Option<PathBuf>,
}

/// What a container is run with besides its configuration.
struct ContainerIo<'a> {
    /// Written on its stdin, then closed (the agent's prompt); `None`: no
    /// stdin.
    input: Option<&'a str>,
    /// Where its output lines go.
    lines: mpsc::Sender<OutputLine>,
    /// Longest output line kept whole.
    max_line: usize,
}

/// How one container ended.
struct ContainerExit {
    exit_code: Option<i32>,
    stopped: bool,
    oom_killed: bool,
    duration: Duration,
}

/// Runs the agent in a Docker container.
#[derive(Debug, Clone)]
pub struct DockerRunner {
    docker: Docker,
    config: DockerRunnerConfig,
    /// Parsed `extra_hosts`.
    hosts: HashMap<String, IpAddr>,
    /// CPUs of the daemon's host, in nano-CPUs (a larger limit is capped).
    host_nano_cpus: i64,
}

/// Everything a run created, removed at the end whatever happened.
#[derive(Default)]
struct RunResources {
    run_dir: Option<PathBuf>,
    /// The agent's container, then its checks'.
    containers: Vec<String>,
    network: Option<String>,
    proxy: Option<EgressProxy>,
}

/// `NAME:IP` entries (`--docker-add-host`) as a map.
///
/// # Errors
///
/// An entry that is not `NAME:IP`, named in the message.
pub fn parse_extra_hosts(entries: &[String]) -> Result<HashMap<String, IpAddr>, String> {
    let mut hosts = HashMap::new();
    for entry in entries {
        let parsed = entry
            .split_once(':')
            .and_then(|(name, ip)| Some((name, ip.parse::<IpAddr>().ok()?)))
            .filter(|(name, _)| !name.is_empty());
        let Some((name, ip)) = parsed else {
            return Err(format!("invalid extra host {entry:?}: expected NAME:IP"));
        };
        hosts.insert(name.to_owned(), ip);
    }
    Ok(hosts)
}

impl DockerRunner {
    /// Connects to the daemon (negotiating the API version, so Docker 20.10
    /// and later all work) and checks it answers.
    ///
    /// # Errors
    ///
    /// The daemon cannot be reached, or a setting is invalid.
    pub async fn connect(config: DockerRunnerConfig) -> Result<Self, RunnerError> {
        let unreachable = |e: DockerError| RunnerError::Start(format!("Docker: {e}"));
        let docker = match &config.docker_host {
            Some(host) => Docker::connect_with_host(host),
            None => Docker::connect_with_local_defaults(),
        }
        .map_err(unreachable)?;
        let docker = docker.negotiate_version().await.map_err(unreachable)?;
        let info = docker.info().await.map_err(unreachable)?;
        let host_nano_cpus = info.ncpu.unwrap_or(1).max(1) * 1_000_000_000;
        let hosts = parse_extra_hosts(&config.extra_hosts).map_err(RunnerError::Start)?;
        if config.command.is_empty() {
            return Err(RunnerError::Start("empty agent command".into()));
        }
        std::fs::create_dir_all(&config.work_dir)?;
        Ok(Self {
            docker,
            config,
            hosts,
            host_nano_cpus,
        })
    }

    /// The bollard client (tests, benchmarks).
    pub fn client(&self) -> &Docker {
        &self.docker
    }

    /// Refusals that must happen before anything is created.
    fn check(&self, spec: &RunSpec) -> Result<(), RunnerError> {
        let security = &spec.container.security;
        if security.run_as_user.is_root() && !self.config.allow_root {
            return Err(RunnerError::Start(format!(
                "the project's security.runAsUser `{}` runs the agent as root, which this \
                 worker refuses (start it with --allow-root-containers to permit root)",
                security.run_as_user
            )));
        }
        if security
            .allowed_domains
            .as_ref()
            .is_some_and(|d| !d.is_empty())
            && security.network_mode != NetworkMode::Bridge
        {
            return Err(RunnerError::Start(format!(
                "security.allowedDomains needs networkMode `bridge` (ccs puts the container on \
                 an internal network of its own), not `{}`",
                security.network_mode
            )));
        }
        Ok(())
    }

    async fn run_in(
        &self,
        res: &mut RunResources,
        spec: RunSpec,
        lines: mpsc::Sender<OutputLine>,
        stop: CancellationToken,
    ) -> Result<RunExit, RunnerError> {
        self.check(&spec)?;
        if spec.resume.is_some() {
            // The container's HOME is a tmpfs gone with it: no session is
            // kept or placed there yet (docs/claude-cli.md).
            return Err(RunnerError::Start(
                "resuming a Claude Code session needs the process runner;                  the Docker runner does not keep sessions yet"
                    .into(),
            ));
        }
        let name = format!("ccs-{}-{}", spec.execution_id, spec.attempt);
        let run_dir = self
            .config
            .work_dir
            .join(format!("{}-{}", spec.execution_id, spec.attempt));
        res.run_dir = Some(run_dir.clone());
        let (uid, gid) = numeric_ids(&spec.container.security.run_as_user);
        let workspace_dir = run_dir.join("workspace");
        let start = prepare_run_dir(&run_dir, &spec, &workspace_dir, uid, gid).await?;

        let mcp_path = match &spec.agent.mcp_config {
            Some(config) => {
                let path = run_dir.join("mcp.json");
                let bytes = serde_json::to_vec_pretty(config)
                    .map_err(|e| RunnerError::Start(format!("MCP config: {e}")))?;
                tokio::fs::write(&path, bytes).await?;
                set_mode(&path, 0o644).await?;
                Some(path)
            }
            None => None,
        };

        let c = &spec.container;
        let image = c
            .base_image
            .clone()
            .unwrap_or_else(|| self.config.default_image.clone());
        self.ensure_image(&image).await?;

        // The environment: the worker's pass-through, the project's, then
        // ours (which nothing overrides).
        let mut env: BTreeMap<String, String> = BTreeMap::new();
        env.extend(self.config.pass_env.iter().cloned());
        env.extend(spec.env.iter().cloned());
        env.insert("HOME".into(), HOME.into());
        env.insert("CLAUDE_CONFIG_DIR".into(), format!("{HOME}/.claude"));
        env.insert("LANG".into(), "C.UTF-8".into());

        let labels = HashMap::from([
            (LABEL_MANAGED.to_owned(), "true".to_owned()),
            (LABEL_EXECUTION.to_owned(), spec.execution_id.clone()),
            (LABEL_ATTEMPT.to_owned(), spec.attempt.to_string()),
            (LABEL_WORKER.to_owned(), spec.worker_id.clone()),
            (LABEL_PROJECT.to_owned(), spec.project.clone()),
        ]);

        let network_mode = match c.security.allowed_domains.as_deref() {
            Some([]) => "none".to_owned(),
            Some(domains) => {
                let proxy = self
                    .egress_network(res, &name, &labels, domains, lines.clone())
                    .await?;
                for var in ["HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"] {
                    env.insert(var.into(), format!("http://{proxy}"));
                }
                for var in ["NO_PROXY", "no_proxy"] {
                    env.insert(var.into(), "localhost,127.0.0.1".into());
                }
                name.clone()
            }
            None => c.security.network_mode.as_docker().to_owned(),
        };

        let mut nano_cpus = i64::try_from(c.resources.cpu.nano_cpus()).unwrap_or(i64::MAX);
        if nano_cpus > self.host_nano_cpus {
            nano_cpus = self.host_nano_cpus;
            note(
                &lines,
                format!(
                    "resources.cpu {} is more than this host has; capped at {}",
                    c.resources.cpu.millis() as f64 / 1000.0,
                    self.host_nano_cpus / 1_000_000_000
                ),
            )
            .await;
        }
        let memory = i64::try_from(c.resources.memory.bytes()).unwrap_or(i64::MAX);
        let home_owner = match (uid, gid) {
            (Some(u), Some(g)) => format!("uid={u},gid={g},mode=0700"),
            _ => "mode=1777".to_owned(),
        };
        let mut binds = vec![format!("{}:{WORKSPACE}:rw", workspace_dir.display())];
        if let Some(path) = &mcp_path {
            binds.push(format!("{}:{MCP_CONFIG}:ro", path.display()));
        }
        let host_config = HostConfig {
            memory: Some(memory),
            memory_swap: Some(memory),
            nano_cpus: Some(nano_cpus),
            pids_limit: Some(i64::from(c.resources.pids)),
            readonly_rootfs: Some(c.security.read_only_root),
            security_opt: c
                .security
                .no_new_privileges
                .then(|| vec!["no-new-privileges:true".to_owned()]),
            cap_drop: Some(c.security.drop_capabilities.clone()),
            network_mode: Some(network_mode),
            binds: Some(binds),
            tmpfs: Some(HashMap::from([
                (
                    "/tmp".to_owned(),
                    format!("rw,exec,nosuid,nodev,size={TMP_TMPFS_SIZE},mode=1777"),
                ),
                (
                    HOME.to_owned(),
                    format!("rw,exec,nosuid,nodev,size={HOME_TMPFS_SIZE},{home_owner}"),
                ),
            ])),
            extra_hosts: (!self.config.extra_hosts.is_empty())
                .then(|| self.config.extra_hosts.clone()),
            init: Some(true),
            privileged: Some(false),
            ..Default::default()
        };
        let (program, leading) = self
            .config
            .command
            .split_first()
            .ok_or_else(|| RunnerError::Start("empty agent command".into()))?;
        let mut cmd: Vec<String> = leading.to_vec();
        cmd.extend(spec.agent.to_args(mcp_path.as_ref().map(|_| MCP_CONFIG)));
        let body = ContainerCreateBody {
            image: Some(image.clone()),
            entrypoint: Some(vec![program.clone()]),
            cmd: Some(cmd),
            env: Some(env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
            user: Some(docker_user(&c.security.run_as_user)),
            working_dir: Some(WORKSPACE.to_owned()),
            labels: Some(labels),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            attach_stdin: Some(false),
            open_stdin: Some(false),
            tty: Some(false),
            host_config: Some(host_config),
            ..Default::default()
        };
        // The agent reads its prompt on stdin; the checks get none.
        let agent_body = ContainerCreateBody {
            attach_stdin: Some(true),
            open_stdin: Some(true),
            stdin_once: Some(true),
            ..body.clone()
        };
        let agent = self
            .run_container(
                res,
                &name,
                agent_body,
                ContainerIo {
                    input: Some(&spec.prompt),
                    lines: lines.clone(),
                    max_line: spec.max_line_bytes,
                },
                &stop,
            )
            .await?;
        let cumulative =
            workspace::list_changes(spec.project_dir.clone(), workspace_dir.clone()).await;
        let changed_files = changes::agent_changes(
            &spec.project_dir,
            start.as_ref(),
            &workspace_dir,
            &cumulative,
        )
        .await;
        let changes = if spec.keep_changes && agent.exit_code == Some(0) && !agent.stopped {
            changes::keep(&workspace_dir, &cumulative, &lines).await
        } else {
            None
        };

        let mut checks = Vec::new();
        if checks::should_run(
            spec.checks.as_ref(),
            agent.exit_code,
            agent.stopped || agent.oom_killed,
            &changed_files,
        ) && let Some(spec_checks) = &spec.checks
        {
            for (kind, command) in spec_checks.commands() {
                if stop.is_cancelled() {
                    break;
                }
                // The same container, but the command in place of the agent.
                let mut check_body = body.clone();
                check_body.entrypoint = Some(vec!["/bin/sh".into(), "-c".into()]);
                check_body.cmd = Some(vec![command.to_owned()]);
                let check_name = format!("{name}-{}", kind.as_str());
                let (tx, tail) = checks::relay(lines.clone());
                let ran = self
                    .run_container(
                        res,
                        &check_name,
                        check_body,
                        ContainerIo {
                            input: None,
                            lines: tx,
                            max_line: spec.max_line_bytes,
                        },
                        &stop,
                    )
                    .await;
                let tail = tail.await.unwrap_or_default();
                checks.push(match ran {
                    Ok(exit) => CheckRun {
                        kind,
                        exit_code: exit.exit_code.filter(|_| !exit.stopped),
                        error: if exit.stopped {
                            Some("stopped".to_owned())
                        } else if exit.oom_killed {
                            Some("ran out of memory".to_owned())
                        } else {
                            None
                        },
                        duration: exit.duration,
                        tail,
                    },
                    Err(e) => CheckRun::not_run(kind, e.to_string(), tail),
                });
            }
        }
        Ok(RunExit {
            exit_code: agent.exit_code,
            signal: None,
            stopped: agent.stopped || stop.is_cancelled(),
            oom_killed: agent.oom_killed,
            duration: agent.duration,
            changed_files,
            checks,
            changes,
            session: None,
        })
    }

    /// Creates container `name` from `body`, attached before it starts so
    /// every output line reaches `io.lines` (and `io.input`, when given, is
    /// written on its stdin, then closed); waits for its exit (on `stop`,
    /// kills it) and inspects it. Recorded in `res` for removal.
    async fn run_container(
        &self,
        res: &mut RunResources,
        name: &str,
        body: ContainerCreateBody,
        io: ContainerIo<'_>,
        stop: &CancellationToken,
    ) -> Result<ContainerExit, RunnerError> {
        let ContainerIo {
            input,
            lines,
            max_line,
        } = io;
        self.create_container(name, body).await?;
        res.containers.push(name.to_owned());

        // Attach before starting: not a line is missed.
        let attach = self
            .docker
            .attach_container(
                name,
                Some(
                    AttachContainerOptionsBuilder::new()
                        .stream(true)
                        .logs(true)
                        .stdout(true)
                        .stderr(true)
                        .stdin(input.is_some())
                        .build(),
                ),
            )
            .await
            .map_err(|e| RunnerError::Start(format!("cannot attach to the container: {e}")))?;
        let forwarder = tokio::spawn(forward(attach.output, max_line, lines));
        if let Some(input) = input {
            let input = input.to_owned();
            let mut stdin = attach.input;
            // Closing our end ends the container's stdin (`stdin_once`).
            tokio::spawn(async move {
                use tokio::io::AsyncWriteExt as _;
                let _ = stdin.write_all(input.as_bytes()).await;
                let _ = stdin.shutdown().await;
            });
        }

        let started = Instant::now();
        let started_at = std::time::SystemTime::now();
        self.docker
            .start_container(name, None)
            .await
            .map_err(|e| RunnerError::Start(format!("cannot start the container: {e}")))?;

        let mut stopped = false;
        let waited = tokio::select! {
            waited = self.wait(name) => waited,
            _ = stop.cancelled() => {
                stopped = true;
                self.kill(name).await;
                self.wait(name).await
            }
        };
        waited?;
        let duration = started.elapsed();
        // The attach stream ends with the container; don't hang on it.
        if tokio::time::timeout(Duration::from_secs(10), forwarder)
            .await
            .is_err()
        {
            tracing::warn!(container = %name, "container output did not end with the container");
        }

        let inspect = self
            .docker
            .inspect_container(name, None)
            .await
            .map_err(|e| RunnerError::Start(format!("cannot inspect the container: {e}")))?;
        if let Some(dir) = &self.config.inspect_dir {
            let path = dir.join(format!("{name}.json"));
            let written = async {
                tokio::fs::create_dir_all(dir).await?;
                let json = serde_json::to_vec_pretty(&inspect).map_err(std::io::Error::other)?;
                tokio::fs::write(&path, json).await
            };
            if let Err(e) = written.await {
                tracing::warn!(path = %path.display(), error = %e, "cannot write the inspect dump");
            }
        }
        let state = inspect.state.unwrap_or_default();
        let exit_code = state.exit_code.and_then(|c| i32::try_from(c).ok());
        // Docker 20.10 may record the exit before the OOM, leaving
        // `OOMKilled` false; its `oom` event is the surer witness of a
        // SIGKILL (137) nobody here sent.
        let oom_killed = state.oom_killed.unwrap_or(false)
            || (exit_code == Some(137) && !stopped && self.oom_event(name, started_at).await);
        Ok(ContainerExit {
            exit_code,
            stopped,
            oom_killed,
            duration,
        })
    }

    /// Creates the run's internal network and its egress proxy; returns the
    /// proxy's address.
    async fn egress_network(
        &self,
        res: &mut RunResources,
        name: &str,
        labels: &HashMap<String, String>,
        domains: &[String],
        notes: mpsc::Sender<OutputLine>,
    ) -> Result<SocketAddr, RunnerError> {
        let request = NetworkCreateRequest {
            name: name.to_owned(),
            driver: Some("bridge".to_owned()),
            internal: Some(true),
            labels: Some(labels.clone()),
            ..Default::default()
        };
        let created = match self.docker.create_network(request.clone()).await {
            Err(DockerError::DockerResponseServerError {
                status_code: 409, ..
            }) => {
                // Left over by a dead attempt with the same name.
                let _ = self.docker.remove_network(name).await;
                self.docker.create_network(request).await
            }
            other => other,
        }
        .map_err(|e| RunnerError::Start(format!("cannot create the egress network: {e}")))?;
        res.network = Some(created.id.clone());
        let network = self
            .docker
            .inspect_network(&created.id, None)
            .await
            .map_err(|e| RunnerError::Start(format!("cannot inspect the egress network: {e}")))?;
        let ipam = network
            .ipam
            .and_then(|i| i.config)
            .and_then(|c| c.into_iter().next())
            .unwrap_or_default();
        let gateway = ipam
            .gateway
            .as_deref()
            .and_then(|g| g.parse::<IpAddr>().ok())
            .ok_or_else(|| RunnerError::Start("the egress network has no gateway".into()))?;
        let subnet = ipam.subnet.as_deref().and_then(Subnet::parse);
        let policy = EgressPolicy::new(domains, self.hosts.clone());
        let proxy = EgressProxy::start(SocketAddr::new(gateway, 0), subnet, policy, notes)
            .await
            .map_err(|e| {
                RunnerError::Start(format!("cannot start the egress proxy on {gateway}: {e}"))
            })?;
        let addr = proxy.addr();
        res.proxy = Some(proxy);
        Ok(addr)
    }

    /// Whether the daemon reported an `oom` event for the container since
    /// `since`; looks again for up to [`OOM_EVENT_GRACE`], as the event may
    /// trail the exit.
    async fn oom_event(&self, name: &str, since: std::time::SystemTime) -> bool {
        let stamp = |t: std::time::SystemTime| {
            let d = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
            format!("{}.{:09}", d.as_secs().saturating_sub(1), d.subsec_nanos())
        };
        let filters = HashMap::from([
            ("type", vec!["container".to_owned()]),
            ("event", vec!["oom".to_owned()]),
            ("container", vec![name.to_owned()]),
        ]);
        let deadline = Instant::now() + OOM_EVENT_GRACE;
        loop {
            let options = EventsOptionsBuilder::new()
                .since(&stamp(since))
                .until(&stamp(
                    std::time::SystemTime::now() + Duration::from_secs(1),
                ))
                .filters(&filters)
                .build();
            let mut events = self.docker.events(Some(options));
            if let Some(Ok(_)) = events.next().await {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Makes sure `image` is present, pulling it when it is not.
    async fn ensure_image(&self, image: &str) -> Result<(), RunnerError> {
        match self.docker.inspect_image(image).await {
            Ok(_) => return Ok(()),
            Err(DockerError::DockerResponseServerError {
                status_code: 404, ..
            }) => {}
            Err(e) => {
                return Err(RunnerError::Start(format!(
                    "cannot inspect image {image}: {e}"
                )));
            }
        }
        let options = CreateImageOptionsBuilder::new().from_image(image).build();
        let mut pull = self.docker.create_image(Some(options), None, None);
        while let Some(progress) = pull.next().await {
            if let Err(e) = progress {
                return Err(RunnerError::Start(format!(
                    "image {image} is not on this Docker host and could not be pulled: {e}"
                )));
            }
        }
        Ok(())
    }

    async fn create_container(
        &self,
        name: &str,
        body: ContainerCreateBody,
    ) -> Result<(), RunnerError> {
        let options = || CreateContainerOptionsBuilder::new().name(name).build();
        let created = match self
            .docker
            .create_container(Some(options()), body.clone())
            .await
        {
            Err(DockerError::DockerResponseServerError {
                status_code: 409, ..
            }) => {
                // A container of that name is left from a dead attempt.
                self.remove_container(name).await;
                self.docker.create_container(Some(options()), body).await
            }
            other => other,
        };
        created
            .map(|_| ())
            .map_err(|e| RunnerError::Start(format!("cannot create the container: {e}")))
    }

    /// Waits for the container to stop; a non-zero exit is not an error.
    async fn wait(&self, name: &str) -> Result<(), RunnerError> {
        let mut wait = self.docker.wait_container(name, None);
        match wait.next().await {
            Some(Ok(_)) | Some(Err(DockerError::DockerContainerWaitError { .. })) | None => Ok(()),
            Some(Err(e)) => Err(RunnerError::Io(std::io::Error::other(format!(
                "waiting for the container: {e}"
            )))),
        }
    }

    async fn kill(&self, name: &str) {
        let options = KillContainerOptionsBuilder::new().signal("KILL").build();
        match self.docker.kill_container(name, Some(options)).await {
            Ok(()) => {}
            // 409: not running any more; 404: gone.
            Err(DockerError::DockerResponseServerError {
                status_code: 404 | 409,
                ..
            }) => {}
            Err(e) => tracing::warn!(container = %name, error = %e, "cannot kill the container"),
        }
    }

    async fn remove_container(&self, name: &str) -> bool {
        let options = RemoveContainerOptionsBuilder::new()
            .force(true)
            .v(true)
            .build();
        match self.docker.remove_container(name, Some(options)).await {
            Ok(()) => true,
            Err(DockerError::DockerResponseServerError {
                status_code: 404, ..
            }) => false,
            Err(e) => {
                tracing::warn!(container = %name, error = %e, "cannot remove the container");
                false
            }
        }
    }

    async fn remove_network(&self, id: &str) -> bool {
        match self.docker.remove_network(id).await {
            Ok(()) => true,
            Err(DockerError::DockerResponseServerError {
                status_code: 404, ..
            }) => false,
            Err(e) => {
                tracing::warn!(network = %id, error = %e, "cannot remove the network");
                false
            }
        }
    }

    /// Removes what a run created, in reverse order.
    async fn clean_up(&self, res: RunResources) {
        for name in &res.containers {
            self.remove_container(name).await;
        }
        if let Some(proxy) = res.proxy {
            proxy.stop().await;
        }
        if let Some(id) = &res.network {
            self.remove_network(id).await;
        }
        if let Some(dir) = &res.run_dir {
            remove_dir(dir).await;
        }
    }

    async fn labelled(
        &self,
    ) -> Result<
        (
            Vec<(String, HashMap<String, String>)>,
            Vec<(String, HashMap<String, String>)>,
        ),
        DockerError,
    > {
        let filters = HashMap::from([("label", vec![format!("{LABEL_MANAGED}=true")])]);
        let containers = self
            .docker
            .list_containers(Some(
                ListContainersOptionsBuilder::new()
                    .all(true)
                    .filters(&filters)
                    .build(),
            ))
            .await?
            .into_iter()
            .filter_map(|c| Some((c.id?, c.labels.unwrap_or_default())))
            .collect();
        let networks = self
            .docker
            .list_networks(Some(
                ListNetworksOptionsBuilder::new().filters(&filters).build(),
            ))
            .await?
            .into_iter()
            .filter_map(|n| Some((n.id?, n.labels.unwrap_or_default())))
            .collect();
        Ok((containers, networks))
    }
}

#[async_trait::async_trait]
impl Runner for DockerRunner {
    fn name(&self) -> &'static str {
        "docker"
    }

    async fn run(
        &self,
        spec: RunSpec,
        lines: mpsc::Sender<OutputLine>,
        stop: CancellationToken,
    ) -> Result<RunExit, RunnerError> {
        // A retry never starts while an earlier attempt's container still
        // runs on this host (its worker died, or its handler was dropped):
        // what is labelled with this execution and another attempt goes.
        let mut earlier: Vec<Leftover> = self
            .leftovers()
            .await?
            .into_iter()
            .filter(|l| {
                l.execution_id == spec.execution_id && l.attempt != spec.attempt.to_string()
            })
            .collect();
        earlier.sort_by_key(|l| l.kind);
        for leftover in &earlier {
            tracing::warn!(
                execution.id = %spec.execution_id,
                attempt = %leftover.attempt,
                "removing an earlier attempt's {:?} before this attempt starts",
                leftover.kind
            );
            self.remove_leftover(leftover).await?;
        }
        let mut res = RunResources::default();
        let result = self.run_in(&mut res, spec, lines, stop).await;
        self.clean_up(res).await;
        result
    }

    async fn leftovers(&self) -> Result<Vec<Leftover>, RunnerError> {
        let (containers, networks) = self
            .labelled()
            .await
            .map_err(|e| RunnerError::Io(std::io::Error::other(format!("Docker: {e}"))))?;
        let leftover = |kind, (id, labels): (String, HashMap<String, String>)| {
            Some(Leftover {
                kind,
                id,
                worker_id: labels.get(LABEL_WORKER)?.clone(),
                execution_id: labels.get(LABEL_EXECUTION)?.clone(),
                attempt: labels.get(LABEL_ATTEMPT).cloned().unwrap_or_default(),
            })
        };
        Ok(containers
            .into_iter()
            .filter_map(|c| leftover(LeftoverKind::Container, c))
            .chain(
                networks
                    .into_iter()
                    .filter_map(|n| leftover(LeftoverKind::Network, n)),
            )
            .collect())
    }

    async fn remove_leftover(&self, leftover: &Leftover) -> Result<bool, RunnerError> {
        let removed = match leftover.kind {
            LeftoverKind::Container => self.remove_container(&leftover.id).await,
            LeftoverKind::Network => self.remove_network(&leftover.id).await,
        };
        if leftover.kind == LeftoverKind::Container
            && is_plain_name(&leftover.execution_id)
            && is_plain_name(&leftover.attempt)
        {
            let dir = format!("{}-{}", leftover.execution_id, leftover.attempt);
            remove_dir(&self.config.work_dir.join(dir)).await;
        }
        Ok(removed)
    }
}

/// The run directory: fresh, private to the worker, with the project's copy
/// handed to the container's user.
async fn prepare_run_dir(
    run_dir: &Path,
    spec: &RunSpec,
    workspace_dir: &Path,
    uid: Option<u32>,
    gid: Option<u32>,
) -> Result<Option<changes::Start>, RunnerError> {
    if tokio::fs::try_exists(run_dir).await.unwrap_or(false) {
        // Left over by an attempt whose worker died: start clean.
        tokio::fs::remove_dir_all(run_dir).await?;
    }
    tokio::fs::create_dir_all(run_dir).await?;
    set_mode(run_dir, 0o700).await?;
    let start = changes::prepare(
        &spec.project_dir,
        workspace_dir,
        spec.base_changes.clone(),
        &run_dir.join("start"),
    )
    .await
    .map_err(RunnerError::Start)?;
    let dest = workspace_dir.to_path_buf();
    tokio::task::spawn_blocking(move || workspace::hand_over(&dest, uid, gid))
        .await
        .map_err(|e| RunnerError::Start(format!("workspace hand-over panicked: {e}")))?
        .map_err(|e| RunnerError::Start(format!("cannot hand the workspace over: {e}")))?;
    Ok(start)
}

async fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    tokio::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).await
}

async fn remove_dir(dir: &Path) {
    if let Err(e) = tokio::fs::remove_dir_all(dir).await
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(dir = %dir.display(), error = %e, "could not remove run directory");
    }
}

/// Label values used in paths must not walk out of the work directory.
fn is_plain_name(text: &str) -> bool {
    !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
}

/// The uid and gid of a `runAsUser`, when they are numbers.
fn numeric_ids(user: &RunAsUser) -> (Option<u32>, Option<u32>) {
    match user {
        RunAsUser::Id(id) => (Some(*id), Some(*id)),
        RunAsUser::Name(name) => {
            let mut parts = name.splitn(2, ':');
            let uid = parts.next().and_then(|u| u.parse().ok());
            let gid = match parts.next() {
                Some(g) => g.parse().ok(),
                None => uid,
            };
            (uid, uid.and(gid))
        }
    }
}

/// Docker's `User`: a bare uid runs with that gid too (not the root group).
fn docker_user(user: &RunAsUser) -> String {
    match user {
        RunAsUser::Id(id) => format!("{id}:{id}"),
        RunAsUser::Name(name) => name.clone(),
    }
}

async fn note(lines: &mpsc::Sender<OutputLine>, text: String) {
    let _ = lines
        .send(OutputLine {
            stream: Stream::Note,
            text,
        })
        .await;
}

/// Sends the container's output to `lines`, one line at a time, per stream,
/// each at most `max_line` bytes ([`BoundedLines`]).
async fn forward(
    mut output: std::pin::Pin<
        Box<dyn futures::Stream<Item = Result<bollard::container::LogOutput, DockerError>> + Send>,
    >,
    max_line: usize,
    lines: mpsc::Sender<OutputLine>,
) {
    use bollard::container::LogOutput;
    let mut out = BoundedLines::new(max_line);
    let mut err = BoundedLines::new(max_line);
    while let Some(Ok(chunk)) = output.next().await {
        let (buffer, stream) = match chunk {
            LogOutput::StdErr { .. } => (&mut err, Stream::Stderr),
            LogOutput::StdOut { .. } | LogOutput::Console { .. } => (&mut out, Stream::Stdout),
            LogOutput::StdIn { .. } => continue,
        };
        for text in buffer.push(&chunk.into_bytes()) {
            if lines.send(OutputLine { stream, text }).await.is_err() {
                return;
            }
        }
    }
    for (buffer, stream) in [(out, Stream::Stdout), (err, Stream::Stderr)] {
        if let Some(text) = buffer.finish() {
            let _ = lines.send(OutputLine { stream, text }).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_and_ids() {
        assert_eq!(numeric_ids(&RunAsUser::Id(1000)), (Some(1000), Some(1000)));
        assert_eq!(
            numeric_ids(&RunAsUser::Name("1001:50".into())),
            (Some(1001), Some(50))
        );
        assert_eq!(numeric_ids(&RunAsUser::Name("node".into())), (None, None));
        assert_eq!(docker_user(&RunAsUser::Id(1000)), "1000:1000");
        assert_eq!(docker_user(&RunAsUser::Name("node".into())), "node");
        assert!(is_plain_name("0190-ab_c"));
        assert!(!is_plain_name("../etc"));
        assert!(!is_plain_name(""));
    }
}
