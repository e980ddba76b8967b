//! What a handler's signature must be for the guard to go first: an async function, its body
//! extractor last, its key arguments matching `optional`, a response it can serve; and the
//! compile-time checks generated beside it for what only the compiler can tell.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote};
use syn::spanned::Spanned;
use syn::{FnArg, Item, Signature};

use crate::attr::{Args, Errors};
use crate::tokens::{respan, written};

/// Extractors that read the request's body, which axum runs last: one anywhere else is an
/// error at that argument, rather than an unsatisfied bound naming the rewritten first argument.
const BODY_EXTRACTORS: &[&str] = &[
    "Json",
    "Form",
    "Bytes",
    "String",
    "Request",
    "Multipart",
    "RawForm",
    "Body",
];

pub(crate) fn check_body_last(sig: &Signature, errors: &mut Errors) {
    let count = sig.inputs.len();
    for input in sig.inputs.iter().take(count.saturating_sub(1)) {
        let FnArg::Typed(typed) = input else { continue };
        if let Some(name) = body_extractor(&typed.ty) {
            errors.push(syn::Error::new_spanned(
                &typed.ty,
                format!(
                    "`{name}` reads the request body, so it must be the handler's last argument; \
                     move it after the others"
                ),
            ));
        }
    }
}

pub(crate) fn is_body_argument(input: &FnArg) -> bool {
    matches!(input, FnArg::Typed(typed) if body_extractor(&typed.ty).is_some())
}

/// The name of the body extractor `ty` is, if it is one.
fn body_extractor(ty: &syn::Type) -> Option<&syn::Ident> {
    let syn::Type::Path(path) = ty else {
        return None;
    };
    let last = path.path.segments.last()?;
    BODY_EXTRACTORS
        .iter()
        .any(|name| last.ident == name)
        .then_some(&last.ident)
}

/// `#[axum::debug_handler]` below `#[api_key]` checks the rewritten handler, whose guard takes
/// the key store from the router state: it must know that state. With `state = …` here it is
/// passed on; without it, the error says what to write.
pub(crate) fn check_debug_handler_below(
    attrs: &[syn::Attribute],
    args: &Args,
    errors: &mut Errors,
) {
    let Some(debug) = attrs.iter().find(|attr| is_debug_handler(attr)) else {
        return;
    };
    if !names_state(debug) && args.state.is_none() {
        errors.push(syn::Error::new_spanned(
            debug,
            "below #[api_key], #[axum::debug_handler] checks the guard, which takes the key store \
             from the router state: tell it the state, `#[axum::debug_handler(state = AppState)]` \
             (or `state = AppState` in #[api_key]), or put #[axum::debug_handler] above #[api_key]",
        ));
    }
}

pub(crate) fn is_debug_handler(attr: &syn::Attribute) -> bool {
    is_attribute(attr, "debug_handler")
}

/// Whether `attr` is `name`, under any path (`#[name]`, `#[some::name]`).
fn is_attribute(attr: &syn::Attribute, name: &str) -> bool {
    attr.path()
        .segments
        .last()
        .is_some_and(|segment| segment.ident == name)
}

/// Whether a `#[debug_handler(...)]` names its state.
pub(crate) fn names_state(attr: &syn::Attribute) -> bool {
    match &attr.meta {
        syn::Meta::List(list) => {
            list.tokens.clone().into_iter().any(
                |token| matches!(token, proc_macro2::TokenTree::Ident(ident) if ident == "state"),
            )
        }
        _ => false,
    }
}

/// A second `#[api_key]` below the first: the handler would get two guards and two generated
/// types of the same name.
pub(crate) fn check_applied_once(attrs: &[syn::Attribute], name: &syn::Ident, errors: &mut Errors) {
    let again = attrs.iter().find(|attr| is_attribute(attr, "api_key"));
    if let Some(again) = again {
        errors.push(syn::Error::new_spanned(
            again,
            format!(
                "#[api_key] is applied twice to `{name}`; keep one and put every argument in it"
            ),
        ));
    }
}

pub(crate) fn is_unit_struct(item: &syn::ItemStruct) -> bool {
    matches!(item.fields, syn::Fields::Unit) && item.generics.params.is_empty()
}

