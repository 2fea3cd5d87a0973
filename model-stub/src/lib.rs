//! A stand-in of Anthropic's Messages API, as the Claude Code CLI uses it,
//! playing a scripted model ([`Scenario`]) and recording every request.
//!
//! The real CLI, given `ANTHROPIC_BASE_URL=http://127.0.0.1:PORT` (see
//! [`ModelStub::cli_env`]), sends one `POST /v1/messages?beta=true` per model
//! turn with `stream: true`; the stub answers each with the next step of its
//! scenario as server-sent events, in the API's order:
//!
//! `message_start` (with `usage`) → per block `content_block_start`,
//! `content_block_delta` (`text_delta` or `input_json_delta`),
//! `content_block_stop` → `message_delta` (`stop_reason`, `usage` with the
//! cache counts) → `message_stop`.
//!
//! A step can instead answer an HTTP error (`429`/`529`/`500` with
//! `retry-after`), stream slowly, never finish, or stream an enormous text.
//! A request that is not JSON gets a `400`; other paths a `404`; both are
//! recorded too, so a test can assert the CLI made no other request.
//!
//! Used in-process by the tests ([`ModelStub::start`], port 0) and as the
//! `ccs-model-stub` binary (for a container that reaches it through the
//! egress proxy). Nothing here is durable: the stub lives as long as its
//! value (dropping it stops the server).

pub mod scenario;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

pub use scenario::{Block, ErrorAnswer, Scenario, Step, StepUsage};

/// Largest request body accepted (the CLI's requests grow with the
/// conversation; a long session's are a few MiB).
pub const MAX_REQUEST_BYTES: usize = 64 << 20;

/// One request the stub received.
#[derive(Debug, Clone, Serialize)]
pub struct Recorded {
    pub method: String,
    /// Path and query, e.g. `/v1/messages?beta=true`.
    pub uri: String,
    /// Header names lowercased; several values joined with `, `.
    pub headers: std::collections::BTreeMap<String, String>,
    /// The body as JSON (`null` when it was not JSON).
    pub body: Value,
    /// Which `POST /v1/messages` this was (0-based), if it was one.
    pub message_index: Option<u64>,
}

impl Recorded {
    /// A `POST /v1/messages` (the only request the CLI should make).
    pub fn is_message(&self) -> bool {
        self.message_index.is_some()
    }

    /// Names of the tools offered to the model (`tools[].name`).
    pub fn tool_names(&self) -> Vec<String> {
        self.body
            .get("tools")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|t| t.get("name").and_then(Value::as_str).map(str::to_owned))
            .collect()
    }

    /// The system prompt's text (its blocks joined with newlines).
    pub fn system_text(&self) -> String {
        match self.body.get("system") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Array(blocks)) => blocks
                .iter()
                .filter_map(|b| b.get("text").and_then(Value::as_str))
                .collect::<Vec<_>>()
                .join("\n"),
            _ => String::new(),
        }
    }

    /// The requested `model`.
    pub fn model(&self) -> Option<String> {
        self.body
            .get("model")
            .and_then(Value::as_str)
            .map(str::to_owned)
    }

    /// Every text of the `user` messages (plain strings, `text` blocks and
    /// the text of `tool_result` blocks), in order.
    pub fn user_texts(&self) -> Vec<String> {
        let mut out = Vec::new();
        let messages = self.body.get("messages").and_then(Value::as_array);
        for message in messages.into_iter().flatten() {
            if message.get("role").and_then(Value::as_str) != Some("user") {
                continue;
            }
            collect_texts(message.get("content").unwrap_or(&Value::Null), &mut out);
        }
        out
    }
}

fn collect_texts(content: &Value, out: &mut Vec<String>) {
    match content {
        Value::String(s) => out.push(s.clone()),
        Value::Array(blocks) => {
            for block in blocks {
                if let Some(text) = block.get("text").and_then(Value::as_str) {
                    out.push(text.to_owned());
                }
                if let Some(inner) = block.get("content") {
                    collect_texts(inner, out);
                }
            }
        }
        _ => {}
    }
}

struct Shared {
    scenario: Scenario,
    messages: AtomicU64,
    ids: AtomicU64,
    recorded: Mutex<Vec<Recorded>>,
    /// Each request is also appended here as a JSON line (the binary's
    /// `--record`).
    record_to: Option<Mutex<std::fs::File>>,
}

/// A running stand-in; stops when dropped.
pub struct ModelStub {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl ModelStub {
    /// Serves `scenario` on `127.0.0.1`, a free port.
    pub async fn start(scenario: Scenario) -> std::io::Result<ModelStub> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        Self::serve(listener, scenario, None)
    }

