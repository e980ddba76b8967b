//! The client behind a chain of trusted proxies: the rightmost address of the forwarded chain
//! that is not a trusted proxy's, read from `X-Forwarded-For` or RFC 7239 `Forwarded`.

use std::net::{IpAddr, SocketAddr};

use http::HeaderMap;

use crate::IpNetwork;

/// Which header a store's trusted proxies write the chain of addresses into. Only that header
/// is read: a client can send either, so reading the other would let it name its own address.
///
/// ```
/// use axum_api_key::{ForwardedHeader, RateLimits};
///
/// // A proxy that writes RFC 7239 `Forwarded: for=203.0.113.7`.
/// let limits = RateLimits::new()
///     .behind_proxies(["10.0.0.2".parse().unwrap()])
///     .forwarded_header(ForwardedHeader::Forwarded);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ForwardedHeader {
    /// `X-Forwarded-For: client, proxy1, proxy2`, what most load balancers and CDNs write.
    #[default]
    XForwardedFor,
    /// RFC 7239 `Forwarded: for=client, for="[2001:db8::1]:4711"`: the `for` of each element.
    Forwarded,
}

/// Why the chain could not be read: an entry a trusted proxy wrote is not an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Unreadable;

/// The client of a request that came from `peer`, a trusted proxy (in `trusted`): walking the
/// chain from the right, past every address that is itself a trusted proxy's, the first other
/// address. Every entry to its left was written by whoever sent the request to that address,
/// the client included, and is never read, so a client cannot name its own address. A chain of
/// trusted proxies only gives the leftmost; no chain at all gives `peer`. Several header lines
/// are one list, in order (RFC 9110). An entry that is not an address where the walk needs one
/// (`unknown`, an obfuscated `_hidden`, garbage) is [`Unreadable`].
pub(crate) fn client(
    peer: IpAddr,
    trusted: &[IpNetwork],
    headers: &HeaderMap,
    header: ForwardedHeader,
) -> Result<IpAddr, Unreadable> {
    let name = match header {
        ForwardedHeader::XForwardedFor => "x-forwarded-for",
        ForwardedHeader::Forwarded => "forwarded",
    };
    let lines: Vec<&str> = headers
        .get_all(name)
        .iter()
        .map(|value| value.to_str().map_err(|_| Unreadable))
        .collect::<Result<_, _>>()?;
    let entries = lines.iter().flat_map(|line| line.split(','));
    let mut leftmost = peer;
    // From the right: the nearest proxy's entry is the last.
    let entries: Vec<&str> = entries.collect();
    for entry in entries.iter().rev() {
        let address = match header {
            ForwardedHeader::XForwardedFor => address(entry.trim()),
            ForwardedHeader::Forwarded => forwarded_for(entry),
        }
        .ok_or(Unreadable)?;
        if !trusted.iter().any(|network| network.contains(address)) {
            return Ok(address);
        }
        leftmost = address;
    }
    Ok(leftmost)
}

/// An address as a chain writes it: `203.0.113.7`, `2001:db8::1`, and with a port
/// `203.0.113.7:4711` or `[2001:db8::1]:4711`.
fn address(text: &str) -> Option<IpAddr> {
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    if let Ok(socket) = text.parse::<SocketAddr>() {
        return Some(socket.ip().to_canonical());
    }
    let bracketed = text.strip_prefix('[')?.strip_suffix(']')?;
    bracketed.parse::<IpAddr>().ok().map(|ip| ip.to_canonical())
}

