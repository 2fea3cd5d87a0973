//! A fresh database per measurement, on each backend.
//!
//! SQLite lives in a temporary directory; MariaDB and PostgreSQL get a
//! `CREATE DATABASE ccs_b_<uuid>` on the servers named by
//! `CCS_TEST_MYSQL_URL` / `CCS_TEST_POSTGRES_URL` (the variables the tests
//! read; `scripts/db/start-all.sh` prints them). A backend whose server is
//! not named is skipped, and said so in the output.

use anyhow::Context as _;
use ccs::db::Backend;
use sqlx::Connection as _;

/// Which servers to use and which backends to measure.
#[derive(Debug, Clone, clap::Args)]
pub struct Servers {
    /// Admin URL of the MariaDB/MySQL server (a database on it is created
    /// per measurement).
    #[arg(long, env = "CCS_TEST_MYSQL_URL")]
    pub mysql_url: Option<String>,

    /// Admin URL of the PostgreSQL server.
    #[arg(long, env = "CCS_TEST_POSTGRES_URL")]
    pub postgres_url: Option<String>,

    /// Backends to measure, comma-separated: sqlite, mysql, postgres.
    #[arg(
        long,
        env = "CCS_BENCH_BACKENDS",
        value_delimiter = ',',
        default_value = "sqlite,mysql,postgres"
    )]
    pub backends: Vec<String>,
}

impl Servers {
    /// The backends to measure, each with the admin URL of its server
    /// (`None` for SQLite). Unconfigured servers are reported and skipped.
    pub fn selected(&self) -> anyhow::Result<Vec<(Backend, Option<String>)>> {
        let mut out = Vec::new();
        for name in &self.backends {
            let (backend, admin) = match name.trim() {
                "sqlite" => (Backend::Sqlite, None),
                "mysql" | "mariadb" => (Backend::MySql, self.mysql_url.clone()),
                "postgres" | "postgresql" => (Backend::Postgres, self.postgres_url.clone()),
                other => anyhow::bail!("unknown backend {other:?}: use sqlite, mysql or postgres"),
            };
            if backend != Backend::Sqlite && admin.is_none() {
                eprintln!(
                    "skipping {backend}: set CCS_TEST_{}_URL (eval \"$(scripts/db/start-all.sh)\")",
                    backend.name().to_uppercase()
                );
                continue;
            }
            out.push((backend, admin));
        }
        Ok(out)
    }
}

/// A database made for one measurement.
pub struct BenchDb {
    pub backend: Backend,
    /// What ccs and the workers connect to.
    pub url: String,
    admin: Option<(String, String)>,
    _dir: Option<tempfile::TempDir>,
}

impl BenchDb {
    /// Creates an empty database (`admin` is the server's URL; `None` for
    /// SQLite).
    pub async fn create(backend: Backend, admin: Option<&str>) -> anyhow::Result<BenchDb> {
        match (backend, admin) {
            (Backend::Sqlite, _) => {
                let dir = tempfile::tempdir()?;
                let url = format!("sqlite://{}", dir.path().join("ccs.db").display());
                Ok(BenchDb {
                    backend,
                    url,
                    admin: None,
                    _dir: Some(dir),
                })
            }
            (_, Some(admin)) => {
                let name = format!("ccs_b_{}", uuid::Uuid::new_v4().simple());
                sqlx::any::install_default_drivers();
                let mut conn = sqlx::AnyConnection::connect(admin)
                    .await
                    .with_context(|| format!("cannot reach {backend} at {admin}"))?;
                sqlx::query(&format!("CREATE DATABASE {name}"))
                    .execute(&mut conn)
                    .await
                    .context("create database")?;
                conn.close().await?;
                let base = admin.rsplit_once('/').map_or(admin, |(b, _)| b);
                Ok(BenchDb {
                    backend,
                    url: format!("{base}/{name}"),
                    admin: Some((admin.to_owned(), name)),
                    _dir: None,
                })
            }
            (_, None) => anyhow::bail!("no server URL for {backend}"),
        }
    }

    /// Drops the database (close every pool on it first). SQLite's
    /// directory goes with `self`.
    pub async fn drop_database(self) -> anyhow::Result<()> {
        if let Some((admin, name)) = &self.admin {
            let mut conn = sqlx::AnyConnection::connect(admin).await?;
            let force = if self.backend == Backend::Postgres {
                " WITH (FORCE)"
            } else {
                ""
            };
            sqlx::query(&format!("DROP DATABASE {name}{force}"))
                .execute(&mut conn)
                .await
                .with_context(|| format!("drop database {name}"))?;
            conn.close().await?;
        }
        Ok(())
    }
}

/// apalis's jobs table on a backend.
pub fn jobs_table(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => "Jobs",
        Backend::MySql => "jobs",
        Backend::Postgres => "apalis.jobs",
    }
}

/// apalis's workers table on a backend (a worker registers on start).
pub fn workers_table(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => "Workers",
        Backend::MySql => "workers",
        Backend::Postgres => "apalis.workers",
    }
}
