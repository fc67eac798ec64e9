//! xdpgen: a pktgen-style AF_XDP traffic generator with a receiving side.
//!
//! Sends UDP (or TCP SYN/ACK) frames for N flows from one interface, 64-byte or IMIX,
//! at a fixed rate or flat out, for a while; counts what arrives on another interface
//! and measures latency from the send time written in each frame. One thread does both
//! (send a batch, drain what arrived), pinned to a core: on a small machine a second
//! busy thread would only steal the forwarder's or the sender's core.
//!
//! The receiving interface may live in another network namespace (--rx-netns): its
//! sockets are bound, and their XDP program detached, inside that namespace.
//!
//!   ip netns exec vgx-h1 xdpgen --tx vgx-h1 --rx vgx-h2 --rx-netns vgx-h2 --duration 5
//!
//! Prints one JSON line: sent, received, Mpps delivered, loss, latency percentiles.

use std::{
    net::Ipv4Addr,
    ops::RangeInclusive,
    str::FromStr,
    time::{Duration, Instant},
};

use clap::{Parser, ValueEnum};
use dataplane::port::{
    afxdp::{AfXdpConfig, AfXdpIo, PortSpec, XdpMode},
    Io, RxFrame,
};
use hdrhistogram::Histogram;
use perf::{
    frames::{read_trailer, Proto, Templates, TrafficSpec, IMIX},
    netns::{format_mac, mac_of, parse_mac, InNetns},
    tool,
};

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Mode {
    Auto,
    Skb,
    Driver,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum ProtoArg {
    Udp,
    Syn,
    Ack,
}

#[derive(Parser, Debug)]
#[command(about = "AF_XDP traffic generator with a receiving side")]
struct Args {
    /// Interface to send on.
    #[arg(long)]
    tx: String,
    #[arg(long, default_value_t = 0)]
    tx_queue: u32,
    /// Interface to receive on.
    #[arg(long)]
    rx: String,
    /// Network namespace (from `ip netns`) the receiving interface is in.
    #[arg(long)]
    rx_netns: Option<String>,
    /// Receive queues to listen on.
    #[arg(long, value_delimiter = ',', default_value = "0")]
    rx_queues: Vec<u32>,
    /// Source MAC (default: the sending interface's).
    #[arg(long)]
    src_mac: Option<String>,
    /// Destination MAC (default: the receiving interface's).
    #[arg(long)]
    dst_mac: Option<String>,
    /// Source addresses, A or A-B; only 198.18.0.0/15.
    #[arg(long, default_value = "198.18.0.1")]
    src_ip: IpRange,
    #[arg(long, default_value = "198.18.0.2")]
    dst_ip: IpRange,
    /// Source ports, P or P-Q.
    #[arg(long, default_value = "1024-65535")]
    src_port: PortRange,
    #[arg(long, default_value = "9")]
    dst_port: PortRange,
    /// Number of flows; flow i takes the i-th value of each range.
    #[arg(long, default_value_t = 64)]
    flows: u32,
    #[arg(long, value_enum, default_value = "udp")]
    proto: ProtoArg,
    /// Frame size with FCS (64 writes 60 bytes).
    #[arg(long, default_value_t = 64)]
    size: u16,
    /// IMIX 7:4:1 of 64/576/1500-byte frames instead of --size.
    #[arg(long)]
    imix: bool,
    /// Frames per second; 0 is flat out.
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Seconds of sending.
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// Seconds to keep receiving after the last frame is sent.
    #[arg(long, default_value_t = 0.2)]
    drain: f64,
    #[arg(long, default_value_t = 0)]
    core: usize,
    #[arg(long, value_enum, default_value = "auto")]
    mode: Mode,
    #[arg(long, default_value_t = 64)]
    batch: usize,
    #[arg(long, default_value_t = 2048)]
    ring: u32,
}

#[derive(Clone, Debug)]
struct IpRange(RangeInclusive<Ipv4Addr>);

impl FromStr for IpRange {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (a, b) = s.split_once('-').unwrap_or((s, s));
        let p = |x: &str| x.parse::<Ipv4Addr>().map_err(|e| format!("{x:?}: {e}"));
        Ok(IpRange(p(a)?..=p(b)?))
    }
}

#[derive(Clone, Debug)]
struct PortRange(RangeInclusive<u16>);

impl FromStr for PortRange {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (a, b) = s.split_once('-').unwrap_or((s, s));
        let p = |x: &str| x.parse::<u16>().map_err(|e| format!("{x:?}: {e}"));
        Ok(PortRange(p(a)?..=p(b)?))
    }
}

fn main() {
    tool::init_log();
    tool::stop_on_signals();
    let args = Args::parse();
    match run(&args) {
        Ok(json) => println!("{json}"),
        Err(e) => {
            eprintln!("xdpgen: {e}");
            std::process::exit(1);
        }
    }
}

