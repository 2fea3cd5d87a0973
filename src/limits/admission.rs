//! Admission: may this execution start now, on this worker?
//!
//! Called by a job handler ([`crate::jobs::execute`]; workflow steps alike)
//! before it runs an agent, instead of claiming the execution directly. It
//! gathers the limits that apply — the project's `container.yaml`
//! `limits:`, its `workflow.yaml` `workflow.budget`, the limits set through
//! the API, the worker's settings ([`crate::settings::LimitArgs`]) — and
//! hands them to [`Store::admit_execution`], which checks and claims in one
//! transaction under the project's lock, the same way on every worker of
//! the fleet. Then, by the answer:
//!
//! * **admitted**: the execution is `running` with its ceiling reserved;
//!   the handler runs it ([`Admitted`]);
//! * **at the concurrency limit / start rate**: the job goes back to the
//!   queue to be claimed again later ([`Store::reschedule_job`]: `Pending`
//!   with a future `run_at`, the attempt not counted); the execution stays
//!   `queued`. No worker slot is held and nothing polls in between;
//! * **over a daily budget**: with the `wait` policy (default), the job
//!   goes back to the queue until the next UTC day starts; with `refuse`,
//!   or when the ceiling exceeds the whole daily limit (it could never
//!   fit), the execution ends as `budget_exceeded` with the reason;
//! * **already finished** (a job delivered twice): nothing.
//!
//! Crash: a worker dying between admission and the end of the run leaves
//! the execution `running` with its reservation; the next attempt is
//! admitted again (counted against the concurrency limit as the one
//! running execution it is) and reuses that reservation.

use std::time::Duration;

use crate::project_config::{self, Budget, ContainerConfig, OverBudgetPolicy};
use crate::queue::JobRef;
use crate::settings::LimitArgs;
use crate::store::limits::{
    Admission, AdmissionRequest, BudgetClaim, BudgetOverride, BudgetRow, GLOBAL_SCOPE,
    NO_KEY_SCOPE, NewNotification, budget_name, key_scope, project_scope,
};
use crate::store::{Execution, Project, Store, StoreError};

/// An execution admitted to run.
#[derive(Debug, Clone)]
pub struct Admitted {
    /// The execution, now `running` with this attempt counted.
    pub execution: Execution,
    /// Stop the agent when its running cost estimate passes this.
    pub ceiling_usd: f64,
}

/// Admits `execution_id` for a run on worker `worker_id`, whose apalis job
/// `job` delivered it. `None`: do not run it now (it waits in the queue,
/// was refused, or is finished; see the module docs).
pub async fn admit(
    store: &Store,
    limits: &LimitArgs,
    execution_id: &str,
    job: &JobRef,
    worker_id: &str,
) -> Result<Option<Admitted>, StoreError> {
    let Some(execution) = store.execution(execution_id).await? else {
        return Ok(None);
    };
    if execution.status.is_terminal() {
        tracing::info!(execution.id = %execution_id, "execution already finished; nothing to do");
        return Ok(None);
    }
    let Some(project) = store.project(execution.project_id).await? else {
        // The run fails for this reason once started; no limit applies.
        return Ok(store
            .start_execution(execution_id, worker_id)
            .await?
            .map(|execution| Admitted {
                execution,
                ceiling_usd: f64::INFINITY,
            }));
    };
    let plan = Plan::of(store, limits, &execution, &project).await?;
    let request = plan.request(&execution, worker_id);
    let outcome = match store.admit_execution(&request).await? {
        Admission::Started {
            execution,
            ceiling_usd,
            reused,
        } => {
            if reused {
                tracing::info!(execution.id = %execution.id, "reusing the reservation of an earlier attempt");
            }
            return Ok(Some(Admitted {
                execution: *execution,
                ceiling_usd,
            }));
        }
        Admission::Finished => return Ok(None),
        Admission::AtConcurrencyLimit { running, limit } => Outcome::Wait {
            reason: "concurrency",
            delay: jitter(limits.admission_retry),
            why: format!("project at its concurrency limit ({running} of {limit} running)"),
        },
        Admission::AtStartRate {
            limit,
            retry_after_ms,
        } => Outcome::Wait {
            reason: "start_rate",
            delay: Duration::from_millis(retry_after_ms.unsigned_abs()),
            why: format!("project at its start rate ({limit} per minute)"),
        },
        Admission::OverBudget(row) => plan.over_budget(store, &project, row).await?,
    };
    match outcome {
        Outcome::Wait { reason, delay, why } => {
            let secs = i64::try_from(delay.as_millis().div_ceil(1000)).unwrap_or(i64::MAX);
            metrics::counter!("ccs_admission_waits_total", "reason" => reason).increment(1);
            tracing::debug!(
                execution.id = %execution_id,
                reason = %why,
                retry_in_secs = secs,
                "execution waits in the queue"
            );
            if !store.reschedule_job(&job.id, &job.claimed_by, secs).await? {
                tracing::warn!(
                    execution.id = %execution_id,
                    job.id = %job.id,
                    "could not hand the job back: it is no longer claimed by this worker"
                );
            }
        }
        Outcome::Refuse(why) => {
            if store.refuse_execution(execution_id, &why).await? {
                metrics::counter!("ccs_executions_finished_total", "status" => "budget_exceeded")
                    .increment(1);
                tracing::info!(execution.id = %execution_id, reason = %why, "execution refused");
            }
        }
    }
    Ok(None)
}

