//! Parsing Claude Code's `--output-format stream-json` output.
//!
//! The CLI (and `ccs-test-agent`, which stands in for it) writes one JSON
//! object per line on stdout. The runner feeds every line to [`parse_line`]
//! and gets an [`Event`] back:
//!
//! | line `type` | event | what the runner does with it |
//! |---|---|---|
//! | `system`, subtype `init` | [`Event::Init`] | remembers the session id and model |
//! | `assistant` | [`Event::Assistant`] | logs the text and tool calls, feeds [`CostEstimator`] |
//! | `user` | [`Event::User`] | logs how many tool results came back |
//! | `stream_event` with `message_start` / `message_delta` | [`Event::StreamUsage`] | feeds [`CostEstimator`] (the only place the CLI prints a message's output tokens before the end); not logged |
//! | `result` | [`Event::Result`] | decides the outcome ([`ResultMsg::is_success`]), records cost and turns |
//! | anything else that is JSON | [`Event::Other`] | logs it, nothing more |
//! | not JSON at all | [`Event::Unparsed`] | logs it verbatim |
//!
//! Parsing is lenient by design, because the CLI's format changes between
//! versions: unknown types and fields are ignored, a missing or mistyped field
//! reads as "unknown" (`None`, `0`, empty), and [`parse_line`] never fails.
//!
//! ## Cost
//!
//! The authoritative cost of a run is the `result` line's `total_cost_usd`.
//! Until it arrives (or when the run dies without one) [`CostEstimator`] keeps
//! a running estimate from the `usage` of `assistant` lines, priced with a
//! configurable [`PriceTable`]. One API message (one `message.id`) can appear
//! on several `assistant` lines, each repeating the same `usage`, so the
//! estimator counts every message id once.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Longest [`Event::summary`] text, in characters, before it is cut with `…`.
pub const SUMMARY_MAX_CHARS: usize = 200;

/// One line of the CLI's stdout, parsed.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// `{"type":"system","subtype":"init",…}`: the first line of a run.
    Init {
        session_id: Option<String>,
        model: Option<String>,
        /// Names of the tools the agent may use (built-in and MCP).
        tools: Vec<String>,
    },
    /// `{"type":"assistant",…}`: (part of) one message from the model.
    Assistant {
        /// `message.id`; the same id can appear on several lines.
        message_id: Option<String>,
        model: Option<String>,
        /// The message's `text` blocks, joined with newlines.
        text: String,
        /// Names of the tools called by the message's `tool_use` blocks.
        tool_uses: Vec<String>,
        usage: Option<Usage>,
    },
    /// `{"type":"stream_event",…}` carrying the API's `message_start` or
    /// `message_delta` (printed with `--include-partial-messages`): the
    /// usage of a message as it streams. The `message_delta` one has the
    /// message's output tokens, which its `assistant` lines lack.
    StreamUsage {
        /// `api_message_id` (or the `message_start`'s `message.id`).
        message_id: Option<String>,
        /// The `message_start`'s `message.model`; `None` on `message_delta`.
        model: Option<String>,
        usage: Usage,
    },
    /// `{"type":"user",…}`: tool results fed back to the model.
    User {
        /// Number of `tool_result` blocks.
        tool_results: usize,
        /// How many of them have `is_error: true`.
        tool_errors: usize,
    },
    /// `{"type":"result",…}`: the last line of a run that ended by itself.
    Result(ResultMsg),
    /// Any other JSON line: `system` lines other than `init`
    /// (`compact_boundary`, `hook_response`, …), `stream_event`, types a
    /// newer CLI invents.
    Other {
        /// The line's `type` (empty when absent).
        kind: String,
        /// The line's `subtype`, if any.
        subtype: Option<String>,
    },
    /// A line that is not a JSON object (a warning, a stack trace, …),
    /// without its line terminator.
    Unparsed(String),
}

/// Token counts of one API message, or of a whole run. Missing fields are 0.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_creation_input_tokens: u64,
    pub cache_read_input_tokens: u64,
}

/// The `result` line.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ResultMsg {
    /// `success`, `error_max_turns`, `error_during_execution`,
    /// `error_max_budget_usd`, …; empty when absent.
    pub subtype: String,
    pub is_error: bool,
    /// The final answer; error subtypes have none.
    pub result: Option<String>,
    pub num_turns: Option<u32>,
    /// `total_cost_usd`, or when that is absent the sum of
    /// `modelUsage.*.costUSD`.
    pub total_cost_usd: Option<f64>,
    pub session_id: Option<String>,
    pub duration_ms: Option<u64>,
    pub usage: Option<Usage>,
    /// `errors` (newer CLIs list what went wrong there).
    pub errors: Vec<String>,
}

impl ResultMsg {
    /// The run succeeded: subtype `success` **and** `is_error` false (a failed
    /// API call can come as `success` with `is_error: true`).
    pub fn is_success(&self) -> bool {
        self.subtype == "success" && !self.is_error
    }

    /// What went wrong, for a person, or `None` when [`Self::is_success`].
    pub fn error_text(&self) -> Option<String> {
        if self.is_success() {
            return None;
        }
        let reason = match self.subtype.as_str() {
            "error_max_turns" => "the agent reached its maximum number of turns".to_string(),
            "error_max_budget_usd" => "the agent reached its maximum budget".to_string(),
            "error_during_execution" => "the agent failed during execution".to_string(),
            "" | "success" => "the agent reported an error".to_string(),
            other => format!("the agent reported an error ({other})"),
        };
        let detail = if self.errors.is_empty() {
            self.result.clone().filter(|r| !r.trim().is_empty())
        } else {
            Some(self.errors.join("; "))
        };
        Some(match detail {
            Some(detail) => format!("{reason}: {detail}"),
            None => reason,
        })
    }
}

