//! The outbound client's protocol, I/O-free (RFC 5321 §3, §4): parsing the server's replies,
//! reading the EHLO extensions (RFC 2920 PIPELINING, RFC 1870 SIZE, RFC 6152 8BITMIME, RFC 6531
//! SMTPUTF8, RFC 3030 CHUNKING, RFC 3207 STARTTLS, RFC 3461 DSN, RFC 8689 REQUIRETLS), building
//! the commands of one transaction, and framing the message (dot-stuffing or BDAT). The async
//! driver is `client_driver`.

use std::fmt;

/// A reply the server sent: code, enhanced status if given (RFC 2034), text lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerReply {
    pub code: u16,
    pub enhanced: Option<String>,
    pub lines: Vec<String>,
}

impl ServerReply {
    pub fn is_positive(&self) -> bool {
        (200..400).contains(&self.code)
    }

    /// 5xx: the server refuses for good (RFC 5321 §4.2.1).
    pub fn is_permanent(&self) -> bool {
        self.code >= 500
    }

    /// The enhanced status, or one derived from the basic code (RFC 3463 §3.1).
    pub fn status(&self) -> String {
        self.enhanced
            .clone()
            .unwrap_or_else(|| format!("{}.0.0", self.code / 100))
    }
}

impl fmt::Display for ServerReply {
    /// `550 5.1.1 no such user` on one line (lines joined by spaces), for logs and bounces.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.code)?;
        if let Some(e) = &self.enhanced {
            write!(f, " {e}")?;
        }
        for l in &self.lines {
            if !l.is_empty() {
                write!(f, " {l}")?;
            }
        }
        Ok(())
    }
}

/// The server said something that is not SMTP.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the server's reply is not SMTP: {0}")]
pub struct ReplyError(pub String);

/// A reply may have at most this many lines (a hostile server cannot make us buffer forever).
const MAX_REPLY_LINES: usize = 200;

/// Collects reply lines (`250-…` continued, `250 …` last) into replies.
#[derive(Debug, Default)]
pub struct ReplyParser {
    code: Option<u16>,
    lines: Vec<String>,
}

impl ReplyParser {
    /// One line without its CRLF. Returns the reply when this line was its last.
    pub fn push_line(&mut self, line: &[u8]) -> Result<Option<ServerReply>, ReplyError> {
        let text = String::from_utf8_lossy(line);
        let bytes = text.as_bytes();
        if bytes.len() < 3 || !bytes[..3].iter().all(u8::is_ascii_digit) {
            return Err(ReplyError(format!("{:?}", truncate(&text))));
        }
        let code: u16 = text[..3]
            .parse()
            .map_err(|_| ReplyError(truncate(&text).into()))?;
        if !(200..600).contains(&code) {
            return Err(ReplyError(format!("reply code {code}")));
        }
        if self.code.is_some_and(|c| c != code) {
            return Err(ReplyError(format!(
                "reply code changed within a multi-line reply: {:?}",
                truncate(&text)
            )));
        }
        let (last, rest) = match bytes.get(3) {
            None => (true, ""),
            Some(b' ') => (true, &text[4..]),
            Some(b'-') => (false, &text[4..]),
            Some(_) => return Err(ReplyError(format!("{:?}", truncate(&text)))),
        };
        self.code = Some(code);
        self.lines.push(rest.to_string());
        if self.lines.len() > MAX_REPLY_LINES {
            return Err(ReplyError("a reply of too many lines".into()));
        }
        if !last {
            return Ok(None);
        }
        let mut lines = std::mem::take(&mut self.lines);
        self.code = None;
        // RFC 2034 §4: the enhanced code leads every line of a reply that has one.
        let enhanced = enhanced_code(&lines[0], code);
        if let Some(e) = &enhanced {
            for l in &mut lines {
                if let Some(rest) = l.strip_prefix(e.as_str()) {
                    *l = rest.trim_start().to_string();
                }
            }
        }
        Ok(Some(ServerReply {
            code,
            enhanced,
            lines,
        }))
    }
}

fn truncate(s: &str) -> &str {
    match s.char_indices().nth(100) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// `5.1.1` at the start of `text`, if its class matches the reply code's first digit.
fn enhanced_code(text: &str, code: u16) -> Option<String> {
    let word = text.split(' ').next()?;
    let mut parts = word.split('.');
    let class = parts.next()?;
    let subject = parts.next()?;
    let detail = parts.next()?;
    let ok = parts.next().is_none()
        && class == (code / 100).to_string()
        && matches!(class, "2" | "4" | "5")
        && (1..=3).contains(&subject.len())
        && (1..=3).contains(&detail.len())
        && subject
            .bytes()
            .chain(detail.bytes())
            .all(|b| b.is_ascii_digit());
    ok.then(|| word.to_string())
}

/// What the server announced in its EHLO reply.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Extensions {
    /// True if the server answered EHLO at all (false after a HELO fallback).
    pub esmtp: bool,
    pub pipelining: bool,
    /// `SIZE` with its limit (0 = announced without a limit).
    pub size: Option<u64>,
    pub eight_bit_mime: bool,
    pub smtputf8: bool,
    pub chunking: bool,
    pub starttls: bool,
    pub dsn: bool,
    pub requiretls: bool,
}

