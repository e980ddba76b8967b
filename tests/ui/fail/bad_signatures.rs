use axum_api_key::api_key;

struct Service;

impl Service {
    #[api_key]
    async fn method(&self) {}
}

#[api_key]
async unsafe fn unsafe_handler() {}

#[api_key]
async extern "C" fn extern_handler() {}

fn main() {}
