//! The bubblewrap sandbox of the process runner (`--runner process`).
//!
//! Each agent (and each validation check after it) runs as
//! `bwrap <isolation> -- <program> <args>`: [`Sandbox::command`] builds that
//! command line from a [`SandboxRun`] (what one run needs: its workspace, its
//! home, its MCP config, its egress socket). What the agent gets:
//!
//! * new user, PID, IPC, UTS, cgroup and network namespaces; it runs as
//!   `security.runAsUser` (default 1000) *inside* its user namespace and
//!   holds no capability; `no_new_privs` is always set (bwrap does so);
//! * a root that is an empty tmpfs with, read-only, `/usr` (and the
//!   `/bin`, `/lib*`, `/sbin` that point into it), the few files of `/etc`
//!   programs need (TLS roots, `ld.so.cache`, `nsswitch.conf`, alternatives;
//!   a `passwd` naming only the agent), the agent program itself and the
//!   operator's `--sandbox-bind` paths. Nothing else of the host: no `/home`,
//!   `/root`, `/var`, `/work`, no data directory, no database file;
//! * the run's workspace read-write at `/workspace` (its working directory),
//!   its own `HOME` at `/home/agent`, its own `/tmp` (a tmpfs);
//! * a `/proc` of its own PID namespace (the worker's processes and their
//!   environments are not in it) and a minimal `/dev`;
//! * its environment is built by the runner from nothing (the worker's is
//!   never inherited);
//! * no network interface but its own loopback. When the run may reach
//!   hosts, the runner's egress proxy listens on a Unix socket bound into
//!   the sandbox at `/run/ccs/egress.sock`, and the sandbox's first process
//!   is `ccs sandbox-init` ([`super::sandbox_init`]), which relays
//!   `127.0.0.1:3128` inside the sandbox to that socket; the agent gets
//!   `HTTP(S)_PROXY=http://127.0.0.1:3128`;
//! * resource limits set on bwrap before it starts (inherited by the
//!   sandbox): `RLIMIT_DATA` = `resources.memory`, `RLIMIT_NPROC` =
//!   `resources.pids` (the kernel does not count it for a worker running as
//!   root), `RLIMIT_CORE` = 0, and a CPU affinity of `ceil(resources.cpu)`
//!   CPUs.
//!
//! `--die-with-parent` and `PR_SET_PDEATHSIG` tie bwrap to the worker, and
//! bwrap is PID 1 of the sandbox's PID namespace: when it dies, the kernel
//! kills everything the agent started. A SIGKILLed worker leaves nothing.
//!
//! Produced by [`crate::cli`] from the `--sandbox-*` settings; used by
//! [`super::process::ProcessRunner`] for every agent and check.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::project_config::ContainerConfig;

/// Where the workspace appears inside the sandbox.
pub const WORKSPACE: &str = "/workspace";
/// The agent's `HOME` inside the sandbox.
pub const HOME: &str = "/home/agent";
/// The MCP config file inside the sandbox.
pub const MCP_CONFIG: &str = "/run/ccs/mcp.json";
/// The egress proxy's socket inside the sandbox.
pub const EGRESS_SOCKET: &str = "/run/ccs/egress.sock";
/// Where `ccs sandbox-init` is bound inside the sandbox.
pub const INIT: &str = "/run/ccs/init";
/// The in-sandbox address of the proxy relay.
pub const PROXY_PORT: u16 = 3128;

/// Host paths under `/etc` shown (read-only) when they exist.
const ETC_FILES: &[&str] = &[
    "/etc/ssl",
    "/etc/ca-certificates",
    "/etc/ca-certificates.conf",
    "/etc/pki",
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/nsswitch.conf",
    "/etc/alternatives",
    "/etc/localtime",
    "/etc/mime.types",
];

/// The operator's settings of the sandbox (the same for every run).
#[derive(Debug, Clone)]
pub struct Sandbox {
    /// The `bwrap` program.
    pub bwrap: PathBuf,
    /// The `ccs` binary, run inside the sandbox as `ccs sandbox-init` to
    /// relay the proxy (bound read-only at [`INIT`]).
    pub init: PathBuf,
    /// Extra host paths shown read-only at the same place
    /// (`--sandbox-bind`): toolchains outside `/usr`, say.
    pub ro_binds: Vec<PathBuf>,
    /// Extra host paths shown read-write at the same place
    /// (`--sandbox-bind-rw`).
    pub rw_binds: Vec<PathBuf>,
}

