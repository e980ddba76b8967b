//! OpenAPI documents from `#[api_key]` on `#[utoipa::path]` handlers: what they claim, and that
//! the server answers as they claim.

use axum::Router;
use axum::body::Body;
use axum_api_key::openapi::ApiKeySecurity;
use axum_api_key::{ApiKeys, KeyFormat, VerifiedKey, api_key};
use axum_api_key_tests::send;
use http::Request;
use serde_json::{Value, json};
use utoipa::Modify;
use utoipa_axum::{router::OpenApiRouter, routes};

#[allow(dead_code)]
#[path = "../../examples/quickstart.rs"]
mod quickstart;

/// Orders, for keys holding `orders:read`, in the header or as a bearer token.
#[api_key(header = "x-partner-key", bearer, scopes = ["orders:read"], status = 403)]
#[utoipa::path(
    get,
    path = "/orders",
    responses((status = 200, description = "The orders", body = String), (status = 503, description = "Our own 503"))
)]
async fn orders(key: VerifiedKey) -> String {
    key.id().to_owned()
}

/// A greeting, for anyone; known keys are named.
#[api_key(optional, query = "api_key", cookie = "session")]
#[utoipa::path(get, path = "/hello", responses((status = 200, description = "Hello", body = String)), security(("other" = [])))]
async fn hello(key: Option<VerifiedKey>) -> String {
    key.map_or_else(|| "hello".to_owned(), |key| format!("hello {}", key.id()))
}

fn document() -> Value {
    let (_, mut api) = OpenApiRouter::<ApiKeys>::new()
        .routes(routes!(orders))
        .routes(routes!(hello))
        .split_for_parts();
    ApiKeySecurity.modify(&mut api);
    serde_json::from_str(&api.to_json().expect("JSON")).expect("a JSON document")
}

#[test]
fn each_source_is_an_alternative_with_the_routes_scopes() {
    let api = document();
    let get = &api["paths"]["/orders"]["get"];
    assert_eq!(
        get["security"],
        json!([{ "apiKeyHeader_x-partner-key": ["orders:read"] }, { "bearer": ["orders:read"] }])
    );
    let statuses: Vec<&str> = get["responses"]
        .as_object()
        .expect("responses")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(statuses, ["200", "400", "403", "429", "503"]);
    assert_eq!(
        get["responses"]["503"]["description"], "Our own 503",
        "the handler's own kept"
    );
    assert_eq!(
        get["responses"]["403"]["content"]["application/problem+json"]["schema"]["$ref"],
        "#/components/schemas/ApiKeyProblem"
    );
    assert!(
        get["responses"]["403"]["headers"].is_null(),
        "no challenge on a 403"
    );
    let schemes = &api["components"]["securitySchemes"];
    assert_eq!(
        schemes["apiKeyHeader_x-partner-key"],
        json!({ "type": "apiKey", "in": "header", "name": "x-partner-key", "description": "An API key" })
    );
    assert_eq!(schemes["bearer"]["type"], "http");
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
}

#[test]
fn successes_and_429s_name_the_limit_fields() {
    let api = document();
    for path in ["/orders", "/hello"] {
        let responses = &api["paths"][path]["get"]["responses"];
        for status in ["200", "429"] {
            for header in ["RateLimit-Policy", "RateLimit", "Credits-Remaining"] {
                assert!(
                    responses[status]["headers"][header]["schema"].is_object(),
                    "{path} {status} {header}: {responses}"
                );
            }
        }
        assert!(responses["429"]["headers"]["Retry-After"].is_object());
        assert!(
            responses["200"]["headers"]["Retry-After"].is_null(),
            "a success says nothing of retrying"
        );
    }
    assert!(
        api["paths"]["/orders"]["get"]["responses"]["503"]["headers"].is_null(),
        "only successes and 429s carry them"
    );
    // An operation that is not guarded is left as written.
    let (_, mut api) = OpenApiRouter::<()>::new()
        .routes(routes!(open))
        .split_for_parts();
    ApiKeySecurity.modify(&mut api);
    let api: Value = serde_json::from_str(&api.to_json().expect("JSON")).expect("JSON");
    assert!(api["paths"]["/open"]["get"]["responses"]["200"]["headers"].is_null());
}

