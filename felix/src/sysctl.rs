//! The sysctls felix and the CNI plumbing set (calico.md §1.2, §3.5), as data, and a
//! read-compare-write helper over `/proc/sys` of the calling thread's network namespace. Writing
//! only on difference keeps an agent restart free of kernel writes.

use std::io;

/// Global forwarding, set once per namespace.
pub const IP_FORWARD: (&str, &str) = ("net/ipv4/ip_forward", "1");

/// Per workload link, set when the link is up: `(key under /proc/sys, value)`.
pub fn workload_link_sysctls(ifname: &str) -> Vec<(String, &'static str)> {
    vec![
        (format!("net/ipv4/conf/{ifname}/proxy_arp"), "1"),
        (format!("net/ipv4/neigh/{ifname}/proxy_delay"), "0"),
        (format!("net/ipv4/conf/{ifname}/forwarding"), "1"),
        (format!("net/ipv4/conf/{ifname}/route_localnet"), "1"),
        (format!("net/ipv6/conf/{ifname}/accept_ra"), "0"),
        (format!("net/ipv6/conf/{ifname}/proxy_ndp"), "1"),
    ]
}

/// True for keys that are absent when IPv6 is disabled (their absence is not an error).
pub fn is_ipv6_key(key: &str) -> bool {
    key.starts_with("net/ipv6/")
}

/// Sets `/proc/sys/<key>` to `value` unless it already holds it; returns whether it wrote.
pub fn ensure(key: &str, value: &str) -> io::Result<bool> {
    let path = format!("/proc/sys/{key}");
    if std::fs::read_to_string(&path)?.trim() == value {
        return Ok(false);
    }
    std::fs::write(&path, value)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workload_sysctls_match_calico() {
        let keys: Vec<String> = workload_link_sysctls("cali1")
            .into_iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        assert_eq!(
            keys,
            [
                "net/ipv4/conf/cali1/proxy_arp=1",
                "net/ipv4/neigh/cali1/proxy_delay=0",
                "net/ipv4/conf/cali1/forwarding=1",
                "net/ipv4/conf/cali1/route_localnet=1",
                "net/ipv6/conf/cali1/accept_ra=0",
                "net/ipv6/conf/cali1/proxy_ndp=1",
            ]
        );
        assert!(is_ipv6_key("net/ipv6/conf/cali1/accept_ra"));
    }
}