impl Extensions {
    /// From the EHLO reply: the first line is the greeting, each further line a keyword with
    /// parameters (RFC 5321 §4.1.1.1).
    pub fn from_ehlo(reply: &ServerReply) -> Extensions {
        let mut ext = Extensions {
            esmtp: true,
            ..Extensions::default()
        };
        for line in reply.lines.iter().skip(1) {
            let mut words = line.split_ascii_whitespace();
            let Some(keyword) = words.next() else {
                continue;
            };
            match keyword.to_ascii_uppercase().as_str() {
                "PIPELINING" => ext.pipelining = true,
                "SIZE" => ext.size = Some(words.next().and_then(|n| n.parse().ok()).unwrap_or(0)),
                "8BITMIME" => ext.eight_bit_mime = true,
                "SMTPUTF8" => ext.smtputf8 = true,
                "CHUNKING" => ext.chunking = true,
                "STARTTLS" => ext.starttls = true,
                "DSN" => ext.dsn = true,
                "REQUIRETLS" => ext.requiretls = true,
                _ => {}
            }
        }
        ext
    }
}

/// The outcome of one transaction: per recipient the server's reply, and the reply to the
/// message itself if any recipient was accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionResult {
    pub recipients: Vec<(String, ServerReply)>,
    pub message: Option<ServerReply>,
}

/// One transaction's envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// Reverse path, empty for bounces.
    pub from: String,
    /// Recipients with their RFC 3461 parameters as received (`NOTIFY=… ORCPT=…`), if any.
    pub recipients: Vec<(String, Option<String>)>,
    /// RFC 8689: the message must travel over verified TLS only.
    pub require_tls: bool,
    /// RFC 3461 MAIL parameters (`RET=… ENVID=…`), if any: passed on to a server with DSN.
    pub dsn: Option<String>,
}

/// Why a transaction cannot be attempted with this server at all; the same for every retry, so
/// a permanent failure (RFC 6531 §3.5, RFC 6152 §3, RFC 8689 §4.2.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: &'static str,
    pub reason: String,
}

/// What the message needs from the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyNeeds {
    pub size: u64,
    /// A byte ≥ 0x80 in the message.
    pub eight_bit: bool,
}

impl BodyNeeds {
    pub fn of(body: &[u8]) -> BodyNeeds {
        BodyNeeds {
            size: body.len() as u64,
            eight_bit: body.iter().any(|b| *b >= 0x80),
        }
    }
}

/// The MAIL FROM command for `env`, or why this server cannot take the message.
pub fn mail_command(env: &Envelope, body: BodyNeeds, ext: &Extensions) -> Result<String, Refusal> {
    let utf8_address = !env.from.is_ascii() || env.recipients.iter().any(|(r, _)| !r.is_ascii());
    if utf8_address && !ext.smtputf8 {
        return Err(Refusal {
            status: "5.6.7",
            reason: "the message has a non-ASCII address and the receiving server does not support SMTPUTF8 (RFC 6531)".into(),
        });
    }
    if let Some(limit) = ext.size.filter(|l| *l > 0)
        && body.size > limit
    {
        return Err(Refusal {
            status: "5.3.4",
            reason: format!(
                "the message ({} bytes) is larger than the receiving server accepts ({limit} bytes)",
                body.size
            ),
        });
    }
    if env.require_tls && !ext.requiretls {
        return Err(Refusal {
            status: "5.7.30",
            reason: "the sender asked for REQUIRETLS and the receiving server does not support it (RFC 8689)".into(),
        });
    }
    let mut cmd = format!("MAIL FROM:<{}>", env.from);
    if ext.size.is_some() {
        cmd.push_str(&format!(" SIZE={}", body.size));
    }
    if body.eight_bit && ext.eight_bit_mime {
        cmd.push_str(" BODY=8BITMIME");
    }
    if utf8_address {
        cmd.push_str(" SMTPUTF8");
    }
    if env.require_tls {
        cmd.push_str(" REQUIRETLS");
    }
    if let Some(p) = env.dsn.as_ref().filter(|p| ext.dsn && !p.is_empty()) {
        cmd.push(' ');
        cmd.push_str(p);
    }
    Ok(cmd)
}

