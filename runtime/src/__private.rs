//! What the code `#[api_key]` and `#[webhook]` generate uses: the guard's types, the checks
//! that make a misconfiguration a compile error at the user's code, and the route budgets.
//! Not public API.

pub use crate::extract::RequireApiKey;
pub use crate::guard_config::{GuardConfig, KeyConfig, Source};
pub use crate::limit::RateLimit;
#[cfg(feature = "openapi")]
pub use crate::openapi::refusal_example;
pub use crate::store::ApiKeys;
pub use axum::response::{IntoResponse, Response};
pub use bytes::Bytes;
pub use core::time::Duration;

/// The handler's own body, as a future whose output is the handler's return type: `?` in
/// the body converts its errors as it would in the handler itself.
pub fn returning<R, F: core::future::Future<Output = R>>(body: F) -> F {
    body
}

/// The configuration of every guard on the `x-api-key` header of an [`ApiKeys`] store
/// without scopes, shared by all the handlers that use it.
pub enum Standard<const STATUS: u16, const OPTIONAL: bool> {}

impl<const STATUS: u16, const OPTIONAL: bool> KeyConfig for Standard<STATUS, OPTIONAL> {
    const CONFIG: GuardConfig = {
        let config = GuardConfig::new(&[]).with_status(STATUS);
        if OPTIONAL { config.optional() } else { config }
    };
}

/// The configuration of every guard of an [`ApiKeys`] store whose sources and scopes fit in
/// 128 bytes, packed into `W0` to `W7` (little-endian): the count of sources, the count of
/// scopes, then each source as its kind (0: a header, 1: a query parameter, 2: a cookie, 3:
/// bearer), its name's length and its name, then each scope as its length and its text;
/// trailing zero words may be left out. Handlers configured alike share one type, so
/// nothing is defined beside them and nothing is compiled per handler.
pub enum Packed<
    const STATUS: u16,
    const OPTIONAL: bool,
    const W0: u128,
    const W1: u128 = 0,
    const W2: u128 = 0,
    const W3: u128 = 0,
    const W4: u128 = 0,
    const W5: u128 = 0,
    const W6: u128 = 0,
    const W7: u128 = 0,
> {}

impl<
    const STATUS: u16,
    const OPTIONAL: bool,
    const W0: u128,
    const W1: u128,
    const W2: u128,
    const W3: u128,
    const W4: u128,
    const W5: u128,
    const W6: u128,
    const W7: u128,
> Packed<STATUS, OPTIONAL, W0, W1, W2, W3, W4, W5, W6, W7>
{
    const BYTES: &'static [u8; 128] = &unpack([W0, W1, W2, W3, W4, W5, W6, W7]);
    const DECODED: &'static Decoded<8> = &decode(Self::BYTES);
    const SOURCES: &'static [Source] = Self::DECODED.sources.split_at(Self::DECODED.source_count).0;
    const SCOPES: &'static [&'static str] =
        Self::DECODED.scopes.split_at(Self::DECODED.scope_count).0;
}

impl<
    const STATUS: u16,
    const OPTIONAL: bool,
    const W0: u128,
    const W1: u128,
    const W2: u128,
    const W3: u128,
    const W4: u128,
    const W5: u128,
    const W6: u128,
    const W7: u128,
> KeyConfig for Packed<STATUS, OPTIONAL, W0, W1, W2, W3, W4, W5, W6, W7>
{
    const CONFIG: GuardConfig = {
        let config = GuardConfig::new(Self::SOURCES)
            .with_status(STATUS)
            .with_scopes(Self::SCOPES);
        if OPTIONAL { config.optional() } else { config }
    };
}

/// The configuration of every guard of an [`ApiKeys`] store whose sources and scopes take
/// more than [`Packed`] holds: up to 1,024 bytes in the chunks of `B`, packed as in
/// [`Packed`], with up to 64 scopes.
pub enum Long<const STATUS: u16, const OPTIONAL: bool, B: Chunks> {
    #[doc(hidden)]
    _Never(core::convert::Infallible, core::marker::PhantomData<B>),
}

