//! Sieve at delivery (issue 25): the recipient's active script files mail into a mailbox it
//! creates (with a match variable in the name), sets IMAP flags, rejects at SMTP, redirects
//! through the outbound queue with our own envelope sender, and answers with a vacation reply
//! once per sender and period — never to a mailing list; sub-addresses, include, body,
//! relational, date, index, copy and mailboxexists each at work; `[sieve]` limits. A script
//! that fails keeps the mail.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod support;

use support::Server;

/// Sends each message (From, Subject, extra header lines) to the MX; prints the reply code
/// and text after DATA as JSON lines.
const SENDER: &str = r#"
import json, smtplib, sys
spec = json.load(open(sys.argv[1]))
for n, m in enumerate(spec["messages"]):
    body = ("From: %s\r\nTo: rcpt@kurier.test\r\nSubject: %s\r\nMessage-ID: <m%d@sender.test>\r\n%s\r\nHello.\r\n"
            % (m["from"], m["subject"], n, m.get("extra", ""))).encode()
    code, text = 250, ""
    try:
        with smtplib.SMTP(spec["server"], 2525, timeout=30) as s:
            s.ehlo("client.test")
            s.sendmail(m["from"], ["rcpt@kurier.test"], body)
    except smtplib.SMTPResponseException as e:
        code, text = e.smtp_code, e.smtp_error.decode()
    print(json.dumps({"code": code, "text": text}), flush=True)
"#;

const SCRIPT: &str = r#"require ["fileinto", "mailbox", "imap4flags", "vacation", "variables", "reject", "editheader"];
if header :matches "subject" "[*] *" {
  if mailboxexists "Lists/${1}" { addflag "$seen-list"; }
  fileinto :create "Lists/${1}";
  stop;
}
if header :contains "subject" "flag me" { addflag "\\Flagged"; addheader "X-Sorted" "by Sieve"; }
if header :contains "subject" "go away" { reject "Not wanted here."; }
if header :contains "subject" "forward" { redirect "elsewhere@remote.test"; }
if address :is "from" ["boss@sender.test", "list@sender.test"] {
  vacation :days 1 :subject "Away" "I am away until Monday.";
}
"#;

