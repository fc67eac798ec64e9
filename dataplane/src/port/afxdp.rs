//! AF_XDP port: the sockets one worker serves, over one UMEM they all share.
//!
//! Every socket (one per interface and queue the worker serves) is bound to the same
//! UMEM, each with its own fill and completion ring, so forwarding a frame from port A
//! to port B moves a descriptor and copies nothing in user space. A frame is named by
//! its index in the UMEM ([`FrameHandle`]); frames that are dropped or whose
//! transmission completed go back to one free pool, which tops up the fill rings once
//! per batch.
//!
//! Hot path rules: no allocation and no system call per packet. `rx` only reads rings;
//! `tx` only queues; `flush` submits, wakes the kernel at most once per socket that has
//! something to send (and once per fill ring that asks for it, `need_wakeup`), collects
//! completions and refills.
//!
//! Setup (sockets, XDP program, UMEM) can fail in ways an operator must be able to
//! act on, so every failure is an [`AfXdpError`] that says which interface, which
//! queue and what to do; nothing here panics on bad input. [`AfXdpIo::report`] says
//! what each socket actually got (XDP mode, zero-copy or copy, TX budget), including
//! every fallback taken.
//!
//! What xsk-rs 0.11 (and the libxdp under it) imposes, and how this module copes:
//! - A `FrameDesc`'s address is private: a frame is always sent from where it was
//!   received, so `tx` with `head > 0` moves the bytes down first.
//! - `DataMut::contents_mut` borrows the temporary `DataMut`, not the UMEM, so
//!   `buffer` rebuilds the slice with the lifetime of `&mut self`.
//! - `produce` on a ring hands over all of a batch or none of it: callers ask
//!   `nb_free` first and produce only what fits.
//! - The first socket of a UMEM is bound on the UMEM's own fd; if creating it fails
//!   after the bind (say, attaching the XDP program), that fd stays bound, so a retry
//!   needs a new UMEM (`UmemSlot`).
//! - Zero-copy is decided by the first socket's bind flags for the whole UMEM.
//! - There is no API for `XDP_MAX_TX_SKB_BUDGET` or `XDP_OPTIONS`: both are raw
//!   socket options on the socket's fd.
//! - libxdp refcounts its XDP program across sockets and processes and detaches it
//!   with the last socket, but does not lock creation against deletion: sockets of
//!   one process are created and deleted under one lock (`SETUP`).

use std::{
    collections::HashMap,
    error::Error,
    ffi::{c_char, c_int, c_void, CStr, CString},
    fmt, io,
    num::NonZeroU32,
    os::fd::{AsRawFd, RawFd},
    slice,
    sync::{Mutex, Once},
    thread,
    time::Duration,
};

use xsk_rs::{
    config::{BindFlags, FrameSize, Interface, LibxdpFlags, QueueSize, SocketConfig, UmemConfig, XdpFlags},
    CompQueue, FillQueue, FrameDesc, RxQueue, Socket, TxQueue, Umem,
};

use super::{FrameHandle, Io, RxFrame};
use crate::tables::PortId;

/// `setsockopt(SOL_XDP, XDP_MAX_TX_SKB_BUDGET)`: how many frames one `sendto()` wakeup
/// sends in copy mode (the kernel's default is 32). Not in libc 0.2 nor xsk-rs yet.
const XDP_MAX_TX_SKB_BUDGET: c_int = 9;

/// `NETDEV_XDP_ACT_XSK_ZEROCOPY` from `linux/netdev.h`: the driver supports AF_XDP
/// zero-copy.
const NETDEV_XDP_ACT_XSK_ZEROCOPY: u64 = 1 << 3;

/// The name of libxdp's default AF_XDP program (`xsk_def_xdp_prog.c`).
const XSK_DEFAULT_PROG: &str = "xsk_def_prog";

/// Which XDP hook the redirect-to-socket program is attached to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum XdpMode {
    /// Driver mode where the driver offers zero-copy, SKB mode otherwise. Without
    /// zero-copy the kernel's copy into and out of the UMEM is the cost that matters,
    /// and generic (SKB) mode measured 15-20% faster than native on veth.
    #[default]
    Auto,
    /// Generic XDP: works on every interface, always copy mode.
    Skb,
    /// Native (driver) XDP; fails on interfaces whose driver has no XDP support.
    Driver,
}

/// How a socket's XDP program is actually attached, as the kernel reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attached {
    Skb,
    Driver,
    Hardware,
    /// Transmit-only socket: no program, nothing redirected to it.
    None,
    /// The kernel reported a mode this code does not know.
    Unknown(u8),
}

/// One socket of the worker: which queue of which interface, and whether it receives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortSpec {
    /// The port id frames received here carry, and `tx` sends to.
    pub port: PortId,
    pub ifname: String,
    pub queue: u32,
    /// False for a transmit-only socket (a traffic generator's sending side): no XDP
    /// program is loaded, so the interface's own stack keeps receiving, and no frames
    /// sit idle in a fill ring.
    pub rx: bool,
}

impl PortSpec {
    pub fn new(port: PortId, ifname: &str, queue: u32) -> PortSpec {
        PortSpec { port, ifname: ifname.to_string(), queue, rx: true }
    }

    pub fn tx_only(mut self) -> PortSpec {
        self.rx = false;
        self
    }
}

/// Bytes the kernel keeps in front of every received frame (XDP headroom).
pub const XDP_HEADROOM: u32 = libxdp_sys::XDP_PACKET_HEADROOM;

/// Knobs for [`AfXdpIo::new`]; `Default` is what the dataplane runs with.
#[derive(Clone, Debug)]
pub struct AfXdpConfig {
    pub mode: XdpMode,
    /// Ask for zero-copy where every interface's driver advertises it; copy mode is
    /// the fallback and is reported.
    pub zero_copy: bool,
    /// UMEM frame size: a power of two, at least 2048. 256 bytes of each frame are the
    /// kernel's XDP headroom, the rest holds the frame.
    pub frame_size: u32,
    /// Size of every ring (rx, tx, fill, completion): a power of two.
    pub ring_size: u32,
    /// Frames in the UMEM; `None` is two rings' worth per socket.
    pub frames: Option<u32>,
    /// Frames one copy-mode `sendto()` may send (`XDP_MAX_TX_SKB_BUDGET`); capped at
    /// the TX ring size. `None` leaves the kernel default (32).
    pub tx_skb_budget: Option<u32>,
    /// While frames keep arriving, `flush` wakes a socket's TX only once this many
    /// frames wait on its ring; as soon as an `rx` finds nothing, everything waiting
    /// is sent. A copy-mode wakeup is a system call that costs as much as forwarding
    /// a few frames, and a generator on the same host delivers its bursts one frame
    /// at a time. 1 wakes on every flush.
    pub tx_kick_batch: u32,
    /// Socket creation is retried this many times when the kernel says EBUSY (an XDP
    /// program that was just detached is not gone yet), with a doubling pause.
    pub busy_retries: u32,
    pub busy_backoff: Duration,
}

