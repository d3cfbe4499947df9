//! `kurier domain|user|alias` against a real store, also while the server runs, and the demo
//! account of `serve --dev`.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod support;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use support::Server;

/// Runs `kurier ARGS --dev --data DIR` with `stdin` as standard input.
fn kurier(dir: &Path, args: &[&str], stdin: &str) -> (i32, String, String) {
    let data = dir.join("data");
    let mut child = Command::new(support::bin())
        .args(args)
        .args(["--dev", "--data", data.to_str().unwrap()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn store(dir: &Path) -> std::sync::Arc<dyn kurier_store::Store> {
    kurier_store::open(&format!("sqlite:{}", dir.join("data/kurier.db").display()))
        .await
        .unwrap()
}

#[tokio::test]
async fn domains_users_and_aliases_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    assert_eq!(kurier(d, &["domain", "add", "Example.ORG"], "").0, 0);
    let (code, out, _) = kurier(d, &["domain", "list"], "");
    assert_eq!((code, out.as_str()), (0, "example.org\n"));

    let (code, out, err) = kurier(
        d,
        &["user", "add", "alice@example.org", "--quota", "10M"],
        "s3cret pass\n",
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("added account alice@example.org"), "{out}");
    let s = store(d).await;
    assert!(
        s.authenticate("alice@example.org", "s3cret pass")
            .await
            .unwrap()
            .is_some(),
        "password from stdin"
    );
    assert_eq!(
        s.account("alice@example.org").await.unwrap().unwrap().quota,
        Some(10 << 20)
    );

    let (code, _, err) = kurier(d, &["user", "passwd", "alice@example.org"], "another one\n");
    assert_eq!(code, 0, "{err}");
    assert!(
        s.authenticate("alice@example.org", "another one")
            .await
            .unwrap()
            .is_some()
    );

    assert_eq!(
        kurier(
            d,
            &["alias", "add", "@example.org", "alice@example.org"],
            ""
        )
        .0,
        0
    );
    let (_, out, _) = kurier(d, &["alias", "list"], "");
    assert_eq!(out, "@example.org -> alice@example.org\n");
    let (_, out, _) = kurier(d, &["user", "list", "example.org"], "");
    assert!(out.starts_with("alice@example.org  0B of 10.0M"), "{out}");

    // Errors say what is wrong and change nothing.
    let (code, _, err) = kurier(d, &["user", "add", "bob@nothosted.test"], "pw\n");
    assert_eq!(code, 1);
    assert!(
        err.contains("domain nothosted.test") && err.contains("kurier domain add"),
        "{err}"
    );
    let (code, _, err) = kurier(d, &["user", "add", "carol@example.org"], "");
    assert_eq!(code, 1);
    assert!(err.contains("empty password"), "{err}");
    let (code, _, err) = kurier(
        d,
        &["user", "add", "dave@example.org", "--quota", "lots"],
        "pw\n",
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--quota") && err.contains("fix:"), "{err}");
    let (code, _, err) = kurier(d, &["domain", "del", "example.org"], "");
    assert_eq!(code, 1);
    assert!(err.contains("delete them first"), "{err}");
    // Passwords are never taken from the command line.
    let (code, _, _) = kurier(
        d,
        &["user", "add", "eve@example.org", "--password", "x"],
        "",
    );
    assert_eq!(code, 2);
    assert!(s.account("eve@example.org").await.unwrap().is_none());

    // DKIM keys: generated for a hosted domain, shown again later, refused for others.
    let (code, record, err) = kurier(
        d,
        &[
            "dkim",
            "generate",
            "example.org",
            "--algorithm",
            "ed25519",
            "--selector",
            "s1",
        ],
        "",
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        record.starts_with("s1._domainkey.example.org. IN TXT") && record.contains("k=ed25519; p="),
        "{record}"
    );
    assert_eq!(kurier(d, &["dkim", "show", "example.org"], "").1, record);
    let (code, _, err) = kurier(d, &["dkim", "generate", "nothosted.test"], "");
    assert_eq!(code, 1);
    assert!(err.contains("nothosted.test"), "{err}");
    assert_eq!(kurier(d, &["alias", "del", "@example.org"], "").0, 0);
    assert_eq!(kurier(d, &["user", "del", "alice@example.org"], "").0, 0);
    assert_eq!(kurier(d, &["domain", "del", "example.org"], "").0, 0);
    assert!(
        s.domains()
            .await
            .unwrap()
            .iter()
            .all(|d| d.name != "example.org")
    );
}

#[tokio::test]
async fn the_cli_works_while_the_server_runs_and_dev_has_a_demo_account() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = d.join("data");
    let mut server = Command::new(support::bin());
    server
        .args([
            "serve",
            "--dev",
            "--data",
            data.to_str().unwrap(),
            "--listen-ip",
            "127.0.10.40",
        ])
        .env("KURIER_DEV_PASSWORD", "demo password");
    let server = Server::from_command(server, d);
    let banner = server.wait_for_stdout("ready.");
    assert!(
        banner.contains("demo@example.test") && banner.contains("from KURIER_DEV_PASSWORD"),
        "{banner}"
    );
    let s = store(d).await;
    assert!(
        s.authenticate("demo@example.test", "demo password")
            .await
            .unwrap()
            .is_some()
    );

    // While the server holds the store open.
    let (code, _, err) = kurier(d, &["user", "add", "second@example.test"], "pw\n");
    assert_eq!(code, 0, "{err}");
    assert!(
        s.authenticate("second@example.test", "pw")
            .await
            .unwrap()
            .is_some()
    );
}

#[test]
fn a_bad_store_url_is_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("k.toml");
    std::fs::write(&f, "[store]\nurl = \"mysql://db/kurier\"\n").unwrap();
    let (code, _, err) = support::run(&["domain", "list", "--config", f.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("store.url") && err.contains("fix:"), "{err}");
}

/// `kurier sieve`: a script is checked before it is stored (the error names line and column),
/// listed with the active one marked, printed back, activated and deleted (not while active).
#[test]
fn sieve_scripts_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    assert_eq!(kurier(d, &["domain", "add", "example.org"], "").0, 0);
    assert_eq!(kurier(d, &["user", "add", "ann@example.org"], "pw\n").0, 0);
    let good =
        "require \"fileinto\";\nif header :contains \"list-id\" \"acme\" { fileinto \"Lists\"; }\n";
    let (code, _, err) = kurier(
        d,
        &["sieve", "put", "ann@example.org", "lists", "--activate"],
        good,
    );
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = kurier(
        d,
        &["sieve", "put", "ann@example.org", "broken"],
        "keep;\nif header :bogus \"a\" \"b\" { }\n",
    );
    assert_ne!(code, 0);
    assert!(err.contains("line 2, column 11"), "{err}");
    assert!(err.contains("does not know :bogus"), "{err}");
    let (code, _, err) = kurier(d, &["sieve", "put", "ann@example.org", "plain"], "keep;\n");
    assert_eq!(code, 0, "{err}");
    let (_, out, _) = kurier(d, &["sieve", "list", "ann@example.org"], "");
    assert_eq!(out, "lists  (active)\nplain\n");
    let (_, out, _) = kurier(d, &["sieve", "get", "ann@example.org", "lists"], "");
    assert_eq!(out, good);
    let (code, _, err) = kurier(d, &["sieve", "delete", "ann@example.org", "lists"], "");
    assert_ne!(code, 0);
    assert!(err.contains("is active"), "{err}");
    assert_eq!(
        kurier(d, &["sieve", "activate", "ann@example.org", "plain"], "").0,
        0
    );
    assert_eq!(
        kurier(d, &["sieve", "delete", "ann@example.org", "lists"], "").0,
        0
    );
    let (_, out, _) = kurier(d, &["sieve", "list", "ann@example.org"], "");
    assert_eq!(out, "plain  (active)\n");
    let (code, _, err) = kurier(d, &["sieve", "list", "nobody@example.org"], "");
    assert_ne!(code, 0);
    assert!(err.contains("no account nobody@example.org"), "{err}");
    // A 1 MB script is refused before it is read whole.
    let (code, _, err) = kurier(
        d,
        &["sieve", "put", "ann@example.org", "huge"],
        &"#".repeat((1 << 20) + 2).replace("##", "#\n"),
    );
    assert_ne!(code, 0);
    assert!(err.contains("larger than"), "{err}");
}

/// `kurier user admin` grants and revokes the web administration's roles; `kurier token`
/// makes, lists and deletes API tokens, printing a token once (ADMIN-1).
#[test]
fn admin_roles_and_api_tokens_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    assert_eq!(kurier(d, &["domain", "add", "example.org"], "").0, 0);
    assert_eq!(kurier(d, &["user", "add", "ann@example.org"], "pw\n").0, 0);
    let (code, out, err) = kurier(d, &["user", "admin", "ann@example.org"], "");
    assert_eq!(
        (code, out.as_str()),
        (0, "ann@example.org administers the server\n"),
        "{err}"
    );
    let (code, out, _) = kurier(
        d,
        &[
            "user",
            "admin",
            "ann@example.org",
            "--domain",
            "example.org",
        ],
        "",
    );
    assert_eq!(
        (code, out.as_str()),
        (0, "ann@example.org administers domain example.org\n")
    );
    let (code, _, err) = kurier(
        d,
        &["user", "admin", "ann@example.org", "--domain", "other.test"],
        "",
    );
    assert_ne!(code, 0);
    assert!(err.contains("other.test"), "{err}");
    let (code, out, _) = kurier(d, &["user", "admin", "ann@example.org", "--revoke"], "");
    assert_eq!(
        (code, out.as_str()),
        (0, "ann@example.org no longer administers the server\n")
    );

    let (code, token, err) = kurier(
        d,
        &["token", "add", "ann@example.org", "backup", "--days", "30"],
        "",
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        token.starts_with("kurier_") && token.trim().len() > 60,
        "{token}"
    );
    assert!(err.contains("shown once"), "{err}");
    let (code, _, err) = kurier(d, &["token", "add", "ann@example.org", "backup"], "");
    assert_ne!(code, 0);
    assert!(err.contains("exists already"), "{err}");
    let (_, out, _) = kurier(d, &["token", "list", "ann@example.org"], "");
    assert!(
        out.starts_with("backup  created ") && out.contains("expires "),
        "{out}"
    );
    assert!(
        !out.contains(token.trim()),
        "the secret is never shown again"
    );
    let (code, _, err) = kurier(
        d,
        &["token", "add", "ann@example.org", "x", "--days", "0"],
        "",
    );
    assert_ne!(code, 0);
    assert!(err.contains("--days"), "{err}");
    assert_eq!(
        kurier(d, &["token", "del", "ann@example.org", "backup"], "").0,
        0
    );
    let (code, _, err) = kurier(d, &["token", "del", "ann@example.org", "backup"], "");
    assert_ne!(code, 0);
    assert!(err.contains("not found"), "{err}");
    let (code, _, err) = kurier(d, &["token", "list", "nobody@example.org"], "");
    assert_ne!(code, 0);
    assert!(err.contains("no account nobody@example.org"), "{err}");
}
