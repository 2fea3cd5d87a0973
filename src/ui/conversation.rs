//! An execution's log lines turned into the conversation the agent had:
//! assistant text, each tool call with its input and its result, and the
//! tokens and estimated cost as they grew, then the final result.
//!
//! The log rows keep the CLI's stream-json lines verbatim (kinds
//! `assistant`, `user`, `system`, `result`), beside lines of ccs's own
//! (`ccs`, `check`, `stderr`, `raw`). Everything in them came from the agent
//! and is untrusted: it is only ever shown as escaped text, each piece cut
//! to [`MAX_TEXT`] characters. Running cost is the same estimate the
//! worker's ceiling uses ([`CostEstimator`], each `message.id` counted
//! once); the `result` line's `total_cost_usd` is the authoritative figure.

use std::collections::HashMap;

use serde_json::Value;

use crate::runner::stream_json::{CostEstimator, Event, PriceTable, parse_line};
use crate::store::LogLine;

/// Longest piece of text shown for one block.
pub const MAX_TEXT: usize = 20_000;

/// One thing that happened, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    /// The run's first line: model and tools.
    Start { model: String, tools: usize },
    /// Text the model wrote.
    Text(String),
    /// A tool call, with its result once it came back.
    Tool {
        id: String,
        name: String,
        input: String,
        result: Option<ToolResult>,
    },
    /// Tokens and estimated cost so far, after a new model message.
    Usage {
        input_tokens: u64,
        output_tokens: u64,
        cost_usd: f64,
    },
    /// The `result` line.
    Result {
        subtype: String,
        is_error: bool,
        text: Option<String>,
        cost_usd: Option<f64>,
        turns: Option<u32>,
    },
    /// A line of ccs's own, stderr, or one that is not stream-json.
    Note { kind: String, text: String },
}

#[derive(Debug, Clone, PartialEq)]
pub struct ToolResult {
    pub text: String,
    pub is_error: bool,
}

fn clip(s: &str) -> String {
    super::layout::clip(s, MAX_TEXT)
}

