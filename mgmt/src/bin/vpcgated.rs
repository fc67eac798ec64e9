//! `vpcgated --config CFG.json`: the vpcgate daemon.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use mgmt::daemon::{self, Options};

#[derive(Parser)]
#[command(name = "vpcgated", version, about = "The vpcgate appliance daemon")]
struct Args {
    /// Config to start from when no saved config exists (same format as `vpcgate replay`).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Where the saved config and the pid file live.
    #[arg(long, default_value = daemon::DEFAULT_STATE_DIR)]
    state_dir: PathBuf,
    /// API socket (default: Appliance.Api.Socket, else /run/vpcgate/api.sock).
    #[arg(long)]
    socket: Option<PathBuf>,
    /// Start from --config even if a saved config exists.
    #[arg(long)]
    reset: bool,
    /// Management plane only: bind no ports, run no workers.
    #[arg(long)]
    no_dataplane: bool,
}

fn main() -> ExitCode {
    mgmt::logging::init();
    let a = Args::parse();
    let opts = Options {
        config: a.config,
        state_dir: a.state_dir,
        socket: a.socket,
        reset: a.reset,
        no_dataplane: a.no_dataplane,
    };
    match daemon::run(opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vpcgated: {e}");
            ExitCode::from(1)
        }
    }
}
