//! The `vpcgate` command line: `aws ec2`-shaped verbs against the daemon's API
//! socket, `export`/`import` of the whole config, and the offline tools (`replay`).
//!
//! Like the AWS CLI: JSON output shaped like the API response (`--output table|text`
//! for people and scripts); errors on stderr as `An error occurred (Code) when calling
//! the Action operation: Message`; exit 254 for service errors, 252 for usage errors,
//! 255 when the daemon cannot be reached.

pub mod client;
pub mod ec2;
pub mod output;
pub mod shorthand;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use serde_json::{json, Map, Value};

use self::client::{call, CallError};
use self::output::{render, Format};
use crate::replay::{replay, ReplayOptions};

/// AWS CLI exit codes.
pub const EXIT_SERVICE: u8 = 254;
pub const EXIT_USAGE: u8 = 252;
pub const EXIT_CONNECT: u8 = 255;

#[derive(Parser)]
#[command(name = "vpcgate", version, about = "Manage and exercise a vpcgate appliance")]
pub struct Cli {
    /// The daemon's API socket (default: $VPCGATE_SOCKET, else /run/vpcgate/api.sock).
    #[arg(long, global = true)]
    pub socket: Option<PathBuf>,
    /// Output format, as the AWS CLI's.
    #[arg(long, global = true, value_enum, default_value = "json")]
    pub output: Format,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    #[command(flatten)]
    Ec2(ec2::Ec2),
    /// Prints the running config as the describe-* calls print it (plus Appliance).
    Export,
    /// Replaces the running config with `aws ec2 describe-*` outputs (one per file,
    /// each with its top-level key: Vpcs, Subnets, NetworkAcls, SecurityGroups,
    /// SecurityGroupRules, NetworkInterfaces, FlowLogs, Appliance), merged.
    Import {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Only validate; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Run a capture through the pipeline offline (no NIC, no root needed).
    Replay {
        /// Config file (the same format vpcgated takes).
        #[arg(long)]
        config: PathBuf,
        /// Input capture: pcapng (frames arrive on the port named like their interface) or pcap.
        #[arg(long)]
        pcap: PathBuf,
        /// Write one JSON verdict per input frame here.
        #[arg(long)]
        verdicts: Option<PathBuf>,
        /// Write forwarded and reply frames here (pcapng, one interface per egress port).
        #[arg(long)]
        out: Option<PathBuf>,
        /// The port frames without an interface name arrive on (plain pcap input).
        #[arg(long)]
        port: Option<String>,
        /// Print every decision for every frame, with the rule that made it.
        #[arg(long)]
        explain: bool,
    },
}

pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => ExitCode::SUCCESS,
                _ => ExitCode::from(EXIT_USAGE),
            };
        }
    };
    let socket = cli
        .socket
        .clone()
        .or_else(|| std::env::var_os("VPCGATE_SOCKET").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(crate::daemon::DEFAULT_SOCKET));
    match cli.command {
        Command::Ec2(verb) => match verb.request() {
            Ok((action, request)) => run_action(&socket, action, request, cli.output),
            Err(e) => usage_error(&e.0),
        },
        Command::Export => run_action(&socket, "ExportConfig", json!({}), cli.output),
        Command::Import { files, dry_run } => match merge_documents(&files) {
            Ok(doc) => import(&socket, doc, dry_run, cli.output),
            Err(e) => usage_error(&e),
        },
        Command::Replay { config, pcap, verdicts, out, port, explain } => {
            match replay(&ReplayOptions { config, pcap, verdicts, out, port, explain }) {
                Ok(summary) => {
                    let s = &summary.stats;
                    let rejected: u64 = s.rejected.iter().sum();
                    let dropped: u64 = s.dropped.iter().sum();
                    eprintln!(
                        "replayed {} frames: {} forwarded, {} answered, {} rejected, {} dropped",
                        summary.frames, s.forwarded, s.replied, rejected, dropped
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("vpcgate replay: {e}");
                    ExitCode::from(2)
                }
            }
        }
    }
}

fn usage_error(message: &str) -> ExitCode {
    eprintln!("\n{message}\n");
    ExitCode::from(EXIT_USAGE)
}

/// Sends one action and prints its answer or error, AWS CLI style.
fn run_action(socket: &Path, action: &str, mut request: Value, format: Format) -> ExitCode {
    request["Action"] = json!(action);
    match call(socket, &request) {
        Ok(v) => {
            print!("{}", render(&v, format, action));
            ExitCode::SUCCESS
        }
        Err(e) => report(e, action),
    }
}

fn report(e: CallError, action: &str) -> ExitCode {
    match e {
        CallError::Service(e) => {
            eprintln!("\nAn error occurred ({}) when calling the {action} operation: {}", e.code, e.message);
            ExitCode::from(EXIT_SERVICE)
        }
        CallError::Connect(message) => {
            eprintln!("\n{message}");
            ExitCode::from(EXIT_CONNECT)
        }
    }
}

/// `vpcgate import --dry-run` is vpcgate's own verb: a config that would be accepted
/// exits 0 (EC2 verbs answer a dry run with the DryRunOperation error, exit 254).
fn import(socket: &Path, doc: Value, dry_run: bool, format: Format) -> ExitCode {
    let request = json!({"Action": "ImportConfig", "Config": doc, "DryRun": dry_run});
    match call(socket, &request) {
        Ok(v) => {
            print!("{}", render(&v, format, "ImportConfig"));
            ExitCode::SUCCESS
        }
        Err(CallError::Service(e)) if dry_run && e.code == "DryRunOperation" => {
            let v = json!({"Return": true, "DryRun": true, "Message": "The config is valid: the import would have succeeded."});
            print!("{}", render(&v, format, "ImportConfig"));
            ExitCode::SUCCESS
        }
        Err(e) => report(e, "ImportConfig"),
    }
}

/// Merges describe outputs: lists under the same key are concatenated (paginated
/// output), `Appliance` may appear once; `NextToken` and `ResponseMetadata` are ignored.
pub fn merge_documents(files: &[PathBuf]) -> Result<Value, String> {
    let mut doc = Map::new();
    for f in files {
        let text =
            std::fs::read_to_string(f).map_err(|e| format!("Error parsing parameter 'files': {}: {e}", f.display()))?;
        let v: Value = serde_json::from_str(&text)
            .map_err(|e| format!("Error parsing parameter 'files': {}: invalid JSON: {e}", f.display()))?;
        let Value::Object(m) = v else {
            return Err(format!("{}: a describe output is a JSON object", f.display()));
        };
        for (k, v) in m {
            match (k.as_str(), v) {
                ("NextToken" | "ResponseMetadata", _) => {}
                ("Appliance", v) => {
                    if doc.insert(k.clone(), v).is_some() {
                        return Err(format!("{}: Appliance is given by more than one file", f.display()));
                    }
                }
                (key, Value::Array(items)) if crate::api::DOCUMENT_KEYS.contains(&key) => {
                    match doc.entry(k.clone()).or_insert_with(|| Value::Array(Vec::new())) {
                        Value::Array(list) => list.extend(items),
                        _ => unreachable!("document lists are arrays"),
                    }
                }
                (key, _) => {
                    return Err(format!(
                        "{}: '{key}' is not a describe output vpcgate imports (expected one of {})",
                        f.display(),
                        crate::api::DOCUMENT_KEYS.join(", ")
                    ))
                }
            }
        }
    }
    Ok(Value::Object(doc))
}
