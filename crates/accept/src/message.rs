//! The message stage: what happens to the content before it is stored — the account's rule for
//! a `TLS-Required: No` field (RFC 8689 §5), the domain whose DKIM key signs what our users
//! submit (RFC 6376), and the verdicts later checks add as header fields (RFC 8601
//! Authentication-Results, a spam score) in front of the message.

use kurier_smtp::headers::{TlsRequiredHeader, addresses, fields, without_field};

/// What the account's rule makes of a message with a `TLS-Required` field: `Ok(None)` unchanged,
/// `Ok(Some(body))` without the field, `Err(reason)` refused (550 5.7.1).
pub fn tls_required(rule: TlsRequiredHeader, body: &[u8]) -> Result<Option<Vec<u8>>, String> {
    if !fields(body).iter().any(|(n, _)| n == "tls-required") {
        return Ok(None);
    }
    match rule {
        TlsRequiredHeader::Keep => Ok(None),
        TlsRequiredHeader::Strip => Ok(without_field(body, "TLS-Required")),
        TlsRequiredHeader::Refuse => Err(
            "TLS-Required: No is not allowed for this account: send the message without that header field (RFC 8689 section 5)".into(),
        ),
    }
}

/// Whether the message has a `TLS-Required` field at all (only then is the rule looked up).
pub fn has_tls_required(body: &[u8]) -> bool {
    fields(body).iter().any(|(n, _)| n == "tls-required")
}

/// The domain whose key signs a submitted message: that of its (first) From address.
pub fn signing_domain(body: &[u8]) -> Option<String> {
    let f = fields(body);
    let from = f
        .iter()
        .find(|(n, _)| n == "from")
        .map(|(_, v)| addresses(v))?;
    Some(from.first()?.rsplit_once('@')?.1.to_ascii_lowercase())
}

/// What checks found out about a message, as header fields to put in front of it (each a whole
/// field ending in CRLF): the slots SPF/DKIM/DMARC verification (Authentication-Results, RFC
/// 8601) and spam scoring fill. Empty, it changes nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verdicts {
    pub fields: Vec<String>,
}

impl Verdicts {
    /// `body` with the verdict fields in front (RFC 8601 §5: above the fields they cover),
    /// then `signature` (a DKIM-Signature field), which covers them as well.
    pub fn apply(&self, signature: Option<&str>, body: &[u8]) -> Option<Vec<u8>> {
        if self.fields.is_empty() && signature.is_none() {
            return None;
        }
        let mut out = Vec::with_capacity(body.len() + 512);
        for f in &self.fields {
            out.extend_from_slice(f.as_bytes());
        }
        if let Some(s) = signature {
            out.extend_from_slice(s.as_bytes());
        }
        out.extend_from_slice(body);
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests fail loudly by design
    use super::*;

    const WITH: &[u8] = b"From: a@b.test\r\nTLS-Required: No\r\nSubject: x\r\n\r\nhi\r\n";

    #[test]
    fn the_accounts_rule_for_tls_required_no() {
        assert!(has_tls_required(WITH));
        assert_eq!(tls_required(TlsRequiredHeader::Keep, WITH), Ok(None));
        let stripped = tls_required(TlsRequiredHeader::Strip, WITH)
            .unwrap()
            .unwrap();
        assert_eq!(stripped, b"From: a@b.test\r\nSubject: x\r\n\r\nhi\r\n");
        assert!(
            tls_required(TlsRequiredHeader::Refuse, WITH)
                .unwrap_err()
                .contains("RFC 8689")
        );
        let without = b"From: a@b.test\r\n\r\nhi\r\n";
        assert!(!has_tls_required(without));
        assert_eq!(tls_required(TlsRequiredHeader::Refuse, without), Ok(None));
    }

    #[test]
    fn the_from_domain_signs() {
        assert_eq!(
            signing_domain(b"From: Alice <alice@Example.ORG>\r\n\r\nx").as_deref(),
            Some("example.org")
        );
        assert_eq!(signing_domain(b"Subject: none\r\n\r\nx"), None);
    }

    #[test]
    fn verdicts_go_in_front_and_nothing_changes_without_them() {
        let body = b"Subject: x\r\n\r\nhi\r\n";
        assert_eq!(Verdicts::default().apply(None, body), None);
        let v = Verdicts {
            fields: vec!["Authentication-Results: mx.test; spf=pass\r\n".into()],
        };
        let out = v.apply(Some("DKIM-Signature: v=1\r\n"), body).unwrap();
        assert_eq!(
            out,
            b"Authentication-Results: mx.test; spf=pass\r\nDKIM-Signature: v=1\r\nSubject: x\r\n\r\nhi\r\n"
        );
    }
}
