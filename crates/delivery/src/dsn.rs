//! Delivery status notifications (RFC 3464 multipart/report, RFC 3461 NOTIFY and ORCPT, RFC 3463
//! status codes, RFC 3834 Auto-Submitted) written for people: the first part says in plain
//! language what happened and why — in particular when Kurier refused to send a message
//! unprotected (TR-03108 MUA-9) — the second is the machine-readable status, the third the
//! original message (headers only for warnings).

use kurier_smtp::received::{rfc5322_date, unique_stamp};
use kurier_store::{DsnReturn, MessageDsn, RecipientDsn};

/// What a notice reports for a recipient (RFC 3464 §2.3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    Failed,
    Delayed,
    /// Handed to a server that does not do DSN (RFC 3461 §6.2.1: NOTIFY=SUCCESS).
    Relayed,
}

/// One recipient's line in a notice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipientNotice {
    pub address: String,
    /// RFC 3461 ORCPT value (`rfc822;a@b`), if the sender gave one.
    pub original: Option<String>,
    /// RFC 3463 code, e.g. `5.7.5`.
    pub status: String,
    /// Plain-language reason.
    pub reason: String,
    /// The receiving server, if one was reached.
    pub remote_mta: Option<String>,
    /// Its reply, if it answered (`550 5.1.1 …`).
    pub diagnostic: Option<String>,
}

/// Everything a notice is made of.
#[derive(Debug, Clone)]
pub struct Notice<'a> {
    pub action: Action,
    /// Our host name (Reporting-MTA, MAILER-DAEMON@).
    pub reporting_mta: &'a str,
    /// The original sender, who receives this.
    pub to: &'a str,
    pub arrival: i64,
    pub now: i64,
    /// Until when delivery is retried (for `Delayed`).
    pub retry_until: Option<i64>,
    pub recipients: &'a [RecipientNotice],
    pub original: &'a [u8],
    /// The sender's RET and ENVID (RFC 3461 §4.3, §4.4).
    pub request: &'a MessageDsn,
}

/// Which recipients want a notice of this kind (RFC 3461 §4.1): no NOTIFY means failures (and,
/// as most MTAs do, delays); NEVER means none.
pub fn wants(request: &RecipientDsn, action: Action) -> bool {
    let Some(n) = request.notify else {
        return action != Action::Relayed;
    };
    match action {
        Action::Failed => n.failure,
        Action::Delayed => n.delay,
        Action::Relayed => n.success,
    }
}