impl Default for AfXdpConfig {
    fn default() -> Self {
        AfXdpConfig {
            mode: XdpMode::Auto,
            zero_copy: true,
            frame_size: 2048,
            ring_size: 1024,
            frames: None,
            tx_skb_budget: Some(256),
            tx_kick_batch: 64,
            busy_retries: 6,
            busy_backoff: Duration::from_millis(10),
        }
    }
}

/// What one socket got, as opposed to what was asked for.
#[derive(Clone, Debug)]
pub struct SocketReport {
    pub port: PortId,
    pub ifname: String,
    pub ifindex: u32,
    pub queue: u32,
    pub rx: bool,
    /// The XDP program's attach mode as the kernel reports it after binding.
    pub attached: Attached,
    /// The id of the XDP program on the interface (0 for a transmit-only socket).
    pub prog_id: u32,
    /// From `getsockopt(XDP_OPTIONS)`: true only if the kernel runs this socket
    /// zero-copy.
    pub zero_copy: bool,
    /// The copy-mode TX budget in force, if setting it worked.
    pub tx_skb_budget: Option<u32>,
    /// Fallbacks and decisions, in the order they were taken.
    pub notes: Vec<String>,
}

/// What [`AfXdpIo::new`] set up.
#[derive(Clone, Debug)]
pub struct AfXdpReport {
    pub frame_size: u32,
    pub frames: u32,
    pub ring_size: u32,
    pub sockets: Vec<SocketReport>,
}

impl fmt::Display for SocketReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "port {} {} queue {}: {} xdp={:?} prog={} {} tx_budget={}",
            self.port,
            self.ifname,
            self.queue,
            if self.rx { "rx+tx" } else { "tx-only" },
            self.attached,
            self.prog_id,
            if self.zero_copy { "zero-copy" } else { "copy" },
            self.tx_skb_budget.map_or_else(|| "default".to_string(), |b| b.to_string()),
        )?;
        for n in &self.notes {
            write!(f, "; {n}")?;
        }
        Ok(())
    }
}

impl fmt::Display for AfXdpReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "umem: {} frames of {} B, rings of {}", self.frames, self.frame_size, self.ring_size)?;
        for s in &self.sockets {
            write!(f, "\n{s}")?;
        }
        Ok(())
    }
}

/// Why the port could not be set up.
#[derive(Debug)]
pub enum AfXdpError {
    /// The kernel has no AF_XDP sockets (EAFNOSUPPORT: built without CONFIG_XDP_SOCKETS).
    Unavailable(io::Error),
    /// Not allowed to create AF_XDP sockets or load XDP programs (needs root, or
    /// CAP_NET_ADMIN, CAP_NET_RAW, CAP_BPF and CAP_IPC_LOCK).
    Permission(io::Error),
    NoSuchInterface(String),
    /// Another XDP program is attached; replacing it would break whoever put it there.
    ForeignXdpProgram {
        ifname: String,
        prog_id: u32,
        names: Vec<String>,
        mode: Attached,
    },
    /// The configuration cannot work (sizes, duplicate sockets, …).
    Config(String),
    /// The UMEM could not be registered (too little locked memory without
    /// CAP_IPC_LOCK is the usual reason).
    Umem(String),
    /// Binding a socket failed.
    Socket {
        ifname: String,
        queue: u32,
        error: io::Error,
        hint: &'static str,
    },
}

impl fmt::Display for AfXdpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AfXdpError::Unavailable(e) => {
                write!(f, "AF_XDP sockets are not available in this kernel: {e}")
            }
            AfXdpError::Permission(e) => write!(
                f,
                "not permitted to use AF_XDP ({e}); run as root or grant CAP_NET_ADMIN, \
                 CAP_NET_RAW, CAP_BPF and CAP_IPC_LOCK"
            ),
            AfXdpError::NoSuchInterface(name) => {
                write!(f, "no interface named {name:?} in this network namespace")
            }
            AfXdpError::ForeignXdpProgram { ifname, prog_id, names, mode } => {
                let hook = match mode {
                    Attached::Skb => "xdpgeneric",
                    Attached::Driver => "xdpdrv",
                    Attached::Hardware => "xdpoffload",
                    _ => "xdp",
                };
                write!(
                    f,
                    "{ifname} already has an XDP program (id {prog_id}: {}); detach it \
                     first (ip link set dev {ifname} {hook} off)",
                    names.join(", ")
                )
            }
            AfXdpError::Config(msg) => write!(f, "bad AF_XDP configuration: {msg}"),
            AfXdpError::Umem(msg) => write!(f, "cannot create the UMEM: {msg}"),
            AfXdpError::Socket { ifname, queue, error, hint } => {
                write!(f, "cannot bind an AF_XDP socket to {ifname} queue {queue}: {error}")?;
                if !hint.is_empty() {
                    write!(f, " ({hint})")?;
                }
                Ok(())
            }
        }
    }
}

impl Error for AfXdpError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            AfXdpError::Unavailable(e) | AfXdpError::Permission(e) => Some(e),
            AfXdpError::Socket { error, .. } => Some(error),
            _ => None,
        }
    }
}

/// Counters kept by the port itself (the kernel's per-socket counters are in
/// [`AfXdpIo::kernel_stats`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AfXdpCounters {
    pub rx_frames: u64,
    pub tx_frames: u64,
    /// Frames given back unsent with `release`.
    pub released: u64,
    /// Frames dropped because the TX ring stayed full after a wakeup.
    pub tx_ring_full: u64,
    /// Frames sent to a port this worker has no socket for.
    pub tx_no_port: u64,
    /// `sendto()`/`poll()` wakeups made.
    pub wakeups: u64,
    /// Wakeups that failed with something other than "try again".
    pub wakeup_errors: u64,
}

/// The kernel's counters for one socket (`getsockopt(XDP_STATISTICS)`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelStats {
    pub port: PortId,
    pub queue: u32,
    pub rx_dropped: u64,
    pub rx_invalid_descs: u64,
    pub rx_ring_full: u64,
    pub rx_fill_ring_empty: u64,
    pub tx_invalid_descs: u64,
    pub tx_ring_empty: u64,
}

