//! Egress: which addresses a declared host *name* may reach through the host HTTP service.
//!
//! `permissions.network` names hosts, but a name is only as good as what it resolves to: a plugin
//! that declares `evil.example.com` controls that name's DNS and can point it at `127.0.0.1`, at
//! the cloud metadata service (`169.254.169.254`) or into the operator's private network. So the
//! host's HTTP client resolves names itself — [`GuardedResolver`], installed on the client with
//! `reqwest::ClientBuilder::dns_resolver` — classifies every address ([`classify`]) and refuses the
//! whole name if any of them is not public. The addresses checked are the addresses the client
//! connects to: there is no second lookup that a rebinding DNS server could answer differently.
//! Every redirect hop is resolved, and checked, again.
//!
//! The exceptions, each explicit:
//!
//! - An **IP-literal URL** (`http://10.0.0.5/`) never reaches the resolver. It is allowed only when
//!   that address is declared literally, which the rule match ([`super::NetworkRule`]) demands. The
//!   `url` crate normalises other spellings of an address (`http://2130706433/`, `http://0x7f.1/`,
//!   `http://127.1/` are all `127.0.0.1`) before the rule sees them.
//! - **`localhost` and `*.localhost`** resolve to `127.0.0.1` and `::1` without asking DNS
//!   (RFC 6761), and to nothing else. Declared, they reach the loopback interface only.
//! - **The operator's private ranges** (`PermissionGate::with_private_networks`; the server reads
//!   them from `NITEJAR_EGRESS_ALLOW_PRIVATE`): a declared name may resolve into them, for the
//!   operator's own internal services.
//!
//! The client takes no proxy from the environment (`HTTP_PROXY`, `HTTPS_PROXY`, `ALL_PROXY`): a
//! proxy resolves the name itself, on its side, and the check here would be moot.
//!
//! What this does not cover: plugins run in the server's process, so a plugin that opens its own
//! sockets instead of using the host service is not checked by anything here (there is no kernel
//! enforcement yet).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use ipnet::IpNet;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What kind of address an IP address is, as far as reaching it from the host goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum AddressClass {
    /// Globally routable unicast.
    Public,
    /// `0.0.0.0/8`, `::`.
    Unspecified,
    /// `127.0.0.0/8`, `::1`.
    Loopback,
    /// RFC 1918: `10.0.0.0/8`, `172.16.0.0/12`, `192.168.0.0/16`.
    Private,
    /// `100.64.0.0/10`, carrier-grade NAT (RFC 6598).
    SharedAddressSpace,
    /// `169.254.0.0/16` (cloud metadata services live here), `fe80::/10`.
    LinkLocal,
    /// `fc00::/7`.
    UniqueLocal,
    /// `fec0::/10` (deprecated, still routed by some networks).
    SiteLocal,
    /// `224.0.0.0/4`, `ff00::/8`.
    Multicast,
    /// `255.255.255.255`.
    Broadcast,
    /// `192.0.2.0/24`, `198.51.100.0/24`, `203.0.113.0/24`, `2001:db8::/32`, `3fff::/20`.
    Documentation,
    /// `198.18.0.0/15`, `2001:2::/48`.
    Benchmarking,
    /// Everything else that is not global unicast: `192.0.0.0/24`, `192.88.99.0/24`, `240.0.0.0/4`,
    /// `2001::/23` (IETF protocol assignments, Teredo among them), IPv6 outside `2000::/3`
    /// (`64:ff9b:1::/48`, `100::/64`, …).
    Reserved,
}

impl AddressClass {
    /// The words a receipt uses for it.
    pub(super) fn as_str(self) -> &'static str {
        match self {
            AddressClass::Public => "public",
            AddressClass::Unspecified => "unspecified",
            AddressClass::Loopback => "loopback",
            AddressClass::Private => "private",
            AddressClass::SharedAddressSpace => "shared address space",
            AddressClass::LinkLocal => "link-local",
            AddressClass::UniqueLocal => "unique local",
            AddressClass::SiteLocal => "site-local",
            AddressClass::Multicast => "multicast",
            AddressClass::Broadcast => "broadcast",
            AddressClass::Documentation => "documentation",
            AddressClass::Benchmarking => "benchmarking",
            AddressClass::Reserved => "reserved",
        }
    }
}

