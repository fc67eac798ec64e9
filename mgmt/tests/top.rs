//! `vpcgate top`: the frame's rates from two `DescribeStats` answers (built by the real
//! `snapshot_json` from worker snapshots), `--once`, and the live view in a real
//! terminal (tmux): against `vpcgated --no-dataplane`, and against a stand-in daemon
//! whose counters grow by known amounts per answered second, so the numbers on screen
//! are exact. `q` and Ctrl-C quit and leave the terminal as it was.

#[path = "support/daemon.rs"]
mod daemon;
#[path = "support/small.rs"]
mod small;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dataplane::accounting::FlowId;
use dataplane::addr::Family;
use dataplane::pipeline::{DropReason, Hop};
use dataplane::tables::{EniId, Tables};
use mgmt::stats::{snapshot_json, top_flows_json, FlowLogCounters, FlowSample, WorkerSnapshot};
use mgmt::top::{render, FrameOptions, Sample};
use serde_json::{json, Value};

/// 2026-11-20 00:00:00 UTC.
const BASE: u64 = 1_795_132_800_000_000_000;
const SEC: u64 = 1_000_000_000;

fn tables() -> Tables {
    mgmt::compile::compile_once(&mgmt::validate::check(&small::config()).unwrap())
}

fn key(t: &Tables, id: &str) -> usize {
    t.eni_by_name(id).unwrap().key.0 as usize
}

fn v4(s: &str) -> u128 {
    u32::from(s.parse::<std::net::Ipv4Addr>().unwrap()) as u128
}

/// `from` and `to` are (address, port).
fn flow(
    eni: usize,
    egress: bool,
    accept: bool,
    proto: u8,
    (src, sport): (&str, u16),
    (dst, dport): (&str, u16),
) -> FlowId {
    FlowId {
        eni: EniId(eni as u32),
        egress,
        accept,
        to_uplink: false,
        family: Family::V4,
        proto,
        src: v4(src),
        dst: v4(dst),
        sport,
        dport,
    }
}

/// `DescribeStats` after `k` seconds of a steady load (per second): worker 0 (core 2)
/// takes 1000 frames, forwards 800, answers 10, 5 of them untracked, refuses 20 at NACL
/// egress and 150 at SG ingress, drops 20 at the source/destination check; worker 1
/// (core 3) takes and forwards 500. ENI a sends 600 and receives 200 packets.
fn sample(t: &Tables, k: u64) -> Value {
    let (a, b) = (key(t, small::ENI_A), key(t, small::ENI_B));
    let mut w0 = WorkerSnapshot::new(0, Some(2));
    let s = &mut w0.stats;
    s.bytes = 1_500_000 * k;
    s.forwarded = 800 * k;
    s.replied = 10 * k;
    s.untracked = 5 * k;
    s.rejected[Hop::NaclEgress as usize] = 20 * k;
    s.rejected[Hop::SgIngress as usize] = 150 * k;
    s.dropped[DropReason::SrcDstCheck.kind_index()] = 20 * k;
    s.ensure_enis(t.enis.len());
    let e = &mut s.per_eni[a];
    e.out_packets = 600 * k;
    e.out_bytes = 900_000 * k;
    e.in_packets = 200 * k;
    e.in_bytes = 300_000 * k;
    e.rejected_in = 150 * k;
    e.conntrack_allowance_exceeded = 2 * k;
    w0.conntrack_entries = 1234;
    w0.conntrack_capacity = 262_144;
    w0.conntrack_per_eni = vec![0; t.enis.len()];
    w0.conntrack_per_eni[a] = 1000;
    w0.handoff_out = 50 * k;
    w0.batch_nanos.record(40_000).unwrap();
    let mut w1 = WorkerSnapshot::new(1, Some(3));
    w1.stats.bytes = 500_000 * k;
    w1.stats.forwarded = 500 * k;
    w1.conntrack_capacity = 262_144;
    let fl = FlowLogCounters {
        flow_log_id: "fl-0a000000000000001".into(),
        records_written: 30 * k,
        errors: 1,
        last_error: Some("disk full".into()),
        ..Default::default()
    };
    let mut v = snapshot_json(t, &[w0, w1], &[fl]);
    v["SampledAt"] = json!(BASE + k * SEC);
    let fs = |id: FlowId, rejected_at: Option<Hop>, packets: u64, bytes: u64| FlowSample {
        id,
        rejected_at,
        packets: packets * k,
        bytes: bytes * k,
        last_seen: 0,
    };
    v["TopFlows"] = top_flows_json(
        t,
        &[
            fs(flow(a, true, true, 17, ("198.18.1.10", 5353), ("198.18.1.20", 53)), None, 40, 4_000),
            fs(flow(a, true, true, 6, ("198.18.1.10", 40000), ("198.19.0.10", 443)), None, 700, 1_000_000),
            fs(flow(a, false, false, 6, ("198.19.0.66", 51000), ("198.18.1.10", 22)), Some(Hop::SgIngress), 150, 9_000),
            fs(flow(b, true, false, 1, ("198.18.1.20", 0), ("198.18.2.10", 0x0800)), Some(Hop::NaclEgress), 20, 1_680),
        ],
    );
    v
}

