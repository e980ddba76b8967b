//! Where a key may come from: header, query, cookie, bearer; one place at a time; and
//! `optional`.

use axum::Router;
use axum::routing::get;
use axum_api_key::{VerifiedKey, api_key};
use axum_api_key_tests::{Headers, KEY_A, KEY_B, StatusCode, get as request, keys, send};

#[api_key(query = "api_key")]
async fn by_query(key: VerifiedKey) -> String {
    key.id().to_owned()
}

#[api_key(cookie = "session")]
async fn by_cookie(key: VerifiedKey) -> String {
    key.id().to_owned()
}

#[api_key(bearer)]
async fn by_bearer(key: VerifiedKey) -> String {
    key.id().to_owned()
}

#[api_key(header = "x-api-key", query = "api_key", cookie = "session", bearer)]
async fn anywhere(key: VerifiedKey) -> String {
    key.id().to_owned()
}

#[api_key(optional)]
async fn maybe(key: Option<VerifiedKey>) -> String {
    key.map_or_else(|| "anonymous".to_owned(), |key| key.id().to_owned())
}

#[api_key(optional, bearer, status = 403)]
async fn maybe_bearer(key: Option<VerifiedKey>) -> String {
    key.map_or_else(|| "anonymous".to_owned(), |key| key.id().to_owned())
}

/// `VerifiedKey` under a name the attribute cannot see through.
type Caller = VerifiedKey;

#[api_key(optional)]
async fn maybe_aliased(key: Caller) -> String {
    key.id().to_owned()
}

/// An extractor of the app's that takes the key inside it.
struct Partner(VerifiedKey);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Partner {
    type Rejection = axum::response::Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        use axum::response::IntoResponse;
        VerifiedKey::from_request_parts(parts, state)
            .await
            .map(Partner)
            .map_err(IntoResponse::into_response)
    }
}

#[api_key(optional, status = 403)]
async fn maybe_in_struct(Partner(key): Partner) -> String {
    key.id().to_owned()
}

/// Optional and scoped at once, which the attribute refuses: built by hand, the guard still
/// refuses a request without a key.
enum OptionalScoped {}

impl axum_api_key::KeyConfig for OptionalScoped {
    const CONFIG: axum_api_key::GuardConfig = axum_api_key::GuardConfig::new(&[])
        .with_scopes(&["admin"])
        .optional();
}

async fn optional_scoped(
    _: axum_api_key::RequireApiKey<OptionalScoped>,
    key: Option<VerifiedKey>,
) -> String {
    key.map_or_else(|| "anonymous".to_owned(), |key| key.id().to_owned())
}

fn app() -> Router {
    Router::new()
        .route("/maybe-aliased", get(maybe_aliased))
        .route("/maybe-in-struct", get(maybe_in_struct))
        .route("/optional-scoped", get(optional_scoped))
        .route("/query", get(by_query))
        .route("/cookie", get(by_cookie))
        .route("/bearer", get(by_bearer))
        .route("/anywhere", get(anywhere))
        .route("/maybe", get(maybe))
        .route("/maybe-bearer", get(maybe_bearer))
        .with_state(keys())
}

const EVERY_PLACE: &str = r#"ApiKey header="x-api-key", query="api_key", cookie="session", Bearer"#;

#[tokio::test]
async fn each_source_carries_the_key() {
    let cookie = format!("theme=dark; session={KEY_A}; lang=en");
    let bearer = format!("Bearer {KEY_A}");
    let lower = format!("bearer {KEY_B}");
    let cases: Vec<(String, Headers<'_>, &str)> = vec![
        (
            format!("/query?page=2&api_key={KEY_A}"),
            vec![],
            "partner-a",
        ),
        (
            "/cookie".to_owned(),
            vec![("cookie", cookie.as_bytes())],
            "partner-a",
        ),
        (
            "/bearer".to_owned(),
            vec![("authorization", bearer.as_bytes())],
            "partner-a",
        ),
        (
            "/bearer".to_owned(),
            vec![("authorization", lower.as_bytes())],
            "partner-b",
        ),
        (
            "/anywhere".to_owned(),
            vec![("x-api-key", KEY_B.as_bytes())],
            "partner-b",
        ),
        (format!("/anywhere?api_key={KEY_B}"), vec![], "partner-b"),
        (
            "/anywhere".to_owned(),
            vec![("cookie", cookie.as_bytes())],
            "partner-a",
        ),
        (
            "/anywhere".to_owned(),
            vec![("authorization", bearer.as_bytes())],
            "partner-a",
        ),
    ];
    for (uri, headers, id) in cases {
        let answer = send(app(), request(&uri, &headers)).await;
        assert_eq!(answer.status, StatusCode::OK, "{uri}: {}", answer.text());
        assert_eq!(answer.text(), id, "{uri}");
    }
}

