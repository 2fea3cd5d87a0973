//! Daily budgets: days, scopes, what ingestion refuses, limits set through
//! the API, and today's report.
//!
//! A **day** is a UTC calendar day (`YYYY-MM-DD`); every budget resets at
//! 00:00 UTC. A **scope** is `global`, `project:<id>` or `key:<id>`. The
//! rows live in `budget_tracking` (see [`crate::store::limits`]): a run's
//! reservation and spend count toward the day on which it was admitted.
//!
//! The effective limit of a scope is, first found: a limit set through the
//! API ([`set_limits`], table `budget_limits`), the project's
//! `workflow.yaml` `workflow.budget` (project scope), the worker's setting
//! ([`crate::settings::LimitArgs`]). Workers write the limit they applied
//! on the day's row at each admission, which is what ingestion and
//! `GET /api/v1/budget` read: the API process needs no budget settings.

use std::path::Path;

use anyhow::Context as _;
use chrono::{Days, NaiveTime, Utc};

use crate::runner::stream_json::PriceTable;
use crate::store::limits::{
    BudgetOverride, BudgetRow, GLOBAL_SCOPE, NO_KEY_SCOPE, budget_name, key_scope, project_scope,
};
use crate::store::{Store, StoreError};

/// Today, UTC, as stored: `YYYY-MM-DD`.
pub fn today() -> String {
    Utc::now().format("%Y-%m-%d").to_string()
}

/// Milliseconds until the next UTC day starts (at least 1).
pub fn ms_until_next_day() -> i64 {
    let now = Utc::now();
    let next = now
        .date_naive()
        .checked_add_days(Days::new(1))
        .map(|d| d.and_time(NaiveTime::MIN).and_utc());
    next.map_or(86_400_000, |n| (n - now).num_milliseconds().max(1))
}

/// The first of today's budgets a run of `project_id` counts toward that is
/// used up (spent ≥ limit): the service's, the project's, or `api_key_id`'s.
/// `None` when every one has room (or none has a limit).
///
/// Ingestion answers `402` with [`explain_exhausted`] when this is `Some`;
/// the workflow engine can call it to pause a run (`pauseOnExceed`) before
/// its next step. It reads the limits workers last applied to today's rows
/// (see the module docs): a budget no run counted toward today cannot be
/// used up.
pub async fn budget_exceeded_for_project(
    store: &Store,
    project_id: i64,
    api_key_id: Option<i64>,
) -> Result<Option<BudgetRow>, StoreError> {
    let project = project_scope(project_id);
    let key = api_key_id.map_or_else(|| NO_KEY_SCOPE.to_owned(), key_scope);
    let rows = store
        .exhausted_budgets(&today(), [GLOBAL_SCOPE, &project, &key])
        .await?;
    Ok(rows.into_iter().next())
}

/// Why a used-up budget refuses a submission, for people.
pub fn explain_exhausted(row: &BudgetRow) -> String {
    format!(
        "{} has used up its daily budget: ${:.2} spent of ${:.2} on {} (UTC); it resets at \
         00:00 UTC. Send \"queueIfOverBudget\": true to queue the run anyway.",
        budget_name(&row.scope),
        row.spent_usd,
        row.limit_usd.unwrap_or_default(),
        row.day
    )
}

/// Limits set through the API for one scope; `None` removes that limit's
/// override (the files and settings apply again). Takes effect at the next
/// admission; the daily limit is also written on today's row at once.
pub async fn set_limits(
    store: &Store,
    scope: &str,
    daily_limit_usd: Option<f64>,
    per_execution_usd: Option<f64>,
) -> Result<(), StoreError> {
    store
        .set_budget_override(
            &BudgetOverride {
                scope: scope.to_owned(),
                daily_limit_usd,
                per_execution_usd,
            },
            &today(),
        )
        .await
}

/// Today's budgets: every scope with spend, a reservation or a limit
/// today, and the limits set through the API.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BudgetReport {
    pub day: String,
    pub rows: Vec<BudgetRow>,
    pub overrides: Vec<BudgetOverride>,
}

pub async fn report(store: &Store) -> Result<BudgetReport, StoreError> {
    let day = today();
    Ok(BudgetReport {
        rows: store.budget_rows(&day).await?,
        overrides: store.budget_overrides().await?,
        day,
    })
}

/// Reads a price table (`--price-table`): JSON or YAML (YAML 1.2 reads
/// JSON too) of [`PriceTable`].
pub fn load_price_table(path: &Path) -> anyhow::Result<PriceTable> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the price table {}", path.display()))?;
    serde_saphyr::from_str(&text).with_context(|| format!("invalid price table {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_are_utc_dates() {
        let d = today();
        assert_eq!(d.len(), 10, "{d}");
        assert!(chrono::NaiveDate::parse_from_str(&d, "%Y-%m-%d").is_ok());
        let ms = ms_until_next_day();
        assert!((1..=86_400_000).contains(&ms), "{ms}");
    }

    #[test]
    fn price_tables_load_from_json_and_yaml() {
        let dir = tempfile::tempdir().unwrap();
        let json = dir.path().join("p.json");
        std::fs::write(
            &json,
            r#"{"models":{"mine":{"input":1,"output":2,"cache_write":3,"cache_read":4}}}"#,
        )
        .unwrap();
        let t = load_price_table(&json).unwrap();
        assert_eq!(t.price(Some("x-mine")).output, 2.0);
        let yaml = dir.path().join("p.yaml");
        std::fs::write(
            &yaml,
            "models:\n  mine: {input: 1, output: 5, cache_write: 3, cache_read: 4}\n",
        )
        .unwrap();
        assert_eq!(
            load_price_table(&yaml).unwrap().price(Some("mine")).output,
            5.0
        );
        std::fs::write(&yaml, "models: {mine: {input: 1}}\n").unwrap();
        let e = format!("{:#}", load_price_table(&yaml).unwrap_err());
        assert!(e.contains("invalid price table"), "{e}");
    }
}
