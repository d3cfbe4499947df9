//! The `Authentication-Results` header field (RFC 8601) Kurier puts on inbound mail, and the
//! removal of such fields that claim to be ours but came from outside (§5).

use crate::Verification;

/// Quoted as an RFC 8601 `value` (RFC 2045 quoted-string), printable ASCII only, bounded.
fn quoted(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars().take(160) {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            ' '..='~' => out.push(c),
            _ => out.push('?'),
        }
    }
    out.push('"');
    out
}

/// A property value (an address or domain) as a token or, if it needs to be, quoted.
fn value(s: &str) -> String {
    let token = !s.is_empty()
        && s.len() <= 254
        && s.bytes()
            .all(|b| b.is_ascii_graphic() && !b"()<>,;:\\\"[]?=".contains(&b));
    if token { s.to_string() } else { quoted(s) }
}

/// The whole field, folded one result per line, ending in CRLF.
pub fn header(authserv_id: &str, v: &Verification) -> String {
    let mut results = Vec::new();
    for (spf, property) in [
        (&v.spf_mail_from, "smtp.mailfrom"),
        (&v.spf_helo, "smtp.helo"),
    ] {
        if let Some((identity, o)) = spf {
            results.push(format!(
                "spf={} reason={} {property}={}",
                o.result.as_str(),
                quoted(&o.reason),
                value(identity)
            ));
        }
    }
    if v.dkim.is_empty() {
        results.push("dkim=none".to_string());
    }
    for d in &v.dkim {
        let mut r = format!("dkim={}", d.result.as_str());
        if let Some(why) = &d.reason {
            r.push_str(&format!(" reason={}", quoted(why)));
        }
        if let Some(domain) = &d.domain {
            r.push_str(&format!(" header.d={}", value(domain)));
        }
        if let Some(s) = &d.selector {
            r.push_str(&format!(" header.s={}", value(s)));
        }
        if !d.b_prefix.is_empty() {
            r.push_str(&format!(" header.b={}", value(&d.b_prefix)));
        }
        results.push(r);
    }
    for o in &v.dmarc {
        let mut r = format!("dmarc={}", o.result.as_str());
        if let Some(found) = &o.policy {
            r.push_str(&format!(" (p={})", found.policy.as_str()));
        }
        r.push_str(&format!(
            " reason={} header.from={}",
            quoted(&o.reason),
            value(&o.from_domain)
        ));
        results.push(r);
    }
    if results.is_empty() {
        results.push("none".into());
    }
    format!(
        "Authentication-Results: {};\r\n\t{}\r\n",
        value(authserv_id),
        results.join(";\r\n\t")
    )
}

/// The authserv-id of an Authentication-Results value (§2.2: before the first `;`, comments
/// and a version number aside).
pub fn authserv_id(field_value: &str) -> String {
    let head = field_value.split(';').next().unwrap_or("");
    let mut depth = 0u32;
    let mut plain = String::new();
    for c in head.chars() {
        match c {
            '(' => depth = depth.saturating_add(1),
            ')' => depth = depth.saturating_sub(1),
            c if depth == 0 => plain.push(c),
            _ => {}
        }
    }
    plain
        .split_whitespace()
        .next()
        .unwrap_or("")
        .trim_matches('"')
        .to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authserv_ids() {
        assert_eq!(authserv_id(" mx.kurier.test; spf=pass"), "mx.kurier.test");
        assert_eq!(authserv_id("MX.Kurier.TEST 1; none"), "mx.kurier.test");
        assert_eq!(
            authserv_id(" (forged) mx.kurier.test (x); dkim=pass"),
            "mx.kurier.test"
        );
        assert_eq!(authserv_id("\"mx.kurier.test\"; none"), "mx.kurier.test");
        assert_eq!(authserv_id(""), "");
    }

    #[test]
    fn values_are_tokens_or_quoted() {
        assert_eq!(value("a@b.test"), "a@b.test");
        assert_eq!(value("a b"), "\"a b\"");
        assert_eq!(value("x;dkim=pass"), "\"x;dkim=pass\"");
        assert_eq!(quoted("say \"hi\"\r\n"), "\"say \\\"hi\\\"??\"");
        assert_eq!(value(""), "\"\"");
    }
}
