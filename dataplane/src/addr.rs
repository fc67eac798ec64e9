//! Addresses as the data path keeps them: MACs, and IP addresses of either family in
//! one 128-bit word (IPv4 in the low 32 bits) so keys and tables need no enum.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

#[derive(Copy, Clone, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub fn bits(self) -> u8 {
        match self {
            Family::V4 => 32,
            Family::V6 => 128,
        }
    }
    /// Index for per-family arrays: 0 = IPv4, 1 = IPv6.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// An IP address: family plus the address bits (IPv4 in the low 32 bits).
#[derive(Copy, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ip {
    pub family: Family,
    pub bits: u128,
}

impl Ip {
    pub const fn v4(bits: u32) -> Ip {
        Ip { family: Family::V4, bits: bits as u128 }
    }
    pub const fn v6(bits: u128) -> Ip {
        Ip { family: Family::V6, bits }
    }
    pub fn to_std(self) -> IpAddr {
        match self.family {
            Family::V4 => IpAddr::V4(Ipv4Addr::from(self.bits as u32)),
            Family::V6 => IpAddr::V6(Ipv6Addr::from(self.bits)),
        }
    }
    /// Addresses the appliance never forwards: multicast, broadcast, loopback,
    /// unspecified and link-local (DHCP, IMDS, Time Sync, ND live here).
    pub fn is_unroutable(self) -> bool {
        match self.family {
            Family::V4 => {
                let a = self.bits as u32;
                a == 0
                    || a == u32::MAX
                    || a >> 24 == 127
                    || a >> 28 == 0xe // 224.0.0.0/4
                    || a >> 16 == 0xa9fe // 169.254.0.0/16
            }
            Family::V6 => {
                let a = self.bits;
                a == 0 || a == 1 || a >> 120 == 0xff || a >> 118 == 0x3fa // fe80::/10
            }
        }
    }
}

impl From<IpAddr> for Ip {
    fn from(a: IpAddr) -> Ip {
        match a {
            IpAddr::V4(a) => Ip::v4(u32::from(a)),
            IpAddr::V6(a) => Ip::v6(u128::from(a)),
        }
    }
}

impl fmt::Display for Ip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.to_std().fmt(f)
    }
}

impl fmt::Debug for Ip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.to_std().fmt(f)
    }
}

/// A CIDR block, always canonical (host bits zero). The network mask is kept with
/// it because `contains` is on the per-packet path.
#[derive(Copy, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Prefix {
    pub addr: Ip,
    pub len: u8,
    mask: u128,
}

impl Prefix {
    /// Builds a prefix, clearing host bits (`100.68.0.18/18` -> `100.68.0.0/18`).
    pub fn new(addr: Ip, len: u8) -> Prefix {
        assert!(len <= addr.family.bits(), "prefix length beyond the family");
        let mask = Self::mask(addr.family, len);
        Prefix { addr: Ip { family: addr.family, bits: addr.bits & mask }, len, mask }
    }
    pub fn host(addr: Ip) -> Prefix {
        Prefix::new(addr, addr.family.bits())
    }
    pub fn any(family: Family) -> Prefix {
        Prefix::new(Ip { family, bits: 0 }, 0)
    }
    fn mask(family: Family, len: u8) -> u128 {
        let bits = family.bits() as u32;
        let host_bits = bits - len as u32;
        let all: u128 = if bits == 128 { u128::MAX } else { (1u128 << bits) - 1 };
        if host_bits >= 128 {
            0
        } else {
            all & !((1u128 << host_bits) - 1)
        }
    }
    pub fn family(&self) -> Family {
        self.addr.family
    }
    pub fn contains(&self, ip: Ip) -> bool {
        ip.family == self.addr.family && ip.bits & self.mask == self.addr.bits
    }
    /// First and last address covered, as bits.
    pub fn range(&self) -> (u128, u128) {
        let m = self.mask;
        let all: u128 = if self.addr.family == Family::V4 { u32::MAX as u128 } else { u128::MAX };
        (self.addr.bits, self.addr.bits | (all & !m))
    }
    pub fn is_any(&self) -> bool {
        self.len == 0
    }
    pub fn overlaps(&self, other: &Prefix) -> bool {
        self.family() == other.family() && (self.contains(other.addr) || other.contains(self.addr))
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl fmt::Debug for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[derive(Copy, Clone, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct Mac(pub [u8; 6]);

impl Mac {
    pub const BROADCAST: Mac = Mac([0xff; 6]);
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 1 == 1
    }
    pub fn parse(s: &str) -> Option<Mac> {
        let mut out = [0u8; 6];
        let mut parts = s.split([':', '-']);
        for b in out.iter_mut() {
            let p = parts.next()?;
            if p.len() != 2 {
                return None;
            }
            *b = u8::from_str_radix(p, 16).ok()?;
        }
        if parts.next().is_some() {
            return None;
        }
        Some(Mac(out))
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(f, "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", m[0], m[1], m[2], m[3], m[4], m[5])
    }
}

impl fmt::Debug for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_canonicalises_host_bits() {
        let p = Prefix::new(Ip::v4(u32::from(Ipv4Addr::new(100, 68, 0, 18))), 18);
        assert_eq!(p.to_string(), "100.68.0.0/18");
        let p6 = Prefix::new(Ip::v6(u128::from("2001:db8::1".parse::<Ipv6Addr>().unwrap())), 32);
        assert_eq!(p6.to_string(), "2001:db8::/32");
    }

    #[test]
    fn prefix_edges() {
        let any = Prefix::any(Family::V4);
        assert!(any.contains(Ip::v4(0xffff_ffff)));
        assert_eq!(any.range(), (0, 0xffff_ffff));
        let host = Prefix::host(Ip::v6(7));
        assert_eq!(host.range(), (7, 7));
        assert!(!Prefix::any(Family::V6).contains(Ip::v4(1)));
        let p = Prefix::new(Ip::v6(u128::MAX), 1);
        assert_eq!(p.range(), (1 << 127, u128::MAX));
    }

    #[test]
    fn unroutable() {
        assert!(Ip::v4(0xffff_ffff).is_unroutable());
        assert!(Ip::v4(u32::from(Ipv4Addr::new(169, 254, 169, 254))).is_unroutable());
        assert!(Ip::v4(u32::from(Ipv4Addr::new(224, 0, 0, 251))).is_unroutable());
        assert!(!Ip::v4(u32::from(Ipv4Addr::new(198, 19, 0, 10))).is_unroutable());
        assert!(Ip::v6(u128::from("fe80::1".parse::<Ipv6Addr>().unwrap())).is_unroutable());
        assert!(Ip::v6(u128::from("ff02::16".parse::<Ipv6Addr>().unwrap())).is_unroutable());
        assert!(!Ip::v6(u128::from("2600:1f18::1".parse::<Ipv6Addr>().unwrap())).is_unroutable());
    }

    #[test]
    fn mac_parse() {
        assert_eq!(Mac::parse("02:00:00:00:01:0a").unwrap().to_string(), "02:00:00:00:01:0a");
        assert!(Mac::parse("02:00:00:00:01").is_none());
        assert!(Mac::parse("02:00:00:00:01:0a:00").is_none());
        assert!(Mac::parse("zz:00:00:00:01:0a").is_none());
    }
}
