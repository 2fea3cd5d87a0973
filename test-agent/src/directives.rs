//! Directives: `@name=value` tokens anywhere in the prompt that steer the
//! agent.
//!
//! A directive is a whitespace-separated token starting with `@` and a known
//! name; other `@…` tokens (`@claude`, `@alice`) are ordinary words. A known
//! directive with a bad value is an error, as a bad flag would be.
//! `@result=` and `@stderr=` take the rest of their line. When a directive that
//! takes one value comes several times, the last one wins; `@write=`, `@read=`,
//! `@env=`, `@fetch=`, `@fetch-direct=` and `@stderr=` accumulate.

use std::time::Duration;

/// Most turns `@turns=` accepts.
pub const MAX_TURNS: u32 = 1000;

/// Most memory `@alloc=` accepts, in MiB.
pub const MAX_ALLOC_MIB: u32 = 16 * 1024;

/// What the prompt asks of the agent.
#[derive(Debug, Clone, PartialEq)]
pub struct Directives {
    /// `@cost=0.25`: the reported `total_cost_usd`.
    pub cost_usd: f64,
    /// `@turns=3`: assistant turns.
    pub turns: u32,
    /// `@sleep=2.5`: how long the whole run takes.
    pub sleep: Duration,
    /// `@result=text`: the result text (default: the prompt's first line).
    pub result: Option<String>,
    /// `@write=path`: files to write, their content the prompt.
    pub writes: Vec<String>,
    /// `@env=NAME`: variables whose values go into the result.
    pub envs: Vec<String>,
    /// `@read=path`: files whose contents go into the result.
    pub reads: Vec<String>,
    /// `@stderr=text`: lines written to stderr.
    pub stderr: Vec<String>,
    /// `@fail`: end with an `error_during_execution` result, exit code 1.
    pub fail: bool,
    /// `@fail-once=PATH`: fail if PATH does not exist (creating it), so the
    /// first run fails and a retry succeeds.
    pub fail_once: Option<String>,
    /// `@crash`: exit with code 137, without a result line.
    pub crash: bool,
    /// `@hang`: never end.
    pub hang: bool,
    /// `@alloc=64`: MiB of memory to allocate and touch after the init line,
    /// one at a time.
    pub alloc_mib: u32,
    /// `@fetch=URL`: plain-HTTP GETs through `HTTP_PROXY` when set.
    pub fetches: Vec<String>,
    /// `@fetch-direct=URL`: plain-HTTP GETs that ignore `HTTP_PROXY`.
    pub direct_fetches: Vec<String>,
    /// `@serve=PORT`: after the init line, serve HTTP on that port forever.
    pub serve: Option<u16>,
}

impl Default for Directives {
    fn default() -> Self {
        Directives {
            cost_usd: 0.01,
            turns: 1,
            sleep: Duration::ZERO,
            result: None,
            writes: Vec::new(),
            envs: Vec::new(),
            reads: Vec::new(),
            stderr: Vec::new(),
            fail: false,
            fail_once: None,
            crash: false,
            hang: false,
            alloc_mib: 0,
            fetches: Vec::new(),
            direct_fetches: Vec::new(),
            serve: None,
        }
    }
}