#[test]
fn sieve_files_flags_rejects_redirects_and_answers_once() {
    let ip = "127.0.66.1";
    let dir = tempfile::tempdir().unwrap();
    let config = support::configured(dir.path(), ip, "", "");
    support::admin(
        &config,
        &["sieve", "put", "rcpt@kurier.test", "main", "--activate"],
        SCRIPT,
    );
    let _server = Server::configured(dir.path(), &config);
    let m = |from: &str, subject: &str, extra: &str| serde_json::json!({"from": from, "subject": subject, "extra": extra});
    let spec = serde_json::json!({"server": ip, "messages": [
        m("a@sender.test", "[acme] release notes", ""),
        m("a@sender.test", "please flag me", ""),
        m("a@sender.test", "go away", ""),
        m("a@sender.test", "forward this", ""),
        m("boss@sender.test", "status?", ""),
        m("boss@sender.test", "status again?", ""),
        m("list@sender.test", "digest", "List-Id: <l.sender.test>\r\n"),
        m("a@sender.test", "[acme] more notes", ""),
    ]});
    let out = support::python(SENDER, &dir.path().join("send.json"), &spec);
    let replies: Vec<serde_json::Value> = String::from_utf8_lossy(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let codes: Vec<u64> = replies
        .iter()
        .map(|r| r["code"].as_u64().unwrap())
        .collect();
    assert_eq!(
        codes,
        [250, 250, 550, 250, 250, 250, 250, 250],
        "{replies:?}"
    );
    assert!(
        replies[2]["text"]
            .as_str()
            .unwrap()
            .contains("Not wanted here."),
        "{replies:?}"
    );
    // fileinto :create with the match variable.
    let lists = support::folder(dir.path(), "rcpt@kurier.test", "Lists/acme");
    assert_eq!(lists.len(), 2, "{lists:?}");
    assert!(lists[0].contains("[acme] release notes"));
    // The rest are in INBOX (the redirect does not keep).
    let inbox = support::inbox(dir.path(), "rcpt@kurier.test");
    let subjects: Vec<&str> = inbox
        .iter()
        .filter_map(|m| m.lines().find(|l| l.starts_with("Subject: ")))
        .collect();
    assert_eq!(
        subjects,
        [
            "Subject: please flag me",
            "Subject: status?",
            "Subject: status again?",
            "Subject: digest"
        ],
        "{inbox:?}"
    );
    // editheader: the flagged copy carries the added field first.
    assert!(
        inbox[0].starts_with("X-Sorted: by Sieve\r\n"),
        "{}",
        inbox[0]
    );
    assert!(!inbox[1].contains("X-Sorted"), "{}", inbox[1]);
    let (rt, store) = support::store_at(dir.path());
    rt.block_on(async {
        let kurier_store::Recipient::Local(a) = store.resolve("rcpt@kurier.test").await.unwrap()
        else {
            panic!()
        };
        let inbox = store.mailbox(a[0].id, "INBOX").await.unwrap().unwrap();
        let metas = store.messages(inbox.id).await.unwrap();
        assert_eq!(metas[0].flags, ["\\Flagged"]);
        assert!(metas[1].flags.is_empty());
        // mailboxexists (RFC 5490): the list's mailbox existed only for the second message.
        let list = store.mailbox(a[0].id, "Lists/acme").await.unwrap().unwrap();
        let metas = store.messages(list.id).await.unwrap();
        assert!(metas[0].flags.is_empty(), "{:?}", metas[0].flags);
        assert_eq!(metas[1].flags, ["$seen-list"]);
        // The queue: the redirect (our envelope sender) and one vacation reply (null sender)
        // to the boss — not a second one, and none to the list.
        let q = store.queue().await.unwrap();
        assert_eq!(q.len(), 2, "{q:?}");
        let redirect = q.iter().find(|e| !e.sender.is_empty()).unwrap();
        assert_eq!(redirect.sender, "rcpt@kurier.test");
        assert_eq!(redirect.recipients[0].address, "elsewhere@remote.test");
        let body =
            String::from_utf8(store.queue_body(redirect.id).await.unwrap().unwrap()).unwrap();
        assert!(
            body.starts_with("Delivered-To: rcpt@kurier.test\r\n"),
            "{body}"
        );
        assert!(body.contains("Subject: forward this"), "{body}");
        let reply = q.iter().find(|e| e.sender.is_empty()).unwrap();
        assert_eq!(reply.recipients[0].address, "boss@sender.test");
        let body = String::from_utf8(store.queue_body(reply.id).await.unwrap().unwrap()).unwrap();
        for want in [
            "Subject: Away\r\n",
            "Auto-Submitted: auto-replied",
            "In-Reply-To: <m4@sender.test>",
            "From: rcpt@kurier.test",
            "I am away until Monday.",
        ] {
            assert!(body.contains(want), "{want} in {body}");
        }
    });
}

#[test]
fn a_broken_active_script_keeps_the_mail() {
    let ip = "127.0.66.2";
    let dir = tempfile::tempdir().unwrap();
    let config = support::configured(dir.path(), ip, "", "");
    // Stored behind the checker's back (an older version's script, say).
    let (rt, store) = support::store_at(dir.path());
    rt.block_on(async {
        let kurier_store::Recipient::Local(a) = store.resolve("rcpt@kurier.test").await.unwrap()
        else {
            panic!()
        };
        store
            .put_sieve_script(a[0].id, "bad", "fileinto \"x\"; bogus;")
            .await
            .unwrap();
        store
            .activate_sieve_script(a[0].id, Some("bad"))
            .await
            .unwrap();
    });
    drop(store);
    let server = Server::configured(dir.path(), &config);
    let spec = serde_json::json!({"server": ip, "messages": [
        {"from": "a@sender.test", "subject": "hello"}
    ]});
    let out = support::python(SENDER, &dir.path().join("send.json"), &spec);
    assert!(String::from_utf8_lossy(&out).contains("\"code\": 250"));
    assert_eq!(support::inbox(dir.path(), "rcpt@kurier.test").len(), 1);
    server.wait_for_log("the active Sieve script does not compile; kept");
}

/// Sends one message to `to` and prints the reply code after RCPT/DATA.
const TO: &str = r#"
import json, smtplib, sys
spec = json.load(open(sys.argv[1]))
code = 250
try:
    with smtplib.SMTP(spec["server"], 2525, timeout=30) as s:
        s.sendmail("a@sender.test", [spec["to"]], b"Subject: tagged\r\n\r\nHello.\r\n")
except smtplib.SMTPRecipientsRefused as e:
    code = list(e.recipients.values())[0][0]
except smtplib.SMTPResponseException as e:
    code = e.smtp_code
print(code)
"#;

#[test]
fn sub_addresses_reach_the_user_and_sieve_sees_the_tag() {
    let ip = "127.0.66.3";
    let dir = tempfile::tempdir().unwrap();
    let config = support::configured(dir.path(), ip, "", "");
    // A catch-all takes what nobody else has, but user+tag is rcpt's first (Postfix's order:
    // user+tag, user, @domain).
    support::admin(&config, &["user", "add", "catchall@kurier.test"], "pw\n");
    support::admin(
        &config,
        &["alias", "add", "@kurier.test", "catchall@kurier.test"],
        "",
    );
    support::admin(
        &config,
        &["sieve", "put", "rcpt@kurier.test", "tags", "--activate"],
        "require [\"fileinto\", \"mailbox\", \"envelope\", \"subaddress\"];\n\
         if envelope :detail \"to\" \"news\" { fileinto :create \"News\"; }\n",
    );
    let server = Server::configured(dir.path(), &config);
    let send = |to: &str| {
        let spec = serde_json::json!({"server": ip, "to": to});
        String::from_utf8_lossy(&support::python(TO, &dir.path().join("to.json"), &spec))
            .trim()
            .to_string()
    };
    assert_eq!(send("rcpt+news@kurier.test"), "250");
    assert_eq!(send("rcpt+other@kurier.test"), "250");
    assert_eq!(send("nobody+news@kurier.test"), "250");
    assert_eq!(
        support::folder(dir.path(), "rcpt@kurier.test", "News").len(),
        1
    );
    assert_eq!(support::inbox(dir.path(), "rcpt@kurier.test").len(), 1);
    // Only the tagged mail for nobody reached the catch-all.
    assert_eq!(support::inbox(dir.path(), "catchall@kurier.test").len(), 1);
    drop(server);

    // recipient_delimiter = "": the tag is part of the address.
    let dir = tempfile::tempdir().unwrap();
    let config = support::configured(dir.path(), "127.0.66.4", "recipient_delimiter = \"\"\n", "");
    let _server = Server::configured(dir.path(), &config);
    let spec = serde_json::json!({"server": "127.0.66.4", "to": "rcpt+news@kurier.test"});
    let out = support::python(TO, &dir.path().join("to.json"), &spec);
    assert_eq!(String::from_utf8_lossy(&out).trim(), "550");
}

/// A message that already passed this account (`Delivered-To`, as a redirect loop between two
/// accounts brings it back) is kept without running the script again.
#[test]
fn a_redirect_loop_ends_in_the_inbox() {
    let ip = "127.0.66.5";
    let dir = tempfile::tempdir().unwrap();
    let config = support::configured(dir.path(), ip, "", "");
    support::admin(
        &config,
        &["sieve", "put", "rcpt@kurier.test", "bounce", "--activate"],
        "redirect \"other@kurier.test\";\n",
    );
    let server = Server::configured(dir.path(), &config);
    let spec = serde_json::json!({"server": ip, "messages": [
        {"from": "a@sender.test", "subject": "looping", "extra": "Delivered-To: rcpt@kurier.test\r\n"},
        {"from": "a@sender.test", "subject": "first pass"},
    ]});
    let out = support::python(SENDER, &dir.path().join("send.json"), &spec);
    assert_eq!(
        String::from_utf8_lossy(&out)
            .matches("\"code\": 250")
            .count(),
        2
    );
    let inbox = support::inbox(dir.path(), "rcpt@kurier.test");
    assert_eq!(inbox.len(), 1, "{inbox:?}");
    assert!(inbox[0].contains("Subject: looping"));
    server.wait_for_log("a redirect loop");
    // The first pass was redirected (queued), the loop was not.
    let (rt, store) = support::store_at(dir.path());
    let q = rt.block_on(store.queue()).unwrap();
    assert_eq!(q.len(), 1, "{q:?}");
    assert_eq!(q[0].recipients[0].address, "other@kurier.test");
}

/// `[sieve]` bounds what a script does: past `vacation_replies_per_day` no reply goes out (the
/// mail is delivered), past `max_redirects` the run keeps the mail and redirects nothing.
#[test]
fn sieve_limits_cap_vacation_replies_and_redirects() {
    let ip = "127.0.66.6";
    let dir = tempfile::tempdir().unwrap();
    let config = support::configured(
        dir.path(),
        ip,
        "",
        "[sieve]\nvacation_replies_per_day = 2\nmax_redirects = 1\n",
    );
    support::admin(
        &config,
        &["sieve", "put", "rcpt@kurier.test", "away", "--activate"],
        "require \"vacation\";\n\
         if header :contains \"subject\" \"twice\" { redirect \"a@remote.test\"; redirect \"b@remote.test\"; }\n\
         vacation :days 1 \"Away.\";\n",
    );
    let server = Server::configured(dir.path(), &config);
    let m = |from: &str, subject: &str| serde_json::json!({"from": from, "subject": subject});
    let spec = serde_json::json!({"server": ip, "messages": [
        m("one@sender.test", "hello"),
        m("two@sender.test", "hello"),
        m("three@sender.test", "hello"),
        m("four@sender.test", "send this twice"),
    ]});
    let out = support::python(SENDER, &dir.path().join("send.json"), &spec);
    assert_eq!(
        String::from_utf8_lossy(&out)
            .matches("\"code\": 250")
            .count(),
        4
    );
    assert_eq!(support::inbox(dir.path(), "rcpt@kurier.test").len(), 4);
    server.wait_for_log("the account's daily number is reached");
    server.wait_for_log("redirects");
    let (rt, store) = support::store_at(dir.path());
    rt.block_on(async {
        let q = store.queue().await.unwrap();
        let to: Vec<&str> = q.iter().map(|e| e.recipients[0].address.as_str()).collect();
        // Two replies, none to the third sender; the run with two redirects did nothing.
        assert_eq!(to, ["one@sender.test", "two@sender.test"], "{q:?}");
    });
}

/// Sends each message (subject, extra header lines, body) to rcpt@kurier.test; prints codes.
const WITH_BODY: &str = r#"
import json, smtplib, sys
spec = json.load(open(sys.argv[1]))
for n, m in enumerate(spec["messages"]):
    body = ("From: a@sender.test\r\nTo: rcpt@kurier.test\r\nSubject: %s\r\nMessage-ID: <x%d@sender.test>\r\n%s\r\n%s\r\n"
            % (m["subject"], n, m.get("extra", ""), m.get("body", "Hello."))).encode()
    with smtplib.SMTP(spec["server"], 2525, timeout=30) as s:
        s.sendmail("a@sender.test", ["rcpt@kurier.test"], body)
    print(250, flush=True)
"#;

/// The extensions not shown above, at delivery: include (RFC 6609), body (RFC 5173),
/// relational with a numeric comparator (RFC 5231), date with :zone and index (RFC 5260),
/// and redirect :copy (RFC 3894), which keeps the message as well.
#[test]
fn include_body_relational_date_index_and_copy_at_delivery() {
    let ip = "127.0.66.7";
    let dir = tempfile::tempdir().unwrap();
    let config = support::configured(dir.path(), ip, "", "");
    support::admin(
        &config,
        &["sieve", "put", "rcpt@kurier.test", "common"],
        "require \"imap4flags\";\nif header :contains \"subject\" \"common\" { addflag \"$common\"; }\n",
    );
    support::admin(
        &config,
        &["sieve", "put", "rcpt@kurier.test", "main", "--activate"],
        "require [\"include\", \"body\", \"relational\", \"comparator-i;ascii-numeric\", \"date\",\n\
                  \"index\", \"copy\", \"fileinto\", \"mailbox\", \"imap4flags\"];\n\
         include :personal \"common\";\n\
         if body :text :contains \"invoice\" { fileinto :create \"Invoices\"; stop; }\n\
         if header :count \"ge\" :comparator \"i;ascii-numeric\" \"received\" \"3\" { addflag \"$many-hops\"; }\n\
         if date :zone \"+0000\" :is \"date\" \"hour\" \"23\" { fileinto :create \"Late\"; stop; }\n\
         if header :index 2 :is \"x-tag\" \"second\" { fileinto :create \"Indexed\"; stop; }\n\
         if header :contains \"subject\" \"copy me\" { redirect :copy \"friend@remote.test\"; }\n",
    );
    let _server = Server::configured(dir.path(), &config);
    let spec = serde_json::json!({"server": ip, "messages": [
        {"subject": "papers", "body": "Your invoice is attached."},
        {"subject": "hops", "extra": "Received: from a\r\nReceived: from b\r\n"},
        {"subject": "late", "extra": "Date: Fri, 04 Dec 2026 15:30:00 -0800\r\n"},
        {"subject": "early", "extra": "Date: Fri, 04 Dec 2026 07:30:00 -0800\r\n"},
        {"subject": "tags", "extra": "X-Tag: first\r\nX-Tag: second\r\n"},
        {"subject": "copy me", "extra": ""},
        {"subject": "common thing", "extra": ""},
    ]});
    let out = support::python(WITH_BODY, &dir.path().join("send.json"), &spec);
    assert_eq!(String::from_utf8_lossy(&out).lines().count(), 7);
    let subjects = |folder: &str| -> Vec<String> {
        support::folder(dir.path(), "rcpt@kurier.test", folder)
            .iter()
            .filter_map(|m| {
                m.lines()
                    .find(|l| l.starts_with("Subject: "))
                    .map(str::to_string)
            })
            .collect()
    };
    assert_eq!(subjects("Invoices"), ["Subject: papers"]);
    assert_eq!(subjects("Late"), ["Subject: late"]);
    assert_eq!(subjects("Indexed"), ["Subject: tags"]);
    assert_eq!(
        subjects("INBOX"),
        [
            "Subject: hops",
            "Subject: early",
            "Subject: copy me",
            "Subject: common thing"
        ]
    );
    let (rt, store) = support::store_at(dir.path());
    rt.block_on(async {
        let kurier_store::Recipient::Local(a) = store.resolve("rcpt@kurier.test").await.unwrap()
        else {
            panic!()
        };
        let inbox = store.mailbox(a[0].id, "INBOX").await.unwrap().unwrap();
        let flags: Vec<Vec<String>> = store
            .messages(inbox.id)
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.flags)
            .collect();
        assert_eq!(
            flags,
            [
                vec!["$many-hops".to_string()],
                vec![],
                vec![],
                vec!["$common".to_string()]
            ]
        );
        // :copy redirected and kept.
        let q = store.queue().await.unwrap();
        assert_eq!(q.len(), 1, "{q:?}");
        assert_eq!(q[0].recipients[0].address, "friend@remote.test");
    });
}
