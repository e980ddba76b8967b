//! [`IpNetwork`]: a block of addresses a key may be used from.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// A block of IP addresses in CIDR notation, such as `203.0.113.0/24` or `2001:db8::/32`, or
/// one address (`203.0.113.7`, the same as `203.0.113.7/32`).
///
/// A key given networks ([`Key::allowed_ips`](crate::Key::allowed_ips), `allowed_ips` in the
/// records file) is accepted only from an address inside one of them, and refused with `403`
/// elsewhere. The address is the one the brute-force throttle counts: the peer's, or the one a
/// trusted proxy forwarded ([`RateLimits::behind_proxies`](crate::RateLimits::behind_proxies)).
///
/// Parsing is strict: a network with bits set past its prefix (`203.0.113.5/24`) is refused,
/// since it is most often a typo for a single address or for a wider block, and guessing either
/// would open or close the wrong door. An IPv4-mapped IPv6 client (`::ffff:203.0.113.7`) is
/// matched as the IPv4 address it is.
///
/// ```
/// use axum_api_key::IpNetwork;
///
/// let office: IpNetwork = "203.0.113.0/24".parse()?;
/// assert!(office.contains("203.0.113.200".parse().unwrap()));
/// assert!(!office.contains("198.51.100.1".parse().unwrap()));
/// assert_eq!(office.to_string(), "203.0.113.0/24");
///
/// let error = "203.0.113.5/24".parse::<IpNetwork>().unwrap_err();
/// assert_eq!(
///     error.to_string(),
///     "`203.0.113.5/24` has bits set past its /24 prefix: write 203.0.113.0/24 for the block, \
///      or 203.0.113.5 for the one address"
/// );
/// # Ok::<(), axum_api_key::IpNetworkError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpNetwork {
    address: IpAddr,
    prefix: u8,
}

/// Why a text is not an [`IpNetwork`]. Its message quotes the text, which is an address and
/// never a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpNetworkError {
    message: String,
}

impl fmt::Display for IpNetworkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for IpNetworkError {}

/// The longest text worth reading as a network: an IPv6 address with an IPv4 tail and a prefix
/// is 49 bytes. Anything longer is refused unread, and never quoted whole.
const MAX_TEXT: usize = 64;

impl IpNetwork {
    /// The network of `address` with `prefix` bits, or `None` when the prefix is longer than
    /// the address (32 bits for IPv4, 128 for IPv6) or bits are set past it.
    pub fn new(address: IpAddr, prefix: u8) -> Option<Self> {
        let address = canonical(address);
        let network = Self { address, prefix };
        (prefix <= bits(address) && network.first() == address).then_some(network)
    }

    /// The network of one address: `/32` for IPv4, `/128` for IPv6.
    ///
    /// ```
    /// use axum_api_key::IpNetwork;
    ///
    /// let proxy = IpNetwork::host("10.0.0.2".parse().unwrap());
    /// assert_eq!(proxy.to_string(), "10.0.0.2");
    /// assert_eq!(proxy.prefix(), 32);
    /// ```
    pub fn host(address: IpAddr) -> Self {
        let address = canonical(address);
        Self {
            address,
            prefix: bits(address),
        }
    }

    /// The first address of the network.
    pub fn address(&self) -> IpAddr {
        self.address
    }

    /// The number of leading bits every address of the network shares.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Whether `address` is in the network. An IPv4-mapped IPv6 address is the IPv4 address
    /// it maps; an IPv4 address is never in an IPv6 network, nor the reverse.
    pub fn contains(&self, address: IpAddr) -> bool {
        match (self.address, canonical(address)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = mask32(self.prefix);
                u32::from(ip) & mask == u32::from(net)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = mask128(self.prefix);
                u128::from(ip) & mask == u128::from(net)
            }
            _ => false,
        }
    }

    /// The address with every bit past the prefix cleared.
    fn first(&self) -> IpAddr {
        match self.address {
            IpAddr::V4(ip) => IpAddr::V4((u32::from(ip) & mask32(self.prefix)).into()),
            IpAddr::V6(ip) => IpAddr::V6((u128::from(ip) & mask128(self.prefix)).into()),
        }
    }
}

fn canonical(address: IpAddr) -> IpAddr {
    address.to_canonical()
}

fn bits(address: IpAddr) -> u8 {
    if address.is_ipv4() { 32 } else { 128 }
}

fn mask32(prefix: u8) -> u32 {
    u32::MAX
        .checked_shl(32 - u32::from(prefix.min(32)))
        .unwrap_or(0)
}

fn mask128(prefix: u8) -> u128 {
    u128::MAX
        .checked_shl(128 - u32::from(prefix.min(128)))
        .unwrap_or(0)
}

impl FromStr for IpNetwork {
    type Err = IpNetworkError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let error = |message: String| IpNetworkError { message };
        if text.len() > MAX_TEXT || !text.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(error(
                "not a network: write an address such as 203.0.113.7, or a block such as \
                 203.0.113.0/24 or 2001:db8::/32"
                    .to_owned(),
            ));
        }
        let (address_text, prefix_text) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let address: IpAddr = address_text.parse().map_err(|_| {
            error(format!(
                "`{text}` is not a network: write an address such as 203.0.113.7, or a block \
                 such as 203.0.113.0/24 or 2001:db8::/32"
            ))
        })?;
        // A mapped IPv4 address is its IPv4 address; its prefix is counted in IPv4 bits only
        // when it came without one.
        let address = canonical(address);
        let most = bits(address);
        let prefix = match prefix_text {
            None => most,
            Some(digits) => {
                let parsed = (!digits.is_empty()
                    && digits.len() <= 3
                    && digits.bytes().all(|b| b.is_ascii_digit()))
                .then(|| digits.parse::<u8>().ok())
                .flatten();
                match parsed {
                    Some(prefix) if prefix <= most => prefix,
                    _ => {
                        return Err(error(format!(
                            "`{text}` has no valid prefix: after the `/` comes a number of bits \
                             from 0 to {most}"
                        )));
                    }
                }
            }
        };
        let network = Self { address, prefix };
        let first = network.first();
        if first != address {
            return Err(error(format!(
                "`{text}` has bits set past its /{prefix} prefix: write {first}/{prefix} for \
                 the block, or {address} for the one address"
            )));
        }
        Ok(network)
    }
}

