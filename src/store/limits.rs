//! Limits and budgets in the database: admission, reservations,
//! settlement, limit overrides, notifications.
//!
//! Tables (migration `0003_limits.sql`):
//!
//! | table | written by | read by |
//! |---|---|---|
//! | `project_slots` | [`Store::admit_execution`] (the per-project lock row) | — |
//! | `budget_tracking` | admission (reserve), settlement (spend), `PUT /api/v1/budget` (limit) | admission, ingestion, `GET /api/v1/budget` |
//! | `budget_limits` | `PUT /api/v1/budget`, `POST /api/v1/projects/{id}/budget` | admission, `GET /api/v1/budget` |
//! | `executions.reserved_*`, `ceiling_usd` | admission (set), settlement (zeroed) | settlement, the run's ceiling stop |
//! | `notifications` | settlement (alerts), admission (budget exceeded) | `GET /api/v1/notifications` |
//!
//! **Admission** ([`Store::admit_execution`]) is one transaction that every
//! worker of the fleet runs the same way: it first *writes* the project's
//! `project_slots` row, which serialises admissions of one project (a row
//! lock on MariaDB/PostgreSQL, the database's write lock on SQLite), then
//! counts the project's running executions and recent starts, reserves the
//! run's ceiling against every daily budget it counts toward with guarded
//! `UPDATE`s (`… WHERE spent_usd + reserved_usd + ceiling <= limit`), and
//! marks the execution `running` with its reservation recorded on the row.
//! Any check that fails rolls the whole transaction back: nothing is half
//! reserved. Locks are always taken in the same order — the slot row, the
//! execution row, then the budget rows sorted by scope — and settlement
//! takes the execution row then the same budget rows, so the two cannot
//! deadlock.
//!
//! **Settlement** ([`Store::settle_reservation`], called by
//! [`Store::finish_execution`] in the transaction that records the outcome)
//! moves an execution's reservation to spend: `reserved -= ceiling`,
//! `spent += cost` on every scope it reserved against, for the day it
//! reserved on, and zeroes `executions.reserved_usd`. Because it runs only
//! when the guarded finish changed the row, and zeroes the reservation in
//! the same transaction, it happens exactly once however often a job runs.
//!
//! **Crash.** A worker that dies after admission leaves the execution
//! `running` with its reservation. The reaper hands the job back; the next
//! attempt's admission sees `reserved_usd > 0` and **reuses** that
//! reservation instead of taking a second one, and its settlement releases
//! it. (An execution whose job is never run again — apalis gave up after
//! `MAX_ATTEMPTS` — keeps its reservation until its day is over: the day's
//! budget shows it under `reservedUsd`.)

use sqlx::Row as _;
use sqlx::any::AnyRow;

use super::{Execution, Result, Store, StoreError, get, now_ms, opt_text, text};

type Tx<'c> = sqlx::Transaction<'c, sqlx::Any>;

/// What an admission asks for; built by [`crate::limits::admission`].
#[derive(Debug, Clone)]
pub struct AdmissionRequest {
    pub execution_id: String,
    pub project_id: i64,
    pub worker_id: String,
    /// The UTC day (`YYYY-MM-DD`) the reservation counts toward.
    pub day: String,
    /// Executions of the project that may run at once, fleet-wide.
    pub max_concurrent: Option<u32>,
    /// Executions of the project that may start in any 60 seconds.
    pub max_starts_per_minute: Option<u32>,
    /// The run's ceiling: what it reserves, and where it is stopped.
    pub ceiling_usd: f64,
    /// The daily budgets the run counts toward (each scope once).
    pub budgets: Vec<BudgetClaim>,
}

/// One daily budget an admission reserves against.
#[derive(Debug, Clone, PartialEq)]
pub struct BudgetClaim {
    /// `global`, `project:<id>` or `key:<id>`.
    pub scope: String,
    /// The day's limit; `None`: not limited (spend is still tracked).
    pub limit_usd: Option<f64>,
    /// Notify when this percentage of the limit is spent.
    pub alert_percent: Option<u8>,
}