/// The whole notice as an RFC 5322 message.
pub fn build(n: &Notice<'_>) -> Vec<u8> {
    let boundary = format!("kurier-dsn-{:016x}", unique_stamp());
    let global = n
        .recipients
        .iter()
        .any(|r| !r.address.is_ascii() || r.original.as_deref().is_some_and(|o| !o.is_ascii()));
    let subject = match n.action {
        Action::Failed => "Undelivered mail returned to sender",
        Action::Delayed => "Delayed mail (still being retried)",
        Action::Relayed => "Delivery status: relayed",
    };
    let mut m = String::new();
    m.push_str(&format!(
        "From: Mail Delivery System <MAILER-DAEMON@{}>\r\n",
        n.reporting_mta
    ));
    m.push_str(&format!("To: <{}>\r\n", n.to));
    m.push_str(&format!("Subject: {subject}\r\n"));
    m.push_str(&format!("Date: {}\r\n", rfc5322_date(n.now)));
    m.push_str(&format!(
        "Message-ID: <dsn.{:016x}@{}>\r\n",
        unique_stamp(),
        n.reporting_mta
    ));
    report_start(
        &mut m,
        if global {
            "global-delivery-status"
        } else {
            "delivery-status"
        },
        &boundary,
        "delivery status notification",
    );
    m.push_str(&wrap(&human_text(n)));
    m.push_str("\r\n");

    // 2. For programs (RFC 3464 §2.2, §2.3): ASCII. An internationalised address needs
    // RFC 6533's message/global-delivery-status, where UTF-8 is allowed.
    let value = |s: &str| {
        if global { one_line(s) } else { ascii_line(s) }
    };
    m.push_str(&format!("--{boundary}\r\n"));
    m.push_str(if global {
        "Content-Type: message/global-delivery-status\r\n\r\n"
    } else {
        "Content-Type: message/delivery-status\r\n\r\n"
    });
    // RFC 3464 §2.2.1: the sender's envelope id comes back first.
    if let Some(envid) = &n.request.envid {
        m.push_str(&format!("Original-Envelope-Id: {}\r\n", value(envid)));
    }
    m.push_str(&format!("Reporting-MTA: dns; {}\r\n", n.reporting_mta));
    m.push_str(&format!("Arrival-Date: {}\r\n", rfc5322_date(n.arrival)));
    for r in n.recipients {
        m.push_str("\r\n");
        if let Some(o) = &r.original {
            m.push_str(&format!("Original-Recipient: {}\r\n", value(o)));
        }
        let kind = if r.address.is_ascii() {
            "rfc822"
        } else {
            "utf-8"
        };
        m.push_str(&format!(
            "Final-Recipient: {kind}; {}\r\n",
            value(&r.address)
        ));
        let action = match n.action {
            Action::Failed => "failed",
            Action::Delayed => "delayed",
            Action::Relayed => "relayed",
        };
        m.push_str(&format!("Action: {action}\r\nStatus: {}\r\n", r.status));
        if let Some(mta) = &r.remote_mta {
            m.push_str(&format!("Remote-MTA: dns; {}\r\n", value(mta)));
        }
        match &r.diagnostic {
            Some(d) => m.push_str(&format!("Diagnostic-Code: smtp; {}\r\n", value(d))),
            None => m.push_str(&format!(
                "Diagnostic-Code: x-kurier; {}\r\n",
                value(&r.reason)
            )),
        }
        m.push_str(&format!("Last-Attempt-Date: {}\r\n", rfc5322_date(n.now)));
        if let (Action::Delayed, Some(until)) = (n.action, n.retry_until) {
            m.push_str(&format!("Will-Retry-Until: {}\r\n", rfc5322_date(until)));
        }
    }
    m.push_str("\r\n");

    // 3. The original: whole for failures (so it can be re-sent), unless the sender asked for
    // headers only (RET=HDRS, RFC 3461 §4.3); headers for the other notices.
    m.push_str(&format!("--{boundary}\r\n"));
    let mut out = m.into_bytes();
    if n.action == Action::Failed && n.request.ret != Some(DsnReturn::Headers) {
        out.extend_from_slice(b"Content-Type: message/rfc822\r\n\r\n");
        out.extend_from_slice(n.original);
    } else {
        out.extend_from_slice(b"Content-Type: text/rfc822-headers\r\n\r\n");
        out.extend_from_slice(header_block(n.original));
    }
    if !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    out
}

/// The rest of a report's header (RFC 6522 multipart/report, RFC 3834 §5 Auto-Submitted)
/// and the start of its first part, the one for people.
pub(crate) fn report_start(m: &mut String, report_type: &str, boundary: &str, what: &str) {
    m.push_str("Auto-Submitted: auto-replied\r\n");
    m.push_str("MIME-Version: 1.0\r\n");
    m.push_str(&format!(
        "Content-Type: multipart/report; report-type={report_type};\r\n\tboundary=\"{boundary}\"\r\n\r\n"
    ));
    m.push_str(&format!("This is a {what} in MIME format.\r\n\r\n"));
    m.push_str(&format!("--{boundary}\r\n"));
    m.push_str(
        "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n",
    );
}

fn human_text(n: &Notice<'_>) -> String {
    let mut t = String::new();
    t.push_str(&format!(
        "This is the mail system at {}.\n\n",
        n.reporting_mta
    ));
    match n.action {
        Action::Failed => t.push_str(
            "Your message could not be delivered to the recipients below, and it will not be retried. The reason is given for each recipient. Your original message is attached.\n",
        ),
        Action::Delayed => {
            t.push_str("Your message has not been delivered yet to the recipients below. Nothing needs to be done: delivery is retried automatically");
            if let Some(until) = n.retry_until {
                t.push_str(&format!(" until {}", rfc5322_date(until)));
            }
            t.push_str(", and you will hear again only if it fails for good.\n");
        }
        Action::Relayed => t.push_str(
            "Your message was handed to the recipients' mail servers below. They do not confirm final delivery, so this is the last notice you will get about it.\n",
        ),
    }
    for r in n.recipients {
        t.push_str(&format!("\n<{}>:\n{}\n", r.address, one_line(&r.reason)));
        if let Some(d) = r.diagnostic.as_deref().map(one_line) {
            match &r.remote_mta {
                Some(mta) => t.push_str(&format!("The server {mta} said: {d}\n")),
                None => t.push_str(&format!("The server said: {d}\n")),
            }
        }
    }
    t
}

