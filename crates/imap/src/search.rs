//! SEARCH keys (RFC 9051 §6.4.4, RFC 7162 §3.1.5 MODSEQ) and their evaluation against one
//! message. Pure: the session loads a message's text (`SearchText`) only when a key needs it.
//! Text keys match case-insensitively, as substrings, against the raw and the MIME-decoded
//! header values and the decoded text parts.

use mail_parser::{HeaderValue, MessageParser, PartType};

use crate::command::{Parser, SequenceSet};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SearchKey {
    All,
    /// A system flag or keyword set (`true`) or not set (`false`).
    Flag(String, bool),
    /// `\Recent` in this session (RFC 3501; RFC 9051 drops it). NEW is RECENT UNSEEN, OLD is
    /// NOT RECENT.
    Recent,
    Header(String, String),
    Body(String),
    Text(String),
    /// Internal date, days since 1970.
    Before(i64),
    On(i64),
    Since(i64),
    SentBefore(i64),
    SentOn(i64),
    SentSince(i64),
    Larger(u64),
    Smaller(u64),
    Uid(SequenceSet),
    Seq(SequenceSet),
    ModSeq(u64),
    Not(Box<SearchKey>),
    Or(Box<SearchKey>, Box<SearchKey>),
    And(Vec<SearchKey>),
}

impl SearchKey {
    /// One search key; nested keys (lists, NOT, OR) count against `command::MAX_NESTING`.
    pub(crate) fn parse(p: &mut Parser<'_>) -> Result<SearchKey, String> {
        p.enter()?;
        let key = SearchKey::parse_one(p);
        p.leave();
        key
    }

