//! Parsing and checking the arguments of `#[api_key(...)]`.
//!
//! Every argument is parsed into [`Args`] with the span of its value, so each error lands on the
//! token at fault; errors are collected in [`Errors`] and reported together.

use proc_macro2::{Span, TokenStream};
use syn::parse::Parser;
use syn::spanned::Spanned;
use syn::{Expr, Lit, Meta, Path, Token};

use crate::expand::written;

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

/// The longest header, query parameter or cookie name, and the longest scope, in bytes.
const MAX_NAME: usize = 255;

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
    if let Some(scopes) = &args.scopes {
        let max = crate::expand::MAX_SCOPES;
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
            let bytes = crate::expand::packed(args).len();
            let max = crate::expand::MAX_PACKED;
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

/// The rules of one kind of name, for its errors.
struct NameRule {
    /// What the name is, as a sentence starts: "the header name".
    what: &'static str,
    /// What a valid one is: "a valid HTTP header name".
    valid: &'static str,
    /// The characters it may hold, in words.
    alphabet: &'static str,
    allowed: fn(char) -> bool,
    /// The argument written right.
    example: &'static str,
}

const HEADER_NAME: NameRule = NameRule {
    what: "the header name",
    valid: "a valid HTTP header name",
    alphabet: "letters, digits and ! # $ % & ' * + - . ^ _ ` | ~",
    allowed: is_token_char,
    example: "header = \"x-api-key\"",
};

/// Unreserved characters (RFC 3986): the name appears as it is in every URL.
const QUERY_NAME: NameRule = NameRule {
    what: "the query parameter's name",
    valid: "a URL-safe query parameter name",
    alphabet: "letters, digits and - . _ ~",
    allowed: |c| c.is_ascii_alphanumeric() || "-._~".contains(c),
    example: "query = \"api_key\"",
};

/// A cookie name is a token (RFC 6265).
const COOKIE_NAME: NameRule = NameRule {
    what: "the cookie's name",
    valid: "a valid cookie name",
    alphabet: "letters, digits and ! # $ % & ' * + - . ^ _ ` | ~",
    allowed: is_token_char,
    example: "cookie = \"session\"",
};

/// A non-empty string literal of the characters `rule` allows.
fn name_literal(value: &Expr, rule: &NameRule) -> syn::Result<WithSpan<String>> {
    let NameRule {
        what,
        valid,
        alphabet,
        allowed,
        example,
    } = rule;
    let Some(lit) = string_literal(value) else {
        return Err(syn::Error::new_spanned(
            value,
            format!("expected {what} as a string literal: `{example}`"),
        ));
    };
    let name = lit.value();
    if name.is_empty() {
        return Err(syn::Error::new_spanned(
            lit,
            format!("{what} is empty; name it, e.g. `{example}`"),
        ));
    }
    if let Some(bad) = name.chars().find(|&c| !allowed(c)) {
        return Err(syn::Error::new_spanned(
            lit,
            format!(
                "`{}` is not {valid}: {} is not allowed; use {alphabet}, e.g. `{example}`",
                name.escape_debug(),
                describe_char(bad)
            ),
        ));
    }
    if name.len() > MAX_NAME {
        return Err(syn::Error::new_spanned(
            lit,
            format!(
                "{what} is {} bytes long; it can be at most {MAX_NAME}",
                name.len()
            ),
        ));
    }
    Ok(WithSpan {
        value: name,
        span: lit.span(),
    })
}

fn header_name(value: &Expr) -> syn::Result<WithSpan<String>> {
    let WithSpan { value: name, span } = name_literal(value, &HEADER_NAME)?;
    // Header names are case-insensitive and the `http` crate stores them lower-cased.
    let name = name.to_ascii_lowercase();
    let hint = match name.as_str() {
        "authorization" => Some("for `Authorization: Bearer <key>`, write `bearer`"),
        "cookie" => Some("to read a cookie, write `cookie = \"name\"`"),
        _ => None,
    };
    if let Some(hint) = hint {
        return Err(syn::Error::new(
            span,
            format!("the `{name}` header holds more than a key: {hint}"),
        ));
    }
    Ok(WithSpan { value: name, span })
}

fn scope_list(value: &Expr) -> syn::Result<WithSpan<Vec<String>>> {
    if let Expr::Repeat(repeat) = value {
        let hint = match string_literal(&repeat.expr) {
            Some(lit) => format!("`scopes = [\"{}\"]`", lit.value()),
            None => "`scopes = [\"orders:read\", \"orders:write\"]`".to_owned(),
        };
        return Err(syn::Error::new_spanned(
            value,
            format!("`[scope; n]` repeats one scope; list each scope once: {hint}"),
        ));
    }
    let Expr::Array(array) = value else {
        let hint = match string_literal(value) {
            Some(lit) => format!("`scopes = [\"{}\"]`", lit.value()),
            None => "`scopes = [\"orders:read\", \"orders:write\"]`".to_owned(),
        };
        return Err(syn::Error::new_spanned(
            value,
            format!("expected a list of scopes in brackets: {hint}"),
        ));
    };
    if array.elems.is_empty() {
        return Err(syn::Error::new_spanned(
            array,
            "the scope list is empty; name at least one scope, or leave `scopes` out to require none",
        ));
    }
    let mut scopes = Vec::new();
    let mut errors = Errors::default();
    for element in &array.elems {
        let Some(lit) = string_literal(element) else {
            errors.push(syn::Error::new_spanned(
                element,
                "expected a scope as a string literal, e.g. `\"orders:read\"`",
            ));
            continue;
        };
        let scope = lit.value();
        if scope.is_empty() {
            errors.push(syn::Error::new_spanned(lit, "a scope cannot be empty"));
        } else if let Some(bad) = scope.chars().find(|&c| !is_scope_char(c)) {
            errors.push(syn::Error::new_spanned(
                lit,
                format!(
                    "`{scope}` is not a valid scope: {} is not allowed; a scope is visible ASCII \
                     without `\"`, `\\`, `,`, `[` or `]`, e.g. `orders:read`",
                    describe_char(bad)
                ),
            ));
        } else if scope.len() > MAX_NAME {
            errors.push(syn::Error::new_spanned(
                lit,
                format!(
                    "this scope is {} bytes long; a scope can be at most {MAX_NAME}",
                    scope.len()
                ),
            ));
        } else if scopes.contains(&scope) {
            errors.push(syn::Error::new_spanned(
                lit,
                format!("the scope `{scope}` is listed twice"),
            ));
        } else {
            scopes.push(scope);
        }
    }
    errors.into_result()?;
    Ok(WithSpan {
        value: scopes,
        span: array.span(),
    })
}

/// A rate limit as the runtime's `RateLimit` reads it: `count` per `period_nanos`, in bursts
/// of `burst`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rate {
    pub(crate) count: u32,
    pub(crate) period_nanos: u64,
    pub(crate) burst: u32,
    /// A calendar window, counted exactly: `Some(false)` a day, `Some(true)` a month.
    pub(crate) calendar: Option<Calendar>,
}

