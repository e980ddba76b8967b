//! Helpers shared by the integration tests: send a request through a real `Router`, read the
//! whole answer, and check it for what must and must not be there.

/// Every Rust block of the README, compiled (and run, unless marked `no_run`) as printed. The
/// README shows `PgKeys` and Redis limits too, so its blocks are tested with the features the
/// README's test command turns on (`--all-features`).
#[cfg(all(doctest, feature = "postgres", feature = "redis"))]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;

use std::io;
use std::sync::{Arc, Mutex, PoisonError};

use axum::Router;
use axum::body::Body;
use http_body_util::BodyExt;
use tower::ServiceExt;

pub use axum::http::{HeaderMap, HeaderValue, Request, StatusCode};

/// A valid key used across the tests.
pub const KEY_A: &str = "pa_7Qm2xY9wLkV3rT8sNc5d";
/// A second valid key.
pub const KEY_B: &str = "pb_Zc4nH6jR1eW5uB0dKf2g";

/// The store most tests serve: `partner-a` and `partner-b`.
pub fn keys() -> axum_api_key::ApiKeys {
    axum_api_key::ApiKeys::new()
        .with_key("partner-a", KEY_A)
        .with_key("partner-b", KEY_B)
}

/// A whole response, read to the end.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Answer {
    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON; panics with the body when it is not.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.text()))
    }

    /// The value of a header as text, if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(name)
            .map(|v| v.to_str().expect("header value is text"))
    }

    /// Asserts that `secret` appears nowhere in the response: not in the status line, any
    /// header name or value, or the body.
    pub fn assert_never_contains(&self, secret: &[u8]) {
        assert!(!secret.is_empty());
        let found = |haystack: &[u8]| haystack.windows(secret.len()).any(|w| w == secret);
        assert!(
            !found(&self.body),
            "the body holds the key: {}",
            self.text()
        );
        for (name, value) in &self.headers {
            assert!(
                !found(name.as_str().as_bytes()),
                "header name {name} holds the key"
            );
            assert!(
                !found(value.as_bytes()),
                "header {name} holds the key: {value:?}"
            );
        }
        assert!(!found(self.status.as_str().as_bytes()));
    }

    /// Asserts a problem-details answer of this status with the four RFC 9457 members, for
    /// answers that are not the guard's own `Problem`s (the self-service router's).
    pub fn assert_problem_status(&self, status: StatusCode) {
        assert_eq!(self.status, status, "body: {}", self.text());
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json")
        );
        let body = self.json();
        for member in ["type", "title", "status", "detail"] {
            assert!(body.get(member).is_some(), "no `{member}`: {body}");
        }
        assert_eq!(body["status"], status.as_u16());
    }

    /// Asserts a problem-details refusal: status, content type, the four RFC 9457 members,
    /// `type` (`about:blank` unless the app set a base) and the variant's `title`.
    pub fn assert_problem(&self, status: StatusCode, variant: &str) {
        assert_eq!(self.status, status, "body: {}", self.text());
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json")
        );
        let body = self.json();
        let object = body.as_object().expect("the body is a JSON object");
        assert_eq!(
            object.len(),
            4,
            "exactly type, title, status, detail: {body}"
        );
        assert_eq!(body["status"], status.as_u16());
        let problem = problem_named(variant);
        assert_eq!(body["type"], problem.type_uri(), "{body}");
        assert_eq!(body["title"], problem.title(), "{body}");
        assert!(
            body["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "{body}"
        );
    }
}

