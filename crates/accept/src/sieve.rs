//! The Sieve stage's view of a message (kurier-sieve's `MessageView`): header values unfolded
//! and RFC 2047-decoded, the addr-specs of address fields, the size, and the body text the
//! body test reads (RFC 5173 §5: raw, the parts of given media types, or the text parts),
//! all read once with mail-parser.

use kurier_sieve::MessageView;
use kurier_sieve::script::BodyTransform;
use mail_parser::parsers::MessageStream;
use mail_parser::{HeaderValue, MessageParser, MimeHeaders, PartType};

/// Body text read for a body test at most (a larger body is matched on its start).
const MAX_BODY_TEXT: usize = 1 << 20;

/// A received message as Sieve sees it.
pub struct SieveMessage<'a> {
    raw: &'a [u8],
    /// (lower-case name, raw value bytes including the line end) in order.
    fields: Vec<(String, &'a [u8])>,
    parsed: Option<mail_parser::Message<'a>>,
}

impl<'a> SieveMessage<'a> {
    pub fn new(raw: &'a [u8]) -> Self {
        let parsed = MessageParser::default().parse(raw);
        let fields = parsed
            .as_ref()
            .map(|m| {
                m.headers()
                    .iter()
                    .filter_map(|h| {
                        let value = raw.get(h.offset_start as usize..h.offset_end as usize)?;
                        Some((h.name.as_str().to_ascii_lowercase(), value))
                    })
                    .collect()
            })
            .unwrap_or_default();
        SieveMessage {
            raw,
            fields,
            parsed,
        }
    }

    fn raw_values(&self, name: &str) -> impl Iterator<Item = &'a [u8]> + '_ {
        let name = name.to_ascii_lowercase();
        self.fields
            .iter()
            .filter(move |(n, _)| *n == name)
            .map(|(_, v)| *v)
    }
}

/// A raw value as the field parsers want it: ending in a line end.
fn terminated(v: &[u8]) -> Vec<u8> {
    let mut v = v.to_vec();
    if !v.ends_with(b"\n") {
        v.extend_from_slice(b"\r\n");
    }
    v
}

