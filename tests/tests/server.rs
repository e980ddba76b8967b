//! The quickstart's router served on a loopback port, called with a real HTTP client, the way
//! a user tries it with curl.

use axum::body::Bytes;
use axum_api_key::ApiKeys;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

#[allow(dead_code)]
#[path = "../../examples/quickstart.rs"]
mod quickstart;

const KEY: &str = "qs_Xr4Lm8Pq2Wn6Tz1Vb5";

struct Reply {
    status: u16,
    challenge: Option<String>,
    content_type: Option<String>,
    raw: String,
    body: serde_json::Value,
}

async fn call(base: &str, path: &str, keys: &[&str]) -> Reply {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let mut request = axum::http::Request::get(format!("{base}{path}"));
    for key in keys {
        request = request.header("x-api-key", *key);
    }
    let response = client
        .request(request.body(Empty::new()).expect("request"))
        .await
        .expect("the server answers");
    let status = response.status().as_u16();
    let header = |name| {
        response
            .headers()
            .get(name)
            .map(|v: &axum::http::HeaderValue| v.to_str().expect("text").to_owned())
    };
    let challenge = header("www-authenticate");
    let content_type = header("content-type");
    let head = format!("{:?}", response.headers());
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    let raw = format!("{head}\n{}", String::from_utf8_lossy(&body));
    let body = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
    Reply {
        status,
        challenge,
        content_type,
        raw,
        body,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_quickstart_answers_like_the_readme_says() {
    let keys = ApiKeys::new().with_key("partner-a", KEY);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a loopback port");
    let base = format!("http://{}", listener.local_addr().expect("address"));
    let server = tokio::spawn(async move { axum::serve(listener, quickstart::app(keys)).await });

    let health = call(&base, "/health", &[]).await;
    assert_eq!(health.status, 200);

    // No key.
    let reply = call(&base, "/data", &[]).await;
    assert_eq!(reply.status, 401);
    assert_eq!(
        reply.challenge.as_deref(),
        Some(r#"ApiKey header="x-api-key""#)
    );
    assert_eq!(
        reply.content_type.as_deref(),
        Some("application/problem+json")
    );
    assert_eq!(reply.body["status"], 401);
    let reply = call(&base, "/protected", &[]).await;
    assert_eq!(reply.status, 403);
    assert_eq!(reply.challenge, None);

    // A wrong key.
    for path in ["/data", "/protected"] {
        let reply = call(&base, path, &["qs_wrong-guess-123"]).await;
        assert_eq!(reply.status, if path == "/data" { 401 } else { 403 });
        assert_eq!(reply.body["title"], "Invalid API key");
        assert!(!reply.raw.contains("qs_wrong-guess-123"), "{}", reply.raw);
    }

    // The key twice.
    for path in ["/data", "/protected"] {
        let reply = call(&base, path, &[KEY, KEY]).await;
        assert_eq!(reply.status, 400);
        assert!(!reply.raw.contains(KEY), "{}", reply.raw);
    }

    // The right key.
    let reply = call(&base, "/data", &[KEY]).await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.body,
        serde_json::json!({ "data": "secret information" })
    );
    let reply = call(&base, "/protected", &[KEY]).await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.body,
        serde_json::json!({ "message": "access granted to partner-a" })
    );
    assert!(!reply.raw.contains(KEY));

    server.abort();
}
