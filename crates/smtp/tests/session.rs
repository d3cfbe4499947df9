//! The inbound session state machine, driven without any I/O: order of commands, pipelining,
//! STARTTLS reset (MUA-3), smuggling, limits, and 250 only after the store said "stored".

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::sync::Arc;

use kurier_smtp::BareLineEnding;
use kurier_smtp::session::{
    AuthOutcome, Delivery, Event, PeerInfo, Session, SessionConfig, TlsInfo, Verdict,
};

fn config() -> Arc<SessionConfig> {
    Arc::new(SessionConfig {
        hostname: "mx.kurier.test".into(),
        postmaster: "postmaster@kurier.test".into(),
        max_message_size: 10_000,
        max_recipients: 3,
        max_errors: 5,
        max_line_length: 998,
        bare_line_ending: BareLineEnding::Reject,
        starttls: true,
        submission: false,
        received_client_ip: true,
        in_flight: kurier_smtp::spool::InFlight::unlimited(),
        // The session reads no clock of its own (issue 20 item 3): its time is this.
        clock: kurier_smtp::received::Clock::Fixed(1_795_906_104),
    })
}

fn session() -> Session {
    Session::new(
        config(),
        PeerInfo {
            ip: "192.0.2.7".parse().unwrap(),
        },
    )
}

/// Feeds `input` and answers lookups and deliveries as told; returns the events in order and
/// the number of bytes used.
struct Driver {
    s: Session,
    verdict: Verdict,
    delivery: Delivery,
    delivered: Vec<kurier_smtp::Message>,
    auth: AuthOutcome,
    credentials: Vec<(String, String)>,
}

impl Driver {
    fn new() -> Self {
        Driver {
            s: session(),
            verdict: Verdict::Accept(vec![1]),
            delivery: Delivery::Stored,
            delivered: Vec::new(),
            auth: AuthOutcome::Invalid,
            credentials: Vec::new(),
        }
    }

    /// Returns the reply codes produced, with the text of the last one.
    fn feed(&mut self, input: &str) -> Vec<(u16, String)> {
        let mut buf = input.as_bytes().to_vec();
        let mut out = Vec::new();
        loop {
            let (used, event) = self.s.input(&buf);
            buf.drain(..used);
            match event {
                Event::NeedInput if used > 0 && !buf.is_empty() => continue,
                Event::NeedInput => return out,
                Event::Reply(r) | Event::Close(r) => {
                    out.push((r.code, String::from_utf8_lossy(&r.to_bytes()).into_owned()))
                }
                Event::StartTls(r) => {
                    out.push((r.code, String::from_utf8_lossy(&r.to_bytes()).into_owned()));
                    // The driver drops everything buffered after STARTTLS.
                    buf.clear();
                    return out;
                }
                Event::CheckRecipient(_) => {
                    if let Event::Reply(r) | Event::Close(r) =
                        self.s.recipient_verdict(self.verdict.clone())
                    {
                        out.push((r.code, String::from_utf8_lossy(&r.to_bytes()).into_owned()));
                    }
                }
                Event::Authenticate { user, password } => {
                    self.credentials.push((user, password));
                    if let Event::Reply(r) | Event::Close(r) = self.s.auth_result(self.auth.clone())
                    {
                        out.push((r.code, String::from_utf8_lossy(&r.to_bytes()).into_owned()));
                    }
                }
                Event::Deliver(m) => {
                    self.delivered.push(*m.clone());
                    if let Event::Reply(r) = self.s.delivered(self.delivery.clone(), &m.id) {
                        out.push((r.code, String::from_utf8_lossy(&r.to_bytes()).into_owned()));
                    }
                }
            }
        }
    }

    fn codes(&mut self, input: &str) -> Vec<u16> {
        self.feed(input).into_iter().map(|(c, _)| c).collect()
    }
}

