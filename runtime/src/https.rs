//! [`HttpsPolicy`]: refusing keys that travelled in clear.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::ConnectInfo;
use http::request::Parts;

/// How a store that requires HTTPS tells that a request came over it. Set it with
/// [`ApiKeys::with_https`](crate::ApiKeys::with_https).
///
/// Either way, a request that carries the [`Https`] marker in its extensions is over HTTPS. The
/// request's own URI never counts: its scheme is whatever the client wrote (`GET
/// https://host/data HTTP/1.1` over plain TCP, or HTTP/2's `:scheme`), so only the connection
/// decides.
///
/// ```
/// use axum_api_key::{ApiKeys, HttpsPolicy};
///
/// // TLS ends at a load balancer at 10.0.0.2, which sets `X-Forwarded-Proto`.
/// let keys = ApiKeys::new().with_https(HttpsPolicy::behind_proxies(["10.0.0.2".parse().unwrap()]));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum HttpsPolicy {
    /// The server itself terminates TLS: only the [`Https`] marker that its TLS layer puts in
    /// the request's extensions counts.
    Direct,
    /// TLS ends at a proxy: `X-Forwarded-Proto: https` counts too, but only from one of these
    /// addresses. The peer's address comes from axum's `ConnectInfo<SocketAddr>`, so serve with
    /// `into_make_service_with_connect_info::<SocketAddr>()`; without it, nothing is trusted.
    /// An IPv4 address and its IPv4-mapped IPv6 form (`::ffff:10.0.0.2`) are the same proxy.
    BehindProxies(Arc<[IpAddr]>),
}

impl HttpsPolicy {
    /// Trusts `X-Forwarded-Proto` from these proxy addresses.
    pub fn behind_proxies(proxies: impl IntoIterator<Item = IpAddr>) -> Self {
        Self::BehindProxies(proxies.into_iter().map(|ip| ip.to_canonical()).collect())
    }

    /// Whether the request came over HTTPS, as far as this policy can tell.
    pub(crate) fn allows(&self, parts: &Parts) -> bool {
        if parts.extensions.get::<Https>().is_some() {
            return true;
        }
        let Self::BehindProxies(proxies) = self else {
            return false;
        };
        let Some(ConnectInfo(peer)) = parts.extensions.get::<ConnectInfo<SocketAddr>>() else {
            return false;
        };
        let peer = peer.ip().to_canonical();
        if !proxies.iter().any(|proxy| proxy.to_canonical() == peer) {
            return false;
        }
        // One header, and the scheme the nearest proxy saw: the last of a list.
        let mut values = parts.headers.get_all("x-forwarded-proto").iter();
        match (values.next(), values.next()) {
            (Some(value), None) => value
                .as_bytes()
                .rsplit(|&b| b == b',')
                .next()
                .is_some_and(|proto| proto.trim_ascii().eq_ignore_ascii_case(b"https")),
            _ => false,
        }
    }
}

/// A marker that the app's TLS layer puts in a request's extensions to say it arrived over
/// HTTPS, for servers that terminate TLS themselves.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Https;
