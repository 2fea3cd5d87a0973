//! `ccs-test-agent`: a stand-in for Anthropic's `claude` CLI in headless mode.
//!
//! ccs runs `claude -p PROMPT --output-format stream-json --verbose …` and
//! parses what it prints. This program takes the same arguments ([`args`]),
//! refuses what the CLI refuses (`stream-json` without `--verbose`,
//! `--dangerously-skip-permissions` as root outside a sandbox, unknown
//! options), and prints the same lines — `system`/`init`, `assistant`
//! (one message id on two lines, as the CLI does), `user` tool results, then
//! `result` — without calling any API. What a run does is steered by
//! [`directives`] in the prompt:
//!
//! | directive | effect |
//! |---|---|
//! | `@cost=0.25` | `total_cost_usd` (default 0.01); the `assistant` lines' `usage` prices to it ([`pricing`]) |
//! | `@turns=3` | assistant turns (default 1); every turn but the last calls a tool |
//! | `@sleep=2.5` | the run lasts that long; the init line comes at once, the rest spread along |
//! | `@result=text` | the result text, to the end of the line (default: the prompt's first non-blank line) |
//! | `@write=path` | writes the prompt to that file (relative to the cwd; parents created) |
//! | `@env=NAME` | appends a line `NAME=value` (`NAME=<unset>`) to the result |
//! | `@read=path` | appends a line `READ path: <its contents, trimmed>` (or `READ path: <the error>`) to the result |
//! | `@stderr=text` | writes the text to stderr, to the end of the line |
//! | `@fail` | ends with `subtype: error_during_execution`, `is_error: true`, no `result`; exit 1 |
//! | `@fail-once=PATH` | like `@fail` when PATH does not exist (and creates it); succeeds when it does: a retry then passes |
//! | `@crash` | after the turns, exits with code 137 without a `result` line |
//! | `@hang` | after the init line (and any `@write`/`@stderr`/`@alloc`/`@fetch`), never ends |
//! | `@alloc=64` | after the init line, allocates and touches that many MiB, one every 20 ms (a process that grows, as real ones do), held to the end (OOM tests) |
//! | `@fetch=URL` | a plain-HTTP GET through `HTTP_PROXY` when set; appends `FETCH URL -> STATUS BODY` (or `-> error: …`) to the result ([`fetch`]) |
//! | `@fetch-direct=URL` | the same, ignoring `HTTP_PROXY` |
//! | `@serve=8080` | after the init line, serves HTTP on that port until killed (a stand-in web host for egress tests) |
//!
//! A bad directive value (`@cost=abc`) is an error: exit 1 before any output.
//! Precedence: `@hang` over `@crash` over `@fail`. `--max-turns N` below
//! `@turns` ends with `error_max_turns` after N turns; `--max-budget-usd X`
//! below `@cost` ends with `error_max_budget_usd`; both exit 1.
//!
//! `--output-format json` prints only the result object (with `--verbose`, the
//! array of every message, as some CLI versions do); `text` prints only the
//! result text. When the prompt is not on the command line it is read from
//! stdin. When `CCS_TEST_AGENT_RECORD` names a file, every invocation appends
//! `{"argv":[…],"prompt":…,"cwd":…}` to it, for tests to check what the agent
//! was given.

mod args;
mod directives;
mod fetch;
mod ids;
mod pricing;

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};

use crate::args::{Args, Command, OutputFormat};
use crate::directives::Directives;
use crate::ids::Ids;
use crate::pricing::Usage;

/// The model when `--model` is not given.
const DEFAULT_MODEL: &str = "claude-sonnet-4-5";

/// The tools listed when `--allowedTools` is not given.
const DEFAULT_TOOLS: [&str; 11] = [
    "Task",
    "Bash",
    "Glob",
    "Grep",
    "Read",
    "Edit",
    "Write",
    "NotebookEdit",
    "WebFetch",
    "TodoWrite",
    "WebSearch",
];