/// The `Problem` variant of this name.
pub fn problem_named(variant: &str) -> axum_api_key::Problem {
    use axum_api_key::Problem;
    match variant {
        "MissingKey" => Problem::MissingKey,
        "InvalidKey" => Problem::InvalidKey,
        "DuplicateKey" => Problem::DuplicateKey,
        "RevokedKey" => Problem::RevokedKey,
        "ExpiredKey" => Problem::ExpiredKey,
        "KeyNotYetValid" => Problem::KeyNotYetValid,
        "InsufficientScope" => Problem::InsufficientScope,
        "HttpsRequired" => Problem::HttpsRequired,
        "StoreUnavailable" => Problem::StoreUnavailable,
        "NotProtected" => Problem::NotProtected,
        "RateLimited" => Problem::RateLimited,
        "TooManyAttempts" => Problem::TooManyAttempts,
        "LimiterUnavailable" => Problem::LimiterUnavailable,
        "DisabledKey" => Problem::DisabledKey,
        "AddressNotAllowed" => Problem::AddressNotAllowed,
        "CreditsExhausted" => Problem::CreditsExhausted,
        other => panic!("no problem is named {other}"),
    }
}

/// Sends `request` through `app` in-process and reads the whole answer.
pub async fn send(app: Router, request: Request<Body>) -> Answer {
    let response = app.oneshot(request).await.expect("routers are infallible");
    let (parts, body) = response.into_parts();
    let body = body
        .collect()
        .await
        .expect("the body can be read")
        .to_bytes()
        .to_vec();
    Answer {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

/// Headers to send, each name with its raw value.
pub type Headers<'a> = Vec<(&'a str, &'a [u8])>;

/// A GET request for `uri` with the given headers, each sent as given (a name twice sends it
/// twice).
pub fn get(uri: &str, headers: &[(&str, &[u8])]) -> Request<Body> {
    let mut request = Request::get(uri);
    for (name, value) in headers {
        let value = HeaderValue::from_bytes(value).expect("a header value the test can send");
        request = request.header(*name, value);
    }
    request.body(Body::empty()).expect("a valid request")
}

/// A writer collecting everything a `tracing` subscriber prints, to search the logs.
#[derive(Clone, Default)]
pub struct CapturedLogs(Arc<Mutex<Vec<u8>>>);

impl CapturedLogs {
    /// Everything written so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(PoisonError::into_inner)).into_owned()
    }

    /// A subscriber printing every event, at every level, into this capture. Install it with
    /// `tracing::subscriber::set_default` on the test's thread.
    pub fn subscriber(&self) -> impl tracing::Subscriber + Send + Sync + 'static {
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(self.clone())
            .finish()
    }
}

/// Everything logged anywhere in this test process, at every level, through one global
/// subscriber installed on first use. A thread's own `set_default` subscriber can miss an event
/// while other tests' subscribers come and go (callsite interest is cached process-wide), so
/// tests that must see an event read this and look for what only they log.
pub fn global_logs() -> &'static CapturedLogs {
    static LOGS: std::sync::OnceLock<CapturedLogs> = std::sync::OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = CapturedLogs::default();
        tracing::subscriber::set_global_default(logs.subscriber())
            .expect("no other global subscriber in the test process");
        logs
    })
}

