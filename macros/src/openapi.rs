//! Documenting a handler's key in its `#[utoipa::path(...)]` (feature `openapi`): the security
//! requirement of every place the key may be, and the refusals the guard may answer.

use proc_macro2::{Delimiter, Group, Punct, Spacing, TokenStream, TokenTree};
use quote::quote;

use crate::attr::{Args, DEFAULT_HEADER, DEFAULT_STATUS};

/// The security scheme names `#[api_key]` documents, one per place: the same names the
/// runtime's `ApiKeySecurity` reads back to describe each scheme.
pub(crate) fn scheme_names(args: &Args) -> Vec<String> {
    let mut names = Vec::new();
    if let Some(header) = &args.header {
        names.push(format!("apiKeyHeader_{}", escape(&header.value)));
    }
    if let Some(query) = &args.query {
        names.push(format!("apiKeyQuery_{}", escape(&query.value)));
    }
    if let Some(cookie) = &args.cookie {
        names.push(format!("apiKeyCookie_{}", escape(&cookie.value)));
    }
    if args.bearer.is_some() {
        names.push("bearer".to_owned());
    }
    if names.is_empty() {
        names.push(format!("apiKeyHeader_{}", escape(DEFAULT_HEADER)));
    }
    names
}

/// A name as component names allow it (`[A-Za-z0-9._-]`): any other character, and `.`, as
/// `.` and two hex digits, so the name reads back exactly.
fn escape(name: &str) -> String {
    let mut escaped = String::new();
    for byte in name.bytes() {
        if byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-' {
            escaped.push(char::from(byte));
        } else {
            escaped.push_str(&format!(".{byte:02X}"));
        }
    }
    escaped
}

