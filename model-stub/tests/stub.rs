//! The stand-in answers as the Messages API streams, and records requests.

use ccs_model_stub::{ModelStub, Scenario, Step, StepUsage};
use serde_json::{Value, json};

async fn post(stub: &ModelStub, body: Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}/v1/messages?beta=true", stub.base_url()))
        .header("x-api-key", "k")
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// The `event:` names and `data:` objects of an SSE body.
fn events(text: &str) -> Vec<(String, Value)> {
    text.split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            let mut name = String::new();
            let mut data = Value::Null;
            for line in e.lines() {
                if let Some(n) = line.strip_prefix("event: ") {
                    name = n.to_owned();
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data = serde_json::from_str(d).unwrap();
                }
            }
            (name, data)
        })
        .collect()
}

#[tokio::test]
async fn streams_text_and_tool_use_in_the_apis_order() {
    let usage = StepUsage {
        input_tokens: 100,
        output_tokens: 20,
        cache_creation_input_tokens: 300,
        cache_read_input_tokens: 40,
    };
    let mut step = Step::tool_use("Write", json!({"file_path": "a.txt", "content": "x"}));
    step.content
        .insert(0, ccs_model_stub::Block::Text("hi".into()));
    let stub = ModelStub::start(Scenario::new(vec![step.with_usage(usage)]))
        .await
        .unwrap();
    let response = post(
        &stub,
        json!({"model": "claude-sonnet-5-5", "stream": true, "tools": [{"name": "Read"}, {"name": "Write"}],
               "system": [{"type": "text", "text": "sys"}], "messages": [{"role": "user", "content": "go"}]}),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let events = events(&response.text().await.unwrap());
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    assert_eq!(events[0].1["message"]["model"], "claude-sonnet-5-5");
    assert_eq!(
        events[0].1["message"]["usage"]["cache_creation_input_tokens"],
        300
    );
    assert_eq!(events[4].1["content_block"]["name"], "Write");
    let json_text = events[5].1["delta"]["partial_json"].as_str().unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(json_text).unwrap(),
        json!({"file_path": "a.txt", "content": "x"})
    );
    assert_eq!(events[7].1["delta"]["stop_reason"], "tool_use");
    assert_eq!(events[7].1["usage"]["output_tokens"], 20);
    assert_eq!(events[7].1["usage"]["cache_read_input_tokens"], 40);

    let recorded = stub.message_requests();
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].uri, "/v1/messages?beta=true");
    assert_eq!(recorded[0].tool_names(), ["Read", "Write"]);
    assert_eq!(recorded[0].system_text(), "sys");
    assert_eq!(recorded[0].user_texts(), ["go"]);
    assert_eq!(recorded[0].headers["x-api-key"], "k");
}

#[tokio::test]
async fn errors_carry_retry_after_then_the_script_goes_on() {
    let stub = ModelStub::start(Scenario::new(vec![
        Step::error(529, Some(3), 2),
        Step::text("ok").with_model("claude-haiku-5-5"),
    ]))
    .await
    .unwrap();
    for _ in 0..2 {
        let response = post(&stub, json!({"model": "m", "stream": true})).await;
        assert_eq!(response.status(), 529);
        assert_eq!(response.headers()["retry-after"], "3");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["type"], "overloaded_error");
    }
    let response = post(&stub, json!({"model": "m", "stream": true})).await;
    let events = events(&response.text().await.unwrap());
    assert_eq!(events[0].1["message"]["model"], "claude-haiku-5-5");
    assert_eq!(events[2].1["delta"]["text"], "ok");
    // Other paths are answered 404 and recorded.
    let other = reqwest::get(format!("{}/v1/models", stub.base_url()))
        .await
        .unwrap();
    assert_eq!(other.status(), 404);
    assert_eq!(stub.requests().len(), 4);
    assert_eq!(stub.message_requests().len(), 3);
}

#[tokio::test]
async fn enormous_and_endless_answers() {
    let big = Step {
        content: vec![ccs_model_stub::Block::TextBytes(1_000_000)],
        ..Step::default()
    };
    let endless = Step {
        content: vec![ccs_model_stub::Block::Text("thinking".into())],
        hang: true,
        ..Step::default()
    };
    let stub = ModelStub::start(Scenario::new(vec![big, endless]))
        .await
        .unwrap();
    let text = post(&stub, json!({"stream": true}))
        .await
        .text()
        .await
        .unwrap();
    let total: usize = events(&text)
        .iter()
        .filter_map(|(_, d)| d["delta"]["text"].as_str().map(str::len))
        .sum();
    assert_eq!(total, 1_000_000);

    let mut response = post(&stub, json!({"stream": true})).await;
    let mut seen = String::new();
    // It keeps sending pings and never a message_stop.
    while seen.matches("event: ping").count() < 2 {
        let chunk = response.chunk().await.unwrap().expect("the stream ended");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(!seen.contains("message_stop"));
}
