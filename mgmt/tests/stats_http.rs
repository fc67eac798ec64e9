//! The Prometheus listener (`Appliance.Api.MetricsListen`) of a running
//! `vpcgated --no-dataplane`: loopback only, `GET /metrics` answers what
//! `vpcgate stats --prometheus` prints, other requests get the HTTP error they
//! deserve, a silent or oversized client is cut off, a taken port does not stop the
//! appliance, SIGTERM stops it.

#[path = "support/daemon.rs"]
mod daemon;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use daemon::{fixture, temp_dir, Daemon};
use serde_json::{json, Value};

/// A loopback port nobody listens on now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn with_listener(listen: &str) -> Value {
    let mut doc = fixture();
    doc["Appliance"]["Api"] = json!({"MetricsListen": listen});
    doc
}

/// Waits until something accepts connections on `addr`.
fn wait_listening(addr: SocketAddr) {
    let t0 = Instant::now();
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        assert!(t0.elapsed() < Duration::from_secs(10), "nothing listens on {addr}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// Sends `raw` and reads the whole answer (the server closes the connection).
fn exchange(addr: SocketAddr, raw: &[u8]) -> Response {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(raw).unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    parse_response(&buf)
}

fn parse_response(buf: &[u8]) -> Response {
    let text = String::from_utf8(buf.to_vec()).expect("UTF-8 answer");
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no header end: {text:?}"));
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    assert!(status_line.starts_with("HTTP/1.1 "), "{status_line}");
    let status = status_line[9..12].parse().unwrap();
    let headers = lines
        .map(|l| {
            let (k, v) = l.split_once(": ").unwrap_or_else(|| panic!("header {l:?}"));
            (k.to_string(), v.to_string())
        })
        .collect();
    let r = Response { status, headers, body: body.to_string() };
    assert_eq!(r.header("Connection"), Some("close"));
    r
}

fn get(addr: SocketAddr, path: &str) -> Response {
    exchange(addr, format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/plain\r\n\r\n").as_bytes())
}

/// A light check of the text format: every sample belongs to a family declared by a
/// HELP and a TYPE line just before its samples, values are numbers.
fn check_exposition(text: &str) -> Vec<String> {
    let mut families = Vec::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap().to_string();
            assert!(!families.contains(&name), "{name} declared twice");
            families.push(name);
            current = None;
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert_eq!(Some(name), families.last().map(String::as_str), "TYPE after its HELP");
            assert!(["counter", "gauge"].contains(&kind), "{line}");
            current = Some(name.to_string());
        } else {
            let family = current.as_deref().unwrap_or_else(|| panic!("sample outside a family: {line}"));
            let (name_labels, value) = line.rsplit_once(' ').unwrap();
            let name = name_labels.split('{').next().unwrap();
            assert_eq!(name, family, "{line}");
            assert!(value.parse::<f64>().is_ok(), "{line}");
        }
    }
    families
}

#[test]
fn metrics_listen_must_be_loopback() {
    for (listen, words) in [
        ("0.0.0.0:9464", "not a loopback address"),
        ("[::]:9464", "not a loopback address"),
        ("198.18.1.10:9464", "not a loopback address"),
        ("127.0.0.1", "expected a loopback address and port"),
    ] {
        let cfg = mgmt::model::Config::from_json(&with_listener(listen).to_string()).unwrap();
        let e = mgmt::validate::check(&cfg).err().unwrap_or_else(|| panic!("{listen} accepted"));
        assert_eq!(e.code, "InvalidParameterValue", "{listen}");
        assert!(e.message.contains(words) && e.message.contains("Appliance.Api.MetricsListen"), "{listen}: {e}");
    }
    for listen in ["127.0.0.1:9464", "[::1]:9464", "localhost:9464", "127.0.0.2:0"] {
        let cfg = mgmt::model::Config::from_json(&with_listener(listen).to_string()).unwrap();
        assert!(mgmt::validate::check(&cfg).is_ok(), "{listen} refused");
    }

    // The daemon refuses to start with it, saying why.
    let dir = temp_dir("metrics-refused");
    let cfg = dir.join("cfg.json");
    std::fs::write(&cfg, with_listener("0.0.0.0:9464").to_string()).unwrap();
    let out = Command::new(daemon::vpcgated())
        .arg("--config")
        .arg(&cfg)
        .arg("--state-dir")
        .arg(dir.join("state"))
        .arg("--socket")
        .arg(dir.join("api.sock"))
        .arg("--no-dataplane")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("InvalidParameterValue")
            && stderr.contains("0.0.0.0 is not a loopback address")
            && stderr.contains("Appliance.Api.MetricsListen"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);

    // A running daemon refuses an import that asks for it, and keeps its config.
    let d = Daemon::start_named("metrics-import", &fixture());
    let before = d.export();
    let reply = d.request(&json!({"Action": "ImportConfig", "Config": with_listener("0.0.0.0:9464")}));
    assert_eq!(reply["Error"]["Code"], "InvalidParameterValue", "{reply}");
    assert_eq!(d.export(), before);
}

#[test]
fn get_metrics_serves_the_exposition_format() {
    let port = free_port();
    let d = Daemon::start_named("metrics-get", &with_listener(&format!("127.0.0.1:{port}")));
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    wait_listening(addr);

    let r = get(addr, "/metrics");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Type"), Some("text/plain; version=0.0.4; charset=utf-8"));
    assert_eq!(r.header("Content-Length").unwrap().parse::<usize>().unwrap(), r.body.len());
    let families = check_exposition(&r.body);
    for f in ["vpcgate_frames_total", "vpcgate_eni_in_packets_total", "vpcgate_conntrack_allowance_available"] {
        assert!(families.iter().any(|x| x == f), "{f} in {families:?}");
    }
    // The same text as the CLI's (nothing moves without a dataplane).
    let cli = d.cli(&["stats", "--prometheus"]);
    assert_eq!(cli.status, 0, "{cli:?}");
    assert_eq!(r.body, cli.stdout);
    assert!(r.body.contains(&format!("vpcgate_eni_in_packets_total{{eni=\"{}\"}} 0\n", daemon::ENI_A)), "{}", r.body);
    // A query string is ignored; HTTP/1.0 and bare-LF heads are fine.
    assert_eq!(get(addr, "/metrics?name[]=x").body, r.body);
    assert_eq!(exchange(addr, b"GET /metrics HTTP/1.0\n\n").status, 200);

    let head = exchange(addr, b"HEAD /metrics HTTP/1.1\r\n\r\n");
    assert_eq!((head.status, head.body.as_str()), (200, ""));
    assert_eq!(head.header("Content-Length").unwrap().parse::<usize>().unwrap(), r.body.len());
    assert_eq!(get(addr, "/").status, 200);
    assert_eq!(get(addr, "/metricsx").status, 404);
    assert_eq!(get(addr, "/../metrics").status, 404);
    let post = exchange(addr, b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(post.status, 405);
    assert_eq!(post.header("Allow"), Some("GET, HEAD"));
    assert_eq!(exchange(addr, b"GET\r\n\r\n").status, 400);
    assert_eq!(exchange(addr, b"GET /metrics SPDY/3\r\n\r\n").status, 400);
    assert_eq!(exchange(addr, b"GET /metrics HTTP/1.1\xff\r\n\r\n").status, 400);
}

#[test]
fn oversized_and_silent_clients_are_cut_off() {
    let port = free_port();
    let _d = Daemon::start_named("metrics-limits", &with_listener(&format!("127.0.0.1:{port}")));
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    wait_listening(addr);

    // A head that never ends: 431 after 8 KiB.
    let mut big = b"GET /metrics HTTP/1.1\r\n".to_vec();
    while big.len() < 64 * 1024 {
        big.extend_from_slice(b"X-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
    }
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = s.write_all(&big); // the server may close before reading it all
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    assert!(buf.starts_with(b"HTTP/1.1 431 "), "{:?}", String::from_utf8_lossy(&buf[..buf.len().min(100)]));

    // A client that connects and says nothing holds the listener 2 s at most; a
    // scrape behind it is answered.
    let t0 = Instant::now();
    let mut silent = TcpStream::connect(addr).unwrap();
    silent.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let r = get(addr, "/metrics");
    assert_eq!(r.status, 200);
    let waited = t0.elapsed();
    assert!(waited < Duration::from_secs(4), "scrape took {waited:?}");
    let mut buf = Vec::new();
    let _ = silent.read_to_end(&mut buf);
    assert!(buf.starts_with(b"HTTP/1.1 408 "), "{:?}", String::from_utf8_lossy(&buf));

    // A client that sends its head a byte at a time keeps the connection 2 s at
    // most, however often it sends.
    let slow = TcpStream::connect(addr).unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut writer = slow.try_clone().unwrap();
    let t0 = Instant::now();
    let trickle = std::thread::spawn(move || {
        for b in b"GET /metrics HTTP/1.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" {
            if writer.write_all(&[*b]).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    let mut buf = Vec::new();
    let _ = (&slow).read_to_end(&mut buf);
    let cut = t0.elapsed();
    assert!(buf.starts_with(b"HTTP/1.1 408 "), "{:?}", String::from_utf8_lossy(&buf));
    assert!(cut > Duration::from_millis(1500) && cut < Duration::from_millis(3500), "cut off after {cut:?}");
    let _ = trickle.join();
    assert_eq!(get(addr, "/metrics").status, 200, "still serving");
}

#[test]
fn a_taken_port_leaves_the_appliance_running_and_sigterm_stops_the_listener() {
    // Taken: logged, the API still answers.
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = temp_dir("metrics-taken");
    let cfg = dir.join("cfg.json");
    std::fs::write(&cfg, with_listener(&format!("127.0.0.1:{port}")).to_string()).unwrap();
    let spawn = |name: &str| {
        Command::new(daemon::vpcgated())
            .arg("--config")
            .arg(&cfg)
            .arg("--state-dir")
            .arg(dir.join(name))
            .arg("--socket")
            .arg(dir.join(format!("{name}.sock")))
            .arg("--no-dataplane")
            .env("VPCGATE_LOG", "error")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let wait_api = |sock: &std::path::Path| {
        let t0 = Instant::now();
        while daemon::request(sock, &json!({"Action": "DescribeStats"})).is_none() {
            assert!(t0.elapsed() < Duration::from_secs(20), "API did not answer");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let child = spawn("a");
    wait_api(&dir.join("a.sock"));
    // SAFETY: kill(2) on our own child, not yet reaped.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("running without the metrics listener"), "{stderr}");
    drop(taken);

    // Free: served, and gone after SIGTERM (the port can be bound again at once).
    let mut child = spawn("b");
    wait_api(&dir.join("b.sock"));
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    wait_listening(addr);
    assert_eq!(get(addr, "/metrics").status, 200);
    let t0 = Instant::now();
    // SAFETY: as above.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    assert!(status.success() && t0.elapsed() < Duration::from_secs(5), "{status:?} after {:?}", t0.elapsed());
    assert!(TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_err(), "nothing listens any more");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn describe_stats_says_when_it_was_sampled_and_has_top_flows() {
    let d = Daemon::start_named("stats-shape", &fixture());
    let now = mgmt::extension::now_nanos();
    let v = d.request(&json!({"Action": "DescribeStats"}));
    let at = v["SampledAt"].as_u64().expect("SampledAt");
    assert!(at.abs_diff(now) < 10_000_000_000, "{at} vs {now}");
    assert_eq!(v["TopFlows"], json!([]), "no flow samples without workers");
    assert_eq!(v["Workers"], json!([]));
    let ids: Vec<&str> =
        v["NetworkInterfaces"].as_array().unwrap().iter().map(|e| e["NetworkInterfaceId"].as_str().unwrap()).collect();
    assert_eq!(ids, [daemon::ENI_A, daemon::ENI_B]);
    let out = d.cli(&["stats", "--output", "table"]);
    assert_eq!(out.status, 0, "{out:?}");
}
