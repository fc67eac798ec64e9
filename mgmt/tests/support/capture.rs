//! Sends a frame through the harness's pipeline and keeps what leaves: the verdict
//! and, for a forward, the destination MAC of the frame sent.

#![allow(dead_code)]

use dataplane::pipeline::{Frame, Verdict};

use super::harness::{describe, Harness};

pub struct Sent {
    pub verdict: String,
    pub dst_mac: Option<[u8; 6]>,
    /// The frame sent out, for a forward.
    pub out: Vec<u8>,
}

pub fn send(h: &mut Harness, port: &str, frame: &[u8]) -> Sent {
    let pid = h.tables.port_by_name(port).unwrap_or_else(|| panic!("no port {port}"));
    let mut buf = vec![0u8; frame.len().max(2048)];
    buf[..frame.len()].copy_from_slice(frame);
    let o = {
        let mut f = Frame { buf: &mut buf, len: frame.len(), port: pid, time: h.now };
        h.pipeline.process_frame(&h.tables, &mut f, &mut ())
    };
    let (dst_mac, out) = match o.verdict {
        Verdict::Forward(_) => {
            let mut m = [0u8; 6];
            m.copy_from_slice(&buf[o.head..o.head + 6]);
            (Some(m), buf[o.head..o.head + o.len].to_vec())
        }
        _ => (None, Vec::new()),
    };
    Sent { verdict: describe(&h.tables, o.verdict), dst_mac, out }
}