impl<const STATUS: u16, const OPTIONAL: bool, B: Chunks> Long<STATUS, OPTIONAL, B> {
    const DECODED: &'static Decoded<64> = &decode(&B::BYTES);
    const SOURCES: &'static [Source] = Self::DECODED.sources.split_at(Self::DECODED.source_count).0;
    const SCOPES: &'static [&'static str] =
        Self::DECODED.scopes.split_at(Self::DECODED.scope_count).0;
}

impl<const STATUS: u16, const OPTIONAL: bool, B: Chunks> KeyConfig for Long<STATUS, OPTIONAL, B> {
    const CONFIG: GuardConfig = {
        let config = GuardConfig::new(Self::SOURCES)
            .with_status(STATUS)
            .with_scopes(Self::SCOPES);
        if OPTIONAL { config.optional() } else { config }
    };
}

/// Bytes carried in a type: 128 bytes in eight words (little-endian), then those of `Rest`,
/// up to 1,024 in all.
pub enum Chunk<
    const W0: u128,
    const W1: u128,
    const W2: u128,
    const W3: u128,
    const W4: u128,
    const W5: u128,
    const W6: u128,
    const W7: u128,
    Rest: Chunks,
> {
    #[doc(hidden)]
    _Never(core::convert::Infallible, core::marker::PhantomData<Rest>),
}

/// The end of a list of [`Chunk`]s.
pub enum End {}

/// Bytes carried in a type, zero past their end.
pub trait Chunks: 'static {
    /// The bytes, zero past their end.
    const BYTES: [u8; 1024];
}

impl Chunks for End {
    const BYTES: [u8; 1024] = [0; 1024];
}

impl<
    const W0: u128,
    const W1: u128,
    const W2: u128,
    const W3: u128,
    const W4: u128,
    const W5: u128,
    const W6: u128,
    const W7: u128,
    Rest: Chunks,
> Chunks for Chunk<W0, W1, W2, W3, W4, W5, W6, W7, Rest>
{
    const BYTES: [u8; 1024] = {
        let head = unpack([W0, W1, W2, W3, W4, W5, W6, W7]);
        let mut bytes = [0u8; 1024];
        let mut i = 0;
        while i < 1024 {
            bytes[i] = if i < 128 {
                head[i]
            } else {
                Rest::BYTES[i - 128]
            };
            i += 1;
        }
        bytes
    };
}

/// The FNV-1a hash of a route's name (its module, handler and place), computed where the
/// handler is: what names its budget.
pub const fn route_id(name: &str) -> u64 {
    let bytes = name.as_bytes();
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0100_0000_01b3);
        i += 1;
    }
    hash
}

/// The 16 hex digits of `id`.
const fn route_name(id: u64) -> [u8; 16] {
    let mut name = [b'0'; 16];
    let mut i = 0;
    while i < 16 {
        let digit = ((id >> (4 * (15 - i))) & 0xF) as u8;
        name[i] = if digit < 10 {
            b'0' + digit
        } else {
            b'a' + digit - 10
        };
        i += 1;
    }
    name
}

/// A guard configuration `C` with a rate limit of its own: `COUNT` requests per `PERIOD`
/// nanoseconds, bursts of `BURST`, in the budget of the route `ROUTE` ([`route_id`]). A
/// `PERIOD` of 0 is a calendar day and 1 a calendar month (a rolling period is at least a
/// millisecond).
pub enum Rated<C, const COUNT: u32, const PERIOD: u64, const BURST: u32, const ROUTE: u64> {
    #[doc(hidden)]
    _Never(core::convert::Infallible, core::marker::PhantomData<C>),
}

impl<C: KeyConfig, const COUNT: u32, const PERIOD: u64, const BURST: u32, const ROUTE: u64>
    Rated<C, COUNT, PERIOD, BURST, ROUTE>
{
    const NAME: &'static [u8; 16] = &route_name(ROUTE);
    const ROUTE: &'static str = match core::str::from_utf8(Self::NAME) {
        Ok(name) => name,
        Err(_) => panic!("a route's name is ASCII"),
    };
}

