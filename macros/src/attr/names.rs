//! Names and scopes in the attribute: header, query parameter and cookie names as HTTP allows
//! them, scope lists as keys hold them.

use syn::Expr;
use syn::spanned::Spanned;

use super::{Errors, WithSpan, string_literal};

/// The longest header, query parameter or cookie name, and the longest scope, in bytes.
const MAX_NAME: usize = 255;

/// The rules of one kind of name, for its errors.
pub(super) struct NameRule {
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

pub(super) const HEADER_NAME: NameRule = NameRule {
    what: "the header name",
    valid: "a valid HTTP header name",
    alphabet: "letters, digits and ! # $ % & ' * + - . ^ _ ` | ~",
    allowed: is_token_char,
    example: "header = \"x-api-key\"",
};

/// Unreserved characters (RFC 3986): the name appears as it is in every URL.
pub(super) const QUERY_NAME: NameRule = NameRule {
    what: "the query parameter's name",
    valid: "a URL-safe query parameter name",
    alphabet: "letters, digits and - . _ ~",
    allowed: |c| c.is_ascii_alphanumeric() || "-._~".contains(c),
    example: "query = \"api_key\"",
};

/// A cookie name is a token (RFC 6265).
pub(super) const COOKIE_NAME: NameRule = NameRule {
    what: "the cookie's name",
    valid: "a valid cookie name",
    alphabet: "letters, digits and ! # $ % & ' * + - . ^ _ ` | ~",
    allowed: is_token_char,
    example: "cookie = \"session\"",
};

/// A non-empty string literal of the characters `rule` allows.
pub(super) fn name_literal(value: &Expr, rule: &NameRule) -> syn::Result<WithSpan<String>> {
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

pub(super) fn header_name(value: &Expr) -> syn::Result<WithSpan<String>> {
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

pub(super) fn scope_list(value: &Expr) -> syn::Result<WithSpan<Vec<String>>> {
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

/// A character of a scope token (RFC 6750) that also fits in the `API_KEYS` format.
pub(super) fn is_scope_char(c: char) -> bool {
    c.is_ascii_graphic() && !"\"\\,[]".contains(c)
}

/// A `tchar` of RFC 9110 section 5.6.2, the characters of a header name.
pub(super) fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

pub(crate) fn describe_char(c: char) -> String {
    match c {
        ' ' => "a space".to_owned(),
        c if c.is_control() => format!("the control character U+{:04X}", u32::from(c)),
        c => format!("`{c}`"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_names_follow_rfc_9110() {
        assert!("x-api-key".chars().all(is_token_char));
        assert!("X_Key.v2".chars().all(is_token_char));
        for bad in [' ', ':', '"', '(', '/', '\n', 'é'] {
            assert!(!is_token_char(bad), "{bad:?}");
        }
    }
}
