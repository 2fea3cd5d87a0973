//! The `claude` CLI's command line, parsed the way its parser (commander.js)
//! does: `--name value` and `--name=value`; `--` ends the options; unknown
//! options are errors; `-p`/`--print` is a switch and the prompt is the one
//! positional argument (so `-p PROMPT` reads naturally).
//!
//! Like the CLI, `--allowedTools`, `--disallowedTools`, `--mcp-config` and
//! `--add-dir` are *variadic*: they take every following argument up to the
//! next one starting with `-`. `claude --allowedTools Read "the prompt"`
//! therefore has no prompt; put the prompt right after `-p`, or the lists
//! after the prompt, or use `--allowedTools=Read,Edit`.

/// `--output-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutputFormat {
    #[default]
    Text,
    Json,
    StreamJson,
}

/// The options of one run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Args {
    pub print: bool,
    /// The positional prompt; `None` means "read stdin".
    pub prompt: Option<String>,
    pub output_format: OutputFormat,
    pub verbose: bool,
    pub max_turns: Option<u32>,
    pub model: Option<String>,
    pub allowed_tools: Vec<String>,
    pub disallowed_tools: Vec<String>,
    pub mcp_configs: Vec<String>,
    pub append_system_prompt: Option<String>,
    pub permission_mode: Option<String>,
    pub session_id: Option<String>,
    pub dangerously_skip_permissions: bool,
    pub max_budget_usd: Option<f64>,
    pub add_dirs: Vec<String>,
    pub settings: Option<String>,
    pub strict_mcp_config: bool,
    pub resume: Option<String>,
    /// `--tools`: the built-in tools that exist (`None`: the defaults).
    pub tools: Option<Vec<String>>,
    pub include_partial_messages: bool,
}

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Run(Box<Args>),
    Help,
    Version,
}

