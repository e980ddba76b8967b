//! Property tests of the two parsers that see untrusted or hand-written input: the guard's
//! reading of a header, and the `API_KEYS` configuration format.

use axum::Router;
use axum::routing::get;
use axum_api_key::{ApiKeys, VerifiedKey, api_key};
use axum_api_key_tests::{HeaderValue, KEY_A, StatusCode, get as request, keys, send};
use proptest::prelude::*;

#[api_key]
async fn data(key: VerifiedKey) -> String {
    format!("ok {}", key.id())
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime")
}

/// Any bytes a client can put in a header value.
fn header_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 12..600),
        // Near misses of the real key: a prefix, a suffix, one byte changed.
        (0..KEY_A.len(), any::<u8>()).prop_map(|(at, byte)| {
            let mut key = KEY_A.as_bytes().to_vec();
            key[at] = if key[at] == byte {
                byte.wrapping_add(1)
            } else {
                byte
            };
            key
        }),
        "[ -~]{12,300}".prop_map(String::into_bytes),
    ]
    .prop_filter("a value a client can send", |v| {
        HeaderValue::from_bytes(v).is_ok()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn no_header_value_panics_passes_or_is_echoed(value in header_bytes()) {
        let app = Router::new().route("/data", get(data)).with_state(keys());
        let answer = runtime().block_on(send(app, request("/data", &[("x-api-key", &value)])));
        prop_assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
        answer.assert_never_contains(&value);
    }

    #[test]
    fn configurations_round_trip(
        entries in proptest::collection::btree_map("[a-z][a-z0-9_.-]{0,20}", "[!-+--<>-~]{16,64}", 1..20),
        padding in "[ \t]{0,3}",
    ) {
        // Keys are unique too: a key given twice is an error of its own.
        let mut seen = std::collections::HashSet::new();
        let entries: Vec<_> = entries.into_iter().filter(|(_, key)| seen.insert(key.clone())).collect();
        let text = entries
            .iter()
            .map(|(id, key)| format!("{padding}{id}{padding}={padding}{key}{padding}"))
            .collect::<Vec<_>>()
            .join(",");
        let keys: ApiKeys = text.parse().map_err(|e| TestCaseError::fail(format!("{e}: {text:?}")))?;
        prop_assert_eq!(keys.len(), entries.len());
        for (id, key) in &entries {
            prop_assert_eq!(keys.verify(key.as_bytes()).map(|k| k.id().to_owned()), Ok(id.clone()));
        }
    }

    #[test]
    fn a_base64_key_alone_is_taken_whole_or_refused_never_split(
        key in "[A-Za-z0-9+/]{16,60}={0,2}",
    ) {
        match key.parse::<ApiKeys>() {
            Ok(keys) => {
                prop_assert_eq!(keys.len(), 1);
                prop_assert_eq!(keys.verify(key.as_bytes()).map(|k| k.id().to_owned()), Ok("default".to_owned()));
            }
            Err(error) => {
                prop_assert!(key.ends_with('='), "{key}: {error}");
                prop_assert_eq!(error.kind(), axum_api_key::ConfigErrorKind::AmbiguousEntry);
                let shown = format!("{error} {error:?}");
                prop_assert!(!shown.contains(&key[..8]), "{}", shown);
            }
        }
        // Written `default=<key>`, as the error says, it is taken whole.
        let keys: ApiKeys = format!("default={key}").parse().map_err(|e| TestCaseError::fail(format!("{e}")))?;
        prop_assert!(keys.verify(key.as_bytes()).is_ok());
    }

    #[test]
    fn configuration_errors_never_show_a_key(text in "[ -~]{0,200}") {
        // Whatever the text, parsing answers without panicking; an error shows no part of any
        // key it held, only entry numbers and, for a repeated id, the id.
        if let Err(error) = text.parse::<ApiKeys>() {
            let shown = format!("{error} {error:?}");
            for entry in text.split(',') {
                let key = entry.split_once('=').map_or(entry, |(_, key)| key).trim();
                if key.len() >= 6 && !shown.contains("key `") {
                    prop_assert!(!shown.contains(key), "{} shows {:?}", shown, key);
                }
            }
        }
    }
}

#[api_key(query = "api_key", cookie = "session", bearer)]
async fn anywhere(key: VerifiedKey) -> String {
    key.id().to_owned()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn no_query_cookie_or_authorization_value_panics_passes_or_is_echoed(
        value in "[!-~]{12,200}",
        place in 0..3usize,
    ) {
        let app = Router::new().route("/", get(anywhere)).with_state(keys());
        let encoded: String = form_urlencoded::byte_serialize(value.as_bytes()).collect();
        let (uri, headers): (String, Vec<(&str, Vec<u8>)>) = match place {
            0 => (format!("/?api_key={encoded}"), vec![]),
            1 => ("/".to_owned(), vec![("cookie", format!("session={value}").into_bytes())]),
            _ => ("/".to_owned(), vec![("authorization", format!("Bearer {value}").into_bytes())]),
        };
        let headers: Vec<(&str, &[u8])> = headers.iter().map(|(n, v)| (*n, v.as_slice())).collect();
        let answer = runtime().block_on(send(app, request(&uri, &headers)));
        prop_assert!(answer.status == StatusCode::UNAUTHORIZED || answer.status == StatusCode::BAD_REQUEST);
        answer.assert_never_contains(value.as_bytes());
    }

    #[test]
    fn generated_keys_survive_and_any_one_character_typo_is_refused(
        prefix in "[a-zA-Z0-9]{1,16}",
        at in any::<proptest::sample::Index>(),
        replacement in proptest::char::range('!', '~'),
    ) {
        let format = axum_api_key::KeyFormat::new(&prefix).expect("a valid prefix");
        let key = format.generate();
        prop_assert!(format.is_well_formed(key.as_bytes()));
        let mut typo = key.clone().into_bytes();
        let at = at.index(typo.len());
        prop_assume!(typo[at] != replacement as u8);
        typo[at] = replacement as u8;
        prop_assert!(!format.is_well_formed(&typo));
    }

    #[test]
    fn no_records_file_text_panics(text in "(\\[\\[keys\\]\\]\n|id = \"[a-z]{1,5}\"\n|digest = \"sha256:[0-9a-f]{0,64}\"\n|scopes = \\[\"[ -~]{0,8}\"\\]\n|expires = [0-9T:Z-]{0,25}\n|[ -~]{0,20}\n){0,12}") {
        let dir = std::env::temp_dir().join(format!("axum-api-key-prop-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        let path = dir.join("keys.toml");
        std::fs::write(&path, &text).expect("the file is written");
        // Parsed or refused with a line-numbered error; never a panic.
        if let Err(error) = ApiKeys::from_file(&path) {
            prop_assert!(error.to_string().contains("keys.toml"));
        }
    }
}
