//! The connection states of RFC 9051 §3 and the moves between them, driven by a real client
//! over TLS: a command is answered by the state the session is in, and only SELECT, CLOSE,
//! UNSELECT, DELETE of the selected mailbox and a failed SELECT change it.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use common::{Tls, command, connect, line, server};
use tokio::io::AsyncWriteExt;

/// The tagged line of a command's answer.
async fn tagged(c: &mut Tls, tag: &str, text: &str) -> String {
    let all = command(c, tag, text).await;
    all.lines()
        .find(|l| l.starts_with(&format!("{tag} ")))
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn each_command_runs_in_its_state_and_only_select_close_unselect_delete_move_between_them() {
    let dir = tempfile::tempdir().unwrap();
    let addr = server(
        dir.path(),
        "127.0.40.22",
        kurier_access::ByteBudget::new(1 << 20),
    )
    .await;
    let ca = dir.path().join(kurier_tls::dev_ca::CA_CERT_FILE);
    let mut c = connect(addr, &ca).await;

    // §3.1 not authenticated: mailbox commands are refused by name.
    assert!(
        tagged(&mut c, "n1", "SELECT INBOX")
            .await
            .starts_with("n1 BAD")
    );
    assert!(tagged(&mut c, "n2", "NOOP").await.starts_with("n2 OK"));
    let login = tagged(&mut c, "n3", "LOGIN a@example.test pw-pw-pw").await;
    assert!(login.starts_with("n3 OK [CAPABILITY"), "{login}");

    // §3.2 authenticated: no second login, no selected-state command.
    for (tag, text) in [
        ("a1", "LOGIN a@example.test pw-pw-pw"),
        ("a2", "AUTHENTICATE PLAIN AGFAZXhhbXBsZS50ZXN0AHB3LXB3LXB3"),
    ] {
        let answer = tagged(&mut c, tag, text).await;
        assert_eq!(
            answer.trim_end(),
            format!("{tag} BAD [CLIENTBUG] Already authenticated")
        );
    }
    let fetch = tagged(&mut c, "a3", "FETCH 1 FLAGS").await;
    assert!(
        fetch.contains("BAD [CLIENTBUG] Select a mailbox first"),
        "{fetch}"
    );
    // IDLE needs no mailbox.
    c.get_mut().write_all(b"a4 IDLE\r\n").await.unwrap();
    assert!(line(&mut c).await.starts_with("+ "));
    c.get_mut().write_all(b"DONE\r\n").await.unwrap();
    assert!(line(&mut c).await.starts_with("a4 OK"));
    assert!(
        tagged(&mut c, "a5", "CREATE Box")
            .await
            .starts_with("a5 OK")
    );
    let append = tagged(&mut c, "a6", "APPEND Box {14+}\r\nSubject: x\r\n\r\n").await;
    assert!(append.starts_with("a6 OK [APPENDUID"), "{append}");

    // §3.3 selected; a SELECT that fails leaves no mailbox selected (§6.3.2).
    assert!(
        tagged(&mut c, "s1", "SELECT Box")
            .await
            .starts_with("s1 OK")
    );
    assert!(
        tagged(&mut c, "s2", "FETCH 1 FLAGS")
            .await
            .starts_with("s2 OK")
    );
    let failed = command(&mut c, "s3", "SELECT Nonexistent").await;
    assert!(failed.starts_with("* OK [CLOSED]"), "{failed}");
    assert!(failed.contains("s3 NO [NONEXISTENT]"), "{failed}");
    let fetch = tagged(&mut c, "s4", "FETCH 1 FLAGS").await;
    assert!(fetch.contains("Select a mailbox first"), "{fetch}");

    // UNSELECT and CLOSE go back to authenticated; CLOSE expunges what is \Deleted.
    assert!(
        tagged(&mut c, "u1", "SELECT Box")
            .await
            .starts_with("u1 OK")
    );
    assert!(tagged(&mut c, "u2", "UNSELECT").await.starts_with("u2 OK"));
    assert!(
        tagged(&mut c, "u3", "FETCH 1 FLAGS")
            .await
            .contains("Select a mailbox first")
    );
    assert!(
        tagged(&mut c, "c1", "SELECT Box")
            .await
            .starts_with("c1 OK")
    );
    let store = tagged(&mut c, "c2", "STORE 1 +FLAGS (\\Deleted)").await;
    assert!(store.starts_with("c2 OK"), "{store}");
    assert!(tagged(&mut c, "c3", "CLOSE").await.starts_with("c3 OK"));
    assert!(
        tagged(&mut c, "c4", "CLOSE")
            .await
            .contains("Select a mailbox first")
    );
    let status = command(&mut c, "c5", "STATUS Box (MESSAGES)").await;
    assert!(status.contains("(MESSAGES 0)"), "{status}");

    // DELETE of the selected mailbox leaves the selected state; of another one it does not.
    assert!(
        tagged(&mut c, "d1", "CREATE Other")
            .await
            .starts_with("d1 OK")
    );
    assert!(
        tagged(&mut c, "d2", "SELECT Box")
            .await
            .starts_with("d2 OK")
    );
    assert!(
        tagged(&mut c, "d3", "DELETE Other")
            .await
            .starts_with("d3 OK")
    );
    assert!(tagged(&mut c, "d4", "CHECK").await.starts_with("d4 OK"));
    assert!(
        tagged(&mut c, "d5", "DELETE Box")
            .await
            .starts_with("d5 OK")
    );
    assert!(
        tagged(&mut c, "d6", "CHECK")
            .await
            .contains("Select a mailbox first")
    );
    assert!(
        tagged(&mut c, "d7", "SELECT INBOX")
            .await
            .starts_with("d7 OK")
    );
    let logout = command(&mut c, "d8", "LOGOUT").await;
    assert!(logout.starts_with("* BYE"), "{logout}");
}
