//! Checking the annotated item and rewriting the handler.
//!
//! The runtime's verifying extractor, parameterised by a zero-sized config type, joins the
//! handler's first argument in a tuple (or becomes its only argument), so it is extracted first
//! and the handler keeps its arity. The config type is always one the runtime shares between
//! handlers configured alike (`Standard`; `Packed` or `Long` with the sources and scopes packed
//! into its parameters; `Rated` around one of those for a rate limit), so nothing is generated
//! beside a handler but a hidden check function where there is something to check, and the
//! attribute works in `impl` blocks. Everything else about the function is kept; documentation
//! sees the function as written. On a unit struct, the attribute only implements the config
//! trait for it.

use proc_macro2::TokenStream;
use quote::quote;
use syn::{FnArg, Item, Signature};

use crate::attr::{self, Args, DEFAULT_HEADER, DEFAULT_STATUS, Errors};
#[cfg(feature = "openapi")]
use crate::config::crate_root;
use crate::config::{check_fits, config_impl, config_type, private_path};
use crate::signature::{
    check_applied_once, check_body_last, check_debug_handler_below, check_key_arguments,
    check_signature, checks, declaration, is_body_argument, is_debug_handler, is_declaration,
    is_opaque_non_response, is_unit_struct, names_state, not_a_function,
};
use crate::tokens::respan;

