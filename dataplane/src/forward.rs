//! Where a frame comes from and where it goes: the source ENI (by port and source
//! MAC), the source/destination check, and the route (destination IP -> ENI, or the
//! uplink for addresses outside the VPC).

use crate::addr::{Ip, Mac};
use crate::pipeline::DropReason;
use crate::tables::{EniId, PortId, Tables};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    Eni(EniId),
    /// Outside the VPC, arriving on this uplink port.
    Uplink(PortId),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dest {
    Eni(EniId),
    Uplink(PortId),
}

impl Source {
    pub fn eni(self) -> Option<EniId> {
        match self {
            Source::Eni(e) => Some(e),
            Source::Uplink(_) => None,
        }
    }
}

impl Dest {
    pub fn eni(self) -> Option<EniId> {
        match self {
            Dest::Eni(e) => Some(e),
            Dest::Uplink(_) => None,
        }
    }
}

/// The ENI a frame belongs to: the one whose MAC is the frame's source MAC *and*
/// which the ingress port lists. Uplink frames come from outside.
#[inline]
pub fn source(t: &Tables, port: PortId, src_mac: Mac) -> Result<Source, DropReason> {
    let p = t.ports.get(port as usize).ok_or(DropReason::UnknownSource)?;
    if p.uplink {
        return Ok(Source::Uplink(port));
    }
    t.by_mac.get(&Tables::mac_key(port, src_mac)).map(|&e| Source::Eni(e)).ok_or(DropReason::UnknownSource)
}

/// The source/destination check on the sending side: an ENI may only send from its
/// own addresses (unless its check is off), and nothing from outside may claim a VPC
/// address.
#[inline]
pub fn check_source(t: &Tables, src: Source, ip: Ip) -> Result<(), DropReason> {
    match src {
        Source::Eni(e) => {
            let eni = t.eni(e).ok_or(DropReason::UnknownSource)?;
            if eni.source_dest_check && !eni.owns(ip) {
                return Err(DropReason::SrcDstCheck);
            }
        }
        Source::Uplink(_) => {
            if t.vpc_of(ip).is_some() {
                return Err(DropReason::UnknownSource);
            }
        }
    }
    Ok(())
}

/// Routes by destination address. An address of the sender's VPC that no ENI owns
/// (the reserved `.1`-`.3` included) is `no-route`; an address outside it leaves by
/// the uplink. Nothing goes back out the uplink it came from, and an ENI's frames to
/// itself never reach the wire, so they are `no-route` too.
#[inline]
pub fn route(t: &Tables, src: Source, dst: Ip) -> Result<Dest, DropReason> {
    if dst.is_unroutable() {
        return Err(DropReason::NoRoute);
    }
    let owner = t.eni_at(dst).and_then(|e| t.eni(e).map(|eni| (e, eni)));
    match src {
        Source::Eni(a) => {
            let from = t.eni(a).ok_or(DropReason::UnknownSource)?;
            match owner {
                Some((b, to)) if to.vpc == from.vpc => {
                    if b == a || to.port.is_none() {
                        Err(DropReason::NoRoute)
                    } else {
                        Ok(Dest::Eni(b))
                    }
                }
                _ if t.vpc_of(dst) == Some(from.vpc) => Err(DropReason::NoRoute),
                _ => t.uplink.map(Dest::Uplink).ok_or(DropReason::NoRoute),
            }
        }
        Source::Uplink(_) => match owner {
            Some((b, to)) if to.port.is_some() => Ok(Dest::Eni(b)),
            _ => Err(DropReason::NoRoute),
        },
    }
}

/// The port and next-hop MAC for a destination.
#[inline]
pub fn egress(t: &Tables, dest: Dest) -> Option<(PortId, Mac)> {
    match dest {
        Dest::Eni(e) => {
            let eni = t.eni(e)?;
            Some((eni.port?, eni.mac))
        }
        Dest::Uplink(p) => Some((p, t.ports[p as usize].gateway_mac)),
    }
}
