//! `ccs-model-stub`: the Messages API stand-in as a process of its own.
//!
//! ```sh
//! ccs-model-stub --listen 127.0.0.1:0 --scenario scenario.json --record requests.jsonl
//! ```
//!
//! Prints `listening on http://ADDR` on stdout once it accepts connections,
//! appends every request to `--record` as a JSON line, and runs until killed.
//! The scenario format is documented in `model-stub/src/scenario.rs`.

use std::path::PathBuf;

use anyhow::Context as _;
use ccs_model_stub::{ModelStub, Scenario};
use clap::Parser;

#[derive(Parser)]
#[command(version, about = "A scripted stand-in of Anthropic's Messages API")]
struct Args {
    /// Address to listen on (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: String,
    /// The scenario (JSON); without it every request gets "Done.".
    #[arg(long)]
    scenario: Option<PathBuf>,
    /// Append every request received to this file, one JSON object a line.
    #[arg(long)]
    record: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let scenario = match &args.scenario {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            serde_json::from_str::<Scenario>(&text)
                .with_context(|| format!("parsing {}", path.display()))?
        }
        None => Scenario::default(),
    };
    let record = match &args.record {
        Some(path) => Some(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("opening {}", path.display()))?,
        ),
        None => None,
    };
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    let stub = ModelStub::serve(listener, scenario, record)?;
    println!("listening on {}", stub.base_url());
    tokio::signal::ctrl_c().await?;
    Ok(())
}
