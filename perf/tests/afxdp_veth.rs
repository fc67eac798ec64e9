//! End to end over real veths: xdpfwd between two namespaces carries ping and a TCP
//! connection, then xdpgen drives it and reports Mpps.
//!
//! Needs root (network namespaces, XDP programs, AF_XDP); skips with a message
//! otherwise, or when VGX_SKIP_NETNS_TESTS is set. Creates its own namespaces (prefix
//! `vgx-t<pid>-`, addresses in 198.18.0.0/15) with scripts/netns/topo.sh and removes
//! them when done, whether the test passes or panics.

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

use perf::netns::NetnsGuard;

fn skip_reason() -> Option<String> {
    if std::env::var_os("VGX_SKIP_NETNS_TESTS").is_some() {
        return Some("VGX_SKIP_NETNS_TESTS is set".into());
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Some("needs root (network namespaces, XDP programs, AF_XDP sockets)".into());
    }
    None
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/netns/topo.sh")
}

/// The namespaces and veths of one test; removed on drop.
struct Topology {
    prefix: String,
}

impl Topology {
    fn up(prefix: &str) -> Topology {
        // Whatever a killed earlier run with this pid left behind goes first.
        let _ = Command::new(script()).args(["down", "--prefix", prefix]).status();
        let t = Topology { prefix: prefix.to_string() };
        let out = Command::new(script()).args(["up", "--prefix", prefix, "--tx-off"]).output().expect("run topo.sh");
        assert!(out.status.success(), "topo.sh up failed: {}", String::from_utf8_lossy(&out.stderr));
        t
    }

    fn name(&self, suffix: &str) -> String {
        format!("{}{suffix}", self.prefix)
    }

    fn in_ns(&self, ns: &str, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name(ns), program]);
        c
    }

    fn has_xdp(&self, ns: &str, dev: &str) -> bool {
        let out = Command::new("ip")
            .args(["-n", &self.name(ns), "link", "show", "dev", &self.name(dev)])
            .output()
            .expect("ip link show");
        String::from_utf8_lossy(&out.stdout).contains("xdp")
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        let _ = Command::new(script()).args(["down", "--prefix", &self.prefix]).status();
    }
}

/// xdpfwd, stopped with SIGTERM (so it detaches cleanly) when dropped.
struct Forwarder {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Forwarder {
    fn start(topo: &Topology, cores: &[usize]) -> Forwarder {
        let core = *cores.last().expect("a core");
        let mut child = topo
            .in_ns("sw", env!("CARGO_BIN_EXE_xdpfwd"))
            .args(["--a", &topo.name("sa"), "--b", &topo.name("sb")])
            .args(["--cores", &core.to_string()])
            .stdout(Stdio::piped())
            .spawn()
            .expect("start xdpfwd");
        let (tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().expect("piped");
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                println!("xdpfwd| {line}");
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut fwd = Forwarder { child, lines };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match fwd.lines.recv_timeout(left) {
                Ok(l) if l == "xdpfwd: ready" => return fwd,
                Ok(_) => {}
                Err(_) => {
                    let status = fwd.child.try_wait().ok().flatten();
                    panic!("xdpfwd did not get ready (exit: {status:?})");
                }
            }
        }
    }

    /// Stops it and returns its closing JSON line.
    fn stop(mut self) -> serde_json::Value {
        self.terminate();
        let status = self.child.wait().expect("wait for xdpfwd");
        assert!(status.success(), "xdpfwd exited with {status}");
        let last = self.lines.iter().last().expect("a summary line");
        serde_json::from_str(&last).expect("summary is JSON")
    }