#[test]
fn greeting_and_ehlo_capabilities_offer_starttls_but_never_auth() {
    let mut d = Driver::new();
    assert_eq!(
        d.s.greeting().to_bytes(),
        b"220 mx.kurier.test ESMTP Kurier\r\n"
    );
    let r = d.feed("EHLO client.test\r\n");
    let text = &r[0].1;
    for cap in [
        "PIPELINING",
        "SIZE 10000",
        "8BITMIME",
        "SMTPUTF8",
        "ENHANCEDSTATUSCODES",
        "CHUNKING",
        "DSN",
        "STARTTLS",
    ] {
        assert!(text.contains(cap), "{cap} in {text}");
    }
    assert!(
        !text.contains("AUTH") && !text.contains("REQUIRETLS"),
        "{text}"
    );
    assert_eq!(d.codes("AUTH PLAIN AGFAYg==\r\n"), [502]);
    assert_eq!(d.codes("HELO old.test\r\n"), [250]);
}

#[test]
fn commands_out_of_order_are_refused() {
    let mut d = Driver::new();
    assert_eq!(
        d.codes("MAIL FROM:<a@b.test>\r\n"),
        [503],
        "MAIL before EHLO"
    );
    assert_eq!(
        d.codes("EHLO c.test\r\nRCPT TO:<x@kurier.test>\r\nDATA\r\n"),
        [250, 503, 503]
    );
    let mut d = Driver::new();
    assert_eq!(
        d.codes("EHLO c.test\r\nMAIL FROM:<a@b.test>\r\nMAIL FROM:<a@b.test>\r\n"),
        [250, 250, 503]
    );
    assert_eq!(d.codes("DATA\r\n"), [554], "DATA without recipients");
    let mut d = Driver::new();
    d.feed("EHLO c.test\r\n");
    assert_eq!(
        d.codes("RSET\r\nNOOP\r\nVRFY x\r\nEXPN x\r\nHELP\r\n"),
        [250, 250, 252, 502, 214]
    );
    assert_eq!(d.codes("XYZZY\r\n"), [500]);
}

#[test]
fn pipelined_transaction_is_delivered_with_a_received_header_and_250_only_after_storing() {
    let mut d = Driver::new();
    let codes = d.codes(
        "EHLO c.test\r\nMAIL FROM:<a@b.test> SIZE=100\r\nRCPT TO:<x@kurier.test>\r\nDATA\r\nSubject: hi\r\n\r\nbody\r\n.\r\nQUIT\r\n",
    );
    assert_eq!(codes, [250, 250, 250, 354, 250, 221]);
    let m = &d.delivered[0];
    let body = String::from_utf8_lossy(&m.body);
    assert!(
        body.starts_with(
            "Received: from c.test ([192.0.2.7])\r\n\tby mx.kurier.test (Kurier) with ESMTP id "
        ),
        "{body}"
    );
    assert!(
        body.contains("\tfor <x@kurier.test>;\r\n\tSat, 28 Nov 2026 22:48:24 +0000\r\n")
            && body.ends_with("Subject: hi\r\n\r\nbody\r\n"),
        "{body}"
    );
    assert_eq!(m.accounts, [1]);

    let mut d = Driver::new();
    d.delivery = Delivery::TempFail;
    let r = d.feed(
        "EHLO c.test\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<x@kurier.test>\r\nDATA\r\nx\r\n.\r\n",
    );
    assert_eq!(r.last().unwrap().0, 451, "not stored, no 250: {r:?}");
    d.delivery = Delivery::OverQuota("x@kurier.test".into());
    let r = d.codes("MAIL FROM:<a@b.test>\r\nRCPT TO:<x@kurier.test>\r\nDATA\r\nx\r\n.\r\n");
    assert_eq!(r, [250, 250, 354, 552]);
}