/// The environment variable naming the record file.
const RECORD_ENV: &str = "CCS_TEST_AGENT_RECORD";

/// How the process ends when it does not end normally.
#[derive(Debug)]
struct Exit {
    code: u8,
    /// Written to stderr, when not empty.
    message: String,
}

impl Exit {
    fn error(message: impl Into<String>) -> Exit {
        Exit {
            code: 1,
            message: message.into(),
        }
    }
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    match run(&argv) {
        Ok(()) => ExitCode::SUCCESS,
        Err(exit) => {
            if !exit.message.is_empty() {
                eprintln!("{}", exit.message);
            }
            ExitCode::from(exit.code)
        }
    }
}

fn run(argv: &[String]) -> Result<(), Exit> {
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    let args = match args::parse(argv) {
        Ok(Command::Run(args)) => *args,
        Ok(Command::Help) => {
            print!("{}", args::USAGE);
            return Ok(());
        }
        Ok(Command::Version) => {
            println!(
                "{} (ccs-test-agent, stands in for Claude Code)",
                env!("CARGO_PKG_VERSION")
            );
            return Ok(());
        }
        Err(message) => {
            record(argv, None, &cwd)?;
            return Err(Exit::error(message));
        }
    };
    if args.output_format == OutputFormat::StreamJson && !args.verbose {
        record(argv, None, &cwd)?;
        return Err(Exit::error(
            "Error: When using --print, --output-format=stream-json requires --verbose",
        ));
    }
    let bypass = args.dangerously_skip_permissions
        || args.permission_mode.as_deref() == Some("bypassPermissions");
    if bypass && is_root() && std::env::var("IS_SANDBOX").as_deref() != Ok("1") {
        record(argv, None, &cwd)?;
        return Err(Exit::error(
            "--dangerously-skip-permissions cannot be used with root/sudo privileges for security reasons",
        ));
    }
    let prompt = match &args.prompt {
        Some(prompt) => prompt.clone(),
        None => {
            let mut input = String::new();
            // An unreadable stdin counts as an empty one.
            let _ = io::stdin().read_to_string(&mut input);
            input
        }
    };
    record(argv, Some(&prompt), &cwd)?;
    if prompt.trim().is_empty() {
        return Err(Exit::error(
            "Error: Input must be provided either through stdin or as a prompt argument when using --print",
        ));
    }
    if let Some(id) = &args.session_id
        && !ids::is_uuid(id)
    {
        return Err(Exit::error(
            "Error: Invalid session ID. Must be a valid UUID.",
        ));
    }
    let mcp_servers = mcp_servers(&args.mcp_configs)?;
    let directives = directives::parse(&prompt).map_err(Exit::error)?;
    Agent::new(args, prompt, directives, cwd, mcp_servers).run()
}

/// Appends what the agent was given to the record file, if one is set.
fn record(argv: &[String], prompt: Option<&str>, cwd: &Path) -> Result<(), Exit> {
    let Some(path) = std::env::var_os(RECORD_ENV) else {
        return Ok(());
    };
    let line = json!({
        "argv": argv,
        "prompt": prompt,
        "cwd": cwd.to_string_lossy(),
    });
    fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut file| file.write_all(format!("{line}\n").as_bytes()))
        .map_err(|e| {
            Exit::error(format!(
                "ccs-test-agent: cannot write {RECORD_ENV} file {}: {e}",
                Path::new(&path).display()
            ))
        })
}

/// Whether the effective user is root, from `/proc/self/status`
/// (`Uid: real effective saved fs`); false when that cannot be read.
fn is_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|ids| ids.split_whitespace().nth(1).map(|euid| euid == "0"))
        })
        .unwrap_or(false)
}

