//! Per-key plans through a real `Router`: disabled keys, and keys held to some networks, as an
//! attacker holding one key would try them.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::routing::get;
use axum_api_key::{
    ApiKeys, IpNetwork, Key, KeyError, KeyFormat, RateLimits, VerifiedKey, api_key,
    rate_limit_headers,
};
use axum_api_key_tests::{Answer, KEY_A, KEY_B, global_logs, send};
use http::{Request, StatusCode};

#[api_key]
async fn data(key: VerifiedKey) -> String {
    format!("data for {}", key.id())
}

#[api_key(scopes = ["admin"])]
async fn admin() -> &'static str {
    "admin"
}

fn net(text: &str) -> IpNetwork {
    text.parse().expect("a network")
}

fn app(keys: ApiKeys) -> Router {
    Router::new()
        .route("/data", get(data))
        .route("/admin", get(admin))
        .with_state(keys)
        .layer(rate_limit_headers())
}

fn request(uri: &str, key: &str, from: Option<&str>, forwarded: Option<&str>) -> Request<Body> {
    let mut request = Request::get(uri)
        .header("x-api-key", key)
        .body(Body::empty())
        .expect("request");
    if let Some(ip) = from {
        let ip: IpAddr = ip.parse().expect("address");
        request
            .extensions_mut()
            .insert(ConnectInfo(SocketAddr::new(ip, 40_000)));
    }
    if let Some(list) = forwarded {
        request
            .headers_mut()
            .insert("x-forwarded-for", list.parse().expect("header value"));
    }
    request
}

async fn from(app: &Router, key: &str, address: &str) -> Answer {
    send(app.clone(), request("/data", key, Some(address), None)).await
}

#[tokio::test]
async fn a_disabled_key_is_refused_with_its_own_problem_until_enabled() {
    let keys = ApiKeys::new()
        .with(Key::new("partner-a", KEY_A))
        .with_key("partner-b", KEY_B)
        .with_rate_limits(RateLimits::new());
    let app = app(keys.clone());
    assert_eq!(
        from(&app, KEY_A, "198.51.100.1").await.status,
        StatusCode::OK
    );

    assert_eq!(keys.disable("partner-a").expect("disabled"), 1);
    let refused = from(&app, KEY_A, "198.51.100.1").await;
    refused.assert_problem(StatusCode::FORBIDDEN, "DisabledKey");
    assert!(
        refused.json()["detail"]
            .as_str()
            .unwrap()
            .contains("disabled")
    );
    assert_eq!(refused.header("www-authenticate"), None);
    refused.assert_never_contains(KEY_A.as_bytes());
    // Another key is untouched, and disabling twice changes nothing.
    assert_eq!(
        from(&app, KEY_B, "198.51.100.1").await.status,
        StatusCode::OK
    );
    assert_eq!(keys.disable("partner-a").expect("no change"), 0);
    assert_eq!(
        keys.list()[0].refused(),
        Some(KeyError::Disabled),
        "listed as disabled"
    );
    assert!(keys.list()[0].key().is_disabled());

    // A disabled key is no guess: however often it is sent, its address is not throttled.
    for _ in 0..40 {
        let answer = from(&app, KEY_A, "198.51.100.9").await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN);
    }
    assert_eq!(
        from(&app, KEY_B, "198.51.100.9").await.status,
        StatusCode::OK
    );

    assert_eq!(keys.enable("partner-a").expect("enabled"), 1);
    assert_eq!(
        from(&app, KEY_A, "198.51.100.1").await.status,
        StatusCode::OK
    );
    assert!(keys.enable("nobody").is_err());
}