    fn parse_one(p: &mut Parser<'_>) -> Result<SearchKey, String> {
        if p.peek() == Some(b'(') {
            let mut keys = p.list(SearchKey::parse)?;
            if keys.is_empty() {
                return Err("empty search key list".into());
            }
            return Ok(if keys.len() == 1 {
                keys.remove(0)
            } else {
                SearchKey::And(keys)
            });
        }
        if p.peek().is_some_and(|b| b.is_ascii_digit() || b == b'*') {
            return Ok(SearchKey::Seq(p.sequence_set()?));
        }
        let word = p.atom()?.to_ascii_uppercase();
        let flag = |f: &str, set| Ok(SearchKey::Flag(f.to_string(), set));
        let string = |p: &mut Parser<'_>| -> Result<String, String> {
            p.sp()?;
            p.astring_text()
        };
        let date = |p: &mut Parser<'_>| -> Result<i64, String> {
            p.sp()?;
            p.date()
        };
        match word.as_str() {
            "ALL" => Ok(SearchKey::All),
            "ANSWERED" => flag("\\Answered", true),
            "DELETED" => flag("\\Deleted", true),
            "DRAFT" => flag("\\Draft", true),
            "FLAGGED" => flag("\\Flagged", true),
            "SEEN" => flag("\\Seen", true),
            "OLD" => Ok(SearchKey::Not(Box::new(SearchKey::Recent))),
            "UNANSWERED" => flag("\\Answered", false),
            "UNDELETED" => flag("\\Deleted", false),
            "UNDRAFT" => flag("\\Draft", false),
            "UNFLAGGED" => flag("\\Flagged", false),
            "UNSEEN" => flag("\\Seen", false),
            "RECENT" => Ok(SearchKey::Recent),
            "NEW" => Ok(SearchKey::And(vec![
                SearchKey::Recent,
                SearchKey::Flag("\\Seen".into(), false),
            ])),
            "KEYWORD" => Ok(SearchKey::Flag(string(p)?, true)),
            "UNKEYWORD" => Ok(SearchKey::Flag(string(p)?, false)),
            "FROM" | "TO" | "CC" | "BCC" | "SUBJECT" => {
                Ok(SearchKey::Header(word.to_ascii_lowercase(), string(p)?))
            }
            "HEADER" => {
                let name = string(p)?.to_ascii_lowercase();
                Ok(SearchKey::Header(name, string(p)?))
            }
            "BODY" => Ok(SearchKey::Body(string(p)?)),
            "TEXT" => Ok(SearchKey::Text(string(p)?)),
            "BEFORE" => Ok(SearchKey::Before(date(p)?)),
            "ON" => Ok(SearchKey::On(date(p)?)),
            "SINCE" => Ok(SearchKey::Since(date(p)?)),
            "SENTBEFORE" => Ok(SearchKey::SentBefore(date(p)?)),
            "SENTON" => Ok(SearchKey::SentOn(date(p)?)),
            "SENTSINCE" => Ok(SearchKey::SentSince(date(p)?)),
            "LARGER" | "SMALLER" => {
                p.sp()?;
                let n = p.number()?;
                Ok(if word == "LARGER" {
                    SearchKey::Larger(n)
                } else {
                    SearchKey::Smaller(n)
                })
            }
            "UID" => {
                p.sp()?;
                Ok(SearchKey::Uid(p.sequence_set()?))
            }
            "MODSEQ" => {
                p.sp()?;
                // Optional entry name and type (RFC 7162 §3.1.5): accepted, not used.
                if p.peek() == Some(b'"') {
                    p.string()?;
                    p.sp()?;
                    p.atom()?;
                    p.sp()?;
                }
                Ok(SearchKey::ModSeq(p.number()?))
            }
            "NOT" => {
                p.sp()?;
                Ok(SearchKey::Not(Box::new(SearchKey::parse(p)?)))
            }
            "OR" => {
                p.sp()?;
                let a = SearchKey::parse(p)?;
                p.sp()?;
                let b = SearchKey::parse(p)?;
                Ok(SearchKey::Or(Box::new(a), Box::new(b)))
            }
            other => Err(format!("unknown search key {other}")),
        }
    }

    /// Whether evaluating needs the message's text (headers, body, sent date).
    pub fn needs_text(&self) -> bool {
        match self {
            SearchKey::Header(..)
            | SearchKey::Body(_)
            | SearchKey::Text(_)
            | SearchKey::SentBefore(_)
            | SearchKey::SentOn(_)
            | SearchKey::SentSince(_) => true,
            SearchKey::Not(k) => k.needs_text(),
            SearchKey::Or(a, b) => a.needs_text() || b.needs_text(),
            SearchKey::And(keys) => keys.iter().any(SearchKey::needs_text),
            _ => false,
        }
    }

    /// Whether evaluating needs the message body (BODY, TEXT); else the header is enough.
    pub fn needs_body(&self) -> bool {
        match self {
            SearchKey::Body(_) | SearchKey::Text(_) => true,
            SearchKey::Not(k) => k.needs_body(),
            SearchKey::Or(a, b) => a.needs_body() || b.needs_body(),
            SearchKey::And(keys) => keys.iter().any(SearchKey::needs_body),
            _ => false,
        }
    }

    /// Whether the key uses MODSEQ (the answer then carries `(MODSEQ n)`, RFC 7162 §3.1.5).
    pub fn uses_modseq(&self) -> bool {
        match self {
            SearchKey::ModSeq(_) => true,
            SearchKey::Not(k) => k.uses_modseq(),
            SearchKey::Or(a, b) => a.uses_modseq() || b.uses_modseq(),
            SearchKey::And(keys) => keys.iter().any(SearchKey::uses_modseq),
            _ => false,
        }
    }

    pub fn matches(&self, m: &Candidate<'_>) -> bool {
        let day = m.meta.internal_date.div_euclid(86400);
        let text = || m.text.unwrap_or(&EMPTY);
        match self {
            SearchKey::All => true,
            SearchKey::Flag(f, set) => {
                m.meta.flags.iter().any(|x| x.eq_ignore_ascii_case(f)) == *set
            }
            SearchKey::Recent => m.meta.recent,
            SearchKey::Header(name, value) => {
                let v = value.to_lowercase();
                text()
                    .headers
                    .iter()
                    .any(|(n, h)| n == name && h.contains(&v))
            }
            SearchKey::Body(s) => text().body.contains(&s.to_lowercase()),
            SearchKey::Text(s) => {
                let s = s.to_lowercase();
                text().body.contains(&s) || text().headers.iter().any(|(_, h)| h.contains(&s))
            }
            SearchKey::Before(d) => day < *d,
            SearchKey::On(d) => day == *d,
            SearchKey::Since(d) => day >= *d,
            SearchKey::SentBefore(d) => text().sent_day.is_some_and(|s| s < *d),
            SearchKey::SentOn(d) => text().sent_day == Some(*d),
            SearchKey::SentSince(d) => text().sent_day.is_some_and(|s| s >= *d),
            SearchKey::Larger(n) => m.meta.size > *n,
            SearchKey::Smaller(n) => m.meta.size < *n,
            SearchKey::Uid(set) => set.contains(m.meta.uid, m.largest_uid),
            SearchKey::Seq(set) => set.contains(m.seq, m.largest_seq),
            SearchKey::ModSeq(n) => m.meta.modseq >= *n,
            SearchKey::Not(k) => !k.matches(m),
            SearchKey::Or(a, b) => a.matches(m) || b.matches(m),
            SearchKey::And(keys) => keys.iter().all(|k| k.matches(m)),
        }
    }
}

