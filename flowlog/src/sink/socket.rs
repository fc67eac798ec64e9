//! Records as lines to a Unix or TCP socket, for collectors that listen (Vector,
//! Fluent Bit, Logstash, a SIEM's syslog-less TCP input).
//!
//! The caller is never held up by the reader: connecting and sending are
//! non-blocking, and lines wait in a bounded buffer; when it is full, new records are
//! dropped and counted. A lost connection is retried with exponential backoff on the
//! monotonic clock (reconnecting is about the live network, not the records' time),
//! and a line cut by it is dropped whole rather than sent torn to the next
//! connection. Sends never raise SIGPIPE.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use socket2::{Domain, SockAddr, Socket, Type};

use super::{Sink, SinkStats};
use crate::format::LogFormat;
use crate::record::FlowRecord;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SocketTarget {
    Unix(PathBuf),
    Tcp(SocketAddr),
}

impl SocketTarget {
    /// `unix:/path/to.sock` or `tcp:127.0.0.1:PORT` (`tcp:[::1]:PORT` for IPv6).
    pub fn parse(s: &str) -> Result<Self, SocketTargetError> {
        let err = || SocketTargetError(s.to_owned());
        if let Some(path) = s.strip_prefix("unix:") {
            if path.is_empty() {
                return Err(err());
            }
            Ok(SocketTarget::Unix(PathBuf::from(path)))
        } else if let Some(addr) = s.strip_prefix("tcp:") {
            addr.parse().map(SocketTarget::Tcp).map_err(|_| err())
        } else {
            Err(err())
        }
    }
}

impl fmt::Display for SocketTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SocketTarget::Unix(p) => write!(f, "unix:{}", p.display()),
            SocketTarget::Tcp(a) => write!(f, "tcp:{a}"),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SocketTargetError(pub String);

impl fmt::Display for SocketTargetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Invalid socket `{}`: expected unix:/PATH or tcp:IP:PORT", self.0)
    }
}

impl std::error::Error for SocketTargetError {}

#[derive(Clone, Debug)]
pub struct SocketConfig {
    pub target: SocketTarget,
    pub format: LogFormat,
    /// Bytes of lines held while the reader is slow or away.
    pub buffer_bytes: usize,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// A connection not established after this is given up (and retried later).
    pub connect_timeout: Duration,
    /// How long `close()` may block to send what is still buffered.
    pub close_timeout: Duration,
}

impl SocketConfig {
    pub fn new(target: SocketTarget) -> Self {
        SocketConfig {
            target,
            format: LogFormat::default(),
            buffer_bytes: 8 * 1024 * 1024,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            close_timeout: Duration::from_secs(1),
        }
    }
}

enum Conn {
    Down,
    /// A non-blocking connect under way.
    Connecting {
        socket: Socket,
        since: Instant,
    },
    Up(Socket),
}

/// Starts a non-blocking connect.
fn start_connect(target: &SocketTarget) -> io::Result<Conn> {
    let (domain, addr) = match target {
        SocketTarget::Unix(p) => (Domain::UNIX, SockAddr::unix(p)?),
        SocketTarget::Tcp(a) => (Domain::for_address(*a), SockAddr::from(*a)),
    };
    let socket = Socket::new(domain, Type::STREAM, None)?;
    socket.set_nonblocking(true)?;
    match socket.connect(&addr) {
        Ok(()) => Ok(Conn::Up(socket)),
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => Ok(Conn::Connecting { socket, since: Instant::now() }),
        // EAGAIN from a Unix listener with a full backlog is a failure to retry too.
        Err(e) => Err(e),
    }
}

/// Whether a connect under way has finished: `Some(Ok)` connected, `Some(Err)` failed.
fn connect_result(socket: &Socket) -> Option<io::Result<()>> {
    match socket.take_error() {
        Ok(Some(e)) | Err(e) => return Some(Err(e)),
        Ok(None) => {}
    }
    match socket.peer_addr() {
        Ok(_) => Some(Ok(())),
        Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => None,
        Err(e) => Some(Err(e)),
    }
}

