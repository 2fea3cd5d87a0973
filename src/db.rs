//! Which database a URL names, how ccs connects to it and migrates it.
//!
//! One code base serves three backends, chosen by the URL scheme:
//! `sqlite://` (the embedded default), `mysql://` (MySQL 8 / MariaDB 10.6+)
//! and `postgres://` (PostgreSQL 14+).
//!
//! Two kinds of pools exist per process:
//! * the **store pool** ([`sqlx::AnyPool`]), used by [`crate::store`] for the
//!   service's own tables *and* to insert queue rows in the same transaction
//!   as the record they belong to;
//! * the **queue pool**, typed for the apalis storage of the backend
//!   ([`QueuePool`]).
//!
//! Migrations: ccs's own live in `migrations/<backend>/` (versions 1, 2, …);
//! apalis's (timestamp versions) are applied by apalis for SQLite and
//! PostgreSQL, while for MySQL/MariaDB ccs ships the queue tables itself (see
//! `migrations/mysql/0002_apalis_queue.sql` for why).

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context as _;
use sqlx::AnyPool;
use sqlx::any::AnyPoolOptions;

/// The database family a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    Sqlite,
    MySql,
    Postgres,
}

impl Backend {
    /// The backend of a database URL, from its scheme.
    pub fn from_url(url: &str) -> Result<Self, UnknownScheme> {
        let scheme = url.split(':').next().unwrap_or_default();
        match scheme {
            "sqlite" => Ok(Self::Sqlite),
            "mysql" | "mariadb" => Ok(Self::MySql),
            "postgres" | "postgresql" => Ok(Self::Postgres),
            _ => Err(UnknownScheme(scheme.to_owned())),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::MySql => "mysql",
            Self::Postgres => "postgres",
        }
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unsupported database URL scheme {0:?}: use sqlite://…, mysql://… or postgres://…")]
pub struct UnknownScheme(String);

/// The typed pool the apalis storage of a backend needs.
#[derive(Clone, Debug)]
pub enum QueuePool {
    Sqlite(sqlx::SqlitePool),
    MySql(sqlx::MySqlPool),
    Postgres(sqlx::PgPool),
}

/// Both pools of a process, plus what they point at.
#[derive(Clone, Debug)]
pub struct Database {
    pub backend: Backend,
    pub store: AnyPool,
    pub queue: QueuePool,
}

/// Every MySQL/MariaDB session of both pools runs at `READ COMMITTED`,
/// PostgreSQL's default, so that one set of SQL behaves the same on both:
/// each statement of a transaction sees what others committed before it
/// (admission counts under a lock, `src/store/limits.rs`), and locking
/// reads take no gap locks. Under InnoDB's default `REPEATABLE READ`,
/// apalis-mysql's `SELECT … FOR UPDATE SKIP LOCKED` fetch holds next-key
/// locks on the `jobs` indexes that deadlock against the API's job inserts
/// (a `500` for the request) and against the reapers (a worker restart).
const MYSQL_READ_COMMITTED: &str = "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED";

/// How long a caller waits for a connection before the database counts as
/// unavailable (`/readyz` and the webhooks answer 503 after this).
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

impl Database {
    /// Connects both pools. `max_connections` bounds each pool.
    pub async fn connect(url: &str, max_connections: u32) -> anyhow::Result<Self> {
        sqlx::any::install_default_drivers();
        let backend = Backend::from_url(url)?;
        let url = normalize_url(backend, url);
        let store = AnyPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::MySql {
                        sqlx::Executor::execute(conn, MYSQL_READ_COMMITTED).await?;
                    }
                    Ok(())
                })
            })
            .connect_lazy(&url)
            .with_context(|| format!("invalid {backend} database URL"))?;
        let queue = match backend {
            Backend::Sqlite => {
                let options = sqlx::sqlite::SqliteConnectOptions::from_str(&url)?
                    .create_if_missing(true)
                    .busy_timeout(Duration::from_secs(30));
                QueuePool::Sqlite(
                    sqlx::pool::PoolOptions::new()
                        .max_connections(max_connections)
                        .acquire_timeout(ACQUIRE_TIMEOUT)
                        .connect_lazy_with(options),
                )
            }
            Backend::MySql => QueuePool::MySql(
                sqlx::mysql::MySqlPoolOptions::new()
                    .max_connections(max_connections)
                    .acquire_timeout(ACQUIRE_TIMEOUT)
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            sqlx::Executor::execute(conn, MYSQL_READ_COMMITTED).await?;
                            Ok(())
                        })
                    })
                    .connect_lazy(&url)?,
            ),
            Backend::Postgres => QueuePool::Postgres(
                sqlx::postgres::PgPoolOptions::new()
                    .max_connections(max_connections)
                    .acquire_timeout(ACQUIRE_TIMEOUT)
                    .connect_lazy(&url)?,
            ),
        };
        Ok(Self {
            backend,
            store,
            queue,
        })
    }

    /// Applies apalis's and ccs's migrations. Safe to run concurrently from
    /// several processes (sqlx takes an advisory lock where the backend has
    /// one) and again on an up-to-date database.
    pub async fn migrate(&self) -> anyhow::Result<()> {
        match &self.queue {
            QueuePool::Sqlite(pool) => {
                // WAL lets readers proceed while one writer commits.
                sqlx::query("PRAGMA journal_mode = 'WAL'")
                    .execute(pool)
                    .await?;
                let mut migrator = apalis_sqlite::SqliteStorage::migrations();
                migrator.set_ignore_missing(true);
                migrator
                    .run(pool)
                    .await
                    .context("apalis-sqlite migrations")?;
            }
            QueuePool::Postgres(pool) => {
                let mut migrator = apalis_postgres::PostgresStorage::migrations();
                migrator.set_ignore_missing(true);
                migrator
                    .run(pool)
                    .await
                    .context("apalis-postgres migrations")?;
            }
            // Shipped as ccs's own migration 0002 (see the module docs).
            QueuePool::MySql(_) => {}
        }
        let mut migrator = match self.backend {
            Backend::Sqlite => sqlx::migrate!("migrations/sqlite"),
            Backend::MySql => sqlx::migrate!("migrations/mysql"),
            Backend::Postgres => sqlx::migrate!("migrations/postgres"),
        };
        // Both sets share sqlx's `_sqlx_migrations` table.
        migrator.set_ignore_missing(true);
        migrator.run(&self.store).await.context("ccs migrations")?;
        Ok(())
    }

    /// Closes both pools, waiting for connections in use to come back.
    pub async fn close(&self) {
        self.store.close().await;
        match &self.queue {
            QueuePool::Sqlite(p) => p.close().await,
            QueuePool::MySql(p) => p.close().await,
            QueuePool::Postgres(p) => p.close().await,
        }
    }
}

/// SQLite URLs create their file when missing; others pass unchanged.
fn normalize_url(backend: Backend, url: &str) -> String {
    if backend == Backend::Sqlite && !url.contains("mode=") && !url.contains(":memory:") {
        let sep = if url.contains('?') { '&' } else { '?' };
        format!("{url}{sep}mode=rwc")
    } else {
        url.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backends_from_urls() {
        assert_eq!(Backend::from_url("sqlite://x.db").unwrap(), Backend::Sqlite);
        assert_eq!(Backend::from_url("mysql://u@h/db").unwrap(), Backend::MySql);
        assert_eq!(
            Backend::from_url("postgres://u@h/db").unwrap(),
            Backend::Postgres
        );
        let err = Backend::from_url("redis://h").unwrap_err().to_string();
        assert!(err.contains("redis"), "{err}");
    }

    #[test]
    fn sqlite_urls_create_their_file() {
        assert_eq!(
            normalize_url(Backend::Sqlite, "sqlite://a.db"),
            "sqlite://a.db?mode=rwc"
        );
        assert_eq!(
            normalize_url(Backend::Sqlite, "sqlite://a.db?mode=ro"),
            "sqlite://a.db?mode=ro"
        );
    }
}
