//! `vpcgate top`: a live terminal view of the running appliance, from `DescribeStats`
//! answers taken every `--interval`: totals, per worker and per ENI rates, conntrack
//! use and allowance, top talkers and top rejected flows, flow-log delivery.
//!
//! Rates are differences between two answers over the time between them (the
//! answers' `SampledAt`, else the local clock); a counter that went down (a restarted
//! daemon) counts from zero. Plain ANSI escapes on the alternate screen, no curses:
//! `q` or Ctrl-C quits and puts the terminal back as it was. `--once` prints one plain
//! frame (rates over one interval) for scripts.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{IsTerminal, Read, Write};
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::cli::client::{call, CallError};

/// Hops in pipeline order, and drop reasons, as `DescribeStats` names them.
const HOPS: [&str; 4] = ["sg-egress", "nacl-egress", "nacl-ingress", "sg-ingress"];

#[derive(Clone, Debug)]
pub struct TopOptions {
    pub interval: Duration,
    pub once: bool,
    /// Rows per table (ENIs, top talkers, rejected flows).
    pub limit: usize,
}

/// One `DescribeStats` answer and when it was taken (Unix nanoseconds).
#[derive(Clone, Debug)]
pub struct Sample {
    pub at: u64,
    pub stats: Value,
}

impl Sample {
    /// `local` is the reader's clock, used when the answer has no `SampledAt`.
    pub fn new(stats: Value, local: u64) -> Sample {
        Sample { at: stats["SampledAt"].as_u64().unwrap_or(local), stats }
    }
}

/// How a frame is drawn.
#[derive(Clone, Debug)]
pub struct FrameOptions {
    pub interval: Duration,
    pub limit: usize,
    /// Characters per line; longer lines are cut.
    pub width: usize,
    /// Lines at most (the last says how many were left out).
    pub height: usize,
    /// Interactive: say how to quit.
    pub live: bool,
}

/// `(cur - prev) / dt`; a counter that went down restarted from zero.
fn rate(cur: &Value, prev: Option<&Value>, dt: Option<f64>) -> Option<f64> {
    let (c, p, dt) = (cur.as_f64()?, prev?.as_f64()?, dt?);
    if dt <= 0.0 {
        return None;
    }
    Some(if c >= p { (c - p) / dt } else { c / dt })
}

/// 7, 2.5, 1234, 12.3k, 4.56M, 1.2G.
pub fn human(x: f64) -> String {
    if !x.is_finite() {
        return "-".into();
    }
    // An empty sum is -0.
    let x = if x == 0.0 { 0.0 } else { x };
    let a = x.abs();
    if a < 10.0 && x.fract() != 0.0 {
        format!("{x:.1}")
    } else if a < 10_000.0 {
        format!("{x:.0}")
    } else if a < 1e6 {
        format!("{:.1}k", x / 1e3)
    } else if a < 1e9 {
        format!("{:.2}M", x / 1e6)
    } else {
        format!("{:.2}G", x / 1e9)
    }
}

fn show(r: Option<f64>) -> String {
    r.map_or_else(|| "-".into(), human)
}

/// A gauge or a total, exactly.
fn count(v: &Value) -> String {
    match (v.as_u64(), v.as_f64()) {
        (Some(n), _) => n.to_string(),
        (None, Some(x)) => human(x),
        _ => "-".into(),
    }
}

/// Aligns `rows` under `headers`; columns from `text_cols` on are right-aligned numbers.
fn table(headers: &[&str], rows: &[Vec<String>], text_cols: usize) -> Vec<String> {
    let right: Vec<bool> = (0..headers.len()).map(|i| i >= text_cols).collect();
    table_aligned(headers, rows, &right)
}