/// A check that no `#[utoipa::path]` above `#[api_key]` has expanded already, which would
/// leave its operation without the key: skipped when one is below, where it is documented.
///
/// utoipa names the operation of `handler` `__path_handler`, beside it. The check is a block at
/// the start of the handler's body (so that an `impl` block, even a trait's, gets no item of
/// ours): it defines a `__path_handler` of its own, marked as not utoipa's, then, in an inner
/// block, glob imports the module's items, which shadow it only if utoipa defined one. The
/// operation found is checked for the mark: utoipa's has none, and the error says, in our
/// words at the handler's name, to move the attribute.
pub(crate) fn order_check(
    documented_below: bool,
    sig: &syn::Signature,
    private: &TokenStream,
) -> TokenStream {
    if documented_below {
        return TokenStream::new();
    }
    let name = sig.ident.to_string();
    let name = name.strip_prefix("r#").unwrap_or(&name);
    let operation = quote::format_ident!("__path_{}", name, span = sig.ident.span());
    let check = crate::tokens::respan(
        quote! { #private::check_documentation_order::<#operation>(); },
        sig.ident.span(),
    );
    quote! {
        {
            #[allow(non_camel_case_types, dead_code)]
            struct #operation;
            #[diagnostic::do_not_recommend]
            impl #private::NotDocumentedYet for #operation {}
            {
                #[allow(unused_imports)]
                use self::*;
                #check
            }
        }
    }
}

/// `#[utoipa::path(...)]` with the guard's security requirement and refusals added to its own.
pub(crate) fn document(
    attr: &mut syn::Attribute,
    args: &Args,
    krate: &TokenStream,
    config: &TokenStream,
    private: &TokenStream,
) {
    let syn::Meta::List(list) = &mut attr.meta else {
        return;
    };
    let mut arguments = split_top_level(list.tokens.clone());
    let scopes: Vec<&str> = args
        .scopes
        .iter()
        .flat_map(|scopes| scopes.value.iter().map(String::as_str))
        .collect();
    let requirements: Vec<TokenStream> = scheme_names(args)
        .iter()
        .map(|name| quote! { (#name = [#(#scopes),*]) })
        .collect();
    let anonymous = args.optional.as_ref().map(|_| quote! { (), });
    let security = quote! { #anonymous #(#requirements),* };
    let declared = declared_statuses(&arguments);
    let responses = refusals(args, krate, &declared, config, private);
    let mut has_security = false;
    let mut has_responses = false;
    for argument in &mut arguments {
        match name_of(argument).as_deref() {
            Some("security") => {
                has_security = true;
                append_inside(argument, &security);
            }
            Some("responses") => {
                has_responses = true;
                append_inside(argument, &responses);
            }
            _ => {}
        }
    }
    if !has_security {
        arguments.push(quote! { security(#security) });
    }
    if !has_responses && !responses.is_empty() {
        arguments.push(quote! { responses(#responses) });
    }
    list.tokens = quote! { #(#arguments),* };
}

/// The refusals of this guard, each a `responses(...)` entry with the body a request gets as
/// its example, but for statuses the handler documents itself.
fn refusals(
    args: &Args,
    krate: &TokenStream,
    declared: &[u16],
    config: &TokenStream,
    private: &TokenStream,
) -> TokenStream {
    let status = args.status.as_ref().map_or(DEFAULT_STATUS, |s| s.value);
    let problem = quote! { #krate::openapi::ApiKeyProblem };
    let content_type = "application/problem+json";
    let mut entries: Vec<(u16, &str, TokenStream)> = vec![
        (
            status,
            "The API key is missing, unknown, malformed, revoked or expired.",
            if status == 401 {
                quote! { headers(("WWW-Authenticate" = String, description = "Where the API key goes")) }
            } else {
                TokenStream::new()
            },
        ),
        (
            400,
            "The API key was sent more than once.",
            TokenStream::new(),
        ),
        (
            429,
            "Too many requests: the key's rate limit or credits are used up, or too many invalid keys came from this address.",
            quote! { headers(
                ("Retry-After" = u64, description = "Seconds to wait before retrying (absent when waiting would not help: credits that are never refilled)"),
                ("RateLimit-Policy" = String, description = "The budgets the request was counted in (draft-ietf-httpapi-ratelimit-headers): `\"key\";q=60;w=60`, one entry per budget"),
                ("RateLimit" = String, description = "What each budget has left and when it is whole again: `\"key\";r=0;t=60`"),
                ("Credits-Remaining" = u64, description = "The credits the key has left, when it has credits")
            ) },
        ),
        (
            503,
            "The API key could not be checked right now.",
            TokenStream::new(),
        ),
    ];
    // Any key may be disabled or held to some networks, so every guard may answer 403.
    if status != 403 {
        entries.push((
            403,
            if args.scopes.is_some() {
                "The API key lacks a scope this operation requires, is disabled, or may not be used from this address."
            } else {
                "The API key is disabled, or may not be used from this address."
            },
            TokenStream::new(),
        ));
    }
    let mut out = Vec::new();
    for (code, description, headers) in entries {
        if declared.contains(&code) {
            continue;
        }
        let headers = if headers.is_empty() {
            headers
        } else {
            quote! { , #headers }
        };
        let example = quote! {
            json!(#private::refusal_example(#code, <#config as #private::KeyConfig>::CONFIG))
        };
        out.push(quote! {
            (status = #code, description = #description, body = #problem, content_type = #content_type #headers, example = #example)
        });
    }
    quote! { #(#out),* }
}

/// The attribute's arguments, split at the commas between them (not those inside `<...>`).
fn split_top_level(tokens: TokenStream) -> Vec<TokenStream> {
    let mut arguments = Vec::new();
    let mut current = Vec::new();
    let mut depth = 0usize;
    for token in tokens {
        if let TokenTree::Punct(punct) = &token {
            match punct.as_char() {
                '<' => depth += 1,
                '>' => depth = depth.saturating_sub(1),
                ',' if depth == 0 => {
                    arguments.push(current.drain(..).collect());
                    continue;
                }
                _ => {}
            }
        }
        current.push(token);
    }
    if !current.is_empty() {
        arguments.push(current.into_iter().collect());
    }
    arguments
}

fn name_of(argument: &TokenStream) -> Option<String> {
    let mut tokens = argument.clone().into_iter();
    match (tokens.next(), tokens.next()) {
        (Some(TokenTree::Ident(name)), Some(TokenTree::Group(group)))
            if group.delimiter() == Delimiter::Parenthesis =>
        {
            Some(name.to_string())
        }
        _ => None,
    }
}

/// `name(a, b)` becomes `name(a, b, extra)`.
fn append_inside(argument: &mut TokenStream, extra: &TokenStream) {
    if extra.is_empty() {
        return;
    }
    let tokens: Vec<TokenTree> = argument.clone().into_iter().collect();
    let [TokenTree::Ident(name), TokenTree::Group(group)] = tokens.as_slice() else {
        return;
    };
    let inner = group.stream();
    let mut joined = inner.clone();
    if !inner.is_empty() {
        joined.extend([TokenTree::Punct(Punct::new(',', Spacing::Alone))]);
    }
    joined.extend(extra.clone());
    let mut grown = Group::new(Delimiter::Parenthesis, joined);
    grown.set_span(group.span());
    *argument = quote! { #name #grown };
}

/// The statuses the handler's own `responses(...)` documents.
fn declared_statuses(arguments: &[TokenStream]) -> Vec<u16> {
    let mut statuses = Vec::new();
    for argument in arguments {
        if name_of(argument).as_deref() != Some("responses") {
            continue;
        }
        for token in argument.clone() {
            if let TokenTree::Group(group) = token {
                collect_statuses(group.stream(), &mut statuses);
            }
        }
    }
    statuses
}

fn collect_statuses(tokens: TokenStream, statuses: &mut Vec<u16>) {
    let tokens: Vec<TokenTree> = tokens.into_iter().collect();
    for (at, token) in tokens.iter().enumerate() {
        match token {
            TokenTree::Group(group) => collect_statuses(group.stream(), statuses),
            TokenTree::Ident(ident) if ident == "status" => {
                if let (Some(TokenTree::Punct(eq)), Some(value)) =
                    (tokens.get(at + 1), tokens.get(at + 2))
                    && eq.as_char() == '='
                {
                    let text = value.to_string();
                    let text = text.trim_matches('"');
                    if let Ok(code) = text.parse::<u16>() {
                        statuses.push(code);
                    }
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_escape_what_component_names_cannot_hold() {
        assert_eq!(escape("x-api-key"), "x-api-key");
        assert_eq!(escape("api_key"), "api_key");
        assert_eq!(escape("a.b~c"), "a.2Eb.7Ec");
    }

    #[test]
    fn splits_at_top_level_commas_only() {
        let parts = split_top_level(
            quote! { get, path = "/x", request_body = Map<A, B>, responses((status = 200, body = String)) },
        );
        assert_eq!(parts.len(), 4);
        assert_eq!(declared_statuses(&parts), [200]);
    }
}