/// The names of the MCP servers of every `--mcp-config` (a file, or JSON
/// text), in order. An unreadable or invalid configuration is an error, as in
/// the CLI.
fn mcp_servers(configs: &[String]) -> Result<Vec<String>, Exit> {
    let mut names = Vec::new();
    for config in configs {
        let text = if config.trim_start().starts_with('{') {
            config.clone()
        } else {
            fs::read_to_string(config).map_err(|e| {
                Exit::error(format!(
                    "Error: Invalid MCP configuration:\nMCP config file not found or unreadable: {config}: {e}"
                ))
            })?
        };
        let value: Value = serde_json::from_str(&text).map_err(|e| {
            Exit::error(format!(
                "Error: Invalid MCP configuration:\n{config}: not JSON: {e}"
            ))
        })?;
        let Some(servers) = value.get("mcpServers").and_then(Value::as_object) else {
            return Err(Exit::error(format!(
                "Error: Invalid MCP configuration:\n{config}: mcpServers: expected an object"
            )));
        };
        for name in servers.keys() {
            if !names.contains(name) {
                names.push(name.clone());
            }
        }
    }
    Ok(names)
}

/// How a run ends.
#[derive(Debug, Clone, PartialEq)]
enum Ending {
    Success,
    /// A result line with this error subtype and message, exit 1.
    Error {
        subtype: &'static str,
        message: String,
    },
    /// Exit 137, no result line.
    Crash,
}

/// One run, from the init line to the end.
struct Agent {
    args: Args,
    prompt: String,
    directives: Directives,
    cwd: PathBuf,
    mcp_servers: Vec<String>,
    model: String,
    session_id: String,
    tools: Vec<String>,
    ids: Ids,
    started: Instant,
    /// Every message printed or to print (for `--output-format json --verbose`).
    messages: Vec<Value>,
}

impl Agent {
    fn new(
        args: Args,
        prompt: String,
        directives: Directives,
        cwd: PathBuf,
        mcp_servers: Vec<String>,
    ) -> Agent {
        let mut ids = Ids::new();
        let session_id = args
            .session_id
            .clone()
            .or_else(|| args.resume.clone())
            .unwrap_or_else(|| ids.uuid_v4());
        let model = match args.model.as_deref() {
            None => DEFAULT_MODEL.to_string(),
            Some("sonnet") => "claude-sonnet-4-5".to_string(),
            Some("opus") => "claude-opus-4-5".to_string(),
            Some("haiku") => "claude-haiku-4-5".to_string(),
            Some(model) => model.to_string(),
        };
        let disallowed = args::split_tools(&args.disallowed_tools);
        // As the CLI: `--tools` says which tools exist; `--allowedTools`
        // only pre-approves.
        let defaults = || DEFAULT_TOOLS.iter().map(|t| t.to_string()).collect();
        let tools: Vec<String> = match &args.tools {
            None => defaults(),
            Some(lists) if lists.iter().any(|l| l == "default") => defaults(),
            Some(lists) => args::split_tools(lists),
        }
        .into_iter()
        .filter(|t| !disallowed.contains(t))
        .collect();
        Agent {
            args,
            prompt,
            directives,
            cwd,
            mcp_servers,
            model,
            session_id,
            tools,
            ids,
            started: Instant::now(),
            messages: Vec::new(),
        }
    }

