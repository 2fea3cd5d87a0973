//! Rate limits and cost budgets: what is enforced, where, and by whom.
//!
//! | limit | enforced by | where it holds | module |
//! |---|---|---|---|
//! | requests per API key / Slack team / GitHub repository | the API, at ingestion (`429` + `Retry-After`) | **per API process** (memory) | [`rate`] |
//! | a project (or key, or the service) that used up today's budget | the API, at ingestion (`402`, unless `"queueIfOverBudget": true`) | fleet-wide (database) | [`budget`] |
//! | executions of a project running at once, starting per minute | the worker, at admission (the job waits in the queue) | fleet-wide (database) | [`admission`] |
//! | daily budgets per project, per API key, for the service | the worker, at admission (a reservation of the run's ceiling) | fleet-wide (database) | [`admission`], [`crate::store::limits`] |
//! | cost of one run (`maxCostPerExecution`) | the worker, while the agent runs (stopped: `budget_exceeded`) | per run | [`crate::jobs::execute`] |
//!
//! The reservation protocol (admission reserves a run's ceiling against
//! every daily budget it counts toward in one transaction; the outcome
//! settles it to the real cost in the transaction that records it, exactly
//! once) is described in [`crate::store::limits`] and `docs/limits.md`,
//! with the settings and the project configuration keys.
//!
//! For the workflow engine: [`budget::budget_exceeded_for_project`] tells
//! whether a project (or the service, or a key) has used up today's budget,
//! e.g. to pause a run (`pauseOnExceed`); the workflow's steps are admitted
//! like any execution through [`admission::admit`].

pub mod admission;
pub mod budget;
pub mod rate;
