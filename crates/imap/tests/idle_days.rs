//! TR-03108 TLS-8: no cap on a TLS session's lifetime. An IMAP IDLE session over implicit TLS
//! stays open across 49 hours of (paused, auto-advancing) tokio time, hears its keepalives, and
//! ends only when the client says DONE — while the 30-minute autologout still applies outside
//! IDLE.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use std::time::Duration;

use common::{command, connect, line, server};
use tokio::io::AsyncWriteExt;

#[tokio::test(start_paused = true)]
async fn tls8_an_idle_session_outlives_48_hours() {
    let dir = tempfile::tempdir().unwrap();
    let addr = server(
        dir.path(),
        "127.0.40.20",
        kurier_access::ByteBudget::unlimited(),
    )
    .await;
    let ca = dir.path().join(kurier_tls::dev_ca::CA_CERT_FILE);
    let mut c = connect(addr, &ca).await;
    assert!(
        command(&mut c, "a", "LOGIN a@example.test pw-pw-pw")
            .await
            .contains("a OK")
    );
    assert!(command(&mut c, "b", "SELECT INBOX").await.contains("b OK"));
    c.get_mut().write_all(b"c IDLE\r\n").await.unwrap();
    assert!(line(&mut c).await.starts_with("+ "));
    tokio::time::sleep(Duration::from_secs(49 * 3600)).await;
    c.get_mut().write_all(b"DONE\r\n").await.unwrap();
    let mut keepalives = 0;
    loop {
        let l = line(&mut c).await;
        if l.starts_with("* OK Still here") {
            keepalives += 1;
            continue;
        }
        assert!(l.starts_with("c OK IDLE terminated"), "{l}");
        break;
    }
    assert!(keepalives >= 49 * 12 - 1, "{keepalives} keepalives in 49 h");
    assert!(command(&mut c, "d", "NOOP").await.contains("d OK"));

    // Outside IDLE the RFC 9051 §5.4 autologout (here 30 minutes) applies.
    tokio::time::sleep(Duration::from_secs(1801)).await;
    assert!(line(&mut c).await.starts_with("* BYE Autologout"));
}
