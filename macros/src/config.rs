//! The guard's configuration as a type of the runtime: the sources and scopes of a route packed
//! into the parameters of `Packed` or `Long`, its status, and its rate limit in `Rated`.

use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::{LitInt, LitStr};

use crate::attr::{self, Args, DEFAULT_HEADER, DEFAULT_STATUS, Errors, WithSpan};
use crate::tokens::respan;

/// The most bytes the sources and scopes of one guard take, packed (see [`packed`]).
pub(crate) const MAX_PACKED: usize = 1024;
/// The most scopes one guard requires.
pub(crate) const MAX_SCOPES: usize = 64;

/// The sources and scopes of `args` as the runtime's `Packed` and `Long` carry them: the count
/// of sources, the count of scopes, each source as its kind (0: a header, 1: a query
/// parameter, 2: a cookie, 3: bearer), its name's length and its name, then each scope as its
/// length and its text. Names and scopes are at most 255 bytes, which `attr` checks.
pub(crate) fn packed(args: &Args) -> Vec<u8> {
    let mut sources: Vec<(u8, &str)> = Vec::new();
    if let Some(header) = &args.header {
        sources.push((0, &header.value));
    }
    if let Some(query) = &args.query {
        sources.push((1, &query.value));
    }
    if let Some(cookie) = &args.cookie {
        sources.push((2, &cookie.value));
    }
    if args.bearer.is_some() {
        sources.push((3, ""));
    }
    if sources.is_empty() {
        sources.push((0, DEFAULT_HEADER));
    }
    let scopes: Vec<&str> = args
        .scopes
        .iter()
        .flat_map(|list| list.value.iter().map(String::as_str))
        .collect();
    let byte = |n: usize| u8::try_from(n).unwrap_or(u8::MAX);
    let mut bytes = vec![byte(sources.len()), byte(scopes.len())];
    for (kind, name) in &sources {
        bytes.extend([*kind, byte(name.len())]);
        bytes.extend_from_slice(name.as_bytes());
    }
    for scope in &scopes {
        bytes.push(byte(scope.len()));
        bytes.extend_from_slice(scope.as_bytes());
    }
    bytes
}

/// Eight `u128` literals holding 128 bytes, little-endian.
fn words(chunk: &[u8]) -> impl Iterator<Item = LitInt> + '_ {
    chunk.chunks(16).map(|part| {
        let mut word = [0u8; 16];
        word[..part.len()].copy_from_slice(part);
        LitInt::new(
            &format!("{}u128", u128::from_le_bytes(word)),
            Span::call_site(),
        )
    })
}

