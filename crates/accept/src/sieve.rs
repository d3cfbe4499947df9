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
            &|_, _| None,
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
    fn garbage_is_no_panic() {
        let m = SieveMessage::new(b"\xff\xfe not a message");
        let _ = m.header_values("subject");
        let _ = m.addresses("from");
        let _ = m.body(&BodyTransform::Text);
    }
}
