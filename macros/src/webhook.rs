//! `#[webhook(...)]`: parsing its arguments, checking the handler, and rewriting it so that a
//! signature guard runs first and the body it verified is the one the handler gets.

use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::parse::Parser;
use syn::{Expr, FnArg, Lit, Meta};

use crate::attr::{
    Argument, Errors, Syntax, WithSpan, crate_path, list, nearest, parse_arguments, set_once,
    string_literal, type_path, value_of,
};
use crate::expand::{Handler, closest_valid_handler, rewritten_and_documented};
use crate::signature::{
    check_body_last, check_signature_of, declaration, is_declaration, mentions_impl_trait,
    not_a_function_of,
};

const ARGUMENTS: &[&str] = &["scheme", "tolerance", "max_body", "secrets", "crate"];
const SCHEMES: &[&str] = &["standard", "github", "stripe"];

#[derive(Default)]
struct Args {
    scheme: Option<WithSpan<String>>,
    tolerance: Option<WithSpan<u64>>,
    max_body: Option<WithSpan<u64>>,
    secrets: Option<WithSpan<syn::Type>>,
    krate: Option<WithSpan<syn::Path>>,
}

pub(crate) fn webhook(args: TokenStream, item: TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    let args = parse(args, &mut errors);
    if args.scheme.is_none() && !errors.has_errors() {
        errors.push(syn::Error::new(
            Span::call_site(),
            "#[webhook] needs the sender's scheme: `#[webhook(scheme = \"standard\")]`, \
             `\"github\"` or `\"stripe\"`",
        ));
    }
    // An argument that means nothing for the scheme is a mistake, never silently ignored.
    if let (Some(scheme), Some(tolerance)) = (&args.scheme, &args.tolerance)
        && scheme.value == "github"
    {
        errors.push(syn::Error::new(
            tolerance.span,
            "GitHub signs no timestamp, so `tolerance` means nothing for `scheme = \"github\"`; \
             remove it (GitHub deliveries cannot be checked for age or replay)",
        ));
    }
    let handler = match syn::parse2::<Handler>(item.clone()) {
        Ok(handler) => {
            check_signature_of("#[webhook]", &handler.sig, &mut errors);
            check_debug_handler_below_webhook(&handler.attrs, &mut errors);
            check_body_last(&handler.sig, &mut errors);
            if let Some(again) = handler.attrs.iter().find(|attr| {
                attr.path()
                    .segments
                    .last()
                    .is_some_and(|s| s.ident == "webhook")
            }) {
                errors.push(syn::Error::new_spanned(
                    again,
                    "#[webhook] is applied twice; keep one and put every argument in it",
                ));
            }
            Some(handler)
        }
        Err(_) if is_declaration(&item) => {
            errors.push(declaration("#[webhook]", &item));
            None
        }
        Err(_) => {
            if let Ok(other) = syn::parse2::<syn::Item>(item.clone()) {
                errors.push(not_a_function_of(
                    "#[webhook] verifies a signed request before an async handler runs; put it \
                     on the `async fn` that handles the webhook's route",
                    &other,
                ));
            }
            None
        }
    };
    match (errors.into_result(), handler) {
        (Ok(()), Some(handler)) => rewrite(&args, handler),
        (Err(error), handler) => {
            let error = error.into_compile_error();
            match handler {
                Some(handler) => {
                    let handler = closest_valid_handler(handler);
                    quote! { #handler #error }
                }
                None => quote! { #item #error },
            }
        }
        (Ok(()), None) => item,
    }
}

/// How `#[webhook]`'s arguments are written: `secrets` takes a type, generic ones included.
const SYNTAX: Syntax = Syntax {
    types: &[("secrets", "secrets = PartnerSecrets")],
    example: "#[webhook(scheme = \"standard\", tolerance = 300)]",
    positional: "scheme",
};

fn parse(tokens: TokenStream, errors: &mut Errors) -> Args {
    let mut args = Args::default();
    let parser = |input: syn::parse::ParseStream<'_>| parse_arguments(input, &SYNTAX);
    let arguments = match parser.parse2(tokens) {
        Ok(arguments) => arguments,
        Err(error) => vec![Err(error)],
    };
    for argument in arguments {
        let result = match argument {
            Err(error) => Err(error),
            Ok(Argument::Meta(meta)) => parse_one(&meta, &mut args),
            Ok(Argument::Type(path, ty)) => type_path(&ty, "secrets = PartnerSecrets")
                .and_then(|secrets| not_secrets(&secrets.value).map_or(Ok(secrets), Err))
                .and_then(|secrets| set_once(&mut args.secrets, secrets, &path)),
        };
        if let Err(error) = result {
            errors.push(error);
        }
    }
    args
}

/// Types that plainly hold no secrets the guard can use, told at the mistake: text (a secret
/// belongs in the router state, not in a type), or a wrapper of a source.
fn not_secrets(ty: &syn::Type) -> Option<syn::Error> {
    let syn::Type::Path(path) = ty else {
        return None;
    };
    let last = path.path.segments.last()?;
    let inner = match &last.arguments {
        syn::PathArguments::AngleBracketed(generics) => {
            generics.args.iter().find_map(|arg| match arg {
                syn::GenericArgument::Type(inner) => Some(crate::tokens::written(&quote!(#inner))),
                _ => None,
            })
        }
        _ => None,
    };
    let name = last.ident.to_string();
    let message = match (name.as_str(), inner) {
        ("Arc" | "Rc" | "Box" | "Option", Some(inner)) => format!(
            "name the source itself, `secrets = {inner}`: the router state holds it and each \
             request clones it, so it needs no `{name}`"
        ),
        ("String" | "str" | "Vec" | "Bytes", _) => format!(
            "`{name}` is not a source of webhook secrets: `secrets` names a type in the router \
             state that implements `SecretSource`, such as `WebhookSecrets` (the default), \
             loaded with the secret at start"
        ),
        _ => return None,
    };
    Some(syn::Error::new_spanned(ty, message))
}

fn parse_one(meta: &Meta, args: &mut Args) -> syn::Result<()> {
    let path = meta.path();
    let name = path
        .get_ident()
        .map(ToString::to_string)
        .unwrap_or_default();
    match name.as_str() {
        "scheme" => {
            let value = value_of(meta, "scheme = \"standard\"")?;
            let Some(lit) = string_literal(value) else {
                return Err(syn::Error::new_spanned(
                    value,
                    "expected the scheme as a string literal: `\"standard\"`, `\"github\"` or `\"stripe\"`",
                ));
            };
            let scheme = lit.value();
            if !SCHEMES.contains(&scheme.as_str()) {
                let hint = nearest(&scheme.to_ascii_lowercase(), SCHEMES)
                    .map(|near| format!(" did you mean `\"{near}\"`?"))
                    .unwrap_or_default();
                return Err(syn::Error::new_spanned(
                    lit,
                    format!(
                        "unknown scheme `{scheme}`;{hint} the schemes are `\"standard\"` \
                         (Standard Webhooks), `\"github\"` and `\"stripe\"`"
                    ),
                ));
            }
            set_once(
                &mut args.scheme,
                WithSpan {
                    value: scheme,
                    span: lit.span(),
                },
                path,
            )
        }
        "tolerance" => {
            let value = value_of(meta, "tolerance = 300")?;
            let seconds = positive_integer(
                value,
                "tolerance",
                "seconds, e.g. `tolerance = 300`",
                86_400,
            )?;
            set_once(&mut args.tolerance, seconds, path)
        }
        "max_body" => {
            let value = value_of(meta, "max_body = 1048576")?;
            let bytes = positive_integer(
                value,
                "max_body",
                "bytes, e.g. `max_body = 1048576`",
                1 << 30,
            )?;
            set_once(&mut args.max_body, bytes, path)
        }
        // `secrets = Type` is parsed as a type before this; only the bare name is left.
        "secrets" => Err(syn::Error::new_spanned(
            path,
            "this argument needs a value: `secrets = PartnerSecrets`",
        )),
        "crate" => {
            let value = value_of(meta, "crate = ::my_crate::axum_api_key")?;
            let krate = crate_path(value)?;
            set_once(&mut args.krate, krate, path)
        }
        _ => {
            let valid = list(ARGUMENTS);
            let message = match nearest(&name, ARGUMENTS) {
                Some(near) => format!(
                    "unknown argument `{name}`; did you mean `{near}`?\nvalid arguments are {valid}"
                ),
                None => format!("unknown argument `{name}`; valid arguments are {valid}"),
            };
            Err(syn::Error::new_spanned(path, message))
        }
    }
}

/// A whole number from 1 to `max`, as an integer literal.
/// `#[axum::debug_handler]` below `#[webhook]` checks the rewritten handler, whose extractors
/// take the secrets from the router state: it must be told that state.
fn check_debug_handler_below_webhook(attrs: &[syn::Attribute], errors: &mut Errors) {
    let debug = attrs.iter().find(|attr| {
        attr.path()
            .segments
            .last()
            .is_some_and(|segment| segment.ident == "debug_handler")
    });
    let Some(debug) = debug else { return };
    let names_state = matches!(&debug.meta, Meta::List(list) if list.tokens.clone().into_iter().any(
        |token| matches!(token, proc_macro2::TokenTree::Ident(ident) if ident == "state")
    ));
    if !names_state {
        errors.push(syn::Error::new_spanned(
            debug,
            "below #[webhook], #[axum::debug_handler] checks the signature's extractors, which \
             take the secrets from the router state: tell it the state, \
             `#[axum::debug_handler(state = WebhookSecrets)]` (or your state type), or put \
             #[axum::debug_handler] above #[webhook]",
        ));
    }
}

fn positive_integer(value: &Expr, name: &str, unit: &str, max: u64) -> syn::Result<WithSpan<u64>> {
    let Expr::Lit(syn::ExprLit {
        lit: Lit::Int(lit), ..
    }) = value
    else {
        return Err(syn::Error::new_spanned(
            value,
            format!("`{name}` is an integer literal in {unit}; it is checked at compile time"),
        ));
    };
    if !lit.suffix().is_empty() {
        return Err(syn::Error::new_spanned(
            lit,
            format!(
                "`{name}` is a plain integer: write `{name} = {}`, without the `{}` suffix",
                lit.base10_digits(),
                lit.suffix()
            ),
        ));
    }
    let number = lit
        .base10_parse::<u64>()
        .ok()
        .filter(|n| (1..=max).contains(n))
        .ok_or_else(|| {
            syn::Error::new_spanned(
                lit,
                format!("`{name}` is a whole number from 1 to {max}, in {unit}"),
            )
        })?;
    Ok(WithSpan {
        value: number,
        span: lit.span(),
    })
}

fn rewrite(args: &Args, handler: Handler) -> TokenStream {
    let Handler {
        attrs,
        vis,
        sig: original,
        body,
    } = handler;
    let krate = match &args.krate {
        Some(krate) => {
            let path = &krate.value;
            quote! { #path }
        }
        None => quote! { ::axum_api_key },
    };
    let webhook = quote! { #krate::webhook };
    let scheme: u8 = match args.scheme.as_ref().map(|s| s.value.as_str()) {
        Some("github") => 1,
        Some("stripe") => 2,
        _ => 0,
    };
    let tolerance = args.tolerance.as_ref().map_or(300, |t| t.value);
    let max_body = args.max_body.as_ref().map_or(1 << 20, |m| m.value);
    let max_body =
        proc_macro2::Literal::usize_suffixed(usize::try_from(max_body).unwrap_or(usize::MAX));
    let tolerance = proc_macro2::Literal::u64_suffixed(tolerance);
    let scheme_number = scheme;
    let scheme = proc_macro2::Literal::u8_suffixed(scheme);
    // A type that is no source of secrets is reported where it is named, once.
    let secrets = match &args.secrets {
        Some(secrets) => {
            let ty = &secrets.value;
            crate::tokens::respan(
                quote! { <#ty as #krate::__private::IsSecretSource>::Itself },
                secrets.span,
            )
        }
        None => quote! { #webhook::WebhookSecrets },
    };
    // A type of the runtime shared by every route configured alike: nothing is defined beside
    // the handler, so the attribute works on an associated function as on a free one.
    let config = quote! { #krate::__private::Webhook<#scheme, #tolerance, #max_body> };
    let mut sig = original.clone();
    // With `secrets = K`, what names it is spanned there, so that a `K` that is no source is
    // reported once, at its name (the handler's own body type keeps its spans).
    let at_secrets = |tokens: TokenStream| match &args.secrets {
        Some(secrets) => crate::tokens::respan(tokens, secrets.span),
        None => tokens,
    };
    let guard_type = at_secrets(quote! { #webhook::WebhookGuard<#config, #secrets> });
    let guard: FnArg = syn::parse_quote! { _: #guard_type };
    // The message's claim, settled by the handler's answer; named where no user name can be.
    let delivery = syn::Ident::new("__api_key_delivery", Span::mixed_site());
    // The last argument, whatever extractor it is (a body's, a custom one, or one of the
    // request's parts), is made from the verified request; without arguments, the body is read
    // for the signature alone. With one argument or none, that extractor runs the guard's
    // checks too; with more, the guard joins the first argument in a tuple, as `#[api_key]`'s
    // does: either way it runs first, and the handler keeps its arity within axum's sixteen.
    let alone = sig.inputs.len() <= 1;
    let signed = if alone {
        quote! { #webhook::GuardedSigned }
    } else {
        quote! { #webhook::Signed }
    };
    match sig.inputs.last_mut() {
        Some(FnArg::Typed(last)) if last.attrs.is_empty() => {
            let (pat, ty) = (&last.pat, &last.ty);
            let open = at_secrets(quote! { #signed < });
            let close = at_secrets(quote! { , #config, #secrets > });
            *last = syn::parse_quote! {
                #signed(#pat, _, #delivery): #open #ty #close
            };
        }
        _ => {
            let signed_type =
                at_secrets(quote! { #signed<#krate::__private::Bytes, #config, #secrets> });
            sig.inputs
                .push(syn::parse_quote! { #signed(_, _, #delivery): #signed_type });
        }
    }
    if !alone {
        match sig.inputs.first_mut() {
            Some(FnArg::Typed(first)) if first.attrs.is_empty() => {
                let (pat, ty) = (&first.pat, &first.ty);
                *first = syn::parse_quote! { (_, #pat): (#guard_type, #ty) };
            }
            _ => sig.inputs.insert(0, guard),
        }
    }
    // The handler answers a response, so that its status settles the message: 2xx marks it
    // handled, anything else lets the sender's retry in.
    let own_body = match &original.output {
        syn::ReturnType::Type(_, ty) if !mentions_impl_trait(ty) => {
            quote! { #krate::__private::returning::<#ty, _>(async move #body) }
        }
        _ => quote! { async move #body },
    };
    sig.output = syn::parse_quote! { -> #krate::__private::Response };
    let settled = proc_macro2::Group::new(
        proc_macro2::Delimiter::Brace,
        quote! {
            #delivery
                .settle_response(#krate::__private::IntoResponse::into_response(#own_body.await))
                .await
        },
    );
    let scheme_name = match scheme_number {
        1 => "GitHub's `X-Hub-Signature-256`",
        2 => "Stripe's `Stripe-Signature`",
        _ => "Standard Webhooks' `webhook-signature`",
    };
    let note = format!(
        "**Signed webhook:** {scheme_name} is verified before this runs{}; bodies over {} bytes \
         are refused with 413.",
        if scheme_number == 1 {
            String::new()
        } else {
            format!(
                ", within {} s of its timestamp, and a replay is refused",
                args.tolerance.as_ref().map_or(300, |t| t.value)
            )
        },
        args.max_body.as_ref().map_or(1 << 20, |m| m.value)
    );
    rewritten_and_documented(&attrs, &vis, (&sig, &settled), (&original, &body), &note)
}