impl Event {
    /// A short name of the event's kind, for the log row: `system`,
    /// `assistant`, `user`, `result`, `other` or `raw`.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::Init { .. } => "system",
            Event::Assistant { .. } => "assistant",
            Event::StreamUsage { .. } => "stream",
            Event::User { .. } => "user",
            Event::Result(_) => "result",
            Event::Other { kind, .. } if kind == "system" => "system",
            Event::Other { .. } => "other",
            Event::Unparsed(_) => "raw",
        }
    }

    /// A `stream_event` line (`--include-partial-messages`): one per
    /// streamed chunk, read for its usage and not logged.
    pub fn is_partial(&self) -> bool {
        match self {
            Event::StreamUsage { .. } => true,
            Event::Other { kind, .. } => kind == "stream_event",
            _ => false,
        }
    }

    /// A short human line for the log row, without the kind (see
    /// [`Event::kind`]), on one line and at most [`SUMMARY_MAX_CHARS`]
    /// characters: `Looking at the diff… [tool: Read]`.
    pub fn summary(&self) -> String {
        let text = match self {
            Event::Init {
                session_id,
                model,
                tools,
            } => {
                let mut s = "init".to_string();
                if let Some(model) = model {
                    s.push_str(&format!(", model {model}"));
                }
                s.push_str(&format!(", {} tools", tools.len()));
                if let Some(id) = session_id {
                    s.push_str(&format!(", session {id}"));
                }
                s
            }
            Event::Assistant {
                text, tool_uses, ..
            } => {
                let mut s = text.clone();
                for tool in tool_uses {
                    if !s.is_empty() {
                        s.push(' ');
                    }
                    s.push_str(&format!("[tool: {tool}]"));
                }
                if s.is_empty() {
                    s.push_str("(no text)");
                }
                s
            }
            Event::StreamUsage {
                message_id, usage, ..
            } => format!(
                "usage of {}: {} in, {} out, {} cache write, {} cache read",
                message_id.as_deref().unwrap_or("a message"),
                usage.input_tokens,
                usage.output_tokens,
                usage.cache_creation_input_tokens,
                usage.cache_read_input_tokens
            ),
            Event::User {
                tool_results,
                tool_errors,
            } => {
                let plural = if *tool_results == 1 { "" } else { "s" };
                let mut s = format!("{tool_results} tool result{plural}");
                if *tool_errors > 0 {
                    s.push_str(&format!(" ({tool_errors} failed)"));
                }
                s
            }
            Event::Result(r) => {
                let mut s = if r.subtype.is_empty() {
                    "unknown".to_string()
                } else {
                    r.subtype.clone()
                };
                if r.is_error {
                    s.push_str(" (is_error)");
                }
                if let Some(turns) = r.num_turns {
                    s.push_str(&format!(", {turns} turns"));
                }
                if let Some(cost) = r.total_cost_usd {
                    s.push_str(&format!(", ${cost:.4}"));
                }
                if let Some(result) = &r.result {
                    s.push_str(&format!(": {result}"));
                } else if !r.errors.is_empty() {
                    s.push_str(&format!(": {}", r.errors.join("; ")));
                }
                s
            }
            Event::Other { kind, subtype } => match subtype {
                Some(sub) => format!("{kind} {sub}"),
                None if kind.is_empty() => "(untyped message)".to_string(),
                None => kind.clone(),
            },
            Event::Unparsed(line) => line.clone(),
        };
        one_line(&text, SUMMARY_MAX_CHARS)
    }
}

/// Parses one line of stdout. Never fails: what is not a JSON object becomes
/// [`Event::Unparsed`]. A JSON array (what `--output-format json --verbose`
/// prints in some versions) yields its last `result` element.
pub fn parse_line(line: &str) -> Event {
    let line = line.trim_end_matches(['\n', '\r']);
    match serde_json::from_str::<Value>(line) {
        Ok(value @ Value::Object(_)) => from_message(&value),
        Ok(Value::Array(items)) => items
            .iter()
            .rev()
            .find(|m| m.get("type").and_then(Value::as_str) == Some("result"))
            .map(from_message)
            .unwrap_or_else(|| Event::Other {
                kind: "array".to_string(),
                subtype: None,
            }),
        Ok(_) | Err(_) => Event::Unparsed(line.to_string()),
    }
}

