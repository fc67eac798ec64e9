//! `AfXdpIo` against a real veth pair: frames sent on one end come back on the other
//! byte for byte (also when sent from an offset), frames are recycled rather than
//! leaked, setup errors are errors, and dropping the port detaches its XDP programs.
//!
//! Needs root; skips with a message otherwise, or when VGX_SKIP_NETNS_TESTS is set.
//! Works in its own namespace `vgx-u<pid>`, deleted when the test ends.

use std::{
    process::Command,
    time::{Duration, Instant},
};

use dataplane::port::{
    afxdp::{AfXdpConfig, AfXdpError, AfXdpIo, Attached, PortSpec, XdpMode},
    FrameHandle, Io, RxFrame,
};
use perf::netns::NetnsGuard;

fn skip_reason() -> Option<&'static str> {
    if std::env::var_os("VGX_SKIP_NETNS_TESTS").is_some() {
        return Some("VGX_SKIP_NETNS_TESTS is set");
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Some("needs root (network namespaces, XDP programs, AF_XDP sockets)");
    }
    None
}

fn ip(args: &[&str]) -> bool {
    Command::new("ip").args(args).status().is_ok_and(|s| s.success())
}

/// A namespace with one veth pair, `<ns>a` and `<ns>b`, deleted on drop.
struct Pair {
    ns: String,
}

impl Pair {
    fn new() -> Pair {
        let ns = format!("vgx-u{}", std::process::id() % 100_000);
        if std::path::Path::new("/run/netns").join(&ns).exists() {
            // Left by a killed run with the same pid.
            let _ = Command::new("ip").args(["netns", "del", &ns]).status();
        }
        assert!(ip(&["netns", "add", &ns]), "ip netns add {ns}");
        let pair = Pair { ns };
        let (a, b) = (pair.dev("a"), pair.dev("b"));
        let ns = pair.ns.as_str();
        assert!(ip(&["link", "add", &a, "netns", ns, "type", "veth", "peer", "name", &b, "netns", ns]));
        assert!(ip(&["-n", ns, "link", "set", &a, "up"]));
        assert!(ip(&["-n", ns, "link", "set", &b, "up"]));
        pair
    }

    fn dev(&self, end: &str) -> String {
        format!("{}{end}", self.ns)
    }

    fn has_xdp(&self, end: &str) -> bool {
        let out = Command::new("ip")
            .args(["-n", &self.ns, "link", "show", "dev", &self.dev(end)])
            .output()
            .expect("ip link show");
        String::from_utf8_lossy(&out.stdout).contains("xdp")
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).status();
    }
}

const MARK: &[u8; 8] = b"vgx-test";

/// A broadcast frame with an unused ethertype, `MARK`, a number and filler.
fn frame(n: u32, len: usize) -> Vec<u8> {
    let mut f = vec![0u8; len];
    f[..6].copy_from_slice(&[0xff; 6]);
    f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
    f[12..14].copy_from_slice(&0x88b5u16.to_be_bytes()); // local experimental
    f[14..22].copy_from_slice(MARK);
    f[22..26].copy_from_slice(&n.to_be_bytes());
    for (i, b) in f[26..].iter_mut().enumerate() {
        *b = (i as u32 ^ n) as u8;
    }
    f
}

fn send(io: &mut AfXdpIo, port: u16, bytes: &[u8]) {
    let h = io.alloc().expect("a free frame");
    io.buffer(h)[..bytes.len()].copy_from_slice(bytes);
    io.tx(port, h, 0, bytes.len());
}

/// Receives until `want` of our frames arrived (others, such as IPv6 chatter, are
/// released); returns them, still owned, with their port.
fn receive(io: &mut AfXdpIo, want: usize) -> Vec<RxFrame> {
    let mut ours = Vec::new();
    let mut batch = Vec::with_capacity(64);
    let deadline = Instant::now() + Duration::from_secs(5);
    while ours.len() < want {
        assert!(Instant::now() < deadline, "only {} of {want} frames arrived", ours.len());
        io.flush();
        batch.clear();
        if io.rx(&mut batch, 64) == 0 {
            io.wait_readable(Duration::from_millis(10)).unwrap();
            continue;
        }
        for f in &batch {
            if io.buffer(f.handle)[14..22] == MARK[..] {
                ours.push(*f);
            } else {
                io.release(f.handle);
            }
        }
    }
    ours
}

fn config() -> AfXdpConfig {
    AfXdpConfig { mode: XdpMode::Skb, ring_size: 256, busy_retries: 1, ..AfXdpConfig::default() }
}

