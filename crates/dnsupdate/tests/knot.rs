//! RFC 2136 updates signed with TSIG against Knot DNS, the operator's primary server
//! (issue 21 item 3): adds, RRset replacements and deletions arrive; a wrong secret, an unknown
//! key, a record outside the zone and a server that is not there are clear errors.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::net::SocketAddr;
use std::time::Duration;

use kurier_dnsupdate::{Change, DnsRecord, RecordData, TsigKey, Update, UpdateError, send};
use kurier_testworld::knot::Knot;

fn record(name: &str, rtype: &str, value: &str) -> DnsRecord {
    DnsRecord::new(name, 300, RecordData::parse(rtype, value).unwrap())
}

#[tokio::test]
async fn updates_signed_with_tsig_change_the_zone_and_bad_ones_say_why() {
    let dir = tempfile::tempdir().unwrap();
    let addr: SocketAddr = "127.0.10.95:5353".parse().unwrap();
    let knot = Knot::start(
        dir.path(),
        addr,
        "kurier.test",
        "mx IN A 127.0.10.95",
        false,
    )
    .unwrap();
    let key = TsigKey::parse(&std::fs::read_to_string(&knot.key_file).unwrap()).unwrap();
    let limit = Duration::from_secs(10);
    let tlsa = "3 1 1 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    let mut u = Update::new("kurier.test");
    u.changes
        .push(Change::Add(record("_25._tcp.mx.kurier.test", "TLSA", tlsa)));
    u.replace(vec![record(
        "_mta-sts.kurier.test",
        "TXT",
        "\"v=STSv1; id=1\"",
    )]);
    u.changes.push(Change::Add(record(
        "_imaps._tcp.kurier.test",
        "SRV",
        "0 1 993 mx.kurier.test.",
    )));
    if let Err(e) = send(addr, &u, &key, limit).await {
        panic!(
            "{e}\n{}",
            std::fs::read_to_string(dir.path().join("knot.log")).unwrap()
        );
    }
    let tlsa_records = || {
        knot.tlsa("_25._tcp.mx.kurier.test")
            .unwrap()
            .iter()
            .map(|r| r.replace(' ', ""))
            .collect::<Vec<_>>()
    };
    assert_eq!(tlsa_records(), [tlsa.replace(' ', "")]);
    assert_eq!(
        knot.records("_mta-sts.kurier.test", "TXT").unwrap(),
        ["\"v=STSv1; id=1\""]
    );
    assert_eq!(
        knot.records("_imaps._tcp.kurier.test", "SRV").unwrap(),
        ["0 1 993 mx.kurier.test."]
    );

    // A replacement leaves one record, not two; a deletion removes just that record.
    let mut u = Update::new("kurier.test");
    u.replace(vec![record(
        "_mta-sts.kurier.test",
        "TXT",
        "\"v=STSv1; id=2\"",
    )]);
    u.changes.push(Change::Delete(record(
        "_25._tcp.mx.kurier.test",
        "TLSA",
        tlsa,
    )));
    send(addr, &u, &key, limit).await.unwrap();
    assert_eq!(
        knot.records("_mta-sts.kurier.test", "TXT").unwrap(),
        ["\"v=STSv1; id=2\""]
    );
    assert!(
        knot.records("_25._tcp.mx.kurier.test", "TLSA")
            .unwrap()
            .is_empty()
    );

    // Refusals name their cause, and change nothing.
    let mut change = Update::new("kurier.test");
    change.replace(vec![record(
        "_mta-sts.kurier.test",
        "TXT",
        "\"v=STSv1; id=3\"",
    )]);
    let mut wrong_secret = key.clone();
    wrong_secret.secret[0] ^= 1;
    let e = send(addr, &change, &wrong_secret, limit).await.unwrap_err();
    assert!(
        matches!(e, UpdateError::Refused(_)) && e.to_string().contains("secret"),
        "{e}"
    );
    let mut unknown = key.clone();
    unknown.name = "someone-else".into();
    let e = send(addr, &change, &unknown, limit).await.unwrap_err();
    assert!(
        e.to_string().contains("knows no key \"someone-else\""),
        "{e}"
    );
    assert_eq!(
        knot.records("_mta-sts.kurier.test", "TXT").unwrap(),
        ["\"v=STSv1; id=2\""]
    );

    let mut outside = Update::new("kurier.test");
    outside
        .changes
        .push(Change::Add(record("_25._tcp.mx.other.test", "TLSA", tlsa)));
    let e = send(addr, &outside, &key, limit).await.unwrap_err();
    assert!(
        matches!(e, UpdateError::Input(_)) && e.to_string().contains("not in the zone"),
        "{e}"
    );
    let mut other_zone = Update::new("other.test");
    other_zone
        .changes
        .push(Change::Add(record("_25._tcp.mx.other.test", "TLSA", tlsa)));
    let e = send(addr, &other_zone, &key, limit).await.unwrap_err();
    assert!(matches!(e, UpdateError::Refused(_)), "{e}");

    let nobody: SocketAddr = "127.0.10.95:5354".parse().unwrap();
    let e = send(nobody, &change, &key, limit).await.unwrap_err();
    assert!(
        matches!(e, UpdateError::Transport(_)) && e.to_string().contains("5354"),
        "{e}"
    );
}