struct Xsk {
    port: PortId,
    queue: u32,
    rx_enabled: bool,
    tx: TxQueue,
    rx: RxQueue,
    fq: FillQueue,
    cq: CompQueue,
    /// Queued by `tx`, handed to the TX ring by `flush`; never grows past the ring size.
    pending: Vec<FrameDesc>,
    /// On the TX ring or completed but not yet collected.
    in_flight: u32,
    /// Put on the TX ring since the last wakeup.
    unkicked: u32,
}

/// The AF_XDP sockets of one worker and their shared UMEM. Create it on the thread
/// that will use it; it is `Send`, not `Sync`.
pub struct AfXdpIo {
    // Sockets first: they are deleted before the UMEM handle (which they also hold).
    socks: Vec<Xsk>,
    umem: Umem,
    /// The descriptor of every frame, by frame index, as last received or allocated.
    frames: Vec<FrameDesc>,
    /// Which frames the caller holds (received or allocated, not yet given back).
    owned: Vec<bool>,
    /// Frames owned by nobody: the source of fill-ring refills and `alloc`.
    free: Vec<FrameDesc>,
    /// Where `rx` and completion collection write descriptors.
    scratch: Vec<FrameDesc>,
    frame_shift: u32,
    ring_size: u32,
    /// Socket index per port id, for `tx`.
    tx_sock: Vec<Option<usize>>,
    /// Indices of receiving sockets, and which one `rx` starts with next (fairness).
    rx_socks: Vec<usize>,
    rx_next: usize,
    /// The last `rx` found nothing (or this port never receives): send now.
    rx_idle: bool,
    kick_batch: u32,
    pollfds: Vec<libc::pollfd>,
    counters: AfXdpCounters,
    report: AfXdpReport,
    ifindexes: Vec<u32>,
}

impl AfXdpIo {
    /// Creates the UMEM and binds one socket per entry of `ports`, loading (or
    /// joining) libxdp's redirect program on each receiving interface.
    pub fn new(config: &AfXdpConfig, ports: &[PortSpec]) -> Result<AfXdpIo, AfXdpError> {
        route_library_logs();
        validate(config, ports)?;
        probe_af_xdp()?;
        let ifaces = ports.iter().map(inspect).collect::<Result<Vec<_>, _>>()?;
        let frames = config.frames.unwrap_or_else(|| 2 * config.ring_size * ports.len() as u32);
        let mut slot = UmemSlot::new(config, frames, ports)?;
        // Workers of one process set up at once would race to attach the same program.
        let setup = SETUP.lock().unwrap_or_else(|p| p.into_inner());

        // Zero-copy is a property of the whole UMEM (the kernel gives later sockets
        // the first one's mode), so ask only if every driver offers it.
        let mut zero_copy =
            config.zero_copy && config.mode != XdpMode::Skb && ifaces.iter().all(|i| i.state.zero_copy_capable);
        let mut socks = Vec::with_capacity(ports.len());
        let mut reports = Vec::with_capacity(ports.len());
        for (p, iface) in ports.iter().zip(&ifaces) {
            let mut notes = Vec::new();
            if socks.is_empty() && config.zero_copy && !zero_copy {
                notes.push("zero-copy not offered by every driver: copy mode".to_string());
            }
            let first = socks.is_empty();
            let (xsk, report) = open(config, &mut slot, p, iface, first, &mut zero_copy, notes)?;
            socks.push(xsk);
            reports.push(report);
        }
        let mut ifindexes: Vec<u32> = ifaces.iter().map(|i| i.ifindex).collect();
        ifindexes.sort_unstable();
        ifindexes.dedup();
        register(&ifindexes);
        drop(setup);
        let UmemSlot { umem, descs, .. } = slot;

        let max_port = ports.iter().map(|p| p.port as usize).max().unwrap_or(0);
        let mut tx_sock = vec![None; max_port + 1];
        for (i, s) in socks.iter().enumerate() {
            // The first socket of a port sends for it: a worker normally serves one
            // queue per port.
            tx_sock[s.port as usize].get_or_insert(i);
        }
        let rx_socks: Vec<usize> = (0..socks.len()).filter(|&i| socks[i].rx_enabled).collect();
        let pollfds = rx_socks
            .iter()
            .map(|&i| libc::pollfd { fd: socks[i].rx.fd().as_raw_fd(), events: libc::POLLIN, revents: 0 })
            .collect();

        let mut io = AfXdpIo {
            socks,
            frames: descs.clone(),
            owned: vec![false; descs.len()],
            free: descs,
            scratch: vec![FrameDesc::default(); config.ring_size as usize],
            frame_shift: config.frame_size.trailing_zeros(),
            ring_size: config.ring_size,
            tx_sock,
            rx_socks,
            rx_next: 0,
            rx_idle: true,
            kick_batch: config.tx_kick_batch.max(1),
            pollfds,
            counters: AfXdpCounters::default(),
            report: AfXdpReport {
                frame_size: config.frame_size,
                frames,
                ring_size: config.ring_size,
                sockets: reports,
            },
            ifindexes,
            umem,
        };
        io.refill();
        Ok(io)
    }

    /// What each socket got: mode, zero-copy, budget, fallbacks.
    pub fn report(&self) -> &AfXdpReport {
        &self.report
    }

    pub fn counters(&self) -> AfXdpCounters {
        self.counters
    }

    /// The kernel's counters for every socket (one `getsockopt` each: not for the hot
    /// path).
    pub fn kernel_stats(&self) -> Vec<KernelStats> {
        self.socks
            .iter()
            .filter_map(|s| {
                let st = s.rx.fd().xdp_statistics().ok()?;
                Some(KernelStats {
                    port: s.port,
                    queue: s.queue,
                    rx_dropped: st.rx_dropped(),
                    rx_invalid_descs: st.rx_invalid_descs(),
                    rx_ring_full: st.rx_ring_full(),
                    rx_fill_ring_empty: st.rx_fill_ring_empty_descs(),
                    tx_invalid_descs: st.tx_invalid_descs(),
                    tx_ring_empty: st.tx_ring_empty_descs(),
                })
            })
            .collect()
    }

    /// Bytes of a frame buffer (what [`Io::buffer`] returns for a fresh frame).
    pub fn frame_capacity(&self) -> usize {
        self.report.frame_size as usize - libxdp_sys::XDP_PACKET_HEADROOM as usize
    }

    /// Takes a free frame to build a packet in (a generator, or a reply that does not
    /// fit in place); give it back with `tx` or `release`. `None` when every frame is
    /// in use: `flush` collects completed ones.
    pub fn alloc(&mut self) -> Option<FrameHandle> {
        if self.free.is_empty() {
            self.collect_completions();
        }
        let d = self.free.pop()?;
        let idx = d.addr() >> self.frame_shift;
        self.frames[idx] = d;
        self.owned[idx] = true;
        Some(FrameHandle(idx as u64))
    }