/// The key arguments must match `optional`, in both directions: with it, a request may come
/// without a key, so a bare `VerifiedKey` would have nothing to hold; without it, every request
/// that reaches the handler has a key, so `Option<VerifiedKey>` would always be `Some`. Spellings
/// the macro cannot see (a type alias, a struct extractor) are safe at run time: a keyless
/// request is then refused as one without a key.
pub(crate) fn check_key_arguments(sig: &Signature, args: &Args, errors: &mut Errors) {
    if args.broken.iter().any(|name| name == "optional") {
        return;
    }
    let mut found = Vec::new();
    for input in &sig.inputs {
        if let FnArg::Typed(typed) = input {
            key_types(&typed.ty, &mut found);
        }
    }
    for (ty, wrapped) in found {
        match (&args.optional, wrapped) {
            (Some(optional), false) => {
                let mut error = syn::Error::new_spanned(
                    ty,
                    "with `optional`, a request may come without a key: take `Option<VerifiedKey>`",
                );
                error.combine(syn::Error::new(
                    optional.span,
                    "the key is made optional here",
                ));
                errors.push(error);
            }
            (None, true) => {
                let always = if wrapper_of(ty) == Some("Result") {
                    "`Ok`"
                } else {
                    "`Some`"
                };
                errors.push(syn::Error::new_spanned(
                    ty,
                    format!(
                        "without `optional`, every request that reaches this handler has a key, \
                         so this is always {always}: take `VerifiedKey`, or write \
                         `#[api_key(optional)]` to let requests without a key in"
                    ),
                ));
            }
            _ => {}
        }
    }
}

/// The `VerifiedKey` types an argument's type names, directly or in a tuple, each with whether
/// it is wrapped in `Option` (or `Result`, axum's other form of an extractor that may fail).
fn key_types<'a>(ty: &'a syn::Type, found: &mut Vec<(&'a syn::Type, bool)>) {
    match ty {
        syn::Type::Paren(inner) => key_types(&inner.elem, found),
        syn::Type::Group(inner) => key_types(&inner.elem, found),
        syn::Type::Tuple(tuple) => tuple.elems.iter().for_each(|elem| key_types(elem, found)),
        syn::Type::Path(_) if is_verified_key(ty) => found.push((ty, false)),
        syn::Type::Path(path) => {
            let Some(last) = path.path.segments.last() else {
                return;
            };
            let syn::PathArguments::AngleBracketed(generics) = &last.arguments else {
                return;
            };
            // `Option<VerifiedKey>`, or axum's `Result<VerifiedKey, Rejection>` form.
            if (last.ident == "Option" || last.ident == "Result")
                && let Some(syn::GenericArgument::Type(inner)) = generics.args.first()
                && is_verified_key(inner)
            {
                found.push((ty, true));
            }
        }
        _ => {}
    }
}

/// `Option` or `Result`, for a type that wraps the key in one.
fn wrapper_of(ty: &syn::Type) -> Option<&'static str> {
    let syn::Type::Path(path) = ty else {
        return None;
    };
    match path.path.segments.last()?.ident.to_string().as_str() {
        "Option" => Some("Option"),
        "Result" => Some("Result"),
        _ => None,
    }
}

fn is_verified_key(ty: &syn::Type) -> bool {
    let syn::Type::Path(path) = ty else {
        return false;
    };
    path.path
        .segments
        .last()
        .is_some_and(|last| last.ident == "VerifiedKey" && last.arguments.is_empty())
}

pub(crate) fn not_a_function(item: &Item) -> syn::Error {
    not_a_function_of(
        "#[api_key] protects an async handler function; put it on the `async fn` that handles \
         the route, or on a unit struct (`struct ApiAccess;`) to define a guard for a router layer",
        item,
    )
}

/// Whether `item` is a function without a body: a method declared in a trait.
pub(crate) fn is_declaration(item: &TokenStream) -> bool {
    syn::parse2::<syn::TraitItemFn>(item.clone()).is_ok_and(|method| method.default.is_none())
}