impl<C: KeyConfig, const COUNT: u32, const PERIOD: u64, const BURST: u32, const ROUTE: u64>
    KeyConfig for Rated<C, COUNT, PERIOD, BURST, ROUTE>
{
    const CONFIG: GuardConfig = C::CONFIG.with_rate_limit(
        match PERIOD {
            0 => RateLimit::per_day(COUNT),
            1 => RateLimit::per_month(COUNT),
            _ => RateLimit::new(COUNT, Duration::from_nanos(PERIOD)).with_burst(BURST),
        },
        Self::ROUTE,
    );
}

/// A guard configuration `C` whose requests each spend `COST` credits.
pub enum Costed<C, const COST: u32> {
    #[doc(hidden)]
    _Never(core::convert::Infallible, core::marker::PhantomData<C>),
}

impl<C: KeyConfig, const COST: u32> KeyConfig for Costed<C, COST> {
    const CONFIG: GuardConfig = C::CONFIG.with_cost(COST);
}

/// A packed configuration, read: up to four sources and `N` scopes.
pub struct Decoded<const N: usize> {
    sources: [Source; 4],
    source_count: usize,
    scopes: [&'static str; N],
    scope_count: usize,
}

/// The 128 bytes packed in eight words, little-endian.
const fn unpack(words: [u128; 8]) -> [u8; 128] {
    let mut bytes = [0u8; 128];
    let mut word = 0;
    while word < 8 {
        let le = words[word].to_le_bytes();
        let mut i = 0;
        while i < 16 {
            bytes[word * 16 + i] = le[i];
            i += 1;
        }
        word += 1;
    }
    bytes
}

/// `len` bytes of `bytes` from `at`, as text.
const fn text(bytes: &'static [u8], at: usize, len: usize) -> &'static str {
    let (_, rest) = bytes.split_at(at);
    let (text, _) = rest.split_at(len);
    match core::str::from_utf8(text) {
        Ok(text) => text,
        Err(_) => panic!("packed names are ASCII"),
    }
}

const fn decode<const N: usize>(bytes: &'static [u8]) -> Decoded<N> {
    let mut decoded = Decoded {
        sources: [
            Source::Bearer,
            Source::Bearer,
            Source::Bearer,
            Source::Bearer,
        ],
        source_count: bytes[0] as usize,
        scopes: [""; N],
        scope_count: bytes[1] as usize,
    };
    let mut at = 2;
    let mut i = 0;
    while i < decoded.source_count {
        let (kind, len) = (bytes[at], bytes[at + 1] as usize);
        let name = text(bytes, at + 2, len);
        decoded.sources[i] = match kind {
            0 => Source::Header(name),
            1 => Source::Query(name),
            2 => Source::Cookie(name),
            _ => Source::Bearer,
        };
        at += 2 + len;
        i += 1;
    }
    let mut i = 0;
    while i < decoded.scope_count {
        let len = bytes[at] as usize;
        decoded.scopes[i] = text(bytes, at + 1, len);
        at += 1 + len;
        i += 1;
    }
    decoded
}

/// The configuration of every `#[webhook]` route alike: the scheme (0: Standard Webhooks,
/// 1: GitHub, 2: Stripe), the tolerance in seconds and the largest body in bytes.
#[cfg(feature = "webhooks")]
pub enum Webhook<const SCHEME: u8, const TOLERANCE: u64, const MAX_BODY: usize> {}

#[cfg(feature = "webhooks")]
impl<const SCHEME: u8, const TOLERANCE: u64, const MAX_BODY: usize>
    crate::webhook::WebhookConfigType for Webhook<SCHEME, TOLERANCE, MAX_BODY>
{
    const CONFIG: crate::webhook::WebhookConfig =
        crate::webhook::WebhookConfig::new(match SCHEME {
            1 => crate::webhook::Scheme::GitHub,
            2 => crate::webhook::Scheme::Stripe,
            _ => crate::webhook::Scheme::Standard,
        })
        .with_tolerance(Duration::from_secs(TOLERANCE))
        .with_max_body(MAX_BODY);
}

/// The guard `#[api_key]` gives a handler without arguments: nothing reads the key after it.
pub use crate::extract::GuardAlone;

pub use crate::checks::*;
