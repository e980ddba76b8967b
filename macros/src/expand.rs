//! Checking the annotated item and rewriting the handler.
//!
//! The handler gets one extra first argument, the runtime's verifying extractor, parameterised by
//! a zero-sized config type generated beside it. Everything else about the function is kept.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote};
use syn::spanned::Spanned;
use syn::{FnArg, Item, ItemFn, LitInt, LitStr, Path, Signature};

use crate::attr::{self, Args, DEFAULT_HEADER, DEFAULT_STATUS, Errors};

/// The whole expansion: check, then rewrite or report.
pub(crate) fn api_key(args: TokenStream, item: TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    let args = attr::parse(args, &mut errors);
    let function = match syn::parse2::<ItemFn>(item.clone()) {
        Ok(function) => Some(function),
        Err(_) => {
            errors.push(not_a_function(&item));
            None
        }
    };
    if let Some(function) = &function {
        check_signature(&function.sig, &mut errors);
    }
    match (errors.into_result(), function) {
        (Ok(()), Some(function)) => rewrite(args, function),
        // The item goes out unchanged beside the errors, so the route that uses it raises no
        // follow-on errors and IDEs keep resolving it.
        (Err(error), _) => {
            let error = error.into_compile_error();
            quote! { #item #error }
        }
        (Ok(()), None) => item,
    }
}

fn not_a_function(item: &TokenStream) -> syn::Error {
    const MESSAGE: &str = "#[api_key] protects an async handler function; put it on the `async fn` \
                           that handles the route";
    let Ok(item) = syn::parse2::<Item>(item.clone()) else {
        return syn::Error::new(Span::call_site(), MESSAGE);
    };
    let (what, span) = match &item {
        Item::Struct(item) => ("a struct", item.struct_token.span),
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
    if let Some(FnArg::Receiver(receiver)) = sig.inputs.first() {
        errors.push(syn::Error::new(
            receiver.self_token.span,
            "a handler cannot take `self`; axum handlers are free functions or associated \
             functions without a receiver, so pass what you need as state with `State<T>`",
        ));
    }
}

fn rewrite(args: Args, function: ItemFn) -> TokenStream {
    let Args {
        header,
        status,
        krate,
    } = args;
    let ItemFn {
        attrs,
        vis,
        mut sig,
        block,
    } = function;

    let krate = krate.map_or_else(|| syn::parse_quote!(::axum_api_key), |k| k.value);
    // Generated literals keep the span of the user's, so anything said about them points there.
    let header = header.map_or_else(
        || LitStr::new(DEFAULT_HEADER, Span::call_site()),
        |h| LitStr::new(&h.value, h.span),
    );
    let status = status.map_or_else(
        || LitInt::new(&DEFAULT_STATUS.to_string(), Span::call_site()),
        |s| LitInt::new(&s.value.to_string(), s.span),
    );
    let config = config_type_name(&sig);

    let guard = guard_argument(&krate, &config);
    sig.inputs.insert(0, guard);

    quote! {
        #[doc(hidden)]
        #[allow(non_camel_case_types)]
        #vis enum #config {}

        impl #krate::__private::KeyConfig for #config {
            const HEADER: #krate::__private::HeaderName =
                #krate::__private::HeaderName::from_static(#header);
            const STATUS: u16 = #status;
        }

        #(#attrs)*
        #vis #sig #block
    }
}

/// `__api_key_config_<handler>`: unique per handler in its module, and an empty enum so that it
/// takes no name in the value namespace.
fn config_type_name(sig: &Signature) -> syn::Ident {
    let name = sig.ident.to_string();
    let name = name.strip_prefix("r#").unwrap_or(&name);
    format_ident!("__api_key_config_{}", name, span = sig.ident.span())
}

fn guard_argument(krate: &Path, config: &syn::Ident) -> FnArg {
    let span = Span::call_site();
    syn::parse_quote_spanned! {span=>
        _: #krate::__private::Guard<#config>
    }
}
