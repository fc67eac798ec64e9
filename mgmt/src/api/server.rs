//! The API's Unix socket: one JSON request and one JSON response per line. Each
//! connection's peer credentials (SO_PEERCRED) decide its role. A connection gets its
//! own thread with read/write timeouts and a request size limit, so a slow or stuck
//! client never blocks another one, and the engine's lock is held only while a
//! request is handled (the dataplane never takes it).

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::io::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use super::group_commit::GroupCommit;
use super::{error_json, Engine, Role};
use crate::error::Ec2Error;

#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub socket: PathBuf,
    /// Members of this group may change the config (root always may).
    pub admin_gid: Option<u32>,
    /// Members of this group may only describe, trace, audit and read stats.
    pub read_only_gid: Option<u32>,
    pub max_request_bytes: usize,
    pub io_timeout: Duration,
    pub max_connections: usize,
}

impl ServerConfig {
    pub fn new(socket: PathBuf) -> ServerConfig {
        ServerConfig {
            socket,
            admin_gid: None,
            read_only_gid: None,
            max_request_bytes: 1 << 20,
            io_timeout: Duration::from_secs(30),
            max_connections: 64,
        }
    }
}

/// The peer's uid, pid and every group it is in.
#[derive(Clone, Debug)]
pub struct Peer {
    pub uid: u32,
    pub pid: i32,
    pub groups: Vec<u32>,
}

fn peer_of(s: &UnixStream) -> io::Result<Peer> {
    let mut cred = libc::ucred { pid: 0, uid: 0, gid: 0 };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `cred` and `len` are valid for writes of the sizes passed, and the fd is
    // a live socket owned by `s` for the duration of the call.
    let rc = unsafe {
        libc::getsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            &mut cred as *mut libc::ucred as *mut libc::c_void,
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    let mut groups = vec![cred.gid];
    // Supplementary groups are not in SO_PEERCRED; the kernel lists them in /proc.
    if let Ok(status) = std::fs::read_to_string(format!("/proc/{}/status", cred.pid)) {
        if let Some(line) = status.lines().find(|l| l.starts_with("Groups:")) {
            groups.extend(line["Groups:".len()..].split_whitespace().filter_map(|g| g.parse::<u32>().ok()));
        }
    }
    Ok(Peer { uid: cred.uid, pid: cred.pid, groups })
}

pub fn role_of(cfg: &ServerConfig, peer: &Peer) -> Option<Role> {
    if peer.uid == 0 || cfg.admin_gid.is_some_and(|g| peer.groups.contains(&g)) {
        Some(Role::Admin)
    } else if cfg.read_only_gid.is_some_and(|g| peer.groups.contains(&g)) {
        Some(Role::ReadOnly)
    } else {
        None
    }
}

/// Binds the socket (0660, group = the admin group if set) and serves it on a
/// thread until `stop` is set.
pub fn spawn(
    cfg: ServerConfig,
    engine: Arc<Mutex<Engine>>,
    commits: Arc<GroupCommit>,
    stop: Arc<AtomicBool>,
) -> io::Result<JoinHandle<()>> {
    if let Some(dir) = cfg.socket.parent() {
        std::fs::create_dir_all(dir)?;
    }
    match std::fs::remove_file(&cfg.socket) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let listener = UnixListener::bind(&cfg.socket)?;
    std::fs::set_permissions(&cfg.socket, std::fs::Permissions::from_mode(0o660))?;
    if let Some(gid) = cfg.admin_gid.or(cfg.read_only_gid) {
        std::os::unix::fs::chown(&cfg.socket, Some(0), Some(gid))?;
    }
    listener.set_nonblocking(true)?;
    let active = Arc::new(AtomicUsize::new(0));
    std::thread::Builder::new().name("vpcgate-api".into()).spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            match listener.accept() {
                Ok((stream, _)) => {
                    let (cfg, engine, commits, active) = (cfg.clone(), engine.clone(), commits.clone(), active.clone());
                    if active.fetch_add(1, Ordering::SeqCst) >= cfg.max_connections {
                        active.fetch_sub(1, Ordering::SeqCst);
                        refuse(stream, &Ec2Error::new("RequestLimitExceeded", "Too many API connections; try again."));
                        continue;
                    }
                    let spawned = std::thread::Builder::new().name("vpcgate-api-conn".into()).spawn(move || {
                        below_workers();
                        if let Err(e) = serve_connection(stream, &cfg, &engine, &commits) {
                            log::debug!("API connection ended: {e}");
                        }
                        active.fetch_sub(1, Ordering::SeqCst);
                    });
                    if spawned.is_err() {
                        log::error!("could not start an API connection thread");
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::sleep(Duration::from_millis(20)),
                Err(e) => {
                    log::error!("API accept failed: {e}");
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
    })
}

/// Requests (validation, saves, compiles) yield to the workers: a worker woken to
/// pick up new tables, or by traffic, must not wait for the scheduler to finish
/// validating the next request on its core.
const API_NICE: libc::c_int = 5;

fn below_workers() {
    // SAFETY: gettid and setpriority have no memory effects; PRIO_PROCESS with a
    // thread id changes this thread's nice value only.
    let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, API_NICE) };
    if rc != 0 {
        log::debug!("API thread priority unchanged: {}", io::Error::last_os_error());
    }
}

fn refuse(mut stream: UnixStream, e: &Ec2Error) {
    let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
    let _ = writeln!(stream, "{}", error_json(e));
}

fn serve_connection(
    stream: UnixStream,
    cfg: &ServerConfig,
    engine: &Mutex<Engine>,
    commits: &GroupCommit,
) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(cfg.io_timeout))?;
    stream.set_write_timeout(Some(cfg.io_timeout))?;
    let peer = peer_of(&stream)?;
    let Some(role) = role_of(cfg, &peer) else {
        refuse(
            stream,
            &Ec2Error::new(
                "UnauthorizedOperation",
                format!("uid {} is neither root nor in the admin or read-only group of this appliance", peer.uid),
            ),
        );
        return Ok(());
    };
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    let mut line = Vec::new();
    loop {
        line.clear();
        // Read one line, but never more than the limit (plus one byte to notice).
        let n = (&mut reader).take(cfg.max_request_bytes as u64 + 1).read_until(b'\n', &mut line)?;
        if n == 0 {
            return Ok(());
        }
        if line.len() > cfg.max_request_bytes {
            let e = Ec2Error::new(
                "InvalidParameterValue",
                format!("The request is larger than {} bytes", cfg.max_request_bytes),
            );
            writeln!(writer, "{}", error_json(&e))?;
            return Ok(());
        }
        let text = String::from_utf8_lossy(&line);
        if text.trim().is_empty() {
            continue;
        }
        let (response, seq) = {
            let mut engine = engine.lock().unwrap_or_else(|p| p.into_inner());
            let response = engine.handle_line(text.trim(), role);
            (response, engine.staged())
        };
        // The answer waits until what it says (and everything it saw) is durable.
        let response = match commits.settle(engine, seq) {
            Ok(()) => response,
            Err(e) => error_json(&e).to_string(),
        };
        writer.write_all(response.as_bytes())?;
        writer.write_all(b"\n")?;
    }
}