/// The RCPT TO command; DSN parameters are passed on only to a server that announced DSN
/// (RFC 3461 §4); otherwise the caller sends the "relayed" notice itself.
pub fn rcpt_command(address: &str, dsn: Option<&str>, ext: &Extensions) -> String {
    match dsn {
        Some(p) if ext.dsn && !p.is_empty() => format!("RCPT TO:<{address}> {p}"),
        _ => format!("RCPT TO:<{address}>"),
    }
}

/// The message with every line ending as CRLF (RFC 5321 §2.3.8): a bare LF or a bare CR
/// becomes CRLF, so that nothing we relay can be read as a line end by one receiver and as
/// data by another (SMTP smuggling, CVE-2023-51764 class). Borrowed when already canonical.
pub fn canonical_line_ends(body: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    let bare = |i: usize, b: u8| match b {
        b'\r' => body.get(i + 1) != Some(&b'\n'),
        b'\n' => i == 0 || body[i - 1] != b'\r',
        _ => false,
    };
    if !body.iter().enumerate().any(|(i, &b)| bare(i, b)) {
        return std::borrow::Cow::Borrowed(body);
    }
    let mut out = Vec::with_capacity(body.len() + 64);
    for (i, &b) in body.iter().enumerate() {
        if bare(i, b) {
            out.extend_from_slice(b"\r\n");
        } else {
            out.push(b);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// The message as DATA sends it (RFC 5321 §4.5.2): lines starting with "." get another one, the
/// message ends with CRLF, and ".CRLF" closes it. Bare LF and bare CR become CRLF.
pub fn dot_stuff(body: &[u8]) -> Vec<u8> {
    let body = canonical_line_ends(body);
    let mut out = Vec::with_capacity(body.len() + body.len() / 64 + 5);
    let mut at_line_start = true;
    for &b in body.iter() {
        if at_line_start && b == b'.' {
            out.push(b'.');
        }
        out.push(b);
        at_line_start = b == b'\n';
    }
    if !body.is_empty() && !at_line_start {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(lines: &[&str]) -> Result<Vec<ServerReply>, ReplyError> {
        let mut p = ReplyParser::default();
        let mut out = Vec::new();
        for l in lines {
            if let Some(r) = p.push_line(l.as_bytes())? {
                out.push(r);
            }
        }
        Ok(out)
    }

    #[test]
    fn multi_line_replies_and_enhanced_codes() {
        let r = parse(&["250-mx.example hello", "250-PIPELINING", "250 SIZE 1000"]).unwrap();
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].lines, ["mx.example hello", "PIPELINING", "SIZE 1000"]);
        assert_eq!(r[0].enhanced, None);
        let r = parse(&["550-5.1.1 no such", "550 5.1.1 user"]).unwrap();
        assert_eq!(r[0].enhanced.as_deref(), Some("5.1.1"));
        assert_eq!(r[0].to_string(), "550 5.1.1 no such user");
        assert_eq!(r[0].status(), "5.1.1");
        assert!(r[0].is_permanent());
        // A class that does not match the code is text, not an enhanced code.
        let r = parse(&["451 5.1.1 odd"]).unwrap();
        assert_eq!(
            (r[0].enhanced.clone(), r[0].status()),
            (None, "4.0.0".into())
        );
        let r = parse(&["220"]).unwrap();
        assert_eq!(r[0].lines, [""]);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bad in [
            &["hello"][..],
            &["25"],
            &["999 x"],
            &["250x"],
            &["250-a", "251 b"],
            &["\u{e9}\u{e9}\u{e9} x"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        let many: Vec<String> = (0..300).map(|_| "250-x".to_string()).collect();
        let refs: Vec<&str> = many.iter().map(String::as_str).collect();
        assert!(parse(&refs).is_err());
    }

    #[test]
    fn extensions_from_ehlo() {
        let r = parse(&[
            "250-mx hi",
            "250-PIPELINING",
            "250-SIZE 52428800",
            "250-8BITMIME",
            "250-STARTTLS",
            "250-smtputf8",
            "250-CHUNKING",
            "250-DSN",
            "250 REQUIRETLS",
        ])
        .unwrap();
        let e = Extensions::from_ehlo(&r[0]);
        assert!(e.esmtp && e.pipelining && e.eight_bit_mime && e.starttls && e.smtputf8);
        assert!(e.chunking && e.dsn && e.requiretls);
        assert_eq!(e.size, Some(52_428_800));
        let bare = Extensions::from_ehlo(&parse(&["250-mx", "250 SIZE"]).unwrap()[0]);
        assert_eq!(bare.size, Some(0));
        assert!(!bare.starttls);
    }

    fn env(from: &str, to: &str) -> Envelope {
        Envelope {
            from: from.into(),
            recipients: vec![(to.into(), None)],
            require_tls: false,
            dsn: None,
        }
    }

    #[test]
    fn mail_command_follows_what_the_server_supports() {
        let full = Extensions {
            esmtp: true,
            size: Some(0),
            eight_bit_mime: true,
            smtputf8: true,
            requiretls: true,
            ..Extensions::default()
        };
        let body = BodyNeeds::of("Subject: \u{e4}\r\n\r\nx\r\n".as_bytes());
        assert_eq!(
            mail_command(&env("a@b", "c@d"), body, &full).unwrap(),
            format!("MAIL FROM:<a@b> SIZE={} BODY=8BITMIME", body.size)
        );
        assert_eq!(
            mail_command(&env("", "c@d"), BodyNeeds::of(b"x"), &Extensions::default()).unwrap(),
            "MAIL FROM:<>"
        );
        // RFC 6531 §3.5: no SMTPUTF8, no non-ASCII address.
        let e = mail_command(&env("a@b", "j\u{fc}rgen@d"), body, &Extensions::default());
        assert_eq!(e.unwrap_err().status, "5.6.7");
        assert!(
            mail_command(&env("a@b", "j\u{fc}rgen@d"), body, &full)
                .unwrap()
                .ends_with(" SMTPUTF8")
        );
        // RFC 3461 §4.3, §4.4: RET and ENVID go on only to a server that announced DSN.
        let mut with_dsn = env("a@b", "c@d");
        with_dsn.dsn = Some("RET=HDRS ENVID=e1".into());
        let plain = BodyNeeds::of(b"x");
        assert_eq!(
            mail_command(&with_dsn, plain, &Extensions::default()).unwrap(),
            "MAIL FROM:<a@b>"
        );
        let dsn = Extensions {
            dsn: true,
            ..Extensions::default()
        };
        assert_eq!(
            mail_command(&with_dsn, plain, &dsn).unwrap(),
            "MAIL FROM:<a@b> RET=HDRS ENVID=e1"
        );
        let small = Extensions {
            size: Some(10),
            ..full.clone()
        };
        assert_eq!(
            mail_command(&env("a@b", "c@d"), body, &small)
                .unwrap_err()
                .status,
            "5.3.4"
        );
        let mut rt = env("a@b", "c@d");
        rt.require_tls = true;
        assert_eq!(
            mail_command(&rt, body, &Extensions::default())
                .unwrap_err()
                .status,
            "5.7.30"
        );
        assert!(
            mail_command(&rt, body, &full)
                .unwrap()
                .ends_with(" REQUIRETLS")
        );
    }

    #[test]
    fn dsn_parameters_only_to_a_dsn_server() {
        let dsn = Extensions {
            dsn: true,
            ..Extensions::default()
        };
        assert_eq!(
            rcpt_command("a@b", Some("NOTIFY=NEVER"), &dsn),
            "RCPT TO:<a@b> NOTIFY=NEVER"
        );
        assert_eq!(
            rcpt_command("a@b", Some("NOTIFY=NEVER"), &Extensions::default()),
            "RCPT TO:<a@b>"
        );
    }

    #[test]
    fn dot_stuffing_and_line_ends() {
        assert_eq!(dot_stuff(b"a\r\n.b\r\n"), b"a\r\n..b\r\n.\r\n");
        assert_eq!(dot_stuff(b".\r\n"), b"..\r\n.\r\n");
        assert_eq!(dot_stuff(b"a\n.\nb"), b"a\r\n..\r\nb\r\n.\r\n");
        assert_eq!(dot_stuff(b""), b".\r\n");
        assert_eq!(dot_stuff(b"x.y\r\n"), b"x.y\r\n.\r\n");
        // Issue 16 item 7: a bare CR never goes out; the dot after it is stuffed.
        assert_eq!(
            dot_stuff(b"hello\r.\r\nMAIL FROM:<a@b>\r\n"),
            b"hello\r\n..\r\nMAIL FROM:<a@b>\r\n.\r\n"
        );
        assert_eq!(dot_stuff(b"a\r"), b"a\r\n.\r\n");
        assert_eq!(
            canonical_line_ends(b"a\rb\nc\r\n").as_ref(),
            b"a\r\nb\r\nc\r\n"
        );
        assert!(matches!(
            canonical_line_ends(b"a\r\n"),
            std::borrow::Cow::Borrowed(_)
        ));
    }
}