impl MessageView for SieveMessage<'_> {
    fn header_values(&self, name: &str) -> Vec<String> {
        self.raw_values(name)
            .map(|v| {
                let v = terminated(v);
                match MessageStream::new(&v).parse_unstructured() {
                    HeaderValue::Text(t) => t.trim().to_string(),
                    _ => String::new(),
                }
            })
            .collect()
    }

    fn addresses(&self, name: &str) -> Vec<String> {
        let mut out = Vec::new();
        for v in self.raw_values(name) {
            let v = terminated(v);
            if let HeaderValue::Address(a) = MessageStream::new(&v).parse_address() {
                out.extend(
                    a.iter()
                        .filter_map(|addr| addr.address.as_ref().map(|s| s.to_string())),
                );
            }
        }
        out
    }

    fn size(&self) -> u64 {
        self.raw.len() as u64
    }

    fn body(&self, transform: &BodyTransform) -> Vec<String> {
        let Some(m) = &self.parsed else {
            return Vec::new();
        };
        let bounded = |s: &str| {
            let mut end = s.len().min(MAX_BODY_TEXT);
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            s[..end].to_string()
        };
        match transform {
            BodyTransform::Raw => {
                let start = self
                    .raw
                    .windows(4)
                    .position(|w| w == b"\r\n\r\n")
                    .map_or(self.raw.len(), |p| p + 4);
                vec![bounded(&String::from_utf8_lossy(&self.raw[start..]))]
            }
            BodyTransform::Text => (0..m.text_body_count())
                .filter_map(|i| m.body_text(i))
                .map(|t| bounded(&t))
                .collect(),
            BodyTransform::Content(types) => m
                .parts
                .iter()
                .filter(|p| {
                    let (t, sub) = p
                        .content_type()
                        .map(|c| {
                            (
                                c.ctype().to_ascii_lowercase(),
                                c.subtype().unwrap_or("").to_ascii_lowercase(),
                            )
                        })
                        .unwrap_or_else(|| ("text".into(), "plain".into()));
                    types.iter().any(|want| {
                        let want = want.to_ascii_lowercase();
                        want.is_empty() || want == t || want == format!("{t}/{sub}")
                    })
                })
                .filter_map(|p| match &p.body {
                    PartType::Text(t) | PartType::Html(t) => Some(bounded(t)),
                    _ => None,
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests fail loudly by design
    use super::*;

    const MAIL: &[u8] = b"Received: from a\r\n\tby b\r\nFrom: =?UTF-8?Q?J=C3=BCrgen?= <juergen+lists@example.org>\r\n\
To: Bob <bob@example.net>, carol@example.net\r\nSubject: =?UTF-8?B?R3LDvMOfZQ==?= from\r\n folded\r\n\
Content-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nPlain text offer.\r\n\
--b\r\nContent-Type: text/html\r\n\r\n<p>HTML offer</p>\r\n--b--\r\n";

    #[test]
    fn headers_decoded_and_unfolded_addresses_and_bodies() {
        let m = SieveMessage::new(MAIL);
        assert_eq!(m.header_values("subject"), ["Grüße from folded"]);
        assert_eq!(
            m.header_values("FROM"),
            ["Jürgen <juergen+lists@example.org>"]
        );
        assert_eq!(m.header_values("received").len(), 1);
        assert!(m.header_values("x-none").is_empty());
        assert_eq!(m.addresses("to"), ["bob@example.net", "carol@example.net"]);
        assert_eq!(m.addresses("from"), ["juergen+lists@example.org"]);
        assert_eq!(m.size(), MAIL.len() as u64);
        let html = m.body(&BodyTransform::Content(vec!["text/html".into()]));
        assert_eq!(html.len(), 1);
        assert!(html[0].contains("HTML offer"));
        assert_eq!(
            m.body(&BodyTransform::Content(vec!["text".into()])).len(),
            2
        );
        assert!(m.body(&BodyTransform::Raw)[0].contains("--b\r\nContent-Type: text/plain"));
        assert!(m.body(&BodyTransform::Text)[0].contains("Plain text offer."));
    }

    #[test]
    fn a_script_on_a_real_message() {
        let script = kurier_sieve::compile(
            "require [\"fileinto\", \"body\", \"subaddress\"];\n\
             if allof (address :detail \"from\" \"lists\", body :text :contains \"offer\",\n\
                       header :contains \"subject\" \"grüße\") { fileinto \"Offers\"; }",
        )
        .unwrap();
        let out = kurier_sieve::run(
            &script,
            &SieveMessage::new(MAIL),
            &kurier_sieve::Envelope {
                from: "juergen+lists@example.org".into(),
                to: "bob@example.net".into(),
                auth: None,
            },
            &kurier_sieve::Limits::default(),
            &kurier_sieve::Context {
                now: 0,
                mailbox_exists: &|_| true,
                include: &|_, _| None,
            },
        );
        assert_eq!(
            out.actions,
            [kurier_sieve::Action::FileInto {
                mailbox: "Offers".into(),
                flags: vec![],
                create: false
            }]
        );
    }

    #[test]
    fn vacation_is_not_for_machines_lists_or_ourselves() {
        let ours = vec!["bob@example.net".to_string()];
        let m = |extra: &str| {
            format!(
                "From: a@example.org\r\nTo: Bob <bob@example.net>\r\n{extra}Subject: hi\r\n\r\nx\r\n"
            )
        };
        let plain = m("");
        assert_eq!(
            vacation_suppressed(&SieveMessage::new(plain.as_bytes()), "a@example.org", &ours),
            None
        );
        for (extra, sender) in [
            ("", ""),
            ("", "MAILER-DAEMON@example.org"),
            ("", "owner-list@example.org"),
            ("", "list-request@example.org"),
            ("Auto-Submitted: auto-replied\r\n", "a@example.org"),
            ("List-Id: <x.example.org>\r\n", "a@example.org"),
            ("Precedence: bulk\r\n", "a@example.org"),
            ("", "bob@example.net"),
        ] {
            let text = m(extra);
            assert!(
                vacation_suppressed(&SieveMessage::new(text.as_bytes()), sender, &ours).is_some(),
                "{extra} {sender}"
            );
        }
        // Sent to someone else (a Bcc copy of a list, say): no reply.
        let other = b"From: a@example.org\r\nTo: carol@example.net\r\n\r\nx\r\n";
        assert!(vacation_suppressed(&SieveMessage::new(other), "a@example.org", &ours).is_some());
    }

    #[test]
    fn the_vacation_reply() {
        let view = SieveMessage::new(
            b"Message-ID: <m1@example.org>\r\nSubject: Gr\xc3\xbc\xc3\x9fe\r\n\r\nx\r\n",
        );
        let reply = kurier_sieve::interpret::VacationReply {
            to: "a@example.org".into(),
            subject: None,
            from: None,
            reason: "Away.\nBack Monday.".into(),
            mime: false,
            handle: "h".into(),
            period: 86400,
            addresses: vec![],
        };
        let out = String::from_utf8(vacation_message(
            &view,
            &reply,
            "bob@example.net",
            "mx.example.net",
            1_800_000_000,
        ))
        .unwrap();
        assert!(out.contains("To: <a@example.org>\r\n"), "{out}");
        assert!(out.contains("Subject: =?UTF-8?B?"), "{out}");
        assert!(out.contains("In-Reply-To: <m1@example.org>\r\n"), "{out}");
        assert!(out.contains("Auto-Submitted: auto-replied"), "{out}");
        assert!(
            out.ends_with("\r\n\r\nAway.\r\nBack Monday.\r\n"),
            "{out:?}"
        );
    }

    #[test]
    fn header_edits() {
        use kurier_sieve::interpret::Edit;
        let body = b"Received: a\r\nX-Tag: one\r\nX-Tag: two\r\n\tfolded\r\nSubject: s\r\n\r\nX-Tag: body\r\n";
        let m = |k: &str| kurier_sieve::script::Match {
            match_type: kurier_sieve::script::MatchType::Contains,
            keys: vec![k.into()],
            ..Default::default()
        };
        let out = apply_edits(
            body,
            &[
                Edit::Add {
                    last: false,
                    name: "X-First".into(),
                    value: "1\r\nBcc: x@y".into(),
                },
                Edit::Add {
                    last: true,
                    name: "X-Last".into(),
                    value: "2".into(),
                },
                Edit::Delete {
                    name: "x-tag".into(),
                    index: None,
                    m: Some(m("two folded")),
                },
            ],
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "X-First: 1  Bcc: x@y\r\nReceived: a\r\nX-Tag: one\r\nSubject: s\r\nX-Last: 2\r\n\r\nX-Tag: body\r\n"
        );
        let out = apply_edits(
            body,
            &[Edit::Delete {
                name: "X-TAG".into(),
                index: Some((1, true)),
                m: None,
            }],
        )
        .unwrap();
        assert!(
            String::from_utf8(out)
                .unwrap()
                .contains("X-Tag: one\r\nSubject")
        );
        assert_eq!(apply_edits(body, &[]), None);
    }

    #[test]
    fn garbage_is_no_panic() {
        let m = SieveMessage::new(b"\xff\xfe not a message");
        let _ = m.header_values("subject");
        let _ = m.addresses("from");
        let _ = m.body(&BodyTransform::Text);
    }
}

/// Why no automatic answer (vacation, refusal notice) may go to this message's sender, if
/// one may not (RFC 3834 §2): a null or machine sender, an automatic, list or bulk message.
pub fn automatic(view: &SieveMessage<'_>, sender: &str) -> Option<&'static str> {
    let sender = sender.to_ascii_lowercase();
    if sender.is_empty() {
        return Some("the sender is null");
    }
    let local = sender.rsplit_once('@').map_or(sender.as_str(), |(l, _)| l);
    if [
        "mailer-daemon",
        "postmaster",
        "listserv",
        "majordomo",
        "noreply",
        "no-reply",
    ]
    .contains(&local)
        || local.starts_with("owner-")
        || local.ends_with("-request")
        || local.ends_with("-bounces")
    {
        return Some("the sender is a machine");
    }
    if view
        .header_values("auto-submitted")
        .iter()
        .any(|v| !v.trim().eq_ignore_ascii_case("no"))
    {
        return Some("the message was sent automatically");
    }
    if ["list-id", "list-unsubscribe", "list-post", "list-help"]
        .iter()
        .any(|h| !view.header_values(h).is_empty())
    {
        return Some("the message came from a mailing list");
    }
    if view.header_values("precedence").iter().any(|v| {
        matches!(
            v.trim().to_ascii_lowercase().as_str(),
            "bulk" | "list" | "junk"
        )
    }) {
        return Some("the message is bulk mail");
    }
    None
}

/// Whether a vacation reply to this message must not be sent (RFC 5230 §4.5, RFC 3834 §2):
/// it is `automatic`, it is from ourselves, or it does not name one of our addresses in To,
/// Cc or Bcc.
pub fn vacation_suppressed(
    view: &SieveMessage<'_>,
    sender: &str,
    ours: &[String],
) -> Option<&'static str> {
    if let Some(why) = automatic(view, sender) {
        return Some(why);
    }
    let sender = sender.to_ascii_lowercase();
    if ours.iter().any(|o| o.eq_ignore_ascii_case(&sender)) {
        return Some("the sender is the recipient");
    }
    let named = ["to", "cc", "bcc", "resent-to", "resent-cc"]
        .iter()
        .flat_map(|h| view.addresses(h))
        .any(|a| ours.iter().any(|o| o.eq_ignore_ascii_case(&a)));
    if !named {
        return Some("none of our addresses is in To, Cc or Bcc");
    }
    None
}

/// The vacation reply (RFC 5230 §5, RFC 3834 §3): from our address, to the sender, answering
/// the original's Message-ID, marked `Auto-Submitted: auto-replied`.
pub fn vacation_message(
    view: &SieveMessage<'_>,
    reply: &kurier_sieve::interpret::VacationReply,
    ours: &str,
    hostname: &str,
    now: i64,
) -> Vec<u8> {
    let clean = one_line;
    let subject = header_text(&match &reply.subject {
        Some(s) => s.clone(),
        None => format!("Auto: {}", original_subject(view)),
    });
    let from = reply.from.as_deref().map_or(ours.to_string(), clean);
    let original = view
        .header_values("message-id")
        .first()
        .map(|s| clean(s.trim()));
    let mut out = format!(
        "From: {from}\r\nTo: <{}>\r\nSubject: {subject}\r\nDate: {}\r\nMessage-ID: <vacation.{now}.{:x}@{hostname}>\r\nAuto-Submitted: auto-replied (vacation)\r\n",
        clean(&reply.to),
        kurier_smtp::received::rfc5322_date(now),
        reply.handle.len() ^ (now as usize)
    );
    if let Some(id) = original {
        out.push_str(&format!("In-Reply-To: {id}\r\nReferences: {id}\r\n"));
    }
    out.push_str("MIME-Version: 1.0\r\n");
    if reply.mime {
        // The reason is a MIME entity with its own header (RFC 5230 §4.4).
        out.push_str(&reply.reason.replace("\r\n", "\n").replace('\n', "\r\n"));
    } else {
        out.push_str(
            "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n",
        );
        out.push_str(&reply.reason.replace("\r\n", "\n").replace('\n', "\r\n"));
    }
    if !out.ends_with("\r\n") {
        out.push_str("\r\n");
    }
    out.into_bytes()
}

/// CR and LF as spaces: a value from a message or a script stays one header line.
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c == '\r' || c == '\n' { ' ' } else { c })
        .collect()
}

/// `s` as a header value: one line, and RFC 2047 B-encoded when it is not ASCII.
fn header_text(s: &str) -> String {
    let s = one_line(s);
    if s.is_ascii() {
        s
    } else {
        format!("=?UTF-8?B?{}?=", kurier_access::base64_encode(s.as_bytes()))
    }
}

/// The message's Subject, decoded.
fn original_subject(view: &SieveMessage<'_>) -> String {
    view.header_values("subject")
        .first()
        .cloned()
        .unwrap_or_default()
}

/// The notice for a message `recipient`'s script refused after it was accepted (RFC 5429
/// §2.1): a DSN for `ereject` (§2.1.2), an MDN for `reject` (§2.1.3), from `recipient` to the
/// return path; `Err` with the reason when none may be sent (a null or machine sender, an
/// automatic, list or bulk message: RFC 5429 §2.1.4, RFC 3834 §2).
pub fn refusal_notice(
    view: &SieveMessage<'_>,
    d: &Delivery<'_>,
    recipient: &str,
    reason: &str,
    dsn: bool,
) -> Result<Vec<u8>, &'static str> {
    if let Some(why) = automatic(view, d.from) {
        return Err(why);
    }
    if dsn {
        use kurier_delivery::dsn;
        return Ok(dsn::build(&dsn::Notice {
            action: dsn::Action::Failed,
            reporting_mta: d.hostname,
            to: d.from,
            arrival: d.now,
            now: d.now,
            retry_until: None,
            recipients: &[dsn::RecipientNotice {
                address: recipient.to_string(),
                original: None,
                status: "5.7.1".into(),
                reason: format!("The recipient's mail filter refused the message: {reason}"),
                remote_mta: None,
                diagnostic: None,
            }],
            original: d.body,
            request: &kurier_store::MessageDsn {
                ret: Some(kurier_store::DsnReturn::Headers),
                envid: None,
            },
        }));
    }
    let message_id = view
        .header_values("message-id")
        .first()
        .map(|s| one_line(s.trim()));
    Ok(kurier_delivery::mdn::build(
        &kurier_delivery::mdn::Refusal {
            reporting_ua: d.hostname,
            recipient,
            to: d.from,
            subject: &header_text(&format!("Rejected: {}", original_subject(view))),
            message_id: message_id.as_deref(),
            reason,
            original: d.body,
            now: d.now,
        },
    ))
}

