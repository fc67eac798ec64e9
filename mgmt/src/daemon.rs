//! `vpcgated`: loads the config (the last saved one wins over `--config`), publishes
//! compiled tables to the workers, serves the management API, and shuts down cleanly
//! on SIGTERM/SIGINT.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use arc_swap::ArcSwap;
use dataplane::tables::Tables;
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use crate::api::group_commit::GroupCommit;
use crate::api::server::{self, ServerConfig};
use crate::api::Engine;
use crate::compile::Compiler;
use crate::extension::DaemonExtension;
use crate::model::Config;
use crate::publish::{PublishLatency, Publisher};
use crate::stats::StatsBoard;
use crate::store::Store;
use crate::trace::{Leg, TraceRequest};
use crate::validate::{check, Checked};

pub const DEFAULT_STATE_DIR: &str = "/var/lib/vpcgate";
pub const DEFAULT_SOCKET: &str = "/run/vpcgate/api.sock";

#[derive(Clone, Debug)]
pub struct Options {
    /// The config to start from when no saved config exists (or with `reset`).
    pub config: Option<PathBuf>,
    pub state_dir: PathBuf,
    pub socket: Option<PathBuf>,
    /// Start from `config` even if a saved config exists.
    pub reset: bool,
    /// Run the management plane only (no ports, no workers): for config servers and tests.
    pub no_dataplane: bool,
}

/// The config to run with: the saved one, else the one given.
fn initial_config(opts: &Options, store: &Store) -> Result<Config, String> {
    let saved = store.load().map_err(|e| format!("cannot read the saved config: {e}"))?;
    match (saved, &opts.config) {
        (Some(saved), Some(path)) if !opts.reset => {
            log::warn!(
                "starting with the saved config {} (the last acknowledged change); {} is ignored (use --reset to start from it)",
                store.path().display(),
                path.display()
            );
            Ok(saved)
        }
        (Some(saved), None) => Ok(saved),
        (_, Some(path)) => {
            let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
            Config::from_json(&text).map_err(|e| format!("{}: {e}", path.display()))
        }
        (None, None) => Err(format!("no saved config in {} and no --config given", store.path().display())),
    }
}

fn group_id(name: &str) -> Result<u32, String> {
    let c = std::ffi::CString::new(name).map_err(|_| format!("bad group name {name:?}"))?;
    // SAFETY: `c` is a valid NUL-terminated string; getgrnam returns null or a pointer
    // to a static struct that we read immediately, on this thread only.
    let g = unsafe { libc::getgrnam(c.as_ptr()) };
    if g.is_null() {
        return Err(format!("group {name:?} does not exist"));
    }
    // SAFETY: `g` is non-null and points to a valid `group` (see above).
    Ok(unsafe { (*g).gr_gid })
}

struct PidFile(PathBuf);