fn from_message(v: &Value) -> Event {
    let kind = str_field(v, "type").unwrap_or_default();
    let subtype = str_field(v, "subtype");
    match (kind.as_str(), subtype.as_deref()) {
        ("system", Some("init")) => Event::Init {
            session_id: str_field(v, "session_id"),
            model: str_field(v, "model"),
            tools: v
                .get("tools")
                .and_then(Value::as_array)
                .map(|tools| {
                    tools
                        .iter()
                        .filter_map(|t| t.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default(),
        },
        ("assistant", _) => {
            let message = v.get("message").unwrap_or(&Value::Null);
            let mut texts = Vec::new();
            let mut tool_uses = Vec::new();
            for block in content_blocks(message) {
                match block.get("type").and_then(Value::as_str) {
                    Some("text") => {
                        if let Some(text) = block.get("text").and_then(Value::as_str) {
                            texts.push(text);
                        }
                    }
                    Some("tool_use") | Some("server_tool_use") => {
                        let name = block.get("name").and_then(Value::as_str).unwrap_or("?");
                        tool_uses.push(name.to_string());
                    }
                    _ => {}
                }
            }
            Event::Assistant {
                message_id: str_field(message, "id"),
                model: str_field(message, "model"),
                text: texts.join("\n"),
                tool_uses,
                usage: message.get("usage").and_then(usage_of),
            }
        }
        ("user", _) => {
            let message = v.get("message").unwrap_or(&Value::Null);
            let results: Vec<&Value> = content_blocks(message)
                .filter(|b| b.get("type").and_then(Value::as_str) == Some("tool_result"))
                .collect();
            Event::User {
                tool_results: results.len(),
                tool_errors: results
                    .iter()
                    .filter(|b| b.get("is_error").and_then(Value::as_bool) == Some(true))
                    .count(),
            }
        }
        ("result", _) => Event::Result(result_of(v, subtype)),
        ("stream_event", _) => {
            let event = v.get("event").unwrap_or(&Value::Null);
            let api_message_id = str_field(v, "api_message_id");
            match event.get("type").and_then(Value::as_str) {
                Some("message_start") => {
                    let message = event.get("message").unwrap_or(&Value::Null);
                    match message.get("usage").and_then(usage_of) {
                        Some(usage) => Event::StreamUsage {
                            message_id: api_message_id.or_else(|| str_field(message, "id")),
                            model: str_field(message, "model"),
                            usage,
                        },
                        None => Event::Other {
                            kind,
                            subtype: Some("message_start".into()),
                        },
                    }
                }
                Some("message_delta") => match event.get("usage").and_then(usage_of) {
                    Some(usage) => Event::StreamUsage {
                        message_id: api_message_id,
                        model: None,
                        usage,
                    },
                    None => Event::Other {
                        kind,
                        subtype: Some("message_delta".into()),
                    },
                },
                other => Event::Other {
                    kind,
                    subtype: other.map(str::to_owned),
                },
            }
        }
        _ => Event::Other { kind, subtype },
    }
}

fn result_of(v: &Value, subtype: Option<String>) -> ResultMsg {
    let model_usage_cost = v.get("modelUsage").and_then(Value::as_object).map(|m| {
        m.values()
            .filter_map(|u| u.get("costUSD").and_then(Value::as_f64))
            .sum::<f64>()
    });
    ResultMsg {
        subtype: subtype.unwrap_or_default(),
        is_error: v.get("is_error").and_then(Value::as_bool).unwrap_or(false),
        result: str_field(v, "result"),
        num_turns: v
            .get("num_turns")
            .and_then(Value::as_u64)
            .and_then(|n| u32::try_from(n).ok()),
        total_cost_usd: v
            .get("total_cost_usd")
            .and_then(Value::as_f64)
            .or(model_usage_cost),
        session_id: str_field(v, "session_id"),
        duration_ms: v.get("duration_ms").and_then(count),
        usage: v.get("usage").and_then(usage_of),
        errors: v
            .get("errors")
            .and_then(Value::as_array)
            .map(|errors| {
                errors
                    .iter()
                    .map(|e| match e {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    })
                    .collect()
            })
            .unwrap_or_default(),
    }
}

fn content_blocks(message: &Value) -> impl Iterator<Item = &Value> {
    message
        .get("content")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

fn usage_of(v: &Value) -> Option<Usage> {
    let field = |name: &str| v.get(name).and_then(count).unwrap_or(0);
    v.is_object().then(|| Usage {
        input_tokens: field("input_tokens"),
        output_tokens: field("output_tokens"),
        cache_creation_input_tokens: field("cache_creation_input_tokens"),
        cache_read_input_tokens: field("cache_read_input_tokens"),
    })
}

/// A non-negative count, accepting `12` and `12.0`.
fn count(v: &Value) -> Option<u64> {
    v.as_u64().or_else(|| {
        v.as_f64()
            .filter(|f| f.is_finite() && *f >= 0.0)
            // Saturating float-to-int conversion: counts are far below 2^53.
            .map(|f| f as u64)
    })
}

fn str_field(v: &Value, name: &str) -> Option<String> {
    v.get(name).and_then(Value::as_str).map(str::to_string)
}

/// Collapses whitespace runs (newlines included) into single spaces and cuts
/// the text to `max` characters, ending it with `…` when cut.
fn one_line(text: &str, max: usize) -> String {
    let joined = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if joined.chars().count() <= max {
        return joined;
    }
    let mut cut: String = joined.chars().take(max.saturating_sub(1)).collect();
    cut.truncate(cut.trim_end().len());
    cut.push('…');
    cut
}

impl Usage {
    /// The cost of these tokens at `price`, in USD.
    pub fn cost_usd(&self, price: &Price) -> f64 {
        let factor = match price.long_context_above {
            Some(above) if self.input_tokens > above => price.long_context_factor,
            _ => 1.0,
        };
        // Token counts are far below 2^53: the conversion is exact.
        (self.input_tokens as f64 * price.input * factor
            + self.output_tokens as f64 * price.output
            + self.cache_creation_input_tokens as f64 * price.cache_write * factor
            + self.cache_read_input_tokens as f64 * price.cache_read * factor)
            / 1_000_000.0
    }
}

impl Usage {
    /// Each count the larger of the two: what is known of one message from
    /// several reports of it (`message_start`, `assistant` lines,
    /// `message_delta`), none of which may lower a count.
    pub fn max_each(self, other: Usage) -> Usage {
        Usage {
            input_tokens: self.input_tokens.max(other.input_tokens),
            output_tokens: self.output_tokens.max(other.output_tokens),
            cache_creation_input_tokens: self
                .cache_creation_input_tokens
                .max(other.cache_creation_input_tokens),
            cache_read_input_tokens: self
                .cache_read_input_tokens
                .max(other.cache_read_input_tokens),
        }
    }
}

impl std::ops::AddAssign for Usage {
    fn add_assign(&mut self, other: Usage) {
        self.input_tokens += other.input_tokens;
        self.output_tokens += other.output_tokens;
        self.cache_creation_input_tokens += other.cache_creation_input_tokens;
        self.cache_read_input_tokens += other.cache_read_input_tokens;
    }
}

/// Prices of one model, in USD per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    /// Uncached input tokens.
    pub input: f64,
    pub output: f64,
    /// Cache writes (`cache_creation_input_tokens`, 5-minute cache).
    pub cache_write: f64,
    /// Cache hits (`cache_read_input_tokens`).
    pub cache_read: f64,
    /// A long-context tier: a message with more uncached input tokens than
    /// this has its input and cache rates multiplied by
    /// `long_context_factor` (the pinned CLI prices Haiku 5.5 so: ×5 above
    /// 100,000).
    #[serde(default)]
    pub long_context_above: Option<u64>,
    #[serde(default = "one")]
    pub long_context_factor: f64,
}

fn one() -> f64 {
    1.0
}

impl Price {
    /// A price without a long-context tier.
    pub const fn flat(input: f64, output: f64, cache_write: f64, cache_read: f64) -> Price {
        Price {
            input,
            output,
            cache_write,
            cache_read,
            long_context_above: None,
            long_context_factor: 1.0,
        }
    }

    /// The price of Claude Sonnet 4.x (list price; what the pinned CLI
    /// charges for it too).
    pub const SONNET: Price = Price::flat(3.0, 15.0, 3.75, 0.30);

    /// Each rate the higher of the two (tiers dropped: the rates of the
    /// highest tier are what counts).
    fn max_each(self, other: Price) -> Price {
        let top = |p: &Price| {
            let f = if p.long_context_above.is_some() {
                p.long_context_factor.max(1.0)
            } else {
                1.0
            };
            (p.input * f, p.output, p.cache_write * f, p.cache_read * f)
        };
        let (a, b) = (top(&self), top(&other));
        Price::flat(a.0.max(b.0), a.1.max(b.1), a.2.max(b.2), a.3.max(b.3))
    }
}

/// Prices per model, to estimate the cost of a run that has not reported one.
///
/// A model is priced by the longest key of `models` that its name contains
/// (case-insensitive), so `claude-opus-4-5-20251101` takes `opus-4-5` over
/// `opus`. A model no key matches (or none named) is priced at the
/// **highest** rate of each kind in the table (the run's log says so,
/// [`CostEstimator::unknown_models`]), never at a
/// cheaper guess: an estimate may stop a run early, never let it overspend.
///
/// The defaults are what Claude Code 2.1.332 (the version ccs is tested
/// with) computes as `modelUsage.costUSD`, read by running it against the
/// model stand-in with a million tokens of each kind (docs/claude-cli.md):
///
/// | key | input | output | cache write | cache read |
/// |---|---|---|---|---|
/// | `opus-5-5` (the CLI's default model; also what it charges for models it does not know, e.g. `sonnet-3-7`, `haiku-3-5`) | 4 | 20 | 5 | 0.20 |
/// | `sonnet-5-5` | 2 | 10 | 2.50 | 0.10 |
/// | `haiku-5-5` (input and cache rates ×5 for a message of over 100,000 input tokens) | 0.10 | 0.50 | 0.125 | 0.01 |
/// | `fable-5-2`, `mythos-5-2` | 8 | 40 | 10 | 0.20 |
/// | `fable-5-1`, `mythos-5-1` | 10 | 50 | 12.50 | 0.25 |
/// | `opus-4-5` … `opus-4-8` | 5 | 25 | 6.25 | 0.50 |
/// | `opus` (Opus 3, 4, 4.1: list price) | 15 | 75 | 18.75 | 1.50 |
/// | `sonnet` (Sonnet 4.x) | 3 | 15 | 3.75 | 0.30 |
/// | `haiku` (Haiku 4.5) | 1 | 5 | 1.25 | 0.10 |
/// | `3-5-haiku` | 0.80 | 4 | 1 | 0.08 |
/// | `3-haiku` | 0.25 | 1.25 | 0.30 | 0.03 |
///
/// Deserializable for configuration; a configured `models` replaces the
/// default table as a whole, e.g. in TOML:
///
/// ```toml
/// [prices.models.sonnet]
/// input = 3.0
/// output = 15.0
/// cache_write = 3.75
/// cache_read = 0.30
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PriceTable {
    pub models: BTreeMap<String, Price>,
    /// A floor for unknown models: they are priced at the higher of this
    /// and [`Self::highest`], rate by rate (never lower).
    pub fallback: Option<Price>,
}

impl Default for PriceTable {
    fn default() -> Self {
        let price = Price::flat;
        let opus_5_5 = price(4.0, 20.0, 5.0, 0.20);
        let fable_5_2 = price(8.0, 40.0, 10.0, 0.20);
        let fable_5_1 = price(10.0, 50.0, 12.5, 0.25);
        let opus_4_5 = price(5.0, 25.0, 6.25, 0.50);
        let models = [
            ("opus-5-5", opus_5_5),
            ("sonnet-5-5", price(2.0, 10.0, 2.5, 0.10)),
            (
                "haiku-5-5",
                Price {
                    long_context_above: Some(100_000),
                    long_context_factor: 5.0,
                    ..price(0.10, 0.50, 0.125, 0.01)
                },
            ),
            ("fable-5-2", fable_5_2),
            ("mythos-5-2", fable_5_2),
            ("fable-5-1", fable_5_1),
            ("mythos-5-1", fable_5_1),
            ("opus-4-5", opus_4_5),
            ("opus-4-6", opus_4_5),
            ("opus-4-7", opus_4_5),
            ("opus-4-8", opus_4_5),
            ("sonnet-3-7", opus_5_5),
            ("haiku-3-5", opus_5_5),
            ("opus", price(15.0, 75.0, 18.75, 1.50)),
            ("sonnet", Price::SONNET),
            ("haiku", price(1.0, 5.0, 1.25, 0.10)),
            ("3-5-haiku", price(0.80, 4.0, 1.0, 0.08)),
            ("3-haiku", price(0.25, 1.25, 0.30, 0.03)),
        ];
        PriceTable {
            models: models
                .into_iter()
                .map(|(key, price)| (key.to_string(), price))
                .collect(),
            fallback: None,
        }
    }
}

impl PriceTable {
    /// The price of `model`, or `None` when no key matches it.
    pub fn known_price(&self, model: &str) -> Option<Price> {
        let model = model.to_ascii_lowercase();
        self.models
            .iter()
            .filter(|(key, _)| !key.is_empty() && model.contains(&key.to_ascii_lowercase()))
            .max_by_key(|(key, _)| key.len())
            .map(|(_, price)| *price)
    }

    /// The highest rate of each kind in the table: the price of a model it
    /// does not know.
    pub fn highest(&self) -> Price {
        self.models
            .values()
            .copied()
            .chain(self.fallback)
            .reduce(Price::max_each)
            .unwrap_or(Price::SONNET)
    }

    /// The price of `model`; an unknown or unnamed one at [`Self::highest`].
    pub fn price(&self, model: Option<&str>) -> Price {
        model
            .and_then(|m| self.known_price(m))
            .unwrap_or_else(|| self.highest())
    }
}

/// What is known of one API message.
#[derive(Debug, Clone, Default)]
struct MessageSeen {
    model: Option<String>,
    usage: Usage,
}

/// Running cost of one run, fed every [`Event`] of it in order.
///
/// Before the `result` line the estimate is the sum, over distinct
/// `message.id`s, of each message's usage priced for its model (the
/// message's own `model`, else the `init` line's). A message is reported
/// several times — its `stream_event` `message_start`, its `assistant`
/// lines (one per content block, each with the `message_start` usage), its
/// `message_delta` with the final output count — and each count is the
/// largest reported for it. Once a `result` with a cost arrives, that cost
/// is the answer.
#[derive(Debug, Clone, Default)]
pub struct CostEstimator {
    prices: PriceTable,
    init_model: Option<String>,
    messages: HashMap<String, MessageSeen>,
    /// Cost of `assistant` lines without a message id (each counted).
    anonymous: f64,
    reported: Option<f64>,
    /// Models priced at the highest rate, each warned about once.
    unknown_models: Vec<String>,
}

impl CostEstimator {
    pub fn new(prices: PriceTable) -> Self {
        CostEstimator {
            prices,
            ..CostEstimator::default()
        }
    }

    pub fn observe(&mut self, event: &Event) {
        let (message_id, model, usage) = match event {
            Event::Init { model, .. } => {
                self.init_model.clone_from(model);
                return;
            }
            Event::Assistant {
                message_id,
                model,
                usage: Some(usage),
                ..
            } => (message_id, model, usage),
            Event::StreamUsage {
                message_id,
                model,
                usage,
            } => (message_id, model, usage),
            Event::Result(ResultMsg {
                total_cost_usd: Some(cost),
                ..
            }) => {
                if self.reported.is_none() {
                    self.reported = Some(*cost);
                }
                return;
            }
            _ => return,
        };
        if let Some(model) = model.clone().or_else(|| self.init_model.clone()) {
            self.warn_if_unknown(&model);
        }
        match message_id {
            Some(id) => {
                let seen = self.messages.entry(id.clone()).or_default();
                seen.usage = seen.usage.max_each(*usage);
                if model.is_some() {
                    seen.model.clone_from(model);
                }
            }
            None => {
                let model = model.as_deref().or(self.init_model.as_deref());
                self.anonymous += usage.cost_usd(&self.prices.price(model));
            }
        }
    }

    fn warn_if_unknown(&mut self, model: &str) {
        if self.prices.known_price(model).is_none()
            && !self.unknown_models.iter().any(|m| m == model)
        {
            self.unknown_models.push(model.to_owned());
        }
    }

    /// Models the estimate priced at the highest rate because the price
    /// table does not know them, in the order met (the job warns about each
    /// in the run's log).
    pub fn unknown_models(&self) -> &[String] {
        &self.unknown_models
    }

    /// The reported cost once the first `result` line gave one (a later
    /// one changes nothing), else the running
    /// estimate.
    pub fn estimate_usd(&self) -> f64 {
        self.reported.unwrap_or_else(|| self.running_estimate_usd())
    }

    /// The estimate from the usage lines alone.
    pub fn running_estimate_usd(&self) -> f64 {
        let messages: f64 = self
            .messages
            .values()
            .map(|m| {
                let model = m.model.as_deref().or(self.init_model.as_deref());
                m.usage.cost_usd(&self.prices.price(model))
            })
            .sum();
        messages + self.anonymous
    }

    /// The cost the `result` line reported, if it came.
    pub fn reported_usd(&self) -> Option<f64> {
        self.reported
    }

    /// Whether [`Self::estimate_usd`] is only an estimate (no reported cost).
    pub fn is_estimate(&self) -> bool {
        self.reported.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The reference examples (reference/claude-stream-json.md).
    const INIT: &str = r#"{"type":"system","subtype":"init","session_id":"5f0c2a8e-1111-4222-8333-444455556666","cwd":"/workspace","model":"claude-sonnet-4-5","tools":["Read","Edit","Bash"],"mcp_servers":[{"name":"github","status":"connected"}],"permissionMode":"default","apiKeySource":"ANTHROPIC_API_KEY","uuid":"0b5c7e1d-aaaa-4bbb-8ccc-ddddeeeeffff"}"#;
    const ASSISTANT: &str = r#"{"type":"assistant","session_id":"s","parent_tool_use_id":null,"message":{"id":"msg_01A","role":"assistant","model":"claude-sonnet-4-5","content":[{"type":"text","text":"Looking at the diff…"},{"type":"tool_use","id":"toolu_01B","name":"Read","input":{"file_path":"/workspace/src/lib.rs"}}],"stop_reason":null,"usage":{"input_tokens":12,"cache_creation_input_tokens":2048,"cache_read_input_tokens":0,"output_tokens":85}}}"#;
    const USER: &str = r#"{"type":"user","session_id":"s","parent_tool_use_id":null,"message":{"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_01B","content":"…","is_error":false}]}}"#;
    const RESULT: &str = r#"{"type":"result","subtype":"success","is_error":false,"duration_ms":91024,"duration_api_ms":65028,"num_turns":7,"result":"Review posted: 2 bugs, 1 nit.","session_id":"s","total_cost_usd":0.2571,"usage":{"input_tokens":40,"cache_creation_input_tokens":17568,"cache_read_input_tokens":136185,"output_tokens":3194},"modelUsage":{"claude-sonnet-4-5":{"inputTokens":40,"outputTokens":3194,"costUSD":0.2571}},"permission_denials":[],"uuid":"u"}"#;

    fn result_of_line(line: &str) -> ResultMsg {
        match parse_line(line) {
            Event::Result(r) => r,
            other => panic!("expected a result, got {other:?}"),
        }
    }

    #[test]
    fn parses_init() {
        assert_eq!(
            parse_line(INIT),
            Event::Init {
                session_id: Some("5f0c2a8e-1111-4222-8333-444455556666".into()),
                model: Some("claude-sonnet-4-5".into()),
                tools: vec!["Read".into(), "Edit".into(), "Bash".into()],
            }
        );
        assert_eq!(parse_line(INIT).kind(), "system");
    }

    #[test]
    fn parses_assistant() {
        let ev = parse_line(ASSISTANT);
        assert_eq!(
            ev,
            Event::Assistant {
                message_id: Some("msg_01A".into()),
                model: Some("claude-sonnet-4-5".into()),
                text: "Looking at the diff…".into(),
                tool_uses: vec!["Read".into()],
                usage: Some(Usage {
                    input_tokens: 12,
                    output_tokens: 85,
                    cache_creation_input_tokens: 2048,
                    cache_read_input_tokens: 0,
                }),
            }
        );
        assert_eq!(ev.kind(), "assistant");
        assert_eq!(ev.summary(), "Looking at the diff… [tool: Read]");
    }

    #[test]
    fn parses_user() {
        let ev = parse_line(USER);
        assert_eq!(
            ev,
            Event::User {
                tool_results: 1,
                tool_errors: 0
            }
        );
        assert_eq!(ev.kind(), "user");
        assert_eq!(ev.summary(), "1 tool result");
    }

    #[test]
    fn parses_result() {
        let r = result_of_line(RESULT);
        assert_eq!(
            r,
            ResultMsg {
                subtype: "success".into(),
                is_error: false,
                result: Some("Review posted: 2 bugs, 1 nit.".into()),
                num_turns: Some(7),
                total_cost_usd: Some(0.2571),
                session_id: Some("s".into()),
                duration_ms: Some(91024),
                usage: Some(Usage {
                    input_tokens: 40,
                    output_tokens: 3194,
                    cache_creation_input_tokens: 17568,
                    cache_read_input_tokens: 136185,
                }),
                errors: vec![],
            }
        );
        assert!(r.is_success());
        assert_eq!(r.error_text(), None);
        assert_eq!(
            Event::Result(r).summary(),
            "success, 7 turns, $0.2571: Review posted: 2 bugs, 1 nit."
        );
    }

    #[test]
    fn error_subtype_without_result() {
        let r = result_of_line(
            r#"{"type":"result","subtype":"error_max_turns","is_error":true,"num_turns":3,"total_cost_usd":0.05,"session_id":"s"}"#,
        );
        assert_eq!(r.subtype, "error_max_turns");
        assert_eq!(r.result, None);
        assert!(!r.is_success());
        assert_eq!(
            r.error_text().as_deref(),
            Some("the agent reached its maximum number of turns")
        );
        assert_eq!(
            Event::Result(r).summary(),
            "error_max_turns (is_error), 3 turns, $0.0500"
        );
    }

    #[test]
    fn success_with_is_error_is_a_failure() {
        let r = result_of_line(
            r#"{"type":"result","subtype":"success","is_error":true,"result":"API Error: 529 Overloaded","total_cost_usd":0}"#,
        );
        assert!(!r.is_success());
        assert_eq!(
            r.error_text().as_deref(),
            Some("the agent reported an error: API Error: 529 Overloaded")
        );
    }

    #[test]
    fn errors_field_explains_failure() {
        let r = result_of_line(
            r#"{"type":"result","subtype":"error_during_execution","is_error":true,"errors":["tool crashed",{"code":5}]}"#,
        );
        assert_eq!(
            r.errors,
            vec!["tool crashed".to_string(), r#"{"code":5}"#.into()]
        );
        assert_eq!(
            r.error_text().as_deref(),
            Some("the agent failed during execution: tool crashed; {\"code\":5}")
        );
    }

    #[test]
    fn missing_subtype_is_not_success() {
        let r = result_of_line(r#"{"type":"result","result":"ok"}"#);
        assert_eq!(r.subtype, "");
        assert!(!r.is_error);
        assert!(!r.is_success());
        assert_eq!(r.total_cost_usd, None);
        assert_eq!(r.usage, None);
    }

    #[test]
    fn cost_falls_back_to_model_usage() {
        let r = result_of_line(
            r#"{"type":"result","subtype":"success","modelUsage":{"a":{"costUSD":0.25},"b":{"costUSD":0.5}}}"#,
        );
        assert_eq!(r.total_cost_usd, Some(0.75));
    }

    #[test]
    fn garbage_is_unparsed_never_an_error() {
        for line in [
            "",
            "not json at all",
            "{\"type\":\"assistant\"",
            "Warning: something\r\n",
            "42",
            "\"a string\"",
            "null",
        ] {
            let ev = parse_line(line);
            assert!(matches!(ev, Event::Unparsed(_)), "{line:?} gave {ev:?}");
            assert_eq!(ev.kind(), "raw");
        }
        assert_eq!(
            parse_line("Warning: something\r\n"),
            Event::Unparsed("Warning: something".into())
        );
    }

    #[test]
    fn unknown_types_and_fields_are_ignored() {
        assert_eq!(
            parse_line(r#"{"type":"stream_event","event":{}}"#),
            Event::Other {
                kind: "stream_event".into(),
                subtype: None
            }
        );
        let compact = parse_line(r#"{"type":"system","subtype":"compact_boundary"}"#);
        assert_eq!(compact.kind(), "system");
        assert_eq!(compact.summary(), "system compact_boundary");
        let untyped = parse_line(r#"{"hello":1}"#);
        assert_eq!(untyped.kind(), "other");
        assert_eq!(untyped.summary(), "(untyped message)");
        // Unknown fields and blocks, mistyped fields.
        let ev = parse_line(
            r#"{"type":"assistant","new_field":{"x":1},"message":{"id":7,"content":[{"type":"thinking","thinking":"hm"},{"type":"text","text":"a"},{"type":"text","text":"b"},{"type":"tool_use"}],"usage":{"input_tokens":"many","output_tokens":10.0}}}"#,
        );
        assert_eq!(
            ev,
            Event::Assistant {
                message_id: None,
                model: None,
                text: "a\nb".into(),
                tool_uses: vec!["?".into()],
                usage: Some(Usage {
                    output_tokens: 10,
                    ..Usage::default()
                }),
            }
        );
        assert_eq!(ev.summary(), "a b [tool: ?]");
    }

    #[test]
    fn minimal_lines() {
        assert_eq!(
            parse_line(r#"{"type":"system","subtype":"init"}"#),
            Event::Init {
                session_id: None,
                model: None,
                tools: vec![]
            }
        );
        assert_eq!(
            parse_line(r#"{"type":"assistant"}"#),
            Event::Assistant {
                message_id: None,
                model: None,
                text: String::new(),
                tool_uses: vec![],
                usage: None,
            }
        );
        assert_eq!(
            parse_line(r#"{"type":"user","message":{"content":"plain text prompt"}}"#),
            Event::User {
                tool_results: 0,
                tool_errors: 0
            }
        );
        assert_eq!(parse_line(r#"{"type":"assistant"}"#).summary(), "(no text)");
    }

    #[test]
    fn user_tool_errors_are_counted() {
        let ev = parse_line(
            r#"{"type":"user","message":{"content":[{"type":"tool_result","is_error":true},{"type":"tool_result"},{"type":"text","text":"x"}]}}"#,
        );
        assert_eq!(
            ev,
            Event::User {
                tool_results: 2,
                tool_errors: 1
            }
        );
        assert_eq!(ev.summary(), "2 tool results (1 failed)");
    }

    #[test]
    fn json_array_yields_last_result() {
        let line = format!("[{INIT},{ASSISTANT},{RESULT}]");
        assert!(result_of_line(&line).is_success());
        assert_eq!(
            parse_line("[1,2]"),
            Event::Other {
                kind: "array".into(),
                subtype: None
            }
        );
    }

    #[test]
    fn summary_is_one_short_line() {
        let long = format!(
            r#"{{"type":"assistant","message":{{"content":[{{"type":"text","text":"first\n\n  second {}"}}]}}}}"#,
            "é".repeat(500)
        );
        let summary = parse_line(&long).summary();
        assert!(summary.starts_with("first second éé"));
        assert!(summary.ends_with('…'));
        assert_eq!(summary.chars().count(), SUMMARY_MAX_CHARS);
        assert_eq!(one_line("a b", 3), "a b");
        assert_eq!(one_line("a bc", 3), "a…");
        assert_eq!(one_line("abc d", 3), "ab…");
        assert_eq!(one_line("  ", 3), "");
    }

    #[test]
    fn price_lookup_prefers_longest_key() {
        let table = PriceTable::default();
        assert_eq!(table.price(Some("claude-sonnet-4-5")), Price::SONNET);
        // The pinned CLI's own models and prices.
        assert_eq!(table.price(Some("claude-opus-5-5")).output, 20.0);
        assert_eq!(table.price(Some("claude-sonnet-5-5")).cache_read, 0.10);
        let haiku = table.price(Some("claude-haiku-5-5"));
        assert_eq!(haiku.cache_write, 0.125);
        // Its long-context tier, as the CLI prices it.
        let short = Usage {
            input_tokens: 100_000,
            ..Usage::default()
        };
        let long = Usage {
            input_tokens: 100_001,
            ..Usage::default()
        };
        assert!((short.cost_usd(&haiku) - 0.01).abs() < 1e-12);
        assert!((long.cost_usd(&haiku) - 0.0500005).abs() < 1e-12);
        assert_eq!(table.price(Some("claude-fable-5-1")).input, 10.0);
        assert_eq!(table.price(Some("claude-mythos-5-2")).output, 40.0);
        assert_eq!(table.price(Some("claude-opus-4-8")).input, 5.0);
        assert_eq!(table.price(Some("claude-opus-4-1-20250805")).output, 75.0);
        assert_eq!(table.price(Some("claude-opus-4-5-20251101")).output, 25.0);
        assert_eq!(table.price(Some("Claude-Haiku-4-5")).input, 1.0);
        assert_eq!(table.price(Some("claude-3-5-haiku-20241022")).input, 0.80);
        assert_eq!(table.price(Some("claude-3-haiku-20240307")).input, 0.25);
        // Unknown or unnamed: the highest rate of each kind, never cheaper.
        let highest = Price::flat(15.0, 75.0, 18.75, 1.50);
        assert_eq!(table.highest(), highest);
        assert_eq!(table.price(Some("gpt-something")), highest);
        assert_eq!(table.price(None), highest);
        assert_eq!(table.known_price("gpt-something"), None);
    }

    #[test]
    fn price_table_deserializes() {
        let table: PriceTable = serde_json::from_str(
            r#"{"models":{"mine":{"input":1,"output":2,"cache_write":3,"cache_read":4}}}"#,
        )
        .expect("valid table");
        assert_eq!(table.models.len(), 1);
        assert_eq!(table.price(Some("x-mine-1")).cache_read, 4.0);
        assert_eq!(table.fallback, None);
        assert_eq!(table.price(Some("other")).output, 2.0);
        // A fallback only raises the price of unknown models.
        let table: PriceTable = serde_json::from_str(
            r#"{"models":{"mine":{"input":1,"output":2,"cache_write":3,"cache_read":4}},
                "fallback":{"input":9,"output":1,"cache_write":1,"cache_read":1}}"#,
        )
        .expect("valid table");
        assert_eq!(table.price(Some("other")).input, 9.0);
        assert_eq!(table.price(Some("other")).output, 2.0);
        assert_eq!(table.price(Some("mine")).input, 1.0);
        let empty: PriceTable = serde_json::from_str("{}").expect("valid table");
        assert_eq!(empty, PriceTable::default());
        assert!(serde_json::from_str::<PriceTable>(r#"{"modles":{}}"#).is_err());
        assert!(
            serde_json::from_str::<PriceTable>(
                r#"{"fallback":{"input":1,"output":2,"cache_write":3}}"#
            )
            .is_err()
        );
    }

    #[test]
    fn usage_cost() {
        let usage = Usage {
            input_tokens: 1_000_000,
            output_tokens: 1_000_000,
            cache_creation_input_tokens: 1_000_000,
            cache_read_input_tokens: 1_000_000,
        };
        let cost = usage.cost_usd(&Price::SONNET);
        assert!((cost - (3.0 + 15.0 + 3.75 + 0.30)).abs() < 1e-9);
        let mut total = Usage::default();
        total += usage;
        total += usage;
        assert_eq!(total.output_tokens, 2_000_000);
    }

    #[test]
    fn estimator_counts_each_message_id_once() {
        let mut est = CostEstimator::new(PriceTable::default());
        assert_eq!(est.estimate_usd(), 0.0);
        est.observe(&parse_line(INIT));
        // The same message on two lines (text, then tool_use), same usage.
        est.observe(&parse_line(ASSISTANT));
        est.observe(&parse_line(ASSISTANT));
        est.observe(&parse_line(USER));
        let one = (12.0 * 3.0 + 85.0 * 15.0 + 2048.0 * 3.75) / 1e6;
        assert!((est.estimate_usd() - one).abs() < 1e-12);
        // A second message counts.
        est.observe(&parse_line(&ASSISTANT.replace("msg_01A", "msg_01C")));
        assert!((est.estimate_usd() - 2.0 * one).abs() < 1e-12);
        assert!(est.is_estimate());
        // The result's cost replaces the estimate.
        est.observe(&parse_line(RESULT));
        assert_eq!(est.estimate_usd(), 0.2571);
        assert_eq!(est.reported_usd(), Some(0.2571));
        assert!(!est.is_estimate());
        assert!((est.running_estimate_usd() - 2.0 * one).abs() < 1e-12);
    }

    #[test]
    fn estimator_takes_largest_usage_of_a_message() {
        let line = |out: u64| {
            format!(
                r#"{{"type":"assistant","message":{{"id":"msg_1","usage":{{"output_tokens":{out}}}}}}}"#
            )
        };
        let mut est = CostEstimator::default();
        est.observe(&parse_line(&line(100)));
        est.observe(&parse_line(&line(1000)));
        est.observe(&parse_line(&line(10)));
        // No model known: the highest output rate (Opus 4.1's 75).
        assert!((est.estimate_usd() - 1000.0 * 75.0 / 1e6).abs() < 1e-12);
    }

    /// What CLI 2.1.332 prints with `--include-partial-messages` for one
    /// message: the assistant line carries `message_start`'s usage (1 output
    /// token); the `message_delta` stream event has the real output count.
    #[test]
    fn estimator_reads_the_stream_events_usage() {
        let start = r#"{"type":"stream_event","event":{"message":{"content":[],"id":"msg_1","model":"claude-opus-5-5","role":"assistant","type":"message","usage":{"cache_creation_input_tokens":3000,"cache_read_input_tokens":0,"input_tokens":1000,"output_tokens":1}},"type":"message_start"},"session_id":"s","api_message_id":"msg_1"}"#;
        let assistant = r#"{"type":"assistant","message":{"content":[{"text":"I'll write it.","type":"text"}],"id":"msg_1","model":"claude-opus-5-5","usage":{"cache_creation_input_tokens":3000,"cache_read_input_tokens":0,"input_tokens":1000,"output_tokens":1}}}"#;
        let delta = r#"{"type":"stream_event","event":{"delta":{"stop_reason":"tool_use","stop_sequence":null},"type":"message_delta","usage":{"cache_creation_input_tokens":3000,"cache_read_input_tokens":0,"input_tokens":1000,"output_tokens":200}},"session_id":"s","api_message_id":"msg_1"}"#;
        let text_delta = r#"{"type":"stream_event","event":{"delta":{"text":"x","type":"text_delta"},"index":0,"type":"content_block_delta"},"api_message_id":"msg_1"}"#;
        assert_eq!(
            parse_line(delta),
            Event::StreamUsage {
                message_id: Some("msg_1".into()),
                model: None,
                usage: Usage {
                    input_tokens: 1000,
                    output_tokens: 200,
                    cache_creation_input_tokens: 3000,
                    cache_read_input_tokens: 0,
                },
            }
        );
        assert_eq!(parse_line(delta).kind(), "stream");
        assert_eq!(
            parse_line(text_delta),
            Event::Other {
                kind: "stream_event".into(),
                subtype: Some("content_block_delta".into()),
            }
        );
        let mut est = CostEstimator::default();
        for line in [start, assistant, text_delta, assistant, delta] {
            est.observe(&parse_line(line));
        }
        // 1000 × 4 + 200 × 20 + 3000 × 5 (per million): the CLI's 0.023.
        assert!(
            (est.estimate_usd() - 0.023).abs() < 1e-12,
            "{}",
            est.estimate_usd()
        );
        assert!(est.unknown_models().is_empty());
    }

    #[test]
    fn estimator_names_unknown_models() {
        let mut est = CostEstimator::default();
        est.observe(&parse_line(
            r#"{"type":"assistant","message":{"id":"a","model":"claude-next-9","usage":{"output_tokens":1000}}}"#,
        ));
        assert_eq!(est.unknown_models(), ["claude-next-9"]);
        assert!((est.estimate_usd() - 0.075).abs() < 1e-12);
    }

    #[test]
    fn estimator_prices_by_model() {
        let mut est = CostEstimator::default();
        // No model on the message: the init line's model is used.
        est.observe(&parse_line(
            r#"{"type":"system","subtype":"init","model":"claude-opus-4-1"}"#,
        ));
        est.observe(&parse_line(
            r#"{"type":"assistant","message":{"id":"a","usage":{"output_tokens":1000}}}"#,
        ));
        assert!((est.estimate_usd() - 0.075).abs() < 1e-12);
        // The message's own model wins.
        est.observe(&parse_line(
            r#"{"type":"assistant","message":{"id":"b","model":"claude-haiku-4-5","usage":{"output_tokens":1000}}}"#,
        ));
        assert!((est.estimate_usd() - 0.080).abs() < 1e-12);
        // Lines without an id each count.
        let anon = r#"{"type":"assistant","message":{"usage":{"input_tokens":1000000}}}"#;
        est.observe(&parse_line(anon));
        est.observe(&parse_line(anon));
        assert!((est.estimate_usd() - (0.080 + 30.0)).abs() < 1e-9);
        // A result without a cost keeps the estimate.
        est.observe(&parse_line(
            r#"{"type":"result","subtype":"error_during_execution","is_error":true}"#,
        ));
        assert!(est.is_estimate());
        assert!((est.estimate_usd() - 30.080).abs() < 1e-9);
    }
}
