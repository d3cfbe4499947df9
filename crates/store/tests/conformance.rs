//! One conformance suite, the same code for every backend (SQLite and PostgreSQL).
//!
//! PostgreSQL is real: `scripts/test.sh` starts a cluster and sets `KURIER_TEST_POSTGRES`
//! (a libpq connection string to an administrative database); each test creates its own
//! database. Without that variable the PostgreSQL tests fail — they are never skipped.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::collections::HashSet;
use std::sync::Arc;

use kurier_store::{
    ChangeKind, DmarcEvent, FlagChange, Folder, NewQueueEntry, PolicyType, Recipient,
    RecipientStatus, ReportKind, ResultType, SpecialUse, Store, StoreError, TlsOutcome, now,
};

mod common;

mod backends {
    use super::*;

    pub async fn sqlite() -> (Arc<dyn Store>, Box<dyn std::any::Any + Send>) {
        let dir = tempfile::tempdir().unwrap();
        let store = kurier_store::open(&format!(
            "sqlite:{}",
            dir.path().join("kurier.db").display()
        ))
        .await
        .unwrap();
        (store, Box::new(dir))
    }

    pub async fn postgres() -> (Arc<dyn Store>, Box<dyn std::any::Any + Send>) {
        let url = crate::common::test_database().await;
        (kurier_store::open(&url).await.unwrap(), Box::new(()))
    }
}

macro_rules! conformance {
    ($backend:ident) => {
        mod $backend {
            use super::*;

            async fn store() -> (Arc<dyn Store>, Box<dyn std::any::Any + Send>) {
                backends::$backend().await
            }

            #[tokio::test(flavor = "multi_thread")]
            async fn domains_accounts_aliases_crud() {
                let (s, _g) = store().await;
                suite::crud(s).await
            }
            #[tokio::test(flavor = "multi_thread")]
            async fn domain_settings() {
                let (s, _g) = store().await;
                suite::domain_settings(s).await
            }
            #[tokio::test(flavor = "multi_thread")]
            async fn authentication() {
                let (s, _g) = store().await;
                suite::authentication(s).await
            }
            #[tokio::test(flavor = "multi_thread")]
            async fn mailboxes() {
                let (s, _g) = store().await;
                suite::mailboxes(s).await
            }
            #[tokio::test(flavor = "multi_thread")]
            async fn uid_and_modseq_are_monotonic() {
                let (s, _g) = store().await;
                suite::uid_modseq(s).await
            }
            #[tokio::test(flavor = "multi_thread")]
            async fn concurrent_appends_get_distinct_uids() {
                let (s, _g) = store().await;
                suite::concurrent_appends(s).await
            }
            #[tokio::test(flavor = "multi_thread")]
            async fn deliver_copy_and_cascades() {
                let (s, _g) = store().await;
                suite::deliver_copy(s).await
            }
            #[tokio::test(flavor = "multi_thread")]
            async fn deliver_and_enqueue_is_all_or_nothing() {
                let (s, _g) = store().await;
                suite::deliver_and_enqueue(s).await
            }
            #[tokio::test(flavor = "multi_thread")]
            async fn quota_is_enforced() {
                let (s, _g) = store().await;
                suite::quota(s).await
            }
            #[tokio::test(flavor = "multi_thread")]
            async fn smtputf8_addresses() {
                let (s, _g) = store().await;
                suite::unicode(s).await
            }
            #[tokio::test(flavor = "multi_thread")]
            async fn queue_two_workers_each_entry_once() {
                let (s, _g) = store().await;
                suite::queue_two_workers(s).await
            }
            #[tokio::test(flavor = "multi_thread")]
            async fn queue_lease_expires_after_a_crash() {
                let (s, _g) = store().await;
                suite::lease_expiry(s).await
            }
            #[tokio::test(flavor = "multi_thread")]
            async fn tlsrpt_and_sts_cache() {
                let (s, _g) = store().await;
                suite::reports_and_policies(s).await
            }
            #[tokio::test(flavor = "multi_thread")]
            async fn account_settings() {
                let (s, _g) = store().await;
                suite::account_settings(s).await
            }
            #[tokio::test(flavor = "multi_thread")]
            async fn a_days_report_is_claimed_once() {
                let (s, _g) = store().await;
                suite::report_claims(s).await
            }
            #[tokio::test(flavor = "multi_thread")]
            async fn placements_into_mailboxes_with_flags_and_own_bodies() {
                let (s, _g) = store().await;
                suite::placements(s).await
            }
            #[tokio::test(flavor = "multi_thread")]
            async fn sieve_scripts_and_vacation_memory() {
                let (s, _g) = store().await;
                suite::sieve_scripts(s).await
            }
            #[tokio::test(flavor = "multi_thread")]
            async fn web_roles_sessions_tokens_and_queue_actions() {
                let (s, _g) = store().await;
                suite::web_admin(s).await
            }
            #[tokio::test(flavor = "multi_thread")]
            async fn abuse_4_greylist_triplets() {
                let (s, _g) = store().await;
                suite::greylist_triplets(s).await
            }
            #[tokio::test(flavor = "multi_thread")]
            async fn auth5_dmarc_events_and_reports() {
                let (s, _g) = store().await;
                suite::dmarc_events_and_reports(s).await
            }
            #[tokio::test(flavor = "multi_thread")]
            async fn changes_are_announced() {
                let (s, _g) = store().await;
                suite::announcements(s).await
            }
        }
    };
}

conformance!(sqlite);
conformance!(postgres);

mod suite {
    use super::*;

    /// Per-account settings: set, read, replace, remove; an unknown account or a bad key is
    /// an error; deleting the account takes its settings along.
    pub async fn account_settings(s: Arc<dyn Store>) {
        account(&s, "set@a.test").await;
        let key = "submission.tls-required-header";
        assert!(s.account_settings("set@a.test").await.unwrap().is_empty());
        s.set_account_setting("Set@A.test", key, Some("strip"))
            .await
            .unwrap();
        s.set_account_setting("set@a.test", key, Some("refuse"))
            .await
            .unwrap();
        let got = s.account_settings("set@a.test").await.unwrap();
        assert_eq!(got.get(key).map(String::as_str), Some("refuse"));
        s.set_account_setting("set@a.test", key, None)
            .await
            .unwrap();
        assert!(s.account_settings("set@a.test").await.unwrap().is_empty());
        assert!(matches!(
            s.set_account_setting("nobody@a.test", key, Some("x")).await,
            Err(StoreError::NotFound(_))
        ));
        assert!(matches!(
            s.set_account_setting("set@a.test", "Bad Key", Some("x"))
                .await,
            Err(StoreError::Invalid(_))
        ));
        s.set_account_setting("set@a.test", key, Some("strip"))
            .await
            .unwrap();
        s.delete_account("set@a.test").await.unwrap();
        account(&s, "set@a.test").await;
        assert!(
            s.account_settings("set@a.test").await.unwrap().is_empty(),
            "a new account starts clean"
        );
    }