fn run(args: &Args) -> Result<serde_json::Value, String> {
    tool::pin(args.core)?;
    let config = AfXdpConfig {
        mode: match args.mode {
            Mode::Auto => XdpMode::Auto,
            Mode::Skb => XdpMode::Skb,
            Mode::Driver => XdpMode::Driver,
        },
        ring_size: args.ring,
        ..AfXdpConfig::default()
    };
    let rx_netns = args.rx_netns.as_deref();
    // The receiving side first: it must be listening before anything is sent.
    let mut rx = InNetns::make(rx_netns, || -> Result<_, Box<dyn std::error::Error>> {
        let dst_mac = match &args.dst_mac {
            Some(m) => parse_mac(m)?,
            None => mac_of(&args.rx)?,
        };
        let ports: Vec<PortSpec> = args.rx_queues.iter().map(|&q| PortSpec::new(0, &args.rx, q)).collect();
        Ok((AfXdpIo::new(&config, &ports)?, dst_mac))
    })
    .map_err(|e| e.to_string())?;
    let dst_mac = rx.get().1;
    let src_mac = match &args.src_mac {
        Some(m) => parse_mac(m)?,
        None => mac_of(&args.tx).map_err(|e| e.to_string())?,
    };
    let spec = TrafficSpec {
        src_mac,
        dst_mac,
        src_ip: args.src_ip.0.clone(),
        dst_ip: args.dst_ip.0.clone(),
        src_port: args.src_port.0.clone(),
        dst_port: args.dst_port.0.clone(),
        flows: args.flows,
        proto: match args.proto {
            ProtoArg::Udp => Proto::Udp,
            ProtoArg::Syn => Proto::TcpSyn,
            ProtoArg::Ack => Proto::TcpAck,
        },
        sizes: if args.imix { IMIX.to_vec() } else { vec![args.size] },
    };
    let templates = Templates::new(&spec)?;
    // Transmit-only: no XDP program on the sending interface, no frames parked in a
    // fill ring.
    let tx_ports = [PortSpec::new(0, &args.tx, args.tx_queue).tx_only()];
    let mut tx = AfXdpIo::new(&config, &tx_ports).map_err(|e| e.to_string())?;
    if templates.max_len() > tx.frame_capacity() {
        return Err(format!(
            "frames of {} bytes do not fit UMEM frames of {}",
            templates.max_len(),
            tx.frame_capacity()
        ));
    }
    eprintln!(
        "xdpgen: {} -> {} ({} -> {}), {} flows, {}\n{}\n{}",
        args.tx,
        args.rx,
        format_mac(&src_mac),
        format_mac(&dst_mac),
        args.flows,
        if args.imix { "IMIX".to_string() } else { format!("{} B", args.size) },
        tx.report(),
        rx.get().0.report()
    );

    let run = generate(args, &templates, &mut tx, &mut rx.get().0);
    let secs = run.send_time.as_secs_f64();
    let pct = |q: f64| run.latency.value_at_quantile(q);
    Ok(serde_json::json!({
        "sent": run.sent,
        "received": run.received,
        "duration_s": round(secs, 3),
        "tx_mpps": round(run.sent as f64 / secs / 1e6, 3),
        "mpps": round(run.received as f64 / secs / 1e6, 3),
        "loss": if run.sent > 0 { round(1.0 - run.received as f64 / run.sent as f64, 6) } else { 0.0 },
        "out_of_order": run.out_of_order,
        "other_frames": run.other,
        "tx_ring_full": tx.counters().tx_ring_full,
        "latency_us": {
            "p50": round(pct(0.5) as f64 / 1e3, 1),
            "p99": round(pct(0.99) as f64 / 1e3, 1),
            "p99.9": round(pct(0.999) as f64 / 1e3, 1),
            "max": round(run.latency.max() as f64 / 1e3, 1),
        },
        "flows": args.flows,
        "frame": if args.imix { "imix".to_string() } else { format!("{}B", args.size) },
        "rate_pps": args.rate,
    }))
}

fn round(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}

struct Run {
    sent: u64,
    received: u64,
    out_of_order: u64,
    other: u64,
    send_time: Duration,
    latency: Histogram<u64>,
}

/// Sends for `duration` (paced to `rate`, or flat out), receiving as it goes, then
/// keeps receiving for `drain`.
fn generate(args: &Args, templates: &Templates, tx: &mut AfXdpIo, rx: &mut AfXdpIo) -> Run {
    let duration = Duration::from_secs_f64(args.duration);
    let drain = Duration::from_secs_f64(args.drain);
    let mut latency = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).expect("valid bounds");
    let mut frames: Vec<RxFrame> = Vec::with_capacity(args.batch);
    let (mut sent, mut received, mut out_of_order, mut other) = (0u64, 0u64, 0u64, 0u64);
    let mut next_expected = 0u64;
    let t0 = Instant::now();
    let mut stopped_at = None;
    loop {
        let now = t0.elapsed();
        let sending = now < duration && !tool::stopping();
        if sending {
            let due = if args.rate == 0 { u64::MAX } else { (now.as_secs_f64() * args.rate as f64) as u64 };
            let n = due.saturating_sub(sent).min(args.batch as u64);
            let stamp = now.as_nanos() as u64;
            for _ in 0..n {
                let Some(h) = tx.alloc() else { break };
                let len = templates.write(sent, stamp, tx.buffer(h));
                tx.tx(0, h, 0, len);
                sent += 1;
            }
        } else if stopped_at.is_none() {
            stopped_at = Some(now.min(duration));
        }
        tx.flush();

        frames.clear();
        if rx.rx(&mut frames, args.batch) > 0 {
            let arrived = t0.elapsed().as_nanos() as u64;
            for f in &frames {
                match read_trailer(&rx.buffer(f.handle)[..f.len]) {
                    Some((seq, stamp)) => {
                        received += 1;
                        if seq < next_expected {
                            out_of_order += 1;
                        }
                        next_expected = next_expected.max(seq + 1);
                        latency.saturating_record(arrived.saturating_sub(stamp).max(1));
                    }
                    None => other += 1,
                }
                rx.release(f.handle);
            }
        }
        rx.flush();
        if stopped_at.is_some_and(|s| now >= s + drain) {
            break;
        }
    }
    // Frames that did not fit the TX ring were never sent.
    let sent = sent - tx.counters().tx_ring_full;
    Run { sent, received, out_of_order, other, send_time: stopped_at.unwrap_or(duration), latency }
}