/// The calendar windows of the runtime's `RateLimit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Calendar {
    Day,
    Month,
}

const RATE_FORM: &str = "a rate limit is written `<count>/<period>`, e.g. `rate_limit = \"10/s\"`, \
                         `\"100/min\"`, `\"10/s burst 20\"` or `\"1000/day\"`";

/// `rate_limit = "..."`: the grammar of the runtime's `RateLimit`, checked here so that a
/// mistake is an error at the literal.
fn rate_literal(value: &Expr) -> syn::Result<WithSpan<Rate>> {
    if let Expr::Array(_) = value {
        return Err(syn::Error::new_spanned(
            value,
            "a route takes one rate limit, e.g. `rate_limit = \"10/s\"`; a plan of several \
             windows belongs to a key: `rate_limit = [\"10/s\", \"100000/day\"]` in its \
             record, or `Key::rate_limits` in code",
        ));
    }
    let Some(lit) = string_literal(value) else {
        return Err(syn::Error::new_spanned(
            value,
            format!("expected a string literal: {RATE_FORM}"),
        ));
    };
    let rate = parse_rate(&lit.value()).map_err(|why| {
        syn::Error::new_spanned(lit, format!("`{}` is not a rate limit: {why}", lit.value()))
    })?;
    Ok(WithSpan {
        value: rate,
        span: lit.span(),
    })
}

