//! Parsing and checking the arguments of `#[api_key(...)]`.
//!
//! Every argument is parsed into [`Args`] with the span of its value, so each error lands on the
//! token at fault; errors are collected in [`Errors`] and reported together.

use proc_macro2::{Span, TokenStream};
use syn::parse::Parser;
use syn::spanned::Spanned;
use syn::{Expr, Lit, Meta, Path, Token};

mod names;
mod rate;
mod values;

use names::{COOKIE_NAME, QUERY_NAME, header_name, name_literal, scope_list};
use rate::rate_literal;
pub(crate) use rate::{Calendar, Rate};
use values::{cost, not_a_store, status_code};
pub(crate) use values::{crate_path, type_path};

use crate::tokens::written;

/// The header read when the attribute names no source.
pub(crate) const DEFAULT_HEADER: &str = "x-api-key";
/// The status of a refused request when the attribute sets none.
pub(crate) const DEFAULT_STATUS: u16 = 401;

/// The arguments the attribute accepts, in the order the error message lists them.
const ARGUMENTS: &[&str] = &[
    "header",
    "query",
    "cookie",
    "bearer",
    "status",
    "scopes",
    "optional",
    "rate_limit",
    "cost",
    "store",
    "state",
    "crate",
];

/// A value and the span of the tokens it came from.
pub(crate) struct WithSpan<T> {
    pub(crate) value: T,
    pub(crate) span: Span,
}

/// The attribute's arguments, each `None` when not given.
#[derive(Default)]
pub(crate) struct Args {
    /// `header = "..."`, lower-cased.
    pub(crate) header: Option<WithSpan<String>>,
    /// `query = "..."`.
    pub(crate) query: Option<WithSpan<String>>,
    /// `cookie = "..."`.
    pub(crate) cookie: Option<WithSpan<String>>,
    /// `bearer`.
    pub(crate) bearer: Option<WithSpan<()>>,
    /// `status = 4xx`.
    pub(crate) status: Option<WithSpan<u16>>,
    /// `scopes = ["...", ...]`.
    pub(crate) scopes: Option<WithSpan<Vec<String>>>,
    /// `optional`.
    pub(crate) optional: Option<WithSpan<()>>,
    /// `rate_limit = "10/s"`.
    pub(crate) rate_limit: Option<WithSpan<Rate>>,
    /// `cost = 5`: the credits a request spends.
    pub(crate) cost: Option<WithSpan<u32>>,
    /// `store = Type`.
    pub(crate) store: Option<WithSpan<syn::Type>>,
    /// `state = Type`: the router state, to check at the handler that it provides the store.
    pub(crate) state: Option<WithSpan<syn::Type>>,
    /// `crate = path`.
    pub(crate) krate: Option<WithSpan<Path>>,
    /// The names of arguments given with a mistake, already reported: checks that depend on
    /// them are skipped rather than guess.
    pub(crate) broken: Vec<String>,
}

/// Errors collected while checking, reported together.
#[derive(Default)]
pub(crate) struct Errors(Option<syn::Error>);

impl Errors {
    pub(crate) fn push(&mut self, error: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(error),
            None => self.0 = Some(error),
        }
    }

    #[cfg_attr(not(feature = "webhooks"), allow(dead_code))]
    pub(crate) fn has_errors(&self) -> bool {
        self.0.is_some()
    }

    pub(crate) fn into_result(self) -> Result<(), syn::Error> {
        self.0.map_or(Ok(()), Err)
    }
}

/// Parses the attribute's arguments. Syntax errors and invalid values go to `errors`; the
/// returned `Args` holds every argument that was valid. A malformed argument does not hide the
/// others: parsing resumes after the next comma.
pub(crate) fn parse(tokens: TokenStream, errors: &mut Errors) -> Args {
    let mut args = Args::default();
    let parser = |input: syn::parse::ParseStream<'_>| parse_arguments(input, &API_KEY_SYNTAX);
    let arguments = match parser.parse2(tokens) {
        Ok(parsed) => parsed,
        // The parser recovers from every error it reports, so this is only a safeguard.
        Err(error) => vec![Err(error)],
    };
    for argument in arguments {
        let (name, result) = match argument {
            Err(error) => (None, Err(error)),
            Ok(Argument::Meta(meta)) => (
                meta.path().get_ident().map(ToString::to_string),
                parse_one(&meta, &mut args),
            ),
            Ok(Argument::Type(path, ty)) if path.is_ident("store") => (
                Some("store".to_owned()),
                type_path(&ty, "store = PartnerKeys")
                    .and_then(|store| not_a_store(&store.value).map_or(Ok(store), Err))
                    .and_then(|store| set_once(&mut args.store, store, &path)),
            ),
            Ok(Argument::Type(path, ty)) => (
                Some("state".to_owned()),
                type_path(&ty, "state = AppState")
                    .and_then(|state| set_once(&mut args.state, state, &path)),
            ),
        };
        if let Err(error) = result {
            errors.push(error);
            args.broken.extend(name);
        }
    }
    args
}

