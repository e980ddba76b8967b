use axum_api_key::api_key;

// axum handlers take at most 16 arguments.
#[api_key]
async fn seventeen(
    _: (), _: (), _: (), _: (), _: (), _: (), _: (), _: (), _: (), _: (), _: (), _: (), _: (),
    _: (), _: (), _: (), _: (),
) {
}

#[api_key]
const async fn constant() {}

fn main() {}