    /// Frames in the free pool right now.
    pub fn free_frames(&self) -> usize {
        self.free.len()
    }

    /// Waits until a receiving socket has frames or `timeout` passes; true if one is
    /// readable. For an idle worker's back-off: call `flush` first, since nothing is
    /// sent while waiting.
    pub fn wait_readable(&mut self, timeout: Duration) -> io::Result<bool> {
        if self.pollfds.is_empty() {
            thread::sleep(timeout);
            return Ok(false);
        }
        let ms = timeout.as_millis().min(c_int::MAX as u128) as c_int;
        // SAFETY: `pollfds` is a live, exclusively borrowed array of `len` pollfd
        // structs; the kernel writes only their `revents`. The fds stay open while
        // `self.socks` holds the sockets.
        let n = unsafe { libc::poll(self.pollfds.as_mut_ptr(), self.pollfds.len() as libc::nfds_t, ms) };
        if n < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::Interrupted { Ok(false) } else { Err(e) };
        }
        Ok(n > 0)
    }

    /// The socket fds of the receiving sockets, for a caller that waits on them with
    /// other fds (epoll).
    pub fn rx_fds(&self) -> impl Iterator<Item = RawFd> + '_ {
        self.pollfds.iter().map(|p| p.fd)
    }

    /// The index of a frame the caller owns. Panics on any other handle: a stale
    /// one would let safe code write into memory the kernel is reading or writing.
    fn owned_index(&self, h: FrameHandle) -> usize {
        let idx = h.0 as usize;
        assert!(
            self.owned.get(idx) == Some(&true),
            "frame handle {h:?} is not owned by the caller (given back already?)"
        );
        idx
    }

    /// Hands a frame back: from now on it is the kernel's or the free pool's.
    fn give_back(&mut self, h: FrameHandle) -> FrameDesc {
        let idx = self.owned_index(h);
        self.owned[idx] = false;
        self.frames[idx]
    }

    /// Hands `pending` of socket `s` to its TX ring. If the ring is full, wakes the
    /// kernel, collects completions and tries once more; what still does not fit is
    /// dropped (counted), since waiting would stall every other port.
    fn submit(&mut self, s: usize) {
        let Self { socks, free, scratch, counters, .. } = self;
        let x = &mut socks[s];
        let mut done = 0;
        for attempt in 0..2 {
            let left = x.pending.len() - done;
            let room = (x.tx.nb_free(left as u32) as usize).min(left);
            // SAFETY: every pending descriptor names a frame of this UMEM that the
            // caller handed over with `tx` (`give_back` made sure it held it, so it is
            // queued once and nothing else refers to it); after `produce` only the
            // kernel touches it until it comes back on the completion ring.
            let n = unsafe { x.tx.produce(&x.pending[done..done + room]) };
            done += n;
            x.in_flight += n as u32;
            x.unkicked += n as u32;
            if done == x.pending.len() || attempt == 1 {
                break;
            }
            wake_tx(x, counters);
            collect(x, free, scratch);
        }
        counters.tx_frames += done as u64;
        if done < x.pending.len() {
            counters.tx_ring_full += (x.pending.len() - done) as u64;
            free.extend_from_slice(&x.pending[done..]);
        }
        x.pending.clear();
    }

    fn collect_completions(&mut self) {
        let Self { socks, free, scratch, .. } = self;
        for x in socks.iter_mut().filter(|x| x.in_flight > 0) {
            collect(x, free, scratch);
        }
    }

    /// Tops up every fill ring from the free pool.
    fn refill(&mut self) {
        let Self { socks, free, counters, rx_socks, .. } = self;
        for &i in rx_socks.iter() {
            let x = &mut socks[i];
            let room = (x.fq.nb_free(self.ring_size) as usize).min(free.len());
            // Refilling a few frames at a time costs more than it helps.
            if room >= 16 || (room > 0 && room == free.len()) {
                let from = free.len() - room;
                // SAFETY: frames in the free pool belong to this UMEM and are owned by
                // nobody; once produced, user space does not touch them until `rx`
                // returns them.
                let n = unsafe { x.fq.produce(&free[from..]) };
                free.truncate(free.len() - n);
            }
            if x.fq.needs_wakeup() {
                counters.wakeups += 1;
                if x.fq.wakeup(x.rx.fd_mut(), 0).is_err() {
                    counters.wakeup_errors += 1;
                }
            }
        }
    }
}

/// Moves completed transmissions of one socket to the free pool.
fn collect(x: &mut Xsk, free: &mut Vec<FrameDesc>, scratch: &mut [FrameDesc]) {
    // SAFETY: the completion ring only returns frames of this UMEM that were submitted
    // on this socket's TX ring; `scratch` is only written.
    let n = unsafe { x.cq.consume(scratch) };
    free.extend_from_slice(&scratch[..n]);
    x.in_flight -= n as u32;
}

/// The copy-mode transmit path runs inside `sendto()`: one call per batch per socket.
fn wake_tx(x: &mut Xsk, counters: &mut AfXdpCounters) {
    x.unkicked = 0;
    if x.tx.needs_wakeup() {
        counters.wakeups += 1;
        if x.tx.wakeup().is_err() {
            counters.wakeup_errors += 1;
        }
    }
}

impl Io for AfXdpIo {
    fn counters(&self) -> super::IoCounters {
        let c = AfXdpIo::counters(self);
        let rx_dropped = self.kernel_stats().iter().map(|k| k.rx_dropped + k.rx_ring_full + k.rx_fill_ring_empty).sum();
        super::IoCounters { tx_ring_full: c.tx_ring_full, rx_dropped, wakeups: c.wakeups }
    }

    fn wait_readable(&mut self, timeout: Duration) -> bool {
        AfXdpIo::wait_readable(self, timeout).unwrap_or(false)
    }

    fn alloc(&mut self) -> Option<FrameHandle> {
        AfXdpIo::alloc(self)
    }

    fn rx(&mut self, out: &mut Vec<RxFrame>, max: usize) -> usize {
        let n_rx = self.rx_socks.len();
        let mut got = 0;
        for k in 0..n_rx {
            if got >= max {
                break;
            }
            let s = self.rx_socks[(self.rx_next + k) % n_rx];
            let want = (max - got).min(self.scratch.len());
            let x = &mut self.socks[s];
            // SAFETY: the RX ring only returns frames of this socket's UMEM (we only
            // ever fill it from there); the descriptors are copied out before `scratch`
            // is used again.
            let n = unsafe { x.rx.consume(&mut self.scratch[..want]) };
            for d in &self.scratch[..n] {
                let idx = d.addr() >> self.frame_shift;
                self.frames[idx] = *d;
                self.owned[idx] = true;
                out.push(RxFrame {
                    handle: FrameHandle(idx as u64),
                    len: d.lengths().data(),
                    port: x.port,
                    time: None,
                });
            }
            got += n;
        }
        if n_rx > 0 {
            self.rx_next = (self.rx_next + 1) % n_rx;
        }
        self.counters.rx_frames += got as u64;
        self.rx_idle = got == 0;
        got
    }

