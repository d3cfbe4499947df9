//! The MIME structure of a stored message as IMAP shows it (RFC 9051 §6.4.5, §7.5.2):
//! byte ranges of every part's header and body, BODYSTRUCTURE, ENVELOPE, body sections and
//! BINARY (RFC 3516). Our own boundary scanner keeps exact offsets (section bytes and the sizes
//! in BODYSTRUCTURE must agree octet for octet); mail-parser decodes address lists and
//! encoded words. Pure; malformed MIME degrades to text, never to a panic.

use std::borrow::Cow;
use std::ops::Range;

use mail_parser::{Address, MessageParser};

use crate::command::{Section, SectionText};
use crate::response::{nstring, string};

/// Deeper nesting is shown as an opaque leaf.
const MAX_DEPTH: usize = 16;

/// One MIME entity.
#[derive(Debug, Clone)]
pub struct Part {
    /// The header including the blank line that ends it.
    pub header: Range<usize>,
    pub body: Range<usize>,
    /// Lower case.
    pub mime_type: String,
    pub subtype: String,
    pub params: Vec<(String, String)>,
    pub children: Vec<Part>,
    /// The message inside a message/rfc822 part.
    pub message: Option<Box<Part>>,
}

impl Part {
    pub fn is_multipart(&self) -> bool {
        self.mime_type == "multipart"
    }

    fn is_message(&self) -> bool {
        self.message.is_some()
    }
}

/// The structure of a whole message.
pub fn parse(raw: &[u8]) -> Part {
    entity(raw, 0..raw.len(), false, 0)
}

/// The length of an entity's header, the blank line that ends it included (all of it when
/// there is no blank line).
pub fn header_len(bytes: &[u8]) -> usize {
    if bytes.starts_with(b"\r\n") {
        return 2;
    }
    if bytes.starts_with(b"\n") {
        return 1;
    }
    let crlf = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| p + 4);
    let lf = bytes.windows(2).position(|w| w == b"\n\n").map(|p| p + 2);
    match (crlf, lf) {
        (Some(a), Some(b)) => a.min(b),
        (a, b) => a.or(b).unwrap_or(bytes.len()),
    }
}

fn entity(raw: &[u8], range: Range<usize>, digest: bool, depth: usize) -> Part {
    let split = range.start + header_len(&raw[range.clone()]);
    let header = range.start..split;
    let body = split..range.end;
    let fields = header_fields(&raw[header.clone()]);
    let (mut mime_type, mut subtype, mut params) = if digest {
        ("message".to_string(), "rfc822".to_string(), Vec::new())
    } else {
        ("text".to_string(), "plain".to_string(), Vec::new())
    };
    if let Some(v) = field(&fields, "content-type") {
        let (value, p) = parameters(&v);
        if let Some((t, s)) = value.split_once('/') {
            let (t, s) = (t.trim().to_ascii_lowercase(), s.trim().to_ascii_lowercase());
            if !t.is_empty() && !s.is_empty() {
                (mime_type, subtype, params) = (t, s, p);
            }
        }
    }
    if mime_type == "text" && !params.iter().any(|(k, _)| k == "charset") {
        params.push(("charset".into(), "us-ascii".into()));
    }
    let mut part = Part {
        header,
        body: body.clone(),
        mime_type,
        subtype,
        params,
        children: Vec::new(),
        message: None,
    };
    if depth >= MAX_DEPTH {
        return part;
    }
    if part.is_multipart() {
        let boundary = part
            .params
            .iter()
            .find(|(k, _)| k == "boundary")
            .map(|(_, v)| v.clone());
        let children = boundary
            .map(|b| split_multipart(raw, body, b.as_bytes()))
            .unwrap_or_default();
        if children.is_empty() {
            // A multipart without parts cannot be shown as one (RFC 2046 §5.1.1 needs one).
            part.mime_type = "text".into();
            part.subtype = "plain".into();
            part.params = vec![("charset".into(), "us-ascii".into())];
        } else {
            let digest = part.subtype == "digest";
            part.children = children
                .into_iter()
                .map(|r| entity(raw, r, digest, depth + 1))
                .collect();
        }
    } else if part.mime_type == "message" && matches!(part.subtype.as_str(), "rfc822" | "global") {
        part.message = Some(Box::new(entity(raw, body, false, depth + 1)));
    }
    part
}

