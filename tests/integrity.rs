//! Run integrity, end to end on every backend: an agent's output cannot
//! outgrow its worker (a 4 GB line, the log volume cap, paged log reads),
//! and configuration files are not read through symlinks.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use ccs::db::Backend;
use common::{Options, TestApp, WorkerProcess, spawn_app};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(300);

/// Writes an executable shell script as an agent command.
fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt as _;
    let path = dir.join(name);
    std::fs::write(&path, body).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// A process's peak resident set (`VmHWM`), in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}

/// Every log row of an execution, page by page; the number of pages.
async fn all_logs(app: &TestApp, id: &str) -> (Vec<Value>, usize) {
    let mut rows = Vec::new();
    let mut after = 0;
    let mut pages = 0;
    loop {
        let (status, page) = app
            .get(&format!(
                "/api/v1/executions/{id}/logs?after={after}&limit=10000"
            ))
            .await;
        assert_eq!(status, 200, "{page}");
        pages += 1;
        let text: usize = page["logs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["text"].as_str().unwrap().len())
            .sum();
        assert!(
            text <= ccs::http::executions::LOG_PAGE_BYTES + 1024 * 1024 + 64,
            "a page of {text} bytes"
        );
        rows.extend(page["logs"].as_array().unwrap().iter().cloned());
        match page["nextAfter"].as_i64() {
            Some(next) => after = next,
            None => return (rows, pages),
        }
    }
}

/// The agent prints one 4 GiB line (NUL bytes, which PostgreSQL's TEXT
/// refuses), then 6000 lines of 1000 bytes, then its result. The worker
/// process's peak RSS grows by less than 64 MiB; the line is stored cut
/// to 1 MiB and marked; storing stops at `--max-log-bytes` with a note;
/// the result still counts; the log reads back in pages of at most ~4 MiB.
async fn a_4gb_line_leaves_the_worker_flat(backend: Backend) {
    let Some(app) = spawn_app(backend, Options::without_worker()).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let agent = script(
        dir.path(),
        "agent.sh",
        r#"#!/bin/sh
if [ "$(cat)" = big ]; then
  head -c 4294967296 /dev/zero; echo
  i=0; while [ $i -lt 6000 ]; do printf '%01000d\n' $i; i=$((i+1)); done
fi
echo '{"type":"result","subtype":"success","is_error":false,"result":"done","total_cost_usd":0.01}'
"#,
    );
    let agent = agent.display().to_string();
    let mut worker = WorkerProcess::spawn_with_args(
        &app,
        1,
        &["--agent-command", &agent, "--max-log-bytes", "5000000"],
    );
    let pid = worker.child.id().unwrap();

    // A small run first: the baseline is a worker that has run an agent.
    let small = app.submit("small").await;
    let e = app.wait_terminal(&small, WAIT).await;
    assert_eq!(e["status"], "succeeded", "{e}");
    let before = peak_rss_kib(pid);

    let big = app.submit("big").await;
    let e = app.wait_terminal(&big, WAIT).await;
    let after = peak_rss_kib(pid);
    eprintln!(
        "{backend}: worker peak RSS {before} KiB before the 4 GiB line, {after} KiB after (+{} KiB)",
        after - before
    );
    assert_eq!(e["status"], "succeeded", "{e}");
    assert_eq!(e["result"], "done", "{e}");
    assert!(
        after - before < 64 * 1024,
        "peak RSS grew from {before} KiB to {after} KiB"
    );

    let (rows, pages) = all_logs(&app, &big).await;
    assert!(pages >= 2, "{pages} pages");
    // Rows have consecutive sequence numbers across pages.
    let seqs: Vec<i64> = rows.iter().map(|r| r["seq"].as_i64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");
    // The last attempt's rows (a loaded machine can see the job handed
    // back: the earlier attempt is stopped and fenced, see `fencing`).
    let last_start = rows
        .iter()
        .rposition(|r| r["text"].as_str().unwrap().starts_with("attempt "))
        .unwrap();
    let rows = &rows[last_start..];
    let texts: Vec<&str> = rows.iter().map(|r| r["text"].as_str().unwrap()).collect();
    let mark = " …[line cut: longer than 1048576 bytes]";
    let cut: Vec<&&str> = texts.iter().filter(|t| t.ends_with(mark)).collect();
    assert_eq!(cut.len(), 1, "one cut line");
    assert!(cut[0].len() <= 1024 * 1024 + mark.len(), "{}", cut[0].len());
    assert!(cut[0].len() > 1024 * 1024 - 4, "{}", cut[0].len());
    assert!(cut[0].starts_with('\u{FFFD}'));
    let stored: usize = rows
        .iter()
        .filter(|r| r["kind"] != "ccs")
        .map(|r| r["text"].as_str().unwrap().len())
        .sum();
    eprintln!("{backend}: {stored} bytes of output stored, read in {pages} pages");
    assert!(
        stored <= 5_000_000 && stored > 4_000_000,
        "{stored} bytes of output stored"
    );
    assert!(
        texts
            .iter()
            .any(|t| t.starts_with("this run's output reached the log limit of 5000000 bytes")),
        "no cap note"
    );
    worker.kill9();
    app.shutdown().await;
}

backend_tests!(
    a_4gb_line_leaves_the_worker_flat,
    super::a_4gb_line_leaves_the_worker_flat
);

// ----- configuration files are not read through links ----------------------

/// `POST /api/v1/projects` for a directory: the status and body.
async fn register(app: &TestApp, name: &str, dir: &Path) -> (u16, Value) {
    let res = app
        .client
        .post(app.url("/api/v1/projects"))
        .bearer_auth(&app.admin_key)
        .json(&serde_json::json!({ "name": name, "path": dir }))
        .send()
        .await
        .unwrap();
    (
        res.status().as_u16(),
        res.json().await.unwrap_or(Value::Null),
    )
}

/// A `.claude/container.yaml` linked to `/dev/zero`, a `.claude` directory
/// linked to a host directory, a FIFO and an oversized file are each
/// refused with a 422 naming the file and why; nothing is registered, and
/// the API answers at once (nothing was read without bound).
async fn config_files_are_not_followed(backend: Backend) {
    let Some(app) = spawn_app(backend, Options::without_worker()).await else {
        return;
    };
    let root = tempfile::tempdir().unwrap();
    let make = |name: &str| {
        let dir = root.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    };
    let zero = make("zero");
    std::fs::create_dir(zero.join(".claude")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", zero.join(".claude/container.yaml")).unwrap();
    let (status, body) = register(&app, "zero", &zero).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(
        body["error"],
        ".claude/container.yaml: is a symbolic link; ccs does not follow links in a project's configuration"
    );

    let host = make("host");
    std::fs::write(host.join("container.yaml"), "image: host\n").unwrap();
    let linked = make("linked");
    std::os::unix::fs::symlink(&host, linked.join(".claude")).unwrap();
    let (status, body) = register(&app, "linked", &linked).await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .starts_with(".claude is a symbolic link"),
        "{body}"
    );

    let fifo = make("fifo");
    std::fs::create_dir(fifo.join(".claude")).unwrap();
    let made = std::process::Command::new("mkfifo")
        .arg(fifo.join(".claude/workflow.yaml"))
        .status()
        .unwrap();
    assert!(made.success());
    let (status, body) = register(&app, "fifo", &fifo).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(
        body["error"],
        ".claude/workflow.yaml: is not a regular file"
    );

    let big = make("big");
    std::fs::create_dir(big.join(".claude")).unwrap();
    std::fs::write(
        big.join(".claude/container.yaml"),
        format!("# {}\n", "x".repeat(300 * 1024)),
    )
    .unwrap();
    let (status, body) = register(&app, "big", &big).await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("the limit is 262144"),
        "{body}"
    );

    let (_, list) = app.get("/api/v1/projects").await;
    assert_eq!(list["projects"].as_array().map(Vec::len), Some(1), "{list}");
    app.shutdown().await;
}

backend_tests!(
    config_files_are_not_followed,
    super::config_files_are_not_followed
);

// ----- retention ----------------------------------------------------------------

/// Rows of `sql` (one number), on the app's database.
async fn count(app: &TestApp, sql: &str, id: &str) -> i64 {
    let sql = if app.db.backend == Backend::Postgres {
        sql.replace('?', "$1")
    } else {
        sql.to_owned()
    };
    sqlx::query_scalar::<_, i64>(&sql)
        .bind(id)
        .fetch_one(app.store.pool())
        .await
        .unwrap()
}

/// Three runs finish; two are made 40 days old (and every done job row).
/// One purge in batches of 2 deletes those two runs' logs and the done job
/// rows, keeps their execution rows (status, cost) and the recent run's
/// logs; the retention job is scheduled once per slot however often
/// workers ask.
async fn retention_deletes_old_rows_in_batches(backend: Backend) {
    let Some(app) = spawn_app(backend, Options::default()).await else {
        return;
    };
    let mut ids = Vec::new();
    for i in 0..3 {
        let id = app.submit(&format!("run {i} @cost=0.25 @turns=3")).await;
        app.wait_terminal(&id, WAIT).await;
        ids.push(id);
    }
    let logs_of = "SELECT COUNT(*) FROM logs WHERE execution_id = ?";
    for id in &ids {
        assert!(count(&app, logs_of, id).await > 2);
    }
    let old_ms = ccs::store::now_ms() - 40 * 24 * 3600 * 1000;
    let (backdate, jobs_done) = match backend {
        Backend::Sqlite => (
            "UPDATE Jobs SET done_at = ? WHERE status = 'Done'",
            "SELECT COUNT(*) FROM Jobs WHERE status = 'Done' AND id <> ?",
        ),
        Backend::MySql => (
            "UPDATE jobs SET done_at = FROM_UNIXTIME(?) WHERE status = 'Done'",
            "SELECT COUNT(*) FROM jobs WHERE status = 'Done' AND id <> ?",
        ),
        Backend::Postgres => (
            "UPDATE apalis.jobs SET done_at = to_timestamp($1::double precision) WHERE status = 'Done'",
            "SELECT COUNT(*) FROM apalis.jobs WHERE status = 'Done' AND id <> $1",
        ),
    };
    let placeholder = |sql: &str| {
        if backend == Backend::Postgres {
            sql.replace("= ? WHERE id = ?", "= $1 WHERE id = $2")
        } else {
            sql.to_owned()
        }
    };
    for id in &ids[..2] {
        sqlx::query(&placeholder(
            "UPDATE executions SET finished_at = ? WHERE id = ?",
        ))
        .bind(old_ms)
        .bind(id)
        .execute(app.store.pool())
        .await
        .unwrap();
    }
    sqlx::query(backdate)
        .bind(old_ms / 1000)
        .execute(app.store.pool())
        .await
        .unwrap();
    assert!(count(&app, jobs_done, "-").await >= 3);

    let cutoff = ccs::store::now_ms() - 30 * 24 * 3600 * 1000;
    ccs::jobs::retention::purge(&app.store, cutoff, 2, 1000)
        .await
        .unwrap();
    for id in &ids[..2] {
        assert_eq!(count(&app, logs_of, id).await, 0, "logs of {id} kept");
        let (_, e) = app.get(&format!("/api/v1/executions/{id}")).await;
        assert_eq!(e["status"], "succeeded", "{e}");
        assert_eq!(e["costUsd"], 0.25, "{e}");
    }
    assert!(
        count(&app, logs_of, &ids[2]).await > 2,
        "a recent run's logs went"
    );
    assert_eq!(count(&app, jobs_done, "-").await, 0);

    // Scheduled once per slot, however many workers start.
    let jobs = match backend {
        Backend::Sqlite => "SELECT COUNT(*) FROM Jobs WHERE job_type = ?",
        Backend::MySql => "SELECT COUNT(*) FROM jobs WHERE job_type = ?",
        Backend::Postgres => "SELECT COUNT(*) FROM apalis.jobs WHERE job_type = ?",
    };
    let before = count(&app, jobs, "ccs::retention").await;
    for _ in 0..3 {
        ccs::jobs::retention::schedule(&app.store).await.unwrap();
    }
    let after = count(&app, jobs, "ccs::retention").await;
    assert!(after - before <= 1, "{before} → {after}");
    ccs::jobs::retention::schedule(&app.store).await.unwrap();
    assert_eq!(count(&app, jobs, "ccs::retention").await, after);
    app.shutdown().await;
}

backend_tests!(
    retention_deletes_old_rows_in_batches,
    super::retention_deletes_old_rows_in_batches
);
