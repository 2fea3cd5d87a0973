//! What the stand-in model answers: a [`Scenario`], written as JSON by a
//! test (or a file given to `ccs-model-stub --scenario`).
//!
//! ```json
//! {"steps": [
//!   {"content": [{"text": "I'll write it."},
//!                {"toolUse": {"name": "Write", "input": {"file_path": "hello.txt", "content": "hi"}}}],
//!    "usage": {"input_tokens": 1200, "output_tokens": 40, "cache_creation_input_tokens": 5000}},
//!   {"error": {"status": 529, "retryAfter": 0}, "times": 2},
//!   {"content": [{"text": "Done."}], "model": "claude-sonnet-5-5"}
//! ]}
//! ```
//!
//! Each `POST /v1/messages` takes the next step; a step with `times: N`
//! answers N requests, `times: 0` every request from then on. Requests past
//! the last step get [`Scenario::then`] (by default a short `end_turn` text).

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A scripted model: its answers in order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct Scenario {
    pub steps: Vec<Step>,
    /// The answer to every request after the steps ran out.
    pub then: Option<Step>,
}

/// One answer (or, with `times`, several alike).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct Step {
    /// How many requests this step answers; `0` = all that come.
    pub times: u32,
    /// Answer with this HTTP error instead of a message.
    pub error: Option<ErrorAnswer>,
    /// The answer's content blocks, streamed in order.
    pub content: Vec<Block>,
    /// The `model` of the answer; by default the request's.
    pub model: Option<String>,
    /// Token counts reported (`message_start` and `message_delta`).
    pub usage: StepUsage,
    /// `stop_reason`; by default `tool_use` when a block is a tool call,
    /// else `end_turn`.
    pub stop_reason: Option<String>,
    /// Pause before each SSE event, in milliseconds (a slow stream).
    pub delay_ms: u64,
    /// Never finish: after the first content block's first delta, send
    /// `ping` events until the client hangs up.
    pub hang: bool,
}

impl Default for Step {
    fn default() -> Self {
        Step {
            times: 1,
            error: None,
            content: Vec::new(),
            model: None,
            usage: StepUsage::default(),
            stop_reason: None,
            delay_ms: 0,
            hang: false,
        }
    }
}

impl Step {
    /// A plain `end_turn` answer with one text block.
    pub fn text(text: &str) -> Step {
        Step {
            content: vec![Block::Text(text.to_owned())],
            ..Step::default()
        }
    }

    /// An answer calling one tool.
    pub fn tool_use(name: &str, input: Value) -> Step {
        Step {
            content: vec![Block::ToolUse {
                name: name.to_owned(),
                input,
            }],
            ..Step::default()
        }
    }

    /// An HTTP error answer, `times` times.
    pub fn error(status: u16, retry_after: Option<u64>, times: u32) -> Step {
        Step {
            times,
            error: Some(ErrorAnswer {
                status,
                retry_after,
                message: None,
            }),
            ..Step::default()
        }
    }

    pub fn with_usage(mut self, usage: StepUsage) -> Step {
        self.usage = usage;
        self
    }

    pub fn with_model(mut self, model: &str) -> Step {
        self.model = Some(model.to_owned());
        self
    }

    pub fn times(mut self, times: u32) -> Step {
        self.times = times;
        self
    }

    /// The `stop_reason` this answer ends with.
    pub fn effective_stop_reason(&self) -> String {
        self.stop_reason.clone().unwrap_or_else(|| {
            if self
                .content
                .iter()
                .any(|b| matches!(b, Block::ToolUse { .. }))
            {
                "tool_use".to_owned()
            } else {
                "end_turn".to_owned()
            }
        })
    }
}

/// One content block of an answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum Block {
    /// A `text` block.
    Text(String),
    /// A `tool_use` block of any tool (built-in, MCP, or one that does not
    /// exist), its input streamed as `input_json_delta`s.
    ToolUse { name: String, input: Value },
    /// A `text` block of this many bytes (`x`s, a newline every 100),
    /// streamed in 16 KiB deltas: an enormous output.
    TextBytes(u64),
}

/// An HTTP error instead of a message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ErrorAnswer {
    /// 429, 529, 500, …
    pub status: u16,
    /// Seconds, sent as `retry-after`.
    #[serde(default)]
    pub retry_after: Option<u64>,
    /// The error's `message`; by default one fitting the status.
    #[serde(default)]
    pub message: Option<String>,
}

impl ErrorAnswer {
    /// The Messages API's error `type` for the status.
    pub fn error_type(&self) -> &'static str {
        match self.status {
            400 => "invalid_request_error",
            401 => "authentication_error",
            403 => "permission_error",
            404 => "not_found_error",
            413 => "request_too_large",
            429 => "rate_limit_error",
            529 => "overloaded_error",
            _ => "api_error",
        }
    }

    pub fn message_text(&self) -> String {
        self.message.clone().unwrap_or_else(|| {
            match self.status {
                429 => "Number of request tokens has exceeded your rate limit",
                529 => "Overloaded",
                _ => "Internal server error",
            }
            .to_owned()
        })
    }
}

/// Token counts of one answer, with the Messages API's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StepUsage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_creation_input_tokens: u64,
    pub cache_read_input_tokens: u64,
}

impl Default for StepUsage {
    fn default() -> Self {
        StepUsage {
            input_tokens: 10,
            output_tokens: 5,
            cache_creation_input_tokens: 0,
            cache_read_input_tokens: 0,
        }
    }
}

impl Scenario {
    pub fn new(steps: Vec<Step>) -> Scenario {
        Scenario { steps, then: None }
    }

    /// The step answering request number `n` (0-based) of `POST /v1/messages`.
    pub fn step_for(&self, n: u64) -> Step {
        let mut first = 0u64;
        for step in &self.steps {
            if step.times == 0 {
                return step.clone();
            }
            let last = first + u64::from(step.times);
            if n < last {
                return step.clone();
            }
            first = last;
        }
        self.then.clone().unwrap_or_else(|| Step::text("Done."))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_answer_in_order_with_times() {
        let s: Scenario = serde_json::from_str(
            r#"{"steps": [
                {"content": [{"text": "a"}]},
                {"error": {"status": 529, "retryAfter": 1}, "times": 2},
                {"content": [{"toolUse": {"name": "Bash", "input": {"command": "ls"}}}]}
            ]}"#,
        )
        .unwrap();
        assert_eq!(s.step_for(0).content, vec![Block::Text("a".into())]);
        assert_eq!(s.step_for(1).error.as_ref().unwrap().status, 529);
        assert_eq!(s.step_for(2).error.as_ref().unwrap().retry_after, Some(1));
        assert_eq!(s.step_for(3).effective_stop_reason(), "tool_use");
        assert_eq!(s.step_for(4), Step::text("Done."));
    }

    #[test]
    fn times_zero_answers_forever() {
        let s = Scenario::new(vec![Step::text("a"), Step::error(529, None, 0)]);
        assert!(s.step_for(0).error.is_none());
        assert_eq!(s.step_for(1_000).error.unwrap().status, 529);
    }

    #[test]
    fn unknown_fields_are_refused() {
        assert!(serde_json::from_str::<Scenario>(r#"{"steps": [{"txt": "a"}]}"#).is_err());
    }
}