fn send(socket: &Socket, buf: &[u8]) -> io::Result<usize> {
    socket.send_with_flags(buf, libc::MSG_NOSIGNAL)
}

pub struct SocketSink {
    cfg: SocketConfig,
    conn: Conn,
    /// Lines not yet sent: `buf[head..]`.
    buf: Vec<u8>,
    head: usize,
    /// The last byte sent ended in the middle of a line.
    mid_line: bool,
    next_attempt: Instant,
    backoff: Duration,
    stats: SinkStats,
}

impl SocketSink {
    /// Makes the sink; it connects on first use, so a reader that is not up yet is
    /// no error.
    pub fn new(cfg: SocketConfig) -> Self {
        SocketSink {
            backoff: cfg.initial_backoff,
            cfg,
            conn: Conn::Down,
            buf: Vec::new(),
            head: 0,
            mid_line: false,
            next_attempt: Instant::now(),
            stats: SinkStats::default(),
        }
    }

    pub fn is_connected(&self) -> bool {
        matches!(self.conn, Conn::Up(_))
    }

    /// Bytes waiting to be sent.
    pub fn buffered_bytes(&self) -> usize {
        self.buf.len() - self.head
    }

    fn lost_connection(&mut self) {
        self.conn = Conn::Down;
        self.schedule_retry();
        if self.mid_line {
            // The rest of a torn line would corrupt the first line of the next
            // connection: drop the line.
            let rest = &self.buf[self.head..];
            let skip = rest.iter().position(|&b| b == b'\n').map_or(rest.len(), |p| p + 1);
            self.head += skip;
            self.stats.dropped += 1;
            self.mid_line = false;
        }
    }

    fn schedule_retry(&mut self) {
        self.next_attempt = Instant::now() + self.backoff;
        self.backoff = (self.backoff * 2).min(self.cfg.max_backoff);
    }

    fn sent(&mut self, n: usize) {
        let chunk = &self.buf[self.head..self.head + n];
        self.stats.records += chunk.iter().filter(|&&b| b == b'\n').count() as u64;
        self.stats.bytes += n as u64;
        self.head += n;
        self.mid_line = self.buf[self.head - 1] != b'\n';
    }

    /// Connects if due and sends what the socket takes without blocking.
    fn pump(&mut self) -> io::Result<()> {
        let res = self.try_pump();
        if self.head == self.buf.len() {
            self.buf.clear();
            self.head = 0;
        } else if self.head > self.buf.len() / 2 {
            self.buf.drain(..self.head);
            self.head = 0;
        }
        res
    }

