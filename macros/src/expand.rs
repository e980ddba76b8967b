//! Checking the annotated item and rewriting the handler.
//!
//! The runtime's verifying extractor, parameterised by a zero-sized config type generated beside
//! the handler, joins the handler's first argument in a tuple (or becomes its only argument), so
//! it is extracted first and the handler keeps its arity. Everything else about the function is
//! kept. On a unit struct, the attribute only implements the config trait for it.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote};
use syn::spanned::Spanned;
use syn::{FnArg, Item, ItemFn, LitInt, LitStr, Path, Signature};

use crate::attr::{self, Args, DEFAULT_HEADER, DEFAULT_STATUS, Errors, WithSpan};

/// The whole expansion: check, then rewrite or report.
pub(crate) fn api_key(args: TokenStream, item: TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    let args = attr::parse(args, &mut errors);
    let target = match syn::parse2::<Item>(item.clone()) {
        Ok(Item::Fn(function)) => {
            check_signature(&function.sig, &mut errors);
            if let Some(optional) = &args.optional {
                check_optional_key(&function.sig, optional.span, &mut errors);
            }
            Some(Target::Handler(function))
        }
        Ok(Item::Struct(config)) if is_unit_struct(&config) => {
            if let Some(store) = &args.store {
                errors.push(syn::Error::new_spanned(
                    &store.value,
                    "a guard type does not choose its store: name it where the guard is used, \
                     `RequireApiKey<Config, Store>` or `RequireApiKey::<Config, Store>::layer(store)`",
                ));
            }
            if let Some(state) = &args.state {
                errors.push(syn::Error::new_spanned(
                    &state.value,
                    "`state` checks a handler's router state; a guard type has none, so leave it out",
                ));
            }
            Some(Target::Config(config))
        }
        _ => {
            errors.push(not_a_function(&item));
            None
        }
    };
    match (errors.into_result(), target) {
        (Ok(()), Some(Target::Handler(function))) => rewrite(args, function),
        (Ok(()), Some(Target::Config(config))) => {
            let config_impl = config_impl(&args, &config.ident);
            quote! { #config #config_impl }
        }
        // The item goes out unchanged beside the errors, so the route that uses it raises no
        // follow-on errors and IDEs keep resolving it.
        (Err(error), _) => {
            let error = error.into_compile_error();
            quote! { #item #error }
        }
        (Ok(()), None) => item,
    }
}

/// What the attribute is on.
enum Target {
    /// An async handler, to protect.
    Handler(ItemFn),
    /// A unit struct, to make a guard configuration for layers and hand-written extractors.
    Config(syn::ItemStruct),
}

fn is_unit_struct(item: &syn::ItemStruct) -> bool {
    matches!(item.fields, syn::Fields::Unit) && item.generics.params.is_empty()
}

/// With `optional`, a request may come without a key, so a bare `VerifiedKey` argument would
/// refuse it with a 500: the handler must take `Option<VerifiedKey>`.
fn check_optional_key(sig: &Signature, optional: Span, errors: &mut Errors) {
    for input in &sig.inputs {
        let FnArg::Typed(typed) = input else { continue };
        let syn::Type::Path(path) = &*typed.ty else {
            continue;
        };
        let Some(last) = path.path.segments.last() else {
            continue;
        };
        if last.ident == "VerifiedKey" && last.arguments.is_empty() {
            let mut error = syn::Error::new_spanned(
                &typed.ty,
                "with `optional`, a request may come without a key: take `Option<VerifiedKey>`",
            );
            error.combine(syn::Error::new(optional, "the key is made optional here"));
            errors.push(error);
        }
    }
}

fn not_a_function(item: &TokenStream) -> syn::Error {
    const MESSAGE: &str = "#[api_key] protects an async handler function; put it on the `async fn` \
                           that handles the route, or on a unit struct (`struct ApiAccess;`) to \
                           define a guard for a router layer";
    let Ok(item) = syn::parse2::<Item>(item.clone()) else {
        return syn::Error::new(Span::call_site(), MESSAGE);
    };
    let (what, span) = match &item {
        Item::Struct(item) => ("a struct with fields or generics", item.struct_token.span),
        Item::Enum(item) => ("an enum", item.enum_token.span),
        Item::Union(item) => ("a union", item.union_token.span),
        Item::Impl(item) => ("an impl block", item.impl_token.span),
        Item::Trait(item) => ("a trait", item.trait_token.span),
        Item::Mod(item) => ("a module", item.mod_token.span),
        Item::Const(item) => ("a constant", item.const_token.span),
        Item::Static(item) => ("a static", item.static_token.span),
        Item::Type(item) => ("a type alias", item.type_token.span),
        Item::Use(item) => ("a `use` item", item.use_token.span),
        Item::ExternCrate(item) => ("an `extern crate` item", item.extern_token.span),
        Item::ForeignMod(item) => ("an `extern` block", item.abi.extern_token.span),
        Item::Macro(item) => ("a macro invocation", item.mac.path.span()),
        other => ("this item", other.span()),
    };
    syn::Error::new(span, format!("{MESSAGE}, not on {what}"))
}

fn check_signature(sig: &Signature, errors: &mut Errors) {
    if let Some(token) = &sig.constness {
        errors.push(syn::Error::new(
            token.span,
            "a handler cannot be a `const fn`; remove `const`",
        ));
    }
    if sig.asyncness.is_none() {
        errors.push(syn::Error::new(
            sig.fn_token.span,
            format!(
                "#[api_key] needs an async handler: write `async fn {}(...)`",
                sig.ident
            ),
        ));
    }
    if let Some(token) = &sig.unsafety {
        errors.push(syn::Error::new(
            token.span,
            "an `unsafe fn` cannot be an axum handler; remove `unsafe`",
        ));
    }
    if let Some(abi) = &sig.abi {
        errors.push(syn::Error::new_spanned(
            abi,
            "an `extern` fn cannot be an axum handler; remove the ABI",
        ));
    }
    // axum implements `Handler` for functions of up to 16 arguments.
    if let Some(extra) = sig.inputs.iter().nth(16) {
        errors.push(syn::Error::new_spanned(
            extra,
            format!(
                "axum handlers take at most 16 arguments and this one takes {}; group extractors \
                 into a tuple or a struct that derives `FromRequestParts`",
                sig.inputs.len()
            ),
        ));
    }
    if let Some(FnArg::Receiver(receiver)) = sig.inputs.first() {
        errors.push(syn::Error::new(
            receiver.self_token.span,
            "a handler cannot take `self`; axum handlers are free functions or associated \
             functions without a receiver, so pass what you need as state with `State<T>`",
        ));
    }
}

fn rewrite(args: Args, function: ItemFn) -> TokenStream {
    let ItemFn {
        attrs,
        vis,
        mut sig,
        block,
    } = function;
    let config = config_type_name(&sig);
    let config_impl = config_impl(&args, &config);
    let krate = runtime_path(&args);
    let store = match &args.store {
        Some(store) => {
            let path = &store.value;
            quote! { #path }
        }
        None => quote! { #krate::__private::ApiKeys },
    };
    let state_check = state_check(&args, &sig, &krate, &store);
    // A type that is no store is reported at the type, not as a bound deep in `Handler`.
    let store_check = args.store.as_ref().map(|named| {
        let check = quote! { const _: () = #krate::__private::check_key_store::<#store>(); };
        respan(check, named.value.span())
    });
    let guard = quote! { #krate::__private::Guard<#config, #store> };
    match sig.inputs.first_mut() {
        // The guard joins the first argument in a tuple, which axum extracts left to right:
        // it runs first, and the handler keeps its arity, so code that calls it with its own
        // arguments (`#[debug_handler]`'s checks among them) still compiles.
        Some(FnArg::Typed(first)) if first.attrs.is_empty() => {
            let (pat, ty) = (&first.pat, &first.ty);
            *first = syn::parse_quote! { (_, #pat): (#guard, #ty) };
        }
        _ => sig.inputs.insert(0, syn::parse_quote! { _: #guard }),
    }

    quote! {
        #[doc(hidden)]
        #[allow(non_camel_case_types)]
        #vis enum #config {}

        #config_impl

        #state_check
        #store_check

        #(#attrs)*
        #vis #sig #block
    }
}

/// With `state = T`, a check at `T` that the router state provides the store: a missing store
/// is then reported there, in our words, rather than as an unsatisfied `Handler` bound at the
/// route. (A `State<T>` argument does not name the router state: `T` may be a part of it.)
fn state_check(
    args: &Args,
    sig: &Signature,
    krate: &Path,
    store: &TokenStream,
) -> Option<TokenStream> {
    let state = &args.state.as_ref()?.value;
    // The state type may name the handler's generics, which a free-standing check cannot.
    if !sig.generics.params.is_empty() {
        return None;
    }
    let check = quote! {
        const _: () = #krate::__private::check_store_in_state::<#store, #state>();
    };
    Some(respan(check, state.span()))
}

/// `tokens` with every span set to `span`, so that errors in them point at the user's code.
fn respan(tokens: TokenStream, span: Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|mut token| {
            if let proc_macro2::TokenTree::Group(group) = &token {
                let mut respanned =
                    proc_macro2::Group::new(group.delimiter(), respan(group.stream(), span));
                respanned.set_span(span);
                token = proc_macro2::TokenTree::Group(respanned);
            } else {
                token.set_span(span);
            }
            token
        })
        .collect()
}

/// The path to the runtime crate: `crate = …`, or `::axum_api_key`.
fn runtime_path(args: &Args) -> Path {
    args.krate
        .as_ref()
        .map_or_else(|| syn::parse_quote!(::axum_api_key), |k| k.value.clone())
}

/// `impl KeyConfig for #ty`, holding the attribute's configuration as a constant.
fn config_impl(args: &Args, ty: &syn::Ident) -> TokenStream {
    let krate = runtime_path(args);
    let Args {
        header,
        query,
        cookie,
        bearer,
        status,
        scopes,
        optional,
        store: _,
        state: _,
        krate: _,
    } = args;
    let source = quote! { #krate::__private::Source };
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
    quote! {
        impl #krate::__private::KeyConfig for #ty {
            const CONFIG: #krate::__private::GuardConfig =
                #krate::__private::GuardConfig::new(&[#(#sources),*])
                    .with_status(#status)
                    .with_scopes(&[#(#scopes),*])
                    #optional;
        }
    }
}

/// `__api_key_config_<handler>`: unique per handler in its module, and an empty enum so that it
/// takes no name in the value namespace.
fn config_type_name(sig: &Signature) -> syn::Ident {
    let name = sig.ident.to_string();
    let name = name.strip_prefix("r#").unwrap_or(&name);
    format_ident!("__api_key_config_{}", name, span = sig.ident.span())
}