/// Aligns `rows` under `headers`, right-aligning the columns marked in `right`.
fn table_aligned(headers: &[&str], rows: &[Vec<String>], right: &[bool]) -> Vec<String> {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::from(" ");
        for (i, c) in cells.iter().enumerate() {
            let pad = widths[i].saturating_sub(c.chars().count());
            s.push(' ');
            if !right[i] {
                s.push_str(c);
                s.push_str(&" ".repeat(pad));
            } else {
                s.push_str(&" ".repeat(pad));
                s.push_str(c);
            }
            s.push(' ');
        }
        s.trim_end().to_string()
    };
    let mut out = vec![line(headers.to_vec())];
    out.extend(rows.iter().map(|r| line(r.iter().map(String::as_str).collect())));
    out
}

fn by_key<'a>(list: &'a Value, key: &str) -> HashMap<String, &'a Value> {
    list.as_array().into_iter().flatten().map(|x| (x[key].to_string(), x)).collect()
}

fn clock(nanos: u64) -> String {
    let s = nanos / 1_000_000_000;
    format!("{:02}:{:02}:{:02} UTC", s / 3600 % 24, s / 60 % 60, s % 60)
}

fn protocol(p: &Value) -> String {
    match p.as_u64() {
        Some(6) => "tcp".into(),
        Some(17) => "udp".into(),
        Some(1) => "icmp".into(),
        Some(58) => "icmpv6".into(),
        Some(n) => n.to_string(),
        None => p.as_str().unwrap_or("-").to_string(),
    }
}

fn endpoint(addr: &Value, port: &Value, proto: &Value) -> String {
    let a = addr.as_str().unwrap_or("-");
    let with_port = matches!(proto.as_u64(), Some(6) | Some(17) | Some(132));
    match (with_port, port.as_u64()) {
        (true, Some(p)) if a.contains(':') => format!("[{a}]:{p}"),
        (true, Some(p)) => format!("{a}:{p}"),
        _ => a.to_string(),
    }
}

fn flow_key(f: &Value) -> String {
    ["NetworkInterfaceId", "Direction", "Src", "Dst", "SrcPort", "DstPort", "Protocol", "Action"]
        .iter()
        .map(|k| f[*k].to_string())
        .collect::<Vec<_>>()
        .join("|")
}

/// Non-zero rates of an object's counters, `name rate` joined; `none` if all are zero.
fn breakdown(cur: &Value, prev: Option<&Value>, dt: Option<f64>, names: Option<&[&str]>) -> String {
    let keys: Vec<String> = match names {
        Some(n) => n.iter().map(|s| s.to_string()).collect(),
        None => cur.as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default(),
    };
    if dt.is_none() || prev.is_none() {
        return "-".into();
    }
    let parts: Vec<String> = keys
        .iter()
        .filter_map(|k| {
            let r = rate(&cur[k], prev.map(|p| &p[k]), dt)?;
            (names.is_some() || r > 0.0).then(|| format!("{k} {}", human(r)))
        })
        .collect();
    if parts.is_empty() {
        "none".into()
    } else {
        parts.join("  ")
    }
}