/// What one sandboxed process of a run needs.
#[derive(Debug, Clone)]
pub struct SandboxRun<'a> {
    /// The run's workspace on the host (shown at [`WORKSPACE`]).
    pub workspace: &'a Path,
    /// The run's home on the host (shown at [`HOME`]).
    pub home: &'a Path,
    /// The run's `passwd` file on the host (shown at `/etc/passwd`).
    pub passwd: &'a Path,
    /// The run's MCP config on the host, if any (shown at [`MCP_CONFIG`]).
    pub mcp_config: Option<&'a Path>,
    /// The egress proxy's Unix socket on the host; `None`: no network.
    pub egress_socket: Option<&'a Path>,
    /// The program's absolute host path, shown read-only where it is when
    /// it lies outside `/usr`.
    pub program: &'a Path,
    /// uid and gid inside the sandbox.
    pub uid: u32,
    /// Environment of the sandboxed process (the only one it gets).
    pub env: &'a [(String, String)],
}

impl Sandbox {
    /// Starts an empty sandbox once, so a worker that cannot make one (no
    /// bwrap, user namespaces disabled) fails at start, not on every run.
    ///
    /// # Errors
    ///
    /// bwrap is missing or cannot create the namespaces; bwrap's own
    /// message is in the error.
    pub async fn check(&self) -> Result<(), String> {
        let out = tokio::process::Command::new(&self.bwrap)
            .args(["--unshare-user", "--unshare-pid", "--unshare-ipc"])
            .args(["--unshare-net", "--die-with-parent", "--clearenv"])
            .args(["--ro-bind", "/", "/", "--", "/usr/bin/true"])
            .stdin(std::process::Stdio::null())
            .output()
            .await
            .map_err(|e| format!("{}: {e}", self.bwrap.display()))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{} failed ({}): {}",
                self.bwrap.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }

    /// The bwrap arguments (everything before the program) for `run`.
    pub fn args(&self, run: &SandboxRun<'_>) -> Vec<OsString> {
        let mut a = Args::default();
        a.flags(&[
            "--unshare-user",
            "--unshare-pid",
            "--unshare-ipc",
            "--unshare-uts",
            "--unshare-cgroup-try",
            "--unshare-net",
            "--die-with-parent",
            "--new-session",
            "--clearenv",
        ]);
        let id = run.uid.to_string();
        a.flag("--uid").arg(&id).flag("--gid").arg(&id);
        a.flag("--hostname").arg("ccs-sandbox");
        a.flag("--tmpfs").arg("/");
        a.flag("--ro-bind").arg("/usr").arg("/usr");
        for dir in ["/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"] {
            let path = Path::new(dir);
            match std::fs::read_link(path) {
                Ok(target) => {
                    a.flag("--symlink").arg(&target).arg(dir);
                }
                Err(_) if path.is_dir() => {
                    a.flag("--ro-bind").arg(dir).arg(dir);
                }
                Err(_) => {}
            }
        }
        for path in ETC_FILES {
            a.flag("--ro-bind-try").arg(path).arg(path);
        }
        a.flag("--ro-bind").arg(run.passwd).arg("/etc/passwd");
        a.flag("--proc").arg("/proc");
        a.flag("--dev").arg("/dev");
        a.flag("--tmpfs").arg("/tmp");
        a.flag("--dir").arg("/run/ccs");
        a.flag("--bind").arg(run.workspace).arg(WORKSPACE);
        a.flag("--bind").arg(run.home).arg(HOME);
        if let Some(mcp) = run.mcp_config {
            a.flag("--ro-bind").arg(mcp).arg(MCP_CONFIG);
        }
        if let Some(socket) = run.egress_socket {
            a.flag("--ro-bind").arg(socket).arg(EGRESS_SOCKET);
            a.flag("--ro-bind").arg(&self.init).arg(INIT);
        }
        if !run.program.starts_with("/usr") {
            a.flag("--ro-bind").arg(run.program).arg(run.program);
        }
        for path in &self.ro_binds {
            a.flag("--ro-bind-try").arg(path).arg(path);
        }
        for path in &self.rw_binds {
            a.flag("--bind-try").arg(path).arg(path);
        }
        for (name, value) in run.env {
            a.flag("--setenv").arg(name).arg(value);
        }
        a.flag("--chdir").arg(WORKSPACE);
        a.flag("--");
        if run.egress_socket.is_some() {
            a.arg(INIT).arg("sandbox-init").arg(EGRESS_SOCKET);
            a.arg(PROXY_PORT.to_string()).flag("--");
        }
        a.0
    }
}