    /// Serves `scenario` on `listener`, appending each request to
    /// `record_to` as a JSON line when given.
    pub fn serve(
        listener: TcpListener,
        scenario: Scenario,
        record_to: Option<std::fs::File>,
    ) -> std::io::Result<ModelStub> {
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            scenario,
            messages: AtomicU64::new(0),
            ids: AtomicU64::new(0),
            recorded: Mutex::new(Vec::new()),
            record_to: record_to.map(Mutex::new),
        });
        let app = axum::Router::new()
            .fallback(handle)
            .layer(DefaultBodyLimit::max(MAX_REQUEST_BYTES))
            .with_state(shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(ModelStub { addr, shared, task })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, what `ANTHROPIC_BASE_URL` takes.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The environment that makes the CLI talk to this stub and nothing
    /// else (no telemetry, no update checks).
    pub fn cli_env(&self) -> Vec<(String, String)> {
        cli_env(&self.base_url())
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<Recorded> {
        lock(&self.shared.recorded).clone()
    }

    /// The `POST /v1/messages` requests so far.
    pub fn message_requests(&self) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(Recorded::is_message)
            .collect()
    }
}

impl Drop for ModelStub {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The environment that points the Claude Code CLI at `base_url` and turns
/// off everything else it would reach.
pub fn cli_env(base_url: &str) -> Vec<(String, String)> {
    [
        ("ANTHROPIC_BASE_URL", base_url),
        ("ANTHROPIC_API_KEY", "sk-ant-stub-key"),
        ("DISABLE_TELEMETRY", "1"),
        ("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let json_body: Option<Value> = serde_json::from_slice(&body).ok();
    let is_message = method == Method::POST && uri.path() == "/v1/messages";
    let message_index =
        (is_message && json_body.is_some()).then(|| shared.messages.fetch_add(1, Ordering::SeqCst));
    let mut header_map = std::collections::BTreeMap::new();
    for (name, value) in &headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        header_map
            .entry(name.as_str().to_owned())
            .and_modify(|v: &mut String| {
                v.push_str(", ");
                v.push_str(&value);
            })
            .or_insert(value);
    }
    let recorded = Recorded {
        method: method.to_string(),
        uri: uri.to_string(),
        headers: header_map,
        body: json_body.clone().unwrap_or(Value::Null),
        message_index,
    };
    if let Some(file) = &shared.record_to {
        use std::io::Write as _;
        let mut file = lock(file);
        let _ = serde_json::to_writer(&mut *file, &recorded);
        let _ = file.write_all(b"\n");
    }
    lock(&shared.recorded).push(recorded);

    let Some(n) = message_index else {
        return if is_message {
            api_error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "body is not JSON",
            )
        } else {
            api_error(StatusCode::NOT_FOUND, "not_found_error", "no such endpoint")
        };
    };
    let request = json_body.unwrap_or(Value::Null);
    let step = shared.scenario.step_for(n);
    if let Some(error) = &step.error {
        let status =
            StatusCode::from_u16(error.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = api_error(status, error.error_type(), &error.message_text());
        if let Some(seconds) = error.retry_after
            && let Ok(value) = seconds.to_string().parse()
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        return response;
    }
    let model = step
        .model
        .clone()
        .or_else(|| {
            request
                .get("model")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "claude-stub".to_owned());
    let id = shared.ids.fetch_add(1, Ordering::SeqCst);
    if request.get("stream").and_then(Value::as_bool) != Some(true) {
        return axum::Json(whole_message(&step, &model, id)).into_response();
    }
    let (tx, rx) = mpsc::channel::<Bytes>(16);
    tokio::spawn(stream_answer(step, model, id, tx));
    let body = Body::from_stream(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|chunk| (Ok::<_, std::convert::Infallible>(chunk), rx))
    }));
    (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

fn api_error(status: StatusCode, kind: &str, message: &str) -> Response {
    let body = json!({"type": "error", "error": {"type": kind, "message": message}});
    (status, axum::Json(body)).into_response()
}

fn message_id(id: u64) -> String {
    format!("msg_stub_{id:06}")
}

fn tool_use_id(id: u64, index: usize) -> String {
    format!("toolu_stub_{id:06}_{index}")
}

fn usage_json(usage: &StepUsage, output_tokens: u64) -> Value {
    json!({
        "input_tokens": usage.input_tokens,
        "cache_creation_input_tokens": usage.cache_creation_input_tokens,
        "cache_read_input_tokens": usage.cache_read_input_tokens,
        "output_tokens": output_tokens,
    })
}

/// The text of a [`Block::TextBytes`] block's bytes `from..to`.
fn filler(from: u64, to: u64) -> String {
    (from..to)
        .map(|i| if i % 100 == 99 { '\n' } else { 'x' })
        .collect()
}

/// A non-streaming answer (the CLI streams; kept for completeness).
fn whole_message(step: &Step, model: &str, id: u64) -> Value {
    let content: Vec<Value> = step
        .content
        .iter()
        .enumerate()
        .map(|(i, block)| match block {
            Block::Text(text) => json!({"type": "text", "text": text}),
            Block::TextBytes(n) => json!({"type": "text", "text": filler(0, *n)}),
            Block::ToolUse { name, input } => json!({
                "type": "tool_use", "id": tool_use_id(id, i), "name": name, "input": input
            }),
        })
        .collect();
    json!({
        "id": message_id(id),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": step.effective_stop_reason(),
        "stop_sequence": null,
        "usage": usage_json(&step.usage, step.usage.output_tokens),
    })
}

/// Streams one answer as SSE events into `tx`; returns when done or when
/// the client went away.
async fn stream_answer(step: Step, model: String, id: u64, tx: mpsc::Sender<Bytes>) {
    let delay = Duration::from_millis(step.delay_ms);
    let send = |event: &'static str, data: Value| {
        let tx = tx.clone();
        async move {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            let chunk = format!("event: {event}\ndata: {data}\n\n");
            tx.send(Bytes::from(chunk)).await.is_ok()
        }
    };
    let start = json!({
        "type": "message_start",
        "message": {
            "id": message_id(id), "type": "message", "role": "assistant", "model": model,
            "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": usage_json(&step.usage, 1),
        }
    });
    if !send("message_start", start).await {
        return;
    }
    for (index, block) in step.content.iter().enumerate() {
        let (first, deltas): (Value, Vec<Value>) = match block {
            Block::Text(text) => (
                json!({"type": "text", "text": ""}),
                text_chunks(text)
                    .map(|t| json!({"type": "text_delta", "text": t}))
                    .collect(),
            ),
            Block::TextBytes(_) => (json!({"type": "text", "text": ""}), Vec::new()),
            Block::ToolUse { name, input } => {
                let input = input.to_string();
                (
                    json!({"type": "tool_use", "id": tool_use_id(id, index), "name": name, "input": {}}),
                    text_chunks(&input)
                        .map(|t| json!({"type": "input_json_delta", "partial_json": t}))
                        .collect(),
                )
            }
        };
        let block_start =
            json!({"type": "content_block_start", "index": index, "content_block": first});
        if !send("content_block_start", block_start).await {
            return;
        }
        let delta_event =
            |delta: Value| json!({"type": "content_block_delta", "index": index, "delta": delta});
        if let Block::TextBytes(total) = block {
            const CHUNK: u64 = 16 * 1024;
            let mut at = 0;
            while at < *total {
                let to = (at + CHUNK).min(*total);
                let delta = json!({"type": "text_delta", "text": filler(at, to)});
                if !send("content_block_delta", delta_event(delta)).await {
                    return;
                }
                at = to;
            }
        }
        for (i, delta) in deltas.into_iter().enumerate() {
            if !send("content_block_delta", delta_event(delta)).await {
                return;
            }
            if step.hang && index == 0 && i == 0 {
                hang(&tx).await;
                return;
            }
        }
        if step.hang && index == 0 {
            hang(&tx).await;
            return;
        }
        if !send(
            "content_block_stop",
            json!({"type": "content_block_stop", "index": index}),
        )
        .await
        {
            return;
        }
    }
    if step.hang {
        hang(&tx).await;
        return;
    }
    let delta = json!({
        "type": "message_delta",
        "delta": {"stop_reason": step.effective_stop_reason(), "stop_sequence": null},
        "usage": usage_json(&step.usage, step.usage.output_tokens),
    });
    if !send("message_delta", delta).await {
        return;
    }
    send("message_stop", json!({"type": "message_stop"})).await;
}

/// Sends a `ping` every half second until the client hangs up.
async fn hang(tx: &mpsc::Sender<Bytes>) {
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let ping = Bytes::from_static(b"event: ping\ndata: {\"type\": \"ping\"}\n\n");
        if tx.send(ping).await.is_err() {
            return;
        }
    }
}

/// `text` in pieces of up to 64 characters (so a stream has several deltas).
fn text_chunks(text: &str) -> impl Iterator<Item = String> + '_ {
    let chars: Vec<char> = text.chars().collect();
    let pieces: Vec<String> = chars.chunks(64).map(|c| c.iter().collect()).collect();
    pieces.into_iter()
}