fn frame(prev: Option<&Value>, cur: &Value) -> Vec<String> {
    let o = FrameOptions { interval: Duration::from_secs(1), limit: 10, width: 400, height: 400, live: false };
    let p = prev.map(|v| Sample::new(v.clone(), 0));
    render(p.as_ref(), &Sample::new(cur.clone(), 0), &o)
}

/// The line containing `needle`, split into words.
fn words<'a>(lines: &'a [String], needle: &str) -> Vec<&'a str> {
    lines
        .iter()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no line with {needle:?}:\n{}", lines.join("\n")))
        .split_whitespace()
        .collect()
}

/// The line after the one containing `heading`, split into words.
fn row_after<'a>(lines: &'a [String], heading: &str) -> Vec<&'a str> {
    let i = lines.iter().position(|l| l.contains(heading)).unwrap_or_else(|| panic!("no {heading:?}"));
    lines[i + 1].split_whitespace().collect()
}

/// Every number of the steady load, as `vpcgate top` shows it.
fn assert_steady_load(lines: &[String]) {
    let text = lines.join("\n");
    assert!(lines[0].contains("2 worker(s), 3 network interface(s)") && lines[0].contains("rates over 1.0s"), "{text}");
    assert_eq!(row_after(lines, "FRAMES/S"), ["1500", "1300", "10", "5", "170", "20", "2.00M"], "totals\n{text}");
    assert!(
        text.contains("rejected/s by hop:   sg-egress 0  nacl-egress 20  nacl-ingress 0  sg-ingress 150"),
        "{text}"
    );
    assert!(text.contains("dropped/s by reason: src-dst-check 20\n"), "{text}");
    assert!(text.contains("conntrack: 1234 entries of 524288 (0.2%) - allowance exceeded/s 2"), "{text}");
    assert!(text.contains("worker 0 dropped/s: src-dst-check 20"), "{text}");
    let w = row_after(lines, "WORKER ");
    assert_eq!(w, ["0", "2", "1000", "800", "0", "20", "0", "150", "20", "50", "1234", "262144", "40"], "{text}");
    let eni_a = words(lines, small::ENI_A);
    assert_eq!(eni_a[1..], ["600", "200", "900.0k", "300.0k", "0", "150", "1000", "64536", "2", "0"], "{text}");
    // Busiest first.
    let i = |id: &str| lines.iter().position(|l| l.starts_with(&format!("  {id}"))).unwrap();
    assert!(i(small::ENI_A) < i(small::ENI_B) && i(small::ENI_A) < i(small::ENI_C), "{text}");
    let talker = words(lines, "198.19.0.10:443");
    assert_eq!(talker, [small::ENI_A, "egress", "tcp", "198.18.1.10:40000", "198.19.0.10:443", "700", "1.00M"]);
    let dns = words(lines, "198.18.1.20:53");
    assert_eq!(dns[5..], ["40", "4000"]);
    let talkers = lines.iter().position(|l| l.starts_with("TOP TALKERS")).unwrap();
    assert!(lines[talkers + 2].contains(":443"), "by bytes/s, most first:\n{text}");
    let refused = words(lines, "198.19.0.66:51000");
    assert_eq!(
        refused,
        [small::ENI_A, "ingress", "tcp", "198.19.0.66:51000", "198.18.1.10:22", "sg-ingress", "150", "9000"]
    );
    let icmp = words(lines, "198.18.2.10");
    assert_eq!(icmp, [small::ENI_B, "egress", "icmp", "198.18.1.20", "198.18.2.10", "nacl-egress", "20", "1680"]);
    assert_eq!(words(lines, "fl-0a000000000000001"), ["fl-0a000000000000001", "30", "0", "1", "disk", "full"]);
}

