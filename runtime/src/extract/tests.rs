//! The guard's parts that need no server: finding the key in a request.

use super::*;

fn parts(uri: &str, headers: &[(&str, &str)]) -> Parts {
    let mut request = http::Request::get(uri);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.body(()).unwrap().into_parts().0
}

fn key(found: Found<'_>) -> Option<String> {
    match found {
        Found::One { key, .. } => Some(String::from_utf8(key.into_owned()).unwrap()),
        Found::Nothing => None,
        Found::Duplicate => Some("<duplicate>".to_owned()),
    }
}

const ALL: &[Source] = &[
    Source::Header("x-api-key"),
    Source::Query("api_key"),
    Source::Cookie("session"),
    Source::Bearer,
];

#[test]
fn reads_each_source() {
    let find = |uri, headers| key(find_key(&parts(uri, headers), ALL));
    assert_eq!(find("/", &[("x-api-key", "k1")]), Some("k1".into()));
    assert_eq!(find("/?a=1&api_key=k%2B2+x", &[]), Some("k+2 x".into()));
    assert_eq!(
        find("/", &[("cookie", "a=1; session=\"k3\"; b=2")]),
        Some("k3".into())
    );
    assert_eq!(
        find("/", &[("authorization", "bEaReR   k4 ")]),
        Some("k4".into())
    );
    assert_eq!(
        find("/?apikey=x&api_key=", &[("authorization", "Basic abc")]),
        None
    );
    assert_eq!(find("/", &[("cookie", "sessions=x; xsession=y")]), None);
}

#[test]
fn a_key_in_two_places_is_a_duplicate() {
    let find = |uri, headers| key(find_key(&parts(uri, headers), ALL));
    let duplicate = Some("<duplicate>".to_owned());
    assert_eq!(find("/?api_key=a", &[("x-api-key", "a")]), duplicate);
    assert_eq!(find("/?api_key=a&api_key=b", &[]), duplicate);
    assert_eq!(
        find("/", &[("cookie", "session=a"), ("cookie", "session=b")]),
        duplicate
    );
    assert_eq!(
        find(
            "/",
            &[("authorization", "Bearer a"), ("authorization", "bearer b")]
        ),
        duplicate
    );
    assert_eq!(
        find(
            "/",
            &[("authorization", "Bearer a"), ("cookie", "session=a")]
        ),
        duplicate
    );
    // An empty value is no key at all.
    assert_eq!(find("/?api_key=", &[("x-api-key", "a")]), Some("a".into()));
}

#[test]
fn a_bearer_token_beside_another_authorization_field_is_a_duplicate() {
    const BEARER: &[Source] = &[Source::Bearer];
    for other in ["Basic dXNlcjpwYXNz", "Bearer other-key", "Digest x"] {
        let request = parts(
            "/",
            &[("authorization", "Bearer k1"), ("authorization", other)],
        );
        assert!(
            matches!(find_key(&request, BEARER), Found::Duplicate),
            "{other}"
        );
    }
    // Two fields of other schemes hold no bearer token: nothing of ours.
    let request = parts(
        "/",
        &[("authorization", "Basic a"), ("authorization", "Digest b")],
    );
    assert!(matches!(find_key(&request, BEARER), Found::Nothing));
}

#[test]
fn sources_not_configured_are_ignored() {
    const HEADER_ONLY: &[Source] = &[Source::Header("x-api-key")];
    let request = parts(
        "/?api_key=q",
        &[("authorization", "Bearer b"), ("x-api-key", "h")],
    );
    assert_eq!(key(find_key(&request, HEADER_ONLY)), Some("h".into()));
}

#[test]
fn header_names_match_whatever_their_case_on_either_lookup() {
    // The default header is looked up by a name built once; any other through its text.
    const DEFAULT: &[Source] = &[Source::Header("x-api-key")];
    const SHOUTED: &[Source] = &[Source::Header("X-Api-Key")];
    const PARTNER: &[Source] = &[Source::Header("x-partner-key")];
    for sent in ["x-api-key", "X-API-KEY", "X-Api-Key"] {
        let request = parts("/", &[(sent, "k")]);
        assert_eq!(key(find_key(&request, DEFAULT)), Some("k".into()), "{sent}");
        assert_eq!(key(find_key(&request, SHOUTED)), Some("k".into()), "{sent}");
        assert_eq!(key(find_key(&request, PARTNER)), None, "{sent}");
    }
    let twice = parts("/", &[("x-api-key", "a"), ("X-Api-Key", "b")]);
    assert!(matches!(find_key(&twice, DEFAULT), Found::Duplicate));
    let partner = parts("/", &[("X-Partner-Key", "p")]);
    assert_eq!(key(find_key(&partner, PARTNER)), Some("p".into()));
}