/// Checks the arguments that are valid alone against each other.
pub(crate) fn check_combination(args: &Args, errors: &mut Errors) {
    // A request without a key holds no scope: a scoped route must refuse it.
    if let (Some(optional), Some(scopes)) = (&args.optional, &args.scopes) {
        let mut error = syn::Error::new(
            optional.span,
            "`optional` cannot go with `scopes`: a request without a key holds no scope, so a \
             scoped route must refuse it; remove `optional` to require a key, or give the \
             anonymous part its own route without `scopes`",
        );
        error.combine(syn::Error::new(
            scopes.span,
            "the route requires these scopes",
        ));
        errors.push(error);
    }
}

/// One argument as written: `store = Type` and `state = Type` (`secrets = Type` for
/// `#[webhook]`) take a type, which `Meta` cannot hold when it is generic, and every other
/// argument is a `Meta`.
pub(crate) enum Argument {
    Meta(Meta),
    Type(Path, syn::Type),
}

/// How an attribute's arguments are written: which take a type, with an example of each, and
/// an example of the whole attribute for syntax errors.
pub(crate) struct Syntax {
    pub(crate) types: &'static [(&'static str, &'static str)],
    pub(crate) example: &'static str,
    /// The argument a value written without a name most likely meant.
    pub(crate) positional: &'static str,
}

const API_KEY_SYNTAX: Syntax = Syntax {
    types: &[
        ("store", "store = PartnerKeys"),
        ("state", "state = AppState"),
    ],
    example: "#[api_key(header = \"x-api-key\", status = 403)]",
    positional: "header",
};

/// Every argument in the order written: parsed, or the error of one that does not parse.
pub(crate) fn parse_arguments(
    input: syn::parse::ParseStream<'_>,
    syntax: &Syntax,
) -> syn::Result<Vec<syn::Result<Argument>>> {
    let mut arguments = Vec::new();
    while !input.is_empty() {
        match parse_argument(input, syntax) {
            // A value that parsed but is refused, in words of its own.
            Ok(Err(error)) => {
                arguments.push(Err(error));
                skip_argument(input)?;
            }
            Ok(Ok(argument)) if input.is_empty() => arguments.push(Ok(argument)),
            Ok(Ok(argument)) => match input.parse::<Token![,]>() {
                Ok(_) => arguments.push(Ok(argument)),
                // The argument goes on past what parsed (`header "x"`): it is not what was
                // meant, so only the syntax error is reported.
                Err(error) => {
                    arguments.push(Err(syntax_error(&error, syntax)));
                    skip_argument(input)?;
                }
            },
            Err(error) => {
                arguments.push(Err(syntax_error(&error, syntax)));
                skip_argument(input)?;
            }
        }
    }
    Ok(arguments)
}

fn syntax_error(error: &syn::Error, syntax: &Syntax) -> syn::Error {
    syn::Error::new(
        error.span(),
        format!(
            "{error}\nhelp: arguments are written `name = value` and separated by commas, \
             e.g. `{}`",
            syntax.example
        ),
    )
}

/// Skips the rest of a malformed argument, up to and including the next comma that is not
/// between angle brackets (`store = Map<A, B>` holds one).
fn skip_argument(input: syn::parse::ParseStream<'_>) -> syn::Result<()> {
    input.step(|cursor| {
        let mut rest = *cursor;
        let mut depth = 0usize;
        while let Some((token, next)) = rest.token_tree() {
            rest = next;
            if let proc_macro2::TokenTree::Punct(punct) = &token {
                match punct.as_char() {
                    '<' => depth += 1,
                    '>' => depth = depth.saturating_sub(1),
                    ',' if depth == 0 => break,
                    _ => {}
                }
            }
        }
        Ok(((), rest))
    })
}