impl io::Write for CapturedLogs {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for CapturedLogs {
    type Writer = CapturedLogs;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// The PostgreSQL server the tests use: `DATABASE_URL`, or the one every development and CI
/// machine runs on 127.0.0.1:5432 (database `test`); when neither answers, a throwaway server
/// started here from the installed binaries (`initdb` in a temporary directory, a free port),
/// which stops when the test process ends. `None`, said in one line, when none can be had;
/// under CI (`CI=true`) that fails the test instead.
#[cfg(feature = "postgres")]
pub fn postgres_url() -> Option<String> {
    static URL: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    URL.get_or_init(|| {
        let configured = std::env::var("DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
        if answers(&configured) {
            return Some(configured);
        }
        match throwaway_postgres() {
            Ok(url) => Some(url),
            Err(why) if std::env::var("CI").as_deref() == Ok("true") => {
                panic!("CI=true and no PostgreSQL: {configured} does not answer, and {why}")
            }
            Err(why) => {
                eprintln!("skipped: no PostgreSQL ({configured} does not answer, and {why})");
                None
            }
        }
    })
    .clone()
}

/// Whether a PostgreSQL server answers at `url`'s host and port.
#[cfg(feature = "postgres")]
fn answers(url: &str) -> bool {
    let Ok(options) = url.parse::<sqlx::postgres::PgConnectOptions>() else {
        return false;
    };
    let address = format!("{}:{}", options.get_host(), options.get_port());
    std::net::ToSocketAddrs::to_socket_addrs(&address)
        .ok()
        .and_then(|mut addresses| addresses.next())
        .is_some_and(|address| {
            std::net::TcpStream::connect_timeout(&address, std::time::Duration::from_secs(2))
                .is_ok()
        })
}

/// Starts a PostgreSQL server of this process's own and returns its URL.
#[cfg(feature = "postgres")]
fn throwaway_postgres() -> Result<String, String> {
    use std::process::Command;
    let bin = std::fs::read_dir("/usr/lib/postgresql")
        .map_err(|_| "no PostgreSQL binaries are installed".to_owned())?
        .filter_map(Result::ok)
        .map(|entry| entry.path().join("bin"))
        .find(|bin| bin.join("initdb").exists())
        .ok_or("no initdb is installed")?;
    let dir = std::env::temp_dir().join(format!("axum-api-key-pg-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    // PostgreSQL refuses to run as root: as root, the server runs as `postgres`.
    let as_root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.stdout.starts_with(b"0"));
    let run = |program: &std::path::Path| {
        let mut command = if as_root {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(program);
            command
        } else {
            Command::new(program)
        };
        command.current_dir(&dir);
        command
    };
    if as_root {
        Command::new("chown")
            .args(["-R", "postgres"])
            .arg(&dir)
            .status()
            .map_err(|e| e.to_string())?;
    }
    let data = dir.join("data");
    let initialised = run(&bin.join("initdb"))
        .args(["-A", "trust", "-U", "postgres", "-D"])
        .arg(&data)
        .output()
        .map_err(|e| e.to_string())?;
    if !initialised.status.success() {
        return Err(format!(
            "initdb failed: {}",
            String::from_utf8_lossy(&initialised.stderr)
        ));
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    // The server goes with this process: a watchdog stops it when the process is gone.
    let script = format!(
        "\"{postgres}\" -D \"{data}\" -p {port} -k \"{dir}\" -c listen_addresses=127.0.0.1 \
         >\"{dir}/log\" 2>&1 & server=$!; \
         while [ -e /proc/{parent} ]; do sleep 1; done; kill $server; wait $server; \
         rm -rf \"{dir}\"",
        postgres = bin.join("postgres").display(),
        data = data.display(),
        dir = dir.display(),
        parent = std::process::id(),
    );
    let mut watchdog = if as_root {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--", "sh", "-c", &script]);
        command
    } else {
        let mut command = Command::new("sh");
        command.args(["-c", &script]);
        command
    };
    watchdog.spawn().map_err(|e| e.to_string())?;
    let url = format!("postgres://postgres@127.0.0.1:{port}/postgres");
    let started = std::time::Instant::now();
    while !answers(&url) {
        if started.elapsed() > std::time::Duration::from_secs(20) {
            return Err("the throwaway server did not start within 20 s".to_owned());
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // Accepting connections comes a moment after listening.
    std::thread::sleep(std::time::Duration::from_millis(500));
    eprintln!("tests use a throwaway PostgreSQL server at {url}");
    Ok(url)
}

/// A Redis key prefix no other test or run shares.
#[cfg(feature = "redis")]
pub fn redis_prefix(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("axum-api-key-test:{test}:{}:{nanos}", std::process::id())
}

/// The Redis server the tests use: `REDIS_URL`, or the one every development and CI machine
/// runs on 127.0.0.1:6379; when neither answers, a throwaway [`RedisServer`] started here from
/// the installed `redis-server`, kept for the life of the test process. `None`, said in one
/// line, when none can be had; under CI (`CI=true`) that fails the test instead.
#[cfg(feature = "redis")]
pub fn redis_url() -> Option<String> {
    static URL: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    URL.get_or_init(|| {
        let configured =
            std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
        let address = configured
            .trim_start_matches("redis://")
            .split(['/', '?'])
            .next()
            .unwrap_or_default()
            .rsplit('@')
            .next()
            .unwrap_or_default()
            .to_owned();
        if tcp_answers(&address) {
            return Some(configured);
        }
        match RedisServer::start() {
            Ok(server) => {
                let url = server.url();
                // Kept until the process ends.
                std::mem::forget(server);
                Some(url)
            }
            Err(why) if std::env::var("CI").as_deref() == Ok("true") => {
                panic!("CI=true and no Redis: {configured} does not answer, and {why}")
            }
            Err(why) => {
                eprintln!("skipped: no Redis ({configured} does not answer, and {why})");
                None
            }
        }
    })
    .clone()
}

/// Whether something listens at `address` (`host:port`).
#[cfg(feature = "redis")]
fn tcp_answers(address: &str) -> bool {
    std::net::ToSocketAddrs::to_socket_addrs(address)
        .ok()
        .and_then(|mut addresses| addresses.next())
        .is_some_and(|address| {
            std::net::TcpStream::connect_timeout(&address, std::time::Duration::from_secs(2))
                .is_ok()
        })
}

/// A `redis-server` of the test's own on a free loopback port, keeping nothing on disk: to stop
/// and start again under a running app. Stopped when dropped.
#[cfg(feature = "redis")]
pub struct RedisServer {
    port: u16,
    child: Option<std::process::Child>,
}

#[cfg(feature = "redis")]
impl RedisServer {
    /// Starts one, or says why it cannot.
    pub fn start() -> Result<Self, String> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        let mut server = Self { port, child: None };
        server.restart()?;
        Ok(server)
    }

    /// Its URL.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Stops it, as a crash would: at once, keeping nothing.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port, empty, and waits until it answers.
    pub fn restart(&mut self) -> Result<(), String> {
        self.stop();
        let child = std::process::Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .map_err(|e| format!("redis-server could not be started: {e}"))?;
        self.child = Some(child);
        let started = std::time::Instant::now();
        while !tcp_answers(&format!("127.0.0.1:{}", self.port)) {
            if started.elapsed() > std::time::Duration::from_secs(10) {
                return Err("the throwaway redis-server did not start within 10 s".to_owned());
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        Ok(())
    }
}

#[cfg(feature = "redis")]
impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Routes with a refusal of each kind the crate writes besides the guard's own: `GET /data`
/// (the guard: 401 without a key), `POST /account/keys/me/rotate` (self-service: 409 for a store
/// without a key format, with [`KEY_A`]) and `POST /hook` (a signed webhook: 401 unsigned).
pub fn refusing_routes() -> Router {
    use axum::routing::{get, post};
    use axum_api_key::webhook::WebhookSecrets;
    use axum_api_key::{ApiKeys, VerifiedKey, api_key, self_service, webhook};

    #[api_key]
    struct ApiAccess;

    #[api_key]
    async fn data(key: VerifiedKey) -> String {
        key.id().to_owned()
    }

    #[webhook(scheme = "standard")]
    async fn hook() -> &'static str {
        "noted"
    }

    let keys = ApiKeys::new().with_key("partner-a", KEY_A);
    Router::new()
        .route("/data", get(data))
        .nest(
            "/account",
            self_service::<ApiAccess, ApiKeys, _>(std::time::Duration::from_secs(60)),
        )
        .with_state(keys)
        .merge(Router::new().route("/hook", post(hook)).with_state(
            WebhookSecrets::new().with_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
        ))
}