/// One frame of the view, as lines (no escapes).
pub fn render(prev: Option<&Sample>, cur: &Sample, o: &FrameOptions) -> Vec<String> {
    let s = &cur.stats;
    let p = prev.map(|p| &p.stats);
    let dt = prev.map(|p| (cur.at as f64 - p.at as f64) / 1e9).filter(|d| *d > 0.0);
    let mut lines = Vec::new();
    let workers = s["Workers"].as_array().cloned().unwrap_or_default();
    let enis = s["NetworkInterfaces"].as_array().cloned().unwrap_or_default();
    let mut head = format!(
        "vpcgate top - sampled {} - every {}s - {} worker(s), {} network interface(s)",
        clock(cur.at),
        human(o.interval.as_secs_f64()),
        workers.len(),
        enis.len()
    );
    match dt {
        Some(d) => {
            let _ = write!(head, " - rates over {d:.1}s");
        }
        None => head.push_str(" - rates from the next sample"),
    }
    if o.live {
        head.push_str(" - q: quit");
    }
    lines.push(head);
    lines.push(String::new());

    // Totals
    let t = &s["Totals"];
    let tp = p.map(|p| &p["Totals"]);
    let r = |key: &str| show(rate(&t[key], tp.map(|x| &x[key]), dt));
    let sum = |v: &Value| v.as_object().map(|o| o.values().filter_map(Value::as_f64).sum::<f64>());
    let sum_rate = |key: &str| {
        let c = sum(&t[key]).map(|x| json!(x)).unwrap_or(Value::Null);
        let pv = tp.and_then(|x| sum(&x[key])).map(|x| json!(x));
        show(rate(&c, pv.as_ref(), dt))
    };
    lines.push("TOTALS".into());
    lines.extend(table(
        &["FRAMES/S", "FORWARDED/S", "REPLIED/S", "UNTRACKED/S", "REJECTED/S", "DROPPED/S", "B/S"],
        &[vec![
            r("Frames"),
            r("Forwarded"),
            r("Replied"),
            r("Untracked"),
            sum_rate("Rejected"),
            sum_rate("Dropped"),
            r("Bytes"),
        ]],
        0,
    ));
    lines.push(format!(
        "  rejected/s by hop:   {}",
        breakdown(&t["Rejected"], tp.map(|x| &x["Rejected"]), dt, Some(&HOPS))
    ));
    lines.push(format!("  dropped/s by reason: {}", breakdown(&t["Dropped"], tp.map(|x| &x["Dropped"]), dt, None)));
    let entries: f64 = workers.iter().filter_map(|w| w["ConntrackEntries"].as_f64()).sum();
    let capacity: f64 = workers.iter().filter_map(|w| w["ConntrackCapacity"].as_f64()).sum();
    let exceeded = |v: &Value| -> f64 {
        v["NetworkInterfaces"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e["conntrack_allowance_exceeded"].as_f64())
            .sum()
    };
    let exceeded_rate = rate(&json!(exceeded(s)), p.map(|p| json!(exceeded(p))).as_ref(), dt);
    lines.push(format!(
        "  conntrack: {} entries of {}{} - allowance exceeded/s {}",
        count(&json!(entries as u64)),
        count(&json!(capacity as u64)),
        if capacity > 0.0 { format!(" ({:.1}%)", 100.0 * entries / capacity) } else { String::new() },
        show(exceeded_rate)
    ));
    lines.push(String::new());

    // Workers
    lines.push("WORKERS".into());
    if workers.is_empty() {
        lines.push("  (no workers: this vpcgated runs no dataplane)".into());
    } else {
        let prev_workers = p.map(|p| by_key(&p["Workers"], "Worker")).unwrap_or_default();
        let mut rows = Vec::new();
        let mut notes = Vec::new();
        for w in &workers {
            let pw = prev_workers.get(&w["Worker"].to_string()).copied();
            let v = &w["Verdicts"];
            let pv = pw.map(|x| &x["Verdicts"]);
            let r = |x: &Value, px: Option<&Value>| show(rate(x, px, dt));
            let dropped = sum(&v["Dropped"]).map(|x| json!(x)).unwrap_or(Value::Null);
            let pdropped = pv.and_then(|x| sum(&x["Dropped"])).map(|x| json!(x));
            let mut row = vec![
                w["Worker"].to_string(),
                w["Core"].as_u64().map_or("-".into(), |c| c.to_string()),
                r(&v["Frames"], pv.map(|x| &x["Frames"])),
                r(&v["Forwarded"], pv.map(|x| &x["Forwarded"])),
            ];
            for h in HOPS {
                row.push(r(&v["Rejected"][h], pv.map(|x| &x["Rejected"][h])));
            }
            row.push(show(rate(&dropped, pdropped.as_ref(), dt)));
            row.push(r(&w["HandoffOut"], pw.map(|x| &x["HandoffOut"])));
            row.push(count(&w["ConntrackEntries"]));
            row.push(count(&w["ConntrackCapacity"]));
            let batches = &w["BatchNanos"];
            row.push(match batches["p99"].as_f64() {
                Some(n) if batches["count"].as_u64() != Some(0) => human(n / 1e3),
                _ => "-".into(),
            });
            rows.push(row);
            let drops = breakdown(&v["Dropped"], pv.map(|x| &x["Dropped"]), dt, None);
            if drops != "none" && drops != "-" {
                notes.push(format!("  worker {} dropped/s: {drops}", w["Worker"]));
            }
        }
        lines.extend(table(
            &[
                "WORKER",
                "CORE",
                "FRAMES/S",
                "FWD/S",
                "SG-EGR/S",
                "NACL-EGR/S",
                "NACL-ING/S",
                "SG-ING/S",
                "DROP/S",
                "HANDOFF/S",
                "CT ENTRIES",
                "CT CAP",
                "BATCH P99 us",
            ],
            &rows,
            2,
        ));
        lines.extend(notes);
    }
    lines.push(String::new());

    // Network interfaces, busiest first
    lines.push("NETWORK INTERFACES".into());
    if enis.is_empty() {
        lines.push("  (none)".into());
    } else {
        let prev_enis = p.map(|p| by_key(&p["NetworkInterfaces"], "NetworkInterfaceId")).unwrap_or_default();
        let mut rows: Vec<(f64, Vec<String>)> = enis
            .iter()
            .map(|e| {
                let pe = prev_enis.get(&e["NetworkInterfaceId"].to_string()).copied();
                let r = |k: &str| rate(&e[k], pe.map(|x| &x[k]), dt);
                let busy = r("OutPackets").unwrap_or(0.0) + r("InPackets").unwrap_or(0.0);
                (
                    busy,
                    vec![
                        e["NetworkInterfaceId"].as_str().unwrap_or("-").to_string(),
                        show(r("OutPackets")),
                        show(r("InPackets")),
                        show(r("OutBytes")),
                        show(r("InBytes")),
                        show(r("RejectedOut")),
                        show(r("RejectedIn")),
                        count(&e["ConntrackEntries"]),
                        count(&e["conntrack_allowance_available"]),
                        show(r("conntrack_allowance_exceeded")),
                        show(r("srcdst_check_dropped")),
                    ],
                )
            })
            .collect();
        rows.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1[0].cmp(&b.1[0])));
        let more = rows.len().saturating_sub(o.limit);
        let rows: Vec<Vec<String>> = rows.into_iter().take(o.limit).map(|r| r.1).collect();
        lines.extend(table(
            &[
                "ENI",
                "OUT PKT/S",
                "IN PKT/S",
                "OUT B/S",
                "IN B/S",
                "REJ OUT/S",
                "REJ IN/S",
                "CT ENTRIES",
                "CT AVAILABLE",
                "CT EXCEEDED/S",
                "SRC/DST DROP/S",
            ],
            &rows,
            1,
        ));
        if more > 0 {
            lines.push(format!("  ... and {more} more (--limit)"));
        }
    }
    lines.push(String::new());

    // Flows
    let flows = s["TopFlows"].as_array();
    let prev_flows: HashMap<String, &Value> =
        p.and_then(|p| p["TopFlows"].as_array()).into_iter().flatten().map(|f| (flow_key(f), f)).collect();
    for (title, action, sort_by) in [
        ("TOP TALKERS (accepted, by bytes/s)", "ACCEPT", "Bytes"),
        ("TOP REJECTED FLOWS (by packets/s)", "REJECT", "Packets"),
    ] {
        match s["TopFlowsSampledOneIn"].as_u64() {
            Some(n) if n > 1 => lines.push(format!("{title}  estimated from 1-in-{n} samples")),
            _ => lines.push(title.into()),
        }
        let Some(flows) = flows else {
            lines.push("  (this vpcgated reports no flows)".into());
            lines.push(String::new());
            continue;
        };
        let mut rows: Vec<(f64, f64, Vec<String>)> = flows
            .iter()
            .filter(|f| f["Action"] == action)
            .map(|f| {
                let pf = prev_flows.get(&flow_key(f)).copied();
                let r = |k: &str| rate(&f[k], pf.map(|x| &x[k]), dt);
                let mut row = vec![
                    f["NetworkInterfaceId"].as_str().unwrap_or("-").to_string(),
                    f["Direction"].as_str().unwrap_or("-").to_string(),
                    protocol(&f["Protocol"]),
                    endpoint(&f["Src"], &f["SrcPort"], &f["Protocol"]),
                    endpoint(&f["Dst"], &f["DstPort"], &f["Protocol"]),
                ];
                if action == "REJECT" {
                    row.push(f["RejectedAt"].as_str().unwrap_or("-").to_string());
                }
                row.push(show(r("Packets")));
                row.push(show(r("Bytes")));
                // Sort by the rate, then by the total (flows new in this sample).
                (r(sort_by).unwrap_or(-1.0), f[sort_by].as_f64().unwrap_or(0.0), row)
            })
            .collect();
        if rows.is_empty() {
            lines.push("  (no flows)".into());
        } else {
            rows.sort_by(|a, b| b.0.total_cmp(&a.0).then(b.1.total_cmp(&a.1)).then_with(|| a.2.cmp(&b.2)));
            let rows: Vec<Vec<String>> = rows.into_iter().take(o.limit).map(|r| r.2).collect();
            let mut headers = vec!["ENI", "DIR", "PROTO", "SOURCE", "DESTINATION"];
            if action == "REJECT" {
                headers.push("HOP");
            }
            headers.extend(["PKT/S", "B/S"]);
            lines.extend(table(&headers, &rows, headers.len() - 2));
        }
        lines.push(String::new());
    }

    // Flow logs
    lines.push("FLOW LOGS".into());
    let fls = s["FlowLogs"].as_array().cloned().unwrap_or_default();
    if fls.is_empty() {
        lines.push("  (none reported)".into());
    } else {
        let prev_fls = p.map(|p| by_key(&p["FlowLogs"], "FlowLogId")).unwrap_or_default();
        let rows: Vec<Vec<String>> = fls
            .iter()
            .map(|f| {
                let pf = prev_fls.get(&f["FlowLogId"].to_string()).copied();
                let r = |k: &str| show(rate(&f[k], pf.map(|x| &x[k]), dt));
                vec![
                    f["FlowLogId"].as_str().unwrap_or("-").to_string(),
                    r("RecordsWritten"),
                    r("RecordsSkipped"),
                    count(&f["Errors"]),
                    f["LastError"].as_str().unwrap_or("").to_string(),
                ]
            })
            .collect();
        lines.extend(table_aligned(
            &["FLOW LOG", "RECORDS/S", "SKIPPED/S", "ERRORS", "LAST ERROR"],
            &rows,
            &[false, true, true, true, false],
        ));
    }
    fit(lines, o.width, o.height)
}