#[test]
fn recipient_verdicts_map_to_the_right_replies() {
    let mut d = Driver::new();
    d.feed("EHLO c.test\r\nMAIL FROM:<a@b.test>\r\n");
    for (verdict, code, text) in [
        (Verdict::Unknown, 550, "5.1.1"),
        (
            Verdict::NotHosted,
            554,
            "5.7.1 <x@kurier.test>: Relay access denied",
        ),
        (Verdict::OverQuota, 452, "4.2.2"),
        (Verdict::TempFail, 451, "4.3.0"),
    ] {
        d.verdict = verdict;
        let r = d.feed("RCPT TO:<x@kurier.test>\r\n");
        assert_eq!(r[0].0, code);
        assert!(r[0].1.contains(text), "{r:?}");
    }
}

#[test]
fn limits_recipients_size_line_length_and_errors() {
    let mut d = Driver::new();
    d.feed("EHLO c.test\r\nMAIL FROM:<a@b.test>\r\n");
    assert_eq!(d.codes("RCPT TO:<1@k.test>\r\nRCPT TO:<2@k.test>\r\nRCPT TO:<3@k.test>\r\nRCPT TO:<4@k.test>\r\n"), [250, 250, 250, 452]);
    assert_eq!(
        d.codes("RSET\r\nMAIL FROM:<a@b.test> SIZE=10001\r\n"),
        [250, 552]
    );
    let long = format!("NOOP {}\r\n", "x".repeat(5000));
    assert_eq!(d.codes(&long), [500]);
    assert_eq!(
        d.codes("NOOP\r\n"),
        [250],
        "the session goes on after a long line"
    );
    let mut d = Driver::new();
    let r = d.codes("bad\r\nbad\r\nbad\r\nbad\r\nbad\r\nEHLO x\r\n");
    assert_eq!(r, [500, 500, 500, 500, 421], "closed after max_errors");
}

#[test]
fn smtputf8_and_postmaster() {
    let mut d = Driver::new();
    d.feed("EHLO c.test\r\nMAIL FROM:<a@b.test>\r\n");
    assert_eq!(
        d.codes("RCPT TO:<jürgen@kurier.test>\r\n"),
        [553],
        "UTF-8 needs SMTPUTF8"
    );
    assert_eq!(
        d.codes("RSET\r\nMAIL FROM:<a@b.test> SMTPUTF8\r\nRCPT TO:<jürgen@kurier.test>\r\n"),
        [250, 250, 250]
    );
    let (_, ev) = {
        let mut s = session();
        s.input(b"EHLO c.test\r\n");
        s.input(b"MAIL FROM:<>\r\n");
        s.input(b"RCPT TO:<Postmaster>\r\n")
    };
    assert_eq!(
        ev,
        Event::CheckRecipient("postmaster@kurier.test".into()),
        "RFC 5321 §4.5.1"
    );
    let r = d.feed("DATA\r\nx\r\n.\r\n");
    assert_eq!(r.last().unwrap().0, 250);
    assert!(String::from_utf8_lossy(&d.delivered[0].body).contains("with UTF8SMTP id"));
}

#[test]
fn mua3_starttls_discards_pipelined_plaintext_and_resets_the_session() {
    let mut d = Driver::new();
    d.feed("EHLO c.test\r\n");
    // The injection: commands in the same packet as STARTTLS.
    let r = d.feed("STARTTLS\r\nMAIL FROM:<evil@x.test>\r\nRCPT TO:<v@kurier.test>\r\n");
    assert_eq!(
        r.iter().map(|x| x.0).collect::<Vec<_>>(),
        [220],
        "nothing after STARTTLS is answered"
    );
    d.s.tls_started(TlsInfo {
        version: "TLSv1.3".into(),
        cipher: "TLS_AES_128_GCM_SHA256".into(),
        group: Some("brainpoolP256r1tls13".into()),
    });
    assert_eq!(
        d.codes("MAIL FROM:<a@b.test>\r\n"),
        [503],
        "EHLO is needed again after TLS"
    );
    let r = d.feed("EHLO c.test\r\n");
    assert!(
        !r[0].1.contains("STARTTLS") && r[0].1.contains("REQUIRETLS"),
        "{}",
        r[0].1
    );
    assert_eq!(d.codes("STARTTLS\r\n"), [503]);
    let r =
        d.codes("MAIL FROM:<a@b.test> REQUIRETLS\r\nRCPT TO:<x@kurier.test>\r\nDATA\r\nx\r\n.\r\n");
    assert_eq!(r, [250, 250, 354, 250]);
    let body = String::from_utf8_lossy(&d.delivered[0].body);
    assert!(
        body.contains("with ESMTPS id")
            && body.contains(
                "version=TLSv1.3 cipher=TLS_AES_128_GCM_SHA256 group=brainpoolP256r1tls13"
            ),
        "{body}"
    );
    assert!(d.delivered[0].params.require_tls);
}