/// Classifies an address. IPv6 forms that carry an IPv4 address (IPv4-mapped `::ffff:a.b.c.d`,
/// IPv4-compatible `::a.b.c.d`, NAT64 `64:ff9b::a.b.c.d`, 6to4 `2002:aabb:ccdd::`) are judged by
/// the IPv4 address they carry.
pub(super) fn classify(ip: IpAddr) -> AddressClass {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(ip: Ipv4Addr) -> AddressClass {
    use AddressClass::*;
    let [a, b, c, _] = ip.octets();
    match (a, b, c) {
        (0, _, _) => Unspecified,
        (127, _, _) => Loopback,
        (10, _, _) | (172, 16..=31, _) | (192, 168, _) => Private,
        (100, 64..=127, _) => SharedAddressSpace,
        (169, 254, _) => LinkLocal,
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => Documentation,
        (198, 18..=19, _) => Benchmarking,
        (192, 0, 0) | (192, 88, 99) => Reserved,
        (224..=239, _, _) => Multicast,
        _ if ip.is_broadcast() => Broadcast,
        (240..=255, _, _) => Reserved,
        _ => Public,
    }
}

fn classify_v6(ip: Ipv6Addr) -> AddressClass {
    use AddressClass::*;
    if ip.is_unspecified() {
        return Unspecified;
    }
    if ip.is_loopback() {
        return Loopback;
    }
    if let Some(v4) = embedded_v4(ip) {
        return classify_v4(v4);
    }
    let s = ip.segments();
    match s[0] {
        0x2001 if s[1] == 0x0db8 => Documentation,
        0x2001 if s[1] == 0x0002 && s[2] == 0 => Benchmarking,
        0x2001 if s[1] < 0x0200 => Reserved,
        0x3fff if s[1] < 0x1000 => Documentation,
        0x2000..=0x3fff => Public,
        0xfc00..=0xfdff => UniqueLocal,
        0xfe80..=0xfebf => LinkLocal,
        0xfec0..=0xfeff => SiteLocal,
        0xff00..=0xffff => Multicast,
        _ => Reserved,
    }
}

/// The IPv4 address an IPv6 address stands for, in the forms that carry one.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let o = ip.octets();
    let tail = Ipv4Addr::new(o[12], o[13], o[14], o[15]);
    match ip.segments() {
        // ::ffff:a.b.c.d (mapped) and ::a.b.c.d (compatible, deprecated).
        [0, 0, 0, 0, 0, 0xffff | 0, _, _] => Some(tail),
        // 64:ff9b::a.b.c.d, the NAT64 well-known prefix: the translator connects to a.b.c.d.
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => Some(tail),
        // 2002:aabb:ccdd::/48, 6to4: a relay forwards to aa.bb.cc.dd.
        [0x2002, ..] => Some(Ipv4Addr::new(o[2], o[3], o[4], o[5])),
        _ => None,
    }
}

/// Whether `name` is `localhost` or below it (RFC 6761: never sent to DNS).
fn is_localhost(name: &str) -> bool {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    name == "localhost" || name.ends_with(".localhost")
}

/// A host name that resolved to an address a declared name may not reach. The resolver fails with
/// it; the HTTP client finds it in the error's `source()` chain and the gate turns it into a
/// `permission_denied` receipt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct EgressRefusal {
    /// The name as the client asked for it.
    pub(super) name: String,
    /// Every address it resolved to.
    pub(super) addresses: Vec<IpAddr>,
    /// The addresses that are not public and not in an allowed private range.
    pub(super) refused: Vec<(IpAddr, AddressClass)>,
}

impl fmt::Display for EgressRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} resolves to ", self.name)?;
        for (i, (ip, class)) in self.refused.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{ip} ({})", class.as_str())?;
        }
        f.write_str(
            "; a declared host name reaches public addresses only — declare the address \
             itself, or list the range in NITEJAR_EGRESS_ALLOW_PRIVATE",
        )
    }
}

impl std::error::Error for EgressRefusal {}

/// Which addresses declared host names may reach: public ones, and the operator's private ranges.
#[derive(Clone, Debug, Default)]
pub(super) struct EgressPolicy {
    private_networks: Vec<IpNet>,
}

impl EgressPolicy {
    /// Public addresses, plus the ranges in `private_networks`.
    pub(super) fn new(private_networks: Vec<IpNet>) -> Self {
        EgressPolicy { private_networks }
    }

    fn allows(&self, ip: IpAddr) -> Result<(), AddressClass> {
        match classify(ip) {
            AddressClass::Public => Ok(()),
            class => {
                // `::ffff:10.0.0.5` is 10.0.0.5 on the wire: an IPv4 range covers it too.
                let canonical = ip.to_canonical();
                let listed = self
                    .private_networks
                    .iter()
                    .any(|net| net.contains(&ip) || net.contains(&canonical));
                if listed {
                    Ok(())
                } else {
                    Err(class)
                }
            }
        }
    }