    fn try_pump(&mut self) -> io::Result<()> {
        if self.head == self.buf.len() && !matches!(self.conn, Conn::Connecting { .. }) {
            return Ok(());
        }
        if let Err(e) = self.advance_connect() {
            self.stats.errors += 1;
            self.conn = Conn::Down;
            self.schedule_retry();
            return Err(e);
        }
        while self.head < self.buf.len() {
            let Conn::Up(socket) = &self.conn else {
                return Ok(());
            };
            match send(socket, &self.buf[self.head..]) {
                Ok(0) => {
                    self.stats.errors += 1;
                    self.lost_connection();
                    return Err(io::ErrorKind::WriteZero.into());
                }
                Ok(n) => self.sent(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.stats.errors += 1;
                    self.lost_connection();
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// Moves the connection along: starts a connect when one is due, and notices when
    /// one under way has finished or timed out.
    fn advance_connect(&mut self) -> io::Result<()> {
        let was_up = self.is_connected();
        self.conn = match std::mem::replace(&mut self.conn, Conn::Down) {
            Conn::Down if Instant::now() < self.next_attempt => Conn::Down,
            Conn::Down => start_connect(&self.cfg.target)?,
            Conn::Connecting { socket, since } => match connect_result(&socket) {
                Some(Ok(())) => Conn::Up(socket),
                Some(Err(e)) => return Err(e),
                None if since.elapsed() > self.cfg.connect_timeout => {
                    return Err(io::Error::new(io::ErrorKind::TimedOut, "connect timed out"));
                }
                None => Conn::Connecting { socket, since },
            },
            up @ Conn::Up(_) => up,
        };
        if !was_up && self.is_connected() {
            self.stats.connects += 1;
            self.backoff = self.cfg.initial_backoff;
        }
        Ok(())
    }
}

impl Sink for SocketSink {
    fn write(&mut self, records: &[FlowRecord]) -> io::Result<()> {
        for rec in records {
            let before = self.buf.len();
            self.cfg.format.write_line(rec, &mut self.buf);
            if self.buf.len() - self.head > self.cfg.buffer_bytes {
                self.buf.truncate(before);
                self.stats.dropped += 1;
            }
        }
        self.pump()
    }

    fn rotate_if_due(&mut self, _now_unix: u64) -> io::Result<()> {
        self.pump()
    }

    fn flush(&mut self) -> io::Result<()> {
        self.pump()
    }

    /// Sends what is buffered, blocking up to `close_timeout` (the one call that may
    /// block), then disconnects; whatever could not be sent is dropped.
    fn close(&mut self) -> io::Result<()> {
        let deadline = Instant::now() + self.cfg.close_timeout;
        let mut res = self.pump();
        while self.head < self.buf.len() && Instant::now() < deadline {
            if matches!(self.conn, Conn::Down) && Instant::now() < self.next_attempt {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
            res = self.pump();
        }
        self.conn = Conn::Down;
        let unsent = &self.buf[self.head..];
        let lost = unsent.iter().filter(|&&b| b == b'\n').count() as u64;
        if lost > 0 {
            self.stats.dropped += lost;
            if res.is_ok() {
                res = Err(io::Error::new(io::ErrorKind::TimedOut, format!("{lost} records not sent")));
            }
        }
        self.buf.clear();
        self.head = 0;
        self.mid_line = false;
        res
    }

    fn stats(&self) -> SinkStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata;
    use std::io::{BufRead, BufReader};
    use std::net::TcpListener;
    use std::os::unix::net::UnixListener;

    fn cfg(target: SocketTarget) -> SocketConfig {
        let mut c = SocketConfig::new(target);
        c.initial_backoff = Duration::from_millis(5);
        c
    }

    #[test]
    fn parses_targets() {
        assert_eq!(SocketTarget::parse("unix:/run/x.sock"), Ok(SocketTarget::Unix("/run/x.sock".into())));
        assert_eq!(SocketTarget::parse("tcp:127.0.0.1:9000"), Ok(SocketTarget::Tcp("127.0.0.1:9000".parse().unwrap())));
        assert_eq!(SocketTarget::parse("tcp:[::1]:9000"), Ok(SocketTarget::Tcp("[::1]:9000".parse().unwrap())));
        for bad in ["", "unix:", "tcp:localhost:9000", "tcp:127.0.0.1", "udp:127.0.0.1:9", "/run/x.sock"] {
            let e = SocketTarget::parse(bad).unwrap_err();
            assert!(e.to_string().contains("expected unix:/PATH or tcp:IP:PORT"), "{bad}");
        }
        assert_eq!(SocketTarget::parse("tcp:127.0.0.1:9000").unwrap().to_string(), "tcp:127.0.0.1:9000");
    }

    #[test]
    fn tcp_lines_arrive_whole() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut s = SocketSink::new(cfg(SocketTarget::Tcp(listener.local_addr().unwrap())));
        let recs: Vec<_> = (0..100).map(|i| testdata::record(i, 100, 160)).collect();
        s.write(&recs).unwrap();
        s.close().unwrap();
        let (conn, _) = listener.accept().unwrap();
        let lines: Vec<String> = BufReader::new(conn).lines().map(Result::unwrap).collect();
        let f = LogFormat::default();
        assert_eq!(lines, recs.iter().map(|r| f.line(r)).collect::<Vec<_>>());
        let st = s.stats();
        assert_eq!((st.records, st.connects, st.dropped, st.errors), (100, 1, 0, 0));
    }

    #[test]
    fn buffers_while_away_then_reconnects() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("flow.sock");
        let mut s = SocketSink::new(cfg(SocketTarget::Unix(path.clone())));
        let rec = testdata::record(1, 100, 160);
        // Nobody listens: counted as an error, the record waits in the buffer.
        assert!(s.write(std::slice::from_ref(&rec)).is_err());
        assert_eq!((s.stats().errors, s.stats().dropped), (1, 0));
        assert!(s.buffered_bytes() > 0);

        let listener = UnixListener::bind(&path).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        s.write(std::slice::from_ref(&rec)).unwrap();
        assert!(s.is_connected());
        assert_eq!(s.stats().records, 2);
        let (conn, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(conn);
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        assert_eq!(line.trim_end(), LogFormat::default().line(&rec));

        // The reader goes away; the sink notices on a later write and reconnects to
        // the next listener.
        drop(reader);
        drop(listener);
        std::fs::remove_file(&path).unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while s.is_connected() && Instant::now() < deadline {
            let _ = s.write(std::slice::from_ref(&rec));
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(!s.is_connected());
        let errors = s.stats().errors;
        assert!(errors >= 2);
        let listener = UnixListener::bind(&path).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        while s.buffered_bytes() > 0 && Instant::now() < deadline {
            let _ = s.flush();
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(s.stats().connects, 2);
        let (conn, _) = listener.accept().unwrap();
        s.close().unwrap();
        // Every line that reaches the new connection is whole.
        for l in BufReader::new(conn).lines() {
            assert_eq!(l.unwrap(), LogFormat::default().line(&rec));
        }
    }

    #[test]
    fn a_reader_that_does_not_read_never_blocks_the_writer() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut c = cfg(SocketTarget::Tcp(listener.local_addr().unwrap()));
        c.buffer_bytes = 1 << 20;
        c.close_timeout = Duration::from_millis(50);
        let mut s = SocketSink::new(c);
        let batch: Vec<_> = (0..10_000).map(|i| testdata::record(i, 100, 160)).collect();
        let started = Instant::now();
        for _ in 0..30 {
            s.write(&batch).unwrap();
            std::thread::sleep(Duration::from_millis(1));
        }
        // 300k lines (about 30 MB) cannot all fit in socket buffers plus 1 MiB.
        assert!(started.elapsed() < Duration::from_secs(5));
        let st = s.stats();
        assert!(st.dropped > 0 && st.records > 0, "{st:?}");
        let _ = s.close();
        let st = s.stats();
        assert_eq!(st.records + st.dropped, 300_000);
        drop(listener);
    }

    #[test]
    fn refused_tcp_connects_are_counted() {
        // Bind and drop to find a port nobody listens on.
        let addr = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let mut s = SocketSink::new(cfg(SocketTarget::Tcp(addr)));
        let rec = testdata::record(1, 100, 160);
        let deadline = Instant::now() + Duration::from_secs(5);
        while s.stats().errors == 0 && Instant::now() < deadline {
            let _ = s.write(std::slice::from_ref(&rec));
            std::thread::sleep(Duration::from_millis(2));
        }
        assert!(s.stats().errors >= 1);
        assert!(!s.is_connected());
        assert_eq!(s.stats().records, 0);
    }

    #[test]
    fn overflow_is_dropped_and_counted_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = cfg(SocketTarget::Unix(dir.path().join("nobody.sock")));
        c.initial_backoff = Duration::from_secs(60);
        let line_len = LogFormat::default().line(&testdata::record(1, 100, 160)).len() + 1;
        c.buffer_bytes = line_len * 3;
        let mut s = SocketSink::new(c);
        let recs: Vec<_> = (0..10).map(|_| testdata::record(1, 100, 160)).collect();
        let started = Instant::now();
        let _ = s.write(&recs);
        let _ = s.write(&recs);
        assert!(started.elapsed() < Duration::from_secs(1));
        assert_eq!(s.stats().dropped, 17);
        assert_eq!(s.buffered_bytes(), line_len * 3);
        // Closing with no reader drops what is left.
        assert!(s.close().is_err());
        assert_eq!(s.stats().dropped, 20);
    }
}