/// Reads the directives of `prompt`; `Err` explains a bad one.
pub fn parse(prompt: &str) -> Result<Directives, String> {
    let mut d = Directives::default();
    for line in prompt.lines() {
        let mut rest = line;
        loop {
            rest = rest.trim_start();
            if rest.is_empty() {
                break;
            }
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            let (token, after) = rest.split_at(end);
            if let Some(body) = token.strip_prefix('@') {
                let (name, value) = match body.split_once('=') {
                    Some((name, value)) => (name, Some(value)),
                    None => (body, None),
                };
                let bad = |why: &str| Err(format!("invalid directive '{token}': {why}"));
                let required = || value.ok_or_else(|| format!("directive '@{name}' needs a value"));
                match name {
                    "result" | "stderr" => {
                        required()?;
                        // The value runs to the end of the line.
                        let text = rest[name.len() + 2..].trim().to_string();
                        if name == "result" {
                            d.result = Some(text);
                        } else {
                            d.stderr.push(text);
                        }
                        break;
                    }
                    "cost" => match required()?.parse::<f64>() {
                        Ok(cost) if cost.is_finite() && cost >= 0.0 => d.cost_usd = cost,
                        _ => return bad("expected a number of USD, 0 or more"),
                    },
                    "turns" => match required()?.parse::<u32>() {
                        Ok(turns) if (1..=MAX_TURNS).contains(&turns) => d.turns = turns,
                        _ => return bad(&format!("expected a whole number from 1 to {MAX_TURNS}")),
                    },
                    "sleep" => match required()?.parse::<f64>().map(Duration::try_from_secs_f64) {
                        Ok(Ok(sleep)) => d.sleep = sleep,
                        _ => return bad("expected a number of seconds, 0 or more"),
                    },
                    "write" | "read" => match required()? {
                        "" => return bad("expected a file path"),
                        path if name == "write" => d.writes.push(path.to_string()),
                        path => d.reads.push(path.to_string()),
                    },
                    "alloc" => match required()?.parse::<u32>() {
                        Ok(mib) if mib <= MAX_ALLOC_MIB => d.alloc_mib = mib,
                        _ => return bad(&format!("expected MiB, from 0 to {MAX_ALLOC_MIB}")),
                    },
                    "serve" => match required()?.parse::<u16>() {
                        Ok(port) if port > 0 => d.serve = Some(port),
                        _ => return bad("expected a TCP port, 1 to 65535"),
                    },
                    "fetch" | "fetch-direct" => match required()? {
                        url if url.starts_with("http://") && url.len() > "http://".len() => {
                            if name == "fetch" {
                                d.fetches.push(url.to_string());
                            } else {
                                d.direct_fetches.push(url.to_string());
                            }
                        }
                        _ => return bad("expected an http:// URL"),
                    },
                    "env" => match required()? {
                        "" => return bad("expected an environment variable name"),
                        var => d.envs.push(var.to_string()),
                    },
                    "fail-once" => match required()? {
                        "" => return bad("expected a marker file path"),
                        path => d.fail_once = Some(path.to_string()),
                    },
                    "fail" | "crash" | "hang" => {
                        if value.is_some() {
                            return bad("this directive takes no value");
                        }
                        match name {
                            "fail" => d.fail = true,
                            "crash" => d.crash = true,
                            _ => d.hang = true,
                        }
                    }
                    _ => {}
                }
            }
            rest = after;
        }
    }
    Ok(d)
}