impl fmt::Display for IpNetwork {
    /// The network as it is parsed back: `203.0.113.0/24`, and a single address without its
    /// prefix (`203.0.113.7`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.prefix == bits(self.address) {
            write!(f, "{}", self.address)
        } else {
            write!(f, "{}/{}", self.address, self.prefix)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use proptest::prelude::*;

    use super::*;

    #[test]
    fn reads_blocks_and_addresses() {
        let net: IpNetwork = "2001:db8::/32".parse().unwrap();
        assert!(net.contains("2001:db8:ffff::1".parse().unwrap()));
        assert!(!net.contains("2001:db9::1".parse().unwrap()));
        assert!(!net.contains("203.0.113.1".parse().unwrap()));
        let one: IpNetwork = "203.0.113.7".parse().unwrap();
        assert_eq!(one.prefix(), 32);
        assert!(one.contains("::ffff:203.0.113.7".parse().unwrap()));
        assert!(!one.contains("203.0.113.8".parse().unwrap()));
        let all: IpNetwork = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("198.51.100.1".parse().unwrap()));
        assert!(!all.contains("::1".parse().unwrap()));
        let mapped: IpNetwork = "::ffff:203.0.113.7".parse().unwrap();
        assert_eq!(mapped, one);
    }

    #[test]
    fn refuses_what_is_not_a_network() {
        for text in [
            "",
            "/24",
            "203.0.113.0/",
            "203.0.113.0/33",
            "203.0.113.0/+8",
            "203.0.113.0/0024",
            "2001:db8::/129",
            "203.0.113.0/24/8",
            "203.0.113",
            "example.com",
            "203.0.113.0 /24",
            "203.0.113.5/24",
        ] {
            assert!(text.parse::<IpNetwork>().is_err(), "{text:?}");
        }
        let long = "1".repeat(10_000);
        let error = long.parse::<IpNetwork>().unwrap_err().to_string();
        assert!(error.len() < 200, "{error}");
    }

    fn naive_contains(net: IpNetwork, ip: IpAddr) -> bool {
        let bits_of = |ip: IpAddr| -> Vec<bool> {
            match ip {
                IpAddr::V4(v4) => (0..32)
                    .map(|i| u32::from(v4) >> (31 - i) & 1 == 1)
                    .collect(),
                IpAddr::V6(v6) => (0..128)
                    .map(|i| u128::from(v6) >> (127 - i) & 1 == 1)
                    .collect(),
            }
        };
        let (a, b) = (bits_of(net.address()), bits_of(ip.to_canonical()));
        a.len() == b.len() && a[..usize::from(net.prefix())] == b[..usize::from(net.prefix())]
    }

    fn address() -> impl Strategy<Value = IpAddr> {
        prop_oneof![
            any::<u32>().prop_map(|ip| IpAddr::V4(Ipv4Addr::from(ip))),
            any::<u128>().prop_map(|ip| IpAddr::V6(Ipv6Addr::from(ip))),
        ]
    }

    proptest! {
        #[test]
        fn a_network_reads_back_and_holds_exactly_its_addresses(
            address in address(),
            prefix in 0u8..=128,
            probe_bits in any::<u128>(),
            flip_from in 0u32..128,
        ) {
            let most = bits(address);
            let prefix = prefix % (most + 1);
            let text = format!("{address}/{prefix}");
            match (text.parse::<IpNetwork>(), IpNetwork::new(address, prefix)) {
                (Ok(net), Some(built)) => {
                    prop_assert_eq!(net, built);
                    prop_assert_eq!(net.to_string().parse::<IpNetwork>(), Ok(net));
                }
                (Err(error), None) => {
                    // Refused only for bits past the prefix; the message names the block.
                    let message = error.to_string();
                    prop_assert!(message.contains("bits set past"), "{}", message);
                }
                (parsed, built) => prop_assert!(false, "{text}: {parsed:?} / {built:?}"),
            }
            // The block the address is in, and a probe sharing its first bits.
            let cleared = match address {
                IpAddr::V4(ip) => IpAddr::V4((u32::from(ip) & mask32(prefix)).into()),
                IpAddr::V6(ip) => IpAddr::V6((u128::from(ip) & mask128(prefix)).into()),
            };
            let net = IpNetwork::new(cleared, prefix).expect("a cleared address");
            prop_assert!(net.contains(address));
            let probe = match address {
                IpAddr::V4(ip) => IpAddr::V4(Ipv4Addr::from(
                    u32::from(ip) ^ ((probe_bits as u32) >> (flip_from % 32)),
                )),
                IpAddr::V6(ip) => IpAddr::V6(Ipv6Addr::from(
                    u128::from(ip) ^ (probe_bits >> flip_from),
                )),
            };
            prop_assert_eq!(net.contains(probe), naive_contains(net, probe));
        }

        #[test]
        fn any_text_is_read_or_refused_without_panic(text in "[0-9a-f:./ %x-]{0,48}") {
            if let Ok(net) = text.parse::<IpNetwork>() {
                prop_assert_eq!(net.to_string().parse::<IpNetwork>(), Ok(net));
            }
        }
    }
}