    /// RFC 8460 §4.1, issue 18 item 4: one report per policy domain and day, claimed once
    /// (also by racing claimers); a released claim can be taken again.
    pub async fn report_claims(s: Arc<dyn Store>) {
        let day = 1_796_083_200;
        assert!(
            s.claim_report(ReportKind::Tlsrpt, "B.test", day, "r1", day + 10)
                .await
                .unwrap()
        );
        assert!(
            !s.claim_report(ReportKind::Tlsrpt, "b.test", day, "r2", day + 20)
                .await
                .unwrap()
        );
        assert!(
            s.claim_report(
                ReportKind::Tlsrpt,
                "b.test",
                day + 86_400,
                "r3",
                day + 86_410
            )
            .await
            .unwrap()
        );
        assert!(
            s.claim_report(ReportKind::Tlsrpt, "c.test", day, "r4", day + 30)
                .await
                .unwrap()
        );
        // What was sent, newest day first (the web administration lists it).
        let sent = s.sent_reports(ReportKind::Tlsrpt, day).await.unwrap();
        let ids: Vec<(&str, i64, &str)> = sent
            .iter()
            .map(|(d, at, id, _)| (d.as_str(), *at, id.as_str()))
            .collect();
        assert_eq!(
            ids,
            [
                ("b.test", day + 86_400, "r3"),
                ("b.test", day, "r1"),
                ("c.test", day, "r4")
            ]
        );
        assert_eq!(
            s.sent_reports(ReportKind::Tlsrpt, day + 1)
                .await
                .unwrap()
                .len(),
            1
        );
        assert!(
            s.sent_reports(ReportKind::Dmarc, day)
                .await
                .unwrap()
                .is_empty()
        );
        s.release_report(ReportKind::Tlsrpt, "b.test", day)
            .await
            .unwrap();
        let racers: Vec<_> = (0..8)
            .map(|i| {
                let s = s.clone();
                tokio::spawn(async move {
                    s.claim_report(ReportKind::Tlsrpt, "b.test", day, &format!("x{i}"), day)
                        .await
                })
            })
            .collect();
        let mut won = 0;
        for r in racers {
            won += usize::from(r.await.unwrap().unwrap());
        }
        assert_eq!(won, 1, "exactly one claimer wins");
        // RPT-6 / AUTH-5: a DMARC report of the same domain and day is claimed on its own.
        assert!(
            s.claim_report(ReportKind::Dmarc, "b.test", day, "d1", day)
                .await
                .unwrap()
        );
        assert!(
            !s.claim_report(ReportKind::Dmarc, "B.test", day, "d2", day)
                .await
                .unwrap()
        );
        s.release_report(ReportKind::Dmarc, "b.test", day)
            .await
            .unwrap();
        assert!(
            s.claim_report(ReportKind::Dmarc, "b.test", day, "d3", day)
                .await
                .unwrap()
        );
    }

    /// AUTH-5: DMARC evaluations are kept whole for a day's report, old ones pruned (TLS
    /// events with them), received reports kept as they came.
    pub async fn dmarc_events_and_reports(s: Arc<dyn Store>) {
        let ev = DmarcEvent {
            policy_domain: "sender.test".into(),
            record: "v=DMARC1; p=reject; rua=mailto:d@sender.test".into(),
            source_ip: "192.0.2.9".into(),
            header_from: "sender.test".into(),
            envelope_from: "bounce.sender.test".into(),
            envelope_to: "a.test".into(),
            disposition: "reject".into(),
            dkim_aligned: false,
            spf_aligned: true,
            overrides: vec![("local_policy".into(), "monitor only".into())],
            dkim: vec![("sender.test".into(), "s1".into(), "fail".into())],
            spf: vec![("bounce.sender.test".into(), "mfrom".into(), "pass".into())],
        };
        s.record_dmarc_event(&ev, 2_000_000).await.unwrap();
        let later = DmarcEvent {
            disposition: "none".into(),
            ..ev.clone()
        };
        s.record_dmarc_event(&later, 2_086_400).await.unwrap();
        assert_eq!(
            s.dmarc_events(2_000_000, 2_086_400).await.unwrap(),
            std::slice::from_ref(&ev)
        );
        assert_eq!(
            s.dmarc_events(0, i64::MAX).await.unwrap(),
            [ev, later.clone()]
        );
        s.record_tls_event(
            &TlsOutcome {
                policy_domain: "remote.test".into(),
                policy_type: PolicyType::NoPolicyFound,
                policy_strings: Vec::new(),
                mx_host: "mx.remote.test".into(),
                failure: None,
                receiving_ip: None,
                sending_ip: None,
                receiving_helo: None,
                detail: None,
            },
            2_000_001,
        )
        .await
        .unwrap();
        assert_eq!(s.prune_report_events(2_086_400).await.unwrap(), 2);
        assert_eq!(s.dmarc_events(0, i64::MAX).await.unwrap(), [later]);
        assert!(s.tls_events(0, 2_086_400).await.unwrap().is_empty());
        let id = s
            .store_dmarc_report("Sender.test", "reporter.test", b"<feedback/>")
            .await
            .unwrap();
        let r = s.dmarc_reports().await.unwrap();
        assert_eq!(
            (r[0].id, r[0].policy_domain.as_str(), r[0].xml.as_slice()),
            (id, "sender.test", &b"<feedback/>"[..])
        );
    }

    pub async fn placements(s: Arc<dyn Store>) {
        use kurier_store::{Placement, Target};
        let a = account(&s, "place@kurier.test").await;
        s.create_mailbox(a.id, "Lists", None).await.unwrap();
        let p = |target, flags: &[&str], body: Option<&[u8]>| Placement {
            account: a.id,
            target,
            flags: flags.iter().map(|f| f.to_string()).collect(),
            body: body.map(|b| b.to_vec()),
        };
        let entry = NewQueueEntry {
            sender: "place@kurier.test".into(),
            recipients: vec![("far@remote.test".into(), Default::default())],
            require_tls: false,
            dsn: Default::default(),
        };
        let (done, queued) = s
            .deliver_placed(
                &[
                    p(Target::Folder(Folder::Inbox), &["\\seen", "$Work"], None),
                    p(Target::Named("Lists".into()), &[], Some(b"edited copy")),
                    // A mailbox that is not there: INBOX.
                    p(Target::Named("Nowhere".into()), &[], None),
                    p(Target::Folder(Folder::Junk), &[], None),
                ],
                b"shared",
                &[
                    (entry.clone(), None),
                    (entry.clone(), Some(b"reply".to_vec())),
                ],
            )
            .await
            .unwrap();
        assert_eq!((done.len(), queued.len()), (4, 2));
        let inbox = inbox(&s, &a).await;
        let lists = s.mailbox(a.id, "Lists").await.unwrap().unwrap();
        let junk = s.mailbox(a.id, "Junk").await.unwrap().unwrap();
        assert_eq!(
            [
                done[0].mailbox,
                done[1].mailbox,
                done[2].mailbox,
                done[3].mailbox
            ],
            [inbox.id, lists.id, inbox.id, junk.id]
        );
        let m = s.messages(inbox.id).await.unwrap();
        assert_eq!(m[0].flags, ["$Work", "\\Seen"]);
        assert_eq!(
            s.message_body(lists.id, done[1].uid)
                .await
                .unwrap()
                .unwrap(),
            b"edited copy"
        );
        assert_eq!(
            s.message_body(inbox.id, done[2].uid)
                .await
                .unwrap()
                .unwrap(),
            b"shared"
        );
        assert_eq!(s.queue_body(queued[0]).await.unwrap().unwrap(), b"shared");
        assert_eq!(s.queue_body(queued[1]).await.unwrap().unwrap(), b"reply");
        // A bad flag refuses the whole delivery.
        assert!(matches!(
            s.deliver_placed(
                &[p(Target::Folder(Folder::Inbox), &["bad flag"], None)],
                b"x",
                &[]
            )
            .await,
            Err(StoreError::Invalid(_))
        ));
    }

