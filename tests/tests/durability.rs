//! A store read from a records file keeps every change in the file: across restarts, across
//! processes changing the same file, and through a process killed mid-change.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use axum_api_key::{ApiKeys, ConfigErrorKind, Key, KeyError, KeyFormat, MAX_FINISHED_KEYS, digest};

fn temp_file(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "axum-api-key-durability-{}-{name}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    let path = dir.join("keys.toml");
    std::fs::write(&path, text).expect("the records file");
    path
}

const HEADER: &str =
    "# Keys of the orders API. Edit by hand or through the service.\nformat = \"dur\"\n\n";

/// A records file holding one generated key, `first`, and that key.
fn one_key_file(name: &str) -> (PathBuf, String) {
    let format = KeyFormat::new("dur").unwrap();
    let key = format.generate();
    let digest: String = digest(key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let text = format!(
        "{HEADER}[[keys]]\nid = \"first\"   # the first partner\ndigest = \"sha256:{digest}\"\nscopes = [\"orders:read\"]\n"
    );
    (temp_file(name, &text), key)
}

/// Waits until the file has settled, as a restart reads it (the store reads a file changed in
/// the last moment only once it has settled).
fn restart(path: &Path) -> ApiKeys {
    ApiKeys::from_file(path).expect("the records file reads back")
}

#[test]
fn a_revocation_survives_a_restart() {
    let (path, key) = one_key_file("revoke");
    let keys = ApiKeys::from_file(&path).unwrap();
    assert!(keys.verify(key.as_bytes()).is_ok());
    assert_eq!(keys.revoke("first").unwrap(), 1);
    assert_eq!(keys.verify(key.as_bytes()).unwrap_err(), KeyError::Revoked);

    let restarted = restart(&path);
    assert_eq!(
        restarted.verify(key.as_bytes()).unwrap_err(),
        KeyError::Revoked
    );
    // The file kept its comments and layout; the change is where the key is.
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.starts_with(HEADER), "{text}");
    assert!(text.contains("# the first partner"), "{text}");
    assert!(text.contains("revoked = true"), "{text}");
}

#[test]
fn a_rotation_survives_a_restart_with_its_grace_period() {
    let (path, old) = one_key_file("rotate");
    let keys = ApiKeys::from_file(&path).unwrap();
    let grace = Duration::from_secs(3_600);
    let new = keys.rotate("first", grace).unwrap();

    let restarted = restart(&path);
    let accepted = restarted.verify(new.as_bytes()).expect("the new key works");
    assert_eq!(accepted.id(), "first");
    assert_eq!(accepted.scopes().collect::<Vec<_>>(), ["orders:read"]);
    let old_key = restarted
        .verify(old.as_bytes())
        .expect("the old key, until its deadline");
    let deadline = old_key.expires_at().expect("a deadline");
    let expected = SystemTime::now() + grace;
    assert!(
        deadline <= expected + Duration::from_secs(2)
            && deadline + Duration::from_secs(5) >= expected,
        "the deadline is about an hour away"
    );

    // A grace period of nothing: the old key is refused, after a restart too.
    let newest = restarted.rotate("first", Duration::ZERO).unwrap();
    let again = restart(&path);
    assert_eq!(again.verify(old.as_bytes()).unwrap_err(), KeyError::Expired);
    assert_eq!(again.verify(new.as_bytes()).unwrap_err(), KeyError::Expired);
    assert!(again.verify(newest.as_bytes()).is_ok());
}

/// A holder rotating and revoking its key over and over does not grow the records file without
/// end: the finished keys past the newest `MAX_FINISHED_KEYS` leave the file, which keeps its
/// header comment, and a restart reads the same keys, the forgotten ones refused.
#[test]
fn rotations_and_revocations_by_a_holder_leave_the_file_bounded() {
    let (path, first) = one_key_file("forget");
    let keys = ApiKeys::from_file(&path).unwrap();
    let mut current = first.clone();
    let mut finished = Vec::new();
    for _ in 0..3 * MAX_FINISHED_KEYS {
        let rotated = keys
            .rotate_presented(&digest(current.as_bytes()), Duration::from_secs(3600))
            .unwrap();
        keys.revoke_presented(&digest(current.as_bytes())).unwrap();
        finished.push(std::mem::replace(&mut current, rotated.key().to_owned()));
    }
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.starts_with(HEADER), "{text}");
    assert_eq!(
        text.matches("[[keys]]").count(),
        MAX_FINISHED_KEYS + 2,
        "{text}"
    );
    let restarted = restart(&path);
    assert_eq!(restarted.len(), MAX_FINISHED_KEYS + 2);
    assert!(restarted.verify(current.as_bytes()).is_ok());
    assert_eq!(
        restarted.verify(first.as_bytes()).unwrap_err(),
        KeyError::Unknown,
        "the first key, forgotten"
    );
    assert_eq!(
        restarted
            .verify(finished.last().unwrap().as_bytes())
            .unwrap_err(),
        KeyError::Revoked,
        "the newest finished key, kept"
    );
}