#[test]
fn requiretls_needs_tls() {
    let mut d = Driver::new();
    assert_eq!(
        d.codes("EHLO c.test\r\nMAIL FROM:<a@b.test> REQUIRETLS\r\n"),
        [250, 530]
    );
}

#[test]
fn smuggled_transaction_is_never_executed() {
    let mut d = Driver::new();
    let attack = "EHLO c.test\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<x@kurier.test>\r\nDATA\r\nSubject: ok\r\n\r\nhi\n.\nMAIL FROM:<admin@kurier.test>\r\nRCPT TO:<victim@kurier.test>\r\nDATA\r\nforged\r\n.\r\nQUIT\r\n";
    let r = d.codes(attack);
    assert_eq!(
        r,
        [250, 250, 250, 354, 550, 221],
        "one message, refused; no second transaction"
    );
    assert!(d.delivered.is_empty());
}

#[test]
fn bdat_chunks() {
    let mut d = Driver::new();
    let r = d.codes("EHLO c.test\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<x@kurier.test>\r\nBDAT 7\r\nline1\r\nBDAT 7 LAST\r\nline2\r\n");
    assert_eq!(r, [250, 250, 250, 250, 250]);
    assert!(d.delivered[0].body.ends_with(b"line1\r\nline2\r\n"));
    // Issue 16 item 7: a bare LF or CR in BDAT is refused as in DATA (smuggling defence).
    let r = d.codes("MAIL FROM:<a@b.test>\r\nRCPT TO:<x@kurier.test>\r\nBDAT 6\r\nline1\nBDAT 7 LAST\r\nline2\r\n");
    assert_eq!(r, [250, 250, 250, 550]);
    let smuggle = "hello\r.\r\nMAIL FROM:<evil@x.test>\r\n";
    let r = d.codes(&format!(
        "MAIL FROM:<a@b.test>\r\nRCPT TO:<x@kurier.test>\r\nBDAT {} LAST\r\n{smuggle}",
        smuggle.len()
    ));
    assert_eq!(r, [250, 250, 550]);
    assert_eq!(d.delivered.len(), 1, "nothing with a bare CR was stored");
    // BDAT without a transaction: the chunk is read and refused.
    let r = d.codes("BDAT 5 LAST\r\nhelloNOOP\r\n");
    assert_eq!(r, [503, 250]);
    let r = d.codes("MAIL FROM:<a@b.test>\r\nRCPT TO:<x@kurier.test>\r\nBDAT 0 LAST\r\n");
    assert_eq!(r, [250, 250, 250], "an empty last chunk ends the message");
}