    fn terminate(&mut self) {
        // `ip netns exec` execs the program, so this pid is xdpfwd itself.
        // SAFETY: kill(2) on the pid of our own child, which has not been reaped.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.terminate();
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                thread::sleep(Duration::from_millis(50));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A TCP echo through the forwarder: a listener in h2, a client in h1, 1 MiB there
/// and back, each side in its namespace on its own thread.
fn tcp_echo(topo: &Topology) {
    let (ns_h1, ns_h2) = (topo.name("h1"), topo.name("h2"));
    let (port_tx, port_rx) = mpsc::channel();
    let server = thread::spawn(move || {
        let listener = {
            let _ns = NetnsGuard::enter(&ns_h2).expect("enter h2");
            TcpListener::bind("198.18.0.2:0").expect("listen in h2")
        };
        port_tx.send(listener.local_addr().unwrap().port()).unwrap();
        let (mut s, _) = listener.accept().expect("accept");
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut buf = [0u8; 16384];
        loop {
            let n = s.read(&mut buf).expect("server read");
            if n == 0 {
                break;
            }
            s.write_all(&buf[..n]).expect("server write");
        }
    });
    let port = port_rx.recv().unwrap();
    let data: Vec<u8> = (0..1 << 20).map(|i: u32| (i * 7 + i / 251) as u8).collect();
    let mut s = {
        let _ns = NetnsGuard::enter(&ns_h1).expect("enter h1");
        let addr: SocketAddr = format!("198.18.0.2:{port}").parse().unwrap();
        TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect through xdpfwd")
    };
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let reader = s.try_clone().unwrap();
    let expected = data.len();
    let echo = thread::spawn(move || {
        let mut got = Vec::with_capacity(expected);
        reader.take(expected as u64).read_to_end(&mut got).expect("client read");
        got
    });
    s.write_all(&data).expect("client write");
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let got = echo.join().unwrap();
    server.join().unwrap();
    assert!(got == data, "echo differs ({} of {} bytes back)", got.len(), data.len());
}

#[test]
fn xdpfwd_carries_ping_and_tcp_and_xdpgen_measures_it() {
    if let Some(why) = skip_reason() {
        eprintln!("skipping the AF_XDP veth test: {why}");
        return;
    }
    let cores: Vec<usize> = core_affinity::get_core_ids().unwrap_or_default().iter().map(|c| c.id).collect();
    let topo = Topology::up(&format!("vgx-t{}-", std::process::id() % 100_000));

    // Nothing passes before the forwarder runs: the switch namespace does not route.
    let ping = |args: &[&str]| {
        topo.in_ns("h1", "ping")
            .args(args)
            .arg("198.18.0.2")
            .stdout(Stdio::null())
            .status()
            .expect("run ping")
            .success()
    };
    assert!(!ping(&["-c", "1", "-W", "1"]), "ping passed without a forwarder");
    // Forget the failed ARP resolution, or the next pings wait for it to time out.
    for ns in ["h1", "h2"] {
        let _ = Command::new("ip").args(["-n", &topo.name(ns), "neigh", "flush", "all"]).status();
    }

    let fwd = Forwarder::start(&topo, &cores);
    assert!(topo.has_xdp("sw", "sa") && topo.has_xdp("sw", "sb"));
    // Three replies, within ten seconds.
    assert!(ping(&["-c", "3", "-i", "0.2", "-w", "10"]), "ping through xdpfwd failed");
    tcp_echo(&topo);

    let out = topo
        .in_ns("h1", env!("CARGO_BIN_EXE_xdpgen"))
        .args(["--tx", &topo.name("h1"), "--rx", &topo.name("h2")])
        .args(["--rx-netns", &topo.name("h2"), "--duration", "3"])
        .args(["--core", &cores[0].to_string()])
        .output()
        .expect("run xdpgen");
    assert!(out.status.success(), "xdpgen failed: {}", String::from_utf8_lossy(&out.stderr));
    let result: serde_json::Value = serde_json::from_slice(&out.stdout).expect("xdpgen prints JSON");
    println!("xdpgen| {result}");
    let received = result["received"].as_u64().unwrap();
    assert!(result["sent"].as_u64().unwrap() > 0);
    assert!(received > 0, "nothing arrived through xdpfwd: {result}");
    assert!(!topo.has_xdp("h2", "h2"), "xdpgen left its XDP program");
    println!(
        "xdpfwd delivered {} Mpps of 64 B frames ({} build; use --release for numbers)",
        result["mpps"],
        if cfg!(debug_assertions) { "debug" } else { "release" }
    );

    let summary = fwd.stop();
    assert!(summary["rx"].as_u64().unwrap() >= received);
    assert!(!topo.has_xdp("sw", "sa") && !topo.has_xdp("sw", "sb"), "xdpfwd left XDP programs attached");
}
