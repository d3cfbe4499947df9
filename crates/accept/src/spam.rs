//! The spam stage: rspamd's verdict on a message (kurier-spam) turned into what delivery does.
//! Mail from other servers: `reject` → 554 5.7.1, `soft reject` → 451, `add header` and
//! `rewrite subject` (and rspamd's `discard`/`quarantine`, which Kurier never drops) → the
//! recipient's Junk folder with `X-Spam: Yes`, anything else → INBOX; every scanned message
//! carries `X-Spam-Action`, `X-Spam-Score` and `X-Spam-Symbols`, and fields of those names
//! that came with the message are removed first (a sender must not be able to pre-label its
//! mail, nor a user's filter trust a forged label); `greylist` → greylisting, when it is on
//! for what rspamd finds suspicious, else INBOX. Mail our users submit (when scanned):
//! `reject` and `soft reject` apply, nothing is added to what goes out. When rspamd gives no
//! answer, the operator's `on_failure` decides: accept unscanned, or 451.

use std::sync::Arc;

use kurier_smtp::headers::{fields, without_field};
use kurier_spam::{Action, Reply, Rspamd};

/// Fields Kurier writes; removed from every scanned message before they are written.
pub const OWN_FIELDS: [&str; 4] = ["X-Spam", "X-Spam-Action", "X-Spam-Score", "X-Spam-Symbols"];
/// Symbols named in `X-Spam-Symbols` at most.
const MAX_NAMED_SYMBOLS: usize = 30;

/// What to do when rspamd gives no usable answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnFailure {
    /// Deliver unscanned (logged, counted): mail keeps flowing while rspamd is down.
    Accept,
    /// 451: the sender's server tries again later.
    TempFail,
}

/// What the spam stage did, for monitoring.
pub trait SpamEvents: Send + Sync {
    /// rspamd answered with `action`.
    fn scanned(&self, action: &Action);
    /// rspamd gave no usable answer.
    fn failed(&self);
}

/// The spam stage's settings and its rspamd.
pub struct SpamFilter {
    pub rspamd: Rspamd,
    pub on_failure: OnFailure,
    /// Also scan what our users submit (outbound spam from a stolen account).
    pub scan_submission: bool,
    /// Larger messages are delivered unscanned (rspamd's own limit is 50 MB).
    pub max_bytes: usize,
    /// Our host name, for rspamd's `MTA-Name`.
    pub hostname: String,
    pub events: Arc<dyn SpamEvents>,
}

/// What the stage decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpamVerdict {
    Deliver(Changes),
    /// 554 5.7.1 with this text.
    Reject(String),
    /// 451 with this text.
    Defer(String),
}

/// What delivery changes in a message rspamd let through.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// Whole fields (ending in CRLF) to put in front.
    pub fields: Vec<String>,
    /// File into the recipient's Junk folder.
    pub junk: bool,
    /// Field names whose every occurrence is removed.
    pub remove: Vec<String>,
    /// The Subject to write instead of the message's.
    pub subject: Option<String>,
    /// rspamd's action is `greylist`: greylisting (`greylisting.scope = "rspamd"`) applies.
    pub greylist: bool,
}