/// The ranges of the body parts between `--boundary` delimiter lines (RFC 2046 §5.1.1); the
/// CRLF before a delimiter belongs to the delimiter.
fn split_multipart(raw: &[u8], body: Range<usize>, boundary: &[u8]) -> Vec<Range<usize>> {
    let mut delimiter = b"--".to_vec();
    delimiter.extend_from_slice(boundary);
    let mut parts = Vec::new();
    let mut open: Option<usize> = None;
    let mut line = body.start;
    while line < body.end {
        let next = raw[line..body.end]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(body.end, |p| line + p + 1);
        let text = &raw[line..next];
        if text.starts_with(&delimiter) {
            let rest = &text[delimiter.len()..];
            let close = rest.starts_with(b"--");
            let rest = if close { &rest[2..] } else { rest };
            if rest.iter().all(|b| b.is_ascii_whitespace()) {
                if let Some(start) = open {
                    let mut end = line;
                    if raw[..end].ends_with(b"\r\n") {
                        end -= 2;
                    } else if raw[..end].ends_with(b"\n") {
                        end -= 1;
                    }
                    parts.push(start..end.max(start));
                }
                if close {
                    return parts;
                }
                open = Some(next);
            }
        }
        line = next;
    }
    if let Some(start) = open {
        parts.push(start..body.end);
    }
    parts
}

/// Header fields as (lower-case name, unfolded value) in order.
pub fn header_fields(header: &[u8]) -> Vec<(String, String)> {
    raw_fields(header)
        .into_iter()
        .filter_map(|f| {
            let text = &header[f];
            let colon = text.iter().position(|&b| b == b':')?;
            let name = String::from_utf8_lossy(&text[..colon])
                .trim()
                .to_ascii_lowercase();
            let value: Vec<u8> = text[colon + 1..]
                .iter()
                .copied()
                .filter(|&b| b != b'\r' && b != b'\n')
                .collect();
            Some((name, String::from_utf8_lossy(&value).trim().to_string()))
        })
        .collect()
}

/// Each field's bytes, folded lines and final CRLF included; the blank line is not a field.
fn raw_fields(header: &[u8]) -> Vec<Range<usize>> {
    let mut out: Vec<Range<usize>> = Vec::new();
    let mut line = 0;
    while line < header.len() {
        let next = header[line..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(header.len(), |p| line + p + 1);
        let text = &header[line..next];
        if text == b"\r\n" || text == b"\n" {
            break;
        }
        match (text.first(), out.last_mut()) {
            (Some(b' ' | b'\t'), Some(last)) => last.end = next,
            _ => out.push(line..next),
        }
        line = next;
    }
    out
}

fn field(fields: &[(String, String)], name: &str) -> Option<String> {
    fields
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.clone())
}

/// `value; a=b; c="d"` → (`value`, [(a, b), (c, d)]); names lower case.
fn parameters(v: &str) -> (String, Vec<(String, String)>) {
    let mut it = v.char_indices().peekable();
    let mut value = String::new();
    for (_, c) in it.by_ref() {
        if c == ';' {
            break;
        }
        value.push(c);
    }
    let mut params = Vec::new();
    let rest: String = it.map(|(_, c)| c).collect();
    let mut chars = rest.chars().peekable();
    loop {
        let name: String = chars
            .by_ref()
            .take_while(|&c| c != '=')
            .collect::<String>()
            .trim()
            .trim_start_matches(';')
            .trim()
            .to_ascii_lowercase();
        if name.is_empty() {
            break;
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut val = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '"' => break,
                    '\\' => val.extend(chars.next()),
                    c => val.push(c),
                }
            }
            for c in chars.by_ref() {
                if c == ';' {
                    break;
                }
            }
        } else {
            for c in chars.by_ref() {
                if c == ';' {
                    break;
                }
                val.push(c);
            }
        }
        params.push((name, val.trim().to_string()));
    }
    (value.trim().to_string(), params)
}