#[test]
fn a_frame_shows_rates_between_two_answers() {
    let t = tables();
    let (s1, s2) = (sample(&t, 1), sample(&t, 2));
    assert_steady_load(&frame(Some(&s1), &s2));
    // Later samples give the same rates.
    assert_steady_load(&frame(Some(&sample(&t, 7)), &sample(&t, 8)));
    // Over two seconds, still per second.
    let two = frame(Some(&s1), &sample(&t, 3));
    assert!(two[0].contains("rates over 2.0s"));
    assert_eq!(row_after(&two, "FRAMES/S")[0], "1500");
}

#[test]
fn the_first_frame_has_no_rates_yet() {
    let t = tables();
    let lines = frame(None, &sample(&t, 5));
    let text = lines.join("\n");
    assert!(lines[0].contains("rates from the next sample"), "{text}");
    assert_eq!(row_after(&lines, "FRAMES/S"), ["-", "-", "-", "-", "-", "-", "-"]);
    // Gauges are shown at once.
    assert_eq!(words(&lines, small::ENI_A)[7..9], ["1000", "64536"]);
    assert!(text.contains("conntrack: 1234 entries of 524288"), "{text}");
}

#[test]
fn a_restarted_daemon_counts_from_zero() {
    let t = tables();
    let mut restarted = sample(&t, 1);
    restarted["SampledAt"] = json!(BASE + 100 * SEC);
    let lines = frame(Some(&sample(&t, 99)), &restarted);
    assert_eq!(row_after(&lines, "FRAMES/S")[0], "1500", "{}", lines.join("\n"));
}

#[test]
fn a_frame_fits_the_terminal() {
    let t = tables();
    let o = FrameOptions { interval: Duration::from_secs(1), limit: 1, width: 60, height: 12, live: true };
    let lines = render(Some(&Sample::new(sample(&t, 1), 0)), &Sample::new(sample(&t, 2), 0), &o);
    assert_eq!(lines.len(), 12);
    assert!(lines.iter().all(|l| l.chars().count() <= 60), "{lines:#?}");
    assert!(lines[11].contains("more line(s)"), "{lines:#?}");
    let tall = FrameOptions { height: 200, ..o };
    let lines = render(Some(&Sample::new(sample(&t, 1), 0)), &Sample::new(sample(&t, 2), 0), &tall);
    assert!(lines.iter().any(|l| l.contains("... and 2 more (--limit)")), "{lines:#?}");
    assert!(!lines.iter().any(|l| l.contains("198.18.1.20:53")), "--limit 1 keeps the top talker only");
}

// ---------------------------------------------------------------------------------
// A stand-in daemon: answers DescribeStats with `sample(k)`, k = 1, 2, 3, ... per answer.

struct FakeDaemon {
    socket: PathBuf,
    answered: Arc<AtomicU64>,
}

fn fake_daemon(dir: &Path) -> FakeDaemon {
    let socket = dir.join("fake.sock");
    let listener = UnixListener::bind(&socket).unwrap();
    let answered = Arc::new(AtomicU64::new(0));
    let count = answered.clone();
    std::thread::spawn(move || {
        let t = tables();
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let mut line = String::new();
            if BufReader::new(&conn).read_line(&mut line).is_err() {
                continue;
            }
            let req: Value = serde_json::from_str(&line).unwrap_or_default();
            let answer = if req["Action"] == "DescribeStats" {
                sample(&t, count.fetch_add(1, Ordering::SeqCst) + 1)
            } else {
                json!({"Error": {"Code": "InvalidAction", "Message": "stand-in answers DescribeStats only"}})
            };
            let _ = conn.write_all(format!("{answer}\n").as_bytes());
        }
    });
    FakeDaemon { socket, answered }
}