/// The modes of CLI 2.1.332 (its help lists all but `default`, which it
/// still takes).
pub const PERMISSION_MODES: [&str; 7] = [
    "acceptEdits",
    "auto",
    "bypassPermissions",
    "default",
    "dontAsk",
    "manual",
    "plan",
];

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Switch,
    /// One value, named as in the CLI's help.
    Value(&'static str),
    /// One or more values.
    Variadic(&'static str),
}

/// (names, kind): every option the agent knows.
const OPTIONS: &[(&[&str], Kind)] = &[
    (&["-p", "--print"], Kind::Switch),
    (&["--output-format"], Kind::Value("format")),
    (&["--verbose"], Kind::Switch),
    (&["--max-turns"], Kind::Value("turns")),
    (&["--model"], Kind::Value("model")),
    (
        &["--allowedTools", "--allowed-tools"],
        Kind::Variadic("tools..."),
    ),
    (
        &["--disallowedTools", "--disallowed-tools"],
        Kind::Variadic("tools..."),
    ),
    (&["--mcp-config"], Kind::Variadic("configs...")),
    (&["--append-system-prompt"], Kind::Value("prompt")),
    (&["--permission-mode"], Kind::Value("mode")),
    (&["--session-id"], Kind::Value("uuid")),
    (&["--dangerously-skip-permissions"], Kind::Switch),
    (&["--max-budget-usd"], Kind::Value("amount")),
    (&["--add-dir"], Kind::Variadic("directories...")),
    (&["--settings"], Kind::Value("file-or-json")),
    (&["--strict-mcp-config"], Kind::Switch),
    (&["--tools"], Kind::Variadic("tools...")),
    (&["--include-partial-messages"], Kind::Switch),
    (&["-r", "--resume"], Kind::Value("sessionId")),
    (&["-h", "--help"], Kind::Switch),
    (&["-v", "--version"], Kind::Switch),
];

pub const USAGE: &str = "\
Usage: ccs-test-agent [options] [prompt]

Stands in for Claude Code (`claude -p`): prints what the real CLI would,
steered by directives in the prompt (@cost=, @turns=, @sleep=, @result=,
@write=, @env=, @stderr=, @fail, @crash, @hang).

Options:
  -p, --print                      print the response and exit
  --output-format <format>         text, json or stream-json
  --verbose                        required with stream-json
  --max-turns <turns>
  --model <model>
  --allowedTools, --allowed-tools <tools...>
  --disallowedTools, --disallowed-tools <tools...>
  --mcp-config <configs...>        files or JSON strings with `mcpServers`
  --append-system-prompt <prompt>
  --permission-mode <mode>         acceptEdits, auto, bypassPermissions, default, dontAsk, manual, plan
  --session-id <uuid>
  --dangerously-skip-permissions
  --max-budget-usd <amount>
  --add-dir <directories...>
  --settings <file-or-json>
  --strict-mcp-config
  --tools <tools...>               the built-in tools that exist (\"\" none, \"default\")
  --include-partial-messages       (accepted; no partial messages are printed)
  -r, --resume <sessionId>
  -h, --help
  -v, --version
";

/// Parses `argv` (without the program name); `Err` is the message for stderr.
pub fn parse(argv: &[String]) -> Result<Command, String> {
    let mut args = Args::default();
    let mut positional: Vec<String> = Vec::new();
    let mut only_positional = false;
    let mut i = 0;
    while i < argv.len() {
        let arg = &argv[i];
        i += 1;
        if only_positional || arg == "-" || !arg.starts_with('-') {
            positional.push(arg.clone());
            continue;
        }
        if arg == "--" {
            only_positional = true;
            continue;
        }
        let (name, inline) = match arg.split_once('=') {
            Some((name, value)) if arg.starts_with("--") => (name, Some(value.to_string())),
            _ => (arg.as_str(), None),
        };
        let Some((names, kind)) = OPTIONS.iter().find(|(names, _)| names.contains(&name)) else {
            return Err(format!("error: unknown option '{arg}'"));
        };
        let long = names.last().copied().unwrap_or(name);
        let flag = |placeholder: &str| {
            let names = names.join(", ");
            format!("{names} <{placeholder}>")
        };
        let mut values: Vec<String> = Vec::new();
        match kind {
            Kind::Switch => {
                if inline.is_some() {
                    return Err(format!("error: unknown option '{arg}'"));
                }
            }
            Kind::Value(placeholder) | Kind::Variadic(placeholder) => {
                // `--name=value` takes that one value, even when variadic.
                let more = inline.is_none() && matches!(kind, Kind::Variadic(_));
                match inline {
                    Some(value) => values.push(value),
                    None => match argv.get(i) {
                        Some(value) => {
                            values.push(value.clone());
                            i += 1;
                        }
                        None => {
                            return Err(format!(
                                "error: option '{}' argument missing",
                                flag(placeholder)
                            ));
                        }
                    },
                }
                if more {
                    while let Some(value) = argv.get(i).filter(|v| !v.starts_with('-')) {
                        values.push(value.clone());
                        i += 1;
                    }
                }
            }
        }
        let value = values.last().cloned().unwrap_or_default();
        match long {
            "--print" => args.print = true,
            "--verbose" => args.verbose = true,
            "--dangerously-skip-permissions" => args.dangerously_skip_permissions = true,
            "--strict-mcp-config" => args.strict_mcp_config = true,
            "--include-partial-messages" => args.include_partial_messages = true,
            "--tools" => args.tools.get_or_insert_with(Vec::new).extend(values),
            "--help" => return Ok(Command::Help),
            "--version" => return Ok(Command::Version),
            "--output-format" => {
                args.output_format = match value.as_str() {
                    "text" => OutputFormat::Text,
                    "json" => OutputFormat::Json,
                    "stream-json" => OutputFormat::StreamJson,
                    _ => {
                        return Err(invalid(
                            &flag("format"),
                            &value,
                            "Allowed choices are text, json, stream-json.",
                        ));
                    }
                }
            }
            "--max-turns" => match value.parse::<u32>() {
                Ok(n) if n > 0 => args.max_turns = Some(n),
                _ => {
                    return Err(invalid(
                        &flag("turns"),
                        &value,
                        "Expected a positive integer.",
                    ));
                }
            },
            "--max-budget-usd" => match value.parse::<f64>() {
                Ok(usd) if usd.is_finite() && usd > 0.0 => args.max_budget_usd = Some(usd),
                _ => {
                    return Err(invalid(
                        &flag("amount"),
                        &value,
                        "Expected a positive number.",
                    ));
                }
            },
            "--permission-mode" => {
                if !PERMISSION_MODES.contains(&value.as_str()) {
                    return Err(invalid(
                        &flag("mode"),
                        &value,
                        &format!("Allowed choices are {}.", PERMISSION_MODES.join(", ")),
                    ));
                }
                args.permission_mode = Some(value);
            }
            "--model" => args.model = Some(value),
            "--append-system-prompt" => args.append_system_prompt = Some(value),
            "--session-id" => args.session_id = Some(value),
            "--settings" => args.settings = Some(value),
            "--resume" => args.resume = Some(value),
            "--allowed-tools" => args.allowed_tools.extend(values),
            "--disallowed-tools" => args.disallowed_tools.extend(values),
            "--mcp-config" => args.mcp_configs.extend(values),
            "--add-dir" => args.add_dirs.extend(values),
            other => return Err(format!("error: unknown option '{other}'")),
        }
    }
    if positional.len() > 1 {
        return Err(format!(
            "error: too many arguments. Expected 1 argument but got {}.",
            positional.len()
        ));
    }
    args.prompt = positional.pop();
    Ok(Command::Run(Box::new(args)))
}

fn invalid(flag: &str, value: &str, why: &str) -> String {
    format!("error: option '{flag}' argument '{value}' is invalid. {why}")
}

/// Splits tool lists as the CLI does: on commas and spaces, except inside
/// parentheses (`Bash(git log:*)`).
pub fn split_tools(lists: &[String]) -> Vec<String> {
    let mut tools = Vec::new();
    for list in lists {
        let mut depth = 0usize;
        let mut current = String::new();
        for c in list.chars() {
            match c {
                '(' => depth += 1,
                ')' => depth = depth.saturating_sub(1),
                _ => {}
            }
            if depth == 0 && (c == ',' || c.is_whitespace()) {
                if !current.is_empty() {
                    tools.push(std::mem::take(&mut current));
                }
            } else {
                current.push(c);
            }
        }
        if !current.is_empty() {
            tools.push(current);
        }
    }
    tools
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(argv: &[&str]) -> Args {
        let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
        match parse(&argv) {
            Ok(Command::Run(args)) => *args,
            other => panic!("{argv:?}: {other:?}"),
        }
    }

    fn err(argv: &[&str]) -> String {
        let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
        match parse(&argv) {
            Err(e) => e,
            other => panic!("{argv:?}: {other:?}"),
        }
    }

    #[test]
    fn full_command_line() {
        let args = run(&[
            "-p",
            "do it",
            "--output-format",
            "stream-json",
            "--verbose",
            "--max-turns",
            "5",
            "--model=claude-opus-4-1",
            "--allowedTools",
            "Read,Edit",
            "Bash(git log:*)",
            "--disallowed-tools=WebFetch",
            "--mcp-config",
            "/a.json",
            "/b.json",
            "--append-system-prompt",
            "--be nice",
            "--permission-mode",
            "acceptEdits",
            "--session-id",
            "5f0c2a8e-1111-4222-8333-444455556666",
            "--dangerously-skip-permissions",
            "--max-budget-usd",
            "1.5",
            "--add-dir",
            "/x",
            "--settings",
            "/s.json",
            "--strict-mcp-config",
            "--tools=",
            "--include-partial-messages",
            "-r",
            "abc",
        ]);
        assert_eq!(
            args,
            Args {
                print: true,
                prompt: Some("do it".into()),
                output_format: OutputFormat::StreamJson,
                verbose: true,
                max_turns: Some(5),
                model: Some("claude-opus-4-1".into()),
                allowed_tools: vec!["Read,Edit".into(), "Bash(git log:*)".into()],
                disallowed_tools: vec!["WebFetch".into()],
                mcp_configs: vec!["/a.json".into(), "/b.json".into()],
                append_system_prompt: Some("--be nice".into()),
                permission_mode: Some("acceptEdits".into()),
                session_id: Some("5f0c2a8e-1111-4222-8333-444455556666".into()),
                dangerously_skip_permissions: true,
                max_budget_usd: Some(1.5),
                add_dirs: vec!["/x".into()],
                settings: Some("/s.json".into()),
                strict_mcp_config: true,
                resume: Some("abc".into()),
                tools: Some(vec![String::new()]),
                include_partial_messages: true,
            }
        );
    }

    #[test]
    fn prompt_positions() {
        assert_eq!(run(&["hello", "-p"]).prompt.as_deref(), Some("hello"));
        assert_eq!(run(&["-p"]).prompt, None);
        assert_eq!(
            run(&["-p", "--", "-starts with dash"]).prompt.as_deref(),
            Some("-starts with dash")
        );
        // Variadic options swallow a following prompt, as in the CLI.
        assert_eq!(run(&["--allowedTools", "Read", "the prompt"]).prompt, None);
        assert_eq!(
            run(&["--allowedTools=Read", "the prompt"])
                .prompt
                .as_deref(),
            Some("the prompt")
        );
        assert_eq!(
            err(&["a", "b"]),
            "error: too many arguments. Expected 1 argument but got 2."
        );
    }

    #[test]
    fn errors_read_like_the_cli() {
        assert_eq!(err(&["--foo"]), "error: unknown option '--foo'");
        assert_eq!(err(&["--verbose=1"]), "error: unknown option '--verbose=1'");
        assert_eq!(
            err(&["-p", "x", "--model"]),
            "error: option '--model <model>' argument missing"
        );
        assert_eq!(
            err(&["--output-format", "xml"]),
            "error: option '--output-format <format>' argument 'xml' is invalid. Allowed choices are text, json, stream-json."
        );
        assert!(err(&["--permission-mode", "yolo"]).contains("Allowed choices are acceptEdits"));
        assert!(err(&["--max-turns", "0"]).contains("Expected a positive integer."));
        assert!(err(&["--max-budget-usd", "x"]).contains("Expected a positive number."));
    }

    #[test]
    fn help_and_version() {
        let argv = |s: &[&str]| s.iter().map(|a| a.to_string()).collect::<Vec<_>>();
        assert_eq!(parse(&argv(&["-h"])), Ok(Command::Help));
        assert_eq!(
            parse(&argv(&["-p", "x", "--version"])),
            Ok(Command::Version)
        );
    }

    #[test]
    fn tool_lists() {
        let lists = vec![
            "Read,Edit Bash(git log:*)".to_string(),
            " Write ,, ".to_string(),
        ];
        assert_eq!(
            split_tools(&lists),
            vec!["Read", "Edit", "Bash(git log:*)", "Write"]
        );
    }
}
