//! Test traffic for the AF_XDP tools: UDP, TCP SYN or TCP ACK over IPv4 for a set of
//! flows, each frame carrying a trailer (magic, sequence number, send time) that the
//! receiving side reads back to count deliveries and measure latency.
//!
//! Sizes are Ethernet frame sizes the way pktgen and RFC 2544 count them: with the
//! 4-byte FCS the NIC appends, so "64 B" writes 60 bytes. A frame is never smaller than
//! its headers plus the trailer (60 B written for UDP, 72 B for TCP).
//!
//! Every frame of a flow is built from a template made once; per frame only the
//! trailer is written and the L4 checksum is finished incrementally (the template's
//! partial sum plus the trailer's words), so building a frame is one copy of its bytes.

use std::net::Ipv4Addr;
use std::ops::RangeInclusive;

pub const MAGIC: [u8; 2] = *b"VG";
/// Magic, sequence number, send time (ns), big-endian.
pub const TRAILER_LEN: usize = 2 + 8 + 8;
pub const FCS_LEN: usize = 4;
/// Simple IMIX, 7:4:1 of 64, 576 and 1500-byte frames, interleaved.
pub const IMIX: [u16; 12] = [64, 576, 64, 64, 576, 64, 1500, 64, 576, 64, 576, 64];

const ETH_LEN: usize = 14;
const IPV4_LEN: usize = 20;
const UDP_LEN: usize = 8;
const TCP_LEN: usize = 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    Udp,
    TcpSyn,
    TcpAck,
}

impl Proto {
    fn l4_len(self) -> usize {
        match self {
            Proto::Udp => UDP_LEN,
            Proto::TcpSyn | Proto::TcpAck => TCP_LEN,
        }
    }

    fn ip_proto(self) -> u8 {
        match self {
            Proto::Udp => 17,
            Proto::TcpSyn | Proto::TcpAck => 6,
        }
    }
}

/// The only addresses the tools send to or from: 198.18.0.0/15, set aside for
/// benchmarking (RFC 2544), which contains 198.19.0.0/16.
pub fn is_benchmark_addr(ip: Ipv4Addr) -> bool {
    u32::from(ip) & 0xfffe_0000 == 0xc612_0000
}

/// What to send. Flow `i` takes the `i`-th value (wrapping) of each range.
#[derive(Clone, Debug)]
pub struct TrafficSpec {
    pub src_mac: [u8; 6],
    pub dst_mac: [u8; 6],
    pub src_ip: RangeInclusive<Ipv4Addr>,
    pub dst_ip: RangeInclusive<Ipv4Addr>,
    pub src_port: RangeInclusive<u16>,
    pub dst_port: RangeInclusive<u16>,
    pub flows: u32,
    pub proto: Proto,
    /// Frame sizes with FCS, used in turn: `[64]`, or [`IMIX`].
    pub sizes: Vec<u16>,
}

struct Template {
    bytes: Vec<u8>,
    /// Where the L4 checksum goes.
    csum_at: usize,
    /// Pseudo-header, L4 header and payload summed with the trailer zeroed.
    partial: u32,
}

/// Prebuilt frames for every (flow, size); see the module doc.
pub struct Templates {
    by_flow: Vec<Template>,
    sizes: usize,
    flows: u64,
    trailer_at: usize,
    udp: bool,
}