#[test]
fn an_added_key_survives_a_restart_and_the_file_never_holds_it() {
    let (path, _) = one_key_file("add");
    let keys = ApiKeys::from_file(&path).unwrap();
    let key = KeyFormat::new("dur").unwrap().generate();
    keys.add(
        Key::new("second", &key)
            .scopes(["orders:write"])
            .metadata("owner", "Partner B"),
    )
    .unwrap();
    let restarted = restart(&path);
    let accepted = restarted.verify(key.as_bytes()).unwrap();
    assert_eq!(accepted.metadata("owner"), Some("Partner B"));
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(!text.contains(&key), "the key itself is never written");
}

#[test]
fn a_change_that_cannot_be_written_is_not_made() {
    let (path, key) = one_key_file("unwritable");
    let keys = ApiKeys::from_file(&path).unwrap();
    // Someone breaks the file by hand: the change cannot be written, and is not made.
    std::fs::write(&path, "[[keys]\nid = \"broken\"\n").unwrap();
    let error = keys.revoke("first").unwrap_err();
    assert_eq!(error.kind(), ConfigErrorKind::FileSyntax);
    assert!(
        keys.verify(key.as_bytes()).is_ok(),
        "the store is as it was"
    );
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "[[keys]\nid = \"broken\"\n",
        "the file is as it was"
    );

    // A key another process added under the same id meanwhile refuses this addition.
    let (path, _) = one_key_file("conflict");
    let here = ApiKeys::from_file(&path).unwrap();
    let there = ApiKeys::from_file(&path).unwrap();
    let format = KeyFormat::new("dur").unwrap();
    there.add(Key::new("second", format.generate())).unwrap();
    let error = here.add(Key::new("second", format.generate())).unwrap_err();
    assert_eq!(error.kind(), ConfigErrorKind::DuplicateId);
    assert_eq!(restart(&path).len(), 2);
}

#[test]
fn a_change_takes_along_what_another_process_wrote() {
    let (path, _) = one_key_file("merge");
    let here = ApiKeys::from_file(&path).unwrap();
    let there = ApiKeys::from_file(&path).unwrap();
    let format = KeyFormat::new("dur").unwrap();
    let theirs = format.generate();
    there.add(Key::new("theirs", &theirs)).unwrap();
    here.add(Key::new("ours", format.generate())).unwrap();
    assert!(here.verify(theirs.as_bytes()).is_ok());
    assert_eq!(restart(&path).len(), 3);
}