    pub async fn sieve_scripts(s: Arc<dyn Store>) {
        let a = account(&s, "sieve@kurier.test").await.id;
        let b = account(&s, "other@kurier.test").await.id;
        assert!(s.sieve_scripts(a).await.unwrap().is_empty());
        s.put_sieve_script(a, "main", "keep;").await.unwrap();
        s.put_sieve_script(a, "away", "discard;").await.unwrap();
        s.put_sieve_script(b, "main", "stop;").await.unwrap();
        s.activate_sieve_script(a, Some("main")).await.unwrap();
        // Replacing keeps the active flag.
        s.put_sieve_script(a, "main", "keep; stop;").await.unwrap();
        let list = s.sieve_scripts(a).await.unwrap();
        let names: Vec<(&str, bool, &str)> = list
            .iter()
            .map(|x| (x.name.as_str(), x.active, x.content.as_str()))
            .collect();
        assert_eq!(
            names,
            [("away", false, "discard;"), ("main", true, "keep; stop;")]
        );
        // One active at most; the other account is untouched.
        s.activate_sieve_script(a, Some("away")).await.unwrap();
        let active: Vec<String> = s
            .sieve_scripts(a)
            .await
            .unwrap()
            .into_iter()
            .filter(|x| x.active)
            .map(|x| x.name)
            .collect();
        assert_eq!(active, ["away"]);
        assert!(!s.sieve_scripts(b).await.unwrap()[0].active);
        // Which recipients of a delivery have a script to run.
        assert_eq!(s.sieve_active(&[b, a, a + 1000]).await.unwrap(), [a]);
        assert!(s.sieve_active(&[]).await.unwrap().is_empty());
        assert!(matches!(
            s.activate_sieve_script(a, Some("nope")).await,
            Err(StoreError::NotFound(_))
        ));
        assert!(matches!(
            s.delete_sieve_script(a, "away").await,
            Err(StoreError::Invalid(_))
        ));
        assert!(matches!(
            s.rename_sieve_script(a, "main", "away").await,
            Err(StoreError::Exists(_))
        ));
        s.rename_sieve_script(a, "main", "old").await.unwrap();
        s.delete_sieve_script(a, "old").await.unwrap();
        assert!(matches!(
            s.delete_sieve_script(a, "old").await,
            Err(StoreError::NotFound(_))
        ));
        s.activate_sieve_script(a, None).await.unwrap();
        assert!(s.sieve_scripts(a).await.unwrap().iter().all(|x| !x.active));
        assert!(s.sieve_active(&[a, b]).await.unwrap().is_empty());
        assert!(matches!(
            s.put_sieve_script(a, "bad\nname", "keep;").await,
            Err(StoreError::Invalid(_))
        ));
        // Vacation: once per sender and handle within the period.
        assert!(
            s.vacation_reply_due(a, "X@Sender.test", "h", 1000, 86400, 100)
                .await
                .unwrap()
        );
        assert!(
            !s.vacation_reply_due(a, "x@sender.test", "h", 2000, 86400, 100)
                .await
                .unwrap()
        );
        assert!(
            s.vacation_reply_due(a, "x@sender.test", "other", 2000, 86400, 100)
                .await
                .unwrap()
        );
        assert!(
            s.vacation_reply_due(b, "x@sender.test", "h", 2000, 86400, 100)
                .await
                .unwrap()
        );
        assert!(
            s.vacation_reply_due(a, "x@sender.test", "h", 1000 + 86400, 86400, 100)
                .await
                .unwrap()
        );
        // The account's daily number (SIEVE-1 limits): b has one reply within the day; with
        // a cap of 3, two more senders get one, the next does not, and a day later again.
        for (n, due) in [("1", true), ("2", true), ("3", false)] {
            let sender = format!("s{n}@sender.test");
            assert_eq!(
                s.vacation_reply_due(b, &sender, "h", 3000, 86400, 3)
                    .await
                    .unwrap(),
                due,
                "{sender}"
            );
        }
        assert!(
            s.vacation_reply_due(b, "s3@sender.test", "h", 3000 + 86400, 86400, 3)
                .await
                .unwrap()
        );
    }