#[tokio::test]
async fn a_disabled_key_cannot_buy_itself_a_fresh_key() {
    let format = KeyFormat::new("plan").expect("format");
    let old = format.generate();
    let keys = ApiKeys::new()
        .with_format(format)
        .with(Key::new("svc", &old).scopes(["a"]));
    keys.disable("svc").expect("disabled");
    // Rotation by its holder is refused: the key is not live.
    let presented = axum_api_key::digest(old.as_bytes());
    assert!(
        keys.rotate_presented(&presented, Duration::from_secs(60))
            .is_err()
    );
    // Rotation by the operator keeps the suspension on the successor.
    let new = keys.rotate("svc", Duration::ZERO).expect("rotated");
    assert_eq!(keys.verify(new.as_bytes()).unwrap_err(), KeyError::Disabled);
    keys.enable("svc").expect("enabled");
    assert!(keys.verify(new.as_bytes()).is_ok());
    // A key both revoked and disabled is told revoked: enabling it would not help.
    keys.revoke("svc").expect("revoked");
    keys.disable("svc").expect("disabled");
    assert_eq!(keys.verify(new.as_bytes()).unwrap_err(), KeyError::Revoked);
}

#[tokio::test]
async fn a_key_held_to_a_network_is_refused_elsewhere_and_spends_nothing_there() {
    let keys = ApiKeys::new()
        .with(
            Key::new("office", KEY_A)
                .allowed_ips([net("203.0.113.0/24"), net("2001:db8::/32")])
                .rate_limit("4/min".parse().expect("limit")),
        )
        .with_rate_limits(RateLimits::new());
    let app = app(keys);
    let logs = global_logs();
    assert_eq!(
        from(&app, KEY_A, "203.0.113.10").await.status,
        StatusCode::OK
    );
    assert_eq!(
        from(&app, KEY_A, "2001:db8:1::5").await.status,
        StatusCode::OK
    );
    assert_eq!(
        from(&app, KEY_A, "::ffff:203.0.113.11").await.status,
        StatusCode::OK,
        "an IPv4-mapped address is its IPv4 address"
    );

    // The leaked key, used from elsewhere many times: refused each time, and the owner's
    // budget (one request left) is untouched.
    for _ in 0..10 {
        let refused = from(&app, KEY_A, "198.51.100.66").await;
        refused.assert_problem(StatusCode::FORBIDDEN, "AddressNotAllowed");
        refused.assert_never_contains(KEY_A.as_bytes());
        assert_eq!(refused.header("ratelimit"), None);
    }
    assert_eq!(
        from(&app, KEY_A, "203.0.113.10").await.status,
        StatusCode::OK
    );
    assert_eq!(
        from(&app, KEY_A, "203.0.113.10").await.status,
        StatusCode::TOO_MANY_REQUESTS
    );

    // The refusal is an audit warning naming the key and the address, never the key itself.
    let logged = logs.text();
    let line = logged
        .lines()
        .find(|line| line.contains("address_not_allowed") && line.contains("198.51.100.66"))
        .unwrap_or_else(|| panic!("no address_not_allowed event: {logged}"));
    assert!(line.contains("WARN"), "{line}");
    assert!(line.contains("key_id=\"office\""), "{line}");
    assert!(!logged.contains(KEY_A));
    // Ten refusals from one address are one warning, the rest at DEBUG: a leaked key hammered
    // from one place cannot flood the log. Another address is a warning of its own.
    let warnings = |address: &str| {
        logs.text()
            .lines()
            .filter(|line| {
                line.contains("address_not_allowed")
                    && line.contains(address)
                    && line.contains("WARN")
            })
            .count()
    };
    assert_eq!(warnings("198.51.100.66"), 1);
    let quiet = logs
        .text()
        .lines()
        .filter(|line| {
            line.contains("address_not_allowed")
                && line.contains("198.51.100.66")
                && line.contains("DEBUG")
        })
        .count();
    assert_eq!(quiet, 9, "every refusal is still logged, at DEBUG");
    from(&app, KEY_A, "198.51.100.67").await;
    assert_eq!(warnings("198.51.100.67"), 1);
}

#[tokio::test]
async fn a_key_out_of_credits_is_one_audit_event_a_minute_however_often_it_asks() {
    let keys = ApiKeys::new()
        .with(Key::new("flood-credits", KEY_A).credits(1))
        .with_rate_limits(RateLimits::new());
    let app = app(keys);
    let logs = global_logs();
    assert_eq!(
        from(&app, KEY_A, "198.51.100.1").await.status,
        StatusCode::OK
    );
    for _ in 0..20 {
        let refused = from(&app, KEY_A, "198.51.100.1").await;
        refused.assert_problem(StatusCode::TOO_MANY_REQUESTS, "CreditsExhausted");
    }
    let lines: Vec<String> = logs
        .text()
        .lines()
        .filter(|line| line.contains("credits_exhausted") && line.contains("flood-credits"))
        .map(str::to_owned)
        .collect();
    assert_eq!(lines.len(), 20, "{lines:?}");
    let loud = lines.iter().filter(|line| !line.contains("DEBUG")).count();
    assert_eq!(loud, 1, "{lines:?}");
}

