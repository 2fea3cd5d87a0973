//! A ccs database ready for work: migrated (what `ccs migrate` does), with
//! an admin API key and one registered project (a directory holding a
//! README, so the per-run workspace copy stays small).

use anyhow::Context as _;
use ccs::db::{Backend, Database};
use ccs::store::{NewExecution, Permission, Store};

use crate::databases::BenchDb;

/// Connections per pool: ccs's default (`CCS_DB_MAX_CONNECTIONS`).
pub const POOL_SIZE: u32 = 16;

/// A migrated ccs database with a key and a project.
pub struct Service {
    pub db: BenchDb,
    pub database: Database,
    pub store: Store,
    pub admin_key: String,
    pub project_id: i64,
    _project_dir: tempfile::TempDir,
}

impl Service {
    /// A fresh database on `backend`, set up for submissions.
    pub async fn create(backend: Backend, admin: Option<&str>) -> anyhow::Result<Service> {
        let db = BenchDb::create(backend, admin).await?;
        let database = Database::connect(&db.url, POOL_SIZE).await?;
        database.migrate().await.context("migrate")?;
        let store = Store::new(database.store.clone(), backend);
        let admin_key = ccs::auth::issue_key(&store, "bench", &[Permission::Admin], None)
            .await?
            .key;
        let project_dir = tempfile::tempdir()?;
        std::fs::write(
            project_dir.path().join("README.md"),
            "a benchmark project\n",
        )?;
        let project = ccs::projects::register(
            &store,
            ccs::projects::NewProjectRequest {
                name: "bench".into(),
                path: project_dir.path().to_path_buf(),
                description: None,
                container: None,
                workflow: None,
                repository: None,
                github: None,
            },
        )
        .await?;
        Ok(Service {
            db,
            database,
            store,
            admin_key,
            project_id: project.id,
            _project_dir: project_dir,
        })
    }

    /// Enqueues one execution through [`Store::create_execution`] (the
    /// execution row and its job row in one transaction); returns its id.
    pub async fn enqueue(&self, prompt: &str) -> anyhow::Result<String> {
        let created = self
            .store
            .create_execution(&NewExecution {
                project_id: self.project_id,
                workflow_id: None,
                prompt: prompt.to_owned(),
                source: "bench".into(),
                idempotency_key: None,
                api_key_id: None,
                resume_from: None,
            })
            .await?;
        Ok(created.value.id)
    }

    /// Closes the pools and drops the database.
    pub async fn drop_database(self) -> anyhow::Result<()> {
        self.database.close().await;
        self.db.drop_database().await
    }
}
