//! CPU accounting from `/proc`, to tell what a measurement was bound by:
//! this process (the in-process API and the load generator; SQLite too),
//! the worker processes it ran (and their agents), the database server, and
//! how busy the whole machine was.
//!
//! The database server's processes are found by name (`mariadbd`/`mysqld`,
//! `postgres`), so anything else using the same server during a run counts
//! too; the machine figure includes everything on the machine.

use std::time::Duration;

use ccs::db::Backend;

/// Linux reports `/proc` times in USER_HZ ticks, which is 100 per second.
const TICKS_PER_SECOND: u64 = 100;

/// CPU used during a measurement.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuUse {
    /// This process.
    pub own: Duration,
    /// Children of this process that exited and were waited for (worker
    /// processes, with the agents they ran).
    pub children: Duration,
    /// The database server (`None` for SQLite, which runs in-process).
    pub database: Option<Duration>,
    /// Share of all cores busy, %.
    pub machine_busy: f64,
}

/// Counters at the start of a measurement.
#[derive(Debug, Clone, Copy)]
pub struct CpuMeter {
    backend: Backend,
    own: Duration,
    children: Duration,
    database: Option<Duration>,
    machine: (u64, u64),
}

impl CpuMeter {
    pub fn start(backend: Backend) -> CpuMeter {
        let (own, children) = self_times();
        CpuMeter {
            backend,
            own,
            children,
            database: database_server(backend),
            machine: machine_ticks(),
        }
    }

    /// What was used since [`CpuMeter::start`].
    pub fn finish(&self) -> CpuUse {
        let (own, children) = self_times();
        let (busy, total) = machine_ticks();
        let total = total.saturating_sub(self.machine.1);
        let machine_busy = if total == 0 {
            0.0
        } else {
            100.0 * busy.saturating_sub(self.machine.0) as f64 / total as f64
        };
        CpuUse {
            own: own.saturating_sub(self.own),
            children: children.saturating_sub(self.children),
            database: database_server(self.backend)
                .zip(self.database)
                .map(|(now, then)| now.saturating_sub(then)),
            machine_busy,
        }
    }
}

/// Milliseconds of `d` per operation, one decimal.
pub fn ms_per(d: Duration, ops: usize) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0 / ops.max(1) as f64)
}

fn ticks(t: u64) -> Duration {
    Duration::from_millis(t * 1000 / TICKS_PER_SECOND)
}

/// The numeric fields of `/proc/<pid>/stat` after the command name (in
/// parentheses): index 0 is field 3 (state), so utime (14) is 11, stime 12,
/// cutime 13, cstime 14.
fn stat_fields(pid: &str) -> Vec<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    after
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect()
}

fn field(fields: &[u64], i: usize) -> u64 {
    fields.get(i).copied().unwrap_or(0)
}

/// (own utime + stime, reaped children's cutime + cstime).
fn self_times() -> (Duration, Duration) {
    let f = stat_fields("self");
    (
        ticks(field(&f, 11) + field(&f, 12)),
        ticks(field(&f, 13) + field(&f, 14)),
    )
}

/// All CPU of the server's processes, including exited children they
/// reaped (PostgreSQL's connection backends).
fn database_server(backend: Backend) -> Option<Duration> {
    let names: &[&str] = match backend {
        Backend::Sqlite => return None,
        Backend::MySql => &["mariadbd", "mysqld"],
        Backend::Postgres => &["postgres"],
    };
    let mut total = 0;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let pid = entry.file_name().to_string_lossy().into_owned();
        if !pid.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
        if names.contains(&comm.trim()) {
            let f = stat_fields(&pid);
            total += field(&f, 11) + field(&f, 12) + field(&f, 13) + field(&f, 14);
        }
    }
    Some(ticks(total))
}

/// (busy, total) ticks of all cores, from `/proc/stat`.
fn machine_ticks() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let t: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    let total: u64 = t.iter().sum();
    // idle and iowait
    let idle = field(&t, 3) + field(&t, 4);
    (total - idle, total)
}
