//! Mail addresses as the store keys them: `local@domain`, compared case-insensitively.
//!
//! RFC 5321 §2.4 lets a server treat local parts case-sensitively, but every mainstream server
//! (Postfix, Dovecot, Exchange) matches them case-insensitively, and users expect it. Unicode
//! (RFC 6531 SMTPUTF8) local parts and domains are kept as UTF-8 and lower-cased by Unicode rules.

use crate::StoreError;

/// The longest address RFC 5321 §4.5.3.1.3 allows for a path, minus the angle brackets.
pub const MAX_ADDRESS_OCTETS: usize = 254;

/// Checks and normalizes an address: trimmed, lower case, one `@`, a plausible domain.
pub fn normalize(address: &str) -> Result<String, StoreError> {
    let bad = |why: &str| StoreError::Invalid(format!("address {address:?}: {why}"));
    let a = address.trim().to_lowercase();
    if a.len() > MAX_ADDRESS_OCTETS {
        return Err(bad("longer than 254 octets"));
    }
    let (local, domain) = a.rsplit_once('@').ok_or_else(|| bad("no @"))?;
    if local.is_empty() {
        return Err(bad("empty local part"));
    }
    if local
        .chars()
        .any(|c| c.is_control() || c.is_whitespace() || c == '<' || c == '>')
    {
        return Err(bad("control characters, spaces or <> in the local part"));
    }
    normalize_domain(domain).map_err(|_| bad("not a valid domain"))?;
    Ok(a)
}

/// Checks and normalizes a domain name (lower case, no trailing dot).
pub fn normalize_domain(domain: &str) -> Result<String, StoreError> {
    let d = domain.trim().trim_end_matches('.').to_lowercase();
    let ok = !d.is_empty()
        && d.len() <= 253
        && d.contains('.')
        && d.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_alphanumeric() || c == '-')
        });
    if ok {
        Ok(d)
    } else {
        Err(StoreError::Invalid(format!(
            "domain {domain:?}: not a valid domain name (e.g. \"example.org\")"
        )))
    }
}

/// The domain part of a normalized address, or of a `@domain` catch-all.
pub fn domain_of(normalized: &str) -> &str {
    normalized.rsplit_once('@').map(|(_, d)| d).unwrap_or("")
}

/// A catch-all alias is written `@domain`.
pub fn normalize_alias(address: &str) -> Result<String, StoreError> {
    match address.trim().strip_prefix('@') {
        Some(domain) => Ok(format!("@{}", normalize_domain(domain)?)),
        None => normalize(address),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_case_and_keeps_unicode() {
        assert_eq!(
            normalize(" Demo@Example.TEST ").unwrap(),
            "demo@example.test"
        );
        assert_eq!(
            normalize("Jürgen@Bücher.Example").unwrap(),
            "jürgen@bücher.example"
        );
        assert_eq!(
            normalize("\"odd@local\"@example.org").unwrap(),
            "\"odd@local\"@example.org"
        );
    }

    #[test]
    fn rejects_bad_addresses_with_a_reason() {
        for bad in [
            "",
            "nobody",
            "@example.org",
            "a@",
            "a@localhost",
            "a b@example.org",
            "a@ex ample.org",
            "a@-x.org",
        ] {
            let e = normalize(bad).unwrap_err().to_string();
            assert!(e.contains("address"), "{bad}: {e}");
        }
        let long = format!("{}@example.org", "a".repeat(250));
        assert!(normalize(&long).is_err());
    }

    #[test]
    fn catch_all() {
        assert_eq!(normalize_alias("@Example.Org").unwrap(), "@example.org");
        assert_eq!(domain_of("@example.org"), "example.org");
        assert!(normalize_alias("@").is_err());
    }
}
