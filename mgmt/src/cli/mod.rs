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
        /// Write the config's flow logs under DIR (the capture's timestamps are the clock).
        #[arg(long, value_name = "DIR")]
        flow_log_root: Option<PathBuf>,
        /// Write the run's counters to FILE, as `vpcgate stats` prints them (JSON).
        #[arg(long, value_name = "FILE")]
        stats: Option<PathBuf>,
    },
    /// Would this packet get through, and why? Every hop with the rule that decided it.
    Trace(TraceArgs),
    /// Findings about risky rules (open admin ports, shadowed NACL entries, ...).
    Audit(AuditArgs),
    /// Counters of the running appliance (JSON, `--output table`, or `--prometheus`).
    Stats {
        /// Print the Prometheus text exposition format.
        #[arg(long)]
        prometheus: bool,
    },
    /// A live view of the running appliance: rates per worker and per ENI, conntrack,
    /// top talkers and top rejected flows (q or Ctrl-C quits).
    Top {
        /// Seconds between refreshes (0.1 to 3600).
        #[arg(long, default_value_t = 1.0)]
        interval: f64,
        /// Print one frame (rates over one interval) and exit, for scripts.
        #[arg(long)]
        once: bool,
        /// Rows per table (network interfaces, top talkers, rejected flows).
        #[arg(long, default_value_t = 10)]
        limit: usize,
    },
}

#[derive(clap::Args)]
pub struct TraceArgs {
    /// Judge against this config file (fresh state) instead of the running daemon.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// The ENI the packet comes from.
    #[arg(long)]
    pub eni: Option<String>,
    /// Or the (uplink) port it arrives on.
    #[arg(long)]
    pub port: Option<String>,
    #[arg(long)]
    pub src: Option<String>,
    #[arg(long)]
    pub dst: Option<String>,
    /// tcp, udp, icmp, icmpv6 or a protocol number.
    #[arg(long)]
    pub protocol: Option<String>,
    #[arg(long)]
    pub sport: Option<u16>,
    #[arg(long)]
    pub dport: Option<u16>,
    #[arg(long)]
    pub icmp_type: Option<u8>,
    #[arg(long)]
    pub icmp_code: Option<u8>,
    /// e.g. SYN, SYN,ACK, ACK, FIN,ACK, RST.
    #[arg(long)]
    pub tcp_flags: Option<String>,
    /// Reachability: from this ENI ...
    #[arg(long)]
    pub from: Option<String>,
    /// ... to this ENI or address (judges the request and its reply).
    #[arg(long)]
    pub to: Option<String>,
    /// Trace a frame of a capture (with --frame; the port is its interface name or --port).
    #[arg(long)]
    pub pcap: Option<PathBuf>,
    #[arg(long, default_value_t = 0)]
    pub frame: usize,
}