fn count_lines(b: &[u8]) -> usize {
    let n = b.iter().filter(|&&c| c == b'\n').count();
    if b.last().is_some_and(|&c| c != b'\n') {
        n + 1
    } else {
        n
    }
}

fn param_list(out: &mut Vec<u8>, params: &[(String, String)]) {
    if params.is_empty() {
        out.extend_from_slice(b"NIL");
        return;
    }
    out.push(b'(');
    for (i, (k, v)) in params.iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        string(out, k.as_bytes());
        out.push(b' ');
        string(out, v.as_bytes());
    }
    out.push(b')');
}

/// BODYSTRUCTURE (`extended`) or BODY (RFC 9051 §7.5.2).
pub fn body_structure(out: &mut Vec<u8>, raw: &[u8], part: &Part, extended: bool) {
    let fields = header_fields(&raw[part.header.clone()]);
    let get = |n: &str| field(&fields, n);
    out.push(b'(');
    if part.is_multipart() {
        for c in &part.children {
            body_structure(out, raw, c, extended);
        }
        out.push(b' ');
        string(out, part.subtype.as_bytes());
        if extended {
            out.push(b' ');
            param_list(out, &part.params);
            extension(out, &get);
        }
        out.push(b')');
        return;
    }
    string(out, part.mime_type.as_bytes());
    out.push(b' ');
    string(out, part.subtype.as_bytes());
    out.push(b' ');
    param_list(out, &part.params);
    out.push(b' ');
    nstring(out, get("content-id").as_deref().map(str::as_bytes));
    out.push(b' ');
    nstring(
        out,
        get("content-description").as_deref().map(str::as_bytes),
    );
    out.push(b' ');
    let encoding = get("content-transfer-encoding").unwrap_or_else(|| "7bit".into());
    string(out, encoding.to_ascii_lowercase().as_bytes());
    let body = &raw[part.body.clone()];
    out.extend_from_slice(format!(" {}", body.len()).as_bytes());
    if let Some(m) = &part.message {
        out.push(b' ');
        envelope(out, raw, m);
        out.push(b' ');
        body_structure(out, raw, m, extended);
        out.extend_from_slice(format!(" {}", count_lines(body)).as_bytes());
    } else if part.mime_type == "text" {
        out.extend_from_slice(format!(" {}", count_lines(body)).as_bytes());
    }
    if extended {
        out.push(b' ');
        nstring(out, get("content-md5").as_deref().map(str::as_bytes));
        extension(out, &get);
    }
    out.push(b')');
}

/// Disposition, language and location (RFC 9051 §7.5.2 body-ext-*).
fn extension(out: &mut Vec<u8>, get: &dyn Fn(&str) -> Option<String>) {
    out.push(b' ');
    match get("content-disposition") {
        Some(d) => {
            let (value, params) = parameters(&d);
            out.push(b'(');
            string(out, value.to_ascii_lowercase().as_bytes());
            out.push(b' ');
            param_list(out, &params);
            out.push(b')');
        }
        None => out.extend_from_slice(b"NIL"),
    }
    out.push(b' ');
    match get("content-language") {
        Some(l) => {
            out.push(b'(');
            for (i, tag) in l.split(',').map(str::trim).enumerate() {
                if i > 0 {
                    out.push(b' ');
                }
                string(out, tag.as_bytes());
            }
            out.push(b')');
        }
        None => out.extend_from_slice(b"NIL"),
    }
    out.push(b' ');
    nstring(out, get("content-location").as_deref().map(str::as_bytes));
}