    fn run(mut self) -> Result<(), Exit> {
        let init = self.init_message();
        self.emit(init)?;

        for line in &self.directives.stderr {
            eprintln!("{line}");
        }
        let mut ending = Ending::Success;
        for path in self.directives.writes.clone() {
            if let Err(message) = self.write_file(&path) {
                eprintln!("{message}");
                ending = Ending::Error {
                    subtype: "error_during_execution",
                    message,
                };
                break;
            }
        }
        // Held until the run ends, so the memory stays in use.
        let held = allocate(self.directives.alloc_mib);
        let mut fetched: Vec<String> = Vec::new();
        for url in &self.directives.fetches {
            fetched.push(fetch::fetch_line(url, true));
        }
        for url in &self.directives.direct_fetches {
            fetched.push(fetch::fetch_line(url, false));
        }
        if let Some(port) = self.directives.serve {
            io::stdout().flush().ok();
            return fetch::serve(port).map_err(Exit::error);
        }
        if self.directives.hang {
            io::stdout().flush().ok();
            loop {
                thread::sleep(Duration::from_secs(3600));
            }
        }

        // `@fail-once`: the first run (no marker yet) fails and leaves one.
        let fail_once = match &self.directives.fail_once {
            Some(marker) if std::path::Path::new(marker).exists() => false,
            Some(marker) => {
                std::fs::write(marker, b"failed once\n")
                    .map_err(|e| Exit::error(format!("@fail-once: {marker}: {e}")))?;
                true
            }
            None => false,
        };

        // How many turns run, and how the run ends.
        let planned = self.directives.turns;
        let mut turns = planned;
        if self.directives.crash {
            ending = Ending::Crash;
        } else if ending == Ending::Success && (self.directives.fail || fail_once) {
            ending = Ending::Error {
                subtype: "error_during_execution",
                message: "the test agent was asked to fail (@fail)".to_string(),
            };
        } else if ending == Ending::Success
            && let Some(max) = self.args.max_turns.filter(|max| *max < planned)
        {
            turns = max;
            ending = Ending::Error {
                subtype: "error_max_turns",
                message: format!("Reached maximum number of turns ({max})"),
            };
        } else if ending == Ending::Success
            && let Some(budget) = self
                .args
                .max_budget_usd
                .filter(|budget| *budget < self.directives.cost_usd)
        {
            ending = Ending::Error {
                subtype: "error_max_budget_usd",
                message: format!("Reached maximum budget (${budget})"),
            };
        }

        let price = pricing::price_for(&self.model);
        let usages = pricing::usage_per_turn(self.directives.cost_usd, planned, &price);
        let mut result_text = directives::result_text(&self.directives, &self.prompt, |name| {
            std::env::var(name).ok()
        });
        for path in &self.directives.reads {
            // Read when the result is made: after this run's own writes.
            let content = std::fs::read_to_string(path)
                .map(|c| c.trim().to_owned())
                .unwrap_or_else(|e| format!("<{e}>"));
            if !result_text.is_empty() {
                result_text.push('\n');
            }
            result_text.push_str(&format!("READ {path}: {content}"));
        }
        for line in fetched {
            if !result_text.is_empty() {
                result_text.push('\n');
            }
            result_text.push_str(&line);
        }
        // Sleeps are spread over the turns and the end.
        let step = self.directives.sleep / (turns + 1);
        let mut total = Usage::default();
        let mut cost = 0.0;
        for (turn, usage) in (1..=turns).zip(&usages) {
            thread::sleep(step);
            let last = turn == planned;
            total.add(usage);
            cost += usage.cost_usd(&price);
            self.emit_turn(turn, planned, last, usage, &result_text, &ending)?;
        }
        let remaining = self.directives.sleep.saturating_sub(self.started.elapsed());
        thread::sleep(remaining);
        std::hint::black_box(&held);

        // The cost asked for, or the share of it the turns that ran used.
        let cost = if turns == planned {
            self.directives.cost_usd
        } else {
            cost
        };
        match ending {
            Ending::Crash => {
                io::stdout().flush().ok();
                Err(Exit {
                    code: 137,
                    message: String::new(),
                })
            }
            Ending::Success => {
                let result = self.result_message(turns, cost, &total, Ok(&result_text));
                self.finish(result, &result_text)?;
                Ok(())
            }
            Ending::Error { subtype, message } => {
                let result = self.result_message(turns, cost, &total, Err((subtype, &message)));
                self.finish(result, "")?;
                Err(Exit::error(format!("Error: {message}")))
            }
        }
    }

    /// Prints a message now (stream-json) and keeps it for the end (json).
    fn emit(&mut self, message: Value) -> Result<(), Exit> {
        if self.args.output_format == OutputFormat::StreamJson {
            let mut out = io::stdout().lock();
            writeln!(out, "{message}")
                .and_then(|()| out.flush())
                .map_err(|e| Exit::error(format!("ccs-test-agent: cannot write stdout: {e}")))?;
        }
        self.messages.push(message);
        Ok(())
    }