    /// Checks every address `name` resolved to; one address it may not reach refuses them all.
    pub(super) fn check(
        &self,
        name: &str,
        addresses: Vec<IpAddr>,
    ) -> Result<Vec<IpAddr>, EgressRefusal> {
        let refused: Vec<(IpAddr, AddressClass)> = addresses
            .iter()
            .filter_map(|&ip| self.allows(ip).err().map(|class| (ip, class)))
            .collect();
        if refused.is_empty() {
            Ok(addresses)
        } else {
            Err(EgressRefusal {
                name: name.to_string(),
                addresses,
                refused,
            })
        }
    }

    /// Resolves `name` with the system resolver and checks the answer; `localhost` and
    /// `*.localhost` are the loopback addresses, without a lookup.
    pub(super) async fn resolve(&self, name: &str) -> Result<Vec<IpAddr>, BoxError> {
        if is_localhost(name) {
            return Ok(vec![
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(Ipv6Addr::LOCALHOST),
            ]);
        }
        let mut addresses: Vec<IpAddr> = Vec::new();
        for addr in tokio::net::lookup_host((name, 0)).await? {
            if !addresses.contains(&addr.ip()) {
                addresses.push(addr.ip());
            }
        }
        if addresses.is_empty() {
            return Err(format!("{name} resolves to no address").into());
        }
        Ok(self.check(name, addresses)?)
    }
}

/// The host HTTP client's resolver: [`EgressPolicy::resolve`] behind `reqwest`'s `Resolve`.
pub(super) struct GuardedResolver {
    policy: Arc<EgressPolicy>,
}

