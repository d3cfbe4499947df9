//! The durability contract under attack: SIGKILL at random moments, a full disk, and files or
//! servers that are not what they should be. Nothing acknowledged may be lost, nothing half
//! written may appear, and every failure must say what is wrong.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kurier_store::{NewQueueEntry, Recipient, Store, StoreError, now};

/// The body of message `i`: recognizable, a few KiB to a few hundred KiB, checkable byte for byte.
fn body(i: u64) -> Vec<u8> {
    let mut b =
        format!("Message-ID: <{i}@crash.test>\r\nSubject: message {i}\r\n\r\n").into_bytes();
    let len = 2048 + (i * 7919 % 200_000) as usize;
    b.extend((0..len).map(|k| b'a' + ((k as u64 * 31 + i) % 26) as u8));
    b.extend_from_slice(b"\r\n");
    b
}

fn index_of(body: &[u8]) -> Option<u64> {
    let s = std::str::from_utf8(&body[..body.len().min(64)]).ok()?;
    s.strip_prefix("Message-ID: <")?
        .split('@')
        .next()?
        .parse()
        .ok()
}

const ACCOUNT: &str = "crash@durability.test";

async fn prepare(store: &dyn Store) {
    match store.add_domain("durability.test").await {
        Ok(_) | Err(StoreError::Exists(_)) => {}
        Err(e) => panic!("{e}"),
    }
    match store.add_account(ACCOUNT, "pw", None).await {
        Ok(_) | Err(StoreError::Exists(_)) => {}
        Err(e) => panic!("{e}"),
    }
}

/// Child side: appends (even i, as SMTP delivery does) or enqueues (odd i) forever and prints
/// `ACK i` after each call returned Ok. Runs only when the parent sets KURIER_CRASH_STORE.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "the child process of the SIGKILL tests; they run it"]
async fn crash_child() {
    let Ok(url) = std::env::var("KURIER_CRASH_STORE") else {
        return;
    };
    let start: u64 = std::env::var("KURIER_CRASH_START")
        .unwrap()
        .parse()
        .unwrap();
    let store = kurier_store::open(&url).await.unwrap();
    prepare(&*store).await;
    let Recipient::Local(accounts) = store.resolve(ACCOUNT).await.unwrap() else {
        panic!()
    };
    let id = accounts[0].id;
    println!("READY");
    for i in start.. {
        if i % 2 == 0 {
            store.deliver(&[id], &body(i)).await.unwrap();
        } else {
            let e = NewQueueEntry {
                sender: format!("{i}@crash.test"),
                recipients: vec![("r@remote.test".into(), Default::default())],
                require_tls: false,
                dsn: Default::default(),
            };
            store.enqueue(&e, &body(i)).await.unwrap();
        }
        println!("ACK {i}");
    }
}