    fn buffer(&mut self, h: FrameHandle) -> &mut [u8] {
        let idx = self.owned_index(h);
        let mut d = self.frames[idx];
        // SAFETY: `owned_index` checked that the caller holds this frame (received or
        // allocated, not yet given back), so the kernel does not touch it.
        let mut data = unsafe { self.umem.data_mut(&mut d) };
        // Length = capacity, so `contents_mut` spans the whole rest of the frame.
        data.cursor().set_pos(usize::MAX);
        let whole = data.contents_mut();
        let (ptr, len) = (whole.as_mut_ptr(), whole.len());
        // SAFETY: this is the slice xsk-rs just made, given the lifetime of `&mut self`
        // instead of the local descriptor's: the memory is the UMEM mapping that
        // `self.umem` keeps alive, and `&mut self` keeps every other access to this
        // frame out for as long as the slice lives.
        unsafe { slice::from_raw_parts_mut(ptr, len) }
    }

    fn tx(&mut self, port: PortId, h: FrameHandle, head: usize, len: usize) {
        let Some(s) = self.tx_sock.get(port as usize).copied().flatten() else {
            self.counters.tx_no_port += 1;
            self.release(h);
            return;
        };
        if head != 0 {
            // xsk-rs keeps a descriptor's address private, so a frame is always sent
            // from where it was received: move the bytes (rare: a stripped VLAN tag).
            self.buffer(h).copy_within(head..head + len, 0);
        }
        let mut d = self.give_back(h);
        // SAFETY: `give_back` checked that the caller held this frame, and it goes to
        // the kernel only when `flush` submits it. Only the descriptor's length is set
        // (capped at the frame's capacity).
        unsafe { self.umem.data_mut(&mut d) }.cursor().set_pos(len);
        debug_assert_eq!(d.lengths().data(), len, "frame longer than its buffer");
        if self.socks[s].pending.len() == self.ring_size as usize {
            self.submit(s);
        }
        self.socks[s].pending.push(d);
    }

    fn release(&mut self, h: FrameHandle) {
        let d = self.give_back(h);
        self.free.push(d);
        self.counters.released += 1;
    }

    fn flush(&mut self) {
        for s in 0..self.socks.len() {
            if !self.socks[s].pending.is_empty() {
                self.submit(s);
            }
        }
        let Self { socks, free, scratch, counters, ring_size, rx_idle, kick_batch, .. } = self;
        for x in socks.iter_mut().filter(|x| x.in_flight > 0) {
            // Frames stay on the ring only while more are coming (see `tx_kick_batch`).
            // Once due, kick for new frames and for old ones a budget-limited sendto()
            // left behind (the ring is not empty while its consumer lags).
            let due = *rx_idle || x.unkicked >= *kick_batch;
            if due && (x.unkicked > 0 || x.tx.nb_free_exact() < *ring_size) {
                wake_tx(x, counters);
            }
            collect(x, free, scratch);
        }
        self.refill();
    }
}

impl Drop for AfXdpIo {
    fn drop(&mut self) {
        // libxdp detaches its program when the last socket using it is deleted
        // (refcounted in the program's own map); make that happen now, then check.
        let setup = SETUP.lock().unwrap_or_else(|p| p.into_inner());
        self.socks.clear();
        drop(setup);
        for ifindex in unregister(&self.ifindexes) {
            let attached = self
                .report
                .sockets
                .iter()
                .find(|s| s.ifindex == ifindex && s.rx)
                .map(|s| (s.ifname.as_str(), s.prog_id));
            let Some((ifname, ours)) = attached else {
                continue;
            };
            if let Ok(XdpState { programs: Some(p), .. }) = query_xdp(ifindex) {
                if p.id == ours {
                    // Another process may still use it: say so, do not yank it.
                    log::warn!(
                        "XDP program {ours} is still attached to {ifname}: another process \
                         uses it, or a crashed one left libxdp's refcount high"
                    );
                }
            }
        }
    }
}

/// Held while sockets are created or deleted: libxdp attaches its program when the
/// first socket of an interface comes and detaches it when the last one goes, and two
/// workers doing that at once would race.
static SETUP: Mutex<()> = Mutex::new(());

/// Sockets of this process per interface: the XDP program check on drop only means
/// something once the last of them is gone.
static USERS: Mutex<Vec<(u32, usize)>> = Mutex::new(Vec::new());

fn register(ifindexes: &[u32]) {
    let mut users = USERS.lock().unwrap_or_else(|p| p.into_inner());
    for &i in ifindexes {
        match users.iter_mut().find(|(x, _)| *x == i) {
            Some((_, n)) => *n += 1,
            None => users.push((i, 1)),
        }
    }
}

/// Returns the interfaces this process no longer uses.
fn unregister(ifindexes: &[u32]) -> Vec<u32> {
    let mut users = USERS.lock().unwrap_or_else(|p| p.into_inner());
    let mut gone = Vec::new();
    for &i in ifindexes {
        if let Some(pos) = users.iter().position(|(x, _)| *x == i) {
            users[pos].1 -= 1;
            if users[pos].1 == 0 {
                users.swap_remove(pos);
                gone.push(i);
            }
        }
    }
    gone
}

fn cfg_err(e: impl fmt::Display) -> AfXdpError {
    AfXdpError::Config(e.to_string())
}

fn validate(config: &AfXdpConfig, ports: &[PortSpec]) -> Result<(), AfXdpError> {
    if ports.is_empty() {
        return Err(AfXdpError::Config("no ports".into()));
    }
    if !config.ring_size.is_power_of_two() || config.ring_size < 64 {
        return Err(AfXdpError::Config(format!("ring size {} is not a power of two of at least 64", config.ring_size)));
    }
    if !config.frame_size.is_power_of_two() || config.frame_size < 2048 {
        return Err(AfXdpError::Config(format!(
            "frame size {} is not a power of two of at least 2048",
            config.frame_size
        )));
    }
    let mut seen = HashMap::new();
    for p in ports {
        if let Some(prev) = seen.insert((p.ifname.as_str(), p.queue), p.port) {
            return Err(AfXdpError::Config(format!(
                "{} queue {} is listed twice (ports {prev} and {})",
                p.ifname, p.queue, p.port
            )));
        }
    }
    Ok(())
}

/// An interface as found before binding.
struct Iface {
    ifindex: u32,
    state: XdpState,
}