    /// Prints the end of the run for the json and text formats.
    fn finish(&mut self, result: Value, text: &str) -> Result<(), Exit> {
        let output = match self.args.output_format {
            OutputFormat::StreamJson => return self.emit(result),
            OutputFormat::Json if self.args.verbose => {
                self.messages.push(result);
                Value::Array(std::mem::take(&mut self.messages)).to_string()
            }
            OutputFormat::Json => result.to_string(),
            OutputFormat::Text if text.is_empty() => return Ok(()),
            OutputFormat::Text => text.to_string(),
        };
        let mut out = io::stdout().lock();
        writeln!(out, "{output}")
            .and_then(|()| out.flush())
            .map_err(|e| Exit::error(format!("ccs-test-agent: cannot write stdout: {e}")))
    }

    fn write_file(&self, path: &str) -> Result<(), String> {
        let target = self.cwd.join(path);
        let write = || -> io::Result<()> {
            if let Some(parent) = target.parent() {
                fs::create_dir_all(parent)?;
            }
            fs::write(&target, &self.prompt)
        };
        write().map_err(|e| format!("ccs-test-agent: @write={path}: {e}"))
    }

    fn init_message(&mut self) -> Value {
        let permission_mode = if self.args.dangerously_skip_permissions {
            "bypassPermissions"
        } else {
            self.args.permission_mode.as_deref().unwrap_or("default")
        };
        let api_key_source = if std::env::var_os("ANTHROPIC_API_KEY").is_some() {
            "ANTHROPIC_API_KEY"
        } else {
            "none"
        };
        let servers: Vec<Value> = self
            .mcp_servers
            .iter()
            .map(|name| json!({"name": name, "status": "connected"}))
            .collect();
        json!({
            "type": "system",
            "subtype": "init",
            "cwd": self.cwd.to_string_lossy(),
            "session_id": self.session_id,
            "tools": self.tools,
            "mcp_servers": servers,
            "model": self.model,
            "permissionMode": permission_mode,
            "slash_commands": [],
            "apiKeySource": api_key_source,
            "output_style": "default",
            "uuid": self.ids.uuid_v4(),
        })
    }

    /// One turn: an API message (two lines with one id when it calls a tool),
    /// then the tool's result.
    fn emit_turn(
        &mut self,
        turn: u32,
        planned: u32,
        last: bool,
        usage: &Usage,
        result_text: &str,
        ending: &Ending,
    ) -> Result<(), Exit> {
        let message_id = self.ids.message_id();
        let text = match ending {
            _ if !last => format!("Step {turn} of {planned}: working on it."),
            Ending::Error { message, .. } => format!("Something went wrong: {message}"),
            _ if result_text.is_empty() => "Done.".to_string(),
            _ => result_text.to_string(),
        };
        let text_block = json!({"type": "text", "text": text});
        let assistant = self.assistant_message(&message_id, text_block, usage);
        self.emit(assistant)?;
        if last {
            return Ok(());
        }
        // The allowed tools in turn (`Bash(git log:*)` calls `Bash`), sub-agents aside.
        let names: Vec<&str> = self
            .tools
            .iter()
            .map(|t| t.split('(').next().unwrap_or(t))
            .filter(|t| *t != "Task")
            .collect();
        let tool = names
            .get((turn as usize - 1) % names.len().max(1))
            .copied()
            .unwrap_or("Read")
            .to_string();
        let tool_use_id = self.ids.tool_use_id();
        let tool_block = json!({
            "type": "tool_use",
            "id": tool_use_id,
            "name": tool,
            "input": {"description": format!("test agent step {turn}")},
        });
        let assistant = self.assistant_message(&message_id, tool_block, usage);
        self.emit(assistant)?;
        let user = json!({
            "type": "user",
            "message": {
                "role": "user",
                "content": [{
                    "tool_use_id": tool_use_id,
                    "type": "tool_result",
                    "content": format!("{tool}: ok (step {turn})"),
                    "is_error": false,
                }],
            },
            "parent_tool_use_id": null,
            "session_id": self.session_id,
            "uuid": self.ids.uuid_v4(),
        });
        self.emit(user)
    }

