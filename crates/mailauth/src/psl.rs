//! The Public Suffix List (publicsuffix.org, the format of its `public_suffix_list.dat`) and
//! the organizational domain DMARC aligns on (RFC 7489 §3.2): the public suffix plus one label.
//!
//! The list is read from a file at start (Debian's package `publicsuffix` keeps it current at
//! `/usr/share/publicsuffix/public_suffix_list.dat`), so a new list needs no new Kurier. Rules
//! are normal (`com`), wildcard (`*.ck`) or exception (`!www.ck`); the prevailing rule is an
//! exception if one matches, else the longest; a name no rule matches has the implicit rule `*`.

use std::collections::HashSet;

/// The list as a server holds it: replaced whole when its file changes (SIGHUP), read by
/// the DMARC check and the DMARC reporter alike.
pub type SharedPsl = std::sync::Arc<std::sync::RwLock<std::sync::Arc<PublicSuffixList>>>;

/// The list in force now.
pub fn current(shared: &SharedPsl) -> std::sync::Arc<PublicSuffixList> {
    shared
        .read()
        .map(|p| p.clone())
        .unwrap_or_else(|p| p.into_inner().clone())
}

/// The rules of one list.
#[derive(Debug, Clone, Default)]
pub struct PublicSuffixList {
    normal: HashSet<String>,
    wildcard: HashSet<String>,
    exception: HashSet<String>,
}

/// Where Debian's package `publicsuffix` puts the list.
pub const DEBIAN_LIST: &str = "/usr/share/publicsuffix/public_suffix_list.dat";

/// The list must not be read without end; today's is 250 KB.
const MAX_LIST_BYTES: usize = 16 << 20;

impl PublicSuffixList {
    /// Parses the list's text; `Err` if it holds no rule at all or is too large (a wrong file).
    pub fn parse(text: &str) -> Result<PublicSuffixList, String> {
        if text.len() > MAX_LIST_BYTES {
            return Err(format!("{} bytes is not a public suffix list", text.len()));
        }
        let mut list = PublicSuffixList::default();
        for line in text.lines() {
            // A rule is the first whitespace-separated word of a line; `//` starts a comment.
            let Some(rule) = line.split_whitespace().next() else {
                continue;
            };
            if rule.starts_with("//") {
                continue;
            }
            let rule = rule.trim_end_matches('.').to_lowercase();
            if let Some(r) = rule.strip_prefix('!') {
                list.exception.insert(r.to_string());
            } else if let Some(r) = rule.strip_prefix("*.") {
                list.wildcard.insert(r.to_string());
            } else {
                list.normal.insert(rule);
            }
        }
        if list.normal.is_empty() && list.wildcard.is_empty() {
            return Err("no rules: not a public suffix list".into());
        }
        Ok(list)
    }

    /// The number of rules (for the start-up log).
    pub fn len(&self) -> usize {
        self.normal.len() + self.wildcard.len() + self.exception.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many labels from the right of `labels` form the public suffix.
    fn suffix_labels(&self, labels: &[&str]) -> usize {
        let n = labels.len();
        let mut best = 1; // the implicit rule `*`
        for i in 0..n {
            let candidate = labels[i..].join(".");
            let len = n - i;
            if self.exception.contains(&candidate) {
                // An exception's suffix is the rule minus its leftmost label.
                return len - 1;
            }
            if self.normal.contains(&candidate) {
                best = best.max(len);
            }
            // `*.ck` matches `x.ck`: the wildcard is one more label.
            if i > 0 && self.wildcard.contains(&candidate) {
                best = best.max(len + 1);
            }
        }
        best
    }

    /// The organizational domain of `domain` (RFC 7489 §3.2), lower case; a domain that is a
    /// public suffix itself is its own organizational domain.
    pub fn organizational_domain(&self, domain: &str) -> String {
        let domain = domain.trim_end_matches('.').to_lowercase();
        let labels: Vec<&str> = domain.split('.').collect();
        let suffix = self.suffix_labels(&labels);
        if suffix >= labels.len() {
            return domain;
        }
        labels[labels.len() - suffix - 1..].join(".")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIST: &str =
        "// comment\ncom\nuk\nco.uk\n*.ck\n!www.ck\njp\n*.kobe.jp\n!city.kobe.jp\n\n";

    #[test]
    fn organizational_domains_by_the_prevailing_rule() {
        let psl = PublicSuffixList::parse(LIST).unwrap_or_default();
        let org = |d| psl.organizational_domain(d);
        assert_eq!(org("mail.example.com"), "example.com");
        assert_eq!(org("Example.COM."), "example.com");
        assert_eq!(org("a.b.example.co.uk"), "example.co.uk");
        assert_eq!(org("co.uk"), "co.uk");
        assert_eq!(org("x.y.ck"), "x.y.ck");
        assert_eq!(org("a.x.y.ck"), "x.y.ck");
        assert_eq!(org("www.ck"), "www.ck");
        assert_eq!(org("a.www.ck"), "www.ck");
        assert_eq!(org("a.b.city.kobe.jp"), "city.kobe.jp");
        assert_eq!(org("a.b.other.kobe.jp"), "b.other.kobe.jp");
        // Not on the list: the implicit rule `*` (so `test` is a suffix).
        assert_eq!(org("mail.bank.test"), "bank.test");
        assert_eq!(org("test"), "test");
        assert!(PublicSuffixList::parse("// nothing\n").is_err());
    }

    #[test]
    fn debians_list() {
        // scripts/test.sh installs Debian's package publicsuffix.
        let text = std::fs::read_to_string(DEBIAN_LIST).unwrap_or_default();
        let psl = PublicSuffixList::parse(&text).unwrap_or_default();
        assert!(psl.len() > 5000);
        assert_eq!(psl.organizational_domain("www.bund.de"), "bund.de");
        assert_eq!(
            psl.organizational_domain("a.b.example.co.uk"),
            "example.co.uk"
        );
    }
}
