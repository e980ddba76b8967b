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

fn app() -> Router {
    Router::new()
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
        .with_state(axum_api_key::ApiKeys::new().with_key("odd", "k+y/=&?"));
    let answer = send(app, request("/query?api_key=k%2By%2F%3D%26%3F", &[])).await;
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
        assert_eq!(answer.header("www-authenticate"), None, "{uri}");
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
