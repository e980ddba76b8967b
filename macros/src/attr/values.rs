//! The attribute's other values: the store and state types, the route's `cost`, the refusal
//! `status`, and the runtime's path under `crate = …`.

use syn::spanned::Spanned;
use syn::{Expr, Lit, Path};

use super::WithSpan;
use crate::tokens::written;

pub(crate) fn type_path(ty: &syn::Type, example: &str) -> syn::Result<WithSpan<syn::Type>> {
    match ty {
        // A `$t:ty` fragment of a `macro_rules!` arrives wrapped in an invisible group.
        syn::Type::Group(group) => type_path(&group.elem, example),
        syn::Type::Path(path) if path.qself.is_none() => Ok(WithSpan {
            value: ty.clone(),
            span: path.span(),
        }),
        other => Err(syn::Error::new_spanned(
            other,
            format!("expected a type by its name, e.g. `{example}`"),
        )),
    }
}

/// Types that are plainly not key stores, told in our words at the mistake: a wrapper of a
/// store (the router state holds the store itself, cloned per request), a standard type, or
/// one of this crate's types that is not a store. Any other type is checked by the compiler
/// against `KeyStore`.
pub(super) fn not_a_store(ty: &syn::Type) -> Option<syn::Error> {
    let syn::Type::Path(path) = ty else {
        return None;
    };
    let last = path.path.segments.last()?;
    let name = last.ident.to_string();
    let inner = match &last.arguments {
        syn::PathArguments::AngleBracketed(generics) => {
            generics.args.iter().find_map(|arg| match arg {
                syn::GenericArgument::Type(inner) => Some(quote::ToTokens::to_token_stream(inner)),
                _ => None,
            })
        }
        _ => None,
    };
    let message = match (name.as_str(), inner) {
        ("Arc" | "Rc" | "Box" | "Mutex" | "RwLock", Some(inner)) => format!(
            "name the store itself, `store = {inner}`: the router state holds it and each \
             request clones it (a store shares its keys between clones already), so it needs \
             no `{name}`"
        ),
        ("Option", Some(inner)) => format!(
            "name the store itself, `store = {inner}`; to let requests without a key in, \
             write `optional`"
        ),
        (
            "String" | "str" | "Vec" | "HashMap" | "BTreeMap" | "HashSet" | "BTreeSet" | "Result"
            | "bool" | "char" | "u8" | "u16" | "u32" | "u64" | "u128" | "usize" | "i8" | "i16"
            | "i32" | "i64" | "i128" | "isize",
            _,
        ) => format!(
            "`{name}` is not an API key store: `store` names a type that implements \
             `axum_api_key::KeyStore`, such as `ApiKeys` (the default) or `PgKeys`; \
             to hold keys in memory, leave `store` out"
        ),
        (
            "VerifiedKey" | "Key" | "NewKey" | "RequireApiKey" | "RateLimits" | "RateLimit"
            | "KeyConfig" | "GuardConfig" | "WebhookSecrets",
            _,
        ) => format!(
            "`{name}` is not an API key store: `store` names where keys are checked, such as \
             `ApiKeys` (the default) or `PgKeys`{}",
            if name == "VerifiedKey" {
                "; the handler receives the verified key by taking a `VerifiedKey` argument"
            } else {
                ""
            }
        ),
        _ => return None,
    };
    Some(syn::Error::new_spanned(ty, message))
}

/// A status written with a type suffix, `401u8` or `403f32`.
pub(crate) fn suffixed(lit: &impl quote::ToTokens, digits: &str, suffix: &str) -> syn::Error {
    syn::Error::new_spanned(
        lit,
        format!(
            "the status is a plain integer: write `status = {digits}`, without the `{suffix}` suffix"
        ),
    )
}

/// The most credits one request may cost.
pub(crate) const MAX_COST: u32 = 1_000_000;

/// `cost = 5`: a plain integer from 0 (a route free for a key with no credits left) to
/// [`MAX_COST`].
pub(super) fn cost(value: &Expr) -> syn::Result<WithSpan<u32>> {
    let lit = match value {
        Expr::Lit(syn::ExprLit {
            lit: Lit::Int(lit), ..
        }) => lit,
        Expr::Lit(syn::ExprLit {
            lit: Lit::Str(lit), ..
        }) => {
            return Err(syn::Error::new_spanned(
                lit,
                format!(
                    "the cost is an integer, not a string: write `cost = {}`",
                    lit.value().trim()
                ),
            ));
        }
        Expr::Unary(syn::ExprUnary {
            op: syn::UnOp::Neg(_),
            ..
        }) => {
            return Err(syn::Error::new_spanned(
                value,
                "a cost cannot be negative: it is the credits a request spends, from 0 (free) \
                 up",
            ));
        }
        other => {
            return Err(syn::Error::new_spanned(
                other,
                format!(
                    "expected an integer literal from 0 to {MAX_COST}, e.g. `cost = 5`: the \
                     credits each request on this route spends; it is checked at compile time, \
                     so constants and expressions are not accepted"
                ),
            ));
        }
    };
    if lit.base10_digits().starts_with('-') {
        return Err(syn::Error::new_spanned(
            lit,
            "a cost cannot be negative: it is the credits a request spends, from 0 (free) up",
        ));
    }
    if !lit.suffix().is_empty() {
        return Err(syn::Error::new_spanned(
            lit,
            format!(
                "the cost is a plain integer: write `cost = {}`, without the `{}` suffix",
                lit.base10_digits(),
                lit.suffix()
            ),
        ));
    }
    let cost = lit
        .base10_parse::<u32>()
        .ok()
        .filter(|cost| *cost <= MAX_COST)
        .ok_or_else(|| {
            syn::Error::new_spanned(
                lit,
                format!(
                    "`cost = {}` is more than a request may cost; the most is {MAX_COST}",
                    lit.base10_digits()
                ),
            )
        })?;
    Ok(WithSpan {
        value: cost,
        span: lit.span(),
    })
}

