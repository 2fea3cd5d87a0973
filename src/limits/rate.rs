//! Ingestion rate limits: per API key, per Slack team, per GitHub
//! repository.
//!
//! **Per API process, by nature.** Each API replica keeps its own counters
//! in memory (no database round trip on the request path); behind a load
//! balancer with N replicas a key can get up to N times its limit. That is
//! the point of these limits — shedding floods cheaply at the door — while
//! the limits that must hold fleet-wide (per-project concurrency and start
//! rate, budgets) are enforced by the workers through the database
//! ([`super::admission`]). Counters start empty when the process starts.
//!
//! Produced by the API's configuration (`--rate-limit-per-key 60/min`,
//! [`crate::settings::RateLimitArgs`]); consumed by the submit handlers
//! (`POST /webhook/execute`, `POST /api/v1/executions`, keyed by the API
//! key's id) and, through [`RateLimiters::check`], by the Slack and GitHub
//! webhook handlers (keyed by team id and by `owner/repo`).
//!
//! **Why `governor`:** it implements GCRA (a token bucket with no
//! background refill task), keyed limiters over a concurrent map, lock-free
//! checks, and tells how long until the next request would pass — which is
//! the `Retry-After` answer. A quota `60/min` allows a burst of 60 and then
//! one more each second.

use std::fmt;
use std::num::NonZeroU32;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// What a limit is keyed by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RateScope {
    /// An API key, by its id.
    ApiKey,
    /// A Slack workspace, by its team id.
    SlackTeam,
    /// A GitHub repository, by `owner/repo`.
    GithubRepo,
}

impl RateScope {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ApiKey => "api_key",
            Self::SlackTeam => "slack_team",
            Self::GithubRepo => "github_repo",
        }
    }

    /// For people: "this API key", "this Slack team", …
    fn subject(self) -> &'static str {
        match self {
            Self::ApiKey => "this API key",
            Self::SlackTeam => "this Slack team",
            Self::GithubRepo => "this GitHub repository",
        }
    }
}

/// A request over its limit, and when to try again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many requests for {}: the limit is {limit}; retry in {}s", scope.subject(), self.retry_after_secs())]
pub struct RetryAfter {
    pub scope: RateScope,
    pub limit: RateSpec,
    pub wait: Duration,
}

impl RetryAfter {
    /// Whole seconds for the `Retry-After` header (at least 1).
    pub fn retry_after_secs(&self) -> u64 {
        let secs = self.wait.as_secs() + u64::from(self.wait.subsec_nanos() > 0);
        secs.max(1)
    }
}

/// A rate such as `60/min`: `count` requests per `per`, in a burst or
/// spread out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateSpec {
    pub count: NonZeroU32,
    pub per: Duration,
}

impl RateSpec {
    fn quota(self) -> Quota {
        // `per / count` is the replenishment interval; never zero.
        let interval = (self.per / self.count.get()).max(Duration::from_nanos(1));
        Quota::with_period(interval)
            .unwrap_or_else(|| Quota::per_second(self.count))
            .allow_burst(self.count)
    }
}

impl fmt::Display for RateSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = match self.per.as_secs() {
            1 => "s",
            60 => "min",
            3600 => "hour",
            86_400 => "day",
            _ => return write!(f, "{}/{}", self.count, humantime::format_duration(self.per)),
        };
        write!(f, "{}/{unit}", self.count)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("invalid rate {0:?}: write `<count>/<unit>`, e.g. `60/min`, `10/s`, `1000/hour`")]
pub struct RateSpecError(String);

impl FromStr for RateSpec {
    type Err = RateSpecError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || RateSpecError(s.to_owned());
        let (count, unit) = s.trim().split_once('/').ok_or_else(err)?;
        let count: NonZeroU32 = count.trim().parse().map_err(|_| err())?;
        let per = match unit.trim() {
            "s" | "sec" | "second" => Duration::from_secs(1),
            "m" | "min" | "minute" => Duration::from_secs(60),
            "h" | "hour" => Duration::from_secs(3600),
            "d" | "day" => Duration::from_secs(86_400),
            other => humantime::parse_duration(other).map_err(|_| err())?,
        };
        if per.is_zero() {
            return Err(err());
        }
        Ok(Self { count, per })
    }
}

/// One keyed limiter and its quota.
struct Keyed {
    spec: RateSpec,
    limiter: DefaultKeyedRateLimiter<String>,
}