static EMPTY: SearchText = SearchText {
    headers: Vec::new(),
    body: String::new(),
    sent_day: None,
};

/// What SEARCH knows of a message without reading it.
#[derive(Debug, Clone, Copy)]
pub struct MessageFacts<'a> {
    pub uid: u32,
    pub modseq: u64,
    pub flags: &'a [String],
    pub internal_date: i64,
    pub size: u64,
    /// `\Recent` in this session (IMAP4rev1).
    pub recent: bool,
}

/// One message as SEARCH sees it.
pub struct Candidate<'a> {
    pub seq: u32,
    pub largest_seq: u32,
    pub largest_uid: u32,
    pub meta: MessageFacts<'a>,
    /// Loaded when `needs_text`.
    pub text: Option<&'a SearchText>,
}

/// What text keys search, lower-cased.
#[derive(Debug, Default)]
pub struct SearchText {
    /// (lower-case field name, raw and decoded value).
    pub headers: Vec<(String, String)>,
    /// Decoded text and HTML parts.
    pub body: String,
    /// The Date header's day, in its own time zone (RFC 9051: time and zone disregarded).
    pub sent_day: Option<i64>,
}

impl SearchText {
    pub fn new(raw: &[u8]) -> SearchText {
        let Some(msg) = MessageParser::default().parse(raw) else {
            return SearchText {
                body: String::from_utf8_lossy(raw).to_lowercase(),
                ..SearchText::default()
            };
        };
        let mut headers = Vec::new();
        for h in msg.headers() {
            let mut value = raw
                .get(h.offset_start as usize..h.offset_end as usize)
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .unwrap_or_default();
            decoded(&h.value, &mut value);
            headers.push((h.name.as_str().to_ascii_lowercase(), value.to_lowercase()));
        }
        let mut body = String::new();
        for part in &msg.parts {
            if let PartType::Text(t) | PartType::Html(t) = &part.body {
                body.push_str(&t.to_lowercase());
                body.push('\n');
            }
        }
        if body.trim().is_empty() || headers.is_empty() {
            body = String::from_utf8_lossy(raw).to_lowercase();
        }
        SearchText {
            headers,
            body,
            sent_day: msg.date().map(|d| d.to_timestamp_local().div_euclid(86400)),
        }
    }
}

