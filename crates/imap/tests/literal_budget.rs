//! Issue 16 item 4: APPEND literals take from the RAM budget that SMTP's message bodies share.
//! When it is used up, a synchronizing literal gets `NO [UNAVAILABLE]` instead of `+` (the
//! client sends nothing), a non-synchronizing one ends the connection with BYE, and once the
//! memory is back the same APPEND goes through.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use common::{command, connect, line, server};
use tokio::io::AsyncWriteExt;

#[tokio::test]
async fn literals_past_the_shared_budget_are_refused_until_memory_returns() {
    let dir = tempfile::tempdir().unwrap();
    let budget = kurier_access::ByteBudget::new(100_000);
    let addr = server(dir.path(), "127.0.40.21", budget.clone()).await;
    let ca = dir.path().join(kurier_tls::dev_ca::CA_CERT_FILE);
    let (mut a, mut b) = (connect(addr, &ca).await, connect(addr, &ca).await);
    for (c, t) in [(&mut a, "la"), (&mut b, "lb")] {
        assert!(
            command(c, t, "LOGIN a@example.test pw-pw-pw")
                .await
                .contains(" OK")
        );
    }
    // A holds 90 000 bytes of the budget while its literal arrives.
    a.get_mut()
        .write_all(b"a1 APPEND INBOX {90000}\r\n")
        .await
        .unwrap();
    assert!(line(&mut a).await.starts_with('+'));
    assert_eq!(budget.in_use(), 90_000);
    // B's 20 000 do not fit now: refused before the client sends them.
    b.get_mut()
        .write_all(b"b1 APPEND INBOX {20000}\r\n")
        .await
        .unwrap();
    let refused = line(&mut b).await;
    assert!(refused.starts_with("b1 NO [UNAVAILABLE]"), "{refused}");
    assert!(
        command(&mut b, "b2", "NOOP").await.contains("b2 OK"),
        "B goes on"
    );
    // A finishes: the memory comes back, and B's APPEND goes through.
    let head = "Subject: a\r\n\r\n";
    let body = format!("{head}{}\r\n", "x".repeat(90_000 - head.len() - 2));
    assert_eq!(body.len(), 90_000);
    a.get_mut().write_all(body.as_bytes()).await.unwrap();
    a.get_mut().write_all(b"\r\n").await.unwrap();
    let done = loop {
        let l = line(&mut a).await;
        if l.starts_with("a1 ") {
            break l;
        }
    };
    assert!(done.starts_with("a1 OK"), "{done}");
    assert_eq!(budget.in_use(), 0, "given back after the command");
    b.get_mut()
        .write_all(b"b3 APPEND INBOX {20000}\r\n")
        .await
        .unwrap();
    assert!(line(&mut b).await.starts_with('+'));
    // While B holds it, a non-synchronizing literal that does not fit closes the connection.
    a.get_mut()
        .write_all(b"a2 APPEND INBOX {90000+}\r\n")
        .await
        .unwrap();
    let bye = line(&mut a).await;
    assert!(bye.starts_with("* BYE [UNAVAILABLE]"), "{bye}");
}
