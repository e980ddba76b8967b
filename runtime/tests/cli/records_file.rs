//! Records files the tool starts, keeps the format of, shares with busy writers, and changes.

use super::*;

#[test]
fn keys_create_starts_a_new_file_and_keeps_an_existing_files_format() {
    let dir = std::env::temp_dir().join(format!("axum-api-key-cli-new-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("keys.toml");
    let file = path.to_str().expect("path");
    // Without a format, a new file cannot be started: say how.
    let out = tool(&["keys", "create", "--file", file, "--id", "a"], b"");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("--format"),
        "{}",
        text(&out.stderr)
    );
    assert!(!path.exists());
    // A newcomer's first command: no id needed, one is made and said.
    let out = tool(
        &["keys", "create", "--file", file, "--format", "myapp"],
        b"",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let first = text(&out.stdout).trim().to_owned();
    assert!(first.starts_with("myapp_"), "{first}");
    let told = text(&out.stderr);
    let id = told
        .split('`')
        .nth(1)
        .expect("the new id, quoted in the message");
    assert!(
        id.starts_with("key-") && id.len() == 12,
        "a made id is `key-` and 8 hex digits: {told}"
    );
    assert!(
        !told.contains(&first),
        "the key goes to stdout only: {told}"
    );
    let listing = text(&tool(&["keys", "list", "--file", file], b"").stdout);
    assert!(listing.contains(id), "{listing}");
    // `--prefix` is still understood, as an alias.
    let out = tool(
        &[
            "keys", "create", "--file", file, "--id", "a", "--prefix", "myapp",
        ],
        b"",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    // The file's format is used; another prefix is refused, never mixed in.
    let out = tool(&["keys", "create", "--file", file, "--id", "b"], b"");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with("myapp_"));
    let out = tool(
        &[
            "keys", "create", "--file", file, "--id", "c", "--prefix", "other",
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("myapp"), "{}", text(&out.stderr));
    let keys = ApiKeys::from_file(&path).expect("read");
    assert_eq!(keys.len(), 3);
    assert!(keys.verify(first.as_bytes()).is_ok());
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn the_tool_never_fails_for_a_busy_writer() {
    let (path, _) = records_file("busy");
    let writer_path = path.clone();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stopping = std::sync::Arc::clone(&stop);
    // Another process's store changing the file as fast as it can.
    let writer = std::thread::spawn(move || {
        let keys = ApiKeys::from_file(&writer_path).expect("read");
        let format = keys.format().expect("format");
        let mut changes = 0;
        while !stopping.load(std::sync::atomic::Ordering::SeqCst) {
            keys.add(axum_api_key::Key::new(
                format!("w-{changes}"),
                format.generate(),
            ))
            .expect("add");
            changes += 1;
        }
        changes
    });
    let file = path.to_str().expect("path");
    for run in 0..40 {
        let out = tool(&["keys", "list", "--file", file], b"");
        assert!(out.status.success(), "run {run}: {}", text(&out.stderr));
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let changes = writer.join().expect("writer");
    assert!(changes > 0);
}

#[test]
fn keys_disable_enable_and_allow_ip_work_on_a_records_file() {
    let (path, first) = records_file("plans");
    let file = path.to_str().unwrap();
    let out = tool(&["keys", "disable", "--file", file, "--id", "first"], b"");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("Disabled 1 key(s) of `first`"));
    let keys = ApiKeys::from_file(&path).unwrap();
    assert_eq!(
        keys.verify(first.as_bytes()).unwrap_err(),
        axum_api_key::KeyError::Disabled
    );
    let listing = text(&tool(&["keys", "list", "--file", file], b"").stdout);
    assert!(listing.contains("first\tdisabled\t[]"), "{listing}");
    let out = tool(&["keys", "enable", "--file", file, "--id", "first"], b"");
    assert!(out.status.success(), "{}", text(&out.stderr));
    keys.reload().unwrap();
    assert!(keys.verify(first.as_bytes()).is_ok());

    let out = tool(
        &[
            "keys",
            "create",
            "--file",
            file,
            "--id",
            "office",
            "--allow-ip",
            "203.0.113.0/24",
            "--allow-ip",
            "2001:db8::1",
        ],
        b"",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let office = text(&out.stdout).trim_end().to_owned();
    keys.reload().unwrap();
    let key = keys.verify(office.as_bytes()).unwrap();
    assert!(key.allows("203.0.113.77".parse().unwrap()));
    assert!(key.allows("2001:db8::1".parse().unwrap()));
    assert!(!key.allows("2001:db8::2".parse().unwrap()));
    let listing = text(&tool(&["keys", "list", "--file", file], b"").stdout);
    assert!(
        listing.contains("office\tvalid\t[] from 203.0.113.0/24,2001:db8::1"),
        "{listing}"
    );

    // A key on a plan: credits and a refill, listed with what is left.
    let out = tool(
        &[
            "keys",
            "create",
            "--file",
            file,
            "--id",
            "plan",
            "--credits",
            "5",
            "--refill",
            "100/day",
        ],
        b"",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let listing = text(&tool(&["keys", "list", "--file", file], b"").stdout);
    assert!(
        listing.contains("plan\tvalid\t[] credits 5 refill 100/day"),
        "{listing}"
    );
    // A plan of several windows, shared under an identity.
    let out = tool(
        &[
            "keys",
            "create",
            "--file",
            file,
            "--id",
            "windows",
            "--rate-limit",
            "10/s,100000/day",
            "--identity",
            "acme",
        ],
        b"",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let windows = text(&out.stdout).trim_end().to_owned();
    keys.reload().unwrap();
    let key = keys.verify(windows.as_bytes()).unwrap();
    assert_eq!(
        key.rate_limits().map(|l| l.to_string()).collect::<Vec<_>>(),
        ["10/s", "100000/day"]
    );
    assert_eq!(key.identity(), Some("acme"));
    let listing = text(&tool(&["keys", "list", "--file", file], b"").stdout);
    assert!(
        listing.contains("windows\tvalid\t[] limited 10/s, 100000/day"),
        "{listing}"
    );
    for (flag, value, says) in [
        ("--rate-limit", "10/s,20/s", "same window"),
        ("--rate-limit", "10/2d", "calendar window"),
        ("--identity", "", "an identity is 1 to"),
    ] {
        let out = tool(
            &[
                "keys", "create", "--file", file, "--id", "bad-plan", flag, value,
            ],
            b"",
        );
        assert_eq!(out.status.code(), Some(2), "{flag} {value}");
        assert!(out.stdout.is_empty());
        assert!(text(&out.stderr).contains(says), "{}", text(&out.stderr));
    }
    let out = tool(
        &[
            "keys", "create", "--file", file, "--id", "p2", "--refill", "100/week",
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("`hour`, `day` or `month`"),
        "{}",
        text(&out.stderr)
    );

    // A network written wrong is refused before anything is made, with the fix.
    let out = tool(
        &[
            "keys",
            "create",
            "--file",
            file,
            "--id",
            "typo",
            "--allow-ip",
            "203.0.113.5/24",
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    assert!(
        text(&out.stderr).contains("write 203.0.113.0/24 for the block"),
        "{}",
        text(&out.stderr)
    );
    let out = tool(&["keys", "disable", "--file", file, "--id", "nobody"], b"");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("no key has this id"),
        "{}",
        text(&out.stderr)
    );
}