/// Cuts lines to `width` characters and the frame to `height` lines.
fn fit(mut lines: Vec<String>, width: usize, height: usize) -> Vec<String> {
    while lines.last().is_some_and(String::is_empty) {
        lines.pop();
    }
    if lines.len() > height && height > 0 {
        let left = lines.len() - (height - 1);
        lines.truncate(height - 1);
        lines.push(format!("... {left} more line(s): enlarge the terminal or lower --limit"));
    }
    for l in &mut lines {
        if l.chars().count() > width {
            *l = l.chars().take(width).collect();
        }
    }
    lines
}

/// The frame shown when the daemon does not answer.
pub fn render_error(message: &str, o: &FrameOptions) -> Vec<String> {
    let mut lines = vec![format!(
        "vpcgate top - every {}s{}",
        human(o.interval.as_secs_f64()),
        if o.live { " - q: quit" } else { "" }
    )];
    lines.push(String::new());
    lines.push(format!("cannot get DescribeStats: {message}"));
    lines.push("retrying...".into());
    fit(lines, o.width, o.height)
}

fn local_nanos() -> u64 {
    crate::extension::now_nanos()
}

fn fetch(socket: &Path) -> Result<Sample, CallError> {
    call(socket, &json!({"Action": "DescribeStats"})).map(|v| Sample::new(v, local_nanos()))
}

