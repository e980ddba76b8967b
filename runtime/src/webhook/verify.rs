//! Reading a scheme's signature headers, and checking a body against them.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use http::{HeaderMap, HeaderName};
use subtle::{Choice, ConstantTimeEq};

use super::{Scheme, WebhookConfig, WebhookSecrets, mac_with};

/// At most this many signatures of one request are compared: a sender lists one per secret it
/// signs with, a couple during a rotation.
const MAX_CANDIDATES: usize = 32;

/// What the headers of a request say, once they are well-formed and timely. Held without an
/// allocation: header values share the request's buffers, signatures are decoded in place.
#[derive(Clone, Debug)]
pub(crate) struct Claimed {
    /// The message id (Standard Webhooks).
    id: Option<Text>,
    /// The timestamp as sent, which the MAC covers (Standard Webhooks and Stripe): decimal
    /// digits, 19 at most, held inline.
    timestamp: Option<([u8; 19], usize)>,
    /// The signatures to compare, decoded: the first `count`.
    signatures: [[u8; 32]; MAX_CANDIDATES],
    count: usize,
}

impl Claimed {
    /// The message id, as text: `None` without one, or when it is not UTF-8.
    pub(crate) fn id(&self) -> Option<&str> {
        std::str::from_utf8(self.id.as_ref()?.bytes()).ok()
    }

    fn id_bytes(&self) -> &[u8] {
        self.id.as_ref().map_or(&[], Text::bytes)
    }

    fn timestamp(&self) -> &[u8] {
        self.timestamp
            .as_ref()
            .map_or(&[], |(digits, len)| &digits[..*len])
    }

    fn signatures(&self) -> &[[u8; 32]] {
        &self.signatures[..self.count]
    }

    fn push(&mut self, signature: [u8; 32]) {
        if self.count < MAX_CANDIDATES {
            self.signatures[self.count] = signature;
            self.count += 1;
        }
    }
}

/// A header value, as sent: what the MAC covers. It shares the request's buffer.
#[derive(Clone, Debug)]
struct Text(http::HeaderValue);

impl Text {
    fn whole(value: &http::HeaderValue) -> Self {
        Self(value.clone())
    }

    fn bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

/// Why the headers are refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HeaderError {
    /// No signature header, or not of the scheme's form.
    Missing,
    /// The timestamp is too far from now.
    Stale,
}

// Named once: a lookup by `&str` would parse the name on every request.
const WEBHOOK_ID: HeaderName = HeaderName::from_static("webhook-id");
const WEBHOOK_TIMESTAMP: HeaderName = HeaderName::from_static("webhook-timestamp");
const WEBHOOK_SIGNATURE: HeaderName = HeaderName::from_static("webhook-signature");
// Svix, which wrote the standard, sends the same three under its own prefix.
const SVIX_ID: HeaderName = HeaderName::from_static("svix-id");
const SVIX_TIMESTAMP: HeaderName = HeaderName::from_static("svix-timestamp");
const SVIX_SIGNATURE: HeaderName = HeaderName::from_static("svix-signature");
const HUB_SIGNATURE: HeaderName = HeaderName::from_static("x-hub-signature-256");
const STRIPE_SIGNATURE: HeaderName = HeaderName::from_static("stripe-signature");

/// Reads the headers `config.scheme()` signs with, as bytes: nothing is copied or checked twice.
pub(crate) fn claimed(config: &WebhookConfig, headers: &HeaderMap) -> Result<Claimed, HeaderError> {
    let one = |name: HeaderName| -> Result<&http::HeaderValue, HeaderError> {
        let mut values = headers.get_all(name).iter();
        match (values.next(), values.next()) {
            (Some(value), None) => Ok(value),
            _ => Err(HeaderError::Missing),
        }
    };
    let mut claimed = Claimed {
        id: None,
        timestamp: None,
        signatures: [[0; 32]; MAX_CANDIDATES],
        count: 0,
    };
    match config.scheme() {
        Scheme::Standard => {
            // Its three headers in one pass over the request's: each once, and only once.
            let mut found: [Option<&http::HeaderValue>; 3] = [None; 3];
            for (name, value) in headers {
                let at = if *name == WEBHOOK_ID || *name == SVIX_ID {
                    0
                } else if *name == WEBHOOK_TIMESTAMP || *name == SVIX_TIMESTAMP {
                    1
                } else if *name == WEBHOOK_SIGNATURE || *name == SVIX_SIGNATURE {
                    2
                } else {
                    continue;
                };
                // Sent under both prefixes, the values must agree; never "the first wins".
                if found[at]
                    .replace(value)
                    .is_some_and(|before| before != value)
                {
                    return Err(HeaderError::Missing);
                }
            }
            let [Some(id), Some(timestamp), Some(signatures)] = found else {
                return Err(HeaderError::Missing);
            };
            if id.is_empty() || id.len() > 256 || !id.as_bytes().iter().all(u8::is_ascii_graphic) {
                return Err(HeaderError::Missing);
            }
            claimed.id = Some(Text::whole(id));
            claimed.timestamp = Some(digits(timestamp.as_bytes())?);
            for encoded in signatures
                .as_bytes()
                .split(|&b| b == b' ')
                .filter_map(|signature| signature.strip_prefix(b"v1,"))
                .take(MAX_CANDIDATES)
            {
                let mut decoded = [0u8; 48];
                if let Ok(32) = BASE64.decode_slice(encoded, &mut decoded) {
                    let mut signature = [0u8; 32];
                    signature.copy_from_slice(&decoded[..32]);
                    claimed.push(signature);
                }
            }
        }
        Scheme::GitHub => {
            let signature = one(HUB_SIGNATURE)?
                .as_bytes()
                .strip_prefix(b"sha256=")
                .and_then(crate::hex::decode32)
                .ok_or(HeaderError::Missing)?;
            claimed.push(signature);
        }
        Scheme::Stripe => {
            let value = one(STRIPE_SIGNATURE)?;
            for pair in value.as_bytes().split(|&b| b == b',') {
                let pair = pair.trim_ascii();
                if let Some(stamp) = pair.strip_prefix(b"t=") {
                    if claimed.timestamp.is_none() {
                        claimed.timestamp = Some(digits(stamp)?);
                    }
                } else if let Some(signature) =
                    pair.strip_prefix(b"v1=").and_then(crate::hex::decode32)
                {
                    claimed.push(signature);
                }
            }
            if claimed.timestamp.is_none() {
                return Err(HeaderError::Missing);
            }
        }
    }
    if claimed.count == 0 {
        return Err(HeaderError::Missing);
    }
    if claimed.timestamp.is_some() {
        let sent = seconds(claimed.timestamp()).ok_or(HeaderError::Missing)?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_secs());
        if now.abs_diff(sent) > config.tolerance().as_secs() {
            return Err(HeaderError::Stale);
        }
    }
    Ok(claimed)
}