/// What Sieve made of one message for its local recipients.
#[derive(Debug, Default)]
pub struct Filed {
    pub placements: Vec<kurier_store::Placement>,
    /// Redirected copies (unsigned: they are the sender's mail).
    pub redirects: Vec<(kurier_store::NewQueueEntry, Vec<u8>)>,
    /// Vacation replies and refusal notices (null return path), to be DKIM-signed by the
    /// caller.
    pub replies: Vec<(kurier_store::NewQueueEntry, Vec<u8>)>,
    /// reject/ereject with a single recipient: refused at SMTP (550) with this text.
    pub refuse: Option<String>,
}

/// `body` with Sieve's header edits (RFC 5293) in order; `None` without edits. `addheader`
/// puts its field first (or last with `:last`); `deleteheader` removes the fields of that name
/// (the `:index`-th only, from the end with `:last`), those whose decoded value matches when
/// value patterns are given.
pub fn apply_edits(body: &[u8], edits: &[kurier_sieve::interpret::Edit]) -> Option<Vec<u8>> {
    use kurier_sieve::interpret::Edit;
    if edits.is_empty() {
        return None;
    }
    let (fields, rest) = kurier_smtp::headers::header_fields(body);
    let mut fields: Vec<Vec<u8>> = fields.into_iter().map(<[u8]>::to_vec).collect();
    let name_of = |f: &[u8]| -> String {
        let colon = f.iter().position(|b| *b == b':').unwrap_or(0);
        String::from_utf8_lossy(&f[..colon])
            .trim()
            .to_ascii_lowercase()
    };
    let value_of = |f: &[u8]| -> String {
        let colon = f.iter().position(|b| *b == b':').map_or(f.len(), |c| c + 1);
        let v = terminated(&f[colon.min(f.len())..]);
        match MessageStream::new(&v).parse_unstructured() {
            HeaderValue::Text(t) => t.trim().to_string(),
            _ => String::new(),
        }
    };
    for e in edits {
        match e {
            Edit::Add { last, name, value } => {
                // One line of text: a value cannot smuggle in another field.
                let value: String = value
                    .chars()
                    .map(|c| if c == '\r' || c == '\n' { ' ' } else { c })
                    .collect();
                let field = format!("{name}: {value}\r\n").into_bytes();
                if *last {
                    fields.push(field);
                } else {
                    fields.insert(0, field);
                }
            }
            Edit::Delete { name, index, m } => {
                let lower = name.to_ascii_lowercase();
                let positions: Vec<usize> = fields
                    .iter()
                    .enumerate()
                    .filter(|(_, f)| name_of(f) == lower)
                    .map(|(i, _)| i)
                    .collect();
                let chosen: Vec<usize> = match index {
                    Some((n, from_end)) => {
                        let n = usize::try_from(*n).unwrap_or(usize::MAX);
                        let at = if *from_end {
                            positions.len().checked_sub(n)
                        } else {
                            n.checked_sub(1)
                        };
                        at.and_then(|a| positions.get(a).copied())
                            .into_iter()
                            .collect()
                    }
                    None => positions,
                };
                let mut doomed: Vec<usize> = chosen
                    .into_iter()
                    .filter(|&i| {
                        m.as_ref().is_none_or(|m| {
                            kurier_sieve::interpret::value_matches(m, &value_of(&fields[i]))
                        })
                    })
                    .collect();
                doomed.sort_unstable();
                for i in doomed.into_iter().rev() {
                    fields.remove(i);
                }
            }
        }
    }
    let mut out = fields.concat();
    out.extend_from_slice(rest);
    Some(out)
}