/// Text of a tool result's `content`: a string, or text blocks.
fn content_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(blocks) => blocks
            .iter()
            .filter_map(|b| b.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Builds the conversation from log lines in sequence order.
pub fn build(lines: &[LogLine]) -> Vec<Item> {
    let mut items = Vec::new();
    let mut tools: HashMap<String, usize> = HashMap::new();
    let mut estimator = CostEstimator::new(PriceTable::default());
    let mut seen_messages = std::collections::HashSet::new();
    let mut tokens = (0u64, 0u64);
    for line in lines {
        match line.kind.as_str() {
            "assistant" => {
                let event = parse_line(&line.text);
                estimator.observe(&event);
                let Ok(v) = serde_json::from_str::<Value>(&line.text) else {
                    continue;
                };
                let message = &v["message"];
                for block in message["content"].as_array().into_iter().flatten() {
                    match block["type"].as_str() {
                        Some("text") => {
                            let text = block["text"].as_str().unwrap_or_default();
                            if !text.trim().is_empty() {
                                items.push(Item::Text(clip(text)));
                            }
                        }
                        Some("tool_use") => {
                            let id = block["id"].as_str().unwrap_or_default().to_owned();
                            let input =
                                serde_json::to_string_pretty(&block["input"]).unwrap_or_default();
                            tools.insert(id.clone(), items.len());
                            items.push(Item::Tool {
                                id,
                                name: clip(block["name"].as_str().unwrap_or("?")),
                                input: clip(&input),
                                result: None,
                            });
                        }
                        _ => {}
                    }
                }
                let id = message["id"].as_str().map(str::to_owned);
                if let Event::Assistant {
                    usage: Some(usage), ..
                } = &event
                    && id
                        .as_ref()
                        .is_none_or(|id| seen_messages.insert(id.clone()))
                {
                    tokens.0 += usage.input_tokens
                        + usage.cache_creation_input_tokens
                        + usage.cache_read_input_tokens;
                    tokens.1 += usage.output_tokens;
                    items.push(Item::Usage {
                        input_tokens: tokens.0,
                        output_tokens: tokens.1,
                        cost_usd: estimator.running_estimate_usd(),
                    });
                }
            }
            "user" => {
                let Ok(v) = serde_json::from_str::<Value>(&line.text) else {
                    continue;
                };
                for block in v["message"]["content"].as_array().into_iter().flatten() {
                    if block["type"].as_str() != Some("tool_result") {
                        continue;
                    }
                    let id = block["tool_use_id"].as_str().unwrap_or_default();
                    let result = ToolResult {
                        text: clip(&content_text(&block["content"])),
                        is_error: block["is_error"].as_bool().unwrap_or(false),
                    };
                    match tools.get(id).and_then(|&i| items.get_mut(i)) {
                        Some(Item::Tool { result: slot, .. }) => *slot = Some(result),
                        _ => items.push(Item::Note {
                            kind: "tool result".into(),
                            text: result.text,
                        }),
                    }
                }
            }
            "system" | "result" => match parse_line(&line.text) {
                Event::Init { model, tools, .. } => items.push(Item::Start {
                    model: model.unwrap_or_else(|| "unknown model".into()),
                    tools: tools.len(),
                }),
                Event::Result(r) => items.push(Item::Result {
                    subtype: r.subtype.clone(),
                    is_error: r.is_error || !r.is_success(),
                    text: r.result.as_deref().map(clip).or_else(|| r.error_text()),
                    cost_usd: r.total_cost_usd,
                    turns: r.num_turns,
                }),
                other => items.push(Item::Note {
                    kind: line.kind.clone(),
                    text: clip(&other.summary()),
                }),
            },
            kind => items.push(Item::Note {
                kind: kind.to_owned(),
                text: clip(&line.text),
            }),
        }
    }
    items
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(seq: i64, kind: &str, text: &str) -> LogLine {
        LogLine {
            seq,
            at: 0,
            kind: kind.into(),
            text: text.into(),
        }
    }

    #[test]
    fn tool_calls_get_their_results_and_usage_counts_each_message_once() {
        let assistant = r#"{"type":"assistant","message":{"id":"msg_1","model":"claude-sonnet-4-5","content":[{"type":"text","text":"Reading <b>it</b>"},{"type":"tool_use","id":"tu_1","name":"Read","input":{"file_path":"a.rs"}}],"usage":{"input_tokens":10,"output_tokens":5}}}"#;
        let lines = vec![
            line(
                1,
                "system",
                r#"{"type":"system","subtype":"init","model":"m","tools":["Read","Bash"]}"#,
            ),
            line(2, "assistant", assistant),
            // More of the same message: no second usage step.
            line(
                3,
                "assistant",
                r#"{"type":"assistant","message":{"id":"msg_1","content":[{"type":"text","text":"more"}],"usage":{"input_tokens":10,"output_tokens":5}}}"#,
            ),
            line(
                4,
                "user",
                r#"{"type":"user","message":{"content":[{"type":"tool_result","tool_use_id":"tu_1","content":[{"type":"text","text":"fn main() {}"}],"is_error":false}]}}"#,
            ),
            line(5, "stderr", "warning: something"),
            line(
                6,
                "result",
                r#"{"type":"result","subtype":"success","is_error":false,"result":"done","total_cost_usd":0.25,"num_turns":2}"#,
            ),
        ];
        let items = build(&lines);
        assert_eq!(
            items[0],
            Item::Start {
                model: "m".into(),
                tools: 2
            }
        );
        assert_eq!(items[1], Item::Text("Reading <b>it</b>".into()));
        match &items[2] {
            Item::Tool {
                name,
                input,
                result,
                ..
            } => {
                assert_eq!(name, "Read");
                assert!(input.contains("a.rs"));
                assert_eq!(result.as_ref().unwrap().text, "fn main() {}");
            }
            other => panic!("{other:?}"),
        }
        let usages = items
            .iter()
            .filter(|i| matches!(i, Item::Usage { .. }))
            .count();
        assert_eq!(usages, 1);
        assert!(
            items
                .iter()
                .any(|i| matches!(i, Item::Note { kind, .. } if kind == "stderr"))
        );
        assert!(matches!(
            items.last(),
            Some(Item::Result { cost_usd: Some(c), is_error: false, .. }) if (*c - 0.25).abs() < 1e-9
        ));
    }

    #[test]
    fn garbage_lines_are_notes_not_failures() {
        let items = build(&[line(1, "raw", "not json"), line(2, "user", "{nope")]);
        assert_eq!(items.len(), 1);
    }
}
