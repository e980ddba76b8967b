//! Keys that change while the service runs: reload, rotate, revoke and expire, under load and
//! through a real `Router`; and the HTTPS requirement, over a real loopback connection.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use axum_api_key::{
    ApiKeys, Https, HttpsPolicy, Key, KeyError, KeyFormat, KeyStore, VerifiedKey, api_key, digest,
};
use axum_api_key_tests::{Request, StatusCode, get as request, send};

#[api_key]
async fn whoami(key: VerifiedKey) -> String {
    format!("{} {}", key.id(), key.metadata("generation").unwrap_or("-"))
}

fn app(keys: ApiKeys) -> Router {
    Router::new().route("/whoami", get(whoami)).with_state(keys)
}

fn hex(key: &str) -> String {
    digest(key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A records file of `keys` (id, key) pairs, every record marked with `generation`.
fn records(keys: &[(&str, &str)], generation: &str) -> String {
    keys.iter()
        .map(|(id, key)| {
            format!(
                "[[keys]]\nid = \"{id}\"\ndigest = \"sha256:{}\"\nmetadata = {{ generation = \"{generation}\" }}\n\n",
                hex(key)
            )
        })
        .collect()
}

fn temp_file(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "axum-api-key-lifecycle-{}-{name}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    dir.join("keys.toml")
}

/// Replaces the file whole, as deploy tools should: a temporary file renamed over it.
fn replace_file(path: &std::path::Path, text: &str) {
    let temporary = path.with_extension("toml.new");
    std::fs::write(&temporary, text).unwrap();
    std::fs::rename(&temporary, path).unwrap();
}

const STEADY: &str = "st_Aq1Sw2De3Fr4Gt5";
const ONLY_A: &str = "oa_Hy6Ju7Ki8Lo9Pa0";
const ONLY_B: &str = "ob_Zx1Cv2Bn3Mq4Wr5";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_during_reloads_never_see_a_half_applied_set() {
    let path = temp_file("reload");
    let version_a = records(&[("steady", STEADY), ("only-a", ONLY_A)], "a");
    let version_b = records(&[("steady", STEADY), ("only-b", ONLY_B)], "b");
    std::fs::write(&path, &version_a).unwrap();
    let keys = ApiKeys::from_file(&path).expect("a valid records file");
    let router = app(keys.clone());

    let done = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicUsize::new(0));
    let mut readers = Vec::new();
    for _ in 0..4 {
        let (router, done, reads) = (router.clone(), Arc::clone(&done), Arc::clone(&reads));
        readers.push(tokio::spawn(async move {
            let mut seen = 0;
            while !done.load(Ordering::SeqCst) {
                // The key in both versions is let in at every moment, and always with one
                // version's record, whole.
                let answer = send(
                    router.clone(),
                    request("/whoami", &[("x-api-key", STEADY.as_bytes())]),
                )
                .await;
                assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
                assert!(
                    answer.text() == "steady a" || answer.text() == "steady b",
                    "{}",
                    answer.text()
                );
                // A key in one version is either in with that version's record, or out.
                let answer = send(
                    router.clone(),
                    request("/whoami", &[("x-api-key", ONLY_A.as_bytes())]),
                )
                .await;
                assert!(
                    answer.status == StatusCode::UNAUTHORIZED || answer.text() == "only-a a",
                    "{}",
                    answer.text()
                );
                seen += 1;
                reads.fetch_add(1, Ordering::SeqCst);
            }
            seen
        }));
    }
    // At least 200 reloads, and on until the readers have made 2,000 pairs of requests among
    // them; bounded either way.
    let mut round = 0;
    while round < 200 || (reads.load(Ordering::SeqCst) < 2_000 && round < 100_000) {
        // Ends on version A, an even number of rounds after it.
        let version = if round % 2 == 0 {
            &version_b
        } else {
            &version_a
        };
        replace_file(&path, version);
        assert_eq!(keys.reload().expect("the file reloads"), 2);
        round += 1;
        tokio::task::yield_now().await;
    }
    if round % 2 == 1 {
        replace_file(&path, &version_a);
        keys.reload().expect("the file reloads");
    }
    done.store(true, Ordering::SeqCst);
    let mut total = 0;
    for reader in readers {
        total += reader.await.expect("no reader failed");
    }
    assert!(
        total >= 2_000,
        "{total} pairs of requests during {round} reloads"
    );
    // The last version is the one served.
    let answer = send(
        router.clone(),
        request("/whoami", &[("x-api-key", ONLY_A.as_bytes())]),
    )
    .await;
    assert_eq!(answer.text(), "only-a a");

    // A broken file leaves the store as it was.
    replace_file(&path, "[[keys]]\nid = \"x\"\n");
    let error = keys.reload().unwrap_err();
    assert!(error.to_string().contains("keys.toml"), "{error}");
    let answer = send(
        router,
        request("/whoami", &[("x-api-key", STEADY.as_bytes())]),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_under_load_keeps_old_and_new_keys_working_through_the_grace_period() {
    let format = KeyFormat::new("svc").unwrap();
    let original = format.generate();
    let keys = ApiKeys::new()
        .with_format(format)
        .with(Key::new("service", &original).metadata("generation", "1"));
    let router = app(keys.clone());

    let done = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicUsize::new(0));
    let reader = {
        let (router, done, served, original) = (
            router.clone(),
            Arc::clone(&done),
            Arc::clone(&served),
            original.clone(),
        );
        tokio::spawn(async move {
            while !done.load(Ordering::SeqCst) {
                let answer = send(
                    router.clone(),
                    request("/whoami", &[("x-api-key", original.as_bytes())]),
                )
                .await;
                assert_eq!(
                    answer.status,
                    StatusCode::OK,
                    "the old key works until its deadline"
                );
                served.fetch_add(1, Ordering::SeqCst);
            }
        })
    };
    let mut issued = Vec::new();
    // At least 50 rotations, and on until the old key has served 500 requests meanwhile.
    while issued.len() < 50 || (served.load(Ordering::SeqCst) < 500 && issued.len() < 5_000) {
        let new = keys
            .rotate("service", Duration::from_secs(3600))
            .expect("the key rotates");
        // The first request after `rotate` returns is let in with the new key.
        let answer = send(
            router.clone(),
            request("/whoami", &[("x-api-key", new.as_bytes())]),
        )
        .await;
        assert_eq!(
            answer.text(),
            "service 1",
            "the new key keeps the record's metadata"
        );
        issued.push(new);
        tokio::task::yield_now().await;
    }
    done.store(true, Ordering::SeqCst);
    reader.await.expect("the old key was never refused");
    assert!(
        served.load(Ordering::SeqCst) >= 500,
        "{} rotations",
        issued.len()
    );
    for key in &issued {
        assert!(keys.verify(key.as_bytes()).is_ok());
    }

    // A rotation with no grace retires every older key at once.
    let last = keys.rotate("service", Duration::ZERO).unwrap();
    for old in issued.iter().chain([&original]) {
        let answer = send(
            router.clone(),
            request("/whoami", &[("x-api-key", old.as_bytes())]),
        )
        .await;
        answer.assert_problem(StatusCode::UNAUTHORIZED, "ExpiredKey");
        assert_eq!(
            answer.json()["detail"],
            "API key expired: ask for a new key."
        );
        answer.assert_never_contains(old.as_bytes());
    }
    let answer = send(
        router,
        request("/whoami", &[("x-api-key", last.as_bytes())]),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_key_is_refused_by_the_first_request_after_revoke_returns() {
    let ids: Vec<(String, String)> = (0..40)
        .map(|i| (format!("client-{i}"), format!("cl_{i:04}_Qa7Ws8Ed9Rf0")))
        .collect();
    let mut keys = ApiKeys::new();
    for (id, key) in &ids {
        keys = keys.with_key(id.as_str(), key);
    }
    let router = app(keys.clone());
    let done = Arc::new(AtomicBool::new(false));
    let noise = {
        let (router, done, key) = (router.clone(), Arc::clone(&done), ids[39].1.clone());
        tokio::spawn(async move {
            while !done.load(Ordering::SeqCst) {
                let answer = send(
                    router.clone(),
                    request("/whoami", &[("x-api-key", key.as_bytes())]),
                )
                .await;
                assert_eq!(answer.status, StatusCode::OK);
            }
        })
    };
    for (id, key) in &ids[..39] {
        let answer = send(
            router.clone(),
            request("/whoami", &[("x-api-key", key.as_bytes())]),
        )
        .await;
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(keys.revoke(id).expect("the id exists"), 1);
        let answer = send(
            router.clone(),
            request("/whoami", &[("x-api-key", key.as_bytes())]),
        )
        .await;
        answer.assert_problem(StatusCode::UNAUTHORIZED, "RevokedKey");
        assert_eq!(
            answer.json()["detail"],
            "API key revoked: ask for a new key."
        );
    }
    done.store(true, Ordering::SeqCst);
    noise.await.expect("the other client was never refused");
}

#[tokio::test]
async fn not_before_and_expiry_are_enforced_with_the_configured_status() {
    #[api_key(status = 403)]
    async fn strict(key: VerifiedKey) -> String {
        key.id().to_owned()
    }
    let hour = Duration::from_secs(3600);
    let keys = ApiKeys::new()
        .with(Key::new("expired", "ex_Po9Iu8Yt7Re6Wq").expires_at(SystemTime::now() - hour))
        .with(Key::new("future", "fu_Lk5Jh4Gf3Ds2Wq").not_before(SystemTime::now() + hour));
    let router = Router::new().route("/strict", get(strict)).with_state(keys);
    let answer = send(
        router.clone(),
        request("/strict", &[("x-api-key", b"ex_Po9Iu8Yt7Re6Wq")]),
    )
    .await;
    answer.assert_problem(StatusCode::FORBIDDEN, "ExpiredKey");
    let answer = send(
        router,
        request("/strict", &[("x-api-key", b"fu_Lk5Jh4Gf3Ds2Wq")]),
    )
    .await;
    answer.assert_problem(StatusCode::FORBIDDEN, "KeyNotYetValid");
}

/// A store requiring HTTPS that counts its lookups.
#[derive(Clone)]
struct Counting {
    keys: ApiKeys,
    lookups: Arc<AtomicUsize>,
}

impl KeyStore for Counting {
    async fn verify(&self, key: &str) -> Result<VerifiedKey, KeyError> {
        self.lookups.fetch_add(1, Ordering::SeqCst);
        self.keys.verify(key.as_bytes())
    }

    fn https(&self) -> Option<&HttpsPolicy> {
        Some(&HttpsPolicy::Direct)
    }
}

#[api_key(store = Counting)]
async fn counted(key: VerifiedKey) -> String {
    key.id().to_owned()
}

#[tokio::test]
async fn a_key_over_plain_http_to_a_store_that_waits_is_refused_without_a_lookup() {
    let store = Counting {
        keys: ApiKeys::new().with_key("a", "https_Mn8Bv7Cx6Za5"),
        lookups: Arc::default(),
    };
    let router = Router::new()
        .route("/counted", get(counted))
        .with_state(store.clone());

    let answer = send(
        router.clone(),
        request("/counted", &[("x-api-key", b"https_Mn8Bv7Cx6Za5")]),
    )
    .await;
    answer.assert_problem(StatusCode::FORBIDDEN, "HttpsRequired");
    assert!(
        answer.json()["detail"]
            .as_str()
            .is_some_and(|d| d.contains("rotate"))
    );
    answer.assert_never_contains(b"https_Mn8Bv7Cx6Za5");
    // A store that waits is not asked for a request refused either way (an in-memory store is
    // asked, to name the key in the operator's warning: see `audit.rs`).
    assert_eq!(store.lookups.load(Ordering::SeqCst), 0);

    // The client chooses the URI's scheme, so an `https` URI proves nothing; the marker a TLS
    // layer sets does.
    let claimed = Request::get("https://api.example/counted")
        .header("x-api-key", "https_Mn8Bv7Cx6Za5")
        .body(Body::empty())
        .unwrap();
    send(router.clone(), claimed)
        .await
        .assert_problem(StatusCode::FORBIDDEN, "HttpsRequired");
    let mut marked = request("/counted", &[("x-api-key", b"https_Mn8Bv7Cx6Za5")]);
    marked.extensions_mut().insert(Https);
    assert_eq!(send(router, marked).await.status, StatusCode::OK);
    assert_eq!(store.lookups.load(Ordering::SeqCst), 1);
}

/// Sends a raw HTTP/1.1 request line and headers to a loopback server and returns the status.
async fn raw_status(base: &str, request: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer);
    answer
        .split(' ')
        .nth(1)
        .and_then(|status| status.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {answer:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_absolute_https_request_line_over_plain_tcp_is_refused() {
    let keys = ApiKeys::new()
        .with_key("steady", STEADY)
        .with_https(HttpsPolicy::Direct);
    let (base, server) = serve_with_peer(keys).await;
    let absolute = format!(
        "GET https://api.example/whoami HTTP/1.1\r\nhost: api.example\r\nx-api-key: {STEADY}\r\nconnection: close\r\n\r\n"
    );
    assert_eq!(raw_status(&base, &absolute).await, 403);
    let origin = format!(
        "GET /whoami HTTP/1.1\r\nhost: api.example\r\nx-api-key: {STEADY}\r\nconnection: close\r\n\r\n"
    );
    assert_eq!(raw_status(&base, &origin).await, 403);
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trusted_proxy_is_recognised_in_its_ipv4_mapped_form() {
    let mapped = ApiKeys::new()
        .with_key("steady", STEADY)
        .with_https(HttpsPolicy::behind_proxies(["::ffff:127.0.0.1"
            .parse()
            .unwrap()]));
    let (base, server) = serve_with_peer(mapped).await;
    assert_eq!(status_over_loopback(&base, Some("https")).await, 200);
    assert_eq!(status_over_loopback(&base, Some("http")).await, 403);
    server.abort();
}

/// Serves `keys` on a loopback port with the peer address known, as behind a proxy.
async fn serve_with_peer(keys: ApiKeys) -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let service = app(keys).into_make_service_with_connect_info::<SocketAddr>();
    let server = tokio::spawn(async move {
        axum::serve(listener, service)
            .await
            .expect("the server runs");
    });
    (base, server)
}

async fn status_over_loopback(base: &str, forwarded: Option<&str>) -> u16 {
    use http_body_util::Empty;
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<axum::body::Bytes>>();
    let mut builder = Request::get(format!("{base}/whoami")).header("x-api-key", STEADY);
    if let Some(proto) = forwarded {
        builder = builder.header("x-forwarded-proto", proto);
    }
    let response = client
        .request(builder.body(Empty::new()).unwrap())
        .await
        .expect("the server answers");
    response.status().as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_trusted_proxy_x_forwarded_proto_counts_and_from_anyone_else_it_does_not() {
    let trusted = ApiKeys::new()
        .with_key("steady", STEADY)
        .with_https(HttpsPolicy::behind_proxies(["127.0.0.1".parse().unwrap()]));
    let (base, server) = serve_with_peer(trusted).await;
    assert_eq!(status_over_loopback(&base, Some("https")).await, 200);
    assert_eq!(status_over_loopback(&base, Some("http, https")).await, 200);
    assert_eq!(status_over_loopback(&base, Some("https, http")).await, 403);
    assert_eq!(status_over_loopback(&base, Some("http")).await, 403);
    assert_eq!(status_over_loopback(&base, None).await, 403);
    server.abort();

    let elsewhere = ApiKeys::new()
        .with_key("steady", STEADY)
        .with_https(HttpsPolicy::behind_proxies(["10.1.2.3".parse().unwrap()]));
    let (base, server) = serve_with_peer(elsewhere).await;
    assert_eq!(
        status_over_loopback(&base, Some("https")).await,
        403,
        "only trusted proxies are believed"
    );
    server.abort();
}

#[test]
fn a_file_without_keys_is_refused_at_start_up_and_on_reload_unless_allowed() {
    use axum_api_key::ConfigErrorKind;
    let path = temp_file("empty");
    for text in ["", "# every key was removed\n\n", "format = \"myapp\"\n"] {
        replace_file(&path, text);
        let error = ApiKeys::from_file(&path).unwrap_err();
        assert_eq!(error.kind(), ConfigErrorKind::FileEmpty, "{text:?}");
        assert!(error.to_string().contains("holds no key"), "{error}");
        let allowed = ApiKeys::from_file_allowing_empty(&path).expect("allowed");
        assert!(allowed.is_empty());
        assert_eq!(allowed.reload().expect("still allowed"), 0);
    }

    replace_file(&path, &records(&[("steady", STEADY)], "a"));
    let keys = ApiKeys::from_file(&path).unwrap();
    replace_file(&path, "# truncated\n");
    assert_eq!(
        keys.reload().unwrap_err().kind(),
        ConfigErrorKind::FileEmpty
    );
    assert_eq!(keys.verify(STEADY.as_bytes()).unwrap().id(), "steady");
}

#[test]
fn a_file_cut_short_is_refused_and_the_keys_stay() {
    use axum_api_key::ConfigErrorKind;
    let path = temp_file("cut");
    let whole = records(&[("steady", STEADY), ("only-a", ONLY_A)], "a");
    replace_file(&path, &whole);
    let keys = ApiKeys::from_file(&path).unwrap();
    // Rewritten in place and cut after the first record, without its final line break: it
    // parses, but does not end where a whole file ends.
    let first_record_end = whole.find("\n\n").unwrap();
    std::fs::write(&path, &whole[..first_record_end]).unwrap();
    let error = keys.reload().unwrap_err();
    assert_eq!(error.kind(), ConfigErrorKind::FileIncomplete);
    assert!(error.to_string().contains("rename"), "{error}");
    assert_eq!(keys.len(), 2);
    // A file put in place whole may end without a line break, as hand-written files do.
    replace_file(&path, whole.trim_end());
    assert_eq!(keys.reload().expect("a whole file"), 2);
    assert_eq!(ApiKeys::from_file(&path).expect("a whole file").len(), 2);
}

#[test]
fn reloads_racing_a_tool_that_rewrites_the_file_in_place_never_take_a_partial_file() {
    use std::io::Write;
    let path = temp_file("in-place");
    let owned: Vec<(String, String)> = (0..40)
        .map(|i| (format!("key-{i}"), format!("ip_{i:04}_Aq1Sw2De3Fr4Gt5")))
        .collect();
    let pairs: Vec<(&str, &str)> = owned
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let whole = records(&pairs, "a");
    replace_file(&path, &whole);
    let keys = ApiKeys::from_file(&path).unwrap();

    let done = Arc::new(AtomicBool::new(false));
    let writer = {
        let (path, whole, done) = (path.clone(), whole.clone(), Arc::clone(&done));
        std::thread::spawn(move || {
            let mut rewrites = 0;
            while !done.load(Ordering::SeqCst) {
                // Truncate, then write in small pieces, as a careless deploy step does.
                let mut file = std::fs::File::create(&path).unwrap();
                for piece in whole.as_bytes().chunks(97) {
                    file.write_all(piece).unwrap();
                    file.flush().unwrap();
                    std::thread::sleep(Duration::from_millis(1));
                }
                drop(file);
                rewrites += 1;
                std::thread::sleep(Duration::from_millis(150));
            }
            rewrites
        })
    };
    let started = std::time::Instant::now();
    let (mut taken, mut refused) = (0, 0);
    while started.elapsed() < Duration::from_secs(3) {
        match keys.reload() {
            Ok(count) => {
                assert_eq!(count, 40, "a reload took a partial file");
                taken += 1;
            }
            Err(_) => refused += 1,
        }
        assert_eq!(keys.len(), 40, "the store never loses a key");
    }
    done.store(true, Ordering::SeqCst);
    let rewrites = writer.join().unwrap();
    assert!(
        rewrites > 5 && taken > 5,
        "{rewrites} rewrites, {taken} reloads taken, {refused} refused"
    );
}