/// ENVELOPE of the message whose root is `part` (RFC 9051 §7.5.2).
pub fn envelope(out: &mut Vec<u8>, raw: &[u8], part: &Part) {
    let header = &raw[part.header.clone()];
    let fields = header_fields(header);
    let get = |n: &str| field(&fields, n);
    let parsed = MessageParser::default().parse_headers(header);
    out.push(b'(');
    nstring(out, get("date").as_deref().map(str::as_bytes));
    out.push(b' ');
    nstring(out, get("subject").as_deref().map(str::as_bytes));
    let addresses = |name: &str| {
        parsed.as_ref().and_then(|m| match name {
            "from" => m.from(),
            "sender" => m.sender(),
            "reply-to" => m.reply_to(),
            "to" => m.to(),
            "cc" => m.cc(),
            _ => m.bcc(),
        })
    };
    let from = addresses("from");
    for name in ["from", "sender", "reply-to", "to", "cc", "bcc"] {
        out.push(b' ');
        // RFC 9051 §7.5.2: sender and reply-to default to from.
        let list = match addresses(name) {
            None if name == "sender" || name == "reply-to" => from,
            other => other,
        };
        address_list(out, list);
    }
    out.push(b' ');
    nstring(out, get("in-reply-to").as_deref().map(str::as_bytes));
    out.push(b' ');
    nstring(out, get("message-id").as_deref().map(str::as_bytes));
    out.push(b')');
}

fn address_list(out: &mut Vec<u8>, list: Option<&Address<'_>>) {
    let Some(list) = list else {
        out.extend_from_slice(b"NIL");
        return;
    };
    let mut inner = Vec::new();
    match list {
        Address::List(addrs) => {
            for a in addrs {
                address(&mut inner, a.name.as_deref(), a.address.as_deref());
            }
        }
        Address::Group(groups) => {
            for g in groups {
                if let Some(name) = &g.name {
                    // Group start (NIL NIL "name" NIL) … group end (NIL NIL NIL NIL).
                    inner.extend_from_slice(b"(NIL NIL ");
                    string(&mut inner, name.as_bytes());
                    inner.extend_from_slice(b" NIL)");
                }
                for a in &g.addresses {
                    address(&mut inner, a.name.as_deref(), a.address.as_deref());
                }
                if g.name.is_some() {
                    inner.extend_from_slice(b"(NIL NIL NIL NIL)");
                }
            }
        }
    }
    if inner.is_empty() {
        out.extend_from_slice(b"NIL");
    } else {
        out.push(b'(');
        out.extend_from_slice(&inner);
        out.push(b')');
    }
}

fn address(out: &mut Vec<u8>, name: Option<&str>, addr: Option<&str>) {
    let Some(addr) = addr else { return };
    let (mailbox, host) = addr.rsplit_once('@').unwrap_or((addr, ""));
    // An obsolete source route (`@route:user@domain`, RFC 5322 §4.4) is the adl.
    let (adl, mailbox) = match mailbox.strip_prefix('@').and_then(|m| m.split_once(':')) {
        Some((route, user)) => (Some(format!("@{route}")), user),
        None => (None, mailbox),
    };
    out.push(b'(');
    match name.filter(|n| !n.is_empty()) {
        // Decoded names go back on the wire as an encoded word (RFC 2047), 7-bit as in the
        // original header.
        Some(n) if !n.is_ascii() => string(out, encoded_word(n).as_bytes()),
        Some(n) => string(out, n.as_bytes()),
        None => out.extend_from_slice(b"NIL"),
    }
    out.push(b' ');
    nstring(out, adl.as_deref().map(str::as_bytes));
    out.push(b' ');
    string(out, mailbox.as_bytes());
    out.push(b' ');
    string(out, host.as_bytes());
    out.push(b')');
}

/// `=?utf-8?q?…?=` (RFC 2047 §4.2): letters and digits as they are, space as `_`, the rest
/// as `=XX`.
fn encoded_word(text: &str) -> String {
    let mut out = String::from("=?utf-8?q?");
    for b in text.bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'-' => out.push(char::from(b)),
            b' ' => out.push('_'),
            _ => out.push_str(&format!("={b:02X}")),
        }
    }
    out.push_str("?=");
    out
}