pub(crate) fn parse_rate(text: &str) -> Result<Rate, String> {
    let positive = |text: &str| -> Option<u32> {
        if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        text.parse().ok().filter(|&n| n > 0)
    };
    let mut words = text.split_ascii_whitespace();
    let rate = words.next().ok_or_else(|| RATE_FORM.to_owned())?;
    let burst =
        match (words.next(), words.next(), words.next()) {
            (None, _, _) => None,
            (Some("burst"), Some(burst), None) => Some(positive(burst).ok_or(
                "the burst is a whole number from 1 to 4294967295, e.g. `\"10/s burst 20\"`",
            )?),
            _ => return Err(RATE_FORM.to_owned()),
        };
    let (count, period) = rate.split_once('/').ok_or_else(|| RATE_FORM.to_owned())?;
    let count = positive(count)
        .ok_or("the count is a whole number from 1 to 4294967295, e.g. `\"100/min\"`")?;
    let calendar = match period {
        "day" | "d" | "1d" | "1day" => Some((Calendar::Day, 86_400_000_000_000)),
        "month" | "mo" | "1month" | "1mo" => Some((Calendar::Month, 31 * 86_400_000_000_000)),
        _ => None,
    };
    if let Some((calendar, period_nanos)) = calendar {
        if burst.is_some() {
            return Err(
                "a day or a month is a calendar window, counted exactly: it has no \
                        burst (its count is what the window holds); drop `burst`"
                    .to_owned(),
            );
        }
        return Ok(Rate {
            count,
            period_nanos,
            burst: count,
            calendar: Some(calendar),
        });
    }
    let digits = period.bytes().take_while(u8::is_ascii_digit).count();
    let (multiple, unit) = period.split_at(digits);
    let multiple = if multiple.is_empty() {
        1
    } else {
        positive(multiple)
            .ok_or("the period's multiple is a whole number from 1, e.g. `\"10/5s\"`")?
    };
    if unit.starts_with('.') || unit.starts_with(',') {
        return Err(
            "the period's multiple is a whole number, not a fraction: scale the count and \
                    the period together (`\"10/1.5s\"` is `\"20/3s\"`)"
                .to_owned(),
        );
    }
    let unit: u64 = match unit {
        "ms" => 1_000_000,
        "s" | "sec" | "second" => 1_000_000_000,
        "m" | "min" | "minute" => 60_000_000_000,
        "h" | "hour" => 3_600_000_000_000,
        "d" | "day" | "month" | "mo" => {
            return Err(
                "a day or a month is a calendar window, one at a time: write \
                        `\"100/day\"` or `\"100/month\"`, or hours for a rolling window \
                        (`\"100/48h\"`)"
                    .to_owned(),
            );
        }
        _ => {
            return Err(
                "the period's unit is one of `ms`, `s`, `min`, `h`, `day` or `month`, \
                        e.g. `\"100/min\"`"
                    .to_owned(),
            );
        }
    };
    let period_nanos = unit
        .checked_mul(u64::from(multiple))
        .filter(|&nanos| nanos <= 366 * 86_400_000_000_000)
        .ok_or("the period is at most a year")?;
    Ok(Rate {
        count,
        period_nanos,
        burst: burst.unwrap_or(count),
        calendar: None,
    })
}

/// A character of a scope token (RFC 6750) that also fits in the `API_KEYS` format.
fn is_scope_char(c: char) -> bool {
    c.is_ascii_graphic() && !"\"\\,[]".contains(c)
}

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
fn not_a_store(ty: &syn::Type) -> Option<syn::Error> {
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

/// A `tchar` of RFC 9110 section 5.6.2, the characters of a header name.
fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

pub(crate) fn describe_char(c: char) -> String {
    match c {
        ' ' => "a space".to_owned(),
        c if c.is_control() => format!("the control character U+{:04X}", u32::from(c)),
        c => format!("`{c}`"),
    }
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
fn cost(value: &Expr) -> syn::Result<WithSpan<u32>> {
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

fn status_code(value: &Expr) -> syn::Result<WithSpan<u16>> {
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
    Some((
        crate::expand::written(&quote::ToTokens::to_token_stream(path)),
        *code,
    ))
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

    #[test]
    fn header_names_follow_rfc_9110() {
        assert!("x-api-key".chars().all(is_token_char));
        assert!("X_Key.v2".chars().all(is_token_char));
        for bad in [' ', ':', '"', '(', '/', '\n', 'é'] {
            assert!(!is_token_char(bad), "{bad:?}");
        }
    }
}