/// How an admission ended.
#[derive(Debug, Clone)]
pub enum Admission {
    /// The execution is `running`, its reservation recorded; run it.
    Started {
        execution: Box<Execution>,
        /// The ceiling the reservation was made for (the earlier attempt's,
        /// when its reservation was reused).
        ceiling_usd: f64,
        /// Whether an earlier attempt's reservation was reused.
        reused: bool,
    },
    /// The execution is terminal (or gone): nothing to do.
    Finished,
    /// The project already runs `limit` executions.
    AtConcurrencyLimit { running: i64, limit: u32 },
    /// The project started `limit` executions in the last minute; a slot
    /// frees up in `retry_after_ms`.
    AtStartRate { limit: u32, retry_after_ms: i64 },
    /// The run's ceiling does not fit in this day's budget.
    OverBudget(BudgetRow),
}

/// A row of `budget_tracking`: one scope's spend on one day.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BudgetRow {
    pub scope: String,
    pub day: String,
    pub limit_usd: Option<f64>,
    pub reserved_usd: f64,
    pub spent_usd: f64,
    pub alert_percent: Option<i64>,
}

impl BudgetRow {
    fn from_row(r: &AnyRow) -> Result<Self> {
        Ok(Self {
            scope: text(r, "scope")?,
            day: text(r, "day")?,
            limit_usd: get(r, "limit_usd")?,
            reserved_usd: get(r, "reserved_usd")?,
            spent_usd: get(r, "spent_usd")?,
            alert_percent: get(r, "alert_percent")?,
        })
    }
}

/// A limit set through the API for one scope (`budget_limits`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BudgetOverride {
    pub scope: String,
    pub daily_limit_usd: Option<f64>,
    pub per_execution_usd: Option<f64>,
}

impl BudgetOverride {
    fn from_row(r: &AnyRow) -> Result<Self> {
        Ok(Self {
            scope: text(r, "scope")?,
            daily_limit_usd: get(r, "daily_limit_usd")?,
            per_execution_usd: get(r, "per_execution_usd")?,
        })
    }
}

/// A row of `notifications`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Notification {
    pub id: i64,
    pub project_id: Option<i64>,
    pub kind: String,
    pub title: String,
    pub body: String,
    pub dedup_key: Option<String>,
    pub read_at: Option<i64>,
    pub created_at: i64,
}

impl Notification {
    fn from_row(r: &AnyRow) -> Result<Self> {
        Ok(Self {
            id: get(r, "id")?,
            project_id: get(r, "project_id")?,
            kind: text(r, "kind")?,
            title: text(r, "title")?,
            body: text(r, "body")?,
            dedup_key: opt_text(r, "dedup_key")?,
            read_at: get(r, "read_at")?,
            created_at: get(r, "created_at")?,
        })
    }
}

/// A notification to write; with a `dedup_key`, at most one ever is.
#[derive(Debug, Clone)]
pub struct NewNotification {
    pub project_id: Option<i64>,
    pub kind: String,
    pub title: String,
    pub body: String,
    pub dedup_key: Option<String>,
}

/// The scope of a project's daily budget.
pub fn project_scope(project_id: i64) -> String {
    format!("project:{project_id}")
}

/// The scope of an API key's daily budget.
pub fn key_scope(api_key_id: i64) -> String {
    format!("key:{api_key_id}")
}

/// The scope of the service-wide daily budget.
pub const GLOBAL_SCOPE: &str = "global";

/// A scope no budget has: stands for "no API key" where a query takes
/// three scopes.
pub const NO_KEY_SCOPE: &str = "key:-";

