//! rspamd's scan protocol without I/O: the request headers that carry the envelope and the
//! connection (rspamd "protocol", request headers `IP`, `Helo`, `From`, `Rcpt`, `Queue-Id`,
//! `User`, `TLS-Version`, `TLS-Cipher`, `MTA-Name`), and the JSON reply of `/checkv2` read into
//! a `Reply` with every part bounded and every text cleaned for use in SMTP replies and header
//! fields.

use std::net::IpAddr;

/// The most reply bytes read; a real reply is a few kB.
pub const MAX_REPLY_BYTES: usize = 1 << 20;
/// The most symbols kept (rspamd reports some dozens).
pub const MAX_SYMBOLS: usize = 500;
/// The most header fields rspamd may add or remove.
pub const MAX_HEADER_CHANGES: usize = 50;
/// The longest header value or text kept from a reply.
pub const MAX_TEXT: usize = 1000;

/// What rspamd wants done with a message (its "action").
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    NoAction,
    /// Above the greylisting threshold: rspamd's own greylist module answers `SoftReject` while
    /// it greylists; this reaching us means "suspicious, deliver".
    Greylist,
    AddHeader,
    RewriteSubject,
    SoftReject,
    Reject,
    /// rspamd's `discard` and `quarantine`: Kurier files these into Junk instead of dropping
    /// them (nothing acknowledged is lost).
    Discard,
    Quarantine,
    /// A custom action of the operator's rspamd configuration.
    Other(String),
}

impl Action {
    fn parse(s: &str) -> Action {
        match s {
            "no action" => Action::NoAction,
            "greylist" => Action::Greylist,
            "add header" => Action::AddHeader,
            "rewrite subject" => Action::RewriteSubject,
            "soft reject" => Action::SoftReject,
            "reject" => Action::Reject,
            "discard" => Action::Discard,
            "quarantine" => Action::Quarantine,
            other => Action::Other(clean(other, 64)),
        }
    }

    /// rspamd's name for it (the metric label and the `X-Spam-Action` value).
    pub fn as_str(&self) -> &str {
        match self {
            Action::NoAction => "no action",
            Action::Greylist => "greylist",
            Action::AddHeader => "add header",
            Action::RewriteSubject => "rewrite subject",
            Action::SoftReject => "soft reject",
            Action::Reject => "reject",
            Action::Discard => "discard",
            Action::Quarantine => "quarantine",
            Action::Other(s) => s,
        }
    }
}

/// One rule that matched.
#[derive(Debug, Clone, PartialEq)]
pub struct Symbol {
    pub name: String,
    pub score: f64,
}

/// rspamd's verdict on one message.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub action: Action,
    pub score: f64,
    pub required_score: f64,
    /// Highest score first.
    pub symbols: Vec<Symbol>,
    /// `messages.smtp_message`: the text rspamd wants in a refusal.
    pub smtp_message: Option<String>,
    /// The new Subject for `rewrite subject`.
    pub subject: Option<String>,
    /// `milter.add_headers`: fields to add (name, value), in order.
    pub add_headers: Vec<(String, String)>,
    /// `milter.remove_headers`: field names to remove (every occurrence).
    pub remove_headers: Vec<String>,
    /// rspamd skipped the checks (a settings rule, a size limit, or a pre-filter such as GTUBE).
    pub skipped: bool,
}

/// Why a reply is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    #[error("the reply is no JSON: {0}")]
    Json(String),
    #[error("rspamd reports an error: {0}")]
    Rspamd(String),
    #[error("the reply has no {0}")]
    Missing(&'static str),
}

/// The envelope and connection of one message, as rspamd's request headers.
#[derive(Debug, Clone)]
pub struct ScanRequest<'a> {
    pub ip: IpAddr,
    pub helo: Option<&'a str>,
    /// The envelope sender ("" for a bounce).
    pub from: &'a str,
    pub recipients: Vec<&'a str>,
    pub queue_id: &'a str,
    /// The authenticated account (submission).
    pub user: Option<&'a str>,
    /// TLS version and cipher of the SMTP session.
    pub tls: Option<(&'a str, &'a str)>,
    /// Our host name (rspamd's `MTA-Name`).
    pub mta_name: &'a str,
}

