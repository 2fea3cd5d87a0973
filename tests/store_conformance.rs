//! The store conformance suite: every method of [`ccs::store::Store`]
//! behaves the same on SQLite, MariaDB and PostgreSQL. A new backend (or a
//! new query) is done when this suite passes on it.

mod common;

use ccs::db::{Backend, Database};
use ccs::store::{
    ExecutionStatus, LogLine, NewExecution, NewProject, Outcome, Permission, Store, StoreError,
};
use common::TestDb;

const EXECUTIONS: &str = <ccs::jobs::execute::ExecuteJob as ccs::jobs::Job>::QUEUE;

async fn store(backend: Backend) -> Option<(TestDb, Database, Store)> {
    let db = TestDb::new(backend).await?;
    let database = Database::connect(&db.url, 8).await.unwrap();
    database.migrate().await.unwrap();
    // Migrating twice is a no-op.
    database.migrate().await.unwrap();
    let store = Store::new(database.store.clone(), backend);
    Some((db, database, store))
}

fn new_project(name: &str) -> NewProject {
    NewProject {
        name: name.into(),
        path: "/srv/p".into(),
        description: Some("d".into()),
        container_yaml: Some("resources:\n  memory: 1Gi\n".into()),
        workflow_yaml: None,
        repository: Some("acme/widgets".into()),
        github_config: None,
    }
}

fn new_execution(project_id: i64, key: Option<&str>) -> NewExecution {
    NewExecution {
        project_id,
        workflow_id: None,
        prompt: "ünïcode prompt ✓".into(),
        source: "api".into(),
        idempotency_key: key.map(str::to_owned),
        api_key_id: None,
        resume_from: None,
    }
}

async fn projects(backend: Backend) {
    let Some((_db, database, s)) = store(backend).await else {
        return;
    };
    s.ping().await.unwrap();
    let p = s.create_project(&new_project("alpha")).await.unwrap();
    assert_eq!(p.name, "alpha");
    assert_eq!(p.description.as_deref(), Some("d"));
    assert!(p.container_yaml.as_deref().unwrap().contains("1Gi"));
    assert_eq!(s.project(p.id).await.unwrap().unwrap().name, "alpha");
    assert_eq!(s.project_by_name("alpha").await.unwrap().unwrap().id, p.id);
    assert!(s.project(p.id + 100).await.unwrap().is_none());
    assert!(matches!(
        s.create_project(&new_project("alpha")).await,
        Err(StoreError::Conflict { .. })
    ));
    s.create_project(&new_project("beta")).await.unwrap();
    let names: Vec<String> = s
        .projects()
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(names, ["alpha", "beta"]);
    database.close().await;
}
backend_tests!(projects, super::projects);

async fn api_keys(backend: Backend) {
    let Some((_db, database, s)) = store(backend).await else {
        return;
    };
    assert_eq!(s.count_api_keys().await.unwrap(), 0);
    let issued = ccs::auth::issue_key(&s, "ci", &[Permission::Execute, Permission::Read], Some(42))
        .await
        .unwrap();
    assert_eq!(s.count_api_keys().await.unwrap(), 1);
    let r = s
        .api_key_by_hash(&ccs::auth::hash_key(&issued.key))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.permissions, [Permission::Execute, Permission::Read]);
    assert_eq!(r.expires_at, Some(42));
    assert_eq!(r.use_count, 0);
    s.touch_api_key(r.id).await.unwrap();
    s.touch_api_key(r.id).await.unwrap();
    let r = s.api_key_by_hash(&r.key_hash).await.unwrap().unwrap();
    assert_eq!(r.use_count, 2);
    assert!(r.last_used_at.is_some());
    assert!(s.api_key_by_hash("nope").await.unwrap().is_none());
    database.close().await;
}
backend_tests!(api_keys, super::api_keys);