/// Why a section cannot be fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SectionError {
    /// No such part (the answer is an empty string, as most servers do).
    NoPart,
    /// BINARY of a part whose Content-Transfer-Encoding is unknown (RFC 3516 `UNKNOWN-CTE`).
    UnknownEncoding,
}

/// Follows a part path (RFC 9051 §6.4.5): in a multipart, N is the Nth child; a non-multipart
/// message has a single part 1, its body; a message/rfc822 part's numbers continue into the
/// message it holds.
fn locate<'p>(root: &'p Part, path: &[u32]) -> Option<&'p Part> {
    let mut container = root;
    let mut target = root;
    for (i, &n) in path.iter().enumerate() {
        target = if container.is_multipart() {
            container.children.get(n as usize - 1)?
        } else if n == 1 {
            container
        } else {
            return None;
        };
        if i + 1 < path.len() {
            container = match &target.message {
                Some(m) => m,
                None if target.is_multipart() => target,
                None => return None,
            };
        }
    }
    Some(target)
}

/// The bytes of a BODY[section].
pub fn section<'a>(raw: &'a [u8], root: &Part, s: &Section) -> Result<Cow<'a, [u8]>, SectionError> {
    let target = if s.part.is_empty() {
        root
    } else {
        locate(root, &s.part).ok_or(SectionError::NoPart)?
    };
    // HEADER, TEXT and HEADER.FIELDS address a message: the root, or a message/rfc822 part.
    let message = || -> Result<&Part, SectionError> {
        if s.part.is_empty() {
            Ok(root)
        } else {
            target.message.as_deref().ok_or(SectionError::NoPart)
        }
    };
    Ok(match &s.text {
        None if s.part.is_empty() => Cow::Borrowed(raw),
        None => Cow::Borrowed(&raw[target.body.clone()]),
        Some(SectionText::Mime) => Cow::Borrowed(&raw[target.header.clone()]),
        Some(SectionText::Header) => Cow::Borrowed(&raw[message()?.header.clone()]),
        Some(SectionText::Text) => Cow::Borrowed(&raw[message()?.body.clone()]),
        Some(SectionText::HeaderFields { not, fields }) => {
            let header = &raw[message()?.header.clone()];
            let mut out = Vec::new();
            for f in raw_fields(header) {
                let text = &header[f];
                let name = text
                    .iter()
                    .position(|&b| b == b':')
                    .map(|c| String::from_utf8_lossy(&text[..c]).trim().to_string())
                    .unwrap_or_default();
                let listed = fields.iter().any(|w| w.eq_ignore_ascii_case(&name));
                if listed != *not {
                    out.extend_from_slice(text);
                }
            }
            out.extend_from_slice(b"\r\n");
            Cow::Owned(out)
        }
    })
}