    fn assistant_message(&mut self, message_id: &str, block: Value, usage: &Usage) -> Value {
        json!({
            "type": "assistant",
            "message": {
                "id": message_id,
                "type": "message",
                "role": "assistant",
                "model": self.model,
                "content": [block],
                "stop_reason": null,
                "stop_sequence": null,
                "usage": usage_json(usage),
            },
            "parent_tool_use_id": null,
            "session_id": self.session_id,
            "uuid": self.ids.uuid_v4(),
        })
    }

    fn result_message(
        &mut self,
        turns: u32,
        cost: f64,
        total: &Usage,
        outcome: Result<&str, (&str, &str)>,
    ) -> Value {
        let elapsed = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let mut model_usage = Map::new();
        model_usage.insert(
            self.model.clone(),
            json!({
                "inputTokens": total.input_tokens,
                "outputTokens": total.output_tokens,
                "cacheReadInputTokens": total.cache_read_input_tokens,
                "cacheCreationInputTokens": total.cache_creation_input_tokens,
                "webSearchRequests": 0,
                "costUSD": cost,
                "contextWindow": 200_000,
            }),
        );
        let mut result = Map::new();
        result.insert("type".into(), json!("result"));
        let (subtype, is_error) = match outcome {
            Ok(_) => ("success", false),
            Err((subtype, _)) => (subtype, true),
        };
        result.insert("subtype".into(), json!(subtype));
        result.insert("is_error".into(), json!(is_error));
        result.insert("duration_ms".into(), json!(elapsed));
        result.insert("duration_api_ms".into(), json!(elapsed * 4 / 5));
        result.insert("num_turns".into(), json!(turns));
        if let Ok(text) = outcome {
            result.insert("result".into(), json!(text));
        }
        result.insert("session_id".into(), json!(self.session_id));
        result.insert("total_cost_usd".into(), json!(cost));
        let mut usage = usage_json(total);
        if let Some(usage) = usage.as_object_mut() {
            usage.insert("server_tool_use".into(), json!({"web_search_requests": 0}));
        }
        result.insert("usage".into(), usage);
        result.insert("modelUsage".into(), Value::Object(model_usage));
        result.insert("permission_denials".into(), json!([]));
        if let Err((_, message)) = outcome {
            result.insert("errors".into(), json!([message]));
        }
        result.insert("uuid".into(), json!(self.ids.uuid_v4()));
        Value::Object(result)
    }
}

/// `mib` MiB of memory with every page written, so that it is really in
/// use, taken 1 MiB every [`ALLOC_STEP`]: a process killed for memory in the
/// first milliseconds of a container can escape Docker's OOM accounting
/// (its watch on the cgroup is not set up yet), a growing one does not.
fn allocate(mib: u32) -> Vec<Vec<u8>> {
    let mut held = Vec::new();
    for _ in 0..mib {
        let mut chunk = vec![0u8; 1 << 20];
        for page in chunk.chunks_mut(4096) {
            page[0] = 1;
        }
        held.push(std::hint::black_box(chunk));
        thread::sleep(ALLOC_STEP);
    }
    held
}

/// The pause between two MiB of `@alloc`.
const ALLOC_STEP: Duration = Duration::from_millis(20);

fn usage_json(usage: &Usage) -> Value {
    json!({
        "input_tokens": usage.input_tokens,
        "cache_creation_input_tokens": usage.cache_creation_input_tokens,
        "cache_read_input_tokens": usage.cache_read_input_tokens,
        "output_tokens": usage.output_tokens,
        "service_tier": "standard",
    })
}