    pub async fn web_admin(s: Arc<dyn Store>) {
        use kurier_store::{AdminScope, ApiToken, WebSession};
        let a = account(&s, "ann@web.test").await;
        let b = account(&s, "bob@web.test").await;
        // Roles: the server, or one hosted domain; granted twice is granted once.
        assert!(s.admin_scopes(a.id).await.unwrap().is_empty());
        s.set_admin_scope("ann@web.test", &AdminScope::Server, true)
            .await
            .unwrap();
        s.set_admin_scope("ann@web.test", &AdminScope::Server, true)
            .await
            .unwrap();
        s.set_admin_scope("Bob@web.test", &AdminScope::Domain("WEB.test".into()), true)
            .await
            .unwrap();
        assert_eq!(s.admin_scopes(a.id).await.unwrap(), [AdminScope::Server]);
        assert_eq!(
            s.admin_scopes(b.id).await.unwrap(),
            [AdminScope::Domain("web.test".into())]
        );
        assert!(matches!(
            s.set_admin_scope(
                "bob@web.test",
                &AdminScope::Domain("elsewhere.test".into()),
                true
            )
            .await,
            Err(StoreError::NotFound(_))
        ));
        assert!(matches!(
            s.set_admin_scope("nobody@web.test", &AdminScope::Server, true)
                .await,
            Err(StoreError::NotFound(_))
        ));
        s.set_admin_scope("ann@web.test", &AdminScope::Server, false)
            .await
            .unwrap();
        assert!(s.admin_scopes(a.id).await.unwrap().is_empty());
        // Sessions: found until they expire, never for a disabled account, gone when deleted.
        let session = WebSession {
            id: "h1".into(),
            account: a.id,
            csrf: "c1".into(),
            created: 1000,
            expires: 2000,
        };
        s.put_web_session(&session).await.unwrap();
        let (found, who) = s.web_session("h1", 1999).await.unwrap().unwrap();
        assert_eq!(
            (found, who.address.as_str()),
            (session.clone(), "ann@web.test")
        );
        assert!(s.web_session("h1", 2000).await.unwrap().is_none());
        assert!(s.web_session("h2", 1500).await.unwrap().is_none());
        s.set_enabled("ann@web.test", false).await.unwrap();
        assert!(s.web_session("h1", 1500).await.unwrap().is_none());
        s.set_enabled("ann@web.test", true).await.unwrap();
        s.put_web_session(&WebSession {
            id: "h2".into(),
            expires: 5000,
            ..session.clone()
        })
        .await
        .unwrap();
        assert_eq!(s.prune_web_sessions(2500).await.unwrap(), 1);
        // At most MAX_WEB_SESSIONS per account: the oldest end.
        for i in 0..kurier_store::MAX_WEB_SESSIONS + 5 {
            s.put_web_session(&WebSession {
                id: format!("many{i}"),
                account: b.id,
                created: 3000 + i,
                expires: 9000,
                ..session.clone()
            })
            .await
            .unwrap();
        }
        assert!(s.web_session("many0", 3000).await.unwrap().is_none());
        assert!(s.web_session("many4", 3000).await.unwrap().is_none());
        assert!(s.web_session("many5", 3000).await.unwrap().is_some());
        assert!(
            s.web_session("h2", 2500).await.unwrap().is_some(),
            "another account's"
        );
        assert!(s.web_session("h2", 2500).await.unwrap().is_some());
        s.delete_web_session("h2").await.unwrap();
        assert!(s.web_session("h2", 2500).await.unwrap().is_none());
        // Tokens: unique names per account.
        let token = ApiToken {
            id: "t1".into(),
            account: b.id,
            name: "backup".into(),
            secret: "s".into(),
            created: 10,
            expires: Some(20),
        };
        s.put_api_token(&token).await.unwrap();
        assert!(matches!(
            s.put_api_token(&ApiToken {
                id: "t2".into(),
                ..token.clone()
            })
            .await,
            Err(StoreError::Exists(_))
        ));
        let (t, who) = s.api_token("t1").await.unwrap().unwrap();
        assert_eq!((t, who.id), (token.clone(), b.id));
        assert_eq!(
            s.api_tokens(b.id).await.unwrap(),
            std::slice::from_ref(&token)
        );
        assert!(matches!(
            s.delete_api_token(a.id, "backup").await,
            Err(StoreError::NotFound(_))
        ));
        s.delete_api_token(b.id, "backup").await.unwrap();
        assert!(s.api_token("t1").await.unwrap().is_none());
        // App passwords open mail clients' sign-ins, the account password still works too.
        let secret = kurier_store::password::app_secret("abcd-efgh");
        s.add_app_password(a.id, "phone", &secret, 5).await.unwrap();
        assert!(matches!(
            s.add_app_password(a.id, "phone", "other", 6).await,
            Err(StoreError::Exists(_))
        ));
        assert_eq!(
            s.app_passwords(a.id).await.unwrap(),
            [("phone".to_string(), 5)]
        );
        let via = |pw: &'static str| {
            let s = s.clone();
            async move {
                s.authenticate_client("Ann@web.test", pw)
                    .await
                    .unwrap()
                    .map(|a| a.address)
            }
        };
        assert_eq!(via("abcd-efgh").await.as_deref(), Some("ann@web.test"));
        assert_eq!(via("secret").await.as_deref(), Some("ann@web.test"));
        assert_eq!(via("wrong").await, None);
        // Not the account password: the web administration's sign-in does not take it.
        assert!(
            s.authenticate("ann@web.test", "abcd-efgh")
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            s.app_password_account("bob@web.test", &secret)
                .await
                .unwrap()
                .is_none(),
            "another account's app password"
        );
        s.set_enabled("ann@web.test", false).await.unwrap();
        assert_eq!(via("abcd-efgh").await, None);
        s.set_enabled("ann@web.test", true).await.unwrap();
        s.delete_app_password(a.id, "phone").await.unwrap();
        assert_eq!(via("abcd-efgh").await, None);
        assert!(matches!(
            s.delete_app_password(a.id, "phone").await,
            Err(StoreError::NotFound(_))
        ));
        // Deleting the account takes its sessions and tokens along.
        s.put_api_token(&token).await.unwrap();
        s.delete_account("bob@web.test").await.unwrap();
        assert!(s.api_token("t1").await.unwrap().is_none());
        // Queue actions: not while a worker holds the entry.
        let e = kurier_store::NewQueueEntry {
            sender: "ann@web.test".into(),
            recipients: vec![("x@far.test".into(), Default::default())],
            require_tls: false,
            dsn: Default::default(),
        };
        let id = s.enqueue(&e, b"x").await.unwrap();
        let now = kurier_store::now();
        let leased = s.lease("w1", now, 300, 10).await.unwrap();
        assert!(leased.iter().any(|q| q.id == id));
        assert!(matches!(
            s.retry_queue_entry(id, now).await,
            Err(StoreError::Invalid(_))
        ));
        assert!(matches!(
            s.delete_queue_entry(id, now).await,
            Err(StoreError::Invalid(_))
        ));
        s.finish_attempt(
            id,
            "w1",
            &[(
                "x@far.test".into(),
                kurier_store::RecipientStatus::Pending,
                Some("451 later".into()),
            )],
            now + 3600,
        )
        .await
        .unwrap();
        // Every attempt is kept, per recipient, with what was said.
        let attempts = s.queue_attempts(id).await.unwrap();
        assert_eq!(attempts.len(), 1);
        assert_eq!(
            (
                attempts[0].recipient.as_str(),
                attempts[0].status,
                attempts[0].detail.as_deref()
            ),
            (
                "x@far.test",
                kurier_store::RecipientStatus::Pending,
                Some("451 later")
            )
        );
        s.retry_queue_entry(id, now).await.unwrap();
        let q = s.queue().await.unwrap();
        assert_eq!(q.iter().find(|q| q.id == id).unwrap().next_attempt, now);
        s.delete_queue_entry(id, now).await.unwrap();
        assert!(s.queue().await.unwrap().iter().all(|q| q.id != id));
        assert!(
            s.queue_attempts(id).await.unwrap().is_empty(),
            "gone with the entry"
        );
        assert!(matches!(
            s.delete_queue_entry(id, now).await,
            Err(StoreError::NotFound(_))
        ));
        assert!(matches!(
            s.retry_queue_entry(id, now).await,
            Err(StoreError::NotFound(_))
        ));
    }

    pub async fn greylist_triplets(s: Arc<dyn Store>) {
        let t = |n: &str, r: &str| kurier_store::GreyTriplet {
            network: n.into(),
            sender: "a@sender.test".into(),
            recipient: r.into(),
        };
        let (one, two) = (
            t("192.0.2.0/24", "x@kurier.test"),
            t("2001:db8::/64", "x@kurier.test"),
        );
        assert_eq!(s.greylist_get(&one).await.unwrap(), None);
        let first = kurier_store::GreyRecord {
            first_seen: 1000,
            last_seen: 1000,
            passed: false,
        };
        s.greylist_put(&one, &first).await.unwrap();
        s.greylist_put(&two, &first).await.unwrap();
        assert_eq!(s.greylist_get(&one).await.unwrap(), Some(first));
        // A put replaces the whole record.
        let passed = kurier_store::GreyRecord {
            first_seen: 1000,
            last_seen: 1400,
            passed: true,
        };
        s.greylist_put(&one, &passed).await.unwrap();
        assert_eq!(s.greylist_get(&one).await.unwrap(), Some(passed));
        assert_eq!(
            s.greylist_get(&t("192.0.2.0/24", "y@kurier.test"))
                .await
                .unwrap(),
            None
        );
        // Pruning goes by last sight.
        assert_eq!(s.greylist_prune(1200).await.unwrap(), 1);
        assert_eq!(s.greylist_get(&two).await.unwrap(), None);
        assert_eq!(s.greylist_get(&one).await.unwrap(), Some(passed));
    }

    async fn account(s: &Arc<dyn Store>, addr: &str) -> kurier_store::Account {
        let domain = addr.rsplit_once('@').unwrap().1;
        match s.add_domain(domain).await {
            Ok(_) | Err(StoreError::Exists(_)) => {}
            Err(e) => panic!("{e}"),
        }
        s.add_account(addr, "secret", None).await.unwrap()
    }

    async fn inbox(s: &Arc<dyn Store>, a: &kurier_store::Account) -> kurier_store::Mailbox {
        s.mailbox(a.id, "INBOX").await.unwrap().unwrap()
    }

    pub async fn crud(s: Arc<dyn Store>) {
        assert!(
            s.domains().await.unwrap().is_empty(),
            "migration from an empty database"
        );
        s.add_domain("Example.ORG").await.unwrap();
        assert!(matches!(
            s.add_domain("example.org").await,
            Err(StoreError::Exists(_))
        ));
        assert!(matches!(
            s.add_domain("not a domain").await,
            Err(StoreError::Invalid(_))
        ));
        assert!(matches!(
            s.add_account("x@nothosted.test", "pw", None).await,
            Err(StoreError::NotFound(_))
        ));
        let a = s
            .add_account("Alice@Example.org", "pw", Some(1000))
            .await
            .unwrap();
        assert_eq!(a.address, "alice@example.org");
        assert_eq!(a.quota, Some(1000));
        assert!(matches!(
            s.add_account("alice@example.org", "pw", None).await,
            Err(StoreError::Exists(_))
        ));
        let names: Vec<_> = s
            .mailboxes(a.id)
            .await
            .unwrap()
            .into_iter()
            .map(|m| (m.name, m.special_use))
            .collect();
        assert!(names.contains(&("INBOX".into(), Default::default())));
        assert!(names.contains(&("Sent".into(), Some(SpecialUse::Sent))));
        assert!(names.contains(&("Trash".into(), Some(SpecialUse::Trash))));
        s.add_account("bob@example.org", "pw", None).await.unwrap();
        assert_eq!(s.accounts(Some("example.org")).await.unwrap().len(), 2);

        s.add_alias("postmaster@example.org", &["alice@example.org"])
            .await
            .unwrap();
        s.add_alias(
            "team@example.org",
            &["alice@example.org", "bob@example.org"],
        )
        .await
        .unwrap();
        assert!(matches!(
            s.add_alias("x@example.org", &["nobody@example.org"]).await,
            Err(StoreError::NotFound(_))
        ));
        assert!(matches!(
            s.add_alias("alice@example.org", &["bob@example.org"]).await,
            Err(StoreError::Exists(_))
        ));
        let Recipient::Local(team) = s.resolve("Team@example.org").await.unwrap() else {
            panic!()
        };
        assert_eq!(team.len(), 2);
        assert_eq!(
            s.resolve("nobody@example.org").await.unwrap(),
            Recipient::Unknown
        );
        assert_eq!(
            s.resolve("x@elsewhere.test").await.unwrap(),
            Recipient::NotHosted
        );
        s.add_alias("@example.org", &["bob@example.org"])
            .await
            .unwrap();
        let Recipient::Local(catch) = s.resolve("nobody@example.org").await.unwrap() else {
            panic!()
        };
        assert_eq!(catch[0].address, "bob@example.org", "catch-all");
        let Recipient::Local(exact) = s.resolve("alice@example.org").await.unwrap() else {
            panic!()
        };
        assert_eq!(
            exact[0].address, "alice@example.org",
            "an account beats the catch-all"
        );
        // Without the catch-all (a sub-address asks for its own name first, SIEVE-3).
        assert_eq!(
            s.resolve_address("nobody@example.org", false)
                .await
                .unwrap(),
            Recipient::Unknown
        );
        let Recipient::Local(team) = s.resolve_address("team@example.org", false).await.unwrap()
        else {
            panic!()
        };
        assert_eq!(team.len(), 2, "an alias is found without the catch-all");
        assert_eq!(s.aliases(None).await.unwrap().len(), 3);
        // What each account may send as: its aliases, not the catch-all (issue 20 item 2).
        assert_eq!(
            s.sender_aliases("Bob@example.org").await.unwrap(),
            ["team@example.org"]
        );
        assert_eq!(
            s.sender_aliases("alice@example.org").await.unwrap(),
            ["postmaster@example.org", "team@example.org"]
        );

        let e = s.delete_domain("example.org").await.unwrap_err();
        assert!(e.to_string().contains("delete them first"), "{e}");
        s.delete_alias("@example.org").await.unwrap();
        s.delete_alias("team@example.org").await.unwrap();
        assert_eq!(
            s.sender_aliases("alice@example.org").await.unwrap(),
            ["postmaster@example.org"]
        );
        s.delete_alias("postmaster@example.org").await.unwrap();
        assert!(
            s.sender_aliases("alice@example.org")
                .await
                .unwrap()
                .is_empty()
        );
        assert!(matches!(
            s.delete_alias("postmaster@example.org").await,
            Err(StoreError::NotFound(_))
        ));
        s.delete_account("alice@example.org").await.unwrap();
        s.delete_account("bob@example.org").await.unwrap();
        assert!(s.account("alice@example.org").await.unwrap().is_none());
        s.delete_domain("example.org").await.unwrap();
        assert!(s.domains().await.unwrap().is_empty());
    }

    pub async fn domain_settings(s: Arc<dyn Store>) {
        s.add_domain("settings.test").await.unwrap();
        assert!(s.domain_settings("settings.test").await.unwrap().is_empty());
        s.set_domain_setting("settings.test", "mta-sts.mode", Some("testing"))
            .await
            .unwrap();
        s.set_domain_setting("SETTINGS.test", "mta-sts.mode", Some("enforce"))
            .await
            .unwrap();
        s.set_domain_setting(
            "settings.test",
            "tlsrpt.rua",
            Some("mailto:tlsrpt@settings.test"),
        )
        .await
        .unwrap();
        let got = s.domain_settings("settings.test").await.unwrap();
        assert_eq!(got.get("mta-sts.mode").map(String::as_str), Some("enforce"));
        assert_eq!(got.len(), 2);
        s.set_domain_setting("settings.test", "tlsrpt.rua", None)
            .await
            .unwrap();
        assert_eq!(s.domain_settings("settings.test").await.unwrap().len(), 1);
        assert!(matches!(
            s.set_domain_setting("settings.test", "Bad Key", Some("x"))
                .await,
            Err(StoreError::Invalid(_))
        ));
        assert!(matches!(
            s.set_domain_setting("other.test", "k", Some("x")).await,
            Err(StoreError::NotFound(_))
        ));
        s.delete_domain("settings.test").await.unwrap();
        s.add_domain("settings.test").await.unwrap();
        assert!(
            s.domain_settings("settings.test").await.unwrap().is_empty(),
            "settings go with the domain"
        );
    }

    pub async fn authentication(s: Arc<dyn Store>) {
        account(&s, "carol@example.net").await;
        assert!(
            s.authenticate("CAROL@example.net", "secret")
                .await
                .unwrap()
                .is_some()
        );
        assert!(
            s.authenticate("carol@example.net", "wrong")
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            s.authenticate("nobody@example.net", "secret")
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            s.authenticate("not an address", "secret")
                .await
                .unwrap()
                .is_none()
        );
        s.set_password("carol@example.net", "new one")
            .await
            .unwrap();
        assert!(
            s.authenticate("carol@example.net", "secret")
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            s.authenticate("carol@example.net", "new one")
                .await
                .unwrap()
                .is_some()
        );
        s.set_enabled("carol@example.net", false).await.unwrap();
        assert!(
            s.authenticate("carol@example.net", "new one")
                .await
                .unwrap()
                .is_none(),
            "disabled"
        );
        assert_eq!(
            s.resolve("carol@example.net").await.unwrap(),
            Recipient::Unknown
        );
        assert!(matches!(
            s.set_password("nobody@example.net", "x").await,
            Err(StoreError::NotFound(_))
        ));
    }

    pub async fn mailboxes(s: Arc<dyn Store>) {
        let a = account(&s, "dave@example.net").await;
        let arch = s
            .create_mailbox(a.id, "Archive", Some(SpecialUse::Archive))
            .await
            .unwrap();
        s.create_mailbox(a.id, "Archive/2026", None).await.unwrap();
        assert!(matches!(
            s.create_mailbox(a.id, "Archive", None).await,
            Err(StoreError::Exists(_))
        ));
        assert!(matches!(
            s.create_mailbox(a.id, "a//b", None).await,
            Err(StoreError::Invalid(_))
        ));
        s.append(arch.id, b"Subject: x\r\n\r\nhi\r\n", &[], now())
            .await
            .unwrap();
        // Subscriptions are names: the defaults are subscribed, new mailboxes are not.
        assert_eq!(
            s.subscriptions(a.id).await.unwrap(),
            ["Drafts", "INBOX", "Junk", "Sent", "Trash"]
        );
        assert!(
            !s.mailbox(a.id, "Archive")
                .await
                .unwrap()
                .unwrap()
                .subscribed
        );
        s.set_subscribed(a.id, "Archive/2026", true).await.unwrap();
        s.set_subscribed(a.id, "Archive/2026", true).await.unwrap();
        s.set_subscribed(a.id, "Nowhere/Else", true).await.unwrap();
        s.rename_mailbox(a.id, "Archive", "Old").await.unwrap();
        let old = s.mailbox(a.id, "Old").await.unwrap().unwrap();
        assert_eq!(old.id, arch.id);
        assert_eq!(
            old.uid_validity, arch.uid_validity,
            "rename keeps UIDVALIDITY"
        );
        assert_eq!(old.messages, 1);
        assert!(
            s.mailbox(a.id, "Old/2026").await.unwrap().is_some(),
            "children move along"
        );
        assert!(s.mailbox(a.id, "Archive/2026").await.unwrap().is_none());
        assert!(
            s.delete_mailbox(a.id, "inbox").await.is_err(),
            "INBOX stays"
        );
        assert!(
            s.mailbox(a.id, "Old/2026")
                .await
                .unwrap()
                .unwrap()
                .subscribed,
            "renamed along"
        );
        assert!(matches!(
            s.set_subscribed(a.id, "Old", false).await,
            Err(StoreError::NotFound(_))
        ));
        s.set_subscribed(a.id, "Old", true).await.unwrap();
        assert!(s.mailbox(a.id, "Old").await.unwrap().unwrap().subscribed);
        s.set_subscribed(a.id, "Old", false).await.unwrap();
        assert!(!s.mailbox(a.id, "Old").await.unwrap().unwrap().subscribed);
        s.delete_mailbox(a.id, "Old/2026").await.unwrap();
        assert!(
            s.subscriptions(a.id)
                .await
                .unwrap()
                .contains(&"Old/2026".to_string()),
            "a subscription outlives its mailbox (RFC 9051 §6.3.7)"
        );
        assert!(
            s.subscriptions(a.id)
                .await
                .unwrap()
                .contains(&"Nowhere/Else".to_string())
        );
        s.delete_mailbox(a.id, "Old").await.unwrap();
        assert_eq!(
            s.usage(a.id).await.unwrap(),
            0,
            "deleting a mailbox frees its space"
        );
        let again = s.create_mailbox(a.id, "Old", None).await.unwrap();
        assert_ne!(
            again.uid_validity, arch.uid_validity,
            "a re-created name gets a new UIDVALIDITY"
        );
        assert!(s.mailbox(a.id, "iNbOx").await.unwrap().is_some());
    }

    pub async fn uid_modseq(s: Arc<dyn Store>) {
        let a = account(&s, "erin@example.net").await;
        let mb = inbox(&s, &a).await;
        let mut last = (0, 0);
        for i in 0..5 {
            let r = s
                .append(
                    mb.id,
                    format!("Subject: {i}\r\n\r\nbody\r\n").as_bytes(),
                    &["\\Seen"],
                    now(),
                )
                .await
                .unwrap();
            assert!(r.uid > last.0 && r.modseq > last.1, "{r:?} after {last:?}");
            assert_eq!(r.uid_validity, mb.uid_validity);
            last = (r.uid, r.modseq);
        }
        let removed = s.expunge(mb.id, &[5, 4, 99]).await.unwrap();
        assert_eq!(removed, [5, 4]);
        let r = s.append(mb.id, b"x", &[], now()).await.unwrap();
        assert_eq!(r.uid, 6, "UIDs are never reused after expunge");
        let changed = s
            .set_flags(
                mb.id,
                &[1, 2],
                FlagChange::Add,
                &["\\Flagged", "$Important"],
            )
            .await
            .unwrap();
        assert_eq!(changed.len(), 2);
        assert!(changed.iter().all(|m| m.modseq > r.modseq));
        assert_eq!(changed[0].flags, ["$Important", "\\Flagged", "\\Seen"]);
        let none = s
            .set_flags(mb.id, &[1], FlagChange::Add, &["\\Flagged"])
            .await
            .unwrap();
        assert!(none.is_empty(), "no change, no new MODSEQ");
        s.set_flags(mb.id, &[1], FlagChange::Replace, &[])
            .await
            .unwrap();
        let msgs = s.messages(mb.id).await.unwrap();
        assert_eq!(msgs.iter().map(|m| m.uid).collect::<Vec<_>>(), [1, 2, 3, 6]);
        assert!(msgs[0].flags.is_empty());
        // \Recent: everything so far is new to the first session that claims it, to no other.
        assert_eq!(mb.recent_uid, 0, "a new mailbox's messages are recent");
        assert_eq!(s.claim_recent(mb.id).await.unwrap(), 0);
        assert_eq!(
            s.claim_recent(mb.id).await.unwrap(),
            7,
            "claimed up to UIDNEXT"
        );
        assert_eq!(inbox(&s, &a).await.recent_uid, 7);
        // What an IMAP session catches up with: the appended UID 6 and the flag changes after.
        let since = s.messages_since(mb.id, last.1).await.unwrap();
        assert_eq!(since.iter().map(|m| m.uid).collect::<Vec<_>>(), [1, 2, 6]);
        let newest = msgs.iter().map(|m| m.modseq).max().unwrap();
        assert!(s.messages_since(mb.id, newest).await.unwrap().is_empty());
        // And what went away since (QRESYNC): UIDs 4 and 5, expunged after `last`.
        assert_eq!(s.expunged_since(mb.id, last.1).await.unwrap(), [4, 5]);
        assert!(s.expunged_since(mb.id, newest).await.unwrap().is_empty());
        let mb2 = inbox(&s, &a).await;
        assert_eq!(mb2.uid_next, 7);
        assert!(mb2.highest_modseq >= msgs.iter().map(|m| m.modseq).max().unwrap());
        assert_eq!(
            s.message_body(mb.id, 2).await.unwrap().unwrap(),
            b"Subject: 1\r\n\r\nbody\r\n"
        );
        assert!(s.message_body(mb.id, 5).await.unwrap().is_none());
        assert!(matches!(
            s.append(mb.id, b"x", &["\\Bogus"], now()).await,
            Err(StoreError::Invalid(_))
        ));
    }

    pub async fn concurrent_appends(s: Arc<dyn Store>) {
        let a = account(&s, "frank@example.net").await;
        let mb = inbox(&s, &a).await;
        let mut tasks = Vec::new();
        for t in 0..8 {
            let s = s.clone();
            tasks.push(tokio::spawn(async move {
                let mut uids = Vec::new();
                for i in 0..25 {
                    let body = format!("From: t{t}\r\n\r\n{i}\r\n");
                    uids.push(
                        s.append(mb.id, body.as_bytes(), &[], now())
                            .await
                            .unwrap()
                            .uid,
                    );
                }
                uids
            }));
        }
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap());
        }
        let unique: HashSet<_> = all.iter().collect();
        assert_eq!(unique.len(), 200, "no duplicate UIDs");
        assert_eq!(*all.iter().max().unwrap(), 200);
        assert_eq!(s.messages(mb.id).await.unwrap().len(), 200);
    }

    pub async fn deliver_copy(s: Arc<dyn Store>) {
        let a = account(&s, "gina@example.net").await;
        let b = account(&s, "hank@example.net").await;
        let body = b"Subject: shared\r\n\r\nfor both\r\n";
        let done = s.deliver(&[a.id, b.id], body).await.unwrap();
        assert_eq!(done.len(), 2);
        assert_eq!(
            s.message_body(done[1].mailbox, done[1].uid)
                .await
                .unwrap()
                .unwrap(),
            body
        );
        assert_eq!(s.usage(a.id).await.unwrap(), body.len() as u64);
        let sent = s.mailbox(a.id, "Sent").await.unwrap().unwrap();
        let pairs = s
            .copy(done[0].mailbox, &[done[0].uid, 42], sent.id)
            .await
            .unwrap();
        assert_eq!(pairs, [(done[0].uid, 1)]);
        assert_eq!(s.usage(a.id).await.unwrap(), 2 * body.len() as u64);
        s.delete_account("gina@example.net").await.unwrap();
        assert_eq!(
            s.message_body(done[1].mailbox, done[1].uid)
                .await
                .unwrap()
                .unwrap(),
            body,
            "b keeps its copy"
        );
        assert!(s.deliver(&[a.id], body).await.is_err(), "deleted account");
    }

    pub async fn deliver_and_enqueue(s: Arc<dyn Store>) {
        let a = account(&s, "kim@example.net").await;
        // RFC 3461 requests, typed, come back as they went in (issue 20 item 2).
        let rcpt_dsn = kurier_store::RecipientDsn {
            notify: Some(kurier_store::Notify {
                success: true,
                failure: true,
                delay: false,
            }),
            orcpt: Some("rfc822;far@remote.test".into()),
        };
        let message_dsn = kurier_store::MessageDsn {
            ret: Some(kurier_store::DsnReturn::Headers),
            envid: Some("QQ314159".into()),
        };
        let remote = NewQueueEntry {
            sender: "kim@example.net".into(),
            recipients: vec![("far@remote.test".into(), rcpt_dsn.clone())],
            require_tls: false,
            dsn: message_dsn.clone(),
        };
        let (done, queued) = s
            .deliver_and_enqueue(&[a.id], Folder::Inbox, b"both", Some(&remote))
            .await
            .unwrap();
        assert_eq!(done.len(), 1);
        let q = s.queue().await.unwrap();
        assert_eq!((q.len(), q[0].id), (1, queued.unwrap()));
        assert_eq!(q[0].dsn, message_dsn);
        assert_eq!(q[0].recipients[0].dsn, rcpt_dsn);
        assert_eq!(s.queue_body(q[0].id).await.unwrap().unwrap(), b"both");
        // Remote only.
        let (done, queued) = s
            .deliver_and_enqueue(&[], Folder::Inbox, b"remote only", Some(&remote))
            .await
            .unwrap();
        assert!(done.is_empty() && queued.is_some());
        // A failure on one side leaves nothing on the other.
        s.set_quota("kim@example.net", Some(5)).await.unwrap();
        let e = s
            .deliver_and_enqueue(&[a.id], Folder::Inbox, b"too big for kim", Some(&remote))
            .await
            .unwrap_err();
        assert!(matches!(e, StoreError::QuotaExceeded { .. }), "{e}");
        assert_eq!(
            s.queue().await.unwrap().len(),
            2,
            "nothing was queued for the failed message"
        );
        let empty = NewQueueEntry {
            recipients: vec![],
            ..remote
        };
        assert!(matches!(
            s.deliver_and_enqueue(&[], Folder::Inbox, b"x", Some(&empty))
                .await,
            Err(StoreError::Invalid(_))
        ));
        // DMARC quarantine: into the \Junk mailbox (renamed or not), INBOX when there is none.
        let b = account(&s, "jo@example.net").await;
        s.rename_mailbox(b.id, "Junk", "Spam").await.unwrap();
        s.deliver_and_enqueue(&[b.id], Folder::Junk, b"suspect", None)
            .await
            .unwrap();
        let spam = s.mailbox(b.id, "Spam").await.unwrap().unwrap();
        assert_eq!(s.messages(spam.id).await.unwrap().len(), 1);
        assert!(s.messages(inbox(&s, &b).await.id).await.unwrap().is_empty());
        s.delete_mailbox(b.id, "Spam").await.unwrap();
        s.deliver_and_enqueue(&[b.id], Folder::Junk, b"suspect", None)
            .await
            .unwrap();
        assert_eq!(s.messages(inbox(&s, &b).await.id).await.unwrap().len(), 1);
    }

    pub async fn quota(s: Arc<dyn Store>) {
        let a = account(&s, "ida@example.net").await;
        s.set_quota("ida@example.net", Some(100)).await.unwrap();
        let mb = inbox(&s, &a).await;
        let r = s.append(mb.id, &[b'x'; 60], &[], now()).await.unwrap();
        let e = s.append(mb.id, &[b'x'; 60], &[], now()).await.unwrap_err();
        assert!(
            matches!(
                e,
                StoreError::QuotaExceeded {
                    used: 60,
                    quota: 100,
                    size: 60,
                    ..
                }
            ),
            "{e}"
        );
        assert!(matches!(
            s.deliver(&[a.id], &[b'x'; 60]).await,
            Err(StoreError::QuotaExceeded { .. })
        ));
        assert_eq!(
            s.messages(mb.id).await.unwrap().len(),
            1,
            "a refused message leaves no trace"
        );
        s.expunge(mb.id, &[r.uid]).await.unwrap();
        assert_eq!(s.usage(a.id).await.unwrap(), 0);
        s.append(mb.id, &[b'x'; 60], &[], now()).await.unwrap();
        s.set_quota("ida@example.net", None).await.unwrap();
        s.append(mb.id, &[b'x'; 60], &[], now()).await.unwrap();
    }

    pub async fn unicode(s: Arc<dyn Store>) {
        s.add_domain("Bücher.Example").await.unwrap();
        let a = s
            .add_account("Jürgen@bücher.example", "pässwörd", None)
            .await
            .unwrap();
        assert_eq!(a.address, "jürgen@bücher.example");
        let Recipient::Local(r) = s.resolve("JÜRGEN@BÜCHER.EXAMPLE").await.unwrap() else {
            panic!()
        };
        assert_eq!(r[0].id, a.id);
        assert!(
            s.authenticate("jürgen@bücher.example", "pässwörd")
                .await
                .unwrap()
                .is_some()
        );
        s.add_alias("пользователь@bücher.example", &["jürgen@bücher.example"])
            .await
            .unwrap();
        assert!(matches!(
            s.resolve("ПОЛЬЗОВАТЕЛЬ@bücher.example").await.unwrap(),
            Recipient::Local(_)
        ));
        let mb = s.create_mailbox(a.id, "Entwürfe/日本", None).await.unwrap();
        assert_eq!(
            s.mailbox(a.id, "Entwürfe/日本").await.unwrap().unwrap().id,
            mb.id
        );
    }

    fn entry(i: usize) -> NewQueueEntry {
        NewQueueEntry {
            sender: format!("sender{i}@example.net"),
            recipients: vec![
                (format!("r{i}@remote.test"), Default::default()),
                (
                    format!("s{i}@remote.test"),
                    kurier_store::RecipientDsn::from_rfc3461("NOTIFY=FAILURE"),
                ),
            ],
            require_tls: i.is_multiple_of(2),
            dsn: Default::default(),
        }
    }

    pub async fn queue_two_workers(s: Arc<dyn Store>) {
        let mut ids = HashSet::new();
        for i in 0..40 {
            ids.insert(
                s.enqueue(&entry(i), format!("body {i}").as_bytes())
                    .await
                    .unwrap(),
            );
        }
        assert!(matches!(
            s.enqueue(
                &NewQueueEntry {
                    sender: String::new(),
                    recipients: vec![],
                    require_tls: false,
                    dsn: Default::default(),
                },
                b"x"
            )
            .await,
            Err(StoreError::Invalid(_))
        ));
        let worker = |name: &'static str| {
            let s = s.clone();
            tokio::spawn(async move {
                let mut done = Vec::new();
                loop {
                    let batch = s.lease(name, now(), 300, 3).await.unwrap();
                    if batch.is_empty() {
                        break;
                    }
                    for e in batch {
                        assert_eq!(e.lease.as_ref().unwrap().0, name);
                        assert_eq!(
                            s.queue_body(e.id).await.unwrap().unwrap(),
                            format!("body {}", &e.sender[6..e.sender.find('@').unwrap()])
                                .as_bytes()
                        );
                        let results: Vec<_> = e
                            .recipients
                            .iter()
                            .map(|r| (r.address.clone(), RecipientStatus::Delivered, None))
                            .collect();
                        s.finish_attempt(e.id, name, &results, now()).await.unwrap();
                        done.push(e.id);
                    }
                }
                done
            })
        };
        let (a, b) = (worker("node-a"), worker("node-b"));
        let (a, b) = (a.await.unwrap(), b.await.unwrap());
        let mut all: Vec<_> = a.iter().chain(&b).copied().collect();
        all.sort();
        let expected: Vec<_> = {
            let mut v: Vec<_> = ids.into_iter().collect();
            v.sort();
            v
        };
        assert_eq!(all, expected, "every entry delivered exactly once");
        assert!(
            s.queue().await.unwrap().is_empty(),
            "delivered entries are gone"
        );
    }

    pub async fn lease_expiry(s: Arc<dyn Store>) {
        let id = s.enqueue(&entry(1), b"body").await.unwrap();
        let t = now();
        let got = s.lease("crashed-node", t, 60, 10).await.unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(
            got[0].recipients[1].dsn.rfc3461_parameters().as_deref(),
            Some("NOTIFY=FAILURE")
        );
        assert!(
            s.lease("other", t + 30, 60, 10).await.unwrap().is_empty(),
            "a live lease is respected"
        );
        // The first node "crashes"; after the lease runs out the entry is due again.
        let again = s.lease("other", t + 61, 60, 10).await.unwrap();
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].id, id);
        let late = s
            .finish_attempt(id, "crashed-node", &[], t)
            .await
            .unwrap_err();
        assert!(matches!(late, StoreError::LeaseLost(_)), "{late}");
        // One recipient fails for now, one is delivered: the entry comes back later.
        let results = vec![
            (
                "r1@remote.test".to_string(),
                RecipientStatus::Delivered,
                None,
            ),
            (
                "s1@remote.test".to_string(),
                RecipientStatus::Pending,
                Some("451 4.7.5 TLSA mismatch".to_string()),
            ),
        ];
        s.finish_attempt(id, "other", &results, t + 600)
            .await
            .unwrap();
        let q = s.queue().await.unwrap();
        assert_eq!(q.len(), 1);
        assert_eq!(q[0].attempts, 1);
        assert_eq!(q[0].next_attempt, t + 600);
        assert!(q[0].lease.is_none());
        assert_eq!(
            q[0].recipients[1].last_error.as_deref(),
            Some("451 4.7.5 TLSA mismatch")
        );
        assert!(
            s.lease("other", t + 100, 60, 10).await.unwrap().is_empty(),
            "not due before next_attempt"
        );
        let e = s.lease("other", t + 600, 60, 10).await.unwrap();
        s.finish_attempt(
            id,
            "other",
            &[(
                "s1@remote.test".into(),
                RecipientStatus::Failed,
                Some("550 5.1.1".into()),
            )],
            t,
        )
        .await
        .unwrap();
        assert_eq!(e.len(), 1);
        assert!(s.queue().await.unwrap().is_empty());
    }

    pub async fn reports_and_policies(s: Arc<dyn Store>) {
        let ev = TlsOutcome {
            policy_domain: "remote.test".into(),
            policy_type: PolicyType::Tlsa,
            policy_strings: vec!["3 1 1 abcd".into(), "2 1 1 ef01".into()],
            mx_host: "mx.remote.test".into(),
            failure: Some(ResultType::TlsaInvalid),
            receiving_ip: Some("192.0.2.1".into()),
            sending_ip: Some("198.51.100.7".into()),
            receiving_helo: Some("mx.remote.test".into()),
            detail: Some("no TLSA record matched".into()),
        };
        s.record_tls_event(&ev, 1_000_000).await.unwrap();
        s.record_tls_event(
            &TlsOutcome {
                failure: None,
                detail: None,
                receiving_helo: None,
                ..ev.clone()
            },
            1_086_400,
        )
        .await
        .unwrap();
        assert_eq!(s.tls_events(1_000_000, 1_086_400).await.unwrap(), [ev]);
        let id = s
            .store_report(
                "example.net",
                "reporter.test",
                b"{\"organization-name\":\"x\"}",
            )
            .await
            .unwrap();
        let r = s.reports().await.unwrap();
        assert_eq!(
            (r[0].id, r[0].json.as_slice()),
            (id, &b"{\"organization-name\":\"x\"}"[..])
        );
        let p = kurier_store::CachedStsPolicy {
            domain: "remote.test".into(),
            record_id: "20261128".into(),
            policy: "version: STSv1\nmode: enforce\nmx: mx.remote.test\nmax_age: 86400\n".into(),
            fetched: 10,
            expires: 86410,
        };
        s.put_sts_policy(&p).await.unwrap();
        s.put_sts_policy(&kurier_store::CachedStsPolicy {
            record_id: "2".into(),
            ..p.clone()
        })
        .await
        .unwrap();
        assert_eq!(
            s.sts_policy("REMOTE.test")
                .await
                .unwrap()
                .unwrap()
                .record_id,
            "2"
        );
        assert!(s.sts_policy("other.test").await.unwrap().is_none());
    }

    pub async fn announcements(s: Arc<dyn Store>) {
        let a = account(&s, "jill@example.net").await;
        let mb = inbox(&s, &a).await;
        let mut rx = s.subscribe();
        let r = s.deliver(&[a.id], b"hello").await.unwrap();
        let c = tokio::time::timeout(std::time::Duration::from_secs(5), rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (c.account, c.mailbox, c.kind),
            (a.id, mb.id, ChangeKind::Appended { uid: r[0].uid })
        );
        s.set_flags(mb.id, &[r[0].uid], FlagChange::Add, &["\\Seen"])
            .await
            .unwrap();
        let c = rx.recv().await.unwrap();
        assert_eq!(
            c.kind,
            ChangeKind::Flags {
                uids: vec![r[0].uid]
            }
        );
        s.expunge(mb.id, &[r[0].uid]).await.unwrap();
        assert_eq!(
            rx.recv().await.unwrap().kind,
            ChangeKind::Expunged {
                uids: vec![r[0].uid]
            }
        );
    }
}