/// The uid the agent runs as inside its sandbox: `security.runAsUser` when
/// it is numeric (`1000`, `"1000:1000"`); `None` for a user name, which
/// only an image can resolve (refused at registration for this runner).
pub fn sandbox_uid(container: &ContainerConfig) -> Option<u32> {
    use crate::project_config::RunAsUser;
    match &container.security.run_as_user {
        RunAsUser::Id(id) => Some(*id),
        RunAsUser::Name(name) => name.split(':').next()?.parse().ok(),
    }
}

/// The content of the sandbox's `/etc/passwd`: the agent alone.
pub fn passwd(uid: u32) -> String {
    let name = if uid == 0 { "root" } else { "agent" };
    format!("{name}:x:{uid}:{uid}:ccs agent:{HOME}:/bin/sh\n")
}

/// Resource limits applied to bwrap before it execs (inherited by
/// everything in the sandbox).
#[derive(Debug, Clone, Copy)]
pub struct Rlimits {
    /// `RLIMIT_DATA` in bytes.
    pub data: u64,
    /// `RLIMIT_NPROC`.
    pub nproc: u64,
    /// CPUs the sandbox may run on (affinity to the first `cpus` allowed).
    pub cpus: usize,
}

impl Rlimits {
    pub fn of(container: &ContainerConfig) -> Self {
        Self {
            data: container.resources.memory.bytes(),
            nproc: u64::from(container.resources.pids),
            cpus: usize::try_from(container.resources.cpu.millis().div_ceil(1000))
                .unwrap_or(usize::MAX)
                .max(1),
        }
    }