/// A timestamp's digits, held inline: 1 to 19 decimal digits.
fn digits(text: &[u8]) -> Result<([u8; 19], usize), HeaderError> {
    if text.is_empty() || text.len() > 19 || !text.iter().all(u8::is_ascii_digit) {
        return Err(HeaderError::Missing);
    }
    let mut digits = [0u8; 19];
    digits[..text.len()].copy_from_slice(text);
    Ok((digits, text.len()))
}

/// Unix seconds written in decimal digits, 1 to 19 of them.
fn seconds(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    digits.iter().try_fold(0u64, |value, &digit| {
        digit
            .is_ascii_digit()
            .then(|| value * 10 + u64::from(digit - b'0'))
    })
}

/// The MAC of the body that matches a claimed signature, made with any of the secrets; `None`
/// when none matches. Every secret's MAC is compared with every signature, in constant time.
pub(crate) fn matching(
    config: &WebhookConfig,
    claimed: &Claimed,
    secrets: &WebhookSecrets,
    body: &[u8],
) -> Option<[u8; 32]> {
    let mut matched = None;
    for secret in secrets.secrets() {
        let computed = match config.scheme() {
            Scheme::Standard => {
                let Some(key) = &secret.standard else {
                    continue;
                };
                mac_with(
                    key,
                    &[claimed.id_bytes(), b".", claimed.timestamp(), b".", body],
                )
            }
            Scheme::GitHub => mac_with(&secret.text, &[body]),
            Scheme::Stripe => mac_with(&secret.text, &[claimed.timestamp(), b".", body]),
        };
        let mut equal = Choice::from(0);
        for signature in claimed.signatures() {
            equal |= computed.ct_eq(signature);
        }
        if bool::from(equal) {
            matched = Some(computed);
        }
    }
    matched
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webhook::sign;

    fn headers(pairs: &[(&'static str, String)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, value.parse().unwrap());
        }
        map
    }

    fn now() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    #[test]
    fn each_scheme_verifies_its_own_signature_and_nothing_else() {
        let secrets = WebhookSecrets::new()
            .with_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
            .with_secret("another-secret");
        for scheme in [Scheme::Standard, Scheme::GitHub, Scheme::Stripe] {
            let config = WebhookConfig::new(scheme);
            let secret = if scheme == Scheme::Standard {
                "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
            } else {
                "another-secret"
            };
            let signed = sign(scheme, secret, "msg_1", now(), b"{}").unwrap();
            let claimed = claimed(&config, &headers(&signed)).unwrap();
            assert!(
                matching(&config, &claimed, &secrets, b"{}").is_some(),
                "{scheme:?}"
            );
            assert!(
                matching(&config, &claimed, &secrets, b"{ }").is_none(),
                "{scheme:?}"
            );
            let others = WebhookSecrets::new()
                .with_secret("whsec_AAAA")
                .with_secret("x");
            assert!(
                matching(&config, &claimed, &others, b"{}").is_none(),
                "{scheme:?}"
            );
        }
    }

    #[test]
    fn stale_and_missing_headers_are_told_apart() {
        let config = WebhookConfig::new(Scheme::Stripe);
        let old = sign(Scheme::Stripe, "s", "", now() - 301, b"").unwrap();
        assert_eq!(
            claimed(&config, &headers(&old)).unwrap_err(),
            HeaderError::Stale
        );
        let fresh = sign(Scheme::Stripe, "s", "", now() - 299, b"").unwrap();
        assert!(claimed(&config, &headers(&fresh)).is_ok());
        assert_eq!(
            claimed(&config, &HeaderMap::new()).unwrap_err(),
            HeaderError::Missing
        );
        let github = WebhookConfig::new(Scheme::GitHub);
        let bad = headers(&[("x-hub-signature-256", "sha1=abcd".to_owned())]);
        assert_eq!(claimed(&github, &bad).unwrap_err(), HeaderError::Missing);
        let twice = headers(&[
            ("x-hub-signature-256", format!("sha256={}", "0".repeat(64))),
            ("x-hub-signature-256", format!("sha256={}", "1".repeat(64))),
        ]);
        assert_eq!(claimed(&github, &twice).unwrap_err(), HeaderError::Missing);
    }
}