impl Templates {
    pub fn new(spec: &TrafficSpec) -> Result<Templates, String> {
        for r in [&spec.src_ip, &spec.dst_ip] {
            for ip in [*r.start(), *r.end()] {
                if !is_benchmark_addr(ip) {
                    return Err(format!(
                        "{ip} is outside 198.18.0.0/15: the tools only send to benchmark \
                         addresses"
                    ));
                }
            }
        }
        let count = |lo: u32, hi: u32, what: &str| {
            if hi < lo {
                Err(format!("empty {what} range"))
            } else {
                Ok(hi - lo + 1)
            }
        };
        let ip = |a: &Ipv4Addr| u32::from(*a);
        let n_src = count(ip(spec.src_ip.start()), ip(spec.src_ip.end()), "source IP")?;
        let n_dst = count(ip(spec.dst_ip.start()), ip(spec.dst_ip.end()), "dest IP")?;
        let n_sport = count((*spec.src_port.start()).into(), (*spec.src_port.end()).into(), "source port")?;
        let n_dport = count((*spec.dst_port.start()).into(), (*spec.dst_port.end()).into(), "dest port")?;
        if spec.flows == 0 || spec.sizes.is_empty() {
            return Err("need at least one flow and one size".into());
        }
        let l4 = spec.proto.l4_len();
        let min = ETH_LEN + IPV4_LEN + l4 + TRAILER_LEN;
        let mut by_flow = Vec::with_capacity(spec.flows as usize * spec.sizes.len());
        for i in 0..spec.flows {
            let src = u32::from(*spec.src_ip.start()) + i % n_src;
            let dst = u32::from(*spec.dst_ip.start()) + i % n_dst;
            let sport = u32::from(*spec.src_port.start()) + i % n_sport;
            let dport = u32::from(*spec.dst_port.start()) + i % n_dport;
            for &size in &spec.sizes {
                let len = (size as usize).saturating_sub(FCS_LEN).max(min);
                by_flow.push(build(spec, src, dst, sport as u16, dport as u16, len, i));
            }
        }
        Ok(Templates {
            by_flow,
            sizes: spec.sizes.len(),
            flows: spec.flows as u64,
            trailer_at: ETH_LEN + IPV4_LEN + l4,
            udp: spec.proto == Proto::Udp,
        })
    }

    /// The largest frame written, in bytes.
    pub fn max_len(&self) -> usize {
        self.by_flow.iter().map(|t| t.bytes.len()).max().unwrap_or(0)
    }

    /// Writes frame number `seq` (flow `seq % flows`, size `seq % sizes`) sent at
    /// `time_ns` into `buf`; returns its length. `buf` must hold `max_len` bytes.
    #[inline]
    pub fn write(&self, seq: u64, time_ns: u64, buf: &mut [u8]) -> usize {
        let flow = (seq % self.flows) as usize;
        let size = (seq % self.sizes as u64) as usize;
        let t = &self.by_flow[flow * self.sizes + size];
        let len = t.bytes.len();
        let frame = &mut buf[..len];
        frame.copy_from_slice(&t.bytes);
        let mut trailer = [0u8; TRAILER_LEN];
        trailer[..2].copy_from_slice(&MAGIC);
        trailer[2..10].copy_from_slice(&seq.to_be_bytes());
        trailer[10..].copy_from_slice(&time_ns.to_be_bytes());
        frame[self.trailer_at..self.trailer_at + TRAILER_LEN].copy_from_slice(&trailer);
        let mut csum = !fold(sum16(&trailer, t.partial));
        if self.udp && csum == 0 {
            // 0 means "no checksum" in UDP over IPv4.
            csum = 0xffff;
        }
        frame[t.csum_at..t.csum_at + 2].copy_from_slice(&csum.to_be_bytes());
        len
    }
}