/// Looks the interface up and refuses one whose XDP program is not libxdp's AF_XDP
/// program (that one is shared: another worker's, or another queue's).
fn inspect(p: &PortSpec) -> Result<Iface, AfXdpError> {
    let ifindex = ifindex(&p.ifname)?;
    let state = query_xdp(ifindex).map_err(|error| AfXdpError::Socket {
        ifname: p.ifname.clone(),
        queue: p.queue,
        error,
        hint: "querying the interface's XDP state failed",
    })?;
    // A transmit-only socket loads no program, so it does not care.
    if let Some(progs) = state.programs.as_ref().filter(|_| p.rx) {
        if !progs.names.iter().all(|n| n == XSK_DEFAULT_PROG) {
            return Err(AfXdpError::ForeignXdpProgram {
                ifname: p.ifname.clone(),
                prog_id: progs.id,
                names: progs.names.clone(),
                mode: state.mode,
            });
        }
    }
    Ok(Iface { ifindex, state })
}

/// The UMEM, and how to make it again: libxdp binds the first socket on the UMEM's
/// own fd, and a failure after that bind (attaching the XDP program) leaves the fd
/// bound for good, so a retry of the first socket needs a new UMEM.
struct UmemSlot {
    umem: Umem,
    descs: Vec<FrameDesc>,
    config: UmemConfig,
    count: NonZeroU32,
    spoiled: bool,
}

impl UmemSlot {
    fn new(config: &AfXdpConfig, frames: u32, ports: &[PortSpec]) -> Result<UmemSlot, AfXdpError> {
        let ring = config.ring_size;
        let fills = ports.iter().filter(|p| p.rx).count() as u32;
        if frames < fills * ring + ring {
            return Err(AfXdpError::Config(format!(
                "{frames} frames cannot fill {fills} fill rings of {ring} and leave a ring's \
                 worth to send with"
            )));
        }
        let umem_config = UmemConfig::builder()
            .frame_size(FrameSize::new(config.frame_size).map_err(cfg_err)?)
            .fill_queue_size(QueueSize::new(ring).map_err(cfg_err)?)
            .comp_queue_size(QueueSize::new(ring).map_err(cfg_err)?)
            .frame_headroom(0)
            .build()
            .map_err(cfg_err)?;
        let count = NonZeroU32::new(frames).ok_or_else(|| AfXdpError::Config("a UMEM needs frames".into()))?;
        let (umem, descs) = make_umem(umem_config, count)?;
        Ok(UmemSlot { umem, descs, config: umem_config, count, spoiled: false })
    }

    /// The UMEM to bind the next socket with; a new one if the first socket failed.
    fn for_socket(&mut self, first: bool) -> Result<&Umem, AfXdpError> {
        if first && self.spoiled {
            (self.umem, self.descs) = make_umem(self.config, self.count)?;
            self.spoiled = false;
        }
        Ok(&self.umem)
    }
}

fn make_umem(config: UmemConfig, count: NonZeroU32) -> Result<(Umem, Vec<FrameDesc>), AfXdpError> {
    Umem::new(config, count, false).map_err(|e| {
        AfXdpError::Umem(match e.source() {
            Some(s) => format!("{e}: {s}"),
            None => e.to_string(),
        })
    })
}

/// Binds one socket, falling back from zero-copy to copy (first socket only: the
/// others inherit the UMEM's mode) and, in `Auto`, from driver to SKB mode; then sets
/// the TX budget and reads back what the kernel gave.
fn open(
    config: &AfXdpConfig,
    slot: &mut UmemSlot,
    p: &PortSpec,
    iface: &Iface,
    first: bool,
    zero_copy: &mut bool,
    mut notes: Vec<String>,
) -> Result<(Xsk, SocketReport), AfXdpError> {
    let mut mode = match config.mode {
        XdpMode::Auto if iface.state.zero_copy_capable => {
            notes.push("auto: driver offers zero-copy, driver mode".into());
            XdpMode::Driver
        }
        XdpMode::Auto => {
            if p.rx {
                notes.push("auto: no zero-copy, SKB mode".into());
            }
            XdpMode::Skb
        }
        m => m,
    };
    let (tx, rx, fq_cq) = loop {
        match bind(config, slot, first, p, mode, *zero_copy) {
            Ok(s) => break s,
            Err(e) if *zero_copy && first => {
                notes.push(format!("zero-copy refused ({e}), copy mode"));
                *zero_copy = false;
            }
            Err(e) if config.mode == XdpMode::Auto && mode == XdpMode::Driver && p.rx => {
                notes.push(format!("driver mode refused ({e}), SKB mode"));
                mode = XdpMode::Skb;
            }
            Err(e) => return Err(e),
        }
    };
    let Some((fq, cq)) = fq_cq else {
        // validate() rules out binding one (interface, queue) twice, which is the only
        // way libxdp hands back no rings.
        return Err(AfXdpError::Config(format!("{} queue {} was bound twice", p.ifname, p.queue)));
    };
    let fd = rx.fd().as_raw_fd();
    let budget = config.tx_skb_budget.map(|b| b.min(config.ring_size));
    let budget = budget.and_then(|b| match set_tx_budget(fd, b) {
        Ok(()) => Some(b),
        Err(e) => {
            notes.push(format!("XDP_MAX_TX_SKB_BUDGET refused: {e}"));
            None
        }
    });
    let state = if p.rx { query_xdp(iface.ifindex).unwrap_or_default() } else { XdpState::default() };
    let report = SocketReport {
        port: p.port,
        ifname: p.ifname.clone(),
        ifindex: iface.ifindex,
        queue: p.queue,
        rx: p.rx,
        attached: state.mode,
        prog_id: state.programs.as_ref().map_or(0, |x| x.id),
        zero_copy: is_zero_copy(fd),
        tx_skb_budget: budget,
        notes,
    };
    let xsk = Xsk {
        port: p.port,
        queue: p.queue,
        rx_enabled: p.rx,
        tx,
        rx,
        fq,
        cq,
        pending: Vec::with_capacity(config.ring_size as usize),
        in_flight: 0,
        unkicked: 0,
    };
    Ok((xsk, report))
}

/// Creating an AF_XDP socket is the only reliable test of "does this kernel have
/// AF_XDP and may we use it".
fn probe_af_xdp() -> Result<(), AfXdpError> {
    // SAFETY: plain socket(2); the fd is closed right below and never shared.
    let fd = unsafe { libc::socket(libc::AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        let e = io::Error::last_os_error();
        return Err(match e.raw_os_error() {
            Some(libc::EAFNOSUPPORT) => AfXdpError::Unavailable(e),
            Some(libc::EPERM | libc::EACCES) => AfXdpError::Permission(e),
            _ => AfXdpError::Unavailable(e),
        });
    }
    // SAFETY: `fd` was just opened by us and is closed exactly once.
    unsafe { libc::close(fd) };
    Ok(())
}

fn ifindex(name: &str) -> Result<u32, AfXdpError> {
    let c = CString::new(name).map_err(|_| AfXdpError::NoSuchInterface(name.to_string()))?;
    // SAFETY: `c` is a valid NUL-terminated string that outlives the call.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if i == 0 {
        Err(AfXdpError::NoSuchInterface(name.to_string()))
    } else {
        Ok(i)
    }
}

