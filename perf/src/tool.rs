//! What the command-line tools share: a stderr logger, a stop flag set by SIGINT and
//! SIGTERM, and pinning to a core.

use std::{
    io::Write,
    sync::atomic::{AtomicBool, Ordering},
};

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    // Only an atomic store: async-signal-safe.
    STOP.store(true, Ordering::Relaxed);
}

/// Makes SIGINT and SIGTERM set the flag [`stopping`] reads instead of killing the
/// process, so that sockets are closed and XDP programs detached on the way out.
pub fn stop_on_signals() {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: installs a handler that only stores to an atomic; `signal` on glibc
        // has BSD semantics (SA_RESTART, stays installed).
        unsafe { libc::signal(sig, on_signal as *const () as libc::sighandler_t) };
    }
}

pub fn stopping() -> bool {
    STOP.load(Ordering::Relaxed)
}

pub fn request_stop() {
    STOP.store(true, Ordering::Relaxed);
}

/// Pins the calling thread to `core`; an error names the cores there are.
pub fn pin(core: usize) -> Result<(), String> {
    let ids = core_affinity::get_core_ids().unwrap_or_default();
    let Some(id) = ids.iter().find(|c| c.id == core) else {
        return Err(format!("no core {core} (cores: {:?})", ids.iter().map(|c| c.id).collect::<Vec<_>>()));
    };
    if core_affinity::set_for_current(*id) {
        Ok(())
    } else {
        Err(format!("cannot pin to core {core}"))
    }
}

struct StderrLog {
    level: log::LevelFilter,
}

impl log::Log for StderrLog {
    fn enabled(&self, m: &log::Metadata) -> bool {
        m.level() <= self.level
    }

    fn log(&self, r: &log::Record) {
        if self.enabled(r.metadata()) {
            let _ = writeln!(std::io::stderr().lock(), "{} {}: {}", r.level(), r.target(), r.args());
        }
    }

    fn flush(&self) {}
}

/// Logs to stderr at the level in `VGX_LOG` (error, warn, info, debug, trace), `warn`
/// by default. libbpf and libxdp messages arrive with targets "libbpf" and "libxdp".
pub fn init_log() {
    let level = std::env::var("VGX_LOG").ok().and_then(|l| l.parse().ok()).unwrap_or(log::LevelFilter::Warn);
    let logger = Box::leak(Box::new(StderrLog { level }));
    if log::set_logger(logger).is_ok() {
        log::set_max_level(level);
    }
}

/// The core the calling thread runs on now.
pub fn current_core() -> usize {
    // SAFETY: sched_getcpu takes no arguments and only reads the caller's CPU number.
    let c = unsafe { libc::sched_getcpu() };
    c.max(0) as usize
}

/// Moves the calling thread onto an online core other than `busy`, if there is one,
/// even where the process was started under `taskset` (which sets only the initial
/// mask). Returns the core. For a bench's helper thread that stands in for another
/// core's work (the flow-log thread), so it does not steal the measured core's time.
pub fn pin_elsewhere(busy: usize) -> Option<usize> {
    // SAFETY: sysconf only reads a system setting.
    let online = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) }.max(1) as usize;
    let other = (0..online).find(|&c| c != busy)?;
    core_affinity::set_for_current(core_affinity::CoreId { id: other }).then_some(other)
}