/// One argument: a syntax error outside, a value refused in words of its own inside.
fn parse_argument(
    input: syn::parse::ParseStream<'_>,
    syntax: &Syntax,
) -> syn::Result<syn::Result<Argument>> {
    // A value without its name: `#[api_key("x-api-key")]`.
    if input.peek(syn::Lit) {
        let literal: syn::Lit = input.parse()?;
        let value = written(&quote::ToTokens::to_token_stream(&literal));
        return Ok(Err(syn::Error::new_spanned(
            literal,
            format!(
                "arguments are named, `name = value`: write `{} = {value}`",
                syntax.positional
            ),
        )));
    }
    let fork = input.fork();
    let example = fork.parse::<syn::Ident>().ok().and_then(|name| {
        syntax
            .types
            .iter()
            .find(|(typed, _)| name == typed)
            .map(|(_, example)| *example)
    });
    let Some(example) = example.filter(|_| fork.peek(Token![=])) else {
        return input.parse().map(|meta| Ok(Argument::Meta(meta)));
    };
    let name: syn::Ident = input.parse()?;
    input.parse::<Token![=]>()?;
    // A value where a type goes: a literal secret or key, or a store built in place.
    if input.peek(syn::Lit) {
        let literal: syn::Lit = input.parse()?;
        let message = if !matches!(literal, syn::Lit::Str(_)) {
            format!("expected a type, e.g. `{example}`")
        } else if name == "state" {
            format!("`state` names the router state's type, not in quotes: write `{example}`")
        } else {
            let what = if name == "secrets" { "secrets" } else { "keys" };
            format!(
                "`{name}` names a type, and {what} are never written in code: they live in the \
                 router state, loaded from the environment or a file at start; write \
                 `{example}`"
            )
        };
        return Ok(Err(syn::Error::new_spanned(literal, message)));
    }
    let ty: syn::Type = input.parse().map_err(|error| {
        syn::Error::new(error.span(), format!("expected a type, e.g. `{example}`"))
    })?;
    if input.peek(syn::token::Paren) || input.peek(Token![.]) || input.peek(syn::token::Brace) {
        let rest = input.cursor().token_tree().map(|(token, _)| token.span());
        return Ok(Err(syn::Error::new(
            rest.unwrap_or_else(|| name.span()),
            format!(
                "`{name}` names a type, not a value: write `{example}`, and put the value in \
                 the router state (`.with_state(...)`)"
            ),
        )));
    }
    Ok(Ok(Argument::Type(Path::from(name), ty)))
}

fn parse_one(meta: &Meta, args: &mut Args) -> syn::Result<()> {
    let path = meta.path();
    let Some(name) = path.get_ident().map(ToString::to_string) else {
        return Err(syn::Error::new_spanned(
            path,
            format!(
                "expected an argument name; valid arguments are {}",
                list(ARGUMENTS)
            ),
        ));
    };
    match name.as_str() {
        "header" => {
            let value = value_of(meta, "header = \"x-api-key\"")?;
            let header = header_name(value)?;
            set_once(&mut args.header, header, path)
        }
        "query" => {
            let value = value_of(meta, "query = \"api_key\"")?;
            let query = name_literal(value, &QUERY_NAME)?;
            set_once(&mut args.query, query, path)
        }
        "cookie" => {
            let value = value_of(meta, "cookie = \"session\"")?;
            let cookie = name_literal(value, &COOKIE_NAME)?;
            set_once(&mut args.cookie, cookie, path)
        }
        "bearer" => {
            let flag = flag(meta, "bearer")?;
            set_once(&mut args.bearer, flag, path)
        }
        "status" => {
            let value = value_of(meta, "status = 403")?;
            let status = status_code(value)?;
            set_once(&mut args.status, status, path)
        }
        "scopes" => {
            let value = value_of(meta, "scopes = [\"orders:read\"]")?;
            let scopes = scope_list(value)?;
            set_once(&mut args.scopes, scopes, path)
        }
        "optional" => {
            let flag = flag(meta, "optional")?;
            set_once(&mut args.optional, flag, path)
        }
        "rate_limit" => {
            let value = value_of(meta, "rate_limit = \"10/s\"")?;
            let rate = rate_literal(value)?;
            set_once(&mut args.rate_limit, rate, path)
        }
        "cost" => {
            let value = value_of(meta, "cost = 5")?;
            let cost = cost(value)?;
            set_once(&mut args.cost, cost, path)
        }
        "store" => Err(syn::Error::new_spanned(
            path,
            "this argument needs a value: `store = PartnerKeys`",
        )),
        "state" => Err(syn::Error::new_spanned(
            path,
            "this argument needs a value: `state = AppState`",
        )),
        "crate" => {
            let value = value_of(meta, "crate = ::my_crate::axum_api_key")?;
            let krate = crate_path(value)?;
            set_once(&mut args.krate, krate, path)
        }
        _ => Err(syn::Error::new_spanned(path, unknown_argument(&name))),
    }
}