/// The API process's rate limiters, one per [`RateScope`] that is
/// configured (an unconfigured scope is not limited).
pub struct RateLimiters {
    api_key: Option<Keyed>,
    slack_team: Option<Keyed>,
    github_repo: Option<Keyed>,
    clock: DefaultClock,
    checks: AtomicU64,
}

/// Every this many checks, keys whose buckets are full again are dropped,
/// so that a stream of distinct keys cannot grow the maps without bound.
const SWEEP_EVERY: u64 = 4096;

impl RateLimiters {
    pub fn new(
        per_key: Option<RateSpec>,
        per_slack_team: Option<RateSpec>,
        per_github_repo: Option<RateSpec>,
    ) -> Self {
        let keyed = |spec: Option<RateSpec>| {
            spec.map(|spec| Keyed {
                spec,
                limiter: RateLimiter::keyed(spec.quota()),
            })
        };
        Self {
            api_key: keyed(per_key),
            slack_team: keyed(per_slack_team),
            github_repo: keyed(per_github_repo),
            clock: DefaultClock::default(),
            checks: AtomicU64::new(0),
        }
    }

    /// No limits at all.
    pub fn disabled() -> Self {
        Self::new(None, None, None)
    }

    fn limiter(&self, scope: RateScope) -> Option<&Keyed> {
        match scope {
            RateScope::ApiKey => self.api_key.as_ref(),
            RateScope::SlackTeam => self.slack_team.as_ref(),
            RateScope::GithubRepo => self.github_repo.as_ref(),
        }
    }

    /// Counts one request for `key` in `scope`: `Ok` when it is within the
    /// limit, else how long until one would be.
    pub fn check(&self, scope: RateScope, key: &str) -> Result<(), RetryAfter> {
        let Some(keyed) = self.limiter(scope) else {
            return Ok(());
        };
        if self.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            for k in [&self.api_key, &self.slack_team, &self.github_repo]
                .into_iter()
                .flatten()
            {
                k.limiter.retain_recent();
                k.limiter.shrink_to_fit();
            }
        }
        match keyed.limiter.check_key(&key.to_owned()) {
            Ok(()) => Ok(()),
            Err(not_until) => {
                metrics::counter!("ccs_rate_limited_total", "scope" => scope.as_str()).increment(1);
                Err(RetryAfter {
                    scope,
                    limit: keyed.spec,
                    wait: not_until.wait_time_from(self.clock.now()),
                })
            }
        }
    }
}

impl fmt::Debug for RateLimiters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimiters")
            .field("api_key", &self.api_key.as_ref().map(|k| k.spec))
            .field("slack_team", &self.slack_team.as_ref().map(|k| k.spec))
            .field("github_repo", &self.github_repo.as_ref().map(|k| k.spec))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse() {
        let r: RateSpec = "60/min".parse().unwrap();
        assert_eq!(r.count.get(), 60);
        assert_eq!(r.per, Duration::from_secs(60));
        assert_eq!(r.to_string(), "60/min");
        assert_eq!(
            "10/s".parse::<RateSpec>().unwrap().per,
            Duration::from_secs(1)
        );
        assert_eq!(
            "5 / 30s".parse::<RateSpec>().unwrap().per,
            Duration::from_secs(30)
        );
        for bad in ["60", "0/min", "x/min", "60/fortnight", "60/0s", ""] {
            let e = bad.parse::<RateSpec>().unwrap_err().to_string();
            assert!(e.contains("e.g. `60/min`"), "{bad}: {e}");
        }
    }

    #[test]
    fn a_burst_passes_then_the_next_waits_and_other_keys_are_unaffected() {
        let limits = RateLimiters::new(Some("3/min".parse().unwrap()), None, None);
        for _ in 0..3 {
            limits.check(RateScope::ApiKey, "1").unwrap();
        }
        let over = limits.check(RateScope::ApiKey, "1").unwrap_err();
        assert_eq!(over.scope, RateScope::ApiKey);
        // One request per 20 s replenishes.
        assert!((1..=20).contains(&over.retry_after_secs()), "{over:?}");
        assert!(over.to_string().contains("3/min"), "{over}");
        limits.check(RateScope::ApiKey, "2").unwrap();
        // Unconfigured scopes are not limited.
        for _ in 0..100 {
            limits.check(RateScope::SlackTeam, "T1").unwrap();
        }
    }
}
