//! ccs — Claude Code Service.
//!
//! Runs Claude Code from webhooks, an HTTP API and a CLI. Every run is a job
//! in a database-backed apalis queue; worker processes claim jobs with row
//! locking and run the agent (a child process, or a locked-down container).
//!
//! The crate is organised by responsibility:
//!
//! * [`cli`] — the `ccs` command line: one subcommand per process role.
//! * [`settings`] — typed configuration, read once at start.
//! * [`db`] — which backend a URL names, connecting, migrating.
//! * [`store`] — the service's tables behind one interface (SQL per backend).
//! * [`queue`] — the apalis queues: job payloads, storages, the reaper.
//! * [`jobs`] — one file per job handler.
//! * [`limits`] — rate limits and cost budgets: what holds per API process,
//!   what holds fleet-wide through the database.
//! * [`worker`] — the worker process: claims jobs, runs handlers, shuts down.
//! * [`runner`] — how an agent runs: a child process, or a locked-down Docker
//!   container with an egress proxy.
//! * [`secrets`] — the service's secrets and masking them out of what is stored.
//! * [`executions`] — the core operations on executions the API calls.
//! * [`project_config`] — `.claude/container.yaml` and `workflow.yaml`.
//! * [`projects`] — registering a project (the API and `ccs project add`).
//! * [`auth`] — API keys: generation, hashing, permissions.
//! * [`github`] — GitHub webhooks: deliveries, triggers, answers.
//! * [`http`] — the API process: router, handlers, errors.
//! * [`ui`] — the dashboard: server-rendered pages under `/ui`, behind a sign-in.
//! * [`telemetry`] — logging and Prometheus metrics.
//! * [`workflows`] — multi-agent workflow runs as chains of step jobs.

pub mod auth;
pub mod cli;
pub mod db;
pub mod executions;
pub mod github;
pub mod http;
pub mod jobs;
pub mod limits;
pub mod project_config;
pub mod projects;
pub mod queue;
pub mod runner;
pub mod secrets;
pub mod settings;
pub mod store;
pub mod telemetry;
pub mod ui;
pub mod worker;
pub mod workflows;