/// The `for` of one element of `Forwarded` (`for=192.0.2.60;proto=http;by=203.0.113.43`), an
/// address: the name is matched in any case, the value may be quoted.
fn forwarded_for(element: &str) -> Option<IpAddr> {
    let mut found = None;
    for pair in element.split(';') {
        let (name, value) = pair.trim().split_once('=')?;
        if name.trim().eq_ignore_ascii_case("for") {
            if found.is_some() {
                return None;
            }
            let value = value.trim();
            let value = value
                .strip_prefix('"')
                .and_then(|inner| inner.strip_suffix('"'))
                .unwrap_or(value);
            found = Some(address(value)?);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(text: &str) -> IpNetwork {
        text.parse().unwrap()
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn headers(name: &str, lines: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for line in lines {
            map.append(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                line.parse().unwrap(),
            );
        }
        map
    }

    #[test]
    fn the_rightmost_untrusted_address_over_several_hops() {
        let trusted = [net("10.0.0.0/8"), net("2001:db8:ffff::/48")];
        let xff = |lines: &[&str]| {
            client(
                ip("10.0.0.2"),
                &trusted,
                &headers("x-forwarded-for", lines),
                ForwardedHeader::XForwardedFor,
            )
        };
        // CDN → load balancer → us: the client is the first address no proxy of ours holds.
        assert_eq!(xff(&["198.51.100.7, 10.1.2.3"]), Ok(ip("198.51.100.7")));
        // What the client wrote itself is left of it, and never read.
        assert_eq!(
            xff(&["1.2.3.4, garbage, 198.51.100.7, 10.1.2.3"]),
            Ok(ip("198.51.100.7"))
        );
        // Two header lines are one list.
        assert_eq!(xff(&["203.0.113.9", "10.9.9.9"]), Ok(ip("203.0.113.9")));
        // Only proxies: the leftmost; no header: the peer.
        assert_eq!(xff(&["10.0.0.9, 10.0.0.8"]), Ok(ip("10.0.0.9")));
        assert_eq!(xff(&[]), Ok(ip("10.0.0.2")));
        // A port, brackets, a mapped IPv4 address.
        assert_eq!(xff(&["[2001:db8::1]:4711"]), Ok(ip("2001:db8::1")));
        assert_eq!(xff(&["203.0.113.9:80"]), Ok(ip("203.0.113.9")));
        assert_eq!(xff(&["::ffff:203.0.113.9"]), Ok(ip("203.0.113.9")));
        // A proxy of ours wrote something that is not an address.
        assert_eq!(xff(&["198.51.100.7, unknown"]), Err(Unreadable));
        assert_eq!(xff(&[""]), Err(Unreadable));
    }

    #[test]
    fn forwarded_elements_give_their_for() {
        let trusted = [net("10.0.0.0/8")];
        let fwd = |lines: &[&str]| {
            client(
                ip("10.0.0.2"),
                &trusted,
                &headers("forwarded", lines),
                ForwardedHeader::Forwarded,
            )
        };
        assert_eq!(
            fwd(&["for=192.0.2.60;proto=http;by=203.0.113.43, For=\"10.0.0.7\""]),
            Ok(ip("192.0.2.60"))
        );
        assert_eq!(
            fwd(&["for=\"[2001:db8:cafe::17]:4711\""]),
            Ok(ip("2001:db8:cafe::17"))
        );
        assert_eq!(fwd(&["for=_hidden"]), Err(Unreadable));
        assert_eq!(fwd(&["for=unknown"]), Err(Unreadable));
        assert_eq!(fwd(&["proto=https"]), Err(Unreadable));
        assert_eq!(fwd(&["for=1.2.3.4;for=5.6.7.8"]), Err(Unreadable));
        // The header not configured is not read: a client's own `X-Forwarded-For` is ignored.
        let mut both = headers("forwarded", &["for=192.0.2.60"]);
        both.append("x-forwarded-for", "203.0.113.1".parse().unwrap());
        assert_eq!(
            client(ip("10.0.0.2"), &trusted, &both, ForwardedHeader::Forwarded),
            Ok(ip("192.0.2.60"))
        );
    }

    proptest::proptest! {
        /// Whatever a client puts in front of the chain, the answer is the address the
        /// nearest untrusted hop was seen from, and nothing panics.
        #[test]
        fn a_client_cannot_name_its_own_address(prefix in "[ -~]{0,60}", seen in proptest::array::uniform4(0_u8..)) {
            let trusted = [net("10.0.0.0/8")];
            let seen = IpAddr::from(seen);
            proptest::prop_assume!(!trusted[0].contains(seen));
            let line = format!("{prefix}, {seen}, 10.0.0.3");
            let Ok(value) = http::HeaderValue::from_str(&line) else { return Ok(()) };
            let mut map = HeaderMap::new();
            map.append("x-forwarded-for", value);
            let answer = client(ip("10.0.0.2"), &trusted, &map, ForwardedHeader::XForwardedFor);
            proptest::prop_assert_eq!(answer, Ok(seen.to_canonical()));
        }

        #[test]
        fn any_forwarded_text_is_read_without_panic(text in "\\PC{0,80}") {
            if let Ok(value) = http::HeaderValue::from_str(&text) {
                let mut map = HeaderMap::new();
                map.append("forwarded", value.clone());
                map.append("x-forwarded-for", value);
                for header in [ForwardedHeader::Forwarded, ForwardedHeader::XForwardedFor] {
                    let _ = client(ip("10.0.0.2"), &[net("10.0.0.0/8")], &map, header);
                }
            }
        }
    }
}
