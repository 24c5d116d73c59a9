//! The client's address behind trusted proxies (`--trusted-proxy CIDR`, repeatable).
//!
//! Behind a load balancer every connection comes from the balancer, so the per-requester
//! throttles, the audit trail's `ip` and the log would all see one requester. From a peer inside
//! a trusted network only, Tessera reads the chain of addresses the proxies recorded, from
//! `X-Forwarded-For` or from `Forwarded` (RFC 7239; which one is an option, never a guess: a
//! proxy that sets one passes the other through from the client untouched), and takes the
//! right-most address that is not itself a trusted proxy. Proxies append, so everything left of
//! that address was written by the client and is ignored: a client can forge the left part of
//! the chain but not the entry its first trusted proxy appended. The chain is read as bytes and
//! split at every comma, quotes or not, so nothing a client writes (bytes that are not text, an
//! unclosed quote) can swallow the entry a proxy appends after it on the same line; empty
//! entries are skipped. An entry that is not an address (`unknown`, an obfuscated `_node`,
//! garbage) ends the walk at the proxy that wrote it.
//! Requests from any other peer are the peer, whatever they carry.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::http::{HeaderMap, HeaderName, header};
pub use ipnet::IpNet;

/// Reads one header line into hops: an address, or `None` for an entry that is not one.
type ChainParser = fn(&[u8]) -> Vec<Option<IpAddr>>;

/// Entries read from the right of the chain at most; a longer chain ends there.
const MAX_HOPS: usize = 32;

/// Which header the trusted proxies write.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ForwardedHeader {
    /// `X-Forwarded-For: client, proxy1, proxy2` (nginx, HAProxy, cloud balancers).
    #[default]
    XForwardedFor,
    /// `Forwarded: for=client, for=proxy1` (RFC 7239).
    Forwarded,
}

impl std::str::FromStr for ForwardedHeader {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "x-forwarded-for" => Ok(ForwardedHeader::XForwardedFor),
            "forwarded" => Ok(ForwardedHeader::Forwarded),
            other => Err(format!(
                "{other:?} is not a forwarding header: use x-forwarded-for or forwarded"
            )),
        }
    }
}

/// The networks whose connections may name the client, and the header they name it in.
#[derive(Clone, Debug, Default)]
pub struct TrustedProxies {
    nets: Arc<[IpNet]>,
    header: ForwardedHeader,
}

impl TrustedProxies {
    pub fn new(nets: Vec<IpNet>, header: ForwardedHeader) -> TrustedProxies {
        TrustedProxies {
            nets: nets.into(),
            header,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.nets.iter().any(|n| n.contains(&ip))
    }

    /// The address the request at `peer` with `headers` came from: `peer`, unless `peer` is a
    /// trusted proxy; then the right-most untrusted address of the chain (port 0 when the chain
    /// gives none).
    pub fn client(&self, peer: SocketAddr, headers: &HeaderMap) -> SocketAddr {
        if self.nets.is_empty() || !self.trusts(peer.ip()) {
            return peer;
        }
        let (name, parse): (HeaderName, ChainParser) = match self.header {
            ForwardedHeader::XForwardedFor => {
                (HeaderName::from_static("x-forwarded-for"), x_forwarded_for)
            }
            ForwardedHeader::Forwarded => (header::FORWARDED, forwarded),
        };
        // Header lines in order, each read left to right: one chain.
        let mut chain = Vec::new();
        for value in headers.get_all(&name) {
            chain.extend(parse(value.as_bytes()));
        }
        let mut nearest = peer;
        for hop in chain.into_iter().rev().take(MAX_HOPS) {
            match hop {
                Some(ip) if !self.trusts(ip) => return SocketAddr::new(canonical(ip), 0),
                Some(ip) => nearest = SocketAddr::new(canonical(ip), 0),
                None => return nearest,
            }
        }
        nearest
    }
}

/// An IPv4 address, also when it arrives as IPv4-mapped IPv6.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// The non-empty comma-separated entries of a header line, trimmed.
fn entries(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|b| *b == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|e| !e.is_empty())
}

/// `X-Forwarded-For`: comma-separated addresses, some proxies adding a port.
fn x_forwarded_for(value: &[u8]) -> Vec<Option<IpAddr>> {
    entries(value)
        .map(|e| std::str::from_utf8(e).ok().and_then(node))
        .collect()
}

/// `Forwarded` (RFC 7239 §4): comma-separated elements of `;`-separated pairs; the `for` pair
/// names the node. An element without one is an unknown hop.
fn forwarded(value: &[u8]) -> Vec<Option<IpAddr>> {
    entries(value)
        .map(|element| {
            element.split(|b| *b == b';').find_map(|pair| {
                let eq = pair.iter().position(|b| *b == b'=')?;
                let (key, v) = (pair[..eq].trim_ascii(), &pair[eq + 1..]);
                key.eq_ignore_ascii_case(b"for").then(|| {
                    let v = std::str::from_utf8(v).ok()?;
                    node(v.trim().trim_matches('"'))
                })
            })?
        })
        .collect()
}