/// The verdict for rspamd's `reply`; `inbound` for mail from other servers.
pub fn verdict(reply: &Reply, inbound: bool) -> SpamVerdict {
    let said = |default: &str| {
        let text = reply.smtp_message.as_deref().unwrap_or(default);
        // An SMTP reply line is printable ASCII (RFC 5321 §4.2).
        let ascii: String = text
            .chars()
            .filter(|c| c.is_ascii_graphic() || *c == ' ')
            .take(200)
            .collect();
        if ascii.trim().is_empty() {
            default.to_string()
        } else {
            ascii
        }
    };
    match reply.action {
        Action::Reject => return SpamVerdict::Reject(said("Spam message rejected")),
        Action::SoftReject => return SpamVerdict::Defer(said("Try again later")),
        _ if !inbound => return SpamVerdict::Deliver(Changes::default()),
        _ => {}
    }
    let junk = matches!(
        reply.action,
        Action::AddHeader | Action::RewriteSubject | Action::Discard | Action::Quarantine
    );
    let mut fields = vec![
        format!("X-Spam-Action: {}\r\n", reply.action.as_str()),
        format!(
            "X-Spam-Score: {:.2} / {:.2}\r\n",
            reply.score, reply.required_score
        ),
    ];
    let named: Vec<String> = reply
        .symbols
        .iter()
        .filter(|s| s.score != 0.0)
        .take(MAX_NAMED_SYMBOLS)
        .map(|s| format!("{}({:.2})", s.name, s.score))
        .collect();
    if !named.is_empty() {
        fields.push(folded("X-Spam-Symbols", &named));
    }
    if junk {
        fields.push("X-Spam: Yes\r\n".into());
    }
    let own = |n: &str| OWN_FIELDS.iter().any(|o| o.eq_ignore_ascii_case(n));
    for (name, value) in &reply.add_headers {
        if !own(name) {
            fields.push(format!("{name}: {value}\r\n"));
        }
    }
    let mut remove: Vec<String> = OWN_FIELDS.iter().map(|s| s.to_string()).collect();
    remove.extend(reply.remove_headers.iter().filter(|n| !own(n)).cloned());
    let subject = match (&reply.action, &reply.subject) {
        // rspamd encodes a non-ASCII subject itself (RFC 2047); anything else is not written.
        (Action::RewriteSubject, Some(s)) if s.is_ascii() => Some(s.clone()),
        _ => None,
    };
    SpamVerdict::Deliver(Changes {
        fields,
        junk,
        remove,
        subject,
        greylist: reply.action == Action::Greylist,
    })
}

/// `name: a, b, c` folded before 78 columns (RFC 5322 §2.2.3).
fn folded(name: &str, items: &[String]) -> String {
    let mut out = format!("{name}:");
    let mut line = out.len();
    for (i, item) in items.iter().enumerate() {
        let sep = if i + 1 < items.len() { "," } else { "" };
        if line + 1 + item.len() + sep.len() > 78 && line > name.len() + 1 {
            out.push_str("\r\n\t");
            line = 1;
        } else {
            out.push(' ');
            line += 1;
        }
        out.push_str(item);
        out.push_str(sep);
        line += item.len() + sep.len();
    }
    out.push_str("\r\n");
    out
}

/// `body` with `changes.remove` taken out and the Subject rewritten; `None` if unchanged.
pub fn rewrite(body: &[u8], changes: &Changes) -> Option<Vec<u8>> {
    let mut current: Option<Vec<u8>> = None;
    let names = changes
        .remove
        .iter()
        .map(String::as_str)
        .chain(changes.subject.as_ref().map(|_| "Subject"));
    for name in names {
        if let Some(b) = without_field(current.as_deref().unwrap_or(body), name) {
            current = Some(b);
        }
    }
    if let Some(subject) = &changes.subject {
        let rest = current.as_deref().unwrap_or(body);
        // The new Subject goes where a header starts, after our own Received field, which
        // SMTP put first.
        let at = first_field_end(rest);
        let mut out = Vec::with_capacity(rest.len() + subject.len() + 12);
        out.extend_from_slice(&rest[..at]);
        out.extend_from_slice(format!("Subject: {subject}\r\n").as_bytes());
        out.extend_from_slice(&rest[at..]);
        current = Some(out);
    }
    current
}

/// Where the first header field (with its continuation lines) ends.
fn first_field_end(body: &[u8]) -> usize {
    if body.starts_with(b"\r\n") || body.starts_with(b"\n") {
        return 0;
    }
    kurier_smtp::headers::header_fields(body)
        .0
        .first()
        .map_or(0, |f| f.len())
}

