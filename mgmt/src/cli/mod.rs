//! The `vpcgate` command line: `aws ec2`-shaped verbs against the daemon, and the
//! offline tools (`replay`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::replay::{replay, ReplayOptions};

#[derive(Parser)]
#[command(name = "vpcgate", version, about = "Manage and exercise a vpcgate appliance")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
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
    let cli = Cli::parse();
    match cli.command {
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