impl ScanRequest<'_> {
    /// The request headers, each value cleaned of control characters (an address with one is
    /// sent without it rather than breaking the request).
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        let mut h = vec![("IP", self.ip.to_canonical().to_string())];
        if let Some(helo) = self.helo {
            h.push(("Helo", clean(helo, 255)));
        }
        h.push((
            "From",
            if self.from.is_empty() {
                "<>".to_string()
            } else {
                clean(self.from, 512)
            },
        ));
        for r in &self.recipients {
            h.push(("Rcpt", clean(r, 512)));
        }
        h.push(("Queue-Id", clean(self.queue_id, 64)));
        if let Some(u) = self.user {
            h.push(("User", clean(u, 512)));
        }
        if let Some((version, cipher)) = self.tls {
            h.push(("TLS-Version", clean(version, 32)));
            h.push(("TLS-Cipher", clean(cipher, 128)));
        }
        h.push(("MTA-Name", clean(self.mta_name, 255)));
        h
    }
}

/// `s` without control characters (CR, LF, NUL …), at most `max` bytes, cut at a character.
pub fn clean(s: &str, max: usize) -> String {
    let mut out = String::with_capacity(s.len().min(max));
    for c in s.chars().filter(|c| !c.is_control()) {
        if out.len() + c.len_utf8() > max {
            break;
        }
        out.push(c);
    }
    out.trim().to_string()
}

/// Whether `name` is a header field name (RFC 5322 §3.6.8: printable ASCII but colon).
fn field_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 100
        && name.bytes().all(|b| (33..=126).contains(&b) && b != b':')
}

/// Reads a `/checkv2` reply.
pub fn parse_reply(body: &[u8]) -> Result<Reply, ReplyError> {
    if body.len() > MAX_REPLY_BYTES {
        return Err(ReplyError::Json(format!(
            "{} bytes is too long",
            body.len()
        )));
    }
    let v: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| ReplyError::Json(e.to_string()))?;
    let Some(obj) = v.as_object() else {
        return Err(ReplyError::Json("not an object".into()));
    };
    if let Some(e) = obj.get("error") {
        return Err(ReplyError::Rspamd(clean(
            e.as_str().unwrap_or("(no text)"),
            MAX_TEXT,
        )));
    }
    let action = obj
        .get("action")
        .and_then(|a| a.as_str())
        .map(Action::parse)
        .ok_or(ReplyError::Missing("action"))?;
    let number = |k: &str| {
        obj.get(k)
            .and_then(|s| s.as_f64())
            .filter(|n| n.is_finite())
    };
    let score = number("score").ok_or(ReplyError::Missing("score"))?;
    let required_score = number("required_score").unwrap_or(0.0);
    let mut symbols: Vec<Symbol> = obj
        .get("symbols")
        .and_then(|s| s.as_object())
        .map(|m| {
            m.iter()
                .take(MAX_SYMBOLS)
                .filter(|(name, _)| field_name(name))
                .map(|(name, s)| Symbol {
                    name: name.clone(),
                    score: s
                        .get("score")
                        .and_then(|x| x.as_f64())
                        .filter(|n| n.is_finite())
                        .unwrap_or(0.0),
                })
                .collect()
        })
        .unwrap_or_default();
    symbols.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.name.cmp(&b.name)));
    let text = |v: Option<&serde_json::Value>| {
        v.and_then(|s| s.as_str())
            .map(|s| clean(s, MAX_TEXT))
            .filter(|s| !s.is_empty())
    };
    let smtp_message = text(obj.get("messages").and_then(|m| m.get("smtp_message")));
    let subject = text(obj.get("subject"));
    let milter = obj.get("milter");
    let mut add_headers = Vec::new();
    if let Some(m) = milter
        .and_then(|m| m.get("add_headers"))
        .and_then(|a| a.as_object())
    {
        for (name, value) in m {
            if !field_name(name) {
                continue;
            }
            // A value is a string, {"value": …, "order": …}, or a list of those.
            let values: Vec<&serde_json::Value> = match value {
                serde_json::Value::Array(a) => a.iter().collect(),
                v => vec![v],
            };
            for v in values {
                let s = v
                    .as_str()
                    .or_else(|| v.get("value").and_then(|x| x.as_str()));
                if let Some(s) = s
                    && add_headers.len() < MAX_HEADER_CHANGES
                {
                    add_headers.push((name.clone(), clean(s, MAX_TEXT)));
                }
            }
        }
    }
    let remove_headers = milter
        .and_then(|m| m.get("remove_headers"))
        .and_then(|r| r.as_object())
        .map(|r| {
            r.keys()
                .filter(|n| field_name(n))
                .take(MAX_HEADER_CHANGES)
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    Ok(Reply {
        action,
        score,
        required_score,
        symbols,
        smtp_message,
        subject,
        add_headers,
        remove_headers,
        skipped: obj
            .get("is_skipped")
            .and_then(|s| s.as_bool())
            .unwrap_or(false),
    })
}

/// What the controller said to a learn request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Learned {
    Yes,
    /// It had learned this message already (HTTP 208), or the classifier would not take it
    /// (too few tokens): nothing to retry.
    Skipped(String),
}

