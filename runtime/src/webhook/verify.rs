//! Reading a scheme's signature headers, and checking a body against them.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use http::HeaderMap;
use subtle::{Choice, ConstantTimeEq};

use super::{Scheme, WebhookConfig, WebhookSecrets, mac};

/// At most this many signatures of one request are compared: a sender lists one per secret it
/// signs with, a couple during a rotation.
const MAX_CANDIDATES: usize = 8;

/// What the headers of a request say, once they are well-formed and timely.
#[derive(Clone, Debug)]
pub(crate) struct Claimed {
    /// The message id (Standard Webhooks).
    pub(crate) id: Option<String>,
    /// The timestamp as sent, which the MAC covers (Standard Webhooks and Stripe).
    pub(crate) timestamp: Option<String>,
    /// The signatures to compare, decoded.
    pub(crate) signatures: Vec<[u8; 32]>,
}

/// Why the headers are refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HeaderError {
    /// No signature header, or not of the scheme's form.
    Missing,
    /// The timestamp is too far from now.
    Stale,
}

/// Reads the headers `config.scheme()` signs with.
pub(crate) fn claimed(config: &WebhookConfig, headers: &HeaderMap) -> Result<Claimed, HeaderError> {
    let one = |name: &str| -> Result<&str, HeaderError> {
        let mut values = headers.get_all(name).iter();
        match (values.next(), values.next()) {
            (Some(value), None) => value.to_str().map_err(|_| HeaderError::Missing),
            _ => Err(HeaderError::Missing),
        }
    };
    let claimed = match config.scheme() {
        Scheme::Standard => {
            let id = one("webhook-id")?;
            if id.is_empty() || id.len() > 256 {
                return Err(HeaderError::Missing);
            }
            let timestamp = one("webhook-timestamp")?;
            let signatures = one("webhook-signature")?
                .split(' ')
                .filter_map(|signature| signature.strip_prefix("v1,"))
                .take(MAX_CANDIDATES)
                .filter_map(|encoded| BASE64.decode(encoded).ok()?.try_into().ok())
                .collect();
            Claimed {
                id: Some(id.to_owned()),
                timestamp: Some(timestamp.to_owned()),
                signatures,
            }
        }
        Scheme::GitHub => {
            let signature = one("x-hub-signature-256")?
                .strip_prefix("sha256=")
                .and_then(unhex)
                .ok_or(HeaderError::Missing)?;
            Claimed {
                id: None,
                timestamp: None,
                signatures: vec![signature],
            }
        }
        Scheme::Stripe => {
            let mut timestamp = None;
            let mut signatures = Vec::new();
            for pair in one("stripe-signature")?.split(',') {
                match pair.trim().split_once('=') {
                    Some(("t", value)) if timestamp.is_none() => timestamp = Some(value.to_owned()),
                    Some(("v1", value)) if signatures.len() < MAX_CANDIDATES => {
                        signatures.extend(unhex(value));
                    }
                    _ => {}
                }
            }
            Claimed {
                id: None,
                timestamp: Some(timestamp.ok_or(HeaderError::Missing)?),
                signatures,
            }
        }
    };
    if claimed.signatures.is_empty() {
        return Err(HeaderError::Missing);
    }
    if let Some(timestamp) = &claimed.timestamp {
        let sent: u64 = timestamp.parse().map_err(|_| HeaderError::Missing)?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_secs());
        if now.abs_diff(sent) > config.tolerance().as_secs() {
            return Err(HeaderError::Stale);
        }
    }
    Ok(claimed)
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
                let id = claimed.id.as_deref().unwrap_or_default();
                let timestamp = claimed.timestamp.as_deref().unwrap_or_default();
                mac(
                    key,
                    &[id.as_bytes(), b".", timestamp.as_bytes(), b".", body],
                )
            }
            Scheme::GitHub => mac(&secret.text, &[body]),
            Scheme::Stripe => {
                let timestamp = claimed.timestamp.as_deref().unwrap_or_default();
                mac(&secret.text, &[timestamp.as_bytes(), b".", body])
            }
        };
        let mut equal = Choice::from(0);
        for signature in &claimed.signatures {
            equal |= computed.ct_eq(signature);
        }
        if bool::from(equal) {
            matched = Some(computed);
        }
    }
    matched
}

fn unhex(text: &str) -> Option<[u8; 32]> {
    let text = text.as_bytes();
    if text.len() != 64 {
        return None;
    }
    let mut bytes = [0u8; 32];
    for (byte, pair) in bytes.iter_mut().zip(text.chunks_exact(2)) {
        let high = (pair[0] as char).to_digit(16)?;
        let low = (pair[1] as char).to_digit(16)?;
        *byte = u8::try_from(high * 16 + low).ok()?;
    }
    Some(bytes)
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