fn error_text(e: &CallError) -> String {
    match e {
        CallError::Service(e) => format!("({}) {}", e.code, e.message),
        CallError::Connect(m) => m.clone(),
    }
}

/// The terminal's columns and rows (stdout, else stdin; else $COLUMNS/$LINES, else 120x40).
pub fn terminal_size() -> (usize, usize) {
    for fd in [1, 0] {
        let mut ws = libc::winsize { ws_row: 0, ws_col: 0, ws_xpixel: 0, ws_ypixel: 0 };
        // SAFETY: TIOCGWINSZ writes one `winsize` through the pointer, which points to a
        // live, writable `winsize`; on a descriptor that is not a terminal it fails and
        // writes nothing.
        let rc = unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws as *mut libc::winsize) };
        if rc == 0 && ws.ws_col > 0 && ws.ws_row > 0 {
            return (ws.ws_col as usize, ws.ws_row as usize);
        }
    }
    let env = |k: &str, d: usize| std::env::var(k).ok().and_then(|v| v.parse().ok()).unwrap_or(d);
    (env("COLUMNS", 120), env("LINES", 40))
}

/// Keys without Enter and without echo, while it lives; the terminal's settings are put
/// back when it is dropped.
struct RawInput {
    saved: libc::termios,
}

impl RawInput {
    fn enter() -> Option<RawInput> {
        if !std::io::stdin().is_terminal() {
            return None;
        }
        let mut t = std::mem::MaybeUninit::<libc::termios>::uninit();
        // SAFETY: fd 0 is a terminal; on success tcgetattr fills the whole `termios` the
        // pointer refers to, and we read it only then.
        if unsafe { libc::tcgetattr(0, t.as_mut_ptr()) } != 0 {
            return None;
        }
        // SAFETY: tcgetattr succeeded, so `t` is initialised.
        let saved = unsafe { t.assume_init() };
        let mut raw = saved;
        // Signals (Ctrl-C) stay on: they set the quit flag.
        raw.c_lflag &= !(libc::ICANON | libc::ECHO);
        raw.c_cc[libc::VMIN] = 1;
        raw.c_cc[libc::VTIME] = 0;
        // SAFETY: `raw` is a valid termios (a copy of the kernel's with flags changed)
        // and lives across the call.
        if unsafe { libc::tcsetattr(0, libc::TCSANOW, &raw) } != 0 {
            return None;
        }
        Some(RawInput { saved })
    }
}