impl Store {
    /// Admits an execution for a run attempt, atomically across every
    /// worker: see the module docs. The caller has checked nothing; this
    /// reads the execution's state again under the project's lock.
    pub async fn admit_execution(&self, req: &AdmissionRequest) -> Result<Admission> {
        let now = now_ms();
        // The rows the transaction locks must exist; creating them is
        // idempotent and needs no lock of its own.
        sqlx::query(self.q("project_slot_ensure"))
            .bind(req.project_id)
            .execute(&self.pool)
            .await?;
        let mut budgets = req.budgets.clone();
        budgets.sort_by(|a, b| a.scope.cmp(&b.scope));
        budgets.dedup_by(|a, b| a.scope == b.scope);
        for b in &budgets {
            sqlx::query(self.q("budget_row_ensure"))
                .bind(&b.scope)
                .bind(&req.day)
                .bind(now)
                .execute(&self.pool)
                .await?;
        }

        // READ COMMITTED (SQLite: serializable), see `crate::db`: each
        // statement sees what the admission before it committed.
        let mut tx = self.pool.begin().await?;
        // The lock: every admission of this project waits here for the
        // previous one to commit.
        sqlx::query(self.q("project_slot_lock"))
            .bind(now)
            .bind(req.project_id)
            .execute(&mut *tx)
            .await?;
        let Some(row) = sqlx::query(self.q("admission_execution"))
            .bind(&req.execution_id)
            .fetch_optional(&mut *tx)
            .await?
        else {
            return Ok(Admission::Finished);
        };
        let status = text(&row, "status")?;
        if status != "queued" && status != "running" {
            return Ok(Admission::Finished);
        }
        let held: f64 = get(&row, "reserved_usd")?;
        if let Some(limit) = req.max_concurrent {
            let running: i64 = sqlx::query(self.q("project_running_count"))
                .bind(req.project_id)
                .bind(&req.execution_id)
                .fetch_one(&mut *tx)
                .await?
                .try_get(0)?;
            if running >= i64::from(limit) {
                return Ok(Admission::AtConcurrencyLimit { running, limit });
            }
        }
        if let Some(limit) = req.max_starts_per_minute {
            let window_start = now - START_WINDOW_MS;
            let row = sqlx::query(self.q("project_recent_starts"))
                .bind(req.project_id)
                .bind(window_start)
                .bind(&req.execution_id)
                .fetch_one(&mut *tx)
                .await?;
            let starts: i64 = row.try_get(0)?;
            if starts >= i64::from(limit) {
                let oldest: Option<i64> = row.try_get(1)?;
                let retry_after_ms = oldest.map_or(START_WINDOW_MS, |t| t + START_WINDOW_MS - now);
                return Ok(Admission::AtStartRate {
                    limit,
                    retry_after_ms: retry_after_ms.max(1),
                });
            }
        }

        if held > 0.0 {
            // An earlier attempt reserved and died: keep its reservation.
            let day = opt_text(&row, "reserved_day")?.unwrap_or_else(|| req.day.clone());
            let scopes = opt_text(&row, "reserved_scopes")?.unwrap_or_default();
            let ceiling_usd = get::<Option<f64>>(&row, "ceiling_usd")?.unwrap_or(held);
            self.mark_admitted(&mut tx, req, now, held, &day, &scopes, ceiling_usd)
                .await?;
            tx.commit().await?;
            return self.started(&req.execution_id, ceiling_usd, true).await;
        }

        let scopes = budgets
            .iter()
            .map(|b| b.scope.as_str())
            .collect::<Vec<_>>()
            .join(",");
        self.mark_admitted(
            &mut tx,
            req,
            now,
            req.ceiling_usd,
            &req.day,
            &scopes,
            req.ceiling_usd,
        )
        .await?;
        for b in &budgets {
            let alert = b.alert_percent.map(i64::from);
            let reserved = match b.limit_usd {
                Some(limit) => sqlx::query(self.q("budget_reserve_within"))
                    .bind(limit)
                    .bind(alert)
                    .bind(req.ceiling_usd)
                    .bind(now)
                    .bind(&b.scope)
                    .bind(&req.day)
                    .bind(req.ceiling_usd)
                    .bind(limit),
                None => sqlx::query(self.q("budget_reserve_unlimited"))
                    .bind(alert)
                    .bind(req.ceiling_usd)
                    .bind(now)
                    .bind(&b.scope)
                    .bind(&req.day),
            }
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if reserved != 1 {
                tx.rollback().await?;
                let row = self
                    .budget_row(&b.scope, &req.day)
                    .await?
                    .ok_or(StoreError::NotFound("budget row"))?;
                // The row as the admission saw it, with the limit it applied.
                return Ok(Admission::OverBudget(BudgetRow {
                    limit_usd: b.limit_usd,
                    ..row
                }));
            }
        }
        tx.commit().await?;
        self.started(&req.execution_id, req.ceiling_usd, false)
            .await
    }

