//! What `#[api_key]` checks at compile time: traits whose `on_unimplemented` messages are the
//! errors a user sees, named in their notes. Not public API.

/// Implemented by the stand-in operation `#[api_key]` defines, never by utoipa's: a handler
/// whose `__path_` operation lacks it had `#[utoipa::path]` expanded above `#[api_key]`.
#[cfg(feature = "openapi")]
#[diagnostic::on_unimplemented(
    message = "`#[utoipa::path]` is above `#[api_key]`, so its operation was made before the \
           guard and documents no API key",
    label = "put `#[api_key]` above `#[utoipa::path]` on this handler",
    note = "attributes expand from the top: `#[api_key]` first adds its security \
        requirement and refusals to the `#[utoipa::path]` below it"
)]
pub trait NotDocumentedYet {}

/// Compiles only when `Operation` is `#[api_key]`'s stand-in (see [`NotDocumentedYet`]).
#[cfg(feature = "openapi")]
pub fn check_documentation_order<Operation: NotDocumentedYet>() {}

/// `secrets = K` as `#[webhook]` names it: `K` itself, when it is a source of secrets, so
/// that one that is not is reported where it is named.
#[cfg(feature = "webhooks")]
pub trait IsSecretSource {
    /// `Self`.
    type Itself: crate::webhook::SecretSource;
}

#[cfg(feature = "webhooks")]
impl<K: crate::webhook::SecretSource> IsSecretSource for K {
    type Itself = K;
}

/// `store = S` as the guard names it: `S` itself, when it is a key store, so that one that
/// is not is reported where it is named, in the words of [`KeyStore`](crate::KeyStore).
pub trait IsStore {
    /// `Self`.
    type Itself: crate::KeyStore;
}

impl<S: crate::KeyStore> IsStore for S {
    type Itself = S;
}

/// Holds when the router state `State` provides the key store: what a handler's guard
/// needs, checked where the state type is written so that the message lands there.
#[diagnostic::on_unimplemented(
    message = "the router state `{State}` does not provide the API key store `{Self}`",
    label = "this state has no `{Self}` to check keys against",
    note = "give the state a field of type `{Self}` and derive `FromRef`: \
        `#[derive(Clone, FromRef)] struct AppState {{ keys: {Self}, .. }}`",
    note = "or use the store itself as the router state: `Router::new().route(..).with_state(keys)`"
)]
pub trait StoreInState<State> {}

impl<K: axum::extract::FromRef<State>, State> StoreInState<State> for K {}

/// What a handler may return, named in our words when it is not.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a response, so the handler cannot serve a route",
    label = "returned here",
    note = "a handler returns a type that implements `axum::response::IntoResponse`: a \
        `String`, `Json<T>`, `(StatusCode, T)`, `Result<T, E>` of responses, ..."
)]
pub trait HandlerResponse {}

impl<T: axum::response::IntoResponse> HandlerResponse for T {}

/// Compiles only when `T` is a response.
pub const fn check_response<T: HandlerResponse>() {}

/// Compiles only when `State` provides `K`.
pub const fn check_store_in_state<K: StoreInState<State>, State>() {}