/// The result text: `@result=` or the prompt's first non-blank line, then one
/// line `NAME=value` (`NAME=<unset>`) per `@env=`.
pub fn result_text(d: &Directives, prompt: &str, env: impl Fn(&str) -> Option<String>) -> String {
    let base = match &d.result {
        Some(text) => text.clone(),
        None => prompt
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .unwrap_or_default()
            .to_string(),
    };
    let mut lines: Vec<String> = Vec::new();
    if !base.is_empty() {
        lines.push(base);
    }
    for name in &d.envs {
        let value = env(name).unwrap_or_else(|| "<unset>".to_string());
        lines.push(format!("{name}={value}"));
    }
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(prompt: &str) -> Directives {
        match parse(prompt) {
            Ok(d) => d,
            Err(e) => panic!("{prompt:?}: {e}"),
        }
    }

    #[test]
    fn defaults() {
        assert_eq!(ok("just review the code"), Directives::default());
        let d = Directives::default();
        assert_eq!(d.cost_usd, 0.01);
        assert_eq!(d.turns, 1);
        assert_eq!(d.sleep, Duration::ZERO);
    }

    #[test]
    fn all_directives() {
        let d = ok(
            "Fix it @cost=0.25 @turns=3\n@sleep=2.5 @write=a/b.txt @write=c \
             @env=HOME @fail @crash @hang\n@stderr=oops, said  the agent \n\
             something @result=All done, 2 files @cost=9 (not a directive here)\nlast",
        );
        assert_eq!(d.cost_usd, 0.25);
        assert_eq!(d.turns, 3);
        assert_eq!(d.sleep, Duration::from_millis(2500));
        assert_eq!(d.writes, vec!["a/b.txt", "c"]);
        assert_eq!(d.envs, vec!["HOME"]);
        assert!(d.fail && d.crash && d.hang);
        assert_eq!(d.stderr, vec!["oops, said  the agent"]);
        assert_eq!(
            d.result.as_deref(),
            Some("All done, 2 files @cost=9 (not a directive here)")
        );
    }

    #[test]
    fn alloc_and_fetch() {
        let d =
            ok("@alloc=64 @fetch=http://a.test:80/x @fetch-direct=http://b.test/ @fetch=http://c/");
        assert_eq!(d.alloc_mib, 64);
        assert_eq!(d.fetches, ["http://a.test:80/x", "http://c/"]);
        assert_eq!(d.direct_fetches, ["http://b.test/"]);
        assert_eq!(ok("@serve=8080").serve, Some(8080));
    }

    #[test]
    fn last_value_wins() {
        let d = ok("@cost=1 @turns=2 @cost=2\n@turns=5 @result=a\n@result=b");
        assert_eq!(d.cost_usd, 2.0);
        assert_eq!(d.turns, 5);
        assert_eq!(d.result.as_deref(), Some("b"));
    }

    #[test]
    fn other_at_words_are_not_directives() {
        let d = ok("@claude please mail bob@example.com about (@fail) x@hang @Fail @costs=x");
        assert_eq!(d, Directives::default());
    }

    #[test]
    fn empty_result_is_allowed() {
        assert_eq!(ok("@result=").result.as_deref(), Some(""));
        assert_eq!(ok("@result=   ").result.as_deref(), Some(""));
        assert_eq!(ok("@cost=0").cost_usd, 0.0);
        assert_eq!(ok("@sleep=0").sleep, Duration::ZERO);
    }

    #[test]
    fn bad_values_are_errors() {
        for (prompt, wanted) in [
            ("@cost=abc", "invalid directive '@cost=abc'"),
            ("@cost=-1", "invalid directive '@cost=-1'"),
            ("@cost=NaN", "invalid directive '@cost=NaN'"),
            ("@cost=inf", "invalid directive '@cost=inf'"),
            ("@cost", "directive '@cost' needs a value"),
            ("@turns=0", "from 1 to 1000"),
            ("@turns=1001", "from 1 to 1000"),
            ("@turns=2.5", "invalid directive '@turns=2.5'"),
            ("@sleep=-1", "invalid directive '@sleep=-1'"),
            ("@sleep=1e30", "invalid directive '@sleep=1e30'"),
            ("@sleep=soon", "invalid directive '@sleep=soon'"),
            ("@write=", "expected a file path"),
            ("@write", "needs a value"),
            ("@env=", "expected an environment variable name"),
            ("@read=", "expected a file path"),
            ("@fail=yes", "takes no value"),
            ("@hang=1", "takes no value"),
            ("@result", "directive '@result' needs a value"),
            ("@alloc=lots", "expected MiB"),
            ("@serve=0", "expected a TCP port"),
            ("@alloc=99999", "expected MiB"),
            ("@fetch=https://x/", "expected an http:// URL"),
            ("@fetch-direct=http://", "expected an http:// URL"),
            ("@stderr", "directive '@stderr' needs a value"),
        ] {
            match parse(prompt) {
                Ok(d) => panic!("{prompt:?} parsed as {d:?}"),
                Err(e) => assert!(e.contains(wanted), "{prompt:?}: {e}"),
            }
        }
    }

    #[test]
    fn result_defaults_to_first_line() {
        let d = ok("\n  Review PR #12 @cost=0.5  \nmore");
        assert_eq!(
            result_text(&d, "\n  Review PR #12 @cost=0.5  \nmore", |_| None),
            "Review PR #12 @cost=0.5"
        );
        assert_eq!(result_text(&d, "", |_| None), "");
    }

    #[test]
    fn result_with_env() {
        let prompt = "@result=Done @env=TOKEN\n@env=MISSING";
        let d = ok(prompt);
        assert_eq!(d.result.as_deref(), Some("Done @env=TOKEN"));
        assert_eq!(d.envs, vec!["MISSING"]);
        let prompt = "@env=TOKEN @env=MISSING @result=Done";
        let d = ok(prompt);
        let env = |name: &str| (name == "TOKEN").then(|| "s3cret".to_string());
        assert_eq!(
            result_text(&d, prompt, env),
            "Done\nTOKEN=s3cret\nMISSING=<unset>"
        );
        let d = ok("@env=TOKEN @result=");
        assert_eq!(result_text(&d, "", env), "TOKEN=s3cret");
    }
}
