//! What a hosted domain should publish in DNS, next to what the validating resolver finds
//! there now: each record present, missing, or published with another value (and whether the
//! answer was DNSSEC-signed); and the `kurier check` findings of the domain. The binary
//! computes both (`DomainFacts`: it knows the configuration and certificates `kurier dns`
//! derives the records from); comparing what was found with what is wanted is here.

/// What the page shows of one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordCheck {
    pub name: String,
    pub rtype: String,
    /// The value to publish (TXT as its text, without quotes).
    pub value: String,
    pub seen: Seen,
    /// "secure", "insecure", or why the lookup failed.
    pub dnssec: String,
}

/// What the resolver found for a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    Present,
    /// Nothing of that type at the name.
    Missing,
    /// Other values of that type are published.
    Different(Vec<String>),
    /// The lookup failed (bogus DNSSEC, a timeout): the state is not known.
    Unknown(String),
}

impl Seen {
    pub fn word(&self) -> &'static str {
        match self {
            Seen::Present => "present",
            Seen::Missing => "missing",
            Seen::Different(_) => "different",
            Seen::Unknown(_) => "unknown",
        }
    }
}

/// One finding of `kurier check`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckLine {
    /// The requirement, e.g. `DANE-1`.
    pub id: String,
    /// pass, FAIL, warn, n/a.
    pub status: String,
    pub subject: String,
    pub evidence: String,
    pub fix: String,
}

/// The records and the audit of a domain, from the binary.
#[async_trait::async_trait]
pub trait DomainFacts: Send + Sync {
    /// The records `domain` should publish, each with what is published now.
    async fn records(&self, domain: &str) -> Result<Vec<RecordCheck>, String>;
    /// `kurier check domain`.
    async fn check(&self, domain: &str) -> Result<Vec<CheckLine>, String>;
}

/// Compares what is published (`found`, presentation form) with `value` for `rtype`: names
/// without case and trailing dot, TXT strings as written (DKIM keys are case-sensitive) but
/// with spacing evened out.
pub fn judge(rtype: &str, value: &str, found: &[String]) -> Seen {
    if found.is_empty() {
        return Seen::Missing;
    }
    let norm = |s: &str| -> String {
        let s = s.split_whitespace().collect::<Vec<_>>().join(" ");
        if rtype.eq_ignore_ascii_case("TXT") {
            s.split(';')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .collect::<Vec<_>>()
                .join("; ")
        } else {
            s.to_ascii_lowercase()
                .split(' ')
                .map(|w| w.trim_end_matches('.'))
                .collect::<Vec<_>>()
                .join(" ")
        }
    };
    let want = norm(value);
    if found.iter().any(|f| norm(f) == want) {
        Seen::Present
    } else {
        Seen::Different(found.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn records_are_compared_as_dns_compares_them() {
        assert_eq!(
            judge("MX", "10 mx.example.org.", &v(&["10 MX.Example.org"])),
            Seen::Present
        );
        assert_eq!(judge("MX", "10 mx.example.org.", &[]), Seen::Missing);
        assert_eq!(
            judge("MX", "10 mx.example.org.", &v(&["20 other.example.org"])),
            Seen::Different(v(&["20 other.example.org"]))
        );
        assert_eq!(
            judge("TLSA", "3 1 1 ABCDEF", &v(&["3 1 1 abcdef"])),
            Seen::Present
        );
        assert_eq!(
            judge("TXT", "v=DMARC1; p=reject", &v(&["v=DMARC1;p=reject;"])),
            Seen::Present
        );
        // DKIM keys are base64: case matters.
        assert!(matches!(
            judge("TXT", "v=DKIM1; p=AbC", &v(&["v=DKIM1; p=abc"])),
            Seen::Different(_)
        ));
        assert_eq!(
            judge(
                "SRV",
                "0 1 993 mx.example.org.",
                &v(&["0 1 993 mx.example.org"])
            ),
            Seen::Present
        );
        assert_eq!(Seen::Unknown("x".into()).word(), "unknown");
    }
}