impl PidFile {
    fn create(path: PathBuf) -> Result<PidFile, String> {
        if let Ok(old) = std::fs::read_to_string(&path) {
            if let Ok(pid) = old.trim().parse::<i32>() {
                // SAFETY: kill with signal 0 only checks that the process exists.
                if pid > 0 && unsafe { libc::kill(pid, 0) } == 0 && pid != std::process::id() as i32 {
                    return Err(format!("vpcgated is already running (pid {pid}, {})", path.display()));
                }
            }
        }
        std::fs::write(&path, format!("{}\n", std::process::id())).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(PidFile(path))
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Judges a packet on the worker that owns its flow (against that worker's
/// conntrack), for the live `Trace` action.
pub trait Tracer: Send + Sync {
    fn trace(&self, t: &Tables, req: &TraceRequest, now: u64) -> crate::error::Result<Vec<Leg>>;
}

/// Everything the running daemon shares between its threads.
pub struct Shared {
    pub tables: ArcSwap<Tables>,
    pub stop: AtomicBool,
    pub stats: StatsBoard,
    /// Durable change -> every worker on the new tables.
    pub publish: PublishLatency,
    /// Set when the dataplane runs; without it `Trace` judges against fresh state.
    pub tracer: Option<Box<dyn Tracer>>,
}

impl Shared {
    /// Fresh state for `workers` workers (0: management plane only), with `tables`
    /// published and no stats yet.
    pub fn new(tables: ArcSwap<Tables>, workers: usize, tracer: Option<Box<dyn Tracer>>) -> Shared {
        Shared {
            tables,
            stop: AtomicBool::new(false),
            stats: StatsBoard::default(),
            publish: PublishLatency::new(workers),
            tracer,
        }
    }
}

pub fn run(opts: Options) -> Result<(), String> {
    let store =
        Store::open(&opts.state_dir).map_err(|e| format!("state directory {}: {e}", opts.state_dir.display()))?;
    let config = initial_config(&opts, &store)?;
    let checked: Checked = check(&config).map_err(|e| format!("config refused: {e}"))?;
    store.save(&checked.config).map_err(|e| format!("saving the config: {e}"))?;
    let _pid = PidFile::create(opts.state_dir.join("vpcgated.pid"))?;

    let mut compiler = Compiler::new();
    let tables = ArcSwap::from_pointee(compiler.compile(&checked));
    let (shared, dataplane) = if opts.no_dataplane {
        log::info!("management plane only (--no-dataplane): no ports bound");
        (Arc::new(Shared::new(tables, 0, None)), None)
    } else {
        let (shared, dp) = crate::dataplane_host::start(&checked, tables, &opts.state_dir)?;
        (shared, Some(dp))
    };

    let mut publisher = Publisher { compiler, shared: shared.clone() };
    let flowlog_updates = dataplane.as_ref().map(|d| d.config_sender());
    let publish = Box::new(move |c: &Checked, durable: Instant| {
        publisher.publish(c, durable);
        if let Some(tx) = &flowlog_updates {
            let _ = tx.try_send(c.clone());
        }
    });
    let api_cfg = &checked.config.appliance.api;
    let mut server_cfg = ServerConfig::new(
        opts.socket
            .clone()
            .or_else(|| api_cfg.socket.as_ref().map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET)),
    );
    server_cfg.admin_gid = api_cfg.admin_group.as_deref().map(group_id).transpose()?;
    server_cfg.read_only_gid = api_cfg.read_only_group.as_deref().map(group_id).transpose()?;
    let socket_path = server_cfg.socket.clone();
    let metrics = crate::metrics_http::start(api_cfg, shared.clone());
    let commits = Arc::new(GroupCommit::new(checked.clone(), Some(store), publish));
    let mut engine = Engine::deferred(checked);
    engine.set_extension(Box::new(DaemonExtension { shared: shared.clone() }));
    let state_dir = opts.state_dir.clone();
    let mut last_checked = None;
    engine.set_prepare(Box::new(move |c: &Checked| {
        // A flow log that cannot be written is refused before the change is saved
        // (checked when the flow logs or their root change).
        let root = crate::dataplane_host::flow_log_root(c, &state_dir);
        let key = (c.config.flow_logs.clone(), root.clone());
        if last_checked.as_ref() != Some(&key) {
            crate::flowlogs::open(c, &c.flow_logs, &root)?;
            last_checked = Some(key);
        }
        Ok(())
    }));
    let engine = Arc::new(Mutex::new(engine));
    let stop_api = Arc::new(AtomicBool::new(false));
    let api = server::spawn(server_cfg, engine, commits, stop_api.clone())
        .map_err(|e| format!("API socket {}: {e}", socket_path.display()))?;
    log::info!("vpcgated running; API on {}", socket_path.display());
    println!("vpcgated: ready (API on {})", socket_path.display());

    let mut signals = Signals::new([SIGTERM, SIGINT]).map_err(|e| format!("signals: {e}"))?;
    let sig = signals.forever().next();
    log::info!("signal {sig:?}: shutting down");
    shared.stop.store(true, Ordering::SeqCst);
    stop_api.store(true, Ordering::SeqCst);
    if let Some(m) = metrics {
        m.shutdown();
    }
    if let Some(dp) = dataplane {
        dp.shutdown();
    }
    let _ = api.join();
    let _ = std::fs::remove_file(&socket_path);
    Ok(())
}