/// Issue 16 item 2: after 421 the session reads nothing more — every later byte is dropped
/// at once (the driver closes), so a client cannot make the server buffer what it sends.
#[test]
fn after_421_nothing_is_buffered() {
    let mut s = session();
    let mut closed = false;
    for _ in 0..5 {
        let (_, e) = s.input(b"BOGUS\r\n");
        if let Event::Close(r) = e {
            assert_eq!(r.code, 421);
            closed = true;
            break;
        }
    }
    assert!(closed && s.is_closed());
    let flood = vec![b'A'; 1 << 20];
    let (used, e) = s.input(&flood);
    assert_eq!(
        (used, e),
        (flood.len(), Event::NeedInput),
        "dropped, not kept"
    );
    // The same through a refused recipient (the close comes from the driver callback).
    let mut d = Driver::new();
    d.verdict = Verdict::Unknown;
    let r = d.codes("EHLO c.test\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<1@kurier.test>\r\nRCPT TO:<2@kurier.test>\r\nRCPT TO:<3@kurier.test>\r\nRCPT TO:<4@kurier.test>\r\nRCPT TO:<5@kurier.test>\r\nRCPT TO:<6@kurier.test>\r\nNOOP\r\n");
    assert_eq!(r, [250, 250, 550, 550, 550, 550, 421]);
    assert!(d.s.is_closed());
}

/// Issue 16 item 4: bodies beyond the in-flight budget get 451 4.3.1, and the budget is
/// given back whatever happens.
#[test]
fn bodies_past_the_in_flight_budget_get_451() {
    let budget = kurier_smtp::spool::InFlight::new(
        None,
        kurier_access::ByteBudget::new(64 * 1024),
        64 * 1024,
    );
    let mut cfg = (*config()).clone();
    cfg.max_message_size = 1 << 20;
    cfg.in_flight = budget.clone();
    let mut d = Driver::new();
    d.s = Session::new(
        Arc::new(cfg),
        PeerInfo {
            ip: "192.0.2.7".parse().unwrap(),
        },
    );
    let big = "x".repeat(900);
    let body: String = (0..100).map(|_| format!("{big}\r\n")).collect();
    let r = d.feed(&format!(
        "EHLO c.test\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<x@kurier.test>\r\nDATA\r\n{body}.\r\n"
    ));
    let last = r.last().unwrap();
    assert_eq!(last.0, 451);
    assert!(last.1.contains("4.3.1"), "{}", last.1);
    assert_eq!(budget.total_in_use(), 0);
    assert_eq!(budget.memory_in_use(), 0);
    let r = d.codes("MAIL FROM:<a@b.test>\r\nRCPT TO:<x@kurier.test>\r\nDATA\r\nsmall\r\n.\r\n");
    assert_eq!(
        r,
        [250, 250, 354, 250],
        "a message that fits still goes through"
    );
    assert_eq!(budget.memory_in_use(), 0, "given back after storing");
}

#[test]
fn arbitrary_bytes_never_panic() {
    let mut seed = 12345u64;
    for _ in 0..200 {
        let mut s = session();
        let mut buf = Vec::new();
        for _ in 0..200 {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let b = (seed >> 33) as u8;
            buf.push(match b % 7 {
                0 => b'\r',
                1 => b'\n',
                2 => b'.',
                _ => b,
            });
        }
        buf.splice(0..0, b"EHLO x\r\nMAIL FROM:<a@b.c>\r\n".iter().copied());
        let mut rounds = 0;
        loop {
            let (used, ev) = s.input(&buf);
            buf.drain(..used);
            match ev {
                Event::NeedInput | Event::Close(_) | Event::StartTls(_) => break,
                Event::CheckRecipient(_) => {
                    s.recipient_verdict(Verdict::Accept(vec![1]));
                }
                Event::Deliver(m) => {
                    s.delivered(Delivery::Stored, &m.id);
                }
                Event::Authenticate { .. } => {
                    s.auth_result(AuthOutcome::Invalid);
                }
                Event::Reply(_) => {}
            }
            rounds += 1;
            assert!(rounds < 10_000, "no progress");
        }
    }
}

fn submission_driver() -> Driver {
    let mut cfg = (*config()).clone();
    cfg.submission = true;
    cfg.received_client_ip = false;
    cfg.max_errors = 50;
    let mut d = Driver::new();
    d.s = Session::new(
        Arc::new(cfg),
        PeerInfo {
            ip: "192.0.2.7".parse().unwrap(),
        },
    );
    d
}