/// A bound socket's queues, as xsk-rs hands them out.
type Bound = (TxQueue, RxQueue, Option<(FillQueue, CompQueue)>);

/// One socket bound, retrying while the kernel says EBUSY.
fn bind(
    config: &AfXdpConfig,
    slot: &mut UmemSlot,
    first: bool,
    p: &PortSpec,
    mode: XdpMode,
    zero_copy: bool,
) -> Result<Bound, AfXdpError> {
    let ring = QueueSize::new(config.ring_size).map_err(cfg_err)?;
    let mut bind_flags = BindFlags::XDP_USE_NEED_WAKEUP;
    bind_flags |= if zero_copy { BindFlags::XDP_ZEROCOPY } else { BindFlags::XDP_COPY };
    let xdp_flags = match mode {
        XdpMode::Driver => XdpFlags::XDP_FLAGS_DRV_MODE,
        XdpMode::Skb | XdpMode::Auto => XdpFlags::XDP_FLAGS_SKB_MODE,
    };
    let libxdp_flags = if p.rx { LibxdpFlags::empty() } else { LibxdpFlags::XSK_LIBXDP_FLAGS_INHIBIT_PROG_LOAD };
    let socket_config = SocketConfig::builder()
        .rx_queue_size(ring)
        .tx_queue_size(ring)
        .bind_flags(bind_flags)
        .xdp_flags(xdp_flags)
        .libxdp_flags(libxdp_flags)
        .build();
    let ifname: Interface = p.ifname.parse().map_err(|_| AfXdpError::NoSuchInterface(p.ifname.clone()))?;
    let mut pause = config.busy_backoff;
    let mut attempt = 0;
    loop {
        let umem = slot.for_socket(first)?;
        // SAFETY: validate() guarantees this (interface, queue) pair is bound once per
        // UMEM, so libxdp creates a fresh context and program reference for it, which
        // is the contract of `Socket::new`.
        let r = unsafe { Socket::new(socket_config, umem, &ifname, p.queue) };
        let e = match r {
            Ok(s) => return Ok(s),
            Err(e) => e,
        };
        slot.spoiled |= first;
        let error = e
            .source()
            .and_then(|s| s.downcast_ref::<io::Error>())
            .and_then(io::Error::raw_os_error)
            .map(io::Error::from_raw_os_error)
            .unwrap_or_else(|| io::Error::other(e.to_string()));
        if error.raw_os_error() == Some(libc::EBUSY) && attempt < config.busy_retries {
            attempt += 1;
            log::debug!("{} queue {}: EBUSY, retry {attempt} in {pause:?}", p.ifname, p.queue);
            thread::sleep(pause);
            pause *= 2;
            continue;
        }
        let hint = match error.raw_os_error() {
            Some(libc::EINVAL) => "does the interface have this queue? see ethtool -l",
            Some(libc::EBUSY) => {
                "the queue is still busy: another AF_XDP socket or a \
                                  program being detached"
            }
            Some(libc::EPERM) => "needs root or CAP_NET_ADMIN, CAP_NET_RAW, CAP_BPF",
            Some(libc::ENOMEM | libc::ENOBUFS) => "locked memory limit? (ulimit -l)",
            Some(libc::EOPNOTSUPP) => "the driver does not support this XDP mode",
            Some(libc::ERANGE) => "MTU too large for native XDP",
            _ => "",
        };
        return Err(AfXdpError::Socket { ifname: p.ifname.clone(), queue: p.queue, error, hint });
    }
}

/// Raises how many frames one copy-mode `sendto()` sends.
fn set_tx_budget(fd: RawFd, budget: u32) -> io::Result<()> {
    let v: u32 = budget;
    // SAFETY: `fd` is an open AF_XDP socket owned by a live xsk-rs `Socket`; the kernel
    // reads exactly `size_of::<u32>()` bytes from `&v`, which lives across the call.
    let r = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_XDP,
            XDP_MAX_TX_SKB_BUDGET,
            (&v as *const u32).cast::<c_void>(),
            std::mem::size_of::<u32>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// What the kernel says about the socket: zero-copy or not.
fn is_zero_copy(fd: RawFd) -> bool {
    let mut opts = libc::xdp_options { flags: 0 };
    let mut len = std::mem::size_of::<libc::xdp_options>() as libc::socklen_t;
    // SAFETY: `fd` is an open AF_XDP socket; the kernel writes at most `len` bytes
    // into `opts`, which is exactly that large and lives across the call.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_XDP,
            libc::XDP_OPTIONS,
            (&mut opts as *mut libc::xdp_options).cast::<c_void>(),
            &mut len,
        )
    };
    r == 0 && opts.flags & libc::XDP_OPTIONS_ZEROCOPY != 0
}

#[derive(Clone, Debug)]
struct Programs {
    id: u32,
    /// The program's name, or for libxdp's dispatcher the names of its components.
    names: Vec<String>,
}

#[derive(Clone, Debug)]
struct XdpState {
    programs: Option<Programs>,
    mode: Attached,
    zero_copy_capable: bool,
}

impl Default for XdpState {
    fn default() -> Self {
        XdpState { programs: None, mode: Attached::None, zero_copy_capable: false }
    }
}

/// The XDP program attached to an interface, its mode, and the driver's features.
fn query_xdp(ifindex: u32) -> io::Result<XdpState> {
    let mut opts = libbpf_sys::bpf_xdp_query_opts {
        sz: std::mem::size_of::<libbpf_sys::bpf_xdp_query_opts>() as libbpf_sys::size_t,
        ..Default::default()
    };
    // SAFETY: `opts` is a properly sized, zero-initialised options struct (`sz` says
    // how much libbpf may write) that lives across the call.
    let r = unsafe { libbpf_sys::bpf_xdp_query(ifindex as c_int, 0, &mut opts) };
    if r < 0 {
        return Err(io::Error::from_raw_os_error(-r));
    }
    let mode = match opts.attach_mode as u32 {
        libbpf_sys::XDP_ATTACHED_NONE => Attached::None,
        libbpf_sys::XDP_ATTACHED_DRV => Attached::Driver,
        libbpf_sys::XDP_ATTACHED_SKB => Attached::Skb,
        libbpf_sys::XDP_ATTACHED_HW => Attached::Hardware,
        m => Attached::Unknown(m as u8),
    };
    let programs =
        if opts.prog_id == 0 { None } else { Some(Programs { id: opts.prog_id, names: program_names(ifindex) }) };
    Ok(XdpState { programs, mode, zero_copy_capable: opts.feature_flags & NETDEV_XDP_ACT_XSK_ZEROCOPY != 0 })
}