#[tokio::test]
async fn a_percent_encoded_query_key_is_decoded() {
    let app = Router::new()
        .route("/query", get(by_query))
        .with_state(axum_api_key::ApiKeys::new().with_key("odd", "k+y/=&?-0123456789"));
    let answer = send(
        app,
        request("/query?api_key=k%2By%2F%3D%26%3F-0123456789", &[]),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert_eq!(answer.text(), "odd");
}

#[tokio::test]
async fn a_missing_key_gets_a_challenge_naming_every_place() {
    let answer = send(app(), request("/anywhere", &[])).await;
    answer.assert_problem(StatusCode::UNAUTHORIZED, "MissingKey");
    assert_eq!(answer.header("www-authenticate"), Some(EVERY_PLACE));
    assert_eq!(
        answer.json()["detail"],
        "This endpoint requires an API key in the `x-api-key` header, in the `api_key` query \
         parameter, in the `session` cookie or as a Bearer token in the `Authorization` header."
    );

    let answer = send(app(), request("/query", &[])).await;
    assert_eq!(
        answer.header("www-authenticate"),
        Some(r#"ApiKey query="api_key""#)
    );
    let answer = send(app(), request("/cookie", &[])).await;
    assert_eq!(
        answer.header("www-authenticate"),
        Some(r#"ApiKey cookie="session""#)
    );
    let answer = send(app(), request("/bearer", &[])).await;
    assert_eq!(answer.header("www-authenticate"), Some("Bearer"));
}

#[tokio::test]
async fn a_refused_bearer_token_gets_rfc_6750_invalid_token() {
    let wrong = b"Bearer pa_wrong-token-value-123";
    let answer = send(app(), request("/bearer", &[("authorization", wrong)])).await;
    answer.assert_problem(StatusCode::UNAUTHORIZED, "InvalidKey");
    assert_eq!(
        answer.header("www-authenticate"),
        Some(r#"Bearer error="invalid_token""#)
    );
    assert_eq!(
        answer.json()["detail"],
        "The API key as a Bearer token in the `Authorization` header is not valid."
    );
    answer.assert_never_contains(b"pa_wrong-token-value-123");

    // A wrong key in another place does not blame the bearer token.
    let answer = send(app(), request("/anywhere?api_key=pa_wrong-query-key", &[])).await;
    assert_eq!(answer.header("www-authenticate"), Some(EVERY_PLACE));
    assert_eq!(
        answer.json()["detail"],
        "The API key in the `api_key` query parameter is not valid."
    );
    answer.assert_never_contains(b"pa_wrong-query-key");
}

#[tokio::test]
async fn other_authorization_schemes_are_not_keys() {
    let basic = b"Basic cGE6c2VjcmV0";
    let answer = send(app(), request("/bearer", &[("authorization", basic)])).await;
    answer.assert_problem(StatusCode::UNAUTHORIZED, "MissingKey");
    let empty = b"Bearer ";
    let answer = send(app(), request("/bearer", &[("authorization", empty)])).await;
    answer.assert_problem(StatusCode::UNAUTHORIZED, "MissingKey");
}

#[tokio::test]
async fn a_key_in_two_places_or_twice_in_one_gets_400() {
    let bearer = format!("Bearer {KEY_A}");
    let cookie = format!("session={KEY_A}");
    let twice_cookie = format!("session={KEY_A}; session={KEY_A}");
    let cases: Vec<(String, Headers<'_>)> = vec![
        (
            format!("/anywhere?api_key={KEY_A}"),
            vec![("x-api-key", KEY_A.as_bytes())],
        ),
        (
            "/anywhere".to_owned(),
            vec![
                ("authorization", bearer.as_bytes()),
                ("cookie", cookie.as_bytes()),
            ],
        ),
        (
            format!("/anywhere?api_key={KEY_A}"),
            vec![("authorization", bearer.as_bytes())],
        ),
        (format!("/query?api_key={KEY_A}&api_key={KEY_B}"), vec![]),
        (
            "/cookie".to_owned(),
            vec![("cookie", twice_cookie.as_bytes())],
        ),
        (
            "/cookie".to_owned(),
            vec![("cookie", cookie.as_bytes()), ("cookie", cookie.as_bytes())],
        ),
        (
            "/bearer".to_owned(),
            vec![
                ("authorization", bearer.as_bytes()),
                ("authorization", bearer.as_bytes()),
            ],
        ),
    ];
    for (uri, headers) in cases {
        let answer = send(app(), request(&uri, &headers)).await;
        answer.assert_problem(StatusCode::BAD_REQUEST, "DuplicateKey");
        // RFC 6750, section 3.1: a malformed request to a route that reads bearer tokens says
        // so in its challenge; other routes send none.
        let reads_bearer = uri.starts_with("/bearer") || uri.starts_with("/anywhere");
        let expected = reads_bearer.then_some(r#"Bearer error="invalid_request""#);
        assert_eq!(answer.header("www-authenticate"), expected, "{uri}");
        answer.assert_never_contains(KEY_A.as_bytes());
        answer.assert_never_contains(KEY_B.as_bytes());
    }
}

#[tokio::test]
async fn only_configured_sources_count() {
    let bearer = format!("Bearer {KEY_A}");
    let cookie = format!("api_key={KEY_A}");
    let answer = send(
        app(),
        request(
            "/query",
            &[
                ("x-api-key", KEY_A.as_bytes()),
                ("authorization", bearer.as_bytes()),
                ("cookie", cookie.as_bytes()),
            ],
        ),
    )
    .await;
    answer.assert_problem(StatusCode::UNAUTHORIZED, "MissingKey");
}

#[tokio::test]
async fn optional_lets_a_request_without_a_key_through_and_nothing_else() {
    let answer = send(app(), request("/maybe", &[])).await;
    assert_eq!(
        (answer.status, answer.text()),
        (StatusCode::OK, "anonymous".to_owned())
    );
    let answer = send(app(), request("/maybe", &[("x-api-key", KEY_B.as_bytes())])).await;
    assert_eq!(
        (answer.status, answer.text()),
        (StatusCode::OK, "partner-b".to_owned())
    );

    // A wrong, malformed or duplicated key is still refused.
    let answer = send(
        app(),
        request("/maybe", &[("x-api-key", b"pa_wrong-key-here")]),
    )
    .await;
    answer.assert_problem(StatusCode::UNAUTHORIZED, "InvalidKey");
    answer.assert_never_contains(b"pa_wrong-key-here");
    let answer = send(app(), request("/maybe", &[("x-api-key", b"has space")])).await;
    answer.assert_problem(StatusCode::UNAUTHORIZED, "InvalidKey");
    let twice: [(&str, &[u8]); 2] = [
        ("x-api-key", KEY_A.as_bytes()),
        ("x-api-key", KEY_A.as_bytes()),
    ];
    let answer = send(app(), request("/maybe", &twice)).await;
    answer.assert_problem(StatusCode::BAD_REQUEST, "DuplicateKey");

    let answer = send(
        app(),
        request(
            "/maybe-bearer",
            &[("authorization", b"Bearer nope-nope-nope")],
        ),
    )
    .await;
    answer.assert_problem(StatusCode::FORBIDDEN, "InvalidKey");
    let answer = send(app(), request("/maybe-bearer", &[])).await;
    assert_eq!(answer.text(), "anonymous");
}

#[tokio::test]
async fn a_key_taken_under_another_name_behind_optional_refuses_a_keyless_request_cleanly() {
    // Never a 500: the request had no key, so it gets the guard's missing-key answer.
    let answer = send(app(), request("/maybe-aliased", &[])).await;
    answer.assert_problem(StatusCode::UNAUTHORIZED, "MissingKey");
    assert_eq!(
        answer.header("www-authenticate"),
        Some(r#"ApiKey header="x-api-key""#)
    );
    let answer = send(app(), request("/maybe-in-struct", &[])).await;
    answer.assert_problem(StatusCode::FORBIDDEN, "MissingKey");

    // With a key, the handler runs.
    let answer = send(
        app(),
        request("/maybe-aliased", &[("x-api-key", KEY_A.as_bytes())]),
    )
    .await;
    assert_eq!(
        (answer.status, answer.text()),
        (StatusCode::OK, "partner-a".to_owned())
    );
    let answer = send(
        app(),
        request("/maybe-in-struct", &[("x-api-key", KEY_B.as_bytes())]),
    )
    .await;
    assert_eq!(
        (answer.status, answer.text()),
        (StatusCode::OK, "partner-b".to_owned())
    );
}

#[tokio::test]
async fn a_scoped_guard_never_admits_a_request_without_a_key_even_when_optional() {
    let answer = send(app(), request("/optional-scoped", &[])).await;
    answer.assert_problem(StatusCode::UNAUTHORIZED, "MissingKey");
    assert_ne!(answer.text(), "anonymous");
    // A key without the scope gets 403, as on any scoped route.
    let answer = send(
        app(),
        request("/optional-scoped", &[("x-api-key", KEY_A.as_bytes())]),
    )
    .await;
    answer.assert_problem(StatusCode::FORBIDDEN, "InsufficientScope");
}