pub(super) fn status_code(value: &Expr) -> syn::Result<WithSpan<u16>> {
    let lit = match value {
        Expr::Lit(syn::ExprLit {
            lit: Lit::Int(lit), ..
        }) => lit,
        Expr::Lit(syn::ExprLit {
            lit: Lit::Str(lit), ..
        }) => {
            let hint = lit.value();
            return Err(syn::Error::new_spanned(
                lit,
                format!("the status is an integer, not a string: write `status = {hint}`"),
            ));
        }
        Expr::Lit(syn::ExprLit {
            lit: Lit::Float(lit),
            ..
        }) if lit.base10_digits().parse::<u16>().is_ok() => {
            return Err(suffixed(lit, lit.base10_digits(), lit.suffix()));
        }
        Expr::Path(path) if status_constant(&path.path).is_some() => {
            let (name, code) = status_constant(&path.path).unwrap_or_default();
            return Err(syn::Error::new_spanned(
                path,
                format!(
                    "the status is a plain integer, checked at compile time: write \
                     `status = {code}` for `{name}`"
                ),
            ));
        }
        other => {
            return Err(syn::Error::new_spanned(
                other,
                "expected an integer literal from 400 to 499, e.g. `status = 403`; the value is \
                 checked at compile time, so constants and expressions are not accepted",
            ));
        }
    };
    if !lit.suffix().is_empty() {
        return Err(suffixed(lit, lit.base10_digits(), lit.suffix()));
    }
    let out_of_range = || {
        syn::Error::new_spanned(
            lit,
            format!(
                "`status = {}` is not a client-error status; use an integer from 400 to 499, \
                 usually 401 (the default) or 403",
                lit.base10_digits()
            ),
        )
    };
    let status = lit.base10_parse::<u16>().map_err(|_| out_of_range())?;
    if !(400..=499).contains(&status) {
        return Err(out_of_range());
    }
    Ok(WithSpan {
        value: status,
        span: lit.span(),
    })
}

/// `StatusCode::FORBIDDEN` and the other client-error constants of `http`, with their codes.
fn status_constant(path: &Path) -> Option<(String, u16)> {
    const CODES: &[(&str, u16)] = &[
        ("BAD_REQUEST", 400),
        ("UNAUTHORIZED", 401),
        ("PAYMENT_REQUIRED", 402),
        ("FORBIDDEN", 403),
        ("NOT_FOUND", 404),
        ("METHOD_NOT_ALLOWED", 405),
        ("NOT_ACCEPTABLE", 406),
        ("PROXY_AUTHENTICATION_REQUIRED", 407),
        ("REQUEST_TIMEOUT", 408),
        ("CONFLICT", 409),
        ("GONE", 410),
        ("PRECONDITION_FAILED", 412),
        ("IM_A_TEAPOT", 418),
        ("UNPROCESSABLE_ENTITY", 422),
        ("LOCKED", 423),
        ("PRECONDITION_REQUIRED", 428),
        ("TOO_MANY_REQUESTS", 429),
        ("UNAVAILABLE_FOR_LEGAL_REASONS", 451),
    ];
    let last = path.segments.last()?;
    let (_, code) = CODES.iter().find(|(name, _)| last.ident == name)?;
    Some((written(&quote::ToTokens::to_token_stream(path)), *code))
}

pub(crate) fn crate_path(value: &Expr) -> syn::Result<WithSpan<Path>> {
    let path = crate_path_as_written(value)?;
    // Crates an application depends on beside this one, which a path to it never ends in.
    const OTHERS: &[&str] = &[
        "axum",
        "axum_core",
        "axum_extra",
        "http",
        "hyper",
        "tower",
        "tower_http",
        "tokio",
        "utoipa",
        "aide",
        "serde",
        "self",
        "crate",
        "super",
        "std",
        "core",
    ];
    if let Some(last) = path.value.segments.last()
        && OTHERS.iter().any(|other| last.ident == other)
    {
        return Err(syn::Error::new(
            path.span,
            format!(
                "`crate` says where `axum_api_key` is, for a crate that re-exports it, and `{}` \
                 is not it: write `crate = ::my_crate::axum_api_key` (the path of the \
                 re-export), or leave `crate` out to use `::axum_api_key`",
                last.ident
            ),
        ));
    }
    Ok(path)
}

fn crate_path_as_written(value: &Expr) -> syn::Result<WithSpan<Path>> {
    match value {
        Expr::Path(syn::ExprPath {
            path, qself: None, ..
        }) => Ok(WithSpan {
            value: path.clone(),
            span: path.span(),
        }),
        Expr::Lit(syn::ExprLit {
            lit: Lit::Str(lit), ..
        }) => {
            let path = lit.parse::<Path>().map_err(|_| {
                syn::Error::new_spanned(
                    lit,
                    "expected a path to the runtime crate, e.g. `crate = ::my_crate::axum_api_key`",
                )
            })?;
            Ok(WithSpan {
                value: path,
                span: lit.span(),
            })
        }
        other => Err(syn::Error::new_spanned(
            other,
            "expected a path to the runtime crate, e.g. `crate = ::my_crate::axum_api_key`",
        )),
    }
}