#[test]
fn once_prints_one_frame_of_rates() {
    let dir = daemon::temp_dir("top-once");
    let fake = fake_daemon(&dir);
    let out = daemon::run_cli(&fake.socket, &["top", "--once", "--interval", "0.2"], None);
    assert_eq!(out.status, 0, "{out:?}");
    assert!(!out.stdout.contains('\x1b'), "no escapes in --once: {:?}", out.stdout);
    let lines: Vec<String> = out.stdout.lines().map(str::to_string).collect();
    assert_steady_load(&lines);
    assert_eq!(fake.answered.load(Ordering::SeqCst), 2, "two answers, one frame");

    let gone = daemon::run_cli(&dir.join("nobody.sock"), &["top", "--once"], None);
    assert_eq!(gone.status, 255, "{gone:?}");
    assert!(gone.stderr.contains("Could not connect"), "{}", gone.stderr);
    for bad in ["0", "0.01", "-1", "nan", "4000"] {
        let out = daemon::run_cli(&fake.socket, &["top", "--once", "--interval", bad], None);
        assert_eq!(out.status, 252, "--interval {bad}: {out:?}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------------------
// In a real terminal

/// A private tmux server (its own socket name) with one shell in a `w`x`h` window.
struct Tmux {
    name: String,
}

impl Tmux {
    fn start(w: u16, h: u16) -> Option<Tmux> {
        if !Command::new("tmux").arg("-V").output().is_ok_and(|o| o.status.success()) {
            eprintln!("SKIPPED: tmux is not installed (apt-get install tmux); the terminal tests did not run");
            return None;
        }
        let name = format!("vpcgate-top-{}-{w}x{h}", std::process::id());
        let t = Tmux { name };
        // /bin/sh (dash) leaves the terminal's modes alone, so what `stty` shows after
        // `top` is what `top` left behind.
        let ok = t.tmux(&[
            "-f",
            "/dev/null",
            "new-session",
            "-d",
            "-s",
            "top",
            "-x",
            &w.to_string(),
            "-y",
            &h.to_string(),
            "/bin/sh",
        ]);
        assert!(ok.status.success(), "tmux new-session: {}", String::from_utf8_lossy(&ok.stderr));
        Some(t)
    }

    fn tmux(&self, args: &[&str]) -> std::process::Output {
        Command::new("tmux")
            .arg("-L")
            .arg(&self.name)
            .args(args)
            .env("TERM", "xterm-256color")
            .env_remove("TMUX")
            .output()
            .expect("tmux runs")
    }

    fn type_line(&self, line: &str) {
        assert!(self.tmux(&["send-keys", "-t", "top", "-l", line]).status.success());
        assert!(self.tmux(&["send-keys", "-t", "top", "Enter"]).status.success());
    }

    fn key(&self, key: &str) {
        assert!(self.tmux(&["send-keys", "-t", "top", key]).status.success());
    }

    fn screen(&self) -> String {
        String::from_utf8_lossy(&self.tmux(&["capture-pane", "-p", "-t", "top"]).stdout).into_owned()
    }

    fn show(&self, format: &str) -> String {
        String::from_utf8_lossy(&self.tmux(&["display-message", "-p", "-t", "top", format]).stdout).trim().to_string()
    }

    /// Waits (10 s at most) until `ok` holds for the screen; returns that screen.
    fn wait_for(&self, what: &str, ok: impl Fn(&str) -> bool) -> String {
        let t0 = Instant::now();
        loop {
            let s = self.screen();
            if ok(&s) {
                return s;
            }
            assert!(t0.elapsed() < Duration::from_secs(10), "waiting for {what}; the screen:\n{s}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Runs `vpcgate top` in the shell after a marker line; returns when it is drawn.
    fn run_top(&self, socket: &Path, interval: &str) {
        self.type_line("clear; echo before-top");
        self.wait_for("the marker", |s| s.lines().any(|l| l == "before-top"));
        self.type_line(&format!(
            "{} top --socket {} --interval {interval}; echo top-exit=$?",
            daemon::vpcgate(),
            socket.display()
        ));
        self.wait_for("top's first frame", |s| s.starts_with("vpcgate top - sampled"));
        assert_eq!(self.show("#{alternate_on} #{cursor_flag}"), "1 0", "top draws on the alternate screen, no cursor");
    }

    /// After top quit: the shell's screen is back as it was, the cursor shows, and the
    /// terminal echoes and reads lines again.
    fn assert_restored(&self) {
        let s = self.wait_for("top to exit", |s| s.lines().any(|l| l.starts_with("top-exit=")));
        assert!(s.lines().any(|l| l == "top-exit=0"), "{s}");
        // (A window made smaller meanwhile pushed the top of the screen into history.)
        let all =
            String::from_utf8_lossy(&self.tmux(&["capture-pane", "-p", "-S", "-", "-t", "top"]).stdout).into_owned();
        assert!(all.lines().any(|l| l == "before-top"), "the shell's screen is back:\n{all}");
        assert!(!s.contains("TOTALS"), "nothing of top is left on the main screen:\n{s}");
        assert_eq!(self.show("#{alternate_on} #{cursor_flag}"), "0 1", "main screen, cursor visible");
        let file = std::env::temp_dir().join(format!("{}-stty.txt", self.name));
        let _ = std::fs::remove_file(&file);
        self.type_line(&format!("stty -a > {}; echo stty-done", file.display()));
        self.wait_for("stty", |s| s.lines().any(|l| l == "stty-done"));
        let stty = std::fs::read_to_string(&file).unwrap();
        let _ = std::fs::remove_file(&file);
        let modes: Vec<&str> = stty
            .split([' ', ';', '\n'])
            .filter(|w| w.trim_start_matches('-') == "icanon" || w.trim_start_matches('-') == "echo")
            .collect();
        assert_eq!(modes, ["icanon", "echo"], "canonical mode and echo are back:\n{stty}");
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.tmux(&["kill-server"]);
    }
}

#[test]
fn live_view_of_a_running_daemon_in_a_terminal() {
    let Some(tmux) = Tmux::start(200, 50) else { return };
    let d = daemon::Daemon::start_named("top-live", &daemon::fixture());
    tmux.run_top(&d.socket, "0.3");
    let s = tmux.wait_for("a frame with rates", |s| s.contains("rates over"));
    for heading in [
        "TOTALS",
        "FRAMES/S",
        "rejected/s by hop:   sg-egress 0  nacl-egress 0  nacl-ingress 0  sg-ingress 0",
        "dropped/s by reason: none",
        "conntrack: 0 entries of 0",
        "WORKERS",
        "(no workers: this vpcgated runs no dataplane)",
        "NETWORK INTERFACES",
        "CT AVAILABLE",
        "TOP TALKERS (accepted, by bytes/s)",
        "TOP REJECTED FLOWS (by packets/s)",
        "FLOW LOGS",
        "q: quit",
        "0 worker(s), 2 network interface(s)",
    ] {
        assert!(s.contains(heading), "{heading:?} on screen:\n{s}");
    }
    let lines: Vec<String> = s.lines().map(str::to_string).collect();
    assert_eq!(row_after(&lines, "FRAMES/S"), ["0", "0", "0", "0", "0", "0", "0"], "{s}");
    for eni in [daemon::ENI_A, daemon::ENI_B] {
        assert_eq!(words(&lines, eni)[1..], ["0"; 10], "{s}");
    }
    tmux.key("q");
    tmux.assert_restored();
}

#[test]
fn live_view_shows_exact_rates_and_ctrl_c_restores_the_terminal() {
    let Some(tmux) = Tmux::start(200, 60) else { return };
    let dir = daemon::temp_dir("top-fake");
    let fake = fake_daemon(&dir);
    tmux.run_top(&fake.socket, "0.2");
    let s = tmux.wait_for("a frame with rates", |s| s.contains("rates over"));
    let lines: Vec<String> = s.lines().map(str::to_string).collect();
    assert_steady_load(&lines);
    // It keeps refreshing.
    let seen = fake.answered.load(Ordering::SeqCst);
    tmux.wait_for("more answers", |_| fake.answered.load(Ordering::SeqCst) >= seen + 3);
    // A smaller window: the frame follows.
    assert!(tmux.tmux(&["resize-window", "-t", "top", "-x", "70", "-y", "15"]).status.success());
    let small_screen = tmux.wait_for("a frame cut to the window", |s| s.contains("more line(s)"));
    assert!(small_screen.lines().all(|l| l.chars().count() <= 70), "{small_screen}");
    tmux.key("C-c");
    tmux.assert_restored();
    let _ = std::fs::remove_dir_all(&dir);
}
