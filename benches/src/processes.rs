//! Worker processes: `ccs worker` and the bare apalis worker, started with
//! the same concurrency, buffer size and poll interval, stopped with
//! SIGTERM (then SIGKILL if they overstay).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context as _;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// The release binaries the queue benchmark starts.
#[derive(Debug, Clone)]
pub struct Binaries {
    /// `target/release/ccs`.
    pub ccs: PathBuf,
    /// `target/release/ccs-test-agent`: the agent command of `ccs worker`.
    pub test_agent: PathBuf,
    /// `target/release/bare-apalis-worker`.
    pub bare_worker: PathBuf,
}

impl Binaries {
    /// The binaries beside the bare worker (all in `target/release`).
    pub fn beside(bare_worker: &Path) -> anyhow::Result<Binaries> {
        let bins = Binaries {
            ccs: bare_worker.with_file_name("ccs"),
            test_agent: bare_worker.with_file_name("ccs-test-agent"),
            bare_worker: bare_worker.to_path_buf(),
        };
        for path in [&bins.ccs, &bins.test_agent, &bins.bare_worker] {
            anyhow::ensure!(
                path.exists(),
                "{} is missing: run `cargo build --release -p ccs -p ccs-test-agent -p ccs-bench` \
                 (scripts/bench.sh does)",
                path.display()
            );
        }
        Ok(bins)
    }
}

/// How every worker process of a measurement is configured.
#[derive(Debug, Clone, Copy)]
pub struct WorkerShape {
    /// Jobs one process runs at once; also apalis's buffer size.
    pub concurrency: usize,
    /// How often an idle worker polls.
    pub poll_interval: Duration,
}

/// A running worker process.
pub struct WorkerProcess {
    child: tokio::process::Child,
}

impl WorkerProcess {
    /// `ccs worker` on `url`, running the test agent in `work_dir`;
    /// its stderr goes to `log`.
    pub fn ccs(
        bins: &Binaries,
        url: &str,
        shape: WorkerShape,
        work_dir: &Path,
        log: &Path,
    ) -> anyhow::Result<WorkerProcess> {
        let mut cmd = tokio::process::Command::new(&bins.ccs);
        cmd.arg("worker")
            .args(["--concurrency", &shape.concurrency.to_string()])
            .args(["--poll-interval", &format_duration(shape.poll_interval)])
            .args(["--worker-listen", "127.0.0.1:0"])
            .args(["--shutdown-grace", "2s"])
            .env("CCS_DATABASE_URL", url)
            .env("CCS_AGENT_COMMAND", &bins.test_agent)
            .env("CCS_WORK_DIR", work_dir);
        Self::spawn(cmd, log)
    }

    /// The bare apalis worker on `url`; it writes what it ran to `record`
    /// when it stops. `postgres_notify`: LISTEN/NOTIFY as well as polling.
    pub fn bare(
        bins: &Binaries,
        url: &str,
        shape: WorkerShape,
        record: &Path,
        log: &Path,
        postgres_notify: bool,
    ) -> anyhow::Result<WorkerProcess> {
        let mut cmd = tokio::process::Command::new(&bins.bare_worker);
        if postgres_notify {
            cmd.arg("--postgres-notify");
        }
        cmd.args(["--concurrency", &shape.concurrency.to_string()])
            .args(["--poll-interval", &format_duration(shape.poll_interval)])
            .arg("--record")
            .arg(record)
            .env("CCS_DATABASE_URL", url);
        Self::spawn(cmd, log)
    }

    fn spawn(mut cmd: tokio::process::Command, log: &Path) -> anyhow::Result<WorkerProcess> {
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("open {}", log.display()))?;
        let child = cmd
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .context("spawn worker")?;
        Ok(WorkerProcess { child })
    }

    /// SIGTERM, then SIGKILL after 15 s.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(pid) = self.child.id() {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
        }
        match tokio::time::timeout(Duration::from_secs(15), self.child.wait()).await {
            Ok(status) => {
                status?;
            }
            Err(_) => {
                eprintln!("worker did not stop within 15 s of SIGTERM; killing it");
                self.child.kill().await?;
            }
        }
        Ok(())
    }
}

/// `250ms`, as the workers' `--poll-interval` parses it.
fn format_duration(d: Duration) -> String {
    format!("{}ms", d.as_millis())
}

/// What a bare worker ran: `(execution id, epoch ms it got the job)`, one
/// `id ms` line each.
pub fn read_record(path: &Path) -> anyhow::Result<Vec<(String, i64)>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("read {}", path.display())),
    };
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let (id, ms) = l
                .split_once(' ')
                .with_context(|| format!("bad record line {l:?}"))?;
            Ok((id.to_owned(), ms.trim().parse()?))
        })
        .collect()
}