/// The whole expansion: check, then rewrite or report.
pub(crate) fn api_key(args: TokenStream, item: TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    let args = attr::parse(args, &mut errors);
    attr::check_combination(&args, &mut errors);
    check_fits(&args, &mut errors);
    let target = if let Ok(handler) = syn::parse2::<Handler>(item.clone()) {
        check_signature(&handler.sig, &mut errors);
        check_applied_once(&handler.attrs, &handler.sig.ident, &mut errors);
        check_key_arguments(&handler.sig, &args, &mut errors);
        check_body_last(&handler.sig, &mut errors);
        check_debug_handler_below(&handler.attrs, &args, &mut errors);
        Some(Target::Handler(handler))
    } else if is_declaration(&item) {
        errors.push(declaration("#[api_key]", &item));
        None
    } else {
        match syn::parse2::<Item>(item.clone()) {
            Ok(Item::Struct(config)) if is_unit_struct(&config) => {
                check_applied_once(&config.attrs, &config.ident, &mut errors);
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
            Ok(other) => {
                errors.push(not_a_function(&other));
                None
            }
            // Not even an item: the compiler reports the syntax error itself, at the real
            // place, when the tokens go out unchanged below.
            Err(_) => None,
        }
    };
    match (errors.into_result(), target) {
        (Ok(()), Some(Target::Handler(handler))) => rewrite(&args, handler),
        (Ok(()), Some(Target::Config(config))) => {
            let config_impl = config_impl(&args, &config.ident, &config.ident);
            quote! { #config #config_impl }
        }
        // The handler goes out beside the errors as the closest valid handler (async, without
        // `const`, `unsafe` or an ABI), so the route that uses it raises no follow-on errors and
        // IDEs keep resolving it; anything else goes out unchanged.
        (Err(error), target) => {
            let error = error.into_compile_error();
            match target {
                Some(Target::Handler(handler)) => {
                    let handler = closest_valid_handler(handler);
                    quote! { #handler #error }
                }
                _ => quote! { #item #error },
            }
        }
        (Ok(()), None) => item,
    }
}

/// A handler refused by an attribute, as the closest valid handler (async, without `const`,
/// `unsafe` or an ABI, its body extractor last, a return that is no response dropped), so that
/// the route that uses it raises no follow-on errors and IDEs keep resolving it.
pub(crate) fn closest_valid_handler(handler: Handler) -> TokenStream {
    let Handler {
        mut attrs,
        vis,
        mut sig,
        mut body,
    } = handler;
    sig.asyncness = Some(Default::default());
    sig.constness = None;
    sig.safety = syn::Safety::Default;
    sig.abi = None;
    // A body extractor goes last, where axum takes it.
    let (reads_body, rest): (Vec<FnArg>, Vec<FnArg>) = std::mem::take(&mut sig.inputs)
        .into_iter()
        .partition(is_body_argument);
    sig.inputs = rest.into_iter().chain(reads_body).collect();
    // A reference, already reported, is taken by value.
    for input in &mut sig.inputs {
        if let FnArg::Typed(typed) = input
            && let syn::Type::Reference(reference) = &*typed.ty
        {
            typed.ty = reference.elem.clone();
        }
    }
    // An `impl Trait` argument, already reported, would leave axum a type to guess: it goes,
    // and the body that used it with it.
    let opaque = |input: &FnArg| matches!(input, FnArg::Typed(typed) if matches!(*typed.ty, syn::Type::ImplTrait(_)));
    if sig.inputs.iter().any(opaque) {
        sig.inputs = std::mem::take(&mut sig.inputs)
            .into_iter()
            .filter(|input| !opaque(input))
            .collect();
        body = proc_macro2::Group::new(
            proc_macro2::Delimiter::Brace,
            quote! { ::core::unreachable!() },
        );
        attrs.push(syn::parse_quote! { #[allow(unused_variables)] });
    }
    // A return that is no response, already reported: the body is kept, but the handler
    // answers `()`.
    if let syn::ReturnType::Type(_, ty) = &sig.output
        && let syn::Type::ImplTrait(opaque) = &**ty
        && is_opaque_non_response(opaque)
    {
        sig.output = syn::ReturnType::Default;
        body = proc_macro2::Group::new(
            proc_macro2::Delimiter::Brace,
            quote! { let _ = async move #body; },
        );
    }
    quote! { #(#attrs)* #vis #sig #body }
}

/// A function as the attribute needs it: everything but the body parsed, the body kept as
/// tokens. A syntax error inside the body is then the compiler's to report, at its place, and
/// the body costs no parsing here.
pub(crate) struct Handler {
    pub(crate) attrs: Vec<syn::Attribute>,
    pub(crate) vis: syn::Visibility,
    pub(crate) sig: Signature,
    pub(crate) body: proc_macro2::Group,
}

impl syn::parse::Parse for Handler {
    fn parse(input: syn::parse::ParseStream<'_>) -> syn::Result<Self> {
        let attrs = input.call(syn::Attribute::parse_outer)?;
        let vis = input.parse()?;
        let sig = input.parse()?;
        let body = input.step(|cursor| match cursor.token_tree() {
            Some((proc_macro2::TokenTree::Group(group), rest))
                if group.delimiter() == proc_macro2::Delimiter::Brace =>
            {
                Ok((group, rest))
            }
            _ => Err(cursor.error("expected the function's body")),
        })?;
        Ok(Self {
            attrs,
            vis,
            sig,
            body,
        })
    }
}

/// What the attribute is on.
enum Target {
    /// An async handler, to protect.
    Handler(Handler),
    /// A unit struct, to make a guard configuration for layers and hand-written extractors.
    Config(syn::ItemStruct),
}

fn rewrite(args: &Args, handler: Handler) -> TokenStream {
    let Handler {
        mut attrs,
        vis,
        sig: original,
        body,
    } = handler;
    pass_state_to_debug_handler(&mut attrs, args);
    let mut sig = original.clone();
    let private = private_path(args);
    // Every configuration is a type of the runtime, shared by every handler configured alike:
    // nothing is defined beside the handler, so the attribute works on an associated function
    // as on a free one.
    let config = config_type(args, &original.ident, &private);
    #[cfg(feature = "openapi")]
    {
        let krate = crate_root(args);
        for attr in attrs.iter_mut().filter(|attr| is_documentation_path(attr)) {
            crate::openapi::document(attr, args, &krate, &config, &private);
        }
    }
    let checks = checks(args, &sig, &private);
    // The store is named only when it is not the default, `ApiKeys`.
    let store = args.store.as_ref().map(|store| {
        let ty = &store.value;
        quote! { , <#ty as #private::IsStore>::Itself }
    });
    // With `store = S`, a type that is no store is reported where it is named, once.
    let at_store = |guard: TokenStream| match &args.store {
        Some(store) => respan(guard, store.span),
        None => guard,
    };
    let guard = at_store(quote! { #private::RequireApiKey<#config #store> });
    match sig.inputs.first_mut() {
        // The guard joins the first argument in a tuple, which axum extracts left to right:
        // it runs first, and the handler keeps its arity, so code that calls it with its own
        // arguments (`#[debug_handler]`'s checks among them) still compiles.
        Some(FnArg::Typed(first)) if first.attrs.is_empty() => {
            let (pat, ty) = (&first.pat, &first.ty);
            *first = syn::parse_quote! { (_, #pat): (#guard, #ty) };
        }
        Some(_) => sig.inputs.insert(0, syn::parse_quote! { _: #guard }),
        // Nothing after the guard reads the request: the key need not be kept for anyone.
        None => {
            let guard = at_store(quote! { #private::GuardAlone<#config #store> });
            sig.inputs.push(syn::parse_quote! { _: #guard });
        }
    }
    #[cfg(feature = "openapi")]
    let checked_body = {
        let order_check = crate::openapi::order_check(
            attrs.iter().any(is_documentation_path),
            &original,
            &private,
        );
        proc_macro2::Group::new(proc_macro2::Delimiter::Brace, quote! { #order_check #body })
    };
    #[cfg(not(feature = "openapi"))]
    let checked_body = body.clone();
    let handler = rewritten_and_documented(
        &attrs,
        &vis,
        (&sig, &checked_body),
        (&original, &body),
        &documentation_note(args),
    );
    quote! {
        #checks
        #handler
    }
}

/// The rewritten handler for the compiler, and the handler as written for documentation, with
/// only the attributes that documentation reads (and a `#[utoipa::path]`, whose `__path_`
/// type documentation needs too).
/// `note` is one line added to the handler's documentation, after its own: what the attribute
/// requires of a request.
pub(crate) fn rewritten_and_documented(
    attrs: &[syn::Attribute],
    vis: &syn::Visibility,
    (rewritten, rewritten_body): (&Signature, &proc_macro2::Group),
    (original, body): (&Signature, &proc_macro2::Group),
    note: &str,
) -> TokenStream {
    let doc_attrs = attrs.iter().filter(|attr| {
        is_documentation_path(attr)
            || [
                "doc",
                "deprecated",
                "must_use",
                "cfg",
                "cfg_attr",
                "allow",
                "expect",
            ]
            .iter()
            .any(|name| attr.path().is_ident(name))
    });
    quote! {
        #[cfg(not(doc))]
        #(#attrs)*
        #vis #rewritten #rewritten_body

        #[cfg(doc)]
        #(#doc_attrs)*
        #[doc = ""]
        #[doc = #note]
        #vis #original #body
    }
}

/// The documentation line of a protected handler: where the key goes, the scopes it must hold,
/// the route's rate limit and the status of a refusal.
fn documentation_note(args: &Args) -> String {
    let mut sources = Vec::new();
    if let Some(header) = &args.header {
        sources.push(format!("the `{}` header", header.value));
    }
    if let Some(query) = &args.query {
        sources.push(format!("the `{}` query parameter", query.value));
    }
    if let Some(cookie) = &args.cookie {
        sources.push(format!("the `{}` cookie", cookie.value));
    }
    if args.bearer.is_some() {
        sources.push("`Authorization: Bearer`".to_owned());
    }
    if sources.is_empty() {
        sources.push(format!("the `{DEFAULT_HEADER}` header"));
    }
    let status = args.status.as_ref().map_or(DEFAULT_STATUS, |s| s.value);
    let mut note = if args.optional.is_some() {
        format!(
            "**API key:** optional, in {}; a wrong one is refused with {status}",
            sources.join(" or ")
        )
    } else {
        format!(
            "**API key:** required, in {}; refused with {status} without a valid one",
            sources.join(" or ")
        )
    };
    if let Some(scopes) = &args.scopes {
        let list: Vec<String> = scopes.value.iter().map(|s| format!("`{s}`")).collect();
        note.push_str(&format!(
            "; the key must hold {} {} (403 otherwise)",
            if list.len() == 1 {
                "the scope"
            } else {
                "the scopes"
            },
            list.join(", ")
        ));
    }
    if let Some(rate) = &args.rate_limit {
        let attr::Rate {
            count,
            period_nanos,
            burst,
            calendar,
        } = rate.value;
        if let Some(calendar) = calendar {
            let window = match calendar {
                attr::Calendar::Day => "calendar day (UTC)",
                attr::Calendar::Month => "calendar month (UTC)",
            };
            note.push_str(&format!(
                "; at most {count} requests each {window} for each key (429 past it)"
            ));
        }
        let period = match period_nanos {
            n if n % 3_600_000_000_000 == 0 => format!("{} h", n / 3_600_000_000_000),
            n if n % 60_000_000_000 == 0 => format!("{} min", n / 60_000_000_000),
            n if n % 1_000_000_000 == 0 => format!("{} s", n / 1_000_000_000),
            n if n % 1_000_000 == 0 => format!("{} ms", n / 1_000_000),
            n => format!("{n} ns"),
        };
        let period = period
            .strip_prefix("1 ")
            .map_or(period.clone(), ToOwned::to_owned);
        if calendar.is_none() {
            note.push_str(&format!(
                "; at most {count} requests per {period} for each key, in bursts of up to \
                 {burst} (429 past it)"
            ));
        }
    }
    if let Some(cost) = &args.cost {
        let credits = if cost.value == 1 { "credit" } else { "credits" };
        note.push_str(&format!(
            "; each request spends {} {credits} of a key that has credits",
            cost.value
        ));
    }
    note.push('.');
    note
}

/// `#[axum::debug_handler]` below `#[api_key]` without a state of its own gets the one given
/// here.
fn pass_state_to_debug_handler(attrs: &mut [syn::Attribute], args: &Args) {
    let Some(state) = &args.state else { return };
    let state = &state.value;
    for attr in attrs
        .iter_mut()
        .filter(|attr| is_debug_handler(attr) && !names_state(attr))
    {
        let path = attr.path().clone();
        match &attr.meta {
            syn::Meta::Path(_) => attr.meta = syn::parse_quote! { #path(state = #state) },
            syn::Meta::List(list) => {
                let tokens = &list.tokens;
                attr.meta = syn::parse_quote! { #path(state = #state, #tokens) };
            }
            syn::Meta::NameValue(_) => {}
        }
    }
}

/// Whether `attr` is a `#[utoipa::path(...)]`, which documentation builds need as well.
pub(crate) fn is_documentation_path(attr: &syn::Attribute) -> bool {
    let segments: Vec<String> = attr
        .path()
        .segments
        .iter()
        .map(|segment| segment.ident.to_string())
        .collect();
    segments == ["utoipa", "path"]
        || (segments == ["path"] && matches!(attr.meta, syn::Meta::List(_)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expand(args: &str, item: &str) -> String {
        let args: TokenStream = args.parse().expect("arguments");
        let item: TokenStream = item.parse().expect("item");
        api_key(args, item).to_string()
    }

    #[test]
    fn documentation_says_what_a_request_needs_in_one_line() {
        let expanded = expand(
            r#"header = "x-partner-key", bearer, scopes = ["orders:read", "orders:write"], rate_limit = "100/min burst 10", status = 403"#,
            "/// Lists orders.\nasync fn orders() -> String { String::new() }",
        );
        let note = "**API key:** required, in the `x-partner-key` header or \
                    `Authorization: Bearer`; refused with 403 without a valid one; the key must \
                    hold the scopes `orders:read`, `orders:write` (403 otherwise); at most 100 \
                    requests per min for each key, in bursts of up to 10 (429 past it).";
        let documented = expanded
            .split("# [cfg (doc)]")
            .nth(1)
            .expect("a documentation copy");
        assert!(documented.contains(&format!("{note:?}")), "{documented}");
        assert!(documented.contains("\" Lists orders.\""), "{documented}");
        let compiled = expanded.split("# [cfg (doc)]").next().unwrap_or_default();
        assert!(!compiled.contains("API key:"), "{compiled}");
    }

    #[test]
    fn an_optional_key_is_documented_as_optional() {
        let expanded = expand(
            r#"optional, query = "key", rate_limit = "5/2s""#,
            "async fn maybe() {}",
        );
        let note = "**API key:** optional, in the `key` query parameter; a wrong one is refused \
                    with 401; at most 5 requests per 2 s for each key, in bursts of up to 5 (429 \
                    past it).";
        assert!(expanded.contains(&format!("{note:?}")), "{expanded}");
    }

    #[test]
    fn nothing_is_defined_beside_a_handler_without_checks() {
        let expanded = expand("", "async fn plain() -> &'static str { \"\" }");
        assert!(!expanded.contains("enum"), "{expanded}");
        assert!(!expanded.contains("__api_key_checks"), "{expanded}");
        let checked = expand("", "async fn custom() -> Reply { Reply }");
        assert!(checked.contains("__api_key_checks_custom"), "{checked}");
    }
}