/// What happens to an execution that was not admitted.
enum Outcome {
    /// Back to the queue for `delay`; `reason` labels the metric.
    Wait {
        reason: &'static str,
        delay: Duration,
        why: String,
    },
    /// Ends as `budget_exceeded`, for this reason.
    Refuse(String),
}

/// The limits that apply to one execution, resolved.
#[derive(Debug, Clone)]
struct Plan {
    max_concurrent: Option<u32>,
    max_starts_per_minute: Option<u32>,
    ceiling_usd: f64,
    budgets: Vec<BudgetClaim>,
    policy: OverBudgetPolicy,
    day: String,
}

impl Plan {
    async fn of(
        store: &Store,
        settings: &LimitArgs,
        execution: &Execution,
        project: &Project,
    ) -> Result<Plan, StoreError> {
        // Invalid files: their defaults here; the run then fails on them.
        let container = project
            .container_yaml
            .as_deref()
            .and_then(|t| project_config::parse_container(project_config::CONTAINER_FILE, t).ok())
            .unwrap_or_default();
        let budget = project
            .workflow_yaml
            .as_deref()
            .and_then(|t| project_config::parse_workflow(project_config::WORKFLOW_FILE, t).ok())
            .and_then(|w| w.workflow.budget)
            .unwrap_or_default();
        let project_scope = project_scope(project.id);
        let key = execution.api_key_id.map(key_scope);
        let overrides = store
            .budget_overrides_for([
                GLOBAL_SCOPE,
                &project_scope,
                key.as_deref().unwrap_or(NO_KEY_SCOPE),
            ])
            .await?;
        Ok(Self::resolve(
            settings,
            &container,
            &budget,
            &overrides,
            project.id,
            execution.api_key_id,
        ))
    }

    /// The precedence of every limit, without I/O (see the module docs of
    /// [`super::budget`]).
    fn resolve(
        settings: &LimitArgs,
        container: &ContainerConfig,
        budget: &Budget,
        overrides: &[BudgetOverride],
        project_id: i64,
        api_key_id: Option<i64>,
    ) -> Plan {
        let over = |scope: &str| overrides.iter().find(|o| o.scope == scope);
        let project_scope = project_scope(project_id);
        let project_over = over(&project_scope);
        let global_over = over(GLOBAL_SCOPE);
        let ceiling_usd = project_over
            .and_then(|o| o.per_execution_usd)
            .or(budget.max_cost_per_execution.map(|m| m.as_usd()))
            .or(global_over.and_then(|o| o.per_execution_usd))
            .unwrap_or(settings.max_cost_per_execution.as_usd());
        let alert = settings.budget_alert_percent;
        let mut budgets = vec![
            BudgetClaim {
                scope: GLOBAL_SCOPE.to_owned(),
                limit_usd: global_over
                    .and_then(|o| o.daily_limit_usd)
                    .or(settings.global_daily_budget.map(|m| m.as_usd())),
                alert_percent: alert,
            },
            BudgetClaim {
                limit_usd: project_over
                    .and_then(|o| o.daily_limit_usd)
                    .or(budget.daily_max_cost.map(|m| m.as_usd()))
                    .or(settings.project_daily_budget.map(|m| m.as_usd())),
                alert_percent: budget.alert_at_percent.or(alert),
                scope: project_scope,
            },
        ];
        if let Some(id) = api_key_id {
            let scope = key_scope(id);
            budgets.push(BudgetClaim {
                limit_usd: over(&scope)
                    .and_then(|o| o.daily_limit_usd)
                    .or(settings.api_key_daily_budget.map(|m| m.as_usd())),
                alert_percent: alert,
                scope,
            });
        }
        Plan {
            max_concurrent: container
                .limits
                .max_concurrent
                .or(settings.project_max_concurrent),
            max_starts_per_minute: container
                .limits
                .max_starts_per_minute
                .or(settings.project_max_starts_per_minute),
            ceiling_usd,
            budgets,
            policy: container
                .limits
                .when_over_budget
                .unwrap_or(settings.when_over_budget),
            day: super::budget::today(),
        }
    }

    fn request(&self, execution: &Execution, worker_id: &str) -> AdmissionRequest {
        AdmissionRequest {
            execution_id: execution.id.clone(),
            project_id: execution.project_id,
            worker_id: worker_id.to_owned(),
            day: self.day.clone(),
            max_concurrent: self.max_concurrent,
            max_starts_per_minute: self.max_starts_per_minute,
            ceiling_usd: self.ceiling_usd,
            budgets: self.budgets.clone(),
        }
    }