#[test]
fn afxdp_io_on_a_veth_pair() {
    if let Some(why) = skip_reason() {
        eprintln!("skipping the AfXdpIo veth test: {why}");
        return;
    }
    let pair = Pair::new();
    let _ns = NetnsGuard::enter(&pair.ns).expect("enter the test namespace");
    let (a, b) = (pair.dev("a"), pair.dev("b"));

    match AfXdpIo::new(&config(), &[PortSpec::new(0, "vgx-no-such-if", 0)]) {
        Err(AfXdpError::NoSuchInterface(n)) => assert_eq!(n, "vgx-no-such-if"),
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("bound a missing interface"),
    }

    let ports = [PortSpec::new(0, &a, 0), PortSpec::new(1, &b, 0)];
    let mut io = AfXdpIo::new(&config(), &ports).expect("bind both ends");
    let report = io.report().clone();
    println!("{report}");
    assert_eq!(report.sockets.len(), 2);
    for s in &report.sockets {
        assert_eq!(s.attached, Attached::Skb);
        assert!(!s.zero_copy, "veth has no zero-copy");
        assert!(s.prog_id != 0);
    }
    assert!(pair.has_xdp("a") && pair.has_xdp("b"));

    // The queue is taken: a clear error, after the configured retry.
    match AfXdpIo::new(&config(), &[PortSpec::new(0, &a, 0)]) {
        Err(e @ AfXdpError::Socket { .. }) => println!("second bind: {e}"),
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("bound a queue twice"),
    }

    // Byte for byte from a to b.
    let sent = frame(1, 300);
    send(&mut io, 0, &sent);
    let got = receive(&mut io, 1);
    assert_eq!(got[0].port, 1);
    assert_eq!(got[0].len, sent.len());
    assert_eq!(io.buffer(got[0].handle)[..sent.len()], sent[..]);

    // Forwarded from an offset, as after stripping a VLAN tag: the frame is moved.
    let mut shifted = vec![0u8; 4];
    shifted.extend_from_slice(&frame(2, 200));
    let h: FrameHandle = got[0].handle;
    io.buffer(h)[..shifted.len()].copy_from_slice(&shifted);
    io.tx(0, h, 4, 200);
    let got = receive(&mut io, 1);
    assert_eq!(io.buffer(got[0].handle)[..200], shifted[4..]);
    io.release(got[0].handle);
    // A handle given back is refused, not a window into a frame the kernel now has.
    let stale = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| io.buffer(got[0].handle).len()));
    assert!(stale.is_err(), "a released handle still gave a buffer");

    // Many times the UMEM's frames, both ways: nothing leaks.
    let frames = io.report().frames as usize;
    let mut n = 0u32;
    while (n as usize) < 3 * frames {
        for _ in 0..128 {
            n += 1;
            send(&mut io, (n % 2) as u16, &frame(n, 60 + (n as usize % 1400)));
        }
        for f in receive(&mut io, 128) {
            assert_eq!(f.port as u32, 1 - (u32::from_be_bytes(io.buffer(f.handle)[22..26].try_into().unwrap()) % 2));
            io.release(f.handle);
        }
    }
    let c = io.counters();
    assert_eq!(c.tx_ring_full, 0);
    assert!(c.tx_frames >= n as u64);

    drop(io);
    assert!(!pair.has_xdp("a") && !pair.has_xdp("b"), "XDP programs left behind");

    // Someone else's XDP program is reported, not replaced.
    if let Some(obj) = pass_program() {
        assert!(ip(&["link", "set", "dev", &a, "xdpgeneric", "obj", obj.to_str().unwrap(), "sec", "xdp"]));
        match AfXdpIo::new(&config(), &[PortSpec::new(0, &a, 0)]) {
            Err(e @ AfXdpError::ForeignXdpProgram { .. }) => println!("{e}"),
            Err(e) => panic!("wrong error: {e}"),
            Ok(_) => panic!("took over a foreign XDP program"),
        }
        assert!(ip(&["link", "set", "dev", &a, "xdpgeneric", "off"]));
    } else {
        eprintln!("no clang: skipping the foreign-program case");
    }
}

/// A one-line XDP_PASS program compiled with clang, if clang can target BPF.
fn pass_program() -> Option<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("vgx-u{}", std::process::id()));
    std::fs::create_dir_all(&dir).ok()?;
    let src = dir.join("pass.c");
    let obj = dir.join("pass.o");
    std::fs::write(
        &src,
        "__attribute__((section(\"xdp\"), used)) int vgx_pass(void *ctx) { return 2; }\n\
         char _license[] __attribute__((section(\"license\"), used)) = \"GPL\";\n",
    )
    .ok()?;
    let ok = Command::new("clang")
        .args(["-O2", "-target", "bpf", "-c"])
        .arg(&src)
        .arg("-o")
        .arg(&obj)
        .status()
        .is_ok_and(|s| s.success());
    ok.then_some(obj)
}
