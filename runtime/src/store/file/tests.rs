//! The records file: read, changed, written and read again.

use super::edit::{apply, datetime};
use super::*;
use crate::KeyError;
use crate::store::change::FileEdit;
use crate::time::days_from_civil;

const HELLO: &str = "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";

fn error(text: &str) -> ConfigError {
    match parse(text) {
        Ok(_) => panic!("accepted: {text}"),
        Err(error) => error,
    }
}

#[test]
fn reads_every_field() {
    let text = format!(
        "[[keys]]\nid = \"a\"\ndigest = \"{HELLO}\"\nscopes = [\"x\", \"y\"]\n\
         not_before = 2020-01-01T00:00:00Z\nexpires = 2999-01-01T00:00:00+02:00\n\
         rate_limit = \"10/s burst 20\"\nmetadata = {{ owner = \"Team A\" }}\n"
    );
    let keys = ApiKeys::from_parts(parse(&text).unwrap(), crate::store::Settings::default());
    let key = keys.verify(b"hello").unwrap();
    assert_eq!(key.scopes().collect::<Vec<_>>(), ["x", "y"]);
    assert_eq!(
        key.rate_limit().map(|l| l.to_string()).as_deref(),
        Some("10/s burst 20")
    );
    let e = error(&format!(
        "[[keys]]\nid = \"a\"\ndigest = \"{HELLO}\"\nrate_limit = \"lots\"\n"
    ));
    assert_eq!(
        (e.kind(), e.line()),
        (ConfigErrorKind::BadRateLimit, Some(4))
    );
    assert_eq!(key.metadata("owner"), Some("Team A"));
    let expires = key
        .expires_at()
        .unwrap()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert_eq!(expires, 32_472_144_000 - 7_200);
}

#[test]
fn enforces_what_it_reads() {
    let text =
        format!("[[keys]]\nid = \"a\"\ndigest = \"{HELLO}\"\nexpires = 2001-01-01T00:00:00Z\n");
    let keys = ApiKeys::from_parts(parse(&text).unwrap(), crate::store::Settings::default());
    assert_eq!(keys.verify(b"hello").unwrap_err(), KeyError::Expired);
    let text = format!("[[keys]]\nid = \"a\"\ndigest = \"{HELLO}\"\nrevoked = true\n");
    let keys = ApiKeys::from_parts(parse(&text).unwrap(), crate::store::Settings::default());
    assert_eq!(keys.verify(b"hello").unwrap_err(), KeyError::Revoked);
}

#[test]
fn errors_never_quote_the_file() {
    let secret = "pa_7Qm2xY9wLkV3rT8s";
    let cases = [
        format!("[[keys]]\nid = \"a\"\ndigest = \"{HELLO}\"\nscopes = \"{secret}\"\n"),
        format!("[[keys]]\nid = \"a\"\ndigest = \"{HELLO}\"\n{secret} = 1\n"),
        format!("[[keys]]\nid = \"a\"\ndigest = \"{HELLO}\"\nrevoked = \"{secret}\"\n"),
        format!("[[keys]]\nid = \"a\"\ndigest = {secret}\n"),
        format!("[[keys]]\nid = \"a\"\ndigest = \"{HELLO}\"\n[{secret}\n"),
        format!("{secret} = 1\n"),
        format!("[[keys]]\nid = \"a\"\ndigest = \"{HELLO}\"\nmetadata = \"{secret}\"\n"),
        format!("keys = \"{secret}\"\n"),
        format!(
            "[[keys]]\nid = \"{secret}\"\ndigest = \"{HELLO}\"\n[[keys]]\nid = \"{secret}\"\ndigest = \"sha256:{}\"\n",
            "0".repeat(64)
        ),
        format!("[[keys]]\nid = \"{secret}\"\ndigest = \"{HELLO}\"\nscopes = [\"a b\"]\n"),
        format!("[[keys]]\nid = \"a\"\ndigest = \"{secret}\"\n"),
    ];
    for text in cases {
        let error = error(&text);
        let shown = format!("{error} {error:?}");
        assert!(!shown.contains(secret), "{shown}");
        assert!(error.line().is_some(), "{shown}");
    }
    // What the parser says of the file's shape stays.
    let e = error("[[keys]]\nid = \"a\"\n");
    assert!(e.to_string().contains("missing field `digest`"), "{e}");
    let e = error(&format!(
        "[[keys]]\nid = \"a\"\ndigest = \"{HELLO}\"\nscopes = \"x\"\n"
    ));
    assert!(
        e.to_string().ends_with("invalid type, expected a sequence"),
        "{e}"
    );
}