fn build(spec: &TrafficSpec, src: u32, dst: u32, sport: u16, dport: u16, len: usize, flow: u32) -> Template {
    let mut f = vec![0u8; len];
    f[0..6].copy_from_slice(&spec.dst_mac);
    f[6..12].copy_from_slice(&spec.src_mac);
    f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());

    let ip = &mut f[ETH_LEN..ETH_LEN + IPV4_LEN];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&((len - ETH_LEN) as u16).to_be_bytes());
    ip[6..8].copy_from_slice(&0x4000u16.to_be_bytes()); // don't fragment
    ip[8] = 64;
    ip[9] = spec.proto.ip_proto();
    ip[12..16].copy_from_slice(&src.to_be_bytes());
    ip[16..20].copy_from_slice(&dst.to_be_bytes());
    let ip_csum = !fold(sum16(ip, 0));
    ip[10..12].copy_from_slice(&ip_csum.to_be_bytes());

    let l4_at = ETH_LEN + IPV4_LEN;
    let l4_total = len - l4_at;
    let l4 = &mut f[l4_at..];
    l4[0..2].copy_from_slice(&sport.to_be_bytes());
    l4[2..4].copy_from_slice(&dport.to_be_bytes());
    let csum_at = match spec.proto {
        Proto::Udp => {
            l4[4..6].copy_from_slice(&(l4_total as u16).to_be_bytes());
            l4_at + 6
        }
        Proto::TcpSyn | Proto::TcpAck => {
            // A fixed, per-flow initial sequence number; ACKs acknowledge nothing real.
            l4[4..8].copy_from_slice(&(0x1000_0000u32 ^ flow).to_be_bytes());
            if spec.proto == Proto::TcpAck {
                l4[8..12].copy_from_slice(&1u32.to_be_bytes());
            }
            l4[12] = ((TCP_LEN / 4) as u8) << 4;
            l4[13] = if spec.proto == Proto::TcpSyn { 0x02 } else { 0x10 };
            l4[14..16].copy_from_slice(&64240u16.to_be_bytes());
            l4_at + 16
        }
    };
    let mut pseudo = [0u8; 12];
    pseudo[0..4].copy_from_slice(&src.to_be_bytes());
    pseudo[4..8].copy_from_slice(&dst.to_be_bytes());
    pseudo[9] = spec.proto.ip_proto();
    pseudo[10..12].copy_from_slice(&(l4_total as u16).to_be_bytes());
    let partial = sum16(&f[l4_at..], sum16(&pseudo, 0));
    Template { bytes: f, csum_at, partial }
}

/// One's-complement sum of big-endian 16-bit words (odd tail padded with zero), not
/// folded: callers add more before folding.
fn sum16(data: &[u8], mut acc: u32) -> u32 {
    let mut words = data.chunks_exact(2);
    for w in &mut words {
        acc += u16::from_be_bytes([w[0], w[1]]) as u32;
    }
    if let [last] = words.remainder() {
        acc += (*last as u32) << 8;
    }
    acc
}

