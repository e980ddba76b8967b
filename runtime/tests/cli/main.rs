//! The command-line tool, run as a user runs it.

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, SystemTime};

use axum_api_key::{ApiKeys, KeyFormat};

#[cfg(feature = "postgres")]
mod database;
mod records_file;

fn tool(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_axum-api-key"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the tool starts");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin)
        .expect("stdin takes the key");
    child.wait_with_output().expect("the tool ends")
}

#[cfg(feature = "postgres")]
fn tool_owned(args: &[String], stdin: &[u8]) -> Output {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    tool(&args, stdin)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).expect("UTF-8 output")
}

/// The lines of a records-file entry the tool printed, unindented.
fn records_entry(output: &str) -> String {
    let start = output.find("[[keys]]").expect("a records entry");
    output[start..]
        .lines()
        .map(str::trim)
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn generate_prints_the_key_once_and_a_configuration_without_it() {
    let out = tool(
        &[
            "generate",
            "--prefix",
            "myapp",
            "--id",
            "partner-a",
            "--scopes",
            "orders:read,orders:write",
        ],
        b"",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    let key = stdout.trim_end();
    assert_eq!(
        stdout.lines().count(),
        1,
        "standard output holds the key alone: {stdout}"
    );
    assert!(
        KeyFormat::new("myapp")
            .unwrap()
            .is_well_formed(key.as_bytes()),
        "{key}"
    );
    assert!(
        !stderr.contains(key),
        "the configuration never holds the key"
    );

    // The API_KEYS entry configures the key.
    let entry = stderr
        .lines()
        .find(|line| line.trim_start().starts_with("partner-a["))
        .expect("an API_KEYS entry");
    let keys: ApiKeys = entry.trim().parse().expect("a valid API_KEYS entry");
    let verified = keys
        .verify(key.as_bytes())
        .expect("the entry accepts the key");
    assert_eq!(
        verified.scopes().collect::<Vec<_>>(),
        ["orders:read", "orders:write"]
    );

    // So does the records entry.
    let dir = std::env::temp_dir().join(format!("axum-api-key-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("keys.toml");
    std::fs::write(&path, records_entry(&stderr)).unwrap();
    let keys = ApiKeys::from_file(&path).expect("a valid records file");
    assert_eq!(keys.verify(key.as_bytes()).unwrap().id(), "partner-a");

    // Every run makes another key.
    let again = tool(&["generate", "--prefix", "myapp", "--id", "partner-a"], b"");
    assert_ne!(text(&again.stdout), stdout);
}

#[test]
fn generate_with_an_expiry_writes_it_to_the_record() {
    let out = tool(
        &[
            "generate",
            "--prefix",
            "svc",
            "--id",
            "batch",
            "--expires",
            "90d",
        ],
        b"",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let key = text(&out.stdout).trim_end().to_owned();
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("API_KEYS entries cannot expire"),
        "{stderr}"
    );
    let dir = std::env::temp_dir().join(format!("axum-api-key-cli-exp-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("keys.toml");
    std::fs::write(&path, records_entry(&stderr)).unwrap();
    let verified = ApiKeys::from_file(&path)
        .unwrap()
        .verify(key.as_bytes())
        .unwrap();
    let left = verified
        .expires_at()
        .unwrap()
        .duration_since(SystemTime::now())
        .unwrap();
    let ninety_days = Duration::from_secs(90 * 24 * 3600);
    assert!(
        left <= ninety_days && left > ninety_days - Duration::from_secs(3600),
        "{left:?}"
    );
}

#[test]
fn hash_reads_the_key_from_standard_input() {
    let out = tool(
        &["hash", "--id", "partner-b", "--scopes", "a"],
        b"pb_Zc4nH6jR1eW5uB0d\n",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(!stdout.contains("pb_Zc4nH6jR1eW5uB0d"));
    let entry = stdout
        .lines()
        .find(|line| line.trim_start().starts_with("partner-b["))
        .expect("an entry");
    let keys: ApiKeys = entry.trim().parse().unwrap();
    assert!(keys.verify(b"pb_Zc4nH6jR1eW5uB0d").unwrap().has_scope("a"));
}

#[test]
fn mistakes_exit_with_2_and_say_what_is_wrong() {
    let out = tool(&["generate", "--prefix", "my_app", "--id", "x"], b"");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("--format"),
        "{}",
        text(&out.stderr)
    );
    assert!(
        out.stdout.is_empty(),
        "no key is printed for a refused request"
    );

    let out = tool(&["generate", "--prefix", "ok", "--id", "a b"], b"");
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());

    // A duration past what a clock or a records file can hold is refused, never a panic.
    for far in ["100000y", "500000000000y"] {
        let out = tool(
            &["generate", "--prefix", "ok", "--id", "a", "--expires", far],
            b"",
        );
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{far}: {stderr}");
        assert!(stderr.contains("--expires"), "{far}: {stderr}");
        assert!(!stderr.contains("panicked"), "{far}: {stderr}");
        assert!(out.stdout.is_empty());
    }

    let out = tool(&["hash"], b"has space\n");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        !text(&out.stderr).contains("has space"),
        "the key is never echoed"
    );
}

/// A records file holding one key of format `cli`, and that key.
fn records_file(name: &str) -> (std::path::PathBuf, String) {
    let dir = std::env::temp_dir().join(format!(
        "axum-api-key-cli-keys-{}-{name}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("keys.toml");
    let key = KeyFormat::new("cli").unwrap().generate();
    let hex: String = axum_api_key::digest(key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    std::fs::write(
        &path,
        format!("# managed by hand and by the tool\nformat = \"cli\"\n\n[[keys]]\nid = \"first\"\ndigest = \"sha256:{hex}\"\n"),
    )
    .unwrap();
    (path, key)
}

#[test]
fn keys_create_list_rotate_revoke_work_on_a_records_file() {
    let (path, first) = records_file("manage");
    let file = path.to_str().unwrap();

    // create: the key once on standard output, only its digest in the file.
    let out = tool(
        &[
            "keys",
            "create",
            "--file",
            file,
            "--id",
            "second",
            "--scopes",
            "orders:read",
            "--expires",
            "30d",
        ],
        b"",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let second = text(&out.stdout).trim_end().to_owned();
    assert!(second.starts_with("cli_"), "{second}");
    assert!(
        !text(&out.stderr).contains(&second),
        "the key is printed once, on stdout"
    );
    let written = std::fs::read_to_string(&path).unwrap();
    assert!(!written.contains(&second), "the file holds digests only");
    assert!(
        written.starts_with("# managed by hand and by the tool\n"),
        "{written}"
    );
    let keys = ApiKeys::from_file(&path).unwrap();
    assert!(
        keys.verify(second.as_bytes())
            .unwrap()
            .has_scope("orders:read")
    );

    // list: ids, states and scopes, never a key or a digest.
    let out = tool(&["keys", "list", "--file", file], b"");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let listing = text(&out.stdout);
    assert!(listing.contains("first\tvalid\t[]"), "{listing}");
    assert!(
        listing.contains("second\tvalid\t[orders:read] expires "),
        "{listing}"
    );
    assert!(!listing.contains(&second) && !listing.contains(&first) && !listing.contains("sha256"));

    // rotate: a new key once; the old one works through the grace period.
    let out = tool(
        &[
            "keys", "rotate", "--file", file, "--id", "first", "--grace", "1h",
        ],
        b"",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let rotated = text(&out.stdout).trim_end().to_owned();
    let keys = ApiKeys::from_file(&path).unwrap();
    assert_eq!(keys.verify(rotated.as_bytes()).unwrap().id(), "first");
    assert!(
        keys.verify(first.as_bytes())
            .unwrap()
            .expires_at()
            .is_some()
    );

    // revoke: every key of the id, refused by the next reader of the file.
    let out = tool(&["keys", "revoke", "--file", file, "--id", "first"], b"");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let keys = ApiKeys::from_file(&path).unwrap();
    assert_eq!(
        keys.verify(rotated.as_bytes()).unwrap_err(),
        axum_api_key::KeyError::Revoked
    );
    assert_eq!(
        keys.verify(first.as_bytes()).unwrap_err(),
        axum_api_key::KeyError::Revoked
    );
    let listing = text(&tool(&["keys", "list", "--file", file], b"").stdout);
    assert_eq!(listing.matches("first\trevoked").count(), 2, "{listing}");

    // Mistakes: an unknown id, a file without a format and no prefix; nothing printed on stdout.
    let out = tool(&["keys", "revoke", "--file", file, "--id", "nobody"], b"");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("no key has this id"),
        "{}",
        text(&out.stderr)
    );
    std::fs::write(&path, "").unwrap();
    let out = tool(&["keys", "create", "--file", file, "--id", "x"], b"");
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    assert!(
        text(&out.stderr).contains("--format"),
        "{}",
        text(&out.stderr)
    );
    // Rotating needs a format too; the tool says so in its own words, never a Rust call.
    let out = tool(&["keys", "rotate", "--file", file, "--id", "x"], b"");
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let said = text(&out.stderr);
    assert!(said.contains("--format myapp"), "{said}");
    assert!(
        !said.contains("ApiKeys") && !said.contains("::"),
        "no Rust in a CLI error: {said}"
    );
}

#[test]
fn an_expiry_must_lie_at_least_a_minute_ahead() {
    for too_soon in ["0s", "1ns", "59s"] {
        let out = tool(
            &[
                "generate",
                "--prefix",
                "myapp",
                "--id",
                "a",
                "--expires",
                too_soon,
            ],
            b"",
        );
        assert_eq!(out.status.code(), Some(2), "{too_soon}");
        assert!(out.stdout.is_empty(), "no key is printed for {too_soon}");
        let said = text(&out.stderr);
        assert!(said.contains("at least a minute"), "{said}");
    }
    let out = tool(
        &[
            "generate",
            "--prefix",
            "myapp",
            "--id",
            "a",
            "--expires",
            "2m",
        ],
        b"",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn printed_records_are_valid_toml_for_any_id_the_rules_allow() {
    for id in [
        r#"quote"d"#,
        r"back\slash",
        "'single'",
        "#hash",
        "tab-less~id",
    ] {
        let out = tool(
            &[
                "generate",
                "--prefix",
                "myapp",
                "--id",
                id,
                "--expires",
                "30d",
            ],
            b"",
        );
        assert!(out.status.success(), "{id}: {}", text(&out.stderr));
        let entry = records_entry(&text(&out.stderr));
        let dir = std::env::temp_dir().join(format!(
            "axum-api-key-cli-odd-{}-{}",
            std::process::id(),
            id.len()
        ));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("keys.toml");
        std::fs::write(&path, format!("{entry}\n")).expect("write");
        let keys = ApiKeys::from_file(&path).unwrap_or_else(|e| panic!("{id}: {e}\n{entry}"));
        let key = text(&out.stdout).trim().to_owned();
        assert_eq!(keys.verify(key.as_bytes()).expect("the key").id(), id);
        std::fs::remove_dir_all(&dir).ok();

        let hashed = tool(&["hash", "--id", id], b"hashed-key-0123456789\n");
        assert!(hashed.status.success(), "{}", text(&hashed.stderr));
        let entry = records_entry(&text(&hashed.stdout));
        let table: toml::Table = toml::from_str(&entry).unwrap_or_else(|e| panic!("{e}\n{entry}"));
        let keys = table["keys"].as_array().expect("[[keys]]");
        assert_eq!(keys[0]["id"].as_str(), Some(id));
    }
}