/// CR/LF inside a field value would start a new field.
pub(crate) fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c == '\r' || c == '\n' { ' ' } else { c })
        .collect()
}

/// `one_line`, and in ASCII (RFC 3464 §2.1.3): our typography spelled plainly, anything else
/// non-ASCII as `?`.
pub(crate) fn ascii_line(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in one_line(s).chars() {
        match c {
            ' '..='~' => out.push(c),
            '\u{2014}' => out.push_str("--"),
            '\u{2013}' | '\u{2010}' | '\u{2011}' => out.push('-'),
            '\u{2026}' => out.push_str("..."),
            '\u{2018}' | '\u{2019}' => out.push('\''),
            '\u{201c}' | '\u{201d}' => out.push('"'),
            '\u{2192}' => out.push_str("->"),
            '\u{00a0}' | '\t' => out.push(' '),
            _ => out.push('?'),
        }
    }
    out
}

/// Lines of the human part wrapped near 76 characters, with CRLF.
pub(crate) fn wrap(text: &str) -> String {
    let mut out = String::new();
    for para in text.split('\n') {
        let mut line = String::new();
        for word in para.split(' ') {
            if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > 76 {
                out.push_str(&line);
                out.push_str("\r\n");
                line.clear();
            }
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(word);
        }
        out.push_str(&line);
        out.push_str("\r\n");
    }
    out
}

