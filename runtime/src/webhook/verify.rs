//! Reading a scheme's signature headers, and checking a body against them.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use http::{HeaderMap, HeaderName};
use subtle::{Choice, ConstantTimeEq};

use super::{Scheme, WebhookConfig, WebhookSecrets, mac};

/// At most this many signatures of one request are compared: a sender lists one per secret it
/// signs with, a couple during a rotation.
const MAX_CANDIDATES: usize = 8;

/// What the headers of a request say, once they are well-formed and timely. Held without an
/// allocation: header values share the request's buffers, signatures are decoded in place.
#[derive(Clone, Debug)]
pub(crate) struct Claimed {
    /// The message id (Standard Webhooks).
    id: Option<Text>,
    /// The timestamp as sent, which the MAC covers (Standard Webhooks and Stripe).
    timestamp: Option<Text>,
    /// The signatures to compare, decoded: the first `count`.
    signatures: [[u8; 32]; MAX_CANDIDATES],
    count: usize,
}

impl Claimed {
    pub(crate) fn id(&self) -> Option<&str> {
        self.id.as_ref().map(Text::as_str)
    }

    fn timestamp(&self) -> &str {
        self.timestamp.as_ref().map_or("", Text::as_str)
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

/// Part of a header value, which is visible ASCII (checked when read).
#[derive(Clone, Debug)]
struct Text {
    value: http::HeaderValue,
    start: usize,
    end: usize,
}

impl Text {
    fn whole(value: &http::HeaderValue) -> Self {
        Self {
            value: value.clone(),
            start: 0,
            end: value.len(),
        }
    }

    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.value.as_bytes()[self.start..self.end]).unwrap_or_default()
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
const HUB_SIGNATURE: HeaderName = HeaderName::from_static("x-hub-signature-256");
const STRIPE_SIGNATURE: HeaderName = HeaderName::from_static("stripe-signature");

/// Reads the headers `config.scheme()` signs with.
pub(crate) fn claimed(config: &WebhookConfig, headers: &HeaderMap) -> Result<Claimed, HeaderError> {
    let one = |name: HeaderName| -> Result<&http::HeaderValue, HeaderError> {
        let mut values = headers.get_all(name).iter();
        match (values.next(), values.next()) {
            // `to_str` checks that the value is visible ASCII.
            (Some(value), None) if value.to_str().is_ok() => Ok(value),
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
            let id = one(WEBHOOK_ID)?;
            if id.is_empty() || id.len() > 256 {
                return Err(HeaderError::Missing);
            }
            claimed.id = Some(Text::whole(id));
            claimed.timestamp = Some(Text::whole(one(WEBHOOK_TIMESTAMP)?));
            let signatures = one(WEBHOOK_SIGNATURE)?.to_str().unwrap_or_default();
            for encoded in signatures
                .split(' ')
                .filter_map(|signature| signature.strip_prefix("v1,"))
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
                .to_str()
                .unwrap_or_default()
                .strip_prefix("sha256=")
                .and_then(unhex)
                .ok_or(HeaderError::Missing)?;
            claimed.push(signature);
        }
        Scheme::Stripe => {
            let value = one(STRIPE_SIGNATURE)?;
            let text = value.to_str().unwrap_or_default();
            let mut at = 0;
            for pair in text.split(',') {
                let start = at;
                at += pair.len() + 1;
                let trimmed = pair.trim_start();
                let offset = start + (pair.len() - trimmed.len());
                match trimmed.trim_end().split_once('=') {
                    Some(("t", stamp)) if claimed.timestamp.is_none() => {
                        let begin = offset + 2;
                        claimed.timestamp = Some(Text {
                            value: value.clone(),
                            start: begin,
                            end: begin + stamp.len(),
                        });
                    }
                    Some(("v1", signature)) => {
                        if let Some(signature) = unhex(signature) {
                            claimed.push(signature);
                        }
                    }
                    _ => {}
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
    if let Some(timestamp) = &claimed.timestamp {
        let sent: u64 = timestamp.as_str().parse().map_err(|_| HeaderError::Missing)?;
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
                let id = claimed.id().unwrap_or_default();
                let timestamp = claimed.timestamp();
                mac(
                    key,
                    &[id.as_bytes(), b".", timestamp.as_bytes(), b".", body],
                )
            }
            Scheme::GitHub => mac(&secret.text, &[body]),
            Scheme::Stripe => mac(&secret.text, &[claimed.timestamp().as_bytes(), b".", body]),
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