impl Drop for RawInput {
    fn drop(&mut self) {
        // SAFETY: `saved` is the termios tcgetattr gave us for this terminal.
        unsafe {
            libc::tcsetattr(0, libc::TCSANOW, &self.saved);
        }
    }
}

/// The alternate screen with the cursor hidden, while it lives.
struct Screen;

impl Screen {
    fn enter() -> Screen {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(b"\x1b[?1049h\x1b[?25l\x1b[H\x1b[2J");
        let _ = out.flush();
        Screen
    }

    fn draw(&self, lines: &[String]) {
        let mut buf = String::from("\x1b[H");
        for (i, l) in lines.iter().enumerate() {
            buf.push_str(l);
            buf.push_str("\x1b[K");
            if i + 1 < lines.len() {
                buf.push_str("\r\n");
            }
        }
        buf.push_str("\x1b[J");
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(buf.as_bytes());
        let _ = out.flush();
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(b"\x1b[?25h\x1b[?1049l");
        let _ = out.flush();
    }
}

/// Bytes typed, read by a thread (it stays blocked in `read` until the process ends).
fn keys() -> mpsc::Receiver<u8> {
    let (tx, rx) = mpsc::channel();
    let _ = std::thread::Builder::new().name("top-keys".into()).spawn(move || {
        let mut stdin = std::io::stdin();
        let mut buf = [0u8; 64];
        loop {
            match stdin.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    for &b in &buf[..n] {
                        if tx.send(b).is_err() {
                            return;
                        }
                    }
                }
            }
        }
    });
    rx
}

