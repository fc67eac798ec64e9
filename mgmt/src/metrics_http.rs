//! The optional Prometheus listener: `Appliance.Api.MetricsListen` (a loopback address
//! only) serves `GET /metrics` with the text exposition format of `DescribeStats`, the
//! same text `vpcgate stats --prometheus` prints.
//!
//! One small thread, std only: it accepts one connection at a time, reads at most
//! [`MAX_REQUEST_BYTES`] of request head within [`REQUEST_DEADLINE`], answers and closes
//! the connection. It never touches the dataplane: it copies the stats board the way
//! `DescribeStats` does (workers publish with `try_lock` and skip a turn rather than
//! wait for it). There is no authentication: anyone on this machine can read the
//! counters, which is why only loopback addresses are accepted.

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::daemon::Shared;
use crate::error::{invalid, Result};
use crate::model::ApiConfig;

/// The most request head (request line and headers) read from one connection.
pub const MAX_REQUEST_BYTES: usize = 8192;
/// The time a client has to send its request head.
pub const REQUEST_DEADLINE: Duration = Duration::from_secs(2);
/// The time the answer may take to be written.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Parses `MetricsListen`: `IP:PORT` (`[IPv6]:PORT`) or `localhost:PORT`, loopback only.
pub fn parse_listen(s: &str) -> std::result::Result<SocketAddr, String> {
    let addr = match s.strip_prefix("localhost:") {
        Some(port) => port.parse::<u16>().ok().map(|p| SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), p)),
        None => s.parse::<SocketAddr>().ok(),
    };
    let Some(addr) = addr else {
        return Err(format!(
            "Invalid value '{s}' for MetricsListen: expected a loopback address and port, like 127.0.0.1:9464 or [::1]:9464"
        ));
    };
    if !addr.ip().is_loopback() {
        return Err(format!(
            "Invalid value '{s}' for MetricsListen: {} is not a loopback address. The metrics listener has no \
             authentication and serves this machine only (127.0.0.0/8 or ::1); to scrape from elsewhere, put a \
             proxy with authentication in front of it",
            addr.ip()
        ));
    }
    Ok(addr)
}

/// Validation of the config's `Appliance.Api.MetricsListen`.
pub fn check_config(api: &ApiConfig) -> Result<()> {
    match &api.metrics_listen {
        Some(s) => parse_listen(s).map(|_| ()).map_err(|e| invalid(e).at("Appliance.Api.MetricsListen")),
        None => Ok(()),
    }
}

/// The running listener.
pub struct MetricsServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl MetricsServer {
    /// The address bound (the port chosen by the kernel when the config said 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting and waits for the thread (it is woken by a connection to itself).
    pub fn shutdown(self) {
        self.stop.store(true, Ordering::SeqCst);
        if TcpStream::connect_timeout(&self.addr, Duration::from_secs(1)).is_ok() {
            let _ = self.thread.join();
        }
    }
}

/// Starts the listener the config asks for, if any. A listener that cannot bind (the
/// port is taken) is logged and left out: the appliance keeps forwarding, and the
/// scraper sees the target down.
pub fn start(api: &ApiConfig, shared: Arc<Shared>) -> Option<MetricsServer> {
    let listen = api.metrics_listen.as_deref()?;
    match parse_listen(listen).and_then(|addr| spawn(addr, shared).map_err(|e| e.to_string())) {
        Ok(m) => {
            log::info!("Prometheus metrics on http://{}/metrics", m.local_addr());
            Some(m)
        }
        Err(e) => {
            log::error!("Appliance.Api.MetricsListen {listen}: {e}; running without the metrics listener");
            None
        }
    }
}

