//! Network namespaces for the tools and tests: a thread can step into a namespace made
//! by `ip netns add` (scripts/netns/topo.sh) and back, so one process can drive hosts
//! that live in different namespaces.
//!
//! A socket stays in the namespace it was created in, wherever its thread goes next;
//! an interface name or index, though, is looked up in the thread's current namespace.
//! Whatever names interfaces (binding an AF_XDP socket, libxdp detaching its program
//! on drop) must therefore run inside the right one: [`InNetns`] makes sure of it.

use std::{
    ffi::CString,
    fs::File,
    io,
    os::fd::{AsRawFd, RawFd},
};

/// While alive, the current thread is in another network namespace; dropping it
/// returns the thread to the namespace it came from.
pub struct NetnsGuard {
    home: File,
}

impl NetnsGuard {
    /// Moves the calling thread into the namespace `ip netns` knows as `name`.
    pub fn enter(name: &str) -> io::Result<NetnsGuard> {
        let home = File::open("/proc/thread-self/ns/net")?;
        let target = File::open(format!("/run/netns/{name}"))
            .map_err(|e| io::Error::new(e.kind(), format!("network namespace {name:?}: {e}")))?;
        setns(target.as_raw_fd())?;
        Ok(NetnsGuard { home })
    }
}

impl Drop for NetnsGuard {
    fn drop(&mut self) {
        if let Err(e) = setns(self.home.as_raw_fd()) {
            // Staying in the wrong namespace would make every later lookup lie.
            panic!("cannot return to the original network namespace: {e}");
        }
    }
}

fn setns(fd: RawFd) -> io::Result<()> {
    // SAFETY: `fd` is an open namespace file owned by the caller for the duration of
    // the call; setns(2) with CLONE_NEWNET only changes this thread's namespace.
    if unsafe { libc::setns(fd, libc::CLONE_NEWNET) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// A value made inside a namespace (or the current one, for `None`) and dropped inside
/// it too.
pub struct InNetns<T> {
    value: Option<T>,
    netns: Option<String>,
}

impl<T> InNetns<T> {
    /// Runs `make` inside `netns`.
    pub fn make<E: From<io::Error>>(netns: Option<&str>, make: impl FnOnce() -> Result<T, E>) -> Result<InNetns<T>, E> {
        let _guard = netns.map(NetnsGuard::enter).transpose()?;
        Ok(InNetns { value: Some(make()?), netns: netns.map(str::to_string) })
    }

    pub fn get(&mut self) -> &mut T {
        self.value.as_mut().expect("present until drop")
    }
}

impl<T> Drop for InNetns<T> {
    fn drop(&mut self) {
        let guard = match self.netns.as_deref().map(NetnsGuard::enter).transpose() {
            Ok(g) => g,
            Err(e) => {
                log::error!("cannot enter {:?} to clean up: {e}", self.netns);
                None
            }
        };
        drop(self.value.take());
        drop(guard);
    }
}

/// The MAC address of `ifname` in the current namespace (SIOCGIFHWADDR: works where
/// /sys shows another namespace's devices, as it does after `setns`).
pub fn mac_of(ifname: &str) -> io::Result<[u8; 6]> {
    let name = CString::new(ifname).map_err(|_| io::Error::other("bad interface name"))?;
    let bytes = name.as_bytes_with_nul();
    // SAFETY: all-zero is a valid `ifreq`.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    if bytes.len() > req.ifr_name.len() {
        return Err(io::Error::other(format!("interface name {ifname:?} too long")));
    }
    for (d, s) in req.ifr_name.iter_mut().zip(bytes) {
        *d = *s as libc::c_char;
    }
    // SAFETY: a plain datagram socket, closed below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: SIOCGIFHWADDR reads `ifr_name` and writes the `ifr_hwaddr` member of the
    // `ifreq` we own; `fd` is the socket just opened.
    let r = unsafe { libc::ioctl(fd, libc::SIOCGIFHWADDR, &mut req) };
    let err = io::Error::last_os_error();
    // SAFETY: closing the fd opened above, once.
    unsafe { libc::close(fd) };
    if r < 0 {
        return Err(io::Error::new(err.kind(), format!("{ifname}: {err}")));
    }
    // SAFETY: the ioctl succeeded, so the kernel filled `ifru_hwaddr`.
    let data = unsafe { req.ifr_ifru.ifru_hwaddr.sa_data };
    let mut mac = [0u8; 6];
    for (d, s) in mac.iter_mut().zip(data.iter()) {
        *d = *s as u8;
    }
    Ok(mac)
}

pub fn format_mac(mac: &[u8; 6]) -> String {
    mac.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

pub fn parse_mac(s: &str) -> Result<[u8; 6], String> {
    let parts: Vec<&str> = s.split(':').collect();
    if parts.len() != 6 {
        return Err(format!("{s:?} is not a MAC address"));
    }
    let mut mac = [0u8; 6];
    for (d, p) in mac.iter_mut().zip(parts) {
        *d = u8::from_str_radix(p, 16).map_err(|_| format!("{s:?} is not a MAC address"))?;
    }
    Ok(mac)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_round_trip() {
        let m = parse_mac("02:00:0a:ff:10:01").unwrap();
        assert_eq!(m, [2, 0, 10, 255, 16, 1]);
        assert_eq!(format_mac(&m), "02:00:0a:ff:10:01");
        assert!(parse_mac("02:00").is_err());
        assert!(parse_mac("zz:00:00:00:00:00").is_err());
    }

    #[test]
    fn loopback_has_the_zero_mac() {
        assert_eq!(mac_of("lo").unwrap(), [0; 6]);
        assert!(mac_of("vgx-no-such-if").is_err());
    }
}