/// The guard's configuration as a type of the runtime, shared by every handler configured
/// alike: `Standard` for the `x-api-key` header without scopes, `Packed` for sources and scopes
/// that fit in 128 bytes and eight scopes, `Long` for the rest (up to [`MAX_PACKED`] bytes and
/// [`MAX_SCOPES`] scopes, which `attr` checks); inside `Rated` with a `rate_limit`, whose budget
/// is named by a hash of the handler's module, name and place.
pub(crate) fn config_type(args: &Args, handler: &syn::Ident, private: &TokenStream) -> TokenStream {
    let status = args.status.as_ref().map_or_else(
        || LitInt::new(&format!("{DEFAULT_STATUS}u16"), Span::call_site()),
        |s| LitInt::new(&format!("{}u16", s.value), s.span),
    );
    let optional = args.optional.is_some();
    let default_header = args
        .header
        .as_ref()
        .is_none_or(|header| header.value == DEFAULT_HEADER);
    let no_other_source = args.query.is_none() && args.cookie.is_none() && args.bearer.is_none();
    let scope_count = args.scopes.as_ref().map_or(0, |list| list.value.len());
    let mut config = if default_header && no_other_source && scope_count == 0 {
        quote! { #private::Standard<#status, #optional> }
    } else {
        let mut bytes = packed(args);
        if bytes.len() <= 128 && scope_count <= 8 {
            // Whole words; the trailing zero words are the type's defaults.
            bytes.resize(bytes.len().div_ceil(16) * 16, 0);
            let words = words(&bytes);
            quote! { #private::Packed<#status, #optional, #(#words),*> }
        } else {
            let chunks = chunk_list(&bytes, private);
            quote! { #private::Long<#status, #optional, #chunks> }
        }
    };
    if let Some(cost) = args.cost.as_ref().filter(|cost| cost.value != 1) {
        let cost = LitInt::new(&format!("{}u32", cost.value), cost.span);
        config = quote! { #private::Costed<#config, #cost> };
    }
    if let Some(rate) = &args.rate_limit {
        let attr::Rate {
            count,
            period_nanos,
            burst,
            calendar,
        } = rate.value;
        // A calendar window is told by a period no rolling one has.
        let period_nanos = match calendar {
            Some(attr::Calendar::Day) => 0,
            Some(attr::Calendar::Month) => 1,
            None => period_nanos,
        };
        let route = handler.to_string();
        let route = route.strip_prefix("r#").unwrap_or(&route);
        // Unique per handler: two handlers of one name (in two functions of one module) are
        // told apart by where they stand.
        let name = quote! {
            ::core::concat!(
                ::core::module_path!(), "::", #route, "@",
                ::core::file!(), ":", ::core::line!(), ":", ::core::column!()
            )
        };
        config = quote! {
            #private::Rated<
                #config, #count, #period_nanos, #burst, { #private::route_id(#name) }
            >
        };
    }
    config
}

/// `bytes` as a list of the runtime's `Chunk`s, 128 bytes each.
fn chunk_list(bytes: &[u8], private: &TokenStream) -> TokenStream {
    let mut list = quote! { #private::End };
    let chunks: Vec<&[u8]> = bytes.chunks(128).collect();
    for chunk in chunks.into_iter().rev() {
        let mut chunk = chunk.to_vec();
        chunk.resize(128, 0);
        let words = words(&chunk);
        list = quote! { #private::Chunk<#(#words,)* #list> };
    }
    list
}

/// `impl KeyConfig for #ty`, holding the attribute's configuration as a constant. `route`
/// names the budget of a `rate_limit`: the handler's (or the guard type's) path.
pub(crate) fn config_impl(args: &Args, ty: &syn::Ident, route: &syn::Ident) -> TokenStream {
    let private = private_path(args);
    let Args {
        header,
        query,
        cookie,
        bearer,
        status,
        scopes,
        optional,
        rate_limit,
        cost,
        store: _,
        state: _,
        krate: _,
        broken: _,
    } = args;
    let source = quote! { #private::Source };
    // Generated literals keep the span of the user's, so anything said about them points there.
    let literal = |value: &WithSpan<String>| LitStr::new(&value.value, value.span);
    let mut sources = Vec::new();
    if let Some(header) = header {
        let name = literal(header);
        sources.push(quote! { #source::Header(#name) });
    }
    if let Some(query) = query {
        let name = literal(query);
        sources.push(quote! { #source::Query(#name) });
    }
    if let Some(cookie) = cookie {
        let name = literal(cookie);
        sources.push(quote! { #source::Cookie(#name) });
    }
    if bearer.is_some() {
        sources.push(quote! { #source::Bearer });
    }
    if sources.is_empty() {
        sources.push(quote! { #source::Header(#DEFAULT_HEADER) });
    }
    let status = status.as_ref().map_or_else(
        || LitInt::new(&DEFAULT_STATUS.to_string(), Span::call_site()),
        |s| LitInt::new(&s.value.to_string(), s.span),
    );
    let scopes: Vec<LitStr> = scopes
        .iter()
        .flat_map(|list| list.value.iter().map(|scope| LitStr::new(scope, list.span)))
        .collect();
    let optional = optional.as_ref().map(|_| quote! { .optional() });
    let cost = cost.as_ref().map(|cost| {
        let cost = LitInt::new(&cost.value.to_string(), cost.span);
        quote! { .with_cost(#cost) }
    });
    let rate_limit = rate_limit.as_ref().map(|rate| {
        let attr::Rate {
            count,
            period_nanos,
            burst,
            calendar,
        } = rate.value;
        let route = route.to_string();
        let route = route.strip_prefix("r#").unwrap_or(&route);
        let limit = match calendar {
            Some(attr::Calendar::Day) => quote! { #private::RateLimit::per_day(#count) },
            Some(attr::Calendar::Month) => quote! { #private::RateLimit::per_month(#count) },
            None => quote! {
                #private::RateLimit::new(#count, #private::Duration::from_nanos(#period_nanos))
                    .with_burst(#burst)
            },
        };
        quote! {
            .with_rate_limit(
                #limit,
                // Unique per handler: two handlers of one name (in two functions of one
                // module) are told apart by where they stand.
                ::core::concat!(
                    ::core::module_path!(), "::", #route, "@",
                    ::core::file!(), ":", ::core::line!(), ":", ::core::column!()
                ),
            )
        }
    });
    quote! {
        impl #private::KeyConfig for #ty {
            const CONFIG: #private::GuardConfig =
                #private::GuardConfig::new(&[#(#sources),*])
                    .with_status(#status)
                    .with_scopes(&[#(#scopes),*])
                    #optional
                    #rate_limit
                    #cost;
        }
    }
}

/// The runtime crate's path: `crate = …`, or `::axum_api_key`.
#[cfg(feature = "openapi")]
pub(crate) fn crate_root(args: &Args) -> TokenStream {
    match &args.krate {
        Some(krate) => {
            let path = &krate.value;
            quote! { #path }
        }
        None => quote! { ::axum_api_key },
    }
}

/// The path to the runtime's `__private` module: under `crate = …`, spanned at that path, so
/// that a path which is not the runtime is reported there; otherwise `::axum_api_key::__private`.
pub(crate) fn private_path(args: &Args) -> TokenStream {
    match &args.krate {
        Some(krate) => {
            let path = &krate.value;
            respan(quote! { #path::__private }, krate.span)
        }
        None => quote! { ::axum_api_key::__private },
    }
}

/// Checks that the sources and scopes of `args` fit in a configuration type: at most
/// [`MAX_SCOPES`] scopes, at most [`MAX_PACKED`] bytes packed.
pub(crate) fn check_fits(args: &Args, errors: &mut Errors) {
    if let Some(scopes) = &args.scopes {
        let max = MAX_SCOPES;
        if scopes.value.len() > max {
            errors.push(syn::Error::new(
                scopes.span,
                format!(
                    "a route can require at most {max} scopes and this one lists {}; require a \
                     broader scope that your keys hold instead",
                    scopes.value.len()
                ),
            ));
        } else {
            let bytes = packed(args).len();
            let max = MAX_PACKED;
            if bytes > max {
                errors.push(syn::Error::new(
                    scopes.span,
                    format!(
                        "the sources and scopes of one route take at most {max} bytes and these \
                         take {bytes}; require fewer or shorter scopes"
                    ),
                ));
            }
        }
    }
}
