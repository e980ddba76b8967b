// Places a handler cannot be protected from: each refused at the attribute, with the way out.
use axum_api_key::{api_key, webhook};

trait Handlers {
    #[api_key]
    async fn declared();
}

#[webhook(scheme = "github")]
struct Hook;

#[webhook(scheme = "github")]
enum Event {
    Push,
}

trait Routes {
    async fn list() -> &'static str;
}

struct Api;

impl Routes for Api {
    #[api_key]
    async fn list() -> &'static str {
        "list"
    }
}

fn main() {}

// Below `#[webhook]`, `debug_handler` must be told the state that holds the secrets.
#[webhook(scheme = "github")]
#[axum::debug_handler]
async fn debugged(body: axum::body::Bytes) -> String {
    body.len().to_string()
}
