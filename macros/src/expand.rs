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

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote};
use syn::spanned::Spanned;
use syn::{FnArg, Item, LitInt, LitStr, Signature};

use crate::attr::{self, Args, DEFAULT_HEADER, DEFAULT_STATUS, Errors, WithSpan};

/// The whole expansion: check, then rewrite or report.
pub(crate) fn api_key(args: TokenStream, item: TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    let args = attr::parse(args, &mut errors);
    attr::check_combination(&args, &mut errors);
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
fn check_debug_handler_below(attrs: &[syn::Attribute], args: &Args, errors: &mut Errors) {
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

fn is_debug_handler(attr: &syn::Attribute) -> bool {
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
fn names_state(attr: &syn::Attribute) -> bool {
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

/// What the attribute is on.
enum Target {
    /// An async handler, to protect.
    Handler(Handler),
    /// A unit struct, to make a guard configuration for layers and hand-written extractors.
    Config(syn::ItemStruct),
}

fn is_unit_struct(item: &syn::ItemStruct) -> bool {
    matches!(item.fields, syn::Fields::Unit) && item.generics.params.is_empty()
}

/// The key arguments must match `optional`, in both directions: with it, a request may come
/// without a key, so a bare `VerifiedKey` would have nothing to hold; without it, every request
/// that reaches the handler has a key, so `Option<VerifiedKey>` would always be `Some`. Spellings
/// the macro cannot see (a type alias, a struct extractor) are safe at run time: a keyless
/// request is then refused as one without a key.
fn check_key_arguments(sig: &Signature, args: &Args, errors: &mut Errors) {
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

/// Tokens as a person writes them: `Into<String>`, not `Into < String >`.
pub(crate) fn written(tokens: &TokenStream) -> String {
    let mut text = tokens.to_string();
    for (spaced, tight) in [
        (" :: ", "::"),
        (":: ", "::"),
        (" <", "<"),
        ("< ", "<"),
        (" >", ">"),
        (" ,", ","),
        ("& ", "&"),
        ("[ ", "["),
        (" ]", "]"),
        ("( ", "("),
        (" )", ")"),
        (" ;", ";"),
    ] {
        text = text.replace(spaced, tight);
    }
    text
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
fn is_opaque_non_response(opaque: &syn::TypeImplTrait) -> bool {
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
        let order_check = crate::openapi::order_check(&attrs, &original, &private);
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

/// Checks of what the handler names, reported at the user's tokens in our words rather than as
/// an unsatisfied `Handler` bound at the route: that its return type is a response, and with
/// `state = T` that `T` provides the store. One hidden function, type-checked and never called,
/// emitted only when there is something to check; it takes the handler's generics, so that
/// what it checks may name them, and is a function so that an `impl` block may hold it too.
fn checks(args: &Args, sig: &Signature, private: &TokenStream) -> TokenStream {
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

/// `tokens` with every span set to `span`, so that errors in them point at the user's code.
pub(crate) fn respan(tokens: TokenStream, span: Span) -> TokenStream {
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

/// The runtime crate's path: `crate = …`, or `::axum_api_key`.
#[cfg(feature = "openapi")]
fn crate_root(args: &Args) -> TokenStream {
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
fn private_path(args: &Args) -> TokenStream {
    match &args.krate {
        Some(krate) => {
            let path = &krate.value;
            respan(quote! { #path::__private }, krate.span)
        }
        None => quote! { ::axum_api_key::__private },
    }
}

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
fn config_type(args: &Args, handler: &syn::Ident, private: &TokenStream) -> TokenStream {
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
fn config_impl(args: &Args, ty: &syn::Ident, route: &syn::Ident) -> TokenStream {
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