#[tokio::test]
async fn the_address_is_the_one_the_throttle_trusts() {
    let keys = ApiKeys::new()
        .with(Key::new("office", KEY_A).allowed_ips([net("203.0.113.0/24")]))
        .with(Key::new("anywhere", KEY_B))
        .with_rate_limits(RateLimits::new().behind_proxies(["10.0.0.2".parse().expect("address")]));
    let app = app(keys);
    let through = |key: &str, forwarded: &str| {
        send(
            app.clone(),
            request("/data", key, Some("10.0.0.2"), Some(forwarded)),
        )
    };
    // Through the trusted proxy, the address it saw counts: the nearest entry.
    assert_eq!(through(KEY_A, "203.0.113.7").await.status, StatusCode::OK);
    assert_eq!(
        through(KEY_A, "203.0.113.7, 198.51.100.1").await.status,
        StatusCode::FORBIDDEN,
        "the proxy saw 198.51.100.1"
    );
    // A client cannot put an allowed address first in the list to pass.
    assert_eq!(
        through(KEY_A, "198.51.100.1, 203.0.113.7").await.status,
        StatusCode::OK,
        "the proxy saw 203.0.113.7"
    );
    // From an untrusted peer the header is ignored: naming an allowed address buys nothing.
    let spoofed = send(
        app.clone(),
        request("/data", KEY_A, Some("198.51.100.1"), Some("203.0.113.7")),
    )
    .await;
    spoofed.assert_problem(StatusCode::FORBIDDEN, "AddressNotAllowed");
    // The proxy itself is not in the office network.
    let direct = send(app.clone(), request("/data", KEY_A, Some("10.0.0.2"), None)).await;
    assert_eq!(direct.status, StatusCode::FORBIDDEN);
    // A key without a restriction goes anywhere.
    assert_eq!(through(KEY_B, "198.51.100.1").await.status, StatusCode::OK);
}

#[tokio::test]
async fn without_a_known_address_a_restricted_key_is_refused_and_the_operator_told() {
    let keys = ApiKeys::new()
        .with(Key::new("office-2", KEY_A).allowed_ips([net("0.0.0.0/0"), net("::/0")]))
        .with_key("anywhere", KEY_B);
    let app = app(keys);
    let logs = global_logs();
    // Served without connect info: no address to check, so no way in.
    let refused = send(app.clone(), request("/data", KEY_A, None, None)).await;
    refused.assert_problem(StatusCode::FORBIDDEN, "AddressNotAllowed");
    let unrestricted = send(app.clone(), request("/data", KEY_B, None, None)).await;
    assert_eq!(unrestricted.status, StatusCode::OK);
    let logged = logs.text();
    let line = logged
        .lines()
        .find(|line| line.contains("address_not_allowed") && line.contains("office-2"))
        .unwrap_or_else(|| panic!("no event: {logged}"));
    assert!(line.contains("ERROR"), "{line}");
    assert!(
        line.contains("into_make_service_with_connect_info"),
        "{line}"
    );
}

#[tokio::test]
async fn the_network_check_comes_before_the_scope_check() {
    let keys = ApiKeys::new()
        .with(Key::new("office-3", KEY_A).allowed_ips([net("203.0.113.0/24")]))
        .with_rate_limits(RateLimits::new());
    let app = app(keys);
    // From outside, a stolen key learns nothing about its scopes.
    let outside = send(
        app.clone(),
        request("/admin", KEY_A, Some("198.51.100.1"), None),
    )
    .await;
    outside.assert_problem(StatusCode::FORBIDDEN, "AddressNotAllowed");
    let inside = send(
        app.clone(),
        request("/admin", KEY_A, Some("203.0.113.1"), None),
    )
    .await;
    inside.assert_problem(StatusCode::FORBIDDEN, "InsufficientScope");
}