    #[expect(clippy::too_many_arguments, reason = "one row's columns")]
    async fn mark_admitted(
        &self,
        tx: &mut Tx<'_>,
        req: &AdmissionRequest,
        now: i64,
        reserved_usd: f64,
        day: &str,
        scopes: &str,
        ceiling_usd: f64,
    ) -> Result<()> {
        sqlx::query(self.q("execution_admit"))
            .bind(&req.worker_id)
            .bind(now)
            .bind(reserved_usd)
            .bind(day)
            .bind(scopes)
            .bind(ceiling_usd)
            .bind(&req.execution_id)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    async fn started(&self, id: &str, ceiling_usd: f64, reused: bool) -> Result<Admission> {
        Ok(match self.execution(id).await? {
            Some(execution) => Admission::Started {
                execution: Box::new(execution),
                ceiling_usd,
                reused,
            },
            None => Admission::Finished,
        })
    }

    /// Ends a queued execution whose run can never fit its budgets:
    /// `budget_exceeded`, with `error` saying why. `false` when it was not
    /// waiting (already terminal, or holding a reservation).
    pub async fn refuse_execution(&self, id: &str, error: &str) -> Result<bool> {
        let changed = sqlx::query(self.q("execution_refuse"))
            .bind(error)
            .bind(now_ms())
            .bind(id)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(changed == 1)
    }

    /// Settles an execution's reservation to its real `cost_usd`, inside
    /// the transaction that records its outcome (see the module docs).
    /// Then writes the budget alerts the new spend crosses, once per scope
    /// and day.
    pub(super) async fn settle_reservation(
        &self,
        tx: &mut Tx<'_>,
        execution_id: &str,
        cost_usd: f64,
    ) -> Result<()> {
        let Some(row) = sqlx::query(self.q("execution_reservation"))
            .bind(execution_id)
            .fetch_optional(&mut **tx)
            .await?
        else {
            return Ok(());
        };
        let reserved: f64 = get(&row, "reserved_usd")?;
        let project_id: i64 = get(&row, "project_id")?;
        let (Some(day), Some(scopes)) = (
            opt_text(&row, "reserved_day")?,
            opt_text(&row, "reserved_scopes")?,
        ) else {
            return Ok(());
        };
        if reserved <= 0.0 {
            return Ok(());
        }
        let now = now_ms();
        for scope in scopes.split(',').filter(|s| !s.is_empty()) {
            sqlx::query(self.q("budget_settle"))
                .bind(reserved)
                .bind(cost_usd)
                .bind(now)
                .bind(scope)
                .bind(&day)
                .execute(&mut **tx)
                .await?;
            let budget = sqlx::query(self.q("budget_row"))
                .bind(scope)
                .bind(&day)
                .fetch_optional(&mut **tx)
                .await?
                .map(|r| BudgetRow::from_row(&r))
                .transpose()?;
            for alert in budget.iter().flat_map(|b| alerts_for(b, project_id)) {
                self.insert_notification(tx, &alert).await?;
            }
        }
        sqlx::query(self.q("execution_release"))
            .bind(execution_id)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// Hands a job this worker claimed back to its queue, to be claimed
    /// again in `delay_secs` (at least one second: SQLite and MariaDB keep
    /// `run_at` in whole seconds). The job's attempt is not counted.
    pub async fn reschedule_job(
        &self,
        job_id: &str,
        worker_id: &str,
        delay_secs: i64,
    ) -> Result<bool> {
        let changed = sqlx::query(self.q("job_reschedule"))
            .bind(delay_secs.max(1))
            .bind(job_id)
            .bind(worker_id)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(changed == 1)
    }

    /// One scope's row of one day, if any run counted toward it.
    pub async fn budget_row(&self, scope: &str, day: &str) -> Result<Option<BudgetRow>> {
        sqlx::query(self.q("budget_row"))
            .bind(scope)
            .bind(day)
            .fetch_optional(&self.pool)
            .await?
            .map(|r| BudgetRow::from_row(&r))
            .transpose()
    }

    /// Every scope's row of one day.
    pub async fn budget_rows(&self, day: &str) -> Result<Vec<BudgetRow>> {
        let rows = sqlx::query(self.q("budget_rows_of_day"))
            .bind(day)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(BudgetRow::from_row).collect()
    }

    /// The rows among `scopes` (at most three) whose spend reached their
    /// limit on `day`.
    pub async fn exhausted_budgets(&self, day: &str, scopes: [&str; 3]) -> Result<Vec<BudgetRow>> {
        let rows = sqlx::query(self.q("budget_exhausted"))
            .bind(day)
            .bind(scopes[0])
            .bind(scopes[1])
            .bind(scopes[2])
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(BudgetRow::from_row).collect()
    }

    /// Sets (or, with both `None`, clears) the API's limits for a scope,
    /// and applies the daily one to today's row at once, so that ingestion
    /// sees it before the next admission rewrites the row.
    pub async fn set_budget_override(&self, o: &BudgetOverride, today: &str) -> Result<()> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        sqlx::query(self.q("budget_limit_upsert"))
            .bind(&o.scope)
            .bind(o.daily_limit_usd)
            .bind(o.per_execution_usd)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        sqlx::query(self.q("budget_row_set_limit"))
            .bind(o.daily_limit_usd)
            .bind(now)
            .bind(&o.scope)
            .bind(today)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The API's limits for these scopes (at most three; missing ones have
    /// no override).
    pub async fn budget_overrides_for(&self, scopes: [&str; 3]) -> Result<Vec<BudgetOverride>> {
        let rows = sqlx::query(self.q("budget_limits_for"))
            .bind(scopes[0])
            .bind(scopes[1])
            .bind(scopes[2])
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(BudgetOverride::from_row).collect()
    }

    /// Every limit set through the API.
    pub async fn budget_overrides(&self) -> Result<Vec<BudgetOverride>> {
        let rows = sqlx::query(self.q("budget_limits_all"))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(BudgetOverride::from_row).collect()
    }

    /// Writes a notification; `false` when its dedup key was used before.
    pub async fn notify(&self, n: &NewNotification) -> Result<bool> {
        let mut conn = self.pool.acquire().await?;
        self.insert_notification(&mut conn, n).await
    }

    async fn insert_notification(
        &self,
        conn: &mut sqlx::AnyConnection,
        n: &NewNotification,
    ) -> Result<bool> {
        let changed = sqlx::query(self.q("notification_insert"))
            .bind(n.project_id)
            .bind(&n.kind)
            .bind(&n.title)
            .bind(&n.body)
            .bind(&n.dedup_key)
            .bind(now_ms())
            .execute(conn)
            .await?
            .rows_affected();
        Ok(changed == 1)
    }

    /// The newest notifications first.
    pub async fn notifications(&self, limit: i64) -> Result<Vec<Notification>> {
        let rows = sqlx::query(self.q("notification_list"))
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(Notification::from_row).collect()
    }
}

/// The notifications a day's spend calls for: `budget_alert` once it
/// reaches `alert_percent` of the limit, `budget_exceeded` once it reaches
/// the limit. Each has a dedup key per scope and day, so writing them again
/// after every later run changes nothing.
fn alerts_for(b: &BudgetRow, project_id: i64) -> Vec<NewNotification> {
    let Some(limit) = b.limit_usd.filter(|l| *l > 0.0) else {
        return Vec::new();
    };
    let project_id = (b.scope == project_scope(project_id)).then_some(project_id);
    let what = budget_name(&b.scope);
    let mut out = Vec::new();
    if let Some(percent) = b.alert_percent
        && b.spent_usd >= limit * percent as f64 / 100.0
    {
        out.push(NewNotification {
            project_id,
            kind: "budget_alert".into(),
            title: format!("{what} reached {percent}% of its daily budget"),
            body: format!(
                "{what} has spent ${:.2} of its ${limit:.2} budget for {} (UTC).",
                b.spent_usd, b.day
            ),
            dedup_key: Some(format!("budget_alert:{}:{}", b.scope, b.day)),
        });
    }
    if b.spent_usd >= limit {
        out.push(NewNotification {
            project_id,
            kind: "budget_exceeded".into(),
            title: format!("{what} used up its daily budget"),
            body: format!(
                "{what} has spent ${:.2} of its ${limit:.2} budget for {} (UTC); \
                 further runs wait for the next day or are refused.",
                b.spent_usd, b.day
            ),
            dedup_key: Some(format!("budget_exceeded:{}:{}", b.scope, b.day)),
        });
    }
    out
}

/// A budget scope for people: "project 3", "API key 7", "the service".
pub fn budget_name(scope: &str) -> String {
    if let Some(id) = scope.strip_prefix("project:") {
        format!("project {id}")
    } else if let Some(id) = scope.strip_prefix("key:") {
        format!("API key {id}")
    } else {
        "the service".to_owned()
    }
}

/// The window of `max_starts_per_minute`.
const START_WINDOW_MS: i64 = 60_000;