/// Binds `addr` and serves `/metrics` from `shared`'s stats board.
pub fn spawn(addr: SocketAddr, shared: Arc<Shared>) -> io::Result<MetricsServer> {
    let listener = TcpListener::bind(addr)?;
    let addr = listener.local_addr()?;
    let stop = Arc::new(AtomicBool::new(false));
    let stop_thread = stop.clone();
    let thread = std::thread::Builder::new().name("vpcgate-metrics".into()).spawn(move || {
        for conn in listener.incoming() {
            if stop_thread.load(Ordering::SeqCst) {
                break;
            }
            match conn {
                Ok(stream) => {
                    if let Err(e) = serve(stream, &|| crate::stats::prometheus(&crate::stats::describe(&shared))) {
                        log::debug!("metrics: {e}");
                    }
                }
                Err(e) => {
                    // Out of file descriptors and the like: do not spin.
                    log::warn!("metrics: accept: {e}");
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
    })?;
    Ok(MetricsServer { addr, stop, thread })
}

/// What a request head asked for.
#[derive(Debug, PartialEq, Eq)]
enum Head {
    Complete { method: String, target: String },
    TooLarge,
    Malformed,
}

/// Reads the request head within the deadline and the size limit.
fn read_head(stream: &mut TcpStream) -> io::Result<Head> {
    let deadline = Instant::now() + REQUEST_DEADLINE;
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    loop {
        if let Some(end) = head_end(&buf) {
            return Ok(parse_head(&buf[..end]));
        }
        if buf.len() >= MAX_REQUEST_BYTES {
            return Ok(Head::TooLarge);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "request head not received in time"));
        }
        stream.set_read_timeout(Some(left))?;
        let want = chunk.len().min(MAX_REQUEST_BYTES - buf.len());
        match stream.read(&mut chunk[..want]) {
            Ok(0) => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed before a request")),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

fn head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").or_else(|| buf.windows(2).position(|w| w == b"\n\n"))
}

fn parse_head(head: &[u8]) -> Head {
    let Ok(text) = std::str::from_utf8(head) else { return Head::Malformed };
    let line = text.lines().next().unwrap_or_default();
    let mut parts = line.split(' ');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(method), Some(target), Some(version), None)
            if !method.is_empty() && target.starts_with('/') && version.starts_with("HTTP/1.") =>
        {
            Head::Complete { method: method.to_string(), target: target.to_string() }
        }
        _ => Head::Malformed,
    }
}

/// Answers one connection. `metrics` renders the exposition text.
fn serve(mut stream: TcpStream, metrics: &dyn Fn() -> String) -> io::Result<()> {
    stream.set_write_timeout(Some(WRITE_TIMEOUT))?;
    let head = match read_head(&mut stream) {
        Ok(h) => h,
        Err(e) if e.kind() == io::ErrorKind::TimedOut || e.kind() == io::ErrorKind::WouldBlock => {
            let _ = respond(&mut stream, "408 Request Timeout", "text/plain", b"request timeout\n", true, &[]);
            return Err(e);
        }
        Err(e) => return Err(e),
    };
    let (method, target) = match head {
        Head::Complete { method, target } => (method, target),
        Head::TooLarge => {
            return respond(
                &mut stream,
                "431 Request Header Fields Too Large",
                "text/plain",
                b"request too large\n",
                true,
                &[],
            )
        }
        Head::Malformed => return respond(&mut stream, "400 Bad Request", "text/plain", b"bad request\n", true, &[]),
    };
    let path = target.split('?').next().unwrap_or_default();
    let with_body = method != "HEAD";
    if method != "GET" && method != "HEAD" {
        return respond(
            &mut stream,
            "405 Method Not Allowed",
            "text/plain",
            b"only GET and HEAD\n",
            true,
            &["Allow: GET, HEAD"],
        );
    }
    match path {
        "/metrics" => respond(&mut stream, "200 OK", CONTENT_TYPE, metrics().as_bytes(), with_body, &[]),
        "/" => respond(
            &mut stream,
            "200 OK",
            "text/plain; charset=utf-8",
            b"vpcgated: metrics at /metrics\n",
            with_body,
            &[],
        ),
        _ => respond(&mut stream, "404 Not Found", "text/plain", b"not found: try /metrics\n", with_body, &[]),
    }
}

fn respond(
    stream: &mut TcpStream,
    status: &str,
    content_type: &str,
    body: &[u8],
    with_body: bool,
    extra: &[&str],
) -> io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for h in extra {
        head.push_str(h);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    if with_body {
        out.extend_from_slice(body);
    }
    stream.write_all(&out)?;
    stream.flush()?;
    let _ = stream.shutdown(std::net::Shutdown::Write);
    linger(stream);
    Ok(())
}

/// Reads what the client still sends (a refused request's rest) for a moment before
/// closing: closing with unread data resets the connection, and the client could
/// lose the answer.
fn linger(stream: &mut TcpStream) {
    let deadline = Instant::now() + Duration::from_millis(250);
    let mut sink = [0u8; 4096];
    let mut left: usize = 64 * 1024;
    while left > 0 {
        let wait = deadline.saturating_duration_since(Instant::now());
        if wait.is_zero() || stream.set_read_timeout(Some(wait)).is_err() {
            return;
        }
        match stream.read(&mut sink) {
            Ok(0) | Err(_) => return,
            Ok(n) => left = left.saturating_sub(n),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses() {
        assert_eq!(parse_listen("127.0.0.1:9464").unwrap(), "127.0.0.1:9464".parse().unwrap());
        assert_eq!(parse_listen("127.8.9.10:1").unwrap(), "127.8.9.10:1".parse().unwrap());
        assert_eq!(parse_listen("[::1]:9464").unwrap(), "[::1]:9464".parse().unwrap());
        assert_eq!(parse_listen("localhost:9464").unwrap(), "127.0.0.1:9464".parse().unwrap());
        for bad in ["0.0.0.0:9464", "[::]:9464", "10.0.0.1:9464", "[::ffff:127.0.0.1]:9464", "192.168.1.1:80"] {
            let e = parse_listen(bad).unwrap_err();
            assert!(e.contains("not a loopback address"), "{bad}: {e}");
        }
        for bad in ["127.0.0.1", "9464", "localhost", "localhost:99999", "host:9464", ""] {
            let e = parse_listen(bad).unwrap_err();
            assert!(e.contains("expected a loopback address and port"), "{bad}: {e}");
        }
    }

    #[test]
    fn heads() {
        assert_eq!(
            parse_head(b"GET /metrics?x=1 HTTP/1.1\r\nHost: a"),
            Head::Complete { method: "GET".into(), target: "/metrics?x=1".into() }
        );
        assert_eq!(parse_head(b"GET /metrics"), Head::Malformed);
        assert_eq!(parse_head(b"GET metrics HTTP/1.1"), Head::Malformed);
        assert_eq!(parse_head(b"\xff\xfe HTTP/1.1"), Head::Malformed);
        assert_eq!(head_end(b"GET / HTTP/1.0\r\n\r\n"), Some(14));
        assert_eq!(head_end(b"GET / HTTP/1.0\n\n"), Some(14));
        assert_eq!(head_end(b"GET / HTTP/1.0\r\n"), None);
    }
}