/// Open to anyone.
#[utoipa::path(get, path = "/open", responses((status = 200, description = "Open", body = String)))]
async fn open() -> &'static str {
    "open"
}

#[test]
fn an_optional_route_lists_the_empty_requirement_beside_the_key() {
    let api = document();
    let get = &api["paths"]["/hello"]["get"];
    assert_eq!(
        get["security"],
        json!([{ "other": [] }, {}, { "apiKeyQuery_api_key": [] }, { "apiKeyCookie_session": [] }])
    );
    let schemes = &api["components"]["securitySchemes"];
    assert_eq!(schemes["apiKeyQuery_api_key"]["in"], "query");
    assert_eq!(schemes["apiKeyCookie_session"]["in"], "cookie");
    assert!(
        schemes.get("other").is_none(),
        "a scheme not of ours is the app's to describe"
    );
    assert!(get["responses"]["401"]["headers"]["WWW-Authenticate"].is_object());
}

/// Every operation of the quickstart's document, called without a key, with a wrong one and
/// with a right one: each answer's status is one the document lists for it, with its content
/// type, and a problem has the members the schema names.
#[tokio::test]
async fn the_quickstart_answers_as_its_document_says() {
    let (_, api) = quickstart::documented();
    let api: Value = serde_json::from_str(&api.to_json().expect("JSON")).expect("JSON");
    let demo = KeyFormat::new("demo").expect("format").generate();
    let problem_fields: Vec<String> = api["components"]["schemas"]["ApiKeyProblem"]["required"]
        .as_array()
        .expect("required members")
        .iter()
        .map(|field| field.as_str().expect("name").to_owned())
        .collect();
    assert_eq!(problem_fields, ["type", "title", "status", "detail"]);
    let mut checked = 0;
    for (path, item) in api["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("operations") {
            let secured = operation["security"]
                .as_array()
                .is_some_and(|s| !s.is_empty());
            for key in [None, Some("demo_wrong"), Some(demo.as_str())] {
                // A fresh app each time: a rotation or revocation must not change the next call.
                let app: Router = quickstart::app(quickstart::demo_store(&demo).expect("store"));
                let mut request = Request::builder()
                    .method(method.to_uppercase().as_str())
                    .uri(path);
                if let Some(key) = key {
                    request = request.header("x-api-key", key);
                }
                let answer = send(app, request.body(Body::empty()).expect("request")).await;
                let status = answer.status.as_str().to_owned();
                let documented = &operation["responses"][&status];
                assert!(
                    documented.is_object(),
                    "{method} {path} with {key:?}: {status} is not documented: {}",
                    answer.text()
                );
                if !secured {
                    continue;
                }
                if key != Some(demo.as_str()) {
                    assert!(
                        !answer.status.is_success(),
                        "{method} {path} let {key:?} in"
                    );
                }
                let content = documented["content"].as_object();
                match content.and_then(|c| c.keys().next()) {
                    Some(content_type) => {
                        assert_eq!(
                            answer.header("content-type"),
                            Some(content_type.as_str()),
                            "{method} {path}"
                        );
                        if content_type == "application/problem+json" {
                            let body = answer.json();
                            for field in &problem_fields {
                                assert!(
                                    body.get(field).is_some(),
                                    "{method} {path}: no {field} in {body}"
                                );
                            }
                        }
                    }
                    None => assert!(
                        answer.body.is_empty(),
                        "{method} {path}: a body where none is documented"
                    ),
                }
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 5 * 3, "every secured operation, three ways");
}

/// The attribute writes its refusals at compile time and `self_service_document` at run time:
/// both must describe a refusal the same way.
#[test]
fn the_attribute_and_the_runtime_describe_refusals_alike() {
    let (_, api) = quickstart::documented();
    let api: Value = serde_json::from_str(&api.to_json().expect("JSON")).expect("JSON");
    let by_attribute = &api["paths"]["/data"]["get"]["responses"];
    let by_runtime = &api["paths"]["/account/keys/me"]["get"]["responses"];
    for status in ["400", "401", "429", "503"] {
        assert_eq!(
            by_attribute[status]["description"], by_runtime[status]["description"],
            "{status}"
        );
        assert_eq!(
            by_attribute[status]["content"], by_runtime[status]["content"],
            "{status}"
        );
        assert_eq!(
            by_attribute[status]["headers"], by_runtime[status]["headers"],
            "{status}"
        );
    }
    assert!(by_runtime["429"]["headers"]["Retry-After"].is_object());
    // The budgets and the credits a 429 tells are documented too.
    for header in ["RateLimit-Policy", "RateLimit", "Credits-Remaining"] {
        assert!(by_runtime["429"]["headers"][header].is_object(), "{header}");
    }
    // A rotation refused for the id's hourly budget is a 429 too, documented with the guard's
    // headers; a revocation is never refused so, and keeps the guard's own 429.
    let rotate = &api["paths"]["/account/keys/me/rotate"]["post"]["responses"]["429"];
    let description = rotate["description"].as_str().expect("described");
    assert!(description.contains("rotations this hour"), "{description}");
    assert_eq!(rotate["headers"], by_runtime["429"]["headers"]);
    let revoke = &api["paths"]["/account/keys/me"]["delete"]["responses"]["429"];
    assert_eq!(revoke, &by_runtime["429"]);
}

#[test]
fn each_refusal_shows_its_own_example_and_times_are_date_times() {
    let api = document();
    let responses = &api["paths"]["/orders"]["get"]["responses"];
    for (status, title) in [
        ("400", "API key sent more than once"),
        ("403", "API key required"),
        ("429", "Rate limit exceeded"),
    ] {
        let example = &responses[status]["content"]["application/problem+json"]["example"];
        assert_eq!(example["status"].to_string(), status, "{status}: {example}");
        assert_eq!(example["title"], title, "{status}: {example}");
    }
    // Our own 503 stays the handler's; the missing-key example names where the key goes.
    assert!(
        responses["503"]["content"].is_null(),
        "{}",
        responses["503"]
    );
    let detail = responses["403"]["content"]["application/problem+json"]["example"]["detail"]
        .as_str()
        .expect("detail");
    assert!(detail.contains("x-partner-key"), "{detail}");

    let (_, quickstart) = quickstart::documented();
    let quickstart: Value =
        serde_json::from_str(&quickstart.to_json().expect("JSON")).expect("JSON");
    let schemas = &quickstart["components"]["schemas"];
    for schema in ["OwnKey", "RotatedKey"] {
        let expires_at = &schemas[schema]["properties"]["expires_at"];
        assert_eq!(expires_at["format"], "date-time", "{schema}: {expires_at}");
    }
    let by_runtime = &quickstart["paths"]["/account/keys/me"]["get"]["responses"];
    let example = &by_runtime["429"]["content"]["application/problem+json"]["example"];
    assert_eq!(example["title"], "Rate limit exceeded", "{example}");
    // Any key may be disabled or held to some networks: a route with no scope documents 403
    // too, by the attribute and by the runtime alike.
    let by_attribute = &quickstart["paths"]["/data"]["get"]["responses"];
    for responses in [by_attribute, by_runtime] {
        let forbidden = &responses["403"];
        assert!(
            forbidden["description"]
                .as_str()
                .is_some_and(|d| d.contains("disabled") && d.contains("address")),
            "{forbidden}"
        );
        let example = &forbidden["content"]["application/problem+json"]["example"];
        assert_eq!(example["title"], "API key disabled", "{example}");
    }
}