#[test]
fn times_written_read_back_exactly() {
    for seconds in [
        0u64,
        951_782_400,
        1_709_164_800,
        32_472_144_000,
        253_402_300_799,
    ] {
        for nanos in [0u32, 1, 999_999_999] {
            let at = UNIX_EPOCH + Duration::new(seconds, nanos);
            let written = datetime(at).unwrap();
            assert_eq!(system_time(&written), Some(at), "{written}");
        }
    }
    assert!(datetime(UNIX_EPOCH + Duration::from_secs(253_402_300_800)).is_err());
    for days in [-719_468, -1, 0, 11_017, 19_782, 2_932_896] {
        let (y, m, d) = crate::time::civil_from_days(days);
        assert_eq!(days_from_civil(y, m, d), days);
    }
}

#[test]
fn edits_keep_comments_and_layout() {
    let text = format!(
        "# header\nformat = \"app\"\n\n[[keys]]\nid = \"a\"  # partner A\ndigest = \"{HELLO}\"\n"
    );
    let mut document = text.parse::<toml_edit::DocumentMut>().unwrap();
    apply(&mut document, &FileEdit::Revoke { id: "a".into() }).unwrap();
    let mut record = crate::key::KeyRecord::default();
    record.id = "b".into();
    record.scopes = vec!["x".into()].into();
    apply(
        &mut document,
        &FileEdit::Append {
            digest: crate::digest(b"b"),
            record,
        },
    )
    .unwrap();
    let edited = document.to_string();
    assert!(
        edited.starts_with("# header\nformat = \"app\"\n\n[[keys]]\nid = \"a\"  # partner A\n"),
        "{edited}"
    );
    assert!(edited.contains("revoked = true"), "{edited}");
    assert!(edited.contains("id = \"b\""), "{edited}");
    let set = parse(&edited).unwrap();
    assert_eq!(set.len(), 2);
    assert_eq!(
        apply(
            &mut document,
            &FileEdit::Revoke {
                id: "nobody".into()
            }
        )
        .unwrap_err()
        .kind(),
        ConfigErrorKind::UnknownId
    );
}

/// A change spliced into the text reads back as the same change made through a full
/// parse, whatever the layout: line endings, a byte-order mark, a last line without a
/// break, fields already present, comments.
#[test]
fn spliced_changes_read_back_as_made() {
    let a = crate::hex::encode(&crate::digest(b"key-a"));
    let b = crate::hex::encode(&crate::digest(b"key-b"));
    let c = crate::hex::encode(&crate::digest(b"key-c"));
    for (bom, newline, last_break) in [
        ("", "\n", true),
        ("", "\r\n", true),
        ("\u{feff}", "\r\n", false),
        ("\u{feff}", "\n", false),
    ] {
        let mut text = format!(
            "{bom}# keys\nformat = \"app\"\n\n[[keys]]\nid = \"a\"  # partner A\n\
             digest = \"sha256:{a}\"\nrevoked = false\n\n[[keys]]\nid = \"b\"\n\
             digest = \"sha256:{b}\"\nexpires = 2030-01-01T00:00:00Z\n\
             metadata = {{ owner = \"B\" }}\n\n[[keys]]\ndigest = \"sha256:{c}\"\nid = \"c\""
        )
        .replace('\n', newline);
        if last_break {
            text.push_str(newline);
        }
        let (_, index) = parse_indexed(&text).unwrap();
        let mut index = FileIndex::clone(index.as_ref().expect("an index"));
        let body_start = bom.len();
        let mut body = text[body_start..].to_owned();
        let soon = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let mut record = crate::key::KeyRecord::default();
        record.id = "d".into();
        record.scopes = vec!["x".into()].into();
        index
            .splice(
                &mut body,
                &[
                    FileEdit::Revoke { id: "a".into() },
                    FileEdit::Supersede {
                        id: "b".into(),
                        at: soon,
                    },
                    FileEdit::SupersedeKey {
                        digest: crate::digest(b"key-c"),
                        at: soon,
                    },
                    FileEdit::Append {
                        digest: crate::digest(b"key-d"),
                        record,
                    },
                    FileEdit::RevokeKey {
                        digest: crate::digest(b"key-d"),
                    },
                ],
                newline,
            )
            .unwrap();
        assert!(
            body.starts_with(&format!("# keys{newline}format")),
            "{body}"
        );
        assert!(body.contains("# partner A"), "{body}");
        if newline == "\r\n" {
            assert!(!body.replace("\r\n", "").contains('\n'), "{body:?}");
        }
        let keys = ApiKeys::from_parts(parse(&body).unwrap(), crate::store::Settings::default());
        let listed = keys.list();
        let state: Vec<(String, bool, bool, Option<SystemTime>)> = listed
            .iter()
            .map(|listed| {
                let record = listed.key().record();
                (
                    listed.key().id().to_owned(),
                    record.revoked,
                    record.superseded,
                    record.expires(),
                )
            })
            .collect();
        assert_eq!(
            state,
            [
                ("a".to_owned(), true, false, None),
                ("b".to_owned(), false, true, Some(soon)),
                ("c".to_owned(), false, true, Some(soon)),
                ("d".to_owned(), true, false, None),
            ],
            "{body}"
        );
        assert_eq!(listed[1].key().metadata("owner"), Some("B"));
        // The index kept in step: a second round of changes lands where it should.
        index
            .splice(&mut body, &[FileEdit::Revoke { id: "c".into() }], newline)
            .unwrap();
        let keys = ApiKeys::from_parts(parse(&body).unwrap(), crate::store::Settings::default());
        assert!(keys.list()[2].key().record().revoked, "{body}");
    }
    // An inline array of keys is edited through a full parse instead.
    let inline = format!("keys = [{{ id = \"a\", digest = \"sha256:{a}\" }}]\n");
    assert!(parse_indexed(&inline).unwrap().1.is_none());
}