/// Runs the child against `url`, kills it with SIGKILL at random moments, restarts it, and
/// finally checks every acknowledged message.
async fn kill_and_check(url: &str) {
    let exe = std::env::current_exe().unwrap();
    let mut acked: Vec<u64> = Vec::new();
    let mut next = 0u64;
    for round in 0..6 {
        let mut child = Command::new(&exe)
            .args([
                "crash_child",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("KURIER_CRASH_STORE", url)
            .env("KURIER_CRASH_START", next.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        // Wait until it is ready, then let it work for a random while.
        let deadline = Instant::now() + Duration::from_secs(60);
        // libtest may print "test crash_child ... " in front of the first line.
        while !rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap()
            .ends_with("READY")
        {
            assert!(Instant::now() < deadline, "child never got ready");
        }
        let mut r = [0u8; 2];
        openssl::rand::rand_bytes(&mut r).unwrap();
        let wait = 100 + (u16::from_le_bytes(r) % 400) as u64 + round * 20;
        std::thread::sleep(Duration::from_millis(wait));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        reader.join().unwrap();
        for line in rx.try_iter() {
            if let Some(i) = line.strip_prefix("ACK ")
                && !i.is_empty()
            {
                // The last line may be cut off by the kill; it then does not count as acknowledged.
                let Ok(i) = i.parse::<u64>() else { continue };
                acked.push(i);
                next = next.max(i + 1);
            }
        }
        // A message in flight at the kill may or may not have been stored: skip its number.
        next += 1;
    }
    assert!(
        acked.len() >= 6,
        "the child acknowledged too little to prove anything: {acked:?}"
    );

    let store = kurier_store::open(url).await.unwrap();
    let Recipient::Local(accounts) = store.resolve(ACCOUNT).await.unwrap() else {
        panic!()
    };
    let inbox = store
        .mailbox(accounts[0].id, "INBOX")
        .await
        .unwrap()
        .unwrap();
    let mut stored = std::collections::HashMap::new();
    for m in store.messages(inbox.id).await.unwrap() {
        let b = store.message_body(inbox.id, m.uid).await.unwrap().unwrap();
        assert_eq!(m.size, b.len() as u64);
        let i = index_of(&b).expect("a stored message is whole");
        assert_eq!(b, body(i), "message {i} is intact");
        stored.insert(i, ());
    }
    for e in store.queue().await.unwrap() {
        let b = store.queue_body(e.id).await.unwrap().unwrap();
        let i = index_of(&b).expect("a queued message is whole");
        assert_eq!(b, body(i), "queued message {i} is intact");
        assert_eq!(e.recipients.len(), 1);
        stored.insert(i, ());
    }
    let lost: Vec<_> = acked.iter().filter(|i| !stored.contains_key(i)).collect();
    assert!(lost.is_empty(), "acknowledged but lost: {lost:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_survives_sigkill_without_losing_an_acknowledged_message() {
    let dir = tempfile::tempdir().unwrap();
    kill_and_check(&format!(
        "sqlite:{}",
        dir.path().join("kurier.db").display()
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_survives_sigkill_without_losing_an_acknowledged_message() {
    kill_and_check(&common::test_database().await).await;
}

#[tokio::test]
async fn a_foreign_sqlite_file_is_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("other.db");
    let c = rusqlite::Connection::open(&path).unwrap();
    c.execute_batch("CREATE TABLE contacts (name TEXT); INSERT INTO contacts VALUES ('x');")
        .unwrap();
    drop(c);
    let e = kurier_store::open(&format!("sqlite:{}", path.display()))
        .await
        .err()
        .unwrap();
    let msg = e.to_string();
    assert!(
        msg.contains("another program") && msg.contains("other.db"),
        "{msg}"
    );
    // The foreign data is untouched.
    let c = rusqlite::Connection::open(&path).unwrap();
    let n: i64 = c
        .query_row("SELECT count(*) FROM contacts", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 1);
}

#[tokio::test]
async fn a_corrupt_sqlite_file_is_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kurier.db");
    std::fs::write(&path, b"this is certainly not an SQLite database, just text that is long enough to look like a header").unwrap();
    let e = kurier_store::open(&format!("sqlite:{}", path.display()))
        .await
        .err()
        .unwrap();
    let msg = e.to_string();
    assert!(
        msg.contains("kurier.db") && msg.contains("not a Kurier database or is damaged"),
        "{msg}"
    );
}

/// A database made by the first release (schema 1) is migrated on open and keeps its data.
#[tokio::test]
async fn an_older_schema_is_migrated_and_keeps_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kurier.db");
    {
        // Exactly what schema version 1 made, written without the store.
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute_batch(include_str!("fixtures/schema-v1.sql"))
            .unwrap();
        c.execute_batch(
            "PRAGMA application_id = 1263882825; PRAGMA user_version = 1; \
             INSERT INTO domains VALUES ('old.test', 1); \
             INSERT INTO accounts (address, domain, password, created) VALUES ('a@old.test', 'old.test', 'x', 1); \
             INSERT INTO accounts (address, domain, password, created) VALUES ('b@old.test', 'old.test', 'x', 1); \
             INSERT INTO aliases VALUES ('team@old.test', 'old.test', 'a@old.test' || char(10) || 'b@old.test'); \
             INSERT INTO aliases VALUES ('@old.test', 'old.test', 'b@old.test');",
        )
        .unwrap();
    }
    let store = kurier_store::open(&format!("sqlite:{}", path.display()))
        .await
        .unwrap();
    assert_eq!(store.domains().await.unwrap()[0].name, "old.test");
    // Schema 7 split the alias targets into their own indexed rows.
    assert_eq!(
        store.sender_aliases("b@old.test").await.unwrap(),
        ["team@old.test"]
    );
    assert_eq!(
        store.sender_aliases("a@old.test").await.unwrap(),
        ["team@old.test"]
    );
    store
        .set_domain_setting("old.test", "k", Some("v"))
        .await
        .unwrap();
    let v: i64 = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert!(v >= 2, "migrated to the current schema, got {v}");
}

#[tokio::test]
async fn a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kurier.db");
    let url = format!("sqlite:{}", path.display());
    drop(kurier_store::open(&url).await.unwrap());
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch("PRAGMA user_version = 999")
        .unwrap();
    let msg = kurier_store::open(&url).await.err().unwrap().to_string();
    assert!(msg.contains("upgrade Kurier"), "{msg}");
}

#[tokio::test]
async fn an_unreachable_postgres_is_a_temporary_error() {
    let t = Instant::now();
    let e = kurier_store::open("postgres://kurier@127.0.0.1:1/kurier")
        .await
        .err()
        .unwrap();
    assert!(e.is_temporary(), "{e}");
    assert!(e.to_string().contains("PostgreSQL"), "{e}");
    assert!(t.elapsed() < Duration::from_secs(30));
    let e = kurier_store::open("mysql://x").await.err().unwrap();
    assert!(e.to_string().contains("sqlite:"), "{e}");
}

#[tokio::test]
async fn a_foreign_postgres_database_is_refused() {
    let url = common::test_database().await;
    let conninfo = url.strip_prefix("postgres:").unwrap();
    let (c, conn) = tokio_postgres::connect(conninfo, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    c.batch_execute("CREATE TABLE invoices (id INT)")
        .await
        .unwrap();
    let msg = kurier_store::open(&url).await.err().unwrap().to_string();
    assert!(msg.contains("other tables"), "{msg}");
}

/// Child side of the full-disk test: runs inside a private mount namespace with a 2 MiB tmpfs.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "the child process of the full-disk test; it runs it"]
async fn full_disk_child() {
    let Ok(dir) = std::env::var("KURIER_FULL_DISK_DIR") else {
        return;
    };
    let store = kurier_store::open(&format!("sqlite:{dir}/kurier.db"))
        .await
        .unwrap();
    prepare(&*store).await;
    let Recipient::Local(accounts) = store.resolve(ACCOUNT).await.unwrap() else {
        panic!()
    };
    let inbox = store
        .mailbox(accounts[0].id, "INBOX")
        .await
        .unwrap()
        .unwrap();
    let mut acked = Vec::new();
    let failure = loop {
        let i = acked.len() as u64;
        match store.append(inbox.id, &body(i * 2), &[], now()).await {
            Ok(a) => acked.push((a.uid, i * 2)),
            Err(e) => break e,
        }
        assert!(acked.len() < 1000, "the disk never filled");
    };
    assert!(
        failure.is_temporary(),
        "a full disk is a temporary failure: {failure}"
    );
    let msgs = store.messages(inbox.id).await.unwrap();
    assert_eq!(
        msgs.len(),
        acked.len(),
        "the failed append left nothing behind"
    );
    for (uid, i) in &acked {
        assert_eq!(
            store.message_body(inbox.id, *uid).await.unwrap().unwrap(),
            body(*i)
        );
    }
    println!("FULL-DISK-OK {} {failure}", acked.len());
}

#[test]
fn a_full_disk_is_a_temporary_error_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    // A user+mount namespace lets the test mount a small tmpfs without touching the host.
    let out = Command::new("unshare")
        .args(["--user", "--map-root-user", "--mount", "sh", "-c"])
        .arg("mount -t tmpfs -o size=2m kurier-full \"$0\" && KURIER_FULL_DISK_DIR=\"$0\" exec \"$1\" full_disk_child --exact --ignored --nocapture --test-threads=1")
        .arg(dir.path())
        .arg(&exe)
        .output()
        .expect("unshare (util-linux) runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("FULL-DISK-OK"),
        "child failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
