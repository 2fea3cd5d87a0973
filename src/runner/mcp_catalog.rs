//! The MCP servers ccs knows by name, and the agent's `--mcp-config` file.
//!
//! A project's `.claude/container.yaml` lists `mcpServers`. An entry with a
//! `command` is custom and taken as written (`command`, `args`, `env`); an
//! entry without one names a server of the built-in [`CATALOG`] — the usual
//! `npx`/`uvx` command of that server, with the environment it needs:
//!
//! | name | command | needs |
//! |---|---|---|
//! | `github` | `npx -y @modelcontextprotocol/server-github` | `GITHUB_PERSONAL_ACCESS_TOKEN` (or `GITHUB_TOKEN`) |
//! | `linear` | `npx -y linear-mcp-server` | `LINEAR_API_KEY` |
//! | `filesystem` | `npx -y @modelcontextprotocol/server-filesystem .` | — |
//! | `fetch` | `uvx mcp-server-fetch` | — |
//! | `git` | `uvx mcp-server-git --repository .` | — |
//! | `postgres` | `npx -y @modelcontextprotocol/server-postgres $POSTGRES_URL` | `POSTGRES_URL` (or `DATABASE_URL`) |
//! | `slack` | `npx -y @modelcontextprotocol/server-slack` | `SLACK_BOT_TOKEN`, `SLACK_TEAM_ID` |
//! | `sentry` | `uvx mcp-server-sentry --auth-token $SENTRY_AUTH_TOKEN` | `SENTRY_AUTH_TOKEN` |
//! | `puppeteer` | `npx -y @modelcontextprotocol/server-puppeteer` | — |
//!
//! Paths (`.`) are relative to the agent's working directory, the run's
//! workspace. The image must provide `npx`/`uvx` (`deploy/agent/Dockerfile`
//! has Node; add `uv` for the Python servers).
//!
//! Produced by [`crate::jobs::execute`] when it prepares a run (with the
//! `${SECRET}` references of `env` already resolved), consumed by the runners,
//! which write [`mcp_config`]'s JSON to a file the agent reads
//! (`--mcp-config`; read-only in the container) and delete it with the run.
//! Nothing here is stored or logged: the file may hold secrets.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::project_config::{McpServer, interpolate};

/// One server of the catalog.
#[derive(Debug)]
pub struct CatalogEntry {
    /// The name a project uses (`mcpServers[].name`).
    pub name: &'static str,
    /// The program started (stdio transport).
    pub command: &'static str,
    /// Its arguments; `${NAME}` stands for the server's variable `NAME`.
    pub args: &'static [&'static str],
    /// Variables the server cannot start without.
    pub required_env: &'static [RequiredEnv],
}

/// A variable a catalog server needs.
#[derive(Debug)]
pub struct RequiredEnv {
    /// The name the server reads.
    pub name: &'static str,
    /// Another name a project may give it under (the seed's `GITHUB_TOKEN`).
    pub alias: Option<&'static str>,
}

const fn need(name: &'static str) -> RequiredEnv {
    RequiredEnv { name, alias: None }
}

const fn need_or(name: &'static str, alias: &'static str) -> RequiredEnv {
    RequiredEnv {
        name,
        alias: Some(alias),
    }
}

/// The MCP servers known by name.
pub const CATALOG: &[CatalogEntry] = &[
    CatalogEntry {
        name: "github",
        command: "npx",
        args: &["-y", "@modelcontextprotocol/server-github"],
        required_env: &[need_or("GITHUB_PERSONAL_ACCESS_TOKEN", "GITHUB_TOKEN")],
    },
    CatalogEntry {
        name: "linear",
        command: "npx",
        args: &["-y", "linear-mcp-server"],
        required_env: &[need("LINEAR_API_KEY")],
    },
    CatalogEntry {
        name: "filesystem",
        command: "npx",
        args: &["-y", "@modelcontextprotocol/server-filesystem", "."],
        required_env: &[],
    },
    CatalogEntry {
        name: "fetch",
        command: "uvx",
        args: &["mcp-server-fetch"],
        required_env: &[],
    },
    CatalogEntry {
        name: "git",
        command: "uvx",
        args: &["mcp-server-git", "--repository", "."],
        required_env: &[],
    },
    CatalogEntry {
        name: "postgres",
        command: "npx",
        args: &[
            "-y",
            "@modelcontextprotocol/server-postgres",
            "${POSTGRES_URL}",
        ],
        required_env: &[need_or("POSTGRES_URL", "DATABASE_URL")],
    },
    CatalogEntry {
        name: "slack",
        command: "npx",
        args: &["-y", "@modelcontextprotocol/server-slack"],
        required_env: &[need("SLACK_BOT_TOKEN"), need("SLACK_TEAM_ID")],
    },
    CatalogEntry {
        name: "sentry",
        command: "uvx",
        args: &["mcp-server-sentry", "--auth-token", "${SENTRY_AUTH_TOKEN}"],
        required_env: &[need("SENTRY_AUTH_TOKEN")],
    },
    CatalogEntry {
        name: "puppeteer",
        command: "npx",
        args: &["-y", "@modelcontextprotocol/server-puppeteer"],
        required_env: &[],
    },
];

