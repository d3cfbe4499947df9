//! Message disposition notifications (RFC 8098, RFC 6533 for internationalised addresses) for
//! a message the recipient's Sieve script refused after it was accepted (RFC 5429 §2.1: a
//! `reject` for one of several recipients cannot be a 550). The first part says in plain words
//! who refused it and why, the second is the machine-readable disposition, the third the
//! original's header (not the whole message: a notice must not carry a copy of possible spam
//! back).

use kurier_smtp::received::{rfc5322_date, unique_stamp};

use crate::dsn::{ascii_line, header_block, one_line, report_start, wrap};

/// Everything a refusal notice is made of.
#[derive(Debug, Clone)]
pub struct Refusal<'a> {
    /// Our host name (Reporting-UA).
    pub reporting_ua: &'a str,
    /// The recipient whose script refused the message; the notice comes from this address.
    pub recipient: &'a str,
    /// The original sender (the return path), who receives this.
    pub to: &'a str,
    /// The Subject of the notice, ready for the header (ASCII, RFC 2047 words allowed).
    pub subject: &'a str,
    /// The original's Message-ID (with its angle brackets), if it had one.
    pub message_id: Option<&'a str>,
    /// The script's words.
    pub reason: &'a str,
    pub original: &'a [u8],
    pub now: i64,
}

/// The notice as an RFC 5322 message with CRLF line ends.
pub fn build(n: &Refusal<'_>) -> Vec<u8> {
    let boundary = format!("kurier-mdn-{:016x}", unique_stamp());
    let global = !n.recipient.is_ascii();
    let mut m = String::new();
    m.push_str(&format!("From: <{}>\r\n", one_line(n.recipient)));
    m.push_str(&format!("To: <{}>\r\n", one_line(n.to)));
    m.push_str(&format!("Subject: {}\r\n", one_line(n.subject)));
    m.push_str(&format!("Date: {}\r\n", rfc5322_date(n.now)));
    m.push_str(&format!(
        "Message-ID: <mdn.{:016x}@{}>\r\n",
        unique_stamp(),
        n.reporting_ua
    ));
    if let Some(id) = n.message_id.map(ascii_line) {
        m.push_str(&format!("In-Reply-To: {id}\r\nReferences: {id}\r\n"));
    }
    report_start(
        &mut m,
        if global {
            "global-disposition-notification"
        } else {
            "disposition-notification"
        },
        &boundary,
        "message disposition notification",
    );
    let reason = n.reason.replace("\r\n", "\n");
    m.push_str(&wrap(&format!(
        "Your message to <{}> was refused by the recipient's mail filter, after it had been accepted by {}. It was not delivered and will not be. The recipient's filter gives this reason:",
        one_line(n.recipient),
        n.reporting_ua
    )));
    m.push_str("\r\n");
    for line in reason.trim_end().split('\n') {
        m.push_str("  ");
        m.push_str(line);
        m.push_str("\r\n");
    }
    m.push_str("\r\n");

    // 2. For programs (RFC 8098 §3.2): ASCII, unless the address needs RFC 6533's UTF-8.
    m.push_str(&format!("--{boundary}\r\n"));
    m.push_str(if global {
        "Content-Type: message/global-disposition-notification\r\n\r\n"
    } else {
        "Content-Type: message/disposition-notification\r\n\r\n"
    });
    m.push_str(&format!("Reporting-UA: {}; Kurier\r\n", n.reporting_ua));
    m.push_str(&format!(
        "Final-Recipient: {}; {}\r\n",
        if global { "utf-8" } else { "rfc822" },
        one_line(n.recipient)
    ));
    if let Some(id) = n.message_id {
        m.push_str(&format!("Original-Message-ID: {}\r\n", ascii_line(id)));
    }
    // §3.2.6: done by a filter without asking the user, and the message is gone.
    m.push_str("Disposition: automatic-action/MDN-sent-automatically; deleted\r\n\r\n");

    // 3. The original's header.
    m.push_str(&format!("--{boundary}\r\n"));
    let mut out = m.into_bytes();
    out.extend_from_slice(b"Content-Type: text/rfc822-headers\r\n\r\n");
    out.extend_from_slice(header_block(n.original));
    if !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal<'a>(recipient: &'a str, reason: &'a str) -> Refusal<'a> {
        Refusal {
            reporting_ua: "mx.example.net",
            recipient,
            to: "alice@example.org",
            subject: "Rejected: offer",
            message_id: Some("<m1@example.org>"),
            reason,
            original: b"From: alice@example.org\r\nSubject: offer\r\nMessage-ID: <m1@example.org>\r\n\r\nBuy now.\r\n",
            now: 1_796_376_600,
        }
    }

    #[test]
    fn a_refusal_is_an_rfc_8098_report_with_the_header_only() {
        let m = build(&refusal("bob@example.net", "Not from you.\nNever."));
        let m = String::from_utf8(m).unwrap();
        for want in [
            "From: <bob@example.net>\r\n",
            "To: <alice@example.org>\r\n",
            "Subject: Rejected: offer\r\n",
            "In-Reply-To: <m1@example.org>\r\n",
            "Auto-Submitted: auto-replied\r\n",
            "report-type=disposition-notification;",
            "Content-Type: message/disposition-notification\r\n\r\nReporting-UA: mx.example.net; Kurier\r\nFinal-Recipient: rfc822; bob@example.net\r\nOriginal-Message-ID: <m1@example.org>\r\nDisposition: automatic-action/MDN-sent-automatically; deleted\r\n",
            "  Not from you.\r\n  Never.\r\n",
            "Content-Type: text/rfc822-headers\r\n\r\nFrom: alice@example.org\r\n",
        ] {
            assert!(m.contains(want), "{want:?} in\n{m}");
        }
        assert!(!m.contains("Buy now."), "{m}");
        assert!(m.ends_with("--\r\n"));
        assert!(m.lines().all(|l| l.len() < 998));
    }

    #[test]
    fn an_internationalised_recipient_gets_rfc_6533_types_and_no_header_injection() {
        let m = build(&refusal("jürgen@example.net", "x"));
        let m = String::from_utf8(m).unwrap();
        assert!(m.contains("report-type=global-disposition-notification;"));
        assert!(m.contains("Final-Recipient: utf-8; jürgen@example.net\r\n"));
        let mut r = refusal("bob@example.net", "x");
        r.subject = "Rejected\r\nBcc: everyone@example.org";
        let m = String::from_utf8(build(&r)).unwrap();
        assert!(!m.contains("\r\nBcc:"), "{m}");
    }
}