pub fn run(socket: &Path, o: TopOptions) -> ExitCode {
    if o.once {
        return once(socket, &o);
    }
    let quit = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM, signal_hook::consts::SIGHUP] {
        if let Err(e) = signal_hook::flag::register(sig, quit.clone()) {
            eprintln!("vpcgate top: cannot handle signal {sig}: {e}");
            return ExitCode::from(crate::cli::EXIT_USAGE);
        }
    }
    // Order matters: the screen is left before the terminal's modes are restored.
    let _raw = RawInput::enter();
    let screen = Screen::enter();
    let keys = keys();
    let mut keys_open = true;
    let mut prev: Option<Sample> = None;
    let mut last: Option<Result<Sample, String>> = None;
    let mut next_poll = Instant::now();
    let mut drawn_size = (0, 0);
    loop {
        if quit.load(Ordering::SeqCst) {
            break;
        }
        let now = Instant::now();
        let size = terminal_size();
        let mut redraw = size != drawn_size;
        if now >= next_poll {
            match fetch(socket) {
                Ok(s) => {
                    if let Some(Ok(old)) = last.take() {
                        prev = Some(old);
                    }
                    last = Some(Ok(s));
                }
                Err(e) => last = Some(Err(error_text(&e))),
            }
            next_poll = (next_poll + o.interval).max(Instant::now());
            redraw = true;
        }
        if redraw {
            let fo = FrameOptions { interval: o.interval, limit: o.limit, width: size.0, height: size.1, live: true };
            let lines = match &last {
                Some(Ok(cur)) => render(prev.as_ref(), cur, &fo),
                Some(Err(e)) => render_error(e, &fo),
                None => Vec::new(),
            };
            screen.draw(&lines);
            drawn_size = size;
        }
        let wait = next_poll.saturating_duration_since(Instant::now()).min(Duration::from_millis(100));
        if keys_open {
            match keys.recv_timeout(wait) {
                Ok(b'q' | b'Q' | 0x03 | 0x04) => break,
                Ok(_) | Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => keys_open = false,
            }
        } else {
            std::thread::sleep(wait);
        }
    }
    drop(screen);
    ExitCode::SUCCESS
}

/// Two samples one interval apart, one plain frame.
fn once(socket: &Path, o: &TopOptions) -> ExitCode {
    let first = match fetch(socket) {
        Ok(s) => s,
        Err(e) => return report(e),
    };
    std::thread::sleep(o.interval);
    let second = match fetch(socket) {
        Ok(s) => s,
        Err(e) => return report(e),
    };
    let (width, height) =
        if std::io::stdout().is_terminal() { (terminal_size().0, usize::MAX) } else { (usize::MAX, usize::MAX) };
    let fo = FrameOptions { interval: o.interval, limit: o.limit, width, height, live: false };
    let mut out = std::io::stdout().lock();
    for l in render(Some(&first), &second, &fo) {
        let _ = writeln!(out, "{l}");
    }
    ExitCode::SUCCESS
}

fn report(e: CallError) -> ExitCode {
    match e {
        CallError::Service(e) => {
            eprintln!("\nAn error occurred ({}) when calling the DescribeStats operation: {}", e.code, e.message);
            ExitCode::from(crate::cli::EXIT_SERVICE)
        }
        CallError::Connect(m) => {
            eprintln!("\n{m}");
            ExitCode::from(crate::cli::EXIT_CONNECT)
        }
    }
}