/// A method declared in a trait, with nothing to protect: the error, at its `fn`.
pub(crate) fn declaration(attribute: &str, item: &TokenStream) -> syn::Error {
    let span = syn::parse2::<syn::TraitItemFn>(item.clone())
        .map_or_else(|_| Span::call_site(), |method| method.sig.fn_token.span);
    syn::Error::new(
        span,
        format!(
            "{attribute} goes on a handler's body, and a method declared in a trait has none; \
             put it on an `async fn` with a body that a route uses: a free function, or one in \
             an inherent `impl` block"
        ),
    )
}

/// That `item` is no handler, in the words of `MESSAGE`, at the item's keyword.
pub(crate) fn not_a_function_of(message: &str, item: &Item) -> syn::Error {
    let (what, span) = match item {
        Item::Struct(item) if is_unit_struct(item) => ("a struct", item.struct_token.span),
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
    syn::Error::new(span, format!("{message}, not on {what}"))
}

pub(crate) fn check_signature(sig: &Signature, errors: &mut Errors) {
    check_signature_of("#[api_key]", sig, errors);
}

/// The checks of [`check_signature`], for the attribute named `attribute`.
pub(crate) fn check_signature_of(attribute: &str, sig: &Signature, errors: &mut Errors) {
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
                "{attribute} needs an async handler: write `async fn {}(...)`",
                sig.ident
            ),
        ));
    }
    if let syn::Safety::Unsafe(token) = &sig.safety {
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
    if let syn::ReturnType::Type(_, ty) = &sig.output
        && let syn::Type::ImplTrait(opaque) = &**ty
    {
        check_opaque_response(opaque, errors);
    }
    // Arguments that are no extractor: a reference (axum builds every argument and hands it
    // over), or `impl Trait` (a type axum cannot pick).
    for input in &sig.inputs {
        let FnArg::Typed(typed) = input else { continue };
        let message = match &*typed.ty {
            syn::Type::Reference(reference) => {
                let inner = &reference.elem;
                format!(
                    "a handler's arguments are extractors that axum builds and hands over, so \
                     they are taken by value: write `{}`, not a reference",
                    written(&quote!(#inner))
                )
            }
            syn::Type::ImplTrait(opaque) => {
                let bounds = &opaque.bounds;
                format!(
                    "a handler's arguments are extractors, types axum builds from the request, \
                     and `impl {}` names none: take the type itself (`String`, `Json<T>`, \
                     `Path<T>`, ...)",
                    written(&quote!(#bounds))
                )
            }
            _ => continue,
        };
        errors.push(syn::Error::new_spanned(&typed.ty, message));
    }
    if let Some(FnArg::Receiver(receiver)) = sig.inputs.first() {
        errors.push(syn::Error::new(
            receiver.self_token.span,
            "a handler cannot take `self`; axum handlers are free functions or associated \
             functions without a receiver, so pass what you need as state with `State<T>`",
        ));
    }
}

/// `-> impl Trait` is a response only if `IntoResponse` is among its bounds (or implied by one
/// of the user's traits): an opaque type shows nothing else. A return whose bounds are all
/// traits known not to imply it (`Display`, `Serialize`, `Debug`, ...) can never serve a route.
fn check_opaque_response(opaque: &syn::TypeImplTrait, errors: &mut Errors) {
    if is_opaque_non_response(opaque) {
        let bounds = &opaque.bounds;
        errors.push(syn::Error::new_spanned(
            opaque,
            format!(
                "`impl {}` is not a response, so the handler cannot serve a route: return \
                 `impl IntoResponse` (from `axum::response`), or a type that implements it",
                written(&quote!(#bounds))
            ),
        ));
    }
}

/// Whether every bound of `opaque` is a trait known not to imply `IntoResponse`.
pub(crate) fn is_opaque_non_response(opaque: &syn::TypeImplTrait) -> bool {
    const NOT_RESPONSES: &[&str] = &[
        "Display",
        "Debug",
        "Serialize",
        "ToString",
        "Into",
        "AsRef",
        "Clone",
        "Send",
        "Sync",
        "Unpin",
        "Future",
        "Iterator",
        "Default",
        "PartialEq",
        "Eq",
        "Hash",
        "Copy",
        "Sized",
    ];
    let mut traits = opaque.bounds.iter().filter_map(|bound| match bound {
        syn::TypeParamBound::Trait(bound) => bound.path.segments.last(),
        _ => None,
    });
    traits.clone().next().is_some()
        && traits.all(|last| NOT_RESPONSES.iter().any(|name| last.ident == name))
}

/// Checks of what the handler names, reported at the user's tokens in our words rather than as
/// an unsatisfied `Handler` bound at the route: that its return type is a response, and with
/// `state = T` that `T` provides the store. One hidden function, type-checked and never called,
/// emitted only when there is something to check; it takes the handler's generics, so that
/// what it checks may name them, and is a function so that an `impl` block may hold it too.
pub(crate) fn checks(args: &Args, sig: &Signature, private: &TokenStream) -> TokenStream {
    let mut checks = Vec::new();
    let store = match &args.store {
        Some(store) => {
            let store = &store.value;
            quote! { #store }
        }
        None => quote! { #private::ApiKeys },
    };
    if let syn::ReturnType::Type(_, ty) = &sig.output
        && !mentions_impl_trait(ty)
        && !names_type_parameter(ty, &sig.generics)
        && !is_plain_response(ty)
    {
        checks.push(respan(
            quote! { #private::check_response::<#ty>(); },
            ty.span(),
        ));
    }
    if let Some(state) = &args.state {
        let state = &state.value;
        checks.push(respan(
            quote! {
                #private::check_store_in_state::<#store, #state>();
            },
            state.span(),
        ));
    }
    if checks.is_empty() {
        return TokenStream::new();
    }
    let name = sig.ident.to_string();
    let name = format_ident!(
        "__api_key_checks_{}",
        name.strip_prefix("r#").unwrap_or(&name),
        span = Span::mixed_site()
    );
    let (generics, _, where_clause) = sig.generics.split_for_impl();
    quote! {
        #[doc(hidden)]
        #[allow(dead_code, non_snake_case)]
        fn #name #generics () #where_clause { #(#checks)* }
    }
}

/// Return types that are responses whatever else is in scope: nothing to check.
fn is_plain_response(ty: &syn::Type) -> bool {
    match ty {
        syn::Type::Tuple(tuple) => tuple.elems.is_empty(),
        syn::Type::Reference(reference) => {
            reference.mutability.is_none()
                && matches!(&*reference.elem, syn::Type::Path(path) if path.qself.is_none() && path.path.is_ident("str"))
        }
        syn::Type::Path(path) => {
            path.qself.is_none()
                && path.path.segments.last().is_some_and(|last| {
                    last.arguments.is_empty()
                        && ["String", "StatusCode"]
                            .iter()
                            .any(|name| last.ident == name)
                })
        }
        _ => false,
    }
}

/// Whether `ty` names one of `generics`' type or const parameters.
fn names_type_parameter(ty: &syn::Type, generics: &syn::Generics) -> bool {
    let parameters: Vec<&syn::Ident> = generics
        .params
        .iter()
        .filter_map(|param| match param {
            syn::GenericParam::Type(param) => Some(&param.ident),
            syn::GenericParam::Const(param) => Some(&param.ident),
            syn::GenericParam::Lifetime(_) => None,
        })
        .collect();
    fn names(tokens: TokenStream, parameters: &[&syn::Ident]) -> bool {
        tokens.into_iter().any(|token| match token {
            proc_macro2::TokenTree::Ident(ident) => parameters.iter().any(|p| **p == ident),
            proc_macro2::TokenTree::Group(group) => names(group.stream(), parameters),
            _ => false,
        })
    }
    !parameters.is_empty() && names(quote!(#ty), &parameters)
}

pub(crate) fn mentions_impl_trait(ty: &syn::Type) -> bool {
    fn has_impl(tokens: TokenStream) -> bool {
        tokens.into_iter().any(|token| match token {
            proc_macro2::TokenTree::Ident(ident) => ident == "impl",
            proc_macro2::TokenTree::Group(group) => has_impl(group.stream()),
            _ => false,
        })
    }
    has_impl(quote!(#ty))
}