/// Names of the programs on `ifindex`, as libxdp sees them (it looks inside its own
/// dispatcher). Empty if libxdp cannot tell.
fn program_names(ifindex: u32) -> Vec<String> {
    let mut names = Vec::new();
    // SAFETY: libxdp returns an owned multiprog (or an error encoded in/next to the
    // pointer, which `libxdp_get_error` decodes); the program pointers it hands out
    // are borrowed from it and used only before `xdp_multiprog__close`.
    unsafe {
        let mp = libxdp_sys::xdp_multiprog__get_from_ifindex(ifindex as c_int);
        if mp.is_null() || libxdp_sys::libxdp_get_error(mp as *const c_void) != 0 {
            return names;
        }
        let name = |p: *mut libxdp_sys::xdp_program| -> Option<String> {
            if p.is_null() {
                return None;
            }
            let n = libxdp_sys::xdp_program__name(p);
            (!n.is_null()).then(|| CStr::from_ptr(n).to_string_lossy().into_owned())
        };
        if libxdp_sys::xdp_multiprog__is_legacy(mp) {
            names.extend(name(libxdp_sys::xdp_multiprog__main_prog(mp)));
        } else {
            let mut p = libxdp_sys::xdp_multiprog__next_prog(std::ptr::null(), mp);
            while let Some(n) = name(p) {
                names.push(n);
                p = libxdp_sys::xdp_multiprog__next_prog(p, mp);
            }
            if names.is_empty() {
                names.extend(name(libxdp_sys::xdp_multiprog__main_prog(mp)));
            }
        }
        libxdp_sys::xdp_multiprog__close(mp);
    }
    names
}

/// Sends libbpf's and libxdp's messages to the `log` crate (targets "libbpf" and
/// "libxdp") instead of stderr. Without bpffs they warn on every attach.
fn route_library_logs() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: both setters store a function pointer; the callbacks below are
        // `extern "C"` with the exact signatures the libraries declare and are valid
        // for the life of the program.
        unsafe {
            libbpf_sys::libbpf_set_print(Some(libbpf_log));
            libxdp_sys::libxdp_set_print(Some(libxdp_log));
        }
    });
}

// On x86-64 a `va_list` argument is a pointer to the caller's `__va_list_tag`, so
// passing it on as a pointer to `vsnprintf` is exactly what C does. Elsewhere the ABI
// differs and the libraries keep printing to stderr.
#[cfg(target_arch = "x86_64")]
extern "C" {
    fn vsnprintf(buf: *mut c_char, size: usize, fmt: *const c_char, ap: *mut c_void) -> c_int;
}

#[cfg(target_arch = "x86_64")]
unsafe extern "C" fn libbpf_log(
    level: libbpf_sys::libbpf_print_level,
    fmt: *const c_char,
    ap: *mut libbpf_sys::__va_list_tag,
) -> c_int {
    let level = match level {
        libbpf_sys::LIBBPF_WARN => log::Level::Warn,
        libbpf_sys::LIBBPF_INFO => log::Level::Info,
        _ => log::Level::Debug,
    };
    // SAFETY: forwarded unchanged from libbpf, which guarantees a valid format and
    // matching arguments.
    unsafe { forward_log("libbpf", level, fmt, ap.cast()) }
}

#[cfg(target_arch = "x86_64")]
unsafe extern "C" fn libxdp_log(
    level: libxdp_sys::libxdp_print_level,
    fmt: *const c_char,
    ap: *mut libxdp_sys::__va_list_tag,
) -> c_int {
    let level = match level {
        libxdp_sys::libxdp_print_level_LIBXDP_WARN => log::Level::Warn,
        libxdp_sys::libxdp_print_level_LIBXDP_INFO => log::Level::Info,
        _ => log::Level::Debug,
    };
    // SAFETY: as for libbpf.
    unsafe { forward_log("libxdp", level, fmt, ap.cast()) }
}

/// # Safety
/// `fmt` and `ap` must be a printf format and its arguments, as handed to a libbpf or
/// libxdp print callback.
#[cfg(target_arch = "x86_64")]
unsafe fn forward_log(target: &str, level: log::Level, fmt: *const c_char, ap: *mut c_void) -> c_int {
    if !log::log_enabled!(target: target, level) {
        return 0;
    }
    let mut buf = [0u8; 512];
    // SAFETY: `buf` is writable for its whole length and vsnprintf writes at most
    // that many bytes, NUL included; format and arguments are the caller's promise.
    let n = unsafe { vsnprintf(buf.as_mut_ptr().cast(), buf.len(), fmt, ap) };
    if n < 0 {
        return n;
    }
    let end = (n as usize).min(buf.len() - 1);
    let text = String::from_utf8_lossy(&buf[..end]);
    // The libraries prefix their own name; the log target already says it.
    let msg = text.trim_end().trim_start_matches(target).trim_start_matches(": ");
    // Without bpffs libxdp warns on every attach, then falls back to what works.
    let level = if msg.contains("bpffs") { log::Level::Info } else { level };
    log::log!(target: target, level, "{msg}");
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_bad_sizes_and_duplicates_before_touching_the_kernel() {
        let ports = [PortSpec::new(0, "lo", 0)];
        let mut c = AfXdpConfig { ring_size: 1000, ..AfXdpConfig::default() };
        assert!(matches!(validate(&c, &ports), Err(AfXdpError::Config(_))));
        c.ring_size = 1024;
        c.frame_size = 1024;
        assert!(matches!(validate(&c, &ports), Err(AfXdpError::Config(_))));
        c.frame_size = 2048;
        assert!(validate(&c, &ports).is_ok());
        let twice = [PortSpec::new(0, "a", 0), PortSpec::new(1, "a", 0)];
        let e = validate(&c, &twice).unwrap_err();
        assert!(e.to_string().contains("listed twice"), "{e}");
        assert!(validate(&c, &[]).is_err());
    }

    #[test]
    fn a_missing_interface_is_an_error_not_a_panic() {
        match ifindex("vgx-no-such-if") {
            Err(AfXdpError::NoSuchInterface(n)) => assert_eq!(n, "vgx-no-such-if"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn io_is_send() {
        fn send<T: Send>() {}
        send::<AfXdpIo>();
    }
}