#[tokio::test]
async fn a_custom_stores_restrictions_are_enforced_too() {
    #[derive(Clone)]
    struct Partners;

    impl axum_api_key::KeyStore for Partners {
        async fn verify(&self, key: &str) -> Result<VerifiedKey, KeyError> {
            match key {
                KEY_A => Ok(VerifiedKey::new("remote").with_allowed_ips([net("203.0.113.0/24")])),
                KEY_B => Err(KeyError::Disabled),
                _ => Err(KeyError::Unknown),
            }
        }
    }

    #[api_key(store = Partners)]
    async fn partner(key: VerifiedKey) -> String {
        key.id().to_owned()
    }

    let app = Router::new().route("/p", get(partner)).with_state(Partners);
    let ok = send(app.clone(), request("/p", KEY_A, Some("203.0.113.9"), None)).await;
    assert_eq!(ok.text(), "remote");
    let far = send(app.clone(), request("/p", KEY_A, Some("192.0.2.1"), None)).await;
    far.assert_problem(StatusCode::FORBIDDEN, "AddressNotAllowed");
    let disabled = send(app.clone(), request("/p", KEY_B, Some("203.0.113.9"), None)).await;
    disabled.assert_problem(StatusCode::FORBIDDEN, "DisabledKey");
}

/// Behind a CDN and a load balancer, both trusted by their networks: the client is the
/// rightmost address that is not theirs, whatever the client wrote to the left of it, and a
/// store told to read RFC 7239 `Forwarded` reads nothing else.
#[tokio::test]
async fn the_client_behind_several_trusted_hops_is_the_rightmost_untrusted_address() {
    use axum_api_key::ForwardedHeader;
    let proxies = [net("10.0.0.0/8"), net("198.18.0.0/15")];
    let keys = ApiKeys::new()
        .with(Key::new("office", KEY_A).allowed_ips([net("203.0.113.0/24")]))
        .with_rate_limits(RateLimits::new().behind_proxy_networks(proxies));
    let app = app(keys);
    let through = |chain: &str| {
        send(
            app.clone(),
            request("/data", KEY_A, Some("10.1.2.3"), Some(chain)),
        )
    };
    // Client → CDN (198.18.x) → load balancer (10.x) → us.
    assert_eq!(
        through("203.0.113.7, 198.18.4.4").await.status,
        StatusCode::OK
    );
    // A client outside the office naming an office address in front: refused, by its own.
    let spoofed = through("203.0.113.7, 198.51.100.66, 198.18.4.4").await;
    spoofed.assert_problem(StatusCode::FORBIDDEN, "AddressNotAllowed");
    // Garbage a client writes is left of its address, and never read.
    assert_eq!(
        through("not-an-address, 203.0.113.8, 198.18.4.4")
            .await
            .status,
        StatusCode::OK
    );

    let keys = ApiKeys::new()
        .with(Key::new("office", KEY_A).allowed_ips([net("203.0.113.0/24")]))
        .with_rate_limits(
            RateLimits::new()
                .behind_proxy_networks(proxies)
                .forwarded_header(ForwardedHeader::Forwarded),
        );
    let app = self::app(keys);
    let mut request = request("/data", KEY_A, Some("10.1.2.3"), Some("203.0.113.7"));
    request.headers_mut().insert(
        "forwarded",
        "for=198.51.100.66;proto=https, for=\"198.18.4.4\""
            .parse()
            .expect("value"),
    );
    // `X-Forwarded-For` names the office, `Forwarded` (the one read) the real client.
    let refused = send(app.clone(), request).await;
    refused.assert_problem(StatusCode::FORBIDDEN, "AddressNotAllowed");
    let mut request = super_request("for=203.0.113.9, for=198.18.4.4");
    request.extensions_mut().insert(ConnectInfo(SocketAddr::new(
        "10.1.2.3".parse().expect("ip"),
        1,
    )));
    assert_eq!(send(app.clone(), request).await.status, StatusCode::OK);
}

fn super_request(forwarded: &str) -> Request<Body> {
    let mut request = request("/data", KEY_A, None, None);
    request
        .headers_mut()
        .insert("forwarded", forwarded.parse().expect("value"));
    request
}
