//! Two Kurier nodes on one PostgreSQL database: they see each other's changes (LISTEN/NOTIFY)
//! and never deliver the same queue entry twice (FOR UPDATE SKIP LOCKED).

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use std::collections::HashSet;
use std::time::Duration;

use kurier_store::{ChangeKind, NewQueueEntry, Recipient, RecipientStatus, now};

#[tokio::test(flavor = "multi_thread")]
async fn a_change_on_one_node_is_announced_on_the_other() {
    let url = common::test_database().await;
    let (a, b) = (
        kurier_store::open(&url).await.unwrap(),
        kurier_store::open(&url).await.unwrap(),
    );
    a.add_domain("cluster.test").await.unwrap();
    a.add_account("idle@cluster.test", "pw", None)
        .await
        .unwrap();
    let Recipient::Local(acc) = b.resolve("idle@cluster.test").await.unwrap() else {
        panic!()
    };
    let mut on_b = b.subscribe();
    let done = a
        .deliver(&[acc[0].id], b"Subject: hi\r\n\r\nfrom node a\r\n")
        .await
        .unwrap();
    let change = tokio::time::timeout(Duration::from_secs(5), on_b.recv())
        .await
        .expect("node b hears it")
        .unwrap();
    assert_eq!(change.kind, ChangeKind::Appended { uid: done[0].uid });
    assert_eq!(change.mailbox, done[0].mailbox);
}

/// Issue 16 item 8: when the database drops the listening connection (a restart does the
/// same to every connection), the change feed reconnects, tells its subscribers they may have
/// missed changes, and hears the other node again — it does not go deaf for good.
#[tokio::test(flavor = "multi_thread")]
async fn the_change_feed_survives_a_lost_connection() {
    let url = common::test_database().await;
    let (a, b) = (
        kurier_store::open(&url).await.unwrap(),
        kurier_store::open(&url).await.unwrap(),
    );
    a.add_domain("feed.test").await.unwrap();
    a.add_account("idle@feed.test", "pw", None).await.unwrap();
    let Recipient::Local(acc) = b.resolve("idle@feed.test").await.unwrap() else {
        panic!()
    };
    let mut on_b = b.subscribe();
    // Cut every LISTEN connection of this database, as a restart of PostgreSQL would.
    let admin = std::env::var("KURIER_TEST_POSTGRES").unwrap();
    let (client, conn) = tokio_postgres::connect(&admin, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let db = url.rsplit("dbname=").next().unwrap().to_string();
    let cut = client
        .query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND query LIKE 'LISTEN%'",
            &[&db],
        )
        .await
        .unwrap();
    assert!(!cut.is_empty(), "the listeners were found and cut");
    let missed = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let c = on_b.recv().await.unwrap();
            if c.kind == ChangeKind::Missed {
                return c;
            }
        }
    })
    .await
    .expect("node b reconnects and says it may have missed changes");
    assert_eq!(missed.account, 0);
    let done = a
        .deliver(&[acc[0].id], b"Subject: after\r\n\r\nthe cut\r\n")
        .await
        .unwrap();
    let change = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let c = on_b.recv().await.unwrap();
            if matches!(c.kind, ChangeKind::Appended { .. }) {
                return c;
            }
        }
    })
    .await
    .expect("node b hears node a again");
    assert_eq!(change.kind, ChangeKind::Appended { uid: done[0].uid });
}

#[tokio::test(flavor = "multi_thread")]
async fn two_nodes_lease_disjoint_queue_entries() {
    let url = common::test_database().await;
    let a = kurier_store::open(&url).await.unwrap();
    let b = kurier_store::open(&url).await.unwrap();
    for i in 0..60 {
        let e = NewQueueEntry {
            sender: String::new(),
            recipients: vec![(format!("r{i}@remote.test"), Default::default())],
            require_tls: false,
            dsn: Default::default(),
        };
        a.enqueue(&e, b"x").await.unwrap();
    }
    let node = |store: std::sync::Arc<dyn kurier_store::Store>, name: &'static str| {
        tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let batch = store.lease(name, now(), 300, 4).await.unwrap();
                if batch.is_empty() {
                    return mine;
                }
                for e in batch {
                    let r: Vec<_> = e
                        .recipients
                        .iter()
                        .map(|r| (r.address.clone(), RecipientStatus::Delivered, None))
                        .collect();
                    store.finish_attempt(e.id, name, &r, now()).await.unwrap();
                    mine.push(e.id);
                }
            }
        })
    };
    let (x, y) = (node(a.clone(), "node-a"), node(b, "node-b"));
    let (x, y) = (x.await.unwrap(), y.await.unwrap());
    let all: HashSet<_> = x.iter().chain(&y).collect();
    assert_eq!(all.len(), 60);
    assert_eq!(x.len() + y.len(), 60, "no entry went to both nodes");
    assert!(a.queue().await.unwrap().is_empty());
}