fn tls_info() -> TlsInfo {
    TlsInfo {
        version: "TLSv1.3".into(),
        cipher: "TLS_AES_256_GCM_SHA384".into(),
        group: None,
    }
}

#[test]
fn mua2_submission_offers_auth_only_inside_tls_and_requires_it_before_mail() {
    let mut d = submission_driver();
    let r = d.feed("EHLO client.test\r\n");
    assert!(
        r[0].1.contains("STARTTLS") && !r[0].1.contains("AUTH"),
        "{}",
        r[0].1
    );
    assert_eq!(
        d.codes("AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n"),
        [530],
        "no AUTH in the clear"
    );
    assert_eq!(d.codes("MAIL FROM:<alice@example.org>\r\n"), [530]);
    assert!(
        d.credentials.is_empty(),
        "cleartext credentials never reach the store"
    );
    d.s.tls_started(tls_info());
    let r = d.feed("EHLO client.test\r\n");
    assert!(
        r[0].1.contains("AUTH PLAIN LOGIN") && !r[0].1.contains("STARTTLS"),
        "{}",
        r[0].1
    );
    assert_eq!(
        d.codes("MAIL FROM:<alice@example.org>\r\n"),
        [530],
        "MAIL before AUTH"
    );
}

#[test]
fn auth_plain_and_login_and_the_same_reply_for_every_failure() {
    let mut d = submission_driver();
    d.s.tls_started(tls_info());
    d.feed("EHLO client.test\r\n");
    let r = d.feed("AUTH PLAIN AGFsaWNlAHdyb25n\r\n");
    assert_eq!(r[0].0, 535);
    assert_eq!(d.credentials.pop(), Some(("alice".into(), "wrong".into())));
    let r2 = d.feed("AUTH LOGIN\r\nYm9i\r\nc2VjcmV0\r\n");
    assert_eq!(r2.iter().map(|x| x.0).collect::<Vec<_>>(), [334, 334, 535]);
    assert!(r2[0].1.contains("VXNlcm5hbWU6") && r2[1].1.contains("UGFzc3dvcmQ6"));
    assert_eq!(
        r2[2].1, r[0].1,
        "wrong user and wrong password look the same"
    );
    assert_eq!(d.credentials.pop(), Some(("bob".into(), "secret".into())));
    assert_eq!(
        d.codes("AUTH PLAIN\r\n*\r\n"),
        [334, 501],
        "a client may abort"
    );
    assert_eq!(d.codes("AUTH PLAIN\r\n!!!\r\n"), [334, 501]);
    assert_eq!(d.codes("AUTH CRAM-MD5\r\n"), [504]);
    d.auth = AuthOutcome::Throttled;
    assert_eq!(d.codes("AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n"), [454]);
    d.auth = AuthOutcome::Ok {
        account: "alice@example.org".into(),
        senders: vec!["alice@example.org".into(), "team@example.org".into()],
    };
    assert_eq!(d.codes("AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n"), [235]);
    assert_eq!(
        d.codes("AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n"),
        [503],
        "once is enough"
    );
}

