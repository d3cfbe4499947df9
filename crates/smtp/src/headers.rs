//! What submission checks and adds in a message's header (RFC 5322 §3.6; RFC 6409 §8).

/// The unfolded header fields of `message` (name, value), up to the empty line.
pub fn fields(message: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(message);
    let head = text.split("\r\n\r\n").next().unwrap_or("");
    let mut out: Vec<(String, String)> = Vec::new();
    for line in head.split("\r\n") {
        if line.starts_with([' ', '\t']) {
            if let Some(last) = out.last_mut() {
                last.1.push(' ');
                last.1.push_str(line.trim());
            }
        } else if let Some((name, value)) = line.split_once(':') {
            out.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
    }
    out
}

/// The addresses in a From (or Sender) value, lower case: each mailbox of the list (RFC 5322
/// §3.4) gives its `<…>` address, or its bare one — so an address in angle brackets cannot hide
/// a bare one beside it.
pub fn addresses(value: &str) -> Vec<String> {
    mailboxes(value)
        .iter()
        .filter_map(|m| {
            let address = match (m.find('<'), m.rfind('>')) {
                (Some(open), Some(close)) if open < close => &m[open + 1..close],
                _ => m.as_str(),
            };
            let address = address.trim().to_lowercase();
            address.contains('@').then_some(address)
        })
        .collect()
}

/// A mailbox-list split at the commas outside quotes, comments and angle brackets, comments
/// removed.
fn mailboxes(value: &str) -> Vec<String> {
    let (mut out, mut current) = (Vec::new(), String::new());
    let (mut quoted, mut comment, mut angle, mut escaped) = (false, 0u32, false, false);
    for c in value.chars() {
        if escaped {
            escaped = false;
            if comment == 0 {
                current.push(c);
            }
            continue;
        }
        match c {
            '\\' if quoted || comment > 0 => escaped = true,
            '"' if comment == 0 => {
                quoted = !quoted;
                current.push(c);
            }
            '(' if !quoted => comment = comment.saturating_add(1),
            ')' if !quoted && comment > 0 => comment -= 1,
            _ if comment > 0 => {}
            '<' if !quoted => {
                angle = true;
                current.push(c);
            }
            '>' if !quoted => {
                angle = false;
                current.push(c);
            }
            ',' if !quoted && !angle => out.push(std::mem::take(&mut current)),
            _ => current.push(c),
        }
    }
    out.push(current);
    out.into_iter().filter(|m| !m.trim().is_empty()).collect()
}

/// Submission's header rules: every From address must be one the user may send as (else the
/// error text); a missing Message-ID or Date is added (RFC 6409 §8.2, §8.3).
pub fn complete_submission(
    message: &[u8],
    senders: &[String],
    id: &str,
    hostname: &str,
    now: i64,
) -> Result<Vec<u8>, String> {
    let f = fields(message);
    let from: Vec<String> = f
        .iter()
        .filter(|(n, _)| n == "from")
        .flat_map(|(_, v)| addresses(v))
        .collect();
    if from.is_empty() {
        return Err("the message has no From header".into());
    }
    if let Some(bad) = from
        .iter()
        .find(|a| !senders.iter().any(|s| s.eq_ignore_ascii_case(a)))
    {
        return Err(format!(
            "From <{bad}> is not an address of the authenticated user"
        ));
    }
    let mut added = String::new();
    if !f.iter().any(|(n, _)| n == "message-id") {
        added.push_str(&format!("Message-ID: <{id}@{hostname}>\r\n"));
    }
    if !f.iter().any(|(n, _)| n == "date") {
        added.push_str(&format!("Date: {}\r\n", crate::received::rfc5322_date(now)));
    }
    let mut out = added.into_bytes();
    out.extend_from_slice(message);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_addresses() {
        let m = b"From: \"Alice A.\" <Alice@Example.org>\r\nTo: b@x.test\r\nSubject: hi\r\n  there\r\n\r\nFrom: not@header.test\r\n";
        let f = fields(m);
        assert_eq!(
            f[0],
            ("from".into(), "\"Alice A.\" <Alice@Example.org>".into())
        );
        assert_eq!(f[2].1, "hi there");
        assert_eq!(f.len(), 3, "the body is not the header");
        assert_eq!(addresses(&f[0].1), ["alice@example.org"]);
        assert_eq!(
            addresses("a@x.test (Alice), b@y.test"),
            ["a@x.test", "b@y.test"]
        );
        assert_eq!(
            addresses("A <a@x.test>, B <b@y.test>"),
            ["a@x.test", "b@y.test"]
        );
        assert!(addresses("undisclosed").is_empty());
        // A bracketed address does not hide a bare one beside it (a spoofed co-author).
        assert_eq!(
            addresses("<me@ours.test>, ceo@bank.test"),
            ["me@ours.test", "ceo@bank.test"]
        );
        assert_eq!(
            addresses("\"Doe, J\" <j@a.test>, (x, y) k@b.test (c)"),
            ["j@a.test", "k@b.test"]
        );
    }

    #[test]
    fn submission_adds_message_id_and_date_and_checks_from() {
        let senders = vec!["alice@example.org".to_string()];
        let out = complete_submission(
            b"From: Alice <ALICE@example.org>\r\n\r\nhi\r\n",
            &senders,
            "x1",
            "mx.test",
            1_795_906_104,
        )
        .unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.starts_with(
                "Message-ID: <x1@mx.test>\r\nDate: Sat, 28 Nov 2026 22:48:24 +0000\r\n"
            ),
            "{text}"
        );
        let kept = complete_submission(
            b"From: alice@example.org\r\nDate: x\r\nMessage-ID: <y@z>\r\n\r\n",
            &senders,
            "x",
            "m",
            0,
        )
        .unwrap();
        assert!(kept.starts_with(b"From:"));
        assert!(
            complete_submission(b"From: mallory@example.org\r\n\r\n", &senders, "x", "m", 0)
                .is_err()
        );
        assert!(complete_submission(b"Subject: no from\r\n\r\n", &senders, "x", "m", 0).is_err());
    }
}

