//! Capture files as ports: read pcapng (or classic pcap) frames with their interface
//! names and timestamps, write pcapng with one interface per port. Each frame of a
//! pcapng capture arrives on the port named like its interface.
//!
//! The format handling is our own (a few hundred lines) because replay depends on
//! two details general crates get wrong or hide: the per-interface timestamp
//! resolution (`if_tsresol`, microseconds when absent) and interface names.

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::Path;

use super::{FrameHandle, Io, RxFrame};
use crate::conntrack::Nanos;
use crate::tables::PortId;

/// One captured frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Captured {
    /// The interface name (pcapng `if_name`), or `None` (classic pcap, unnamed).
    pub interface: Option<String>,
    pub time: Nanos,
    pub data: Vec<u8>,
}

fn bad(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

/// Reads every frame of a pcapng or pcap file.
pub fn read_capture(path: &Path) -> io::Result<Vec<Captured>> {
    let mut bytes = Vec::new();
    BufReader::new(File::open(path)?).read_to_end(&mut bytes)?;
    parse_capture(&bytes)
}

pub fn parse_capture(b: &[u8]) -> io::Result<Vec<Captured>> {
    match b.get(..4) {
        Some([0x0a, 0x0d, 0x0d, 0x0a]) => parse_pcapng(b),
        Some(_) => parse_pcap(b),
        None => Err(bad("capture file too short")),
    }
}

fn u16_at(b: &[u8], at: usize, le: bool) -> io::Result<u16> {
    let s: [u8; 2] = b.get(at..at + 2).ok_or_else(|| bad("truncated"))?.try_into().unwrap_or([0; 2]);
    Ok(if le { u16::from_le_bytes(s) } else { u16::from_be_bytes(s) })
}

fn u32_at(b: &[u8], at: usize, le: bool) -> io::Result<u32> {
    let s: [u8; 4] = b.get(at..at + 4).ok_or_else(|| bad("truncated"))?.try_into().unwrap_or([0; 4]);
    Ok(if le { u32::from_le_bytes(s) } else { u32::from_be_bytes(s) })
}

fn parse_pcap(b: &[u8]) -> io::Result<Vec<Captured>> {
    let (le, nanos) = match b.get(..4) {
        Some([0xd4, 0xc3, 0xb2, 0xa1]) => (true, false),
        Some([0xa1, 0xb2, 0xc3, 0xd4]) => (false, false),
        Some([0x4d, 0x3c, 0xb2, 0xa1]) => (true, true),
        Some([0xa1, 0xb2, 0x3c, 0x4d]) => (false, true),
        _ => return Err(bad("not a pcap or pcapng file")),
    };
    if u32_at(b, 20, le)? != 1 {
        return Err(bad("only Ethernet (linktype 1) captures are supported"));
    }
    let mut out = Vec::new();
    let mut at = 24;
    while at < b.len() {
        let secs = u32_at(b, at, le)? as u64;
        let frac = u32_at(b, at + 4, le)? as u64;
        let caplen = u32_at(b, at + 8, le)? as usize;
        let data = b.get(at + 16..at + 16 + caplen).ok_or_else(|| bad("truncated packet"))?;
        let time = secs * 1_000_000_000 + if nanos { frac } else { frac * 1000 };
        out.push(Captured { interface: None, time, data: data.to_vec() });
        at += 16 + caplen;
    }
    Ok(out)
}

struct Interface {
    name: Option<String>,
    /// Timestamp units per second.
    units: u64,
}

fn parse_pcapng(b: &[u8]) -> io::Result<Vec<Captured>> {
    let mut out = Vec::new();
    let mut interfaces: Vec<Interface> = Vec::new();
    let mut le = true;
    let mut at = 0;
    while at + 12 <= b.len() {
        let raw_type = u32::from_le_bytes(b[at..at + 4].try_into().unwrap_or([0; 4]));
        if raw_type == 0x0a0d_0d0a {
            // Section header: the byte-order magic decides the endianness of the section.
            le = match b.get(at + 8..at + 12) {
                Some([0x4d, 0x3c, 0x2b, 0x1a]) => true,
                Some([0x1a, 0x2b, 0x3c, 0x4d]) => false,
                _ => return Err(bad("bad pcapng byte-order magic")),
            };
            interfaces.clear();
        }
        let btype = u32_at(b, at, le)?;
        let len = u32_at(b, at + 4, le)? as usize;
        if len < 12 || at + len > b.len() || !len.is_multiple_of(4) {
            return Err(bad(format!("bad pcapng block length {len} at offset {at}")));
        }
        let body = &b[at + 8..at + len - 4];
        match btype {
            1 => {
                if u16_at(body, 0, le)? != 1 {
                    return Err(bad("only Ethernet (linktype 1) interfaces are supported"));
                }
                let mut iface = Interface { name: None, units: 1_000_000 };
                for (code, val) in options(body.get(8..).unwrap_or(&[]), le)? {
                    match code {
                        2 => iface.name = Some(String::from_utf8_lossy(val).trim_end_matches('\0').to_string()),
                        9 => {
                            let r = *val.first().ok_or_else(|| bad("empty if_tsresol"))?;
                            let exp = (r & 0x7f) as u32;
                            iface.units = if r & 0x80 == 0 { 10u64.checked_pow(exp) } else { 2u64.checked_pow(exp) }
                                .ok_or_else(|| bad("if_tsresol out of range"))?;
                        }
                        _ => {}
                    }
                }
                interfaces.push(iface);
            }
            6 => {
                let ifid = u32_at(body, 0, le)? as usize;
                let ts = (u32_at(body, 4, le)? as u64) << 32 | u32_at(body, 8, le)? as u64;
                let caplen = u32_at(body, 12, le)? as usize;
                let data = body.get(20..20 + caplen).ok_or_else(|| bad("truncated enhanced packet"))?;
                let iface =
                    interfaces.get(ifid).ok_or_else(|| bad(format!("packet on undeclared interface {ifid}")))?;
                let time = (ts as u128 * 1_000_000_000 / iface.units as u128) as u64;
                out.push(Captured { interface: iface.name.clone(), time, data: data.to_vec() });
            }
            3 => {
                let orig = u32_at(body, 0, le)? as usize;
                let data = body.get(4..4 + orig).unwrap_or(body.get(4..).unwrap_or(&[]));
                let name = interfaces.first().and_then(|i| i.name.clone());
                out.push(Captured { interface: name, time: 0, data: data.to_vec() });
            }
            _ => {}
        }
        at += len;
    }
    if at != b.len() {
        return Err(bad(format!("truncated pcapng block at offset {at}")));
    }
    Ok(out)
}

fn options(mut b: &[u8], le: bool) -> io::Result<Vec<(u16, &[u8])>> {
    let mut out = Vec::new();
    while b.len() >= 4 {
        let code = u16_at(b, 0, le)?;
        let len = u16_at(b, 2, le)? as usize;
        if code == 0 {
            break;
        }
        let val = b.get(4..4 + len).ok_or_else(|| bad("truncated option"))?;
        out.push((code, val));
        b = b.get((4 + len).div_ceil(4) * 4..).unwrap_or(&[]);
    }
    Ok(out)
}

/// Writes a pcapng file with one interface per distinct name, nanosecond timestamps.
pub struct PcapNgWriter<W: Write> {
    out: W,
    interfaces: HashMap<String, u32>,
}

impl PcapNgWriter<BufWriter<File>> {
    pub fn create(path: &Path) -> io::Result<Self> {
        PcapNgWriter::new(BufWriter::new(File::create(path)?))
    }
}

impl<W: Write> PcapNgWriter<W> {
    pub fn new(mut out: W) -> io::Result<Self> {
        let mut shb = Vec::new();
        shb.extend_from_slice(&0x1a2b_3c4du32.to_le_bytes());
        shb.extend_from_slice(&1u16.to_le_bytes());
        shb.extend_from_slice(&0u16.to_le_bytes());
        shb.extend_from_slice(&u64::MAX.to_le_bytes()); // section length unknown
        write_block(&mut out, 0x0a0d_0d0a, &shb)?;
        Ok(PcapNgWriter { out, interfaces: HashMap::new() })
    }

    pub fn write(&mut self, interface: &str, time: Nanos, frame: &[u8]) -> io::Result<()> {
        let id = match self.interfaces.get(interface) {
            Some(&id) => id,
            None => {
                let id = self.interfaces.len() as u32;
                let mut idb = Vec::new();
                idb.extend_from_slice(&1u16.to_le_bytes()); // LINKTYPE_ETHERNET
                idb.extend_from_slice(&0u16.to_le_bytes());
                idb.extend_from_slice(&0u32.to_le_bytes()); // snaplen: none
                push_option(&mut idb, 2, interface.as_bytes());
                push_option(&mut idb, 9, &[9]); // nanoseconds
                idb.extend_from_slice(&[0, 0, 0, 0]);
                write_block(&mut self.out, 1, &idb)?;
                self.interfaces.insert(interface.to_string(), id);
                id
            }
        };
        let mut epb = Vec::with_capacity(20 + frame.len() + 4);
        epb.extend_from_slice(&id.to_le_bytes());
        epb.extend_from_slice(&((time >> 32) as u32).to_le_bytes());
        epb.extend_from_slice(&(time as u32).to_le_bytes());
        epb.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        epb.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        epb.extend_from_slice(frame);
        while !epb.len().is_multiple_of(4) {
            epb.push(0);
        }
        write_block(&mut self.out, 6, &epb)
    }

    pub fn finish(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

fn push_option(b: &mut Vec<u8>, code: u16, val: &[u8]) {
    b.extend_from_slice(&code.to_le_bytes());
    b.extend_from_slice(&(val.len() as u16).to_le_bytes());
    b.extend_from_slice(val);
    while !b.len().is_multiple_of(4) {
        b.push(0);
    }
}

fn write_block<W: Write>(out: &mut W, btype: u32, body: &[u8]) -> io::Result<()> {
    let len = (body.len() + 12) as u32;
    out.write_all(&btype.to_le_bytes())?;
    out.write_all(&len.to_le_bytes())?;
    out.write_all(body)?;
    out.write_all(&len.to_le_bytes())
}

/// A capture replayed as ports: frames arrive on the port named like their interface
/// (or `default_port` for unnamed ones) with their capture timestamps; frames sent are
/// written to a pcapng writer on interfaces named after the egress port.
pub struct PcapIo<W: Write> {
    frames: VecDeque<(PortId, Nanos, Vec<u8>)>,
    buffers: Vec<(Vec<u8>, Nanos)>,
    free: Vec<usize>,
    port_names: Vec<String>,
    out: Option<PcapNgWriter<W>>,
}

pub const PCAP_BUFFER: usize = 65536 + 128;

impl<W: Write> PcapIo<W> {
    /// `port_of` maps an interface name (or `None`) to a port.
    pub fn new(
        captured: Vec<Captured>,
        port_names: Vec<String>,
        port_of: impl Fn(Option<&str>) -> Option<PortId>,
        out: Option<PcapNgWriter<W>>,
    ) -> io::Result<Self> {
        let mut frames = VecDeque::with_capacity(captured.len());
        for (i, c) in captured.into_iter().enumerate() {
            let port = port_of(c.interface.as_deref()).ok_or_else(|| {
                bad(format!(
                    "frame {i}: interface {:?} is not a port of the config",
                    c.interface.as_deref().unwrap_or("(unnamed)")
                ))
            })?;
            if c.data.len() > PCAP_BUFFER - 128 {
                return Err(bad(format!("frame {i} is larger than 64 KiB")));
            }
            frames.push_back((port, c.time, c.data));
        }
        Ok(PcapIo { frames, buffers: Vec::new(), free: Vec::new(), port_names, out })
    }

    pub fn finish(self) -> io::Result<Option<W>> {
        self.out.map(|w| w.finish()).transpose()
    }
}

impl<W: Write> Io for PcapIo<W> {
    fn rx(&mut self, out: &mut Vec<RxFrame>, max: usize) -> usize {
        let mut n = 0;
        while n < max {
            let Some((port, time, data)) = self.frames.pop_front() else {
                break;
            };
            let i = self.free.pop().unwrap_or_else(|| {
                self.buffers.push((vec![0; PCAP_BUFFER], 0));
                self.buffers.len() - 1
            });
            self.buffers[i].0[..data.len()].copy_from_slice(&data);
            self.buffers[i].1 = time;
            out.push(RxFrame { handle: FrameHandle(i as u64), len: data.len(), port, time: Some(time) });
            n += 1;
        }
        n
    }
    fn buffer(&mut self, h: FrameHandle) -> &mut [u8] {
        &mut self.buffers[h.0 as usize].0
    }
    fn tx(&mut self, port: PortId, h: FrameHandle, head: usize, len: usize) {
        let (buf, time) = &self.buffers[h.0 as usize];
        if let Some(w) = &mut self.out {
            let name = self.port_names.get(port as usize).map_or("?", String::as_str);
            if let Err(e) = w.write(name, *time, &buf[head..head + len]) {
                log::error!("writing the output capture failed: {e}");
            }
        }
        self.free.push(h.0 as usize);
    }
    fn release(&mut self, h: FrameHandle) {
        self.free.push(h.0 as usize);
    }
    fn alloc(&mut self) -> Option<FrameHandle> {
        let i = self.free.pop().unwrap_or_else(|| {
            self.buffers.push((vec![0; PCAP_BUFFER], 0));
            self.buffers.len() - 1
        });
        Some(FrameHandle(i as u64))
    }
    fn flush(&mut self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pcapng_round_trip_keeps_names_and_nanoseconds() {
        let mut w = PcapNgWriter::new(Vec::new()).unwrap();
        w.write("web", 1_700_000_000_123_456_789, &[1, 2, 3]).unwrap();
        w.write("internet", 1_700_000_001_000_000_000, &[4; 61]).unwrap();
        w.write("web", 5, &[]).unwrap();
        let bytes = w.finish().unwrap();
        let got = parse_capture(&bytes).unwrap();
        assert_eq!(got.len(), 3);
        assert_eq!(
            got[0],
            Captured { interface: Some("web".into()), time: 1_700_000_000_123_456_789, data: vec![1, 2, 3] }
        );
        assert_eq!(got[1].interface.as_deref(), Some("internet"));
        assert_eq!(got[1].data.len(), 61);
        assert_eq!(got[2].time, 5);
    }

    #[test]
    fn classic_pcap_microseconds() {
        let mut b = Vec::new();
        b.extend_from_slice(&[0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0]);
        b.extend_from_slice(&[0; 8]);
        b.extend_from_slice(&65535u32.to_le_bytes());
        b.extend_from_slice(&1u32.to_le_bytes());
        b.extend_from_slice(&10u32.to_le_bytes());
        b.extend_from_slice(&7u32.to_le_bytes());
        b.extend_from_slice(&2u32.to_le_bytes());
        b.extend_from_slice(&2u32.to_le_bytes());
        b.extend_from_slice(&[9, 9]);
        let got = parse_capture(&b).unwrap();
        assert_eq!(got, vec![Captured { interface: None, time: 10_000_007_000, data: vec![9, 9] }]);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for junk in [
            &[][..],
            &[0x0a, 0x0d, 0x0d, 0x0a, 0xff],
            &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25],
        ] {
            assert!(parse_capture(junk).is_err());
        }
    }
}