pub(crate) fn header_block(message: &[u8]) -> &[u8] {
    let end = message
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| i + 2)
        .unwrap_or(message.len());
    &message[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(parameters: &str) -> RecipientDsn {
        RecipientDsn::from_rfc3461(parameters)
    }

    #[test]
    fn notify_parameters() {
        let none = RecipientDsn::default();
        assert!(wants(&none, Action::Failed));
        assert!(wants(&none, Action::Delayed));
        assert!(!wants(&none, Action::Relayed));
        assert!(!wants(&req("NOTIFY=NEVER"), Action::Failed));
        assert!(wants(
            &req("NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;a@b"),
            Action::Relayed
        ));
        assert!(!wants(&req("NOTIFY=SUCCESS,FAILURE"), Action::Delayed));
        assert!(!wants(&req("notify=delay"), Action::Failed));
        assert_eq!(
            req("NOTIFY=NEVER ORCPT=rfc822;a@b").orcpt.as_deref(),
            Some("rfc822;a@b")
        );
    }

    #[test]
    fn a_failure_notice_is_a_readable_multipart_report() {
        let recipients = [RecipientNotice {
            address: "bob@peer.test".into(),
            original: Some("rfc822;bob@peer.test".into()),
            status: "4.7.5".into(),
            reason: "The receiving server's certificate does not match the DANE record.".into(),
            remote_mta: Some("mx.peer.test".into()),
            diagnostic: None,
        }];
        let original = b"From: a@kurier.test\r\nSubject: hi\r\n\r\nbody\r\n";
        let failed = |request: &MessageDsn| {
            String::from_utf8(build(&Notice {
                action: Action::Failed,
                reporting_mta: "mx.kurier.test",
                to: "a@kurier.test",
                arrival: 1_700_000_000,
                now: 1_700_000_100,
                retry_until: None,
                recipients: &recipients,
                original,
                request,
            }))
            .unwrap()
        };
        let s = failed(&MessageDsn::default());
        assert!(s.contains("Content-Type: multipart/report; report-type=delivery-status"));
        assert!(
            s.contains("Final-Recipient: rfc822; bob@peer.test\r\nAction: failed\r\nStatus: 4.7.5")
        );
        assert!(s.contains("Original-Recipient: rfc822;bob@peer.test"));
        assert!(s.contains("does not match the DANE record"));
        assert!(s.contains("Content-Type: message/rfc822\r\n\r\nFrom: a@kurier.test"));
        assert!(s.contains("body\r\n--kurier-dsn-"));
        assert!(s.contains("Auto-Submitted: auto-replied"));
        assert!(s.lines().all(|l| l.len() < 200));
        assert!(!s.contains("Original-Envelope-Id"));

        // RFC 3461 §4.3, §4.4: RET=HDRS returns the header only, ENVID comes back.
        let hdrs = MessageDsn {
            ret: Some(DsnReturn::Headers),
            envid: Some("QQ314159".into()),
        };
        let s = failed(&hdrs);
        assert!(
            s.contains(
                "message/delivery-status\r\n\r\nOriginal-Envelope-Id: QQ314159\r\nReporting-MTA:"
            ),
            "{s}"
        );
        assert!(s.contains("Content-Type: text/rfc822-headers\r\n\r\nFrom: a@kurier.test"));
        assert!(!s.contains("body\r\n--kurier-dsn-"), "{s}");
    }

    #[test]
    fn a_warning_carries_headers_only_and_the_retry_limit() {
        let recipients = [RecipientNotice {
            address: "bob@peer.test".into(),
            original: None,
            status: "4.4.1".into(),
            reason: "No server answered.".into(),
            remote_mta: None,
            diagnostic: Some("421 4.3.2 busy\r\nX-Injected: yes".into()),
        }];
        let m = build(&Notice {
            action: Action::Delayed,
            reporting_mta: "mx.kurier.test",
            to: "a@kurier.test",
            arrival: 0,
            now: 100,
            retry_until: Some(5 * 86400),
            recipients: &recipients,
            original: b"Subject: hi\r\n\r\nsecret body\r\n",
            request: &MessageDsn::default(),
        });
        let s = String::from_utf8(m).unwrap();
        assert!(s.contains("Will-Retry-Until:"));
        assert!(s.contains("text/rfc822-headers"));
        assert!(!s.contains("secret body"));
        assert!(
            !s.contains("\r\nX-Injected"),
            "no header injection through a reply"
        );
    }

    fn status_part(m: &[u8]) -> String {
        let s = String::from_utf8(m.to_vec()).unwrap();
        let start = s.find("Content-Type: message/").unwrap();
        let end = s[start..].find("\r\n--kurier-dsn-").unwrap() + start;
        s[start..end].to_string()
    }

    /// RFC 3464 §2.1.3: the delivery-status part is ASCII (our reasons have dashes and
    /// ellipses); an SMTPUTF8 address makes it RFC 6533 message/global-delivery-status.
    #[test]
    fn the_status_part_is_ascii_or_global_for_utf8_addresses() {
        let mut recipients = vec![RecipientNotice {
            address: "bob@peer.test".into(),
            original: None,
            status: "4.7.5".into(),
            reason: "DANE failed \u{2014} the record\u{2019}s \u{201c}3 1 1\u{201d} \u{2192} no match\u{2026} \u{00e9}".into(),
            remote_mta: None,
            diagnostic: None,
        }];
        let notice = |recipients: &[RecipientNotice]| {
            build(&Notice {
                action: Action::Failed,
                reporting_mta: "mx.kurier.test",
                to: "a@kurier.test",
                arrival: 0,
                now: 1,
                retry_until: None,
                recipients,
                original: b"Subject: hi\r\n\r\nx\r\n",
                request: &MessageDsn::default(),
            })
        };
        let part = status_part(&notice(&recipients));
        assert!(part.is_ascii(), "{part}");
        assert!(part.starts_with("Content-Type: message/delivery-status"));
        assert!(
            part.contains("x-kurier; DANE failed -- the record's \"3 1 1\" -> no match... ?"),
            "{part}"
        );
        recipients[0].address = "j\u{00f6}rg@b\u{00fc}cher.test".into();
        let part = status_part(&notice(&recipients));
        assert!(part.starts_with("Content-Type: message/global-delivery-status"));
        let whole = String::from_utf8(notice(&recipients)).unwrap();
        assert!(whole.contains("report-type=global-delivery-status;"));
        assert!(
            part.contains("Final-Recipient: utf-8; j\u{00f6}rg@b\u{00fc}cher.test"),
            "{part}"
        );
        assert!(part.contains("no match\u{2026} \u{00e9}"));
    }
}
