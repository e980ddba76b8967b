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
    headers: axum::http::HeaderMap,
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
    let headers = response.headers().clone();
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
        headers,
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

/// The README's quickstart session, as printed: each `curl` line with the status line and the
/// body printed under it.
fn readme_session() -> Vec<(String, String, String)> {
    let readme = include_str!("../../README.md");
    let start = readme
        .find("```console")
        .expect("the README's quickstart session");
    let session = &readme[start..];
    let session = &session[..session[10..].find("```").expect("its end") + 10];
    let mut exchanges = Vec::new();
    for part in session.split("$ curl").skip(1) {
        let mut lines = part.lines();
        let command = lines.next().unwrap_or_default().to_owned();
        let status = lines
            .clone()
            .find(|line| line.starts_with("HTTP/1.1"))
            .unwrap_or_default()
            .to_owned();
        let body = lines
            .find(|line| line.starts_with('{'))
            .unwrap_or_default()
            .to_owned();
        exchanges.push((command, status, body));
    }
    exchanges
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_session_is_what_the_quickstart_answers() {
    let keys = ApiKeys::new().with_key("demo", KEY);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a loopback port");
    let base = format!("http://{}", listener.local_addr().expect("address"));
    let server = tokio::spawn(async move { axum::serve(listener, quickstart::app(keys)).await });

    let session = readme_session();
    assert_eq!(session.len(), 4, "{session:?}");
    for (command, status, body) in session {
        let path = command
            .split("http://127.0.0.1:3000")
            .nth(1)
            .expect("a URL")
            .trim();
        let keys: Vec<&str> = command
            .split("-H ")
            .skip(1)
            .map(|header| {
                // `'x-api-key: …'` or `"x-api-key: …"`: the text between the quotes.
                let quote = header.chars().next().expect("a quoted header");
                let value = header[1..].split(quote).next().expect("the closing quote");
                match value.trim_start_matches("x-api-key: ") {
                    "$KEY" => KEY,
                    other => other,
                }
            })
            .collect();
        let reply = call(&base, path, &keys).await;
        if !status.is_empty() {
            let code: u16 = status.split(' ').nth(1).unwrap().parse().unwrap();
            assert_eq!(reply.status, code, "{command}");
        }
        let printed: serde_json::Value = serde_json::from_str(&body).expect("a JSON body");
        assert_eq!(reply.body, printed, "{command}");
    }
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_key_is_limited_as_the_readme_says() {
    assert_eq!(quickstart::DEMO_LIMIT, "60/min");
    assert!(include_str!("../../README.md").contains("limited to 60 requests a minute"));
    let demo = axum_api_key::KeyFormat::new("demo")
        .expect("format")
        .generate();
    let keys = quickstart::demo_store(&demo).expect("the demo store");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a loopback port");
    let base = format!("http://{}", listener.local_addr().expect("address"));
    let app = quickstart::app(keys).into_make_service_with_connect_info::<std::net::SocketAddr>();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let header = |reply: &Reply, name: &str| {
        reply
            .headers
            .get(name)
            .map(|value| value.to_str().expect("text").to_owned())
    };

    for i in 0..60 {
        let reply = call(&base, "/data", &[&demo]).await;
        assert_eq!(reply.status, 200, "request {i}");
        assert_eq!(
            header(&reply, "ratelimit-policy").as_deref(),
            Some(r#""key";q=60;w=60"#)
        );
        let state = header(&reply, "ratelimit").expect("RateLimit on a success");
        assert!(
            state.starts_with(&format!(r#""key";r={};t="#, 59 - i)),
            "{state}"
        );
        // The demo plan: 100 credits a day, one spent per request.
        assert_eq!(
            header(&reply, "credits-remaining").as_deref(),
            Some((99 - i).to_string().as_str())
        );
    }
    let refused = call(&base, "/data", &[&demo]).await;
    assert_eq!(refused.status, 429);
    assert_eq!(refused.body["title"], "Rate limit exceeded");
    let wait: u64 = header(&refused, "retry-after")
        .expect("Retry-After")
        .parse()
        .expect("seconds");
    assert!(
        (1..=1).contains(&wait),
        "one request refills each second: {wait}"
    );
    assert!(!refused.raw.contains(&demo));
    assert_eq!(
        header(&refused, "credits-remaining").as_deref(),
        Some("40"),
        "a request the rate limit refuses spends no credit"
    );

    // Wrong keys from this address: refused, then throttled before any lookup.
    let mut statuses = Vec::new();
    for i in 0..31 {
        let reply = call(&base, "/health", &[]).await;
        assert_eq!(reply.status, 200);
        statuses.push(
            call(&base, "/data", &[&format!("qs_guess-{i}")])
                .await
                .status,
        );
    }
    assert!(
        statuses[..30].iter().all(|&status| status == 401),
        "{statuses:?}"
    );
    assert_eq!(statuses[30], 429);
    server.abort();
}

/// Run as a child process with `QUICKSTART_TEST_API_KEYS` set: prints what the quickstart's
/// start-up makes of it.
#[test]
#[ignore = "run by the test below, as a child process with its own environment"]
#[allow(clippy::print_stdout)] // the answer to the parent process
fn quickstart_start_up_child() {
    match quickstart::keys_from_env("QUICKSTART_TEST_API_KEYS") {
        Ok((keys, _)) => println!("<<accepted {}>>", keys.len()),
        Err(error) => println!("<<refused {error}>>"),
    }
}

fn start_up_with(value: &str) -> String {
    let out = std::process::Command::new(std::env::current_exe().expect("this test binary"))
        .args([
            "--exact",
            "quickstart_start_up_child",
            "--ignored",
            "--nocapture",
        ])
        .env("QUICKSTART_TEST_API_KEYS", value)
        .output()
        .expect("the child runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let start = stdout.find("<<").expect("the child's answer");
    let end = stdout[start..].find(">>").expect("the end of it") + start;
    stdout[start + 2..end].to_owned()
}

#[test]
fn a_base64_key_alone_in_api_keys_is_refused_at_start_up_with_the_fix() {
    let said = start_up_with("q83vEjRWeJq83vEjRWeJqw==");
    assert!(
        said.starts_with("refused QUICKSTART_TEST_API_KEYS, entry 1"),
        "{said}"
    );
    assert!(said.contains("default=<key>"), "{said}");
    assert!(!said.contains("q83v"), "{said}");
    // Written as the error says, the key is taken whole.
    assert_eq!(
        start_up_with("default=q83vEjRWeJq83vEjRWeJqw=="),
        "accepted 1"
    );
    // A short key after `=` is refused rather than taken as `id=key`.
    let said = start_up_with("tok=en_98765abcdef");
    assert!(said.contains("shorter than 16 bytes"), "{said}");
    assert!(!said.contains("98765"), "{said}");
}