/// One delivery's envelope and message, as the Sieve stage needs them.
pub struct Delivery<'a> {
    pub accounts: &'a [kurier_store::AccountId],
    pub recipients: Vec<&'a str>,
    pub from: &'a str,
    pub auth: Option<&'a str>,
    pub body: &'a [u8],
    /// Where the implicit keep files (INBOX, or Junk after the spam or DMARC stage).
    pub folder: kurier_store::Folder,
    pub hostname: &'a str,
    /// The sub-address delimiter.
    pub delimiter: &'a str,
    /// Seconds since the epoch (Sieve's `currentdate`).
    pub now: i64,
    pub limits: &'a kurier_sieve::Limits,
    /// Vacation replies one account sends in 24 hours at most.
    pub vacation_per_day: u32,
    /// The message has no other recipient (a reject can be an SMTP refusal).
    pub single: bool,
}

/// Runs each recipient's active script (RFC 5228) and turns its actions into copies, redirects
/// and replies. A recipient without a script, a script that does not compile or fails at run
/// time, or a message that already passed this recipient (`Delivered-To`, a redirect loop)
/// gets the implicit keep.
pub async fn file(store: &dyn kurier_store::Store, d: &Delivery<'_>) -> Filed {
    use kurier_sieve::Action;
    use kurier_store::{NewQueueEntry, Placement, Target};
    let keep = |account, flags: Vec<String>| Placement {
        account,
        target: Target::Folder(d.folder),
        flags,
        body: None,
    };
    // RFC 5230 §5.1, RFC 5429 §2.1: answers go to the return path from the null one.
    let to_sender = || NewQueueEntry {
        sender: String::new(),
        recipients: vec![(d.from.to_string(), Default::default())],
        require_tls: false,
        dsn: Default::default(),
    };
    let mut out = Filed::default();
    // Most accounts have no script: one query tells, and then nothing else is asked.
    let scripted = match store.sieve_active(d.accounts).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot tell which recipients have Sieve scripts; kept");
            Vec::new()
        }
    };
    if scripted.is_empty() {
        out.placements = d.accounts.iter().map(|a| keep(*a, Vec::new())).collect();
        return out;
    }
    let view = SieveMessage::new(d.body);
    // Which address brought each account (the envelope `to` its script sees).
    let mut addressed: Vec<(kurier_store::AccountId, String, String)> = Vec::new();
    for r in &d.recipients {
        if let Ok(kurier_store::Recipient::Local(accounts)) =
            crate::envelope::resolve(store, r, d.delimiter).await
        {
            for a in accounts {
                if !addressed.iter().any(|(id, _, _)| *id == a.id) {
                    addressed.push((a.id, a.address.clone(), r.to_string()));
                }
            }
        }
    }
    for &account in d.accounts {
        let found = addressed.iter().find(|(id, _, _)| *id == account);
        let (Some((_, address, rcpt)), true) = (found, scripted.contains(&account)) else {
            out.placements.push(keep(account, Vec::new()));
            continue;
        };
        let scripts = match store.sieve_scripts(account).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(%address, error = %e, "cannot read the Sieve scripts; kept");
                out.placements.push(keep(account, Vec::new()));
                continue;
            }
        };
        let Some(active) = scripts.iter().find(|s| s.active) else {
            out.placements.push(keep(account, Vec::new()));
            continue;
        };
        if view
            .addresses("delivered-to")
            .iter()
            .chain(view.header_values("delivered-to").iter())
            .any(|a| a.eq_ignore_ascii_case(address))
        {
            tracing::warn!(%address, "the message was delivered to this account before (a redirect loop); kept without running Sieve");
            out.placements.push(keep(account, Vec::new()));
            continue;
        }
        let script = match kurier_sieve::compile(&active.content) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(%address, script = %active.name, error = %e, "the active Sieve script does not compile; kept");
                out.placements.push(keep(account, Vec::new()));
                continue;
            }
        };
        let personal: Vec<(String, String)> = scripts
            .iter()
            .map(|s| (s.name.clone(), s.content.clone()))
            .collect();
        let include = move |name: &str, is_personal: bool| {
            if !is_personal {
                return None;
            }
            personal
                .iter()
                .find(|(n, _)| n == name)
                .and_then(|(_, c)| kurier_sieve::compile(c).ok())
        };
        let envelope = kurier_sieve::Envelope {
            from: d.from.to_string(),
            to: rcpt.clone(),
            auth: d.auth.map(str::to_string),
        };
        // The account's mailboxes only for a script that asks (RFC 5490 §3.1).
        let mailboxes: Vec<String> = if scripts.iter().any(|s| s.content.contains("mailboxexists"))
        {
            match store.mailboxes(account).await {
                Ok(m) => m.into_iter().map(|m| m.name).collect(),
                Err(e) => {
                    tracing::warn!(%address, error = %e, "cannot list the mailboxes; kept");
                    out.placements.push(keep(account, Vec::new()));
                    continue;
                }
            }
        } else {
            Vec::new()
        };
        let mailbox_exists =
            |name: &str| name.eq_ignore_ascii_case("INBOX") || mailboxes.iter().any(|m| m == name);
        let outcome = kurier_sieve::run(
            &script,
            &view,
            &envelope,
            d.limits,
            &kurier_sieve::Context {
                now: d.now,
                mailbox_exists: &mailbox_exists,
                include: &include,
            },
        );
        if let Some(e) = &outcome.error {
            tracing::warn!(%address, script = %active.name, error = %e, "the Sieve script stopped; the message is kept");
        }
        // editheader (RFC 5293): this recipient's copies carry the edited header.
        let edited = apply_edits(d.body, &outcome.edits);
        let own = |p: Placement| Placement {
            body: edited.clone(),
            ..p
        };
        let valid = |flags: &[String]| -> Vec<String> {
            flags
                .iter()
                .filter(|f| kurier_store::normalize_flags([f.as_str()]).is_ok())
                .cloned()
                .collect()
        };
        for a in outcome.actions {
            match a {
                Action::Keep { flags } => out.placements.push(own(keep(account, valid(&flags)))),
                Action::FileInto {
                    mailbox,
                    flags,
                    create,
                } => {
                    if create
                        && let Err(e) = store.create_mailbox(account, &mailbox, None).await
                        && !matches!(e, kurier_store::StoreError::Exists(_))
                    {
                        tracing::info!(%address, %mailbox, error = %e, "fileinto :create failed; the message goes to INBOX");
                    }
                    out.placements.push(own(Placement {
                        account,
                        target: Target::Named(mailbox),
                        flags: valid(&flags),
                        body: None,
                    }));
                }
                Action::Redirect { address: to } => {
                    // Our own envelope sender: SPF passes at the next hop, and bounces reach
                    // the user who redirects (no SRS).
                    let mut copy = format!("Delivered-To: {address}\r\n").into_bytes();
                    copy.extend_from_slice(edited.as_deref().unwrap_or(d.body));
                    out.redirects.push((
                        NewQueueEntry {
                            sender: address.clone(),
                            recipients: vec![(to, Default::default())],
                            require_tls: false,
                            dsn: Default::default(),
                        },
                        copy,
                    ));
                }
                Action::Reject { reason, smtp } => {
                    if d.single {
                        out.refuse = Some(reason);
                        continue;
                    }
                    // Accepted for the others already: this recipient's refusal is a notice
                    // to the sender (RFC 5429 §2.1), and the message is not delivered here.
                    match refusal_notice(&view, d, address, &reason, smtp) {
                        Ok(notice) => {
                            tracing::info!(%address, to = d.from, kind = if smtp { "DSN" } else { "MDN" }, "refused by Sieve for one of several recipients; notice queued");
                            out.replies.push((to_sender(), notice));
                        }
                        Err(why) => {
                            tracing::info!(%address, reason = why, "refused by Sieve for one of several recipients; no notice");
                        }
                    }
                }
                Action::Vacation(v) => {
                    let mut ours = vec![address.clone(), rcpt.clone()];
                    ours.extend(v.addresses.iter().cloned());
                    if let Some(why) = vacation_suppressed(&view, d.from, &ours) {
                        tracing::debug!(%address, reason = why, "no vacation reply");
                        continue;
                    }
                    let now = kurier_store::now();
                    let period = i64::try_from(v.period).unwrap_or(i64::MAX);
                    match store
                        .vacation_reply_due(
                            account,
                            d.from,
                            &v.handle,
                            now,
                            period,
                            d.vacation_per_day,
                        )
                        .await
                    {
                        Ok(true) => {
                            let body = vacation_message(&view, &v, address, d.hostname, now);
                            out.replies.push((to_sender(), body));
                        }
                        Ok(false) => {
                            tracing::info!(%address, to = d.from, per_day = d.vacation_per_day, "no vacation reply: one went to this sender within the period, or the account's daily number is reached");
                        }
                        Err(e) => {
                            tracing::warn!(%address, error = %e, "cannot check the vacation memory; no reply")
                        }
                    }
                }
            }
        }
    }
    out
}