/// `message` without the header field `name` (every occurrence, folded lines included); the
/// body is untouched. `None` if the message has no such field.
pub fn without_field(message: &[u8], name: &str) -> Option<Vec<u8>> {
    without_field_where(message, name, |_| true)
}

/// The header of `message` as whole fields (first line, continuation lines and line ends), and
/// what follows them (the blank line and the body).
pub fn header_fields(message: &[u8]) -> (Vec<&[u8]>, &[u8]) {
    let end = message
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(message.len(), |p| p + 2);
    let (head, rest) = message.split_at(end);
    // Byte ranges of `head`: a continuation line extends the field before it.
    let mut ranges: Vec<(usize, usize)> = Vec::new();
    let mut at = 0;
    for line in head.split_inclusive(|&b| b == b'\n') {
        let continuation = line.first().is_some_and(|b| *b == b' ' || *b == b'\t');
        match ranges.last_mut() {
            Some(last) if continuation => last.1 = at + line.len(),
            _ => ranges.push((at, at + line.len())),
        }
        at += line.len();
    }
    (ranges.into_iter().map(|(s, e)| &head[s..e]).collect(), rest)
}

/// `message` without the `name` fields whose (unfolded) value `drop` says so; `None` if none
/// was dropped.
pub fn without_field_where(
    message: &[u8],
    name: &str,
    drop: impl Fn(&str) -> bool,
) -> Option<Vec<u8>> {
    let (fields, rest) = header_fields(message);
    let mut out = Vec::with_capacity(message.len());
    let mut found = false;
    for field in fields {
        let dropped = field.iter().position(|&b| b == b':').is_some_and(|colon| {
            field[..colon]
                .trim_ascii()
                .eq_ignore_ascii_case(name.as_bytes())
                && drop(&String::from_utf8_lossy(&field[colon + 1..]).replace("\r\n", ""))
        });
        found |= dropped;
        if !dropped {
            out.extend_from_slice(field);
        }
    }
    out.extend_from_slice(rest);
    found.then_some(out)
}

/// What submission does with a sender's `TLS-Required: No` (RFC 8689 §5), per account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TlsRequiredHeader {
    /// Honour it (the RFC's intent: the sender chose delivery over protection).
    #[default]
    Keep,
    /// Remove it: the operator's DANE and MTA-STS policy holds for this account's mail.
    Strip,
    /// Refuse the message (550 5.7.1) so the sender learns that the header is not allowed.
    Refuse,
}

impl TlsRequiredHeader {
    /// The store setting that holds it.
    pub const SETTING: &'static str = "submission.tls-required-header";

    pub fn parse(s: &str) -> Option<TlsRequiredHeader> {
        match s {
            "keep" => Some(TlsRequiredHeader::Keep),
            "strip" => Some(TlsRequiredHeader::Strip),
            "refuse" => Some(TlsRequiredHeader::Refuse),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TlsRequiredHeader::Keep => "keep",
            TlsRequiredHeader::Strip => "strip",
            TlsRequiredHeader::Refuse => "refuse",
        }
    }
}

#[cfg(test)]
mod tls_required_tests {
    use super::*;

    #[test]
    fn smtp2_a_field_is_removed_with_its_folded_lines_and_nothing_else() {
        let m = b"From: a@b.test\r\nTLS-Required: No\r\nSubject: x\r\ntls-required :\r\n no\r\n\r\nTLS-Required: No\r\n";
        let out = without_field(m, "TLS-Required").unwrap();
        assert_eq!(
            out,
            b"From: a@b.test\r\nSubject: x\r\n\r\nTLS-Required: No\r\n"
        );
        assert_eq!(
            without_field(b"Subject: x\r\n\r\nbody", "TLS-Required"),
            None
        );
        assert_eq!(
            without_field(b"X-TLS-Required: No\r\n\r\n", "TLS-Required"),
            None,
            "only the field of that name"
        );
        for v in ["keep", "strip", "refuse"] {
            assert_eq!(TlsRequiredHeader::parse(v).map(|p| p.as_str()), Some(v));
        }
        assert_eq!(TlsRequiredHeader::parse("Strip"), None);
    }
}