/// Whether the message says its own (forged) spam verdict; for a log line.
pub fn has_own_fields(body: &[u8]) -> bool {
    fields(body)
        .iter()
        .any(|(n, _)| OWN_FIELDS.iter().any(|o| o.eq_ignore_ascii_case(n)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests fail loudly by design
    use super::*;
    use kurier_spam::Symbol;

    fn reply(action: Action) -> Reply {
        Reply {
            action,
            score: 7.3,
            required_score: 15.0,
            symbols: vec![
                Symbol {
                    name: "BAYES_SPAM".into(),
                    score: 5.1,
                },
                Symbol {
                    name: "ARC_NA".into(),
                    score: 0.0,
                },
            ],
            smtp_message: None,
            subject: None,
            add_headers: vec![],
            remove_headers: vec![],
            skipped: false,
        }
    }

    #[test]
    fn reject_and_soft_reject_refuse_in_and_out() {
        for inbound in [true, false] {
            assert_eq!(
                verdict(&reply(Action::Reject), inbound),
                SpamVerdict::Reject("Spam message rejected".into())
            );
            assert_eq!(
                verdict(&reply(Action::SoftReject), inbound),
                SpamVerdict::Defer("Try again later".into())
            );
        }
        let mut r = reply(Action::Reject);
        r.smtp_message = Some("Gtube pattern\u{7f} \u{e4}".into());
        assert_eq!(
            verdict(&r, true),
            SpamVerdict::Reject("Gtube pattern ".into())
        );
    }

    #[test]
    fn add_header_files_into_junk_with_the_score() {
        let SpamVerdict::Deliver(c) = verdict(&reply(Action::AddHeader), true) else {
            panic!()
        };
        assert!(c.junk);
        assert_eq!(
            c.fields,
            [
                "X-Spam-Action: add header\r\n",
                "X-Spam-Score: 7.30 / 15.00\r\n",
                "X-Spam-Symbols: BAYES_SPAM(5.10)\r\n",
                "X-Spam: Yes\r\n"
            ]
        );
        let SpamVerdict::Deliver(c) = verdict(&reply(Action::NoAction), true) else {
            panic!()
        };
        assert!(!c.junk);
        assert!(!c.fields.iter().any(|f| f.starts_with("X-Spam: ")));
        // rspamd's discard is never a silent drop here.
        let SpamVerdict::Deliver(c) = verdict(&reply(Action::Discard), true) else {
            panic!()
        };
        assert!(c.junk);
    }

    #[test]
    fn submitted_mail_goes_out_unchanged() {
        assert_eq!(
            verdict(&reply(Action::AddHeader), false),
            SpamVerdict::Deliver(Changes::default())
        );
    }

    #[test]
    fn forged_labels_go_and_the_subject_is_rewritten() {
        let mut r = reply(Action::RewriteSubject);
        r.subject = Some("***SPAM*** hello".into());
        r.add_headers = vec![
            ("X-Spam".into(), "No".into()),
            ("X-Rspamd-Server".into(), "a".into()),
        ];
        r.remove_headers = vec!["X-Old-Filter".into()];
        let SpamVerdict::Deliver(c) = verdict(&r, true) else {
            panic!()
        };
        // rspamd's own X-Spam would contradict ours: ours wins.
        assert_eq!(
            c.fields.iter().filter(|f| f.starts_with("X-Spam:")).count(),
            1
        );
        assert!(c.fields.contains(&"X-Rspamd-Server: a\r\n".to_string()));
        let body = b"Received: from a\r\n\tby b\r\nX-Spam: No\r\nx-spam-score: -100\r\nSubject: hello\r\nX-Old-Filter: 1\r\n\r\nX-Spam: body text stays\r\n";
        assert!(has_own_fields(body));
        let out = rewrite(body, &c).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "Received: from a\r\n\tby b\r\nSubject: ***SPAM*** hello\r\n\r\nX-Spam: body text stays\r\n"
        );
        assert_eq!(rewrite(b"Subject: x\r\n\r\nhi", &Changes::default()), None);
    }

    #[test]
    fn long_symbol_lists_fold() {
        let items: Vec<String> = (0..20)
            .map(|i| format!("SYMBOL_NUMBER_{i}(1.00)"))
            .collect();
        let f = folded("X-Spam-Symbols", &items);
        assert!(f.split("\r\n").all(|l| l.len() <= 78), "{f}");
        assert!(f.ends_with("SYMBOL_NUMBER_19(1.00)\r\n"));
        assert_eq!(f.matches(',').count(), 19);
    }
}