/// The value of `name = value`, or an error showing `example` when the argument has another form.
pub(crate) fn value_of<'a>(meta: &'a Meta, example: &str) -> syn::Result<&'a Expr> {
    match meta {
        Meta::NameValue(name_value) => Ok(&name_value.value),
        Meta::Path(path) => Err(syn::Error::new_spanned(
            path,
            format!("this argument needs a value: `{example}`"),
        )),
        Meta::List(list) => Err(syn::Error::new(
            list.delimiter.span().join(),
            format!("expected `=` and a value: `{example}`"),
        )),
    }
}

/// A flag such as `bearer`, which takes no value.
fn flag(meta: &Meta, name: &str) -> syn::Result<WithSpan<()>> {
    match meta {
        Meta::Path(path) => Ok(WithSpan {
            value: (),
            span: path.span(),
        }),
        Meta::NameValue(name_value) => Err(syn::Error::new_spanned(
            &name_value.value,
            format!("`{name}` takes no value: write `#[api_key({name})]`, or leave it out"),
        )),
        Meta::List(list) => Err(syn::Error::new(
            list.delimiter.span().join(),
            format!("`{name}` takes no value: write `#[api_key({name})]`, or leave it out"),
        )),
    }
}

pub(crate) fn set_once<T>(
    slot: &mut Option<WithSpan<T>>,
    value: WithSpan<T>,
    path: &Path,
) -> syn::Result<()> {
    if slot.is_some() {
        let name = path
            .get_ident()
            .map(ToString::to_string)
            .unwrap_or_default();
        return Err(syn::Error::new_spanned(
            path,
            format!("`{name}` is set more than once; keep one"),
        ));
    }
    *slot = Some(value);
    Ok(())
}

pub(crate) fn string_literal(value: &Expr) -> Option<&syn::LitStr> {
    match value {
        Expr::Lit(syn::ExprLit {
            lit: Lit::Str(lit), ..
        }) => Some(lit),
        _ => None,
    }
}

fn unknown_argument(name: &str) -> String {
    let valid = list(ARGUMENTS);
    // Names users bring from FastAPI or guess from HTTP vocabulary.
    let hint = match name {
        "name" | "header_name" | "key_name" => {
            Some("the header is named with `header = \"x-api-key\"`")
        }
        "key" | "keys" | "api_key" | "value" | "secret" => Some(
            "keys are never written in code: they live in the store (`ApiKeys::new().with_key(\
             \"partner-a\", key)`, loaded from the environment or a file at start); to name the \
             header that carries the key, write `header = \"x-api-key\"`",
        ),
        "status_code" | "code" | "http_status" => Some("the status is set with `status = 403`"),
        "auto_error" => Some(
            "`auto_error=False` is written `optional` here: a request without a key reaches the \
             handler, which takes `Option<VerifiedKey>`",
        ),
        "token" | "authorization" | "bearer_token" => {
            Some("for `Authorization: Bearer <key>`, write `bearer`")
        }
        "query_param" | "param" | "query_name" => {
            Some("the query parameter is named with `query = \"api_key\"`")
        }
        "cookie_name" => Some("the cookie is named with `cookie = \"session\"`"),
        "credits" | "price" | "weight" | "costs" | "credit" => {
            Some("what a request spends from a key's credits is set with `cost = 5`")
        }
        "rate" | "limit" | "ratelimit" | "rate_limits" | "throttle" => {
            Some("a route's rate limit is set with `rate_limit = \"10/s\"`")
        }
        _ => None,
    };
    if let Some(hint) = hint {
        return format!("unknown argument `{name}`: {hint}\nvalid arguments are {valid}");
    }
    match nearest(name, ARGUMENTS) {
        Some(near) => {
            format!(
                "unknown argument `{name}`; did you mean `{near}`?\nvalid arguments are {valid}"
            )
        }
        None => format!("unknown argument `{name}`; valid arguments are {valid}"),
    }
}

pub(crate) fn list(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The candidate closest to `name`, if it is close enough to be a typo.
pub(crate) fn nearest<'a>(name: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (edit_distance(name, c), *c))
        .filter(|(d, c)| *d <= (c.len() / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Levenshtein distance, counting a swap of two neighbours as one edit.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut rows = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in rows.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in rows[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (rows[i - 1][j] + 1)
                .min(rows[i][j - 1] + 1)
                .min(rows[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(rows[i - 2][j - 2] + 1);
            }
            rows[i][j] = best;
        }
    }
    rows[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_find_their_argument() {
        assert_eq!(nearest("stauts", ARGUMENTS), Some("status"));
        assert_eq!(nearest("hedaer", ARGUMENTS), Some("header"));
        assert_eq!(nearest("headers", ARGUMENTS), Some("header"));
        assert_eq!(nearest("crates", ARGUMENTS), Some("crate"));
        assert_eq!(nearest("timeout", ARGUMENTS), None);
    }
}
