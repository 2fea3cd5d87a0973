//! Benchmarks of the ccs job pipeline, each printed beside a baseline
//! measured in the same run on the same database (`docs/benchmarks.md`).
//!
//! Two bench targets (`harness = false`) and one helper binary:
//!
//! * `benches/ingestion.rs` — authenticated `POST /webhook/execute` against an
//!   in-process API on 127.0.0.1 with no worker, beside plain single-row
//!   `INSERT` commits through sqlx at the same concurrency;
//! * `benches/queue.rs` — jobs per second drained by 1, 2 and 4 `ccs worker`
//!   processes running the test agent, beside as many bare apalis workers
//!   (`src/bin/bare_apalis_worker.rs`), and enqueue-to-start latency with
//!   idle workers; on MariaDB also the plan of apalis-mysql's fetch query.
//!
//! The library holds what both share: fresh databases ([`databases`]), a
//! migrated ccs database with a key and a project ([`fixture`]), the
//! closed-loop load generator ([`load`]), percentiles ([`stats`]), worker
//! processes ([`processes`]), CPU accounting ([`cpu`]) and the printed tables
//! ([`report`]).
//! `scripts/bench.sh` starts the database servers, builds and runs it all.

pub mod cpu;
pub mod databases;
pub mod fixture;
pub mod load;
pub mod processes;
pub mod report;
pub mod stats;

/// A bench binary's `main`: runs `run` on a Tokio runtime; an error is
/// printed and makes the exit code a failure.
pub fn run_main<F>(run: F) -> std::process::ExitCode
where
    F: std::future::Future<Output = anyhow::Result<()>>,
{
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
