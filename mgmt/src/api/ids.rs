//! New resource ids shaped like EC2's: `prefix-` and 17 lowercase hex digits.

use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};

/// A fresh id (`sg-0123456789abcdef0`) that `taken` does not already know.
pub fn new_id(prefix: &str, taken: impl Fn(&str) -> bool) -> String {
    loop {
        let id = format!("{prefix}-{}", random_hex17());
        if !taken(&id) {
            return id;
        }
    }
}

fn random_hex17() -> String {
    let mut bytes = [0u8; 9];
    let from_kernel = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes)).is_ok();
    if !from_kernel {
        // No /dev/urandom (odd containers): the time, the pid and a counter are unique
        // enough for ids that are also checked against the existing ones.
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let seed = format!("{nanos}/{}/{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed));
        let hex = crate::validate::derived_id("x", &seed);
        return hex[2..].to_string();
    }
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    hex[..17].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::is_resource_id;

    #[test]
    fn ids_look_like_ec2_ids_and_avoid_taken_ones() {
        let a = new_id("sg", |_| false);
        assert!(is_resource_id(&a, "sg"), "{a}");
        let b = new_id("acl", |id| id == a);
        assert!(is_resource_id(&b, "acl"), "{b}");
        assert_ne!(a, new_id("sg", |_| false));
    }
}
