//! The network guard for hosted tenants: with it on, a connector reaches public addresses
//! only. A host name is resolved once, by koppel; an address that is loopback, private,
//! link-local, multicast, unspecified or otherwise not public (IPv4 and IPv6, IPv4-mapped and
//! NAT64 forms included) is refused, and the connection goes to the address that was checked
//! (the HTTP client resolves through [`GuardedResolver`], so a second answer cannot point it
//! elsewhere: no DNS rebinding). Redirects are not followed at all (see `Runtime::new`). The
//! operator may open named hosts (`[hosting] allow_private_hosts`).
//!
//! Off by default: one shop running koppel for itself reaches its own ERP on its own network.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

/// Which addresses connectors may reach.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NetworkGuard {
    public_only: bool,
    /// Host names or IP literals (lowercase) that may be private all the same.
    allowed_private: Vec<String>,
}

impl From<&crate::config::HostingConfig> for NetworkGuard {
    fn from(hosting: &crate::config::HostingConfig) -> NetworkGuard {
        if hosting.public_network_only {
            NetworkGuard::public_only(&hosting.allow_private_hosts)
        } else {
            NetworkGuard::open()
        }
    }
}

impl NetworkGuard {
    /// Every address (a single shop's own koppel).
    pub fn open() -> NetworkGuard {
        NetworkGuard::default()
    }

    /// Public addresses only, but for these hosts (names or IP literals).
    pub fn public_only(allowed_private_hosts: &[String]) -> NetworkGuard {
        NetworkGuard {
            public_only: true,
            allowed_private: allowed_private_hosts.iter().map(|h| normalize(h)).collect(),
        }
    }

    pub fn is_public_only(&self) -> bool {
        self.public_only
    }

    fn opens(&self, host: &str) -> bool {
        self.allowed_private.contains(&normalize(host))
    }

    /// Ok when a request to `url` may go: the guard is off, the host is opened by the
    /// operator, or every address it is (or resolves to) is public. The error says which
    /// address is refused and why.
    pub async fn check(&self, url: &url::Url) -> Result<(), String> {
        if !self.public_only {
            return Ok(());
        }
        let Some(host) = url.host() else {
            return Err("the URL has no host".to_owned());
        };
        let name = url.host_str().unwrap_or_default();
        if self.opens(name) {
            return Ok(());
        }
        match host {
            url::Host::Ipv4(ip) => refuse_non_public(name, IpAddr::V4(ip)),
            url::Host::Ipv6(ip) => refuse_non_public(name, IpAddr::V6(ip)),
            url::Host::Domain(domain) => {
                let addrs = resolve(domain).await?;
                public_addresses(domain, addrs).map(|_| ())
            }
        }
    }
}

fn normalize(host: &str) -> String {
    host.trim()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase()
}

fn refuse_non_public(shown: &str, ip: IpAddr) -> Result<(), String> {
    match non_public(ip) {
        Some(why) => Err(format!(
            "{shown} is a {why} address; hosted connectors reach public addresses only"
        )),
        None => Ok(()),
    }
}

async fn resolve(domain: &str) -> Result<Vec<SocketAddr>, String> {
    tokio::net::lookup_host((domain, 0))
        .await
        .map(|addrs| addrs.collect())
        .map_err(|error| format!("cannot resolve {domain}: {error}"))
}

/// The public ones of `addrs`; an error when any is not public (a name that resolves to a
/// private address among public ones is refused whole: which one a connection would use is
/// the attacker's choice).
fn public_addresses(domain: &str, addrs: Vec<SocketAddr>) -> Result<Vec<SocketAddr>, String> {
    if addrs.is_empty() {
        return Err(format!("{domain} resolves to no address"));
    }
    for addr in &addrs {
        if let Some(why) = non_public(addr.ip()) {
            return Err(format!(
                "{domain} resolves to {}, a {why} address; hosted connectors reach public addresses only",
                addr.ip()
            ));
        }
    }
    Ok(addrs)
}

/// Why `ip` is not a public address, or None when it is.
pub fn non_public(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(ip) => non_public_v4(ip),
        IpAddr::V6(ip) => non_public_v6(ip),
    }
}

fn non_public_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, ..] = ip.octets();
    if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_private() {
        Some("private")
    } else if ip.is_link_local() {
        Some("link-local")
    } else if ip.is_multicast() {
        Some("multicast")
    } else if ip.is_unspecified() || a == 0 {
        Some("unspecified")
    } else if ip.is_broadcast() || a >= 240 {
        Some("reserved")
    } else if a == 100 && (64..128).contains(&b) {
        Some("shared (carrier-grade NAT)")
    } else if a == 198 && (b == 18 || b == 19) {
        Some("benchmarking")
    } else if a == 192 && b == 0 && ip.octets()[2] == 0 {
        Some("protocol-assignment")
    } else {
        None
    }
}