impl GuardedResolver {
    pub(super) fn new(policy: Arc<EgressPolicy>) -> Self {
        GuardedResolver { policy }
    }
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        let name = name.as_str().to_string();
        Box::pin(async move {
            let addresses = policy.resolve(&name).await?;
            let addrs: Addrs = Box::new(addresses.into_iter().map(|ip| SocketAddr::new(ip, 0)));
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(text: &str) -> AddressClass {
        classify(text.parse().unwrap())
    }

    #[test]
    fn ipv4_ranges() {
        use AddressClass::*;
        for (ip, expected) in [
            ("0.0.0.0", Unspecified),
            ("0.1.2.3", Unspecified),
            ("127.0.0.1", Loopback),
            ("127.255.255.254", Loopback),
            ("10.0.0.1", Private),
            ("10.255.255.255", Private),
            ("172.16.0.1", Private),
            ("172.31.255.255", Private),
            ("192.168.1.1", Private),
            ("100.64.0.1", SharedAddressSpace),
            ("100.127.255.255", SharedAddressSpace),
            ("169.254.169.254", LinkLocal),
            ("169.254.0.1", LinkLocal),
            ("192.0.0.8", Reserved),
            ("192.0.2.1", Documentation),
            ("198.51.100.7", Documentation),
            ("203.0.113.9", Documentation),
            ("198.18.0.1", Benchmarking),
            ("198.19.255.255", Benchmarking),
            ("192.88.99.1", Reserved),
            ("224.0.0.1", Multicast),
            ("239.255.255.250", Multicast),
            ("240.0.0.1", Reserved),
            ("255.255.255.254", Reserved),
            ("255.255.255.255", Broadcast),
            // Neighbours of the ranges are public.
            ("1.1.1.1", Public),
            ("8.8.8.8", Public),
            ("11.0.0.1", Public),
            ("100.63.255.255", Public),
            ("100.128.0.1", Public),
            ("126.255.255.255", Public),
            ("128.0.0.1", Public),
            ("169.253.255.255", Public),
            ("172.15.255.255", Public),
            ("172.32.0.1", Public),
            ("192.0.1.1", Public),
            ("192.167.255.255", Public),
            ("192.169.0.1", Public),
            ("198.17.255.255", Public),
            ("198.20.0.1", Public),
            ("223.255.255.255", Public),
        ] {
            assert_eq!(class(ip), expected, "{ip}");
        }
    }

    #[test]
    fn ipv6_ranges() {
        use AddressClass::*;
        for (ip, expected) in [
            ("::", Unspecified),
            ("::1", Loopback),
            ("fc00::1", UniqueLocal),
            ("fd12:3456::1", UniqueLocal),
            ("fe80::1", LinkLocal),
            ("febf::1", LinkLocal),
            ("fec0::1", SiteLocal),
            ("feff::1", SiteLocal),
            ("ff02::1", Multicast),
            ("ff0e::1", Multicast),
            ("2001:db8::1", Documentation),
            ("3fff::1", Documentation),
            ("2001:2::1", Benchmarking),
            ("2001::1", Reserved),
            ("2001:0:4136:e378::1", Reserved),
            ("64:ff9b:1::1", Reserved),
            ("100::1", Reserved),
            ("5f00::1", Reserved),
            ("::ffff:0:7f00:1", Reserved),
            ("2606:4700:4700::1111", Public),
            ("2a00:1450:4001::200e", Public),
            ("2001:4860:4860::8888", Public),
            ("3fff:1000::1", Public),
        ] {
            assert_eq!(class(ip), expected, "{ip}");
        }
    }

    #[test]
    fn ipv6_forms_of_ipv4_addresses_are_judged_by_the_ipv4_address() {
        use AddressClass::*;
        for (ip, expected) in [
            ("::ffff:127.0.0.1", Loopback),
            ("::ffff:7f00:1", Loopback),
            ("::ffff:10.1.2.3", Private),
            ("::ffff:169.254.169.254", LinkLocal),
            ("::ffff:0.0.0.0", Unspecified),
            ("::ffff:255.255.255.255", Broadcast),
            ("::ffff:8.8.8.8", Public),
            ("::127.0.0.1", Loopback),
            ("::192.168.0.1", Private),
            ("::8.8.8.8", Public),
            ("64:ff9b::127.0.0.1", Loopback),
            ("64:ff9b::a9fe:a9fe", LinkLocal),
            ("64:ff9b::100.64.0.1", SharedAddressSpace),
            ("64:ff9b::8.8.8.8", Public),
            ("2002:7f00:1::1", Loopback),
            ("2002:c0a8:101::1", Private),
            ("2002:808:808::1", Public),
        ] {
            assert_eq!(class(ip), expected, "{ip}");
        }
    }

    fn ips(list: &[&str]) -> Vec<IpAddr> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn one_non_public_address_refuses_the_name() {
        let policy = EgressPolicy::default();
        let public = ips(&["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"]);
        assert_eq!(
            policy.check("example.com", public.clone()),
            Ok(public.clone())
        );

        let mixed = ips(&["93.184.215.14", "127.0.0.1", "::ffff:169.254.169.254"]);
        let refusal = policy.check("evil.example.com", mixed.clone()).unwrap_err();
        assert_eq!(refusal.addresses, mixed);
        assert_eq!(
            refusal.refused,
            vec![
                (mixed[1], AddressClass::Loopback),
                (mixed[2], AddressClass::LinkLocal)
            ]
        );
        assert_eq!(
            refusal.to_string(),
            "evil.example.com resolves to 127.0.0.1 (loopback), ::ffff:169.254.169.254 \
             (link-local); a declared host name reaches public addresses only — declare the \
             address itself, or list the range in NITEJAR_EGRESS_ALLOW_PRIVATE"
        );
    }

    #[test]
    fn listed_private_ranges_are_reachable_and_nothing_else() {
        let policy = EgressPolicy::new(vec![
            "10.0.0.0/8".parse().unwrap(),
            "fd00::/8".parse().unwrap(),
        ]);
        for allowed in ["10.1.2.3", "::ffff:10.1.2.3", "fd00::5", "8.8.8.8"] {
            assert!(
                policy.check("internal", ips(&[allowed])).is_ok(),
                "{allowed}"
            );
        }
        for refused in ["192.168.1.1", "127.0.0.1", "fc00::1", "169.254.169.254"] {
            assert!(
                policy.check("internal", ips(&[refused])).is_err(),
                "{refused}"
            );
        }
    }

    #[tokio::test]
    async fn localhost_is_loopback_without_a_lookup() {
        // Not even a listed range is needed, and no other address is ever returned.
        let policy = EgressPolicy::default();
        for name in ["localhost", "LOCALHOST.", "api.localhost", "a.b.localhost"] {
            assert_eq!(
                policy.resolve(name).await.unwrap(),
                ips(&["127.0.0.1", "::1"]),
                "{name}"
            );
        }
        assert!(!is_localhost("localhost.example.com"));
        assert!(!is_localhost("notlocalhost"));
    }

    #[tokio::test]
    async fn the_resolver_refuses_with_a_refusal_it_can_be_found_by() {
        let policy = EgressPolicy::default();
        // An IPv4 literal handed to the system resolver comes back as itself: a way to exercise
        // the lookup path without DNS.
        let err = policy.resolve("127.0.0.2").await.unwrap_err();
        let refusal = err.downcast_ref::<EgressRefusal>().unwrap();
        assert_eq!(
            refusal.refused,
            vec![(ips(&["127.0.0.2"])[0], AddressClass::Loopback)]
        );
    }
}