    /// What happens to a run whose ceiling did not fit in `row`'s budget.
    async fn over_budget(
        &self,
        store: &Store,
        project: &Project,
        row: BudgetRow,
    ) -> Result<Outcome, StoreError> {
        let limit = row.limit_usd.unwrap_or_default();
        let what = budget_name(&row.scope);
        let state = format!(
            "{what}'s daily budget of ${limit:.2} has ${:.2} spent and ${:.2} reserved on {} (UTC)",
            row.spent_usd, row.reserved_usd, row.day
        );
        if self.ceiling_usd > limit {
            return Ok(Outcome::Refuse(format!(
                "this run's ceiling of ${:.2} is more than {what}'s whole daily budget of \
                 ${limit:.2}: it can never fit",
                self.ceiling_usd
            )));
        }
        store
            .notify(&NewNotification {
                project_id: row.scope.starts_with("project:").then_some(project.id),
                kind: "budget_full".into(),
                title: format!("{what}'s daily budget has no room for more runs"),
                body: format!(
                    "{state}; runs with a ceiling of ${:.2} {}.",
                    self.ceiling_usd,
                    match self.policy {
                        OverBudgetPolicy::Wait => "wait for the next day",
                        OverBudgetPolicy::Refuse => "are refused",
                    }
                ),
                dedup_key: Some(format!("budget_full:{}:{}", row.scope, row.day)),
            })
            .await?;
        Ok(match self.policy {
            OverBudgetPolicy::Wait => Outcome::Wait {
                reason: "budget",
                // Spread the next day's starts over its first minute.
                delay: Duration::from_millis(
                    super::budget::ms_until_next_day().unsigned_abs()
                        + rand::random_range(0..60_000),
                ),
                why: format!(
                    "{state}: the run's ceiling of ${:.2} does not fit",
                    self.ceiling_usd
                ),
            },
            OverBudgetPolicy::Refuse => Outcome::Refuse(format!(
                "refused: {state}, and this run's ceiling of ${:.2} does not fit",
                self.ceiling_usd
            )),
        })
    }
}

/// `d` ± 25%, so that waiting jobs do not come back in lockstep.
fn jitter(d: Duration) -> Duration {
    d.mul_f64(rand::random_range(0.75..1.25))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::project_config::{Money, ProjectLimits};

    fn money(cents: u64) -> Option<Money> {
        Some(Money::from_cents(cents))
    }

    #[test]
    fn the_project_wins_over_the_settings_and_the_api_over_both() {
        let settings = LimitArgs {
            project_max_concurrent: Some(4),
            project_daily_budget: money(1_000),
            global_daily_budget: money(10_000),
            api_key_daily_budget: money(2_000),
            budget_alert_percent: Some(90),
            ..LimitArgs::default()
        };
        let container = ContainerConfig {
            limits: ProjectLimits {
                max_concurrent: Some(2),
                max_starts_per_minute: None,
                when_over_budget: Some(OverBudgetPolicy::Refuse),
            },
            ..ContainerConfig::default()
        };
        let budget = Budget {
            max_cost_per_execution: money(50),
            daily_max_cost: money(500),
            pause_on_exceed: false,
            alert_at_percent: Some(80),
        };
        let plan = Plan::resolve(&settings, &container, &budget, &[], 3, Some(7));
        assert_eq!(plan.max_concurrent, Some(2));
        assert_eq!(plan.max_starts_per_minute, None);
        assert_eq!(plan.policy, OverBudgetPolicy::Refuse);
        assert_eq!(plan.ceiling_usd, 0.5);
        let limits: Vec<_> = plan
            .budgets
            .iter()
            .map(|b| (b.scope.as_str(), b.limit_usd, b.alert_percent))
            .collect();
        assert_eq!(
            limits,
            [
                ("global", Some(100.0), Some(90)),
                ("project:3", Some(5.0), Some(80)),
                ("key:7", Some(20.0), Some(90)),
            ]
        );

        let overrides = [
            BudgetOverride {
                scope: "project:3".into(),
                daily_limit_usd: Some(1.0),
                per_execution_usd: Some(0.25),
            },
            BudgetOverride {
                scope: "global".into(),
                daily_limit_usd: None,
                per_execution_usd: Some(9.0),
            },
        ];
        let plan = Plan::resolve(&settings, &container, &budget, &overrides, 3, None);
        assert_eq!(plan.ceiling_usd, 0.25);
        assert_eq!(plan.budgets.len(), 2);
        assert_eq!(plan.budgets[0].limit_usd, Some(100.0));
        assert_eq!(plan.budgets[1].limit_usd, Some(1.0));

        // Nothing configured: the service's default ceiling, no limits.
        let plan = Plan::resolve(
            &LimitArgs::default(),
            &ContainerConfig::default(),
            &Budget::default(),
            &[],
            3,
            None,
        );
        assert_eq!(plan.ceiling_usd, 5.0);
        assert_eq!(plan.max_concurrent, None);
        assert_eq!(plan.policy, OverBudgetPolicy::Wait);
        assert!(plan.budgets.iter().all(|b| b.limit_usd.is_none()));
    }

    #[test]
    fn jitter_stays_within_a_quarter() {
        for _ in 0..100 {
            let d = jitter(Duration::from_secs(2));
            assert!(d >= Duration::from_millis(1500) && d <= Duration::from_millis(2500));
        }
    }
}