/// Reads a `/learnspam` or `/learnham` reply with its HTTP status and reason phrase.
pub fn parse_learned(status: u16, reason: &str, body: &[u8]) -> Result<Learned, ReplyError> {
    let v: serde_json::Value = serde_json::from_slice(&body[..body.len().min(MAX_REPLY_BYTES)])
        .unwrap_or(serde_json::Value::Null);
    let error = v
        .get("error")
        .and_then(|e| e.as_str())
        .map(|e| clean(e, MAX_TEXT));
    match (status, error) {
        (200, None) if v.get("success").and_then(|s| s.as_bool()) == Some(true) => Ok(Learned::Yes),
        (208, e) => Ok(Learned::Skipped(
            e.unwrap_or_else(|| "already learned".into()),
        )),
        // "contains less tokens than required for bayes classifier", in the status line.
        (204, _) => Ok(Learned::Skipped(clean(reason, MAX_TEXT))),
        // 404 "too few tokens" and the like: the message can never be learned.
        (400..=499, Some(e)) => Ok(Learned::Skipped(e)),
        (_, Some(e)) => Err(ReplyError::Rspamd(format!("HTTP {status}: {e}"))),
        (_, None) => Err(ReplyError::Rspamd(format!("HTTP {status}, no success"))),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests fail loudly by design
    use super::*;

    // What rspamd 3.4 answers for the GTUBE test message.
    const GTUBE: &str = r#"{"is_skipped":true,"score":15.0,"required_score":15.0,"action":"reject","symbols":{"GTUBE":{"name":"GTUBE","score":0.0,"metric_score":0.0}},"messages":{"smtp_message":"Gtube pattern"},"message-id":"1@example.org","time_real":0.075696}"#;

    #[test]
    fn a_real_reject_reply() {
        let r = parse_reply(GTUBE.as_bytes()).unwrap();
        assert_eq!(r.action, Action::Reject);
        assert_eq!(r.score, 15.0);
        assert_eq!(r.smtp_message.as_deref(), Some("Gtube pattern"));
        assert!(r.skipped);
        assert_eq!(r.symbols[0].name, "GTUBE");
    }

    #[test]
    fn header_changes_and_symbols_in_score_order() {
        let r = parse_reply(br#"{"action":"add header","score":7.5,"required_score":15,
            "symbols":{"A":{"score":1.0},"B":{"score":5.5},"bad name:":{"score":9}},
            "subject":"***SPAM*** hi",
            "milter":{"add_headers":{"X-Spam":"Yes","X-Two":[{"value":"1\r\nBcc: x@y","order":0},"2"],"bad:name":"x"},
                      "remove_headers":{"X-Spam":0,"no good":1}}}"#).unwrap();
        assert_eq!(r.action, Action::AddHeader);
        let names: Vec<&str> = r.symbols.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["B", "A"]);
        assert_eq!(r.subject.as_deref(), Some("***SPAM*** hi"));
        // A value with CRLF cannot smuggle in another field.
        assert_eq!(
            r.add_headers,
            [
                ("X-Spam".to_string(), "Yes".to_string()),
                ("X-Two".to_string(), "1Bcc: x@y".to_string()),
                ("X-Two".to_string(), "2".to_string())
            ]
        );
        assert_eq!(r.remove_headers, ["X-Spam"]);
    }

    #[test]
    fn garbage_and_errors_are_errors() {
        for bad in [
            &b"<html>oops</html>"[..],
            b"",
            b"[]",
            b"{\"score\":1}",
            b"{\"action\":\"reject\"}",
            b"{\"action\":\"reject\",\"score\":\"high\"}",
        ] {
            assert!(
                parse_reply(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(
            parse_reply(br#"{"error":"cannot parse message"}"#),
            Err(ReplyError::Rspamd("cannot parse message".into()))
        );
        let huge = vec![b' '; MAX_REPLY_BYTES + 1];
        assert!(parse_reply(&huge).is_err());
        // Deep nesting is refused by serde_json's own recursion limit, not a crash.
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(parse_reply(deep.as_bytes()).is_err());
    }

    #[test]
    fn unknown_actions_are_kept_by_name() {
        let r = parse_reply(br#"{"action":"my custom\nthing","score":3}"#).unwrap();
        assert_eq!(r.action, Action::Other("my customthing".into()));
        assert_eq!(r.action.as_str(), "my customthing");
    }

    #[test]
    fn request_headers_carry_the_envelope_without_control_characters() {
        let req = ScanRequest {
            ip: "::ffff:192.0.2.7".parse().unwrap(),
            helo: Some("mail.example.org"),
            from: "",
            recipients: vec!["a@example.net", "b@example.net\r\nX: y"],
            queue_id: "Q1",
            user: None,
            tls: Some(("TLSv1.3", "TLS_AES_256_GCM_SHA384")),
            mta_name: "mx.example.net",
        };
        let h = req.headers();
        let get = |n: &str| -> Vec<&str> {
            h.iter()
                .filter(|(k, _)| *k == n)
                .map(|(_, v)| v.as_str())
                .collect()
        };
        assert_eq!(get("IP"), ["192.0.2.7"]);
        assert_eq!(get("From"), ["<>"]);
        assert_eq!(get("Rcpt"), ["a@example.net", "b@example.netX: y"]);
        assert_eq!(get("TLS-Version"), ["TLSv1.3"]);
        assert!(get("User").is_empty());
    }

    #[test]
    fn learn_replies() {
        assert_eq!(
            parse_learned(200, "OK", br#"{"success":true}"#),
            Ok(Learned::Yes)
        );
        assert!(matches!(
            parse_learned(
                208,
                "",
                br#"{"error":"<x> has been already learned as spam, ignore it"}"#
            ),
            Ok(Learned::Skipped(_))
        ));
        // What rspamd 3.4 answers for a short message: the reason is in the status line.
        let short = "<m2@x> contains less tokens than required for bayes classifier: 7 < 11";
        assert_eq!(
            parse_learned(204, short, b""),
            Ok(Learned::Skipped(short.into()))
        );
        assert!(matches!(
            parse_learned(404, "", br#"{"error":"too few tokens"}"#),
            Ok(Learned::Skipped(_))
        ));
        assert!(parse_learned(500, "", b"garbage").is_err());
        assert!(parse_learned(200, "OK", b"{}").is_err());
    }
}