/// Appends the decoded form of a header value (names and addresses, decoded words).
fn decoded(v: &HeaderValue<'_>, out: &mut String) {
    let mut push = |s: &str| {
        out.push(' ');
        out.push_str(s);
    };
    match v {
        HeaderValue::Text(t) => push(t),
        HeaderValue::TextList(l) => l.iter().for_each(|t| push(t)),
        HeaderValue::Address(a) => {
            for addr in a.iter() {
                if let Some(n) = &addr.name {
                    push(n);
                }
                if let Some(e) = &addr.address {
                    push(e);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::{Command, parse};

    fn key(s: &str) -> SearchKey {
        match parse(format!("a SEARCH {s}\r\n").as_bytes()) {
            Ok((_, Command::Search { key, .. })) => key,
            other => panic!("{s}: {other:?}"),
        }
    }

    struct Meta(u32, Vec<String>, i64, u64);

    fn meta(uid: u32, flags: &[&str], date: i64, size: u64) -> Meta {
        Meta(
            uid,
            flags.iter().map(|f| f.to_string()).collect(),
            date,
            size,
        )
    }

    fn hit(k: &SearchKey, m: &Meta, seq: u32, text: Option<&SearchText>) -> bool {
        k.matches(&Candidate {
            seq,
            largest_seq: 3,
            largest_uid: 30,
            meta: MessageFacts {
                uid: m.0,
                modseq: u64::from(m.0) * 10,
                flags: &m.1,
                internal_date: m.2,
                size: m.3,
                recent: m.0 == 20,
            },
            text,
        })
    }

    const RAW: &[u8] = b"From: =?utf-8?q?J=C3=B6rg?= <joerg@example.org>\r\nTo: bob@example.net\r\nSubject: Quarterly Report\r\nDate: Mon, 7 Feb 1994 21:52:25 -0800\r\nX-Tag: blue\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nThe numbers are =C3=BCber good.\r\n";

    #[test]
    fn flags_sizes_dates_and_sets() {
        let m = meta(20, &["\\Seen", "$Work"], 86_400 * 10 + 5, 1000);
        let cases = [
            ("SEEN", true),
            ("UNSEEN", false),
            ("KEYWORD $work", true),
            ("UNKEYWORD $Work", false),
            ("FLAGGED", false),
            ("UNFLAGGED", true),
            ("NEW", false),
            ("RECENT", true),
            ("OLD", false),
            ("LARGER 999", true),
            ("SMALLER 1000", false),
            ("ON 11-Jan-1970", true),
            ("BEFORE 11-Jan-1970", false),
            ("SINCE 11-Jan-1970", true),
            ("UID 15:25", true),
            ("UID 21:*", false),
            ("UID 10:*", true),
            ("UID 31:*", false),
            ("2", true),
            ("3:*", false),
            ("NOT 2", false),
            ("OR 1 SEEN", true),
            ("(SEEN FLAGGED)", false),
            ("SEEN LARGER 1 NOT DELETED", true),
            ("MODSEQ 200", true),
            ("MODSEQ 201", false),
            ("ALL", true),
        ];
        for (s, want) in cases {
            let k = key(s);
            assert!(!k.needs_text(), "{s}");
            assert_eq!(hit(&k, &m, 2, None), want, "{s}");
        }
    }

    #[test]
    fn text_keys_match_raw_and_decoded() {
        let m = meta(1, &[], 0, RAW.len() as u64);
        let t = SearchText::new(RAW);
        let cases = [
            ("FROM \"jörg\"", true),
            ("FROM JOERG@example", true),
            ("TO bob", true),
            ("CC bob", false),
            ("SUBJECT \"quarterly report\"", true),
            ("HEADER X-Tag BLUE", true),
            ("HEADER X-Tag \"\"", true),
            ("HEADER X-Other \"\"", false),
            ("BODY \"über\"", true),
            ("BODY Quarterly", false),
            ("TEXT quarterly", true),
            ("TEXT numbers", true),
            ("SENTON 7-Feb-1994", true),
            ("SENTBEFORE 7-Feb-1994", false),
            ("SENTSINCE 8-Feb-1994", false),
            ("CHARSET UTF-8 BODY \"über\"", true),
        ];
        for (s, want) in cases {
            let k = key(s);
            assert!(k.needs_text(), "{s}");
            assert_eq!(hit(&k, &m, 1, Some(&t)), want, "{s}");
        }
        assert!(parse(b"a SEARCH CHARSET KOI8-R x\r\n").is_err());
        assert!(parse(b"a SEARCH BEFORE 30-Feb-2020\r\n").is_err());
        assert!(parse(b"a SEARCH OR SEEN\r\n").is_err());
    }

    #[test]
    fn unparsable_messages_are_searched_as_text() {
        let t = SearchText::new(b"\xff\xfe no headers here");
        assert!(t.body.contains("no headers"));
    }
}