/// A node: `192.0.2.1`, `192.0.2.1:443`, `[2001:db8::1]`, `[2001:db8::1]:443`, `2001:db8::1`.
/// `None` for `unknown`, an obfuscated `_name`, or anything else.
fn node(s: &str) -> Option<IpAddr> {
    if let Some(rest) = s.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        if !(after.is_empty() || after.starts_with(':')) {
            return None;
        }
        return inside.parse::<std::net::Ipv6Addr>().ok().map(IpAddr::V6);
    }
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(ip);
    }
    s.parse::<SocketAddr>().ok().map(|a| a.ip())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proxies(nets: &[&str], header: ForwardedHeader) -> TrustedProxies {
        TrustedProxies::new(nets.iter().map(|n| n.parse().unwrap()).collect(), header)
    }

    fn client(p: &TrustedProxies, peer: &str, headers: &[(&str, &str)]) -> String {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        p.client(peer.parse().unwrap(), &map).ip().to_string()
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_sends() {
        let p = proxies(&["10.0.0.0/8"], ForwardedHeader::XForwardedFor);
        let xff = [("x-forwarded-for", "203.0.113.9")];
        assert_eq!(client(&p, "198.51.100.1:5000", &xff), "198.51.100.1");
        let none = proxies(&[], ForwardedHeader::XForwardedFor);
        assert_eq!(client(&none, "10.0.0.1:5000", &xff), "10.0.0.1");
    }

    #[test]
    fn the_right_most_untrusted_entry_is_the_client() {
        let p = proxies(&["10.0.0.0/8", "::1/128"], ForwardedHeader::XForwardedFor);
        let cases = [
            ("203.0.113.9", "203.0.113.9"),
            // The client forged the left part; the first proxy appended the real address.
            ("1.2.3.4, 203.0.113.9", "203.0.113.9"),
            ("1.2.3.4, 203.0.113.9, 10.1.1.1", "203.0.113.9"),
            ("203.0.113.9:4711", "203.0.113.9"),
            ("2001:db8::7", "2001:db8::7"),
            ("[2001:db8::7]:80", "2001:db8::7"),
            ("::ffff:203.0.113.9", "203.0.113.9"),
            // Every entry trusted: the left-most.
            ("10.9.9.9, 10.1.1.1", "10.9.9.9"),
            // Not an address: the proxy that wrote it.
            ("203.0.113.9, unknown, 10.1.1.1", "10.1.1.1"),
            ("garbage", "10.0.0.1"),
            // Empty entries are skipped.
            ("5.5.5.5,", "5.5.5.5"),
            ("203.0.113.9,, ,", "203.0.113.9"),
        ];
        for (chain, want) in cases {
            assert_eq!(
                client(&p, "10.0.0.1:5000", &[("x-forwarded-for", chain)]),
                want,
                "{chain}"
            );
        }
        // Several header lines are one chain, in order.
        assert_eq!(
            client(
                &p,
                "10.0.0.1:1",
                &[
                    ("x-forwarded-for", "203.0.113.9"),
                    ("x-forwarded-for", "198.51.100.4, 10.2.2.2")
                ]
            ),
            "198.51.100.4"
        );
        // Bytes that are not text, from the client, cannot hide the entry the proxy appended.
        let mut map = HeaderMap::new();
        map.insert(
            HeaderName::from_static("x-forwarded-for"),
            axum::http::HeaderValue::from_bytes(b"\xff6.6.6.6, 5.5.5.5").unwrap(),
        );
        assert_eq!(
            p.client("10.0.0.1:1".parse().unwrap(), &map)
                .ip()
                .to_string(),
            "5.5.5.5"
        );
        // No header: the proxy itself.
        assert_eq!(client(&p, "10.0.0.1:1", &[]), "10.0.0.1");
        // An IPv4-mapped peer is matched as IPv4.
        assert_eq!(
            client(
                &p,
                "[::ffff:10.0.0.1]:1",
                &[("x-forwarded-for", "203.0.113.9")]
            ),
            "203.0.113.9"
        );
    }

    #[test]
    fn forwarded_is_read_only_when_chosen() {
        let xff = proxies(&["10.0.0.0/8"], ForwardedHeader::XForwardedFor);
        let fwd = proxies(&["10.0.0.0/8"], ForwardedHeader::Forwarded);
        let both = [
            ("forwarded", "for=1.2.3.4"),
            ("x-forwarded-for", "203.0.113.9"),
        ];
        assert_eq!(client(&xff, "10.0.0.1:1", &both), "203.0.113.9");
        assert_eq!(client(&fwd, "10.0.0.1:1", &both), "1.2.3.4");
        let cases = [
            ("for=192.0.2.60;proto=http;by=203.0.113.43", "192.0.2.60"),
            (r#"for="[2001:db8:cafe::17]:4711""#, "2001:db8:cafe::17"),
            ("for=1.2.3.4, For=192.0.2.60", "192.0.2.60"),
            (r#"proto="a,b";for=192.0.2.60"#, "192.0.2.60"),
            // An unclosed quote from the client cannot swallow the proxy's element.
            (r#"for="6.6.6.6, for=5.5.5.5"#, "5.5.5.5"),
            ("for=192.0.2.60, for=10.3.3.3", "192.0.2.60"),
            ("for=192.0.2.60, for=_hidden", "10.0.0.1"),
            ("for=192.0.2.60, proto=https", "10.0.0.1"),
        ];
        for (value, want) in cases {
            assert_eq!(
                client(&fwd, "10.0.0.1:1", &[("forwarded", value)]),
                want,
                "{value}"
            );
        }
    }

    #[test]
    fn a_long_chain_is_read_only_so_far() {
        let p = proxies(&["10.0.0.0/8"], ForwardedHeader::XForwardedFor);
        let chain = std::iter::once("203.0.113.9".to_string())
            .chain((0..40).map(|i| format!("10.0.0.{i}")))
            .collect::<Vec<_>>()
            .join(",");
        // 32 trusted hops read, then the walk stops at the last of them.
        assert_eq!(
            client(&p, "10.0.0.1:1", &[("x-forwarded-for", &chain)]),
            "10.0.0.8"
        );
    }
}