#[derive(clap::Args)]
pub struct AuditArgs {
    /// Audit a config file instead of the running daemon.
    #[arg(long, conflicts_with = "describe")]
    pub config: Option<PathBuf>,
    /// Audit `aws ec2 describe-*` outputs (merged as `import` does).
    #[arg(long, num_args = 1..)]
    pub describe: Vec<PathBuf>,
    #[arg(long, value_enum, default_value = "table")]
    pub format: AuditFormat,
    /// Exit 1 when a finding is at or above this severity (info, low, medium, high, critical).
    #[arg(long)]
    pub fail_on: Option<String>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum AuditFormat {
    Table,
    Json,
    Sarif,
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
        Command::Trace(a) => trace_cmd(&socket, a, cli.output),
        Command::Audit(a) => audit_cmd(&socket, a),
        Command::Stats { prometheus } => stats_cmd(&socket, prometheus, cli.output),
        Command::Top { interval, once, limit } => {
            if !(0.1..=3600.0).contains(&interval) {
                return usage_error("--interval takes seconds from 0.1 to 3600");
            }
            let opts = crate::top::TopOptions {
                interval: std::time::Duration::from_secs_f64(interval),
                once,
                limit: limit.max(1),
            };
            crate::top::run(&socket, opts)
        }
        Command::Replay { config, pcap, verdicts, out, port, explain, flow_log_root, stats } => {
            match replay(&ReplayOptions { config, pcap, verdicts, out, port, explain, flow_log_root, stats }) {
                Ok(summary) => {
                    let s = &summary.stats;
                    let rejected: u64 = s.rejected.iter().sum();
                    let dropped: u64 = s.dropped.iter().sum();
                    eprintln!(
                        "replayed {} frames: {} forwarded, {} answered, {} rejected, {} dropped",
                        summary.frames, s.forwarded, s.replied, rejected, dropped
                    );
                    for f in &summary.flow_logs {
                        eprintln!("flow log {}: {} records in {} files", f.flow_log_id, f.sink.records, f.sink.files);
                    }
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

fn trace_cmd(socket: &Path, a: TraceArgs, format: Format) -> ExitCode {
    let mut req = crate::trace::TraceRequest {
        eni: a.eni,
        port: a.port,
        src: a.src,
        dst: a.dst,
        protocol: a.protocol,
        sport: a.sport,
        dport: a.dport,
        icmp_type: a.icmp_type,
        icmp_code: a.icmp_code,
        tcp_flags: a.tcp_flags,
        from: a.from,
        to: a.to,
        frame: None,
    };
    if let Some(path) = &a.pcap {
        let frames = match dataplane::port::pcap::read_capture(path) {
            Ok(f) => f,
            Err(e) => return usage_error(&format!("{}: {e}", path.display())),
        };
        let Some(f) = frames.get(a.frame) else {
            return usage_error(&format!(
                "{} has {} frames; there is no frame {}",
                path.display(),
                frames.len(),
                a.frame
            ));
        };
        req.frame = Some(crate::trace::hex_encode(&f.data));
        if req.port.is_none() {
            req.port = f.interface.clone();
        }
    }
    let legs_json = match &a.config {
        Some(cfg) => {
            let (_, tables) = match crate::replay::load_config(cfg) {
                Ok(x) => x,
                Err(e) => return usage_error(&e),
            };
            match crate::trace::trace_offline(&tables, &req, crate::extension::now_nanos()) {
                Ok(legs) => {
                    if format != Format::Json {
                        print!("{}", crate::trace::render_text(&legs));
                        return ExitCode::SUCCESS;
                    }
                    crate::trace::render_json(&legs)
                }
                Err(e) => return report(CallError::Service(e), "Trace"),
            }
        }
        None => {
            let mut request = serde_json::to_value(&req).unwrap_or_default();
            request["Action"] = json!("Trace");
            match call(socket, &request) {
                Ok(v) => v,
                Err(e) => return report(e, "Trace"),
            }
        }
    };
    if format == Format::Json {
        println!("{}", serde_json::to_string_pretty(&legs_json).unwrap_or_default());
    } else {
        for leg in legs_json["Legs"].as_array().into_iter().flatten() {
            println!("{}:", leg["what"].as_str().unwrap_or("packet"));
            for st in leg["steps"].as_array().into_iter().flatten() {
                println!("  {}", st["Text"].as_str().unwrap_or(""));
            }
        }
    }
    ExitCode::SUCCESS
}

fn audit_cmd(socket: &Path, a: AuditArgs) -> ExitCode {
    let (findings, source) = if a.config.is_some() || !a.describe.is_empty() {
        let doc = match (&a.config, a.describe.is_empty()) {
            (Some(path), _) => match std::fs::read_to_string(path) {
                Ok(t) => t,
                Err(e) => return usage_error(&format!("{}: {e}", path.display())),
            },
            (None, _) => match merge_documents(&a.describe) {
                Ok(v) => v.to_string(),
                Err(e) => return usage_error(&e),
            },
        };
        let checked = match crate::model::Config::from_json(&doc).and_then(|c| crate::validate::check(&c)) {
            Ok(c) => c,
            Err(e) => return report(CallError::Service(e), "Audit"),
        };
        let source = a.config.as_ref().or(a.describe.first()).map(|p| p.display().to_string()).unwrap_or_default();
        (crate::audit::audit(&checked), source)
    } else {
        match call(socket, &json!({"Action": "Audit"})) {
            Ok(v) => (serde_json::from_value(v["Findings"].clone()).unwrap_or_default(), "vpcgated".to_string()),
            Err(e) => return report(e, "Audit"),
        }
    };
    match a.format {
        AuditFormat::Table => print!("{}", crate::audit::render_table(&findings)),
        AuditFormat::Json => {
            println!("{}", serde_json::to_string_pretty(&crate::audit::render_json(&findings)).unwrap_or_default())
        }
        AuditFormat::Sarif => println!(
            "{}",
            serde_json::to_string_pretty(&crate::audit::render_sarif(&findings, &source)).unwrap_or_default()
        ),
    }
    match a.fail_on.as_deref().map(crate::audit::Severity::parse) {
        None => ExitCode::SUCCESS,
        Some(None) => usage_error("--fail-on takes info, low, medium, high or critical"),
        Some(Some(level)) if findings.iter().any(|f| f.severity >= level) => ExitCode::from(1),
        Some(Some(_)) => ExitCode::SUCCESS,
    }
}

fn stats_cmd(socket: &Path, prometheus: bool, format: Format) -> ExitCode {
    match call(socket, &json!({"Action": "DescribeStats"})) {
        Ok(v) if prometheus => {
            print!("{}", crate::stats::prometheus(&v));
            ExitCode::SUCCESS
        }
        Ok(v) => {
            print!("{}", render(&v, format, "DescribeStats"));
            ExitCode::SUCCESS
        }
        Err(e) => report(e, "DescribeStats"),
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