    /// Sets these limits on `cmd`'s child before it execs.
    #[expect(
        unsafe_code,
        reason = "pre_exec is unsafe; the closure only calls the async-signal-safe setrlimit(2) and sched_{get,set}affinity(2)"
    )]
    pub fn apply(self, cmd: &mut tokio::process::Command) {
        // SAFETY: setrlimit and sched_*affinity are plain system calls; the
        // closure allocates nothing and touches no memory of the parent.
        unsafe {
            cmd.pre_exec(move || {
                let set = |resource, value: u64| {
                    let limit = libc::rlimit {
                        rlim_cur: value,
                        rlim_max: value,
                    };
                    if libc::setrlimit(resource, &limit) == -1 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                };
                set(libc::RLIMIT_DATA, self.data)?;
                set(libc::RLIMIT_NPROC, self.nproc)?;
                set(libc::RLIMIT_CORE, 0)?;
                let mut allowed: libc::cpu_set_t = std::mem::zeroed();
                let size = std::mem::size_of::<libc::cpu_set_t>();
                if libc::sched_getaffinity(0, size, &mut allowed) == 0 {
                    let mut chosen: libc::cpu_set_t = std::mem::zeroed();
                    let mut n = 0;
                    for cpu in 0..libc::CPU_SETSIZE as usize {
                        if n == self.cpus {
                            break;
                        }
                        if libc::CPU_ISSET(cpu, &allowed) {
                            libc::CPU_SET(cpu, &mut chosen);
                            n += 1;
                        }
                    }
                    if libc::sched_setaffinity(0, size, &chosen) == -1 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
    }
}

/// An argument list under construction.
#[derive(Default)]
struct Args(Vec<OsString>);

impl Args {
    fn flag(&mut self, flag: &str) -> &mut Self {
        self.0.push(flag.into());
        self
    }
    fn flags(&mut self, flags: &[&str]) -> &mut Self {
        for f in flags {
            self.flag(f);
        }
        self
    }
    fn arg(&mut self, arg: impl AsRef<std::ffi::OsStr>) -> &mut Self {
        self.0.push(arg.as_ref().to_owned());
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sandbox() -> Sandbox {
        Sandbox {
            bwrap: "bwrap".into(),
            init: "/opt/ccs/bin/ccs".into(),
            ro_binds: vec!["/opt/tools".into()],
            rw_binds: vec![],
        }
    }

    fn strings(args: &[OsString]) -> Vec<String> {
        args.iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    fn has(args: &[String], seq: &[&str]) -> bool {
        args.windows(seq.len()).any(|w| w == seq)
    }

    #[test]
    fn isolates_and_shows_only_what_the_agent_needs() {
        let env = vec![("HOME".to_owned(), HOME.to_owned())];
        let run = SandboxRun {
            workspace: Path::new("/data/runs/e-1/workspace"),
            home: Path::new("/data/runs/e-1/home"),
            passwd: Path::new("/data/runs/e-1/passwd"),
            mcp_config: None,
            egress_socket: None,
            program: Path::new("/work/target/ccs-test-agent"),
            uid: 1000,
            env: &env,
        };
        let args = strings(&sandbox().args(&run));
        for flag in [
            "--unshare-user",
            "--unshare-pid",
            "--unshare-ipc",
            "--unshare-net",
            "--die-with-parent",
            "--clearenv",
        ] {
            assert!(args.contains(&flag.to_owned()), "{flag} missing: {args:?}");
        }
        assert!(has(&args, &["--uid", "1000", "--gid", "1000"]));
        assert!(has(&args, &["--tmpfs", "/"]));
        assert!(has(&args, &["--ro-bind", "/usr", "/usr"]));
        assert!(has(
            &args,
            &["--bind", "/data/runs/e-1/workspace", "/workspace"]
        ));
        assert!(has(&args, &["--bind", "/data/runs/e-1/home", HOME]));
        assert!(has(
            &args,
            &[
                "--ro-bind",
                "/work/target/ccs-test-agent",
                "/work/target/ccs-test-agent"
            ]
        ));
        assert!(has(&args, &["--ro-bind-try", "/opt/tools", "/opt/tools"]));
        assert!(has(&args, &["--proc", "/proc"]));
        assert!(has(&args, &["--setenv", "HOME", HOME]));
        assert_eq!(args.last().map(String::as_str), Some("--"));
        // Nothing else of the host is bound writable, and no socket or init
        // without egress.
        let binds: Vec<_> = args
            .windows(2)
            .filter(|w| w[0] == "--bind")
            .map(|w| w[1].clone())
            .collect();
        assert_eq!(
            binds,
            ["/data/runs/e-1/workspace", "/data/runs/e-1/home"],
            "{args:?}"
        );
        assert!(!args.iter().any(|a| a == INIT));
    }

    #[test]
    fn egress_goes_through_the_init_relay() {
        let run = SandboxRun {
            workspace: Path::new("/w"),
            home: Path::new("/h"),
            passwd: Path::new("/p"),
            mcp_config: Some(Path::new("/r/mcp.json")),
            egress_socket: Some(Path::new("/r/egress.sock")),
            program: Path::new("/usr/bin/claude"),
            uid: 1000,
            env: &[],
        };
        let args = strings(&sandbox().args(&run));
        assert!(has(&args, &["--ro-bind", "/r/egress.sock", EGRESS_SOCKET]));
        assert!(has(&args, &["--ro-bind", "/opt/ccs/bin/ccs", INIT]));
        assert!(has(&args, &["--ro-bind", "/r/mcp.json", MCP_CONFIG]));
        assert!(has(
            &args,
            &["--", INIT, "sandbox-init", EGRESS_SOCKET, "3128", "--"]
        ));
        // A program under /usr is already visible.
        assert!(!has(&args, &["--ro-bind", "/usr/bin/claude"]));
    }

    #[test]
    fn uid_from_run_as_user() {
        let mut c = ContainerConfig::default();
        assert_eq!(sandbox_uid(&c), Some(1000));
        c.security.run_as_user = crate::project_config::RunAsUser::Name("1234:1234".into());
        assert_eq!(sandbox_uid(&c), Some(1234));
        c.security.run_as_user = crate::project_config::RunAsUser::Name("node".into());
        assert_eq!(sandbox_uid(&c), None);
    }
}