async fn execution_lifecycle(backend: Backend) {
    let Some((_db, database, s)) = store(backend).await else {
        return;
    };
    let p = s.create_project(&new_project("p")).await.unwrap();
    let created = s
        .create_execution(&new_execution(p.id, None))
        .await
        .unwrap();
    assert!(created.created);
    let e = created.value;
    assert_eq!(e.status, ExecutionStatus::Queued);
    assert_eq!(e.prompt, "ünïcode prompt ✓");
    assert_eq!(e.attempts, 0);
    // One job row in the executions queue.
    let counts = s.queue_counts().await.unwrap();
    assert_eq!(counts, [(EXECUTIONS.to_owned(), "Pending".to_owned(), 1)]);

    let started = s.start_execution(&e.id, "w1").await.unwrap().unwrap();
    assert_eq!(started.status, ExecutionStatus::Running);
    assert_eq!(started.attempts, 1);
    assert_eq!(started.worker_id.as_deref(), Some("w1"));
    // A second claim (a worker died) counts another attempt.
    let again = s.start_execution(&e.id, "w2").await.unwrap().unwrap();
    assert_eq!(again.attempts, 2);

    let line = |seq: i64| LogLine {
        seq,
        at: 1_700_000_000_000 + seq,
        kind: "assistant".into(),
        text: format!("line {seq} ✓"),
    };
    for seq in 1..=3 {
        assert!(s.append_log(&e.id, 2, &line(seq)).await.unwrap());
    }
    // Attempt 1 was overtaken by attempt 2: its writes fail the fence.
    assert!(!s.append_log(&e.id, 1, &line(4)).await.unwrap());
    assert_eq!(s.next_log_seq(&e.id).await.unwrap(), 4);
    let logs = s.logs(&e.id, 1, 10).await.unwrap();
    assert_eq!(logs.len(), 2);
    assert_eq!(logs[0].text, "line 2 ✓");

    let outcome = Outcome {
        status: ExecutionStatus::Succeeded,
        result: Some("done".into()),
        error: None,
        cost_usd: Some(0.125),
        cost_estimated: false,
        num_turns: Some(3),
        session_id: Some("sess".into()),
        exit_code: Some(0),
        duration_ms: Some(1500),
        validation: Some(r#"{"passed":true,"tests":{"exitCode":0,"durationMs":12}}"#.into()),
        changes: Some(vec![0, 1, 2, 255]),
        session: Some(ccs::runner::session::Session {
            session_id: "11111111-2222-4333-8444-555555555555".into(),
            transcript_gz: (0..=255).collect(),
        }),
    };
    let mut other = outcome.clone();
    other.status = ExecutionStatus::Failed;
    // A stale attempt cannot record an outcome.
    assert!(!s.finish_execution(&e.id, 1, &other).await.unwrap());
    assert!(s.finish_execution(&e.id, 2, &outcome).await.unwrap());
    // The first outcome stands; a job that runs again changes nothing.
    assert!(!s.finish_execution(&e.id, 2, &other).await.unwrap());
    // Nothing is written to a finished execution's log.
    assert!(!s.append_log(&e.id, 2, &line(9)).await.unwrap());
    assert!(s.start_execution(&e.id, "w3").await.unwrap().is_none());
    let done = s.execution(&e.id).await.unwrap().unwrap();
    assert_eq!(done.status, ExecutionStatus::Succeeded);
    assert_eq!(done.cost_usd, Some(0.125));
    assert_eq!(done.num_turns, Some(3));
    assert_eq!(done.result.as_deref(), Some("done"));
    assert_eq!(
        done.validation.as_ref().unwrap()["tests"]["exitCode"],
        serde_json::json!(0)
    );
    assert!(done.finished_at.is_some());
    // The workspace changes went with the outcome, bytes intact, once.
    assert_eq!(
        s.execution_changes(&e.id).await.unwrap(),
        Some(vec![0, 1, 2, 255])
    );
    assert!(s.has_execution_changes(&e.id).await.unwrap());
    assert!(!s.has_execution_changes("nope").await.unwrap());
    // So did the session, for a later run to resume.
    assert_eq!(s.execution_session(&e.id).await.unwrap(), outcome.session);
    assert!(s.has_execution_session(&e.id).await.unwrap());
    assert!(!s.has_execution_session("nope").await.unwrap());
    assert_eq!(s.execution_session("nope").await.unwrap(), None);
    assert_eq!(
        s.execution_counts().await.unwrap(),
        [("succeeded".to_owned(), 1)]
    );
    // An execution that resumes it says so.
    let mut resuming = new_execution(p.id, None);
    resuming.resume_from = Some(e.id.clone());
    let r = s.create_execution(&resuming).await.unwrap().value;
    assert_eq!(r.resume_from.as_deref(), Some(e.id.as_str()));
    database.close().await;
}
backend_tests!(execution_lifecycle, super::execution_lifecycle);

async fn idempotency_and_cancel(backend: Backend) {
    let Some((_db, database, s)) = store(backend).await else {
        return;
    };
    let p = s.create_project(&new_project("p")).await.unwrap();
    let a = s
        .create_execution(&new_execution(p.id, Some("k1")))
        .await
        .unwrap();
    let b = s
        .create_execution(&new_execution(p.id, Some("k1")))
        .await
        .unwrap();
    assert!(a.created && !b.created);
    assert_eq!(a.value.id, b.value.id);
    let total: i64 = s.queue_counts().await.unwrap().iter().map(|c| c.2).sum();
    assert_eq!(total, 1);
    // Without a key, every request is new.
    let c = s
        .create_execution(&new_execution(p.id, None))
        .await
        .unwrap();
    let d = s
        .create_execution(&new_execution(p.id, None))
        .await
        .unwrap();
    assert_ne!(c.value.id, d.value.id);

    // Cancelling a queued execution ends it; it can then never start.
    let cancelled = s.cancel_execution(&c.value.id).await.unwrap().unwrap();
    assert_eq!(cancelled.status, ExecutionStatus::Cancelled);
    assert!(s.start_execution(&c.value.id, "w").await.unwrap().is_none());
    // Cancelling a running one flags it for its worker.
    s.start_execution(&d.value.id, "w").await.unwrap().unwrap();
    assert!(!s.cancel_requested(&d.value.id).await.unwrap());
    let flagged = s.cancel_execution(&d.value.id).await.unwrap().unwrap();
    assert_eq!(flagged.status, ExecutionStatus::Running);
    assert!(s.cancel_requested(&d.value.id).await.unwrap());
    assert!(s.cancel_execution("no-such-id").await.unwrap().is_none());
    s.audit("tester", "execution.cancel", &d.value.id, "")
        .await
        .unwrap();
    database.close().await;
}
backend_tests!(idempotency_and_cancel, super::idempotency_and_cancel);

async fn reaper_hands_back_jobs_of_unknown_workers(backend: Backend) {
    let Some((_db, database, s)) = store(backend).await else {
        return;
    };
    let p = s.create_project(&new_project("p")).await.unwrap();
    s.create_execution(&new_execution(p.id, None))
        .await
        .unwrap();
    // Claim the job as a worker that never registered (its row is gone).
    let claim = match backend {
        Backend::Sqlite => "UPDATE Jobs SET status = 'Running', lock_by = 'ghost'",
        Backend::MySql => "UPDATE jobs SET status = 'Running', lock_by = 'ghost'",
        Backend::Postgres => "UPDATE apalis.jobs SET status = 'Running', lock_by = 'ghost'",
    };
    if backend == Backend::Postgres {
        // apalis-postgres keeps a foreign key to its workers table.
        sqlx::query(
            "INSERT INTO apalis.workers (id, worker_type, storage_name, layers, last_seen) \
             VALUES ('ghost', 'x', 'x', '', now() - interval '1 hour')",
        )
        .execute(s.pool())
        .await
        .unwrap();
    }
    if backend == Backend::Sqlite {
        sqlx::query(
            "INSERT INTO Workers (id, worker_type, storage_name, layers, last_seen) \
             VALUES ('ghost', 'x', 'x', '', 0)",
        )
        .execute(s.pool())
        .await
        .unwrap();
    }
    sqlx::query(claim).execute(s.pool()).await.unwrap();
    assert_eq!(s.reenqueue_orphaned_jobs(EXECUTIONS, 30).await.unwrap(), 1);
    assert_eq!(
        s.queue_counts().await.unwrap(),
        [(EXECUTIONS.to_owned(), "Pending".to_owned(), 1)]
    );
    // Nothing left to hand back.
    assert_eq!(s.reenqueue_orphaned_jobs(EXECUTIONS, 30).await.unwrap(), 0);
    database.close().await;
}
backend_tests!(
    reaper_hands_back_jobs_of_unknown_workers,
    super::reaper_hands_back_jobs_of_unknown_workers
);