fn fold(mut s: u32) -> u16 {
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

/// A frame's trailer, if it is one of ours: `(sequence number, send time in ns)`.
#[inline]
pub fn read_trailer(frame: &[u8]) -> Option<(u64, u64)> {
    if frame.len() < ETH_LEN + IPV4_LEN || frame[12..14] != [0x08, 0x00] {
        return None;
    }
    let ihl = (frame[ETH_LEN] & 0x0f) as usize * 4;
    let l4_at = ETH_LEN + ihl;
    let l4_len = match frame[ETH_LEN + 9] {
        17 => UDP_LEN,
        6 => (*frame.get(l4_at + 12)? >> 4) as usize * 4,
        _ => return None,
    };
    let t = frame.get(l4_at + l4_len..l4_at + l4_len + TRAILER_LEN)?;
    if t[..2] != MAGIC {
        return None;
    }
    let seq = u64::from_be_bytes(t[2..10].try_into().ok()?);
    let time = u64::from_be_bytes(t[10..18].try_into().ok()?);
    Some((seq, time))
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{NetHeaders, PacketHeaders, TransportHeader};

    fn spec(proto: Proto, sizes: Vec<u16>) -> TrafficSpec {
        TrafficSpec {
            src_mac: [2, 0, 0, 0, 0, 1],
            dst_mac: [2, 0, 0, 0, 0, 2],
            src_ip: "198.18.0.1".parse().unwrap()..="198.18.0.4".parse().unwrap(),
            dst_ip: "198.19.0.2".parse().unwrap()..="198.19.0.2".parse().unwrap(),
            src_port: 1024..=65535,
            dst_port: 9..=9,
            flows: 64,
            proto,
            sizes,
        }
    }

    /// Parses with etherparse and checks both checksums and the trailer.
    fn check(frame: &[u8], seq: u64, time: u64) {
        let p = PacketHeaders::from_ethernet_slice(frame).expect("parses");
        let Some(NetHeaders::Ipv4(ip, _)) = &p.net else { panic!("not IPv4") };
        assert_eq!(ip.header_checksum, ip.calc_header_checksum());
        assert_eq!(ip.total_len as usize, frame.len() - 14);
        let payload = &frame[34 + p.transport.as_ref().unwrap().header_len()..];
        match p.transport.as_ref().unwrap() {
            TransportHeader::Udp(u) => {
                assert_eq!(u.checksum, u.calc_checksum_ipv4(ip, payload).unwrap());
            }
            TransportHeader::Tcp(t) => {
                assert_eq!(t.checksum, t.calc_checksum_ipv4(ip, payload).unwrap());
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(read_trailer(frame), Some((seq, time)));
    }

    #[test]
    fn frames_are_valid_with_the_trailer_in_place() {
        for proto in [Proto::Udp, Proto::TcpSyn, Proto::TcpAck] {
            let t = Templates::new(&spec(proto, IMIX.to_vec())).unwrap();
            let mut buf = vec![0u8; t.max_len()];
            for seq in [0u64, 1, 7, 63, 64, 1000, u64::MAX / 3] {
                let n = t.write(seq, seq.wrapping_mul(7919), &mut buf);
                check(&buf[..n], seq, seq.wrapping_mul(7919));
            }
        }
    }

    #[test]
    fn sizes_count_the_fcs_and_never_cut_the_trailer() {
        let t = Templates::new(&spec(Proto::Udp, vec![64])).unwrap();
        let mut buf = vec![0u8; 2048];
        assert_eq!(t.write(0, 0, &mut buf), 60);
        let t = Templates::new(&spec(Proto::TcpSyn, vec![64])).unwrap();
        assert_eq!(t.write(0, 0, &mut buf), 72);
        let t = Templates::new(&spec(Proto::Udp, IMIX.to_vec())).unwrap();
        let lens: Vec<usize> = (0..12).map(|s| t.write(s, 0, &mut buf)).collect();
        assert_eq!(lens.iter().filter(|&&l| l == 60).count(), 7);
        assert_eq!(lens.iter().filter(|&&l| l == 572).count(), 4);
        assert_eq!(lens.iter().filter(|&&l| l == 1496).count(), 1);
    }

    #[test]
    fn flows_walk_the_ranges() {
        let t = Templates::new(&spec(Proto::Udp, vec![64])).unwrap();
        let mut buf = vec![0u8; 128];
        let mut tuples = std::collections::HashSet::new();
        for seq in 0..128 {
            t.write(seq, 0, &mut buf);
            tuples.insert(buf[26..38].to_vec()); // addresses and ports
        }
        assert_eq!(tuples.len(), 64);
        t.write(5, 0, &mut buf);
        assert_eq!(&buf[26..30], &[198, 18, 0, 2]); // 5 % 4 source addresses
        assert_eq!(u16::from_be_bytes([buf[34], buf[35]]), 1029);
    }

    #[test]
    fn refuses_addresses_outside_the_benchmark_range() {
        let mut s = spec(Proto::Udp, vec![64]);
        s.dst_ip = "10.0.0.1".parse().unwrap()..="10.0.0.1".parse().unwrap();
        assert!(Templates::new(&s).is_err());
        s.dst_ip = "198.19.255.255".parse().unwrap()..="198.20.0.0".parse().unwrap();
        assert!(Templates::new(&s).is_err());
        assert!(is_benchmark_addr("198.19.255.255".parse().unwrap()));
        assert!(!is_benchmark_addr("198.17.255.255".parse().unwrap()));
    }

    #[test]
    fn foreign_frames_have_no_trailer() {
        assert_eq!(read_trailer(&[0u8; 10]), None);
        let t = Templates::new(&spec(Proto::Udp, vec![64])).unwrap();
        let mut buf = vec![0u8; 60];
        t.write(3, 4, &mut buf);
        buf[42] = b'X';
        assert_eq!(read_trailer(&buf), None);
    }
}