#[test]
fn submission_sender_policy_remote_recipients_and_header_completion() {
    let mut d = submission_driver();
    d.s.tls_started(tls_info());
    d.auth = AuthOutcome::Ok {
        account: "alice@example.org".into(),
        senders: vec!["alice@example.org".into(), "team@example.org".into()],
    };
    d.feed("EHLO client.test\r\nAUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n");
    let r = d.feed("MAIL FROM:<mallory@example.org>\r\n");
    assert!(
        r[0].1.starts_with("553 5.7.1") && r[0].1.contains("not owned by user alice@example.org"),
        "{}",
        r[0].1
    );
    assert_eq!(
        d.codes("MAIL FROM:<Team@example.org>\r\n"),
        [250],
        "an alias of the user"
    );
    d.verdict = Verdict::NotHosted;
    assert_eq!(
        d.codes("RCPT TO:<bob@remote.test>\r\n"),
        [250],
        "authenticated users may relay"
    );
    d.verdict = Verdict::Accept(vec![7]);
    assert_eq!(d.codes("RCPT TO:<carol@example.org>\r\n"), [250]);
    let r = d.feed("DATA\r\nFrom: Mallory <mallory@example.org>\r\n\r\nhi\r\n.\r\n");
    assert_eq!(r[1].0, 553, "From header must be the user's too: {r:?}");
    assert!(d.delivered.is_empty());
    let codes = d.codes("MAIL FROM:<alice@example.org>\r\nRCPT TO:<carol@example.org>\r\nDATA\r\nFrom: Alice <alice@example.org>\r\nSubject: x\r\n\r\nhi\r\n.\r\n");
    assert_eq!(codes, [250, 250, 354, 250]);
    let m = &d.delivered[0];
    assert_eq!(m.connection.account.as_deref(), Some("alice@example.org"));
    let body = String::from_utf8_lossy(&m.body);
    assert!(
        body.contains("with ESMTPSA id") && !body.contains("192.0.2.7"),
        "no client IP: {body}"
    );
    assert!(
        body.contains("\r\nMessage-ID: <") && body.contains("\r\nDate: "),
        "{body}"
    );
    // Remote recipients travel with the message.
    d.verdict = Verdict::NotHosted;
    d.codes("MAIL FROM:<alice@example.org>\r\nRCPT TO:<bob@remote.test>\r\nDATA\r\nFrom: alice@example.org\r\n\r\nx\r\n.\r\n");
    assert_eq!(d.delivered[1].remote[0].0, "bob@remote.test");
    assert!(d.delivered[1].accounts.is_empty());
    d.delivery = Delivery::RateLimited;
    let r = d.codes("MAIL FROM:<alice@example.org>\r\nRCPT TO:<bob@remote.test>\r\nDATA\r\nFrom: alice@example.org\r\n\r\nx\r\n.\r\n");
    assert_eq!(r.last(), Some(&450));
}

/// The connection facts travel with every message and are what the session knows at that
/// moment: after STARTTLS the new EHLO and the TLS parameters, never the plain-text HELO.
#[test]
fn messages_carry_the_connection_facts_of_their_session() {
    let mut d = Driver::new();
    let before = d.s.connection();
    assert_eq!(before.helo, None);
    d.codes("HELO old.client.test\r\n");
    assert_eq!(d.s.connection().helo.as_deref(), Some("old.client.test"));
    assert!(!d.s.connection().esmtp);
    d.codes("EHLO plain.client.test\r\nSTARTTLS\r\n");
    let tls = TlsInfo {
        version: "TLSv1.3".into(),
        cipher: "TLS_AES_256_GCM_SHA384".into(),
        group: Some("X25519MLKEM768".into()),
    };
    d.s.tls_started(tls.clone());
    assert_eq!(
        d.s.connection().helo,
        None,
        "RFC 3207 §4.2: HELO is asked again"
    );
    let codes = d.codes("EHLO [192.0.2.7]\r\nMAIL FROM:<a@far.test>\r\nRCPT TO:<b@kurier.test>\r\nDATA\r\nSubject: x\r\n\r\nhi\r\n.\r\n");
    assert_eq!(codes, [250, 250, 250, 354, 250]);
    let facts = &d.delivered[0].connection;
    assert_eq!(facts.ip, "192.0.2.7".parse::<std::net::IpAddr>().unwrap());
    assert_eq!(facts.helo.as_deref(), Some("[192.0.2.7]"));
    assert!(facts.esmtp);
    assert_eq!(facts.tls.as_ref(), Some(&tls));
    assert_eq!(facts.account, None);
}
