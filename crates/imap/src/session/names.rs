//! Mailbox names in LIST and LSUB (RFC 9051 §5.1, §6.3.9): the hierarchy around a name and
//! wildcard patterns, matched without recursion or backtracking.

use super::DELIMITER;

/// `a`, `a/b` for `a/b/c`.
pub(super) fn superiors(name: &str) -> Vec<String> {
    name.match_indices(DELIMITER)
        .map(|(i, _)| name[..i].to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

pub(super) fn is_child(candidate: &str, parent: &str) -> bool {
    candidate.len() > parent.len() + 1
        && candidate.starts_with(parent)
        && candidate[parent.len()..].starts_with(DELIMITER)
}

/// LIST patterns (RFC 9051 §6.3.9): `*` matches anything, `%` anything but the delimiter.
/// INBOX matches case-insensitively.
pub(super) fn pattern_matches(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    if glob(&p, &n) {
        return true;
    }
    // `inbox` (any case) names INBOX.
    name.starts_with("INBOX")
        && p.len() >= 5
        && p[..5]
            .iter()
            .collect::<String>()
            .eq_ignore_ascii_case("INBOX")
        && glob(
            &"INBOX"
                .chars()
                .chain(p[5..].iter().copied())
                .collect::<Vec<_>>(),
            &n,
        )
}

/// Wildcard matching without recursion or backtracking: one pass over the pattern, keeping
/// the set of name positions reachable so far (O(pattern × name) time, O(name) memory), so a
/// hostile pattern such as `*a*a*a…b` costs no more than a plain one.
fn glob(pattern: &[char], name: &[char]) -> bool {
    let mut reach = vec![false; name.len() + 1];
    let mut next = vec![false; name.len() + 1];
    reach[0] = true;
    let mut prev = None;
    for &pc in pattern {
        // `**` is `*`: skip repeats so that they cost nothing either.
        if pc == '*' && prev == Some('*') {
            continue;
        }
        prev = Some(pc);
        match pc {
            '*' => {
                let mut any = false;
                for (j, r) in reach.iter().enumerate() {
                    any |= *r;
                    next[j] = any;
                }
            }
            '%' => {
                let mut any = false;
                for (j, r) in reach.iter().enumerate() {
                    if j > 0 && name[j - 1] == DELIMITER {
                        any = false;
                    }
                    any |= *r;
                    next[j] = any;
                }
            }
            c => {
                next[0] = false;
                for j in 1..=name.len() {
                    next[j] = reach[j - 1] && name[j - 1] == c;
                }
            }
        }
        std::mem::swap(&mut reach, &mut next);
    }
    reach[name.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_patterns() {
        assert!(pattern_matches("*", "Archive/2026"));
        assert!(pattern_matches("%", "Archive"));
        assert!(!pattern_matches("%", "Archive/2026"));
        assert!(pattern_matches("Archive/%", "Archive/2026"));
        assert!(pattern_matches("A*6", "Archive/2026"));
        assert!(pattern_matches("inbox", "INBOX"));
        assert!(pattern_matches("Inbox/*", "INBOX/x"));
        assert!(!pattern_matches("Sent", "Sent/x"));
        assert!(!pattern_matches("", "INBOX"));
        assert!(pattern_matches("%/%", "a/b"));
        assert!(!pattern_matches("%/%", "a/b/c"));
        assert!(pattern_matches("*/%", "a/b/c"));
    }

    /// Hostile LIST patterns: thousands of wildcards neither recurse nor backtrack.
    #[test]
    fn hostile_list_patterns_are_cheap() {
        let long = format!("{}b", "*a".repeat(20_000));
        let name = "a".repeat(200);
        assert!(!pattern_matches(&long, &name));
        assert!(pattern_matches(&"%".repeat(50_000), "INBOX"));
    }

    #[test]
    fn hierarchy() {
        assert!(is_child("a/b", "a") && !is_child("ab", "a") && !is_child("a", "a"));
        assert_eq!(superiors("a/b/c"), ["a", "a/b"]);
        assert!(superiors("a").is_empty());
    }
}