/// BINARY[part] (RFC 3516): the part's body with its transfer encoding undone.
pub fn binary<'a>(raw: &'a [u8], root: &Part, path: &[u32]) -> Result<Cow<'a, [u8]>, SectionError> {
    if path.is_empty() {
        return Ok(Cow::Borrowed(raw));
    }
    let target = locate(root, path).ok_or(SectionError::NoPart)?;
    if target.is_multipart() || target.is_message() {
        return Ok(Cow::Borrowed(&raw[target.body.clone()]));
    }
    let fields = header_fields(&raw[target.header.clone()]);
    let body = &raw[target.body.clone()];
    let encoding = field(&fields, "content-transfer-encoding")
        .unwrap_or_default()
        .to_ascii_lowercase();
    match encoding.as_str() {
        "" | "7bit" | "8bit" | "binary" => Ok(Cow::Borrowed(body)),
        "base64" => {
            let compact: Vec<u8> = body
                .iter()
                .copied()
                .filter(|b| !b.is_ascii_whitespace())
                .collect();
            mail_parser::decoders::base64::base64_decode(&compact)
                .map(Cow::Owned)
                .ok_or(SectionError::UnknownEncoding)
        }
        "quoted-printable" => {
            mail_parser::decoders::quoted_printable::quoted_printable_decode(body)
                .map(Cow::Owned)
                .ok_or(SectionError::UnknownEncoding)
        }
        _ => Err(SectionError::UnknownEncoding),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NESTED: &[u8] = b"From: Alice <alice@example.org>\r\n\
To: Bob <bob@example.net>, undisclosed-recipients:;\r\n\
Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n\
Date: Mon, 7 Feb 1994 21:52:25 -0800\r\n\
Message-ID: <1@example.org>\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"outer\"\r\n\
\r\n\
preamble\r\n\
--outer\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
\r\n\
Hello\r\nworld\r\n\
--outer\r\n\
Content-Type: message/rfc822\r\n\
Content-Disposition: attachment; filename=\"fwd.eml\"\r\n\
\r\n\
From: carol@example.com\r\n\
Subject: inner\r\n\
Content-Type: multipart/alternative; boundary=inner\r\n\
\r\n\
--inner\r\n\
\r\n\
plain\r\n\
--inner\r\n\
Content-Type: text/html\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
PGI+aGk8L2I+\r\n\
--inner--\r\n\
--outer--\r\n\
epilogue\r\n";

    fn text(s: &Section) -> String {
        let root = parse(NESTED);
        String::from_utf8(section(NESTED, &root, s).unwrap().into_owned()).unwrap()
    }

    fn sec(part: &[u32], t: Option<SectionText>) -> Section {
        Section {
            part: part.to_vec(),
            text: t,
        }
    }

    #[test]
    fn structure_and_sections() {
        let root = parse(NESTED);
        assert_eq!(root.children.len(), 2);
        assert_eq!(text(&sec(&[1], None)), "Hello\r\nworld");
        assert_eq!(
            text(&sec(&[1], Some(SectionText::Mime))),
            "Content-Type: text/plain; charset=utf-8\r\n\r\n"
        );
        assert_eq!(
            text(&sec(&[2], Some(SectionText::Header))),
            "From: carol@example.com\r\nSubject: inner\r\nContent-Type: multipart/alternative; boundary=inner\r\n\r\n"
        );
        assert_eq!(text(&sec(&[2, 1], None)), "plain");
        assert_eq!(text(&sec(&[2, 2], None)), "PGI+aGk8L2I+");
        assert!(text(&sec(&[2], None)).starts_with("From: carol"));
        assert!(text(&sec(&[2], None)).ends_with("--inner--"));
        assert_eq!(
            text(&sec(
                &[],
                Some(SectionText::HeaderFields {
                    not: false,
                    fields: vec!["subject".into(), "message-id".into()]
                })
            )),
            "Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\nMessage-ID: <1@example.org>\r\n\r\n"
        );
        assert!(
            !text(&sec(
                &[],
                Some(SectionText::HeaderFields {
                    not: true,
                    fields: vec!["subject".into()]
                })
            ))
            .contains("Subject")
        );
        assert_eq!(
            text(&sec(&[], Some(SectionText::Text))).lines().next(),
            Some("preamble")
        );
        assert_eq!(
            section(NESTED, &root, &sec(&[3], None)),
            Err(SectionError::NoPart)
        );
        assert_eq!(
            section(NESTED, &root, &sec(&[1, 1], None)),
            Err(SectionError::NoPart)
        );
        assert_eq!(
            section(NESTED, &root, &sec(&[1], Some(SectionText::Header))),
            Err(SectionError::NoPart)
        );
        assert_eq!(
            binary(NESTED, &root, &[2, 2]).unwrap().as_ref(),
            b"<b>hi</b>"
        );
        assert_eq!(
            binary(NESTED, &root, &[1]).unwrap().as_ref(),
            b"Hello\r\nworld"
        );
    }

    #[test]
    fn bodystructure_and_envelope() {
        let root = parse(NESTED);
        let mut out = Vec::new();
        body_structure(&mut out, NESTED, &root, true);
        let s = String::from_utf8(out).unwrap();
        assert_eq!(
            s,
            "((\"text\" \"plain\" (\"charset\" \"utf-8\") NIL NIL \"7bit\" 12 2 NIL NIL NIL NIL)\
(\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 208 \
(NIL \"inner\" ((NIL NIL \"carol\" \"example.com\")) ((NIL NIL \"carol\" \"example.com\")) ((NIL NIL \"carol\" \"example.com\")) NIL NIL NIL NIL NIL) \
((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 5 1 NIL NIL NIL NIL)\
(\"text\" \"html\" (\"charset\" \"us-ascii\") NIL NIL \"base64\" 12 1 NIL NIL NIL NIL) \"alternative\" (\"boundary\" \"inner\") NIL NIL NIL) 13 \
NIL (\"attachment\" (\"filename\" \"fwd.eml\")) NIL NIL) \
\"mixed\" (\"boundary\" \"outer\") NIL NIL NIL)"
        );
        assert_eq!(root.children[1].body.len(), 208);
        let mut out = Vec::new();
        envelope(&mut out, NESTED, &root);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "(\"Mon, 7 Feb 1994 21:52:25 -0800\" \"=?utf-8?q?Gr=C3=BC=C3=9Fe?=\" \
((\"Alice\" NIL \"alice\" \"example.org\")) ((\"Alice\" NIL \"alice\" \"example.org\")) \
((\"Alice\" NIL \"alice\" \"example.org\")) \
((\"Bob\" NIL \"bob\" \"example.net\")(NIL NIL \"undisclosed-recipients\" NIL)(NIL NIL NIL NIL)) \
NIL NIL NIL \"<1@example.org>\")"
        );
    }

    #[test]
    fn source_routes_are_the_adl() {
        let raw = b"From: <@route:user@domain>\r\n\r\n";
        let mut out = Vec::new();
        envelope(&mut out, raw, &parse(raw));
        let env = String::from_utf8(out).unwrap();
        assert!(
            env.contains("((NIL \"@route\" \"user\" \"domain\"))"),
            "{env}"
        );
    }

    #[test]
    fn non_ascii_names_become_encoded_words() {
        assert_eq!(encoded_word("Jörg M."), "=?utf-8?q?J=C3=B6rg_M.?=");
        let raw = "From: =?utf-8?q?J=C3=B6rg?= <j@example.org>\r\n\r\n".as_bytes();
        let mut out = Vec::new();
        envelope(&mut out, raw, &parse(raw));
        let env = String::from_utf8(out).unwrap();
        assert!(
            env.contains("((\"=?utf-8?q?J=C3=B6rg?=\" NIL \"j\" \"example.org\"))"),
            "{env}"
        );
    }

    #[test]
    fn simple_and_odd_messages() {
        for raw in [
            &b"Subject: x\r\n\r\nbody"[..],
            b"no header at all",
            b"\r\nbody only",
            b"Content-Type: multipart/mixed\r\n\r\nno boundary",
            b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nunterminated",
            b"Content-Type: /\r\n\r\n",
            b"",
        ] {
            let root = parse(raw);
            let mut out = Vec::new();
            body_structure(&mut out, raw, &root, true);
            envelope(&mut out, raw, &root);
            let _ = section(raw, &root, &sec(&[1], None));
            let _ = binary(raw, &root, &[1, 2, 3]);
        }
        let raw = b"Subject: x\r\n\r\nbody";
        let root = parse(raw);
        assert_eq!(
            section(raw, &root, &sec(&[1], None)).unwrap().as_ref(),
            b"body"
        );
        assert_eq!(
            section(raw, &root, &sec(&[], Some(SectionText::Header)))
                .unwrap()
                .as_ref(),
            b"Subject: x\r\n\r\n"
        );
        let deep: Vec<u8> = (0..100)
            .flat_map(|_| b"Content-Type: message/rfc822\r\n\r\n".to_vec())
            .collect();
        let root = parse(&deep);
        let mut out = Vec::new();
        body_structure(&mut out, &deep, &root, true);
    }
}