/// Runs this test binary's `child` test in a new process, adding keys to `path`.
fn spawn_child(path: &Path, prefix: &str, count: usize) -> Command {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args([
            "child",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("DURABILITY_FILE", path)
        .env("DURABILITY_PREFIX", prefix)
        .env("DURABILITY_COUNT", count.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    command
}

/// Not a test of its own: the process the other tests start and kill.
#[test]
#[ignore = "run by the other tests, as a child process"]
fn child() {
    use std::io::Write;
    let path = std::env::var("DURABILITY_FILE").unwrap();
    let prefix = std::env::var("DURABILITY_PREFIX").unwrap();
    let count: usize = std::env::var("DURABILITY_COUNT").unwrap().parse().unwrap();
    let keys = ApiKeys::from_file(&path).unwrap();
    let format = KeyFormat::new("dur").unwrap();
    let mut out = std::io::stdout();
    for i in 0..count {
        let id = format!("{prefix}-{i}");
        keys.add(Key::new(&id, format.generate())).unwrap();
        if i % 3 == 2 {
            keys.revoke(&id).unwrap();
        }
        // Said only once the change returned.
        writeln!(out, "done {id}").unwrap();
        out.flush().unwrap();
    }
}

fn ids_in(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap();
    let value: toml::Table = text.parse().expect("the file parses");
    value["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|key| key["id"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn two_processes_changing_one_file_lose_nothing() {
    let (path, _) = one_key_file("two-processes");
    let mut a = spawn_child(&path, "a", 40).spawn().unwrap();
    let mut b = spawn_child(&path, "b", 40).spawn().unwrap();
    assert!(a.wait().unwrap().success());
    assert!(b.wait().unwrap().success());
    let ids = ids_in(&path);
    assert_eq!(ids.len(), 81, "{ids:?}");
    for prefix in ["a", "b"] {
        for i in 0..40 {
            assert!(ids.contains(&format!("{prefix}-{i}")), "{prefix}-{i} lost");
        }
    }
    let keys = restart(&path);
    assert_eq!(keys.len(), 81);
}

#[test]
fn a_process_killed_mid_change_leaves_a_whole_file_with_every_returned_change() {
    use std::time::Instant;
    let mut seed = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64
        | 1;
    for round in 0..12 {
        let (path, _) = one_key_file(&format!("killed-{round}"));
        let mut process = spawn_child(&path, "k", 10_000).spawn().unwrap();
        let stdout = process.stdout.take().unwrap();
        let (sender, receiver) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(id) = line.strip_prefix("done ") {
                    let _ = sender.send(id.to_owned());
                }
            }
        });
        // A random moment within the first 400 ms of changes.
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let wait = Duration::from_millis(20 + seed % 400);
        let started = Instant::now();
        while started.elapsed() < wait {
            std::thread::sleep(Duration::from_millis(5));
        }
        process.kill().unwrap(); // SIGKILL
        process.wait().unwrap();
        reader.join().unwrap();
        let returned: Vec<String> = receiver.try_iter().collect();

        let ids = ids_in(&path);
        for id in &returned {
            assert!(
                ids.contains(id),
                "round {round}: {id} returned but is not in the file"
            );
        }
        let keys = restart(&path);
        assert!(keys.len() > returned.len(), "round {round}");
        // No temporary file is mistaken for the records file, and the directory holds no
        // more than the file, its lock, and at most one temporary file of the killed process.
        let others = std::fs::read_dir(path.parent().unwrap()).unwrap().count();
        assert!(others <= 3, "round {round}: {others} files");
    }
}

#[test]
fn a_change_racing_a_hand_edit_in_place_never_writes_back_half_a_file() {
    use std::io::Write;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let format = KeyFormat::new("dur").unwrap();
    let mut text = String::from(HEADER);
    for i in 0..40 {
        let hex: String = digest(format.generate().as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        text.push_str(&format!(
            "[[keys]]\nid = \"hand-{i}\"\ndigest = \"sha256:{hex}\"\n\n"
        ));
    }
    let path = temp_file("hand-edit", &text);
    let keys = ApiKeys::from_file(&path).unwrap();

    let done = Arc::new(AtomicBool::new(false));
    let editor = {
        let (path, text, done) = (path.clone(), text.clone(), Arc::clone(&done));
        std::thread::spawn(move || {
            while !done.load(Ordering::SeqCst) {
                // An editor saving in place, slowly.
                let mut file = std::fs::File::create(&path).unwrap();
                for piece in text.as_bytes().chunks(97) {
                    file.write_all(piece).unwrap();
                    std::thread::sleep(Duration::from_millis(1));
                }
                drop(file);
                std::thread::sleep(Duration::from_millis(150));
            }
        })
    };
    let started = std::time::Instant::now();
    let mut added = 0;
    while started.elapsed() < Duration::from_secs(2) {
        if keys
            .add(Key::new(format!("tool-{added}"), format.generate()))
            .is_ok()
        {
            added += 1;
            // What was written (the store is the file it wrote, read back) holds every key of
            // the hand-edited file: never a file read half way through a save and written back.
            let ids: Vec<String> = keys
                .list()
                .iter()
                .map(|k| k.key().id().to_owned())
                .collect();
            for i in 0..40 {
                assert!(
                    ids.contains(&format!("hand-{i}")),
                    "hand-{i} lost after a change"
                );
            }
        }
    }
    done.store(true, Ordering::SeqCst);
    editor.join().unwrap();
    assert!(added > 3, "{added} changes went through");
}

#[test]
fn an_endless_grace_period_is_written_as_the_last_time_a_file_holds() {
    let (path, old) = one_key_file("endless");
    let keys = ApiKeys::from_file(&path).unwrap();
    let new = keys.rotate("first", Duration::MAX).unwrap();
    let restarted = restart(&path);
    assert!(restarted.verify(new.as_bytes()).is_ok());
    let kept = restarted.verify(old.as_bytes()).unwrap();
    assert_eq!(
        kept.expires_at(),
        Some(SystemTime::UNIX_EPOCH + Duration::from_secs(253_402_300_799))
    );
}

/// A records file reached through a symlink (a mounted secret, a config-management link) is
/// changed where it lives: the link stays a link, and its target sees every change, with its
/// line endings and byte-order mark as the operator made them.
#[cfg(unix)]
#[test]
fn a_linked_file_is_changed_through_its_link_and_keeps_its_form() {
    let dir = std::env::temp_dir().join(format!("axum-api-key-linked-{}", std::process::id()));
    let real = dir.join("data");
    std::fs::create_dir_all(&real).expect("dir");
    let format = KeyFormat::new("lk").expect("format");
    let key = format.generate();
    let hex: String = digest(key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let text = format!(
        "\u{feff}# operator's file\r\nformat = \"lk\"\r\n\r\n[[keys]]\r\nid = \"partner-a\"  # A\r\n\
         digest = \"sha256:{hex}\"\r\n"
    );
    let target = real.join("keys.toml");
    std::fs::write(&target, &text).expect("write");
    let link = dir.join("keys.toml");
    std::os::unix::fs::symlink(&target, &link).expect("symlink");

    let keys = ApiKeys::from_file(&link).expect("read through the link");
    let added = format.generate();
    keys.add(Key::new("partner-b", &added)).expect("add");
    keys.revoke("partner-a").expect("revoke");
    let rotated = keys
        .rotate("partner-b", Duration::from_secs(60))
        .expect("rotate");

    assert!(
        std::fs::symlink_metadata(&link)
            .expect("link")
            .file_type()
            .is_symlink(),
        "the link is still a link"
    );
    let written = std::fs::read_to_string(&target).expect("read the target");
    assert!(
        written.starts_with("\u{feff}# operator's file\r\n"),
        "{written:?}"
    );
    assert!(
        !written.replace("\r\n", "").contains('\n'),
        "every line ends CRLF: {written:?}"
    );
    assert!(
        written.contains("id = \"partner-a\"  # A\r\n"),
        "{written:?}"
    );
    assert!(
        !dir.join("keys.toml.lock").exists(),
        "the lock is beside the target"
    );
    // A new process reading through the link sees every change.
    let again = ApiKeys::from_file(&link).expect("read again");
    assert_eq!(again.verify(key.as_bytes()).unwrap_err(), KeyError::Revoked);
    assert!(again.verify(added.as_bytes()).is_ok());
    assert!(again.verify(rotated.as_bytes()).is_ok());
    std::fs::remove_dir_all(&dir).ok();
}

/// A change to a file of many records costs about what reading it costs, not what parsing it
/// once per record would: 20,000 records change in well under the time the quadratic version
/// took to read 2,500 (no timing is asserted; the file is checked whole after each change).
#[test]
fn many_records_change_and_read_back_whole() {
    let mut text = String::from("# many partners\n");
    for i in 0..20_000 {
        let hex: String = digest(format!("many-{i}").as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        text.push_str(&format!(
            "\n[[keys]]\nid = \"p-{i}\"\ndigest = \"sha256:{hex}\"\n"
        ));
    }
    let path = temp_file("many-records.toml", &text);
    let keys = ApiKeys::from_file(&path).expect("read");
    assert_eq!(keys.len(), 20_000);
    keys.revoke("p-19999").expect("revoke the last");
    keys.revoke("p-0").expect("revoke the first");
    keys.add(Key::new("new", "new-key-0123456789abc"))
        .expect("add");
    let again = ApiKeys::from_file(&path).expect("read again");
    assert_eq!(again.len(), 20_001);
    assert_eq!(again.verify(b"many-0").unwrap_err(), KeyError::Revoked);
    assert_eq!(again.verify(b"many-19999").unwrap_err(), KeyError::Revoked);
    assert!(again.verify(b"many-5000").is_ok());
}

/// The disk fills up: every change fails whole, as it was never asked. The file is as it was,
/// byte for byte, with no half-written file beside it; the store answers as before; no key
/// is in an error; and the store changes again once there is room.
///
/// A full disk is made for a child process alone, by a limit on the size of the files it may
/// write (`ulimit -f`, with the signal it raises ignored, so that a write past it fails as a
/// write to a full disk does, part way through).
#[test]
#[cfg(unix)]
fn a_full_disk_fails_each_change_whole_and_loses_nothing() {
    let format = KeyFormat::new("dur").unwrap();
    let mut text = HEADER.to_owned();
    let mut keys = Vec::new();
    for i in 0..60 {
        let key = format.generate();
        let hex: String = digest(key.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        text.push_str(&format!(
            "[[keys]]\nid = \"partner-{i}\"\ndigest = \"sha256:{hex}\"\nscopes = [\"orders:read\"]\n\n"
        ));
        keys.push(key);
    }
    let path = temp_file("full-disk", &text);
    assert!(text.len() > 6 * 1024, "larger than the limit below");
    let output = Command::new("sh")
        .arg("-c")
        .arg("trap '' XFSZ; ulimit -f 2 && exec \"$@\"")
        .arg("sh")
        .arg(std::env::current_exe().unwrap())
        .args(["full_disk_child", "--exact", "--ignored", "--nocapture"])
        .env("DURABILITY_FILE", &path)
        .env("DURABILITY_KEY", &keys[3])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && said.contains("every change failed whole"),
        "{said}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        text,
        "the file is as it was"
    );
    let beside: Vec<_> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name != "keys.toml" && name != "keys.toml.lock")
        .collect();
    assert!(
        beside.is_empty(),
        "nothing half-written is left: {beside:?}"
    );
    for key in &keys {
        assert!(
            !said.contains(key.as_str()),
            "a key is in what the child said"
        );
    }

    // With room again, the same store changes, and a restart reads the change.
    let store = ApiKeys::from_file(&path).unwrap();
    assert_eq!(store.revoke("partner-3").unwrap(), 1);
    assert_eq!(
        restart(&path)
            .verify(keys[3].as_bytes())
            .map(|key| key.id().to_owned()),
        Err(KeyError::Revoked)
    );
}

/// Not a test of its own: the process [`a_full_disk_fails_each_change_whole_and_loses_nothing`]
/// starts with a limit on the size of the files it writes.
#[test]
#[ignore = "run by another test, as a child process"]
fn full_disk_child() {
    use std::io::Write;
    let mut out = std::io::stdout();
    let path = std::env::var("DURABILITY_FILE").unwrap();
    let key = std::env::var("DURABILITY_KEY").unwrap();
    let keys = ApiKeys::from_file(&path).unwrap();
    let format = KeyFormat::new("dur").unwrap();
    let added = format.generate();
    let presented = digest(key.as_bytes());
    let errors = [
        keys.revoke("partner-3").unwrap_err(),
        keys.add(Key::new("partner-new", &added)).unwrap_err(),
        keys.rotate("partner-3", Duration::from_secs(60))
            .unwrap_err(),
        keys.rotate_presented(&presented, Duration::from_secs(60))
            .unwrap_err(),
        keys.disable("partner-3").unwrap_err(),
    ];
    for error in &errors {
        assert_eq!(error.kind(), ConfigErrorKind::FileUnwritable, "{error}");
        assert!(!error.to_string().contains(&key) && !error.to_string().contains(&added));
        writeln!(out, "{error}").unwrap();
    }
    // The store answers as before the changes were asked.
    let found = keys.verify(key.as_bytes()).expect("the key still works");
    assert_eq!(found.id(), "partner-3");
    assert_eq!(
        keys.verify(added.as_bytes()).map(|_| ()),
        Err(KeyError::Unknown)
    );
    assert_eq!(keys.len(), 60);
    writeln!(out, "every change failed whole").unwrap();
}