#[test]
fn disabling_and_networks_are_read_written_and_kept() {
    let dir = std::env::temp_dir().join(format!(
        "axum-api-key-plans-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    // One file edited by splicing, one (its id written as a quoted key) through a full
    // parse.
    let layouts = [
        format!(
            "# partners\n[[keys]]\nid = \"a\"\ndigest = \"{HELLO}\"\n\
             allowed_ips = [\"203.0.113.0/24\", \"2001:db8::/32\"] # office\n"
        ),
        format!(
            "[[keys]]\n\"id\" = \"a\"\ndigest = \"{HELLO}\"\n\
             allowed_ips = [\"203.0.113.0/24\", \"2001:db8::/32\"]\n"
        ),
    ];
    for (n, text) in layouts.iter().enumerate() {
        let path = dir.join(format!("keys-{n}.toml"));
        std::fs::write(&path, text).unwrap();
        let keys = ApiKeys::from_file(&path).unwrap();
        let key = keys.verify(b"hello").unwrap();
        assert_eq!(
            key.allowed_ips()
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
            ["203.0.113.0/24", "2001:db8::/32"]
        );
        assert_eq!(keys.disable("a").unwrap(), 1);
        assert_eq!(keys.verify(b"hello").unwrap_err(), KeyError::Disabled);
        let written = std::fs::read_to_string(&path).unwrap();
        assert!(written.contains("disabled = true"), "{written}");
        assert!(written.contains("# office") || n == 1, "{written}");
        assert_eq!(parse_indexed(&written).unwrap().1.is_some(), n == 0);
        // Another process reading the file sees the suspension; enabling is written too.
        let other = ApiKeys::from_file(&path).unwrap();
        assert_eq!(other.verify(b"hello").unwrap_err(), KeyError::Disabled);
        keys.enable("a").unwrap();
        let written = std::fs::read_to_string(&path).unwrap();
        assert!(written.contains("disabled = false"), "{written}");
        other.reload().unwrap();
        let key = other.verify(b"hello").unwrap();
        assert_eq!(key.allowed_ips().len(), 2, "the networks are kept");
        // A key added with networks and disabled is written with both.
        keys.add(
            crate::Key::new("b", "key-b-0123456789abcdef")
                .allowed_ips(["198.51.100.7".parse().unwrap()])
                .disabled(true),
        )
        .unwrap();
        let reread = ApiKeys::from_file(&path).unwrap();
        assert_eq!(
            reread.verify(b"key-b-0123456789abcdef").unwrap_err(),
            KeyError::Disabled
        );
        reread.enable("b").unwrap();
        let b = reread.verify(b"key-b-0123456789abcdef").unwrap();
        assert_eq!(b.allowed_ips()[0].to_string(), "198.51.100.7");
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_network_written_wrong_is_an_error_at_its_line_never_an_open_key() {
    for bad in [
        "[\"203.0.113.5/24\"]",
        "[\"office\"]",
        "[]",
        "[\"10.0.0.0/33\"]",
    ] {
        let text = format!("[[keys]]\nid = \"a\"\ndigest = \"{HELLO}\"\n\nallowed_ips = {bad}\n");
        let e = error(&text);
        assert_eq!(
            (e.kind(), e.line(), e.field()),
            (ConfigErrorKind::BadNetwork, Some(5), Some("allowed_ips")),
            "{bad}"
        );
    }
    let e = error(&format!(
        "[[keys]]\nid = \"a\"\ndigest = \"{HELLO}\"\ndisabled = \"yes\"\n"
    ));
    assert_eq!((e.kind(), e.line()), (ConfigErrorKind::FileSyntax, Some(4)));
}

#[test]
fn converts_civil_dates() {
    assert_eq!(days_from_civil(1970, 1, 1), 0);
    assert_eq!(days_from_civil(2000, 3, 1), 11_017);
    assert_eq!(days_from_civil(2024, 2, 29), 19_782);
}

#[test]
fn errors_name_the_line_and_the_field() {
    let text = "\n[[keys]]\nid = \"a\"\ndigest = \"sha256:12\"\n";
    let e = error(text);
    assert_eq!(
        (e.kind(), e.line(), e.field()),
        (ConfigErrorKind::BadDigest, Some(4), Some("digest"))
    );
    assert_eq!(
        e.to_string(),
        "line 4, field `digest`: the digest after `sha256:` must be 64 hexadecimal digits"
    );

    let text = format!("[[keys]]\nid = \"a\"\ndigest = \"{HELLO}\"\nexpires = 2027-01-01\n");
    let e = error(&text);
    assert_eq!(
        (e.kind(), e.line(), e.field()),
        (ConfigErrorKind::BadTime, Some(4), Some("expires"))
    );

    let text = format!(
        "[[keys]]\nid = \"a\"\ndigest = \"{HELLO}\"\n\n[[keys]]\nid = \"a\"\ndigest = \"{HELLO}\"\n"
    );
    let e = error(&text);
    assert_eq!(
        (e.kind(), e.line(), e.field()),
        (ConfigErrorKind::DuplicateId, Some(6), Some("id"))
    );

    let e = error("[[keys]]\nid = \"a\"\ndigset = \"x\"\n");
    assert_eq!((e.kind(), e.line()), (ConfigErrorKind::FileSyntax, Some(3)));
    assert!(
        e.to_string().contains("unknown field, expected one of"),
        "{e}"
    );
    assert!(!e.to_string().contains("digset"), "{e}");

    let e = error("[[keys]]\nid = \"a\"\n");
    assert_eq!(e.kind(), ConfigErrorKind::FileSyntax);
    assert!(e.to_string().contains("digest"), "{e}");

    let e = error(&format!(
        "[[keys]]\nid = \"a\"\ndigest = \"{HELLO}\"\nscopes = [\"a b\"]\n"
    ));
    assert_eq!(
        (e.kind(), e.line(), e.field()),
        (ConfigErrorKind::InvalidScope, Some(4), Some("scopes"))
    );
}

#[test]
fn a_store_copied_by_a_builder_keeps_the_index_of_its_file() {
    let dir = std::env::temp_dir().join(format!("axum-api-key-copied-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("keys.toml");
    std::fs::write(
        &path,
        format!("[[keys]]\nid = \"a\"\ndigest = \"{HELLO}\"\n"),
    )
    .unwrap();
    let keys = ApiKeys::from_file(&path).unwrap();
    assert!(keys.one_at_a_time().file_index.is_some());
    // Held elsewhere, so the builders copy the store rather than change it in place.
    let held = keys.clone();
    let copied = keys.with_https(crate::HttpsPolicy::Direct);
    assert!(
        copied.one_at_a_time().file_index.is_some(),
        "a copy splices its changes into the file as the store it came from"
    );
    let copied = copied.with_format(KeyFormat::new("myapp").unwrap());
    assert!(copied.one_at_a_time().file_index.is_some());
    assert_eq!(copied.revoke("a").unwrap(), 1);
    assert!(copied.one_at_a_time().file_index.is_some(), "kept in step");
    drop(held);
    std::fs::remove_dir_all(&dir).unwrap();
}
