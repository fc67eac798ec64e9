//! xdpfwd: a bare AF_XDP L2 forwarder, the ceiling any policy-enforcing path is
//! measured against. Every frame received on port A is sent on port B and vice versa,
//! unchanged: the two sides share one L2 segment, so there is nothing to rewrite.
//! It uses the dataplane's own `AfXdpIo`, so it measures exactly the port the switch
//! runs on, minus the pipeline.
//!
//! One worker per queue, each pinned to a core, with one UMEM shared by its two
//! sockets: forwarding moves a descriptor and copies nothing in user space. Idle
//! workers spin a while, then sleep in poll() (adaptive back-off).
//!
//!   ip netns exec vgx-sw xdpfwd --a vgx-sa --b vgx-sb --cores 1
//!
//! Prints what each socket got, then "xdpfwd: ready"; on SIGINT/SIGTERM (or after
//! --duration) detaches and prints one JSON line of counters.

use std::{
    io::Write,
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

use clap::{Parser, ValueEnum};
use dataplane::port::{
    afxdp::{AfXdpConfig, AfXdpCounters, AfXdpIo, KernelStats, PortSpec, XdpMode},
    Io, RxFrame,
};
use perf::tool;

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Mode {
    Auto,
    Skb,
    Driver,
}

#[derive(Parser, Debug)]
#[command(about = "Bare AF_XDP L2 forwarder between two interfaces")]
struct Args {
    /// Interface of port A.
    #[arg(long)]
    a: String,
    /// Interface of port B.
    #[arg(long)]
    b: String,
    /// Queues to serve, one pinned worker each.
    #[arg(long, value_delimiter = ',', default_value = "0")]
    queues: Vec<u32>,
    /// Cores for the workers, in the order of --queues (default: the last cores).
    #[arg(long, value_delimiter = ',')]
    cores: Vec<usize>,
    #[arg(long, value_enum, default_value = "auto")]
    mode: Mode,
    /// Do not ask for zero-copy.
    #[arg(long)]
    copy: bool,
    /// Frames per batch.
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// Size of every ring.
    #[arg(long, default_value_t = 1024)]
    ring: u32,
    /// Frames per copy-mode sendto() (XDP_MAX_TX_SKB_BUDGET); 0 keeps the kernel's 32.
    #[arg(long, default_value_t = 256)]
    tx_budget: u32,
    /// Frames to gather on a TX ring before a wakeup while traffic keeps coming.
    #[arg(long, default_value_t = 64)]
    kick_batch: u32,
    /// Empty polls before an idle worker sleeps in poll().
    #[arg(long, default_value_t = 2000)]
    idle_spins: u32,
    /// Stop after this many seconds (default: at SIGINT or SIGTERM).
    #[arg(long)]
    duration: Option<f64>,
}

struct Done {
    queue: u32,
    counters: AfXdpCounters,
    kernel: Vec<KernelStats>,
}

fn main() {
    tool::init_log();
    tool::stop_on_signals();
    let args = Args::parse();
    if let Err(e) = run(&args) {
        eprintln!("xdpfwd: {e}");
        std::process::exit(1);
    }
}

fn run(args: &Args) -> Result<(), String> {
    let config = AfXdpConfig {
        mode: match args.mode {
            Mode::Auto => XdpMode::Auto,
            Mode::Skb => XdpMode::Skb,
            Mode::Driver => XdpMode::Driver,
        },
        zero_copy: !args.copy,
        ring_size: args.ring,
        tx_skb_budget: (args.tx_budget > 0).then_some(args.tx_budget),
        tx_kick_batch: args.kick_batch,
        ..AfXdpConfig::default()
    };
    let n_cores = core_affinity::get_core_ids().map_or(1, |c| c.len());
    let cores: Vec<usize> = if args.cores.is_empty() {
        (0..args.queues.len()).map(|i| n_cores.saturating_sub(1 + i % n_cores)).collect()
    } else if args.cores.len() == args.queues.len() {
        args.cores.clone()
    } else {
        return Err("give one core per queue".into());
    };

    let (ready_tx, ready_rx) = mpsc::channel();
    let mut workers = Vec::new();
    for (&queue, &core) in args.queues.iter().zip(&cores) {
        let ports = [PortSpec::new(0, &args.a, queue), PortSpec::new(1, &args.b, queue)];
        let (config, batch, idle_spins, ready) = (config.clone(), args.batch, args.idle_spins, ready_tx.clone());
        workers.push(thread::spawn(move || -> Result<Done, String> {
            let setup = tool::pin(core).and_then(|()| AfXdpIo::new(&config, &ports).map_err(|e| e.to_string()));
            let mut io = match setup {
                Ok(io) => {
                    let _ = ready.send(Ok(format!("queue {queue} on core {core}: {}", io.report())));
                    io
                }
                Err(e) => {
                    let _ = ready.send(Err(format!("queue {queue}: {e}")));
                    return Err(e);
                }
            };
            forward(&mut io, batch, idle_spins);
            Ok(Done { queue, counters: io.counters(), kernel: io.kernel_stats() })
        }));
    }
    drop(ready_tx);
    let mut failed = None;
    for r in ready_rx.iter().take(workers.len()) {
        match r {
            Ok(report) => println!("{report}"),
            Err(e) => failed = Some(e),
        }
    }
    if failed.is_none() {
        println!("xdpfwd: ready");
        let _ = std::io::stdout().flush();
        let start = Instant::now();
        let limit = args.duration.map(Duration::from_secs_f64);
        while !tool::stopping() && limit.is_none_or(|l| start.elapsed() < l) {
            thread::sleep(Duration::from_millis(20));
        }
    }
    tool::request_stop();
    let mut done = Vec::new();
    for w in workers {
        if let Ok(Ok(d)) = w.join() {
            done.push(d);
        }
    }
    if let Some(e) = failed {
        return Err(e);
    }
    print_summary(&done);
    Ok(())
}

/// The forwarding loop: A to B, B to A, a batch at a time.
fn forward(io: &mut AfXdpIo, batch: usize, idle_spins: u32) {
    let mut frames: Vec<RxFrame> = Vec::with_capacity(batch);
    let mut idle = 0u32;
    while !tool::stopping() {
        frames.clear();
        if io.rx(&mut frames, batch) == 0 {
            // Completions and pending kicks still need collecting while idle.
            io.flush();
            idle += 1;
            if idle >= idle_spins {
                let _ = io.wait_readable(Duration::from_millis(10));
                idle = 0;
            }
            continue;
        }
        idle = 0;
        for f in &frames {
            io.tx(1 - f.port, f.handle, 0, f.len);
        }
        io.flush();
    }
}

fn print_summary(done: &[Done]) {
    let mut c = AfXdpCounters::default();
    let mut kernel_rx_dropped = 0;
    let mut kernel_rx_ring_full = 0;
    let mut fill_empty = 0;
    for d in done {
        c.rx_frames += d.counters.rx_frames;
        c.tx_frames += d.counters.tx_frames;
        c.tx_ring_full += d.counters.tx_ring_full;
        c.wakeups += d.counters.wakeups;
        c.wakeup_errors += d.counters.wakeup_errors;
        for k in &d.kernel {
            kernel_rx_dropped += k.rx_dropped;
            kernel_rx_ring_full += k.rx_ring_full;
            fill_empty += k.rx_fill_ring_empty;
        }
    }
    let summary = serde_json::json!({
        "queues": done.iter().map(|d| d.queue).collect::<Vec<_>>(),
        "rx": c.rx_frames,
        "tx": c.tx_frames,
        "tx_ring_full": c.tx_ring_full,
        "wakeups": c.wakeups,
        "wakeup_errors": c.wakeup_errors,
        "kernel_rx_dropped": kernel_rx_dropped,
        "kernel_rx_ring_full": kernel_rx_ring_full,
        "kernel_fill_ring_empty": fill_empty,
    });
    println!("{summary}");
}