/// The catalog entry called `name`.
pub fn entry(name: &str) -> Option<&'static CatalogEntry> {
    CATALOG.iter().find(|e| e.name == name)
}

/// The `--mcp-config` JSON (`{"mcpServers": {…}}`) for `servers`, whose
/// `env` values are already resolved; `None` when there are none.
///
/// # Errors
///
/// For people: a server without `command` that the catalog does not know,
/// or a catalog server missing a variable it needs.
pub fn mcp_config(servers: &[McpServer]) -> Result<Option<Value>, String> {
    if servers.is_empty() {
        return Ok(None);
    }
    let mut out = serde_json::Map::new();
    for server in servers {
        out.insert(server.name.clone(), server_config(server)?);
    }
    Ok(Some(json!({ "mcpServers": out })))
}

fn server_config(server: &McpServer) -> Result<Value, String> {
    if let Some(command) = &server.command {
        return Ok(json!({
            "type": "stdio",
            "command": command,
            "args": server.args,
            "env": server.env,
        }));
    }
    let Some(entry) = entry(&server.name) else {
        let known: Vec<&str> = CATALOG.iter().map(|e| e.name).collect();
        return Err(format!(
            "MCP server `{}` is not in the built-in catalog ({}); give it a `command`",
            server.name,
            known.join(", ")
        ));
    };
    let mut env: BTreeMap<String, String> = server.env.clone();
    for required in entry.required_env {
        if env.contains_key(required.name) {
            continue;
        }
        match required.alias.and_then(|alias| env.get(alias).cloned()) {
            Some(value) => {
                env.insert(required.name.to_owned(), value);
            }
            None => {
                let also = required
                    .alias
                    .map_or(String::new(), |a| format!(" (or `{a}`)"));
                return Err(format!(
                    "MCP server `{}` needs `{}`{also} in its `env`",
                    server.name, required.name
                ));
            }
        }
    }
    let args = entry
        .args
        .iter()
        .map(|arg| interpolate(arg, |name| env.get(name).cloned()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|name| format!("MCP server `{}` needs `{name}` in its `env`", server.name))?;
    Ok(json!({
        "type": "stdio",
        "command": entry.command,
        "args": args,
        "env": env,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(name: &str, env: &[(&str, &str)]) -> McpServer {
        McpServer {
            name: name.into(),
            command: None,
            args: Vec::new(),
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    #[test]
    fn nine_servers_each_once() {
        assert_eq!(CATALOG.len(), 9);
        let mut names: Vec<&str> = CATALOG.iter().map(|e| e.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), 9);
        for e in CATALOG {
            assert!(matches!(e.command, "npx" | "uvx"), "{}", e.name);
        }
    }

    #[test]
    fn catalog_servers_get_their_command_and_env() {
        let config = mcp_config(&[
            server("github", &[("GITHUB_TOKEN", "ghp_x")]),
            server("postgres", &[("POSTGRES_URL", "postgres://db/app")]),
            server("fetch", &[]),
        ])
        .unwrap()
        .unwrap();
        let github = &config["mcpServers"]["github"];
        assert_eq!(github["command"], "npx");
        assert_eq!(
            github["args"],
            json!(["-y", "@modelcontextprotocol/server-github"])
        );
        // The seed's GITHUB_TOKEN also fills the name the server reads.
        assert_eq!(github["env"]["GITHUB_PERSONAL_ACCESS_TOKEN"], "ghp_x");
        assert_eq!(github["env"]["GITHUB_TOKEN"], "ghp_x");
        assert_eq!(
            config["mcpServers"]["postgres"]["args"][2],
            "postgres://db/app"
        );
        assert_eq!(config["mcpServers"]["fetch"]["command"], "uvx");
    }

    #[test]
    fn custom_servers_are_taken_as_written() {
        let mut custom = server("acme", &[("TOKEN", "t")]);
        custom.command = Some("/opt/acme-mcp".into());
        custom.args = vec!["--stdio".into()];
        let config = mcp_config(&[custom]).unwrap().unwrap();
        assert_eq!(
            config["mcpServers"]["acme"],
            json!({"type": "stdio", "command": "/opt/acme-mcp", "args": ["--stdio"], "env": {"TOKEN": "t"}})
        );
        assert_eq!(mcp_config(&[]).unwrap(), None);
    }

    #[test]
    fn unknown_and_incomplete_servers_are_refused() {
        let err = mcp_config(&[server("jira", &[])]).unwrap_err();
        assert!(err.starts_with("MCP server `jira` is not in the built-in catalog (github, linear, filesystem, fetch, git, postgres, slack, sentry, puppeteer)"), "{err}");
        let err = mcp_config(&[server("slack", &[("SLACK_BOT_TOKEN", "x")])]).unwrap_err();
        assert_eq!(err, "MCP server `slack` needs `SLACK_TEAM_ID` in its `env`");
        let err = mcp_config(&[server("github", &[])]).unwrap_err();
        assert_eq!(
            err,
            "MCP server `github` needs `GITHUB_PERSONAL_ACCESS_TOKEN` (or `GITHUB_TOKEN`) in its `env`"
        );
    }
}