fn non_public_v6(ip: Ipv6Addr) -> Option<&'static str> {
    // An IPv4 address in IPv6 clothes is judged as itself.
    if let Some(v4) = ip.to_ipv4_mapped() {
        return non_public_v4(v4);
    }
    let segments = ip.segments();
    if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        // NAT64 (64:ff9b::/96): the IPv4 address it reaches.
        let [.., o1, o2, o3, o4] = ip.octets();
        return non_public_v4(Ipv4Addr::new(o1, o2, o3, o4));
    }
    if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_unspecified() {
        Some("unspecified")
    } else if ip.is_multicast() {
        Some("multicast")
    } else if segments[0] & 0xfe00 == 0xfc00 {
        Some("private (unique local)")
    } else if segments[0] & 0xffc0 == 0xfe80 {
        Some("link-local")
    } else if segments[0] & 0xffc0 == 0xfec0 {
        Some("site-local")
    } else if segments[..6] == [0, 0, 0, 0, 0, 0] {
        // ::a.b.c.d, the old IPv4-compatible form.
        Some("IPv4-compatible")
    } else {
        None
    }
}

/// The HTTP client's resolver under the guard: names resolve here, once, and only to the
/// addresses the guard lets through, so the client connects to what was checked.
pub(crate) struct GuardedResolver {
    pub(crate) guard: NetworkGuard,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let guard = self.guard.clone();
        let domain = name.as_str().to_owned();
        Box::pin(async move {
            let addrs = resolve(&domain).await?;
            let addrs = if guard.opens(&domain) {
                addrs
            } else {
                public_addresses(&domain, addrs)?
            };
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

impl GuardedResolver {
    pub(crate) fn shared(guard: &NetworkGuard) -> Arc<GuardedResolver> {
        Arc::new(GuardedResolver {
            guard: guard.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(text: &str) -> Option<&'static str> {
        non_public(text.parse().expect("an address"))
    }

    #[test]
    fn only_public_addresses_pass() {
        for (address, why) in [
            ("127.0.0.1", "loopback"),
            ("10.0.0.1", "private"),
            ("172.16.5.4", "private"),
            ("192.168.1.1", "private"),
            ("169.254.169.254", "link-local"),
            ("0.0.0.0", "unspecified"),
            ("224.0.0.1", "multicast"),
            ("255.255.255.255", "reserved"),
            ("100.64.0.1", "shared (carrier-grade NAT)"),
            ("::1", "loopback"),
            ("::", "unspecified"),
            ("::ffff:127.0.0.1", "loopback"),
            ("::ffff:169.254.169.254", "link-local"),
            ("64:ff9b::10.0.0.1", "private"),
            ("fd00::1", "private (unique local)"),
            ("fe80::1", "link-local"),
            ("ff02::1", "multicast"),
        ] {
            assert_eq!(reason(address), Some(why), "{address}");
        }
        for public in [
            "93.184.216.34",
            "1.1.1.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert_eq!(reason(public), None, "{public}");
        }
    }

    #[tokio::test]
    async fn hosted_urls_at_private_addresses_are_refused_and_opened_hosts_pass() {
        let guard = NetworkGuard::public_only(&["erp.internal".to_owned(), "10.1.2.3".to_owned()]);
        for url in [
            "http://127.0.0.1:8080/api",
            "https://10.0.0.1/",
            "http://169.254.169.254/latest/meta-data/",
            "http://[::1]:9000/",
            "http://[::ffff:127.0.0.1]/",
            "http://localhost:8080/",
        ] {
            let error = guard
                .check(&url::Url::parse(url).expect("url"))
                .await
                .expect_err(url);
            assert!(error.contains("public addresses only"), "{url}: {error}");
        }
        assert!(
            guard
                .check(&url::Url::parse("http://10.1.2.3:81/").expect("url"))
                .await
                .is_ok(),
            "an address the operator opened"
        );
        // The client's own resolver refuses the same, so a name cannot resolve to a
        // private address between the check and the connection.
        let resolver = GuardedResolver::shared(&NetworkGuard::public_only(&[]));
        let name: reqwest::dns::Name = "localhost".parse().expect("a name");
        let refused = match reqwest::dns::Resolve::resolve(&*resolver, name).await {
            Ok(addrs) => panic!("localhost resolved to {:?}", addrs.collect::<Vec<_>>()),
            Err(error) => error.to_string(),
        };
        assert!(refused.contains("loopback"), "{refused}");
        let opened = GuardedResolver::shared(&NetworkGuard::public_only(&["LocalHost".to_owned()]));
        let name: reqwest::dns::Name = "localhost".parse().expect("a name");
        assert!(reqwest::dns::Resolve::resolve(&*opened, name).await.is_ok());

        let open = NetworkGuard::open();
        assert!(
            open.check(&url::Url::parse("http://127.0.0.1/").expect("url"))
                .await
                .is_ok()
        );
    }
}
