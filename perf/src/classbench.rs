//! ClassBench filter sets (`shared/data/classbench/`), read as security-group rules:
//! the source prefix is the peer, the destination port range the port range, the
//! protocol the protocol. Destination prefix, source ports and TCP flags have no
//! counterpart in a security group and are ignored.

use std::path::{Path, PathBuf};

/// One ClassBench filter, reduced to what a security-group rule can express.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Filter {
    pub src: u32,
    pub src_len: u8,
    pub dport_lo: u16,
    pub dport_hi: u16,
    /// `None` = any protocol.
    pub proto: Option<u8>,
}

/// Where the shared data lives, relative to the workspace.
pub fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/classbench")
}

pub fn parse(text: &str) -> Result<Vec<Filter>, String> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| parse_line(l).map_err(|e| format!("line {}: {e}", i + 1)))
        .collect()
}

fn parse_line(line: &str) -> Result<Filter, String> {
    let fields: Vec<&str> = line.trim_start_matches('@').split('\t').map(str::trim).collect();
    if fields.len() < 5 {
        return Err(format!("expected 5+ tab-separated fields: {line:?}"));
    }
    let (addr, len) = fields[0].split_once('/').ok_or("source prefix")?;
    let src: std::net::Ipv4Addr = addr.parse().map_err(|_| "source address")?;
    let src_len: u8 = len.parse().map_err(|_| "source length")?;
    let range = |s: &str| -> Result<(u16, u16), String> {
        let (a, b) = s.split_once(':').ok_or("port range")?;
        Ok((a.trim().parse().map_err(|_| "port")?, b.trim().parse().map_err(|_| "port")?))
    };
    let (dport_lo, dport_hi) = range(fields[3])?;
    let (p, mask) = fields[4].split_once('/').ok_or("protocol")?;
    let p = u8::from_str_radix(p.trim_start_matches("0x"), 16).map_err(|_| "protocol")?;
    let mask = u8::from_str_radix(mask.trim_start_matches("0x"), 16).map_err(|_| "protocol mask")?;
    let src = u32::from(src) & if src_len == 0 { 0 } else { u32::MAX << (32 - src_len as u32) };
    Ok(Filter { src, src_len, dport_lo, dport_hi, proto: (mask != 0).then_some(p) })
}

pub fn load(name: &str) -> Result<Vec<Filter>, String> {
    let path: &Path = &data_dir().join(name);
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    parse(&text)
}
