//! Which address a request comes from, for the failed-credential throttle.
//!
//! The peer of the TCP connection, unless that peer is one of `NITEJAR_TRUSTED_PROXIES`: then the
//! client is the right-most `X-Forwarded-For` entry that is not itself a trusted proxy (each proxy
//! appends the address it received the request from, so entries to the left of the last untrusted
//! one were written by the client and prove nothing). Without trusted proxies `X-Forwarded-For` is
//! ignored: anyone can send it.

use std::net::{IpAddr, Ipv4Addr};

use ipnet::IpNet;

/// Parses `NITEJAR_TRUSTED_PROXIES`: addresses or CIDR ranges, separated by commas.
pub fn parse_trusted_proxies(text: &str) -> Result<Vec<IpNet>, String> {
    let mut out = Vec::new();
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let net = match item.parse::<IpNet>() {
            Ok(net) => net,
            Err(_) => match item.parse::<IpAddr>() {
                Ok(addr) => IpNet::from(addr),
                Err(_) => {
                    return Err(format!(
                        "`{item}` is not an IP address or CIDR range (like 10.0.0.1 or 10.0.0.0/8)"
                    ))
                }
            },
        };
        out.push(net);
    }
    Ok(out)
}

fn trusted(addr: IpAddr, proxies: &[IpNet]) -> bool {
    let addr = match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(addr),
        v4 => v4,
    };
    proxies.iter().any(|net| net.contains(&addr))
}

/// The client address of a request whose connection comes from `peer`.
pub fn client_addr(peer: Option<IpAddr>, forwarded_for: &[&str], proxies: &[IpNet]) -> IpAddr {
    // A connection without a peer address (none on TCP) is counted as one anonymous client.
    let peer = peer.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    if !trusted(peer, proxies) {
        return peer;
    }
    let hops: Vec<IpAddr> = forwarded_for
        .iter()
        .flat_map(|value| value.split(','))
        .filter_map(|entry| parse_hop(entry.trim()))
        .collect();
    let mut client = peer;
    for hop in hops.iter().rev() {
        client = *hop;
        if !trusted(*hop, proxies) {
            break;
        }
    }
    client
}

/// One `X-Forwarded-For` entry: an address, possibly with a port (`203.0.113.5:4711`,
/// `[2001:db8::1]:4711`).
fn parse_hop(entry: &str) -> Option<IpAddr> {
    if let Ok(addr) = entry.parse::<IpAddr>() {
        return Some(addr);
    }
    entry.parse::<std::net::SocketAddr>().ok().map(|s| s.ip())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap_or(IpAddr::V4(Ipv4Addr::BROADCAST))
    }

    #[test]
    fn without_trusted_proxies_the_peer_is_the_client() {
        assert_eq!(
            client_addr(Some(ip("127.0.0.1")), &["203.0.113.9"], &[]),
            ip("127.0.0.1")
        );
    }

    #[test]
    fn behind_trusted_proxies_the_last_untrusted_hop_is_the_client() {
        let proxies = parse_trusted_proxies("127.0.0.1, 10.0.0.0/8").unwrap_or_default();
        assert_eq!(proxies.len(), 2);
        // The client forged an entry on the left; the proxy chain appended the real one.
        assert_eq!(
            client_addr(
                Some(ip("127.0.0.1")),
                &["198.51.100.1, 203.0.113.9", "10.1.2.3"],
                &proxies
            ),
            ip("203.0.113.9")
        );
        assert_eq!(
            client_addr(Some(ip("127.0.0.1")), &["[2001:db8::7]:4711"], &proxies),
            ip("2001:db8::7")
        );
        // Only proxies in the chain: the left-most one.
        assert_eq!(
            client_addr(Some(ip("127.0.0.1")), &["10.9.9.9"], &proxies),
            ip("10.9.9.9")
        );
        // No header: the proxy itself.
        assert_eq!(
            client_addr(Some(ip("127.0.0.1")), &[], &proxies),
            ip("127.0.0.1")
        );
        // An untrusted peer's header is ignored.
        assert_eq!(
            client_addr(Some(ip("192.0.2.1")), &["203.0.113.9"], &proxies),
            ip("192.0.2.1")
        );
        // Garbage entries are skipped.
        assert_eq!(
            client_addr(Some(ip("127.0.0.1")), &["203.0.113.9, nonsense"], &proxies),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn bad_proxy_lists_name_the_entry() {
        let err = parse_trusted_proxies("10.0.0.1, proxy.internal").err();
        assert!(err.is_some_and(|e| e.contains("proxy.internal")));
        assert_eq!(parse_trusted_proxies(" ").map(|v| v.len()), Ok(0));
    }
}
