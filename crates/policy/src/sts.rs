//! MTA-STS (RFC 8461): the `_mta-sts` TXT record (§3.1), the policy file (§3.2), MX pattern
//! matching (§4.1), and what a policy asks of a connection to one MX host (§4, §5). Strict
//! parsing with precise errors: a policy that is not exactly right is not a policy.

use std::fmt;

/// Largest policy accepted (RFC 8461 §3.3 suggests 64 KiB).
pub const MAX_POLICY_BYTES: usize = 64 * 1024;
/// Largest `max_age` (RFC 8461 §3.2: about one year).
pub const MAX_AGE_LIMIT: u64 = 31_557_600;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StsError(pub String);

impl fmt::Display for StsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StsError {}

fn err<T>(msg: impl Into<String>) -> Result<T, StsError> {
    Err(StsError(msg.into()))
}

/// The `_mta-sts.<domain>` TXT record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StsRecord {
    /// 1–32 alphanumerics; a new id announces a new policy.
    pub id: String,
}

/// From all TXT strings at `_mta-sts.<domain>`: `Ok(None)` if none starts with `v=STSv1`;
/// an error if there are several, or the one there is malformed (§3.1: then the domain has no
/// usable policy).
pub fn parse_record(txts: &[String]) -> Result<Option<StsRecord>, StsError> {
    let candidates: Vec<&String> = txts
        .iter()
        .filter(|t| {
            let t = t.trim_start();
            t.starts_with("v=STSv1;") || t == "v=STSv1"
        })
        .collect();
    let record = match candidates.as_slice() {
        [] => return Ok(None),
        [one] => one.as_str(),
        _ => return err("more than one v=STSv1 TXT record"),
    };
    let mut id = None;
    for (i, field) in record.split(';').enumerate() {
        let field = field.trim_matches([' ', '\t']);
        if field.is_empty() {
            continue;
        }
        let Some((key, value)) = field.split_once('=') else {
            return err(format!("field {field:?} has no '='"));
        };
        match (i, key) {
            (0, "v") if value == "STSv1" => {}
            (0, _) => return err("the record must start with v=STSv1"),
            (_, "id") if id.is_some() => return err("two id fields"),
            (_, "id") => {
                if value.is_empty()
                    || value.len() > 32
                    || !value.bytes().all(|b| b.is_ascii_alphanumeric())
                {
                    return err(format!("id {value:?} is not 1–32 letters and digits"));
                }
                id = Some(value.to_string());
            }
            // §3.1: other extension fields are ignored.
            _ => {}
        }
    }
    match id {
        Some(id) => Ok(Some(StsRecord { id })),
        None => err("no id field"),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StsMode {
    Enforce,
    Testing,
    None,
}

impl StsMode {
    pub fn as_str(self) -> &'static str {
        match self {
            StsMode::Enforce => "enforce",
            StsMode::Testing => "testing",
            StsMode::None => "none",
        }
    }
}

/// A parsed policy (§3.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StsPolicy {
    pub mode: StsMode,
    /// MX patterns, lower case, without a trailing dot.
    pub mx: Vec<String>,
    pub max_age: u64,
}

/// Parses a policy file: `key: value` lines ending in LF or CRLF; `version`, `mode` and
/// `max_age` exactly once, `mx` at least once unless the mode is `none`; unknown keys ignored.
pub fn parse_policy(text: &str) -> Result<StsPolicy, StsError> {
    if text.len() > MAX_POLICY_BYTES {
        return err(format!("policy larger than {MAX_POLICY_BYTES} bytes"));
    }
    let (mut version, mut mode, mut max_age) = (None, None, None);
    let mut mx = Vec::new();
    for (n, line) in text.split('\n').enumerate() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.trim().is_empty() {
            continue;
        }
        let Some((key, value)) = line.split_once(':') else {
            return err(format!("line {}: {line:?} is not 'key: value'", n + 1));
        };
        let key = key.trim();
        let value = value.trim_matches([' ', '\t']);
        let once = |seen: bool| {
            if seen {
                err(format!("line {}: {key} given twice", n + 1))
            } else {
                Ok(())
            }
        };
        match key {
            "version" => {
                once(version.is_some())?;
                if value != "STSv1" {
                    return err(format!("version {value:?}, only STSv1 exists"));
                }
                version = Some(());
            }
            "mode" => {
                once(mode.is_some())?;
                mode = Some(match value {
                    "enforce" => StsMode::Enforce,
                    "testing" => StsMode::Testing,
                    "none" => StsMode::None,
                    _ => return err(format!("mode {value:?} is not enforce, testing or none")),
                });
            }
            "max_age" => {
                once(max_age.is_some())?;
                let ok = !value.is_empty()
                    && value.len() <= 10
                    && value.bytes().all(|b| b.is_ascii_digit());
                let age: u64 = value.parse().ok().filter(|_| ok).ok_or_else(|| {
                    StsError(format!("max_age {value:?} is not a number of seconds"))
                })?;
                if age > MAX_AGE_LIMIT {
                    return err(format!("max_age {age} exceeds {MAX_AGE_LIMIT}"));
                }
                max_age = Some(age);
            }
            "mx" => {
                let p = value.trim_end_matches('.').to_ascii_lowercase();
                if !is_mx_pattern(&p) {
                    return err(format!(
                        "mx {value:?} is not a host name or *.domain pattern"
                    ));
                }
                mx.push(p);
            }
            _ => {}
        }
    }
    if version.is_none() {
        return err("no version field");
    }
    let mode = mode.ok_or_else(|| StsError("no mode field".into()))?;
    let max_age = max_age.ok_or_else(|| StsError("no max_age field".into()))?;
    if mx.is_empty() && mode != StsMode::None {
        return err("no mx field");
    }
    Ok(StsPolicy { mode, mx, max_age })
}

fn is_mx_pattern(p: &str) -> bool {
    let name = p.strip_prefix("*.").unwrap_or(p);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// §4.1: a pattern matches the host exactly, or `*.example.com` matches one more left-most
/// label (`mx1.example.com`, not `example.com` or `a.b.example.com`).
pub fn mx_matches(pattern: &str, host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let pattern = pattern.trim_end_matches('.').to_ascii_lowercase();
    match pattern.strip_prefix("*.") {
        Some(parent) => host
            .split_once('.')
            .is_some_and(|(first, rest)| !first.is_empty() && rest == parent),
        None => host == pattern,
    }
}

/// What a policy asks of the connection to one MX host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StsRequirement {
    /// No policy (or mode `none`): opportunistic.
    None,
    /// TLS with a PKIX-valid certificate naming `host`. `enforce = false` (testing): a failure is
    /// reported but the mail still goes.
    Verify { enforce: bool },
    /// The host is not in the policy's `mx` list: with `enforce`, do not use it.
    NotListed { enforce: bool },
}

impl StsPolicy {
    /// §4, §5 for `mx_host`.
    pub fn requirement(&self, mx_host: &str) -> StsRequirement {
        let enforce = match self.mode {
            StsMode::None => return StsRequirement::None,
            StsMode::Enforce => true,
            StsMode::Testing => false,
        };
        if self.mx.iter().any(|p| mx_matches(p, mx_host)) {
            StsRequirement::Verify { enforce }
        } else {
            StsRequirement::NotListed { enforce }
        }
    }

    /// The policy as RFC 8460 §4.4 `policy-string` lines (one per field).
    pub fn report_strings(&self) -> Vec<String> {
        let mut v = vec![
            "version: STSv1".to_string(),
            format!("mode: {}", self.mode.as_str()),
        ];
        v.extend(self.mx.iter().map(|m| format!("mx: {m}")));
        v.push(format!("max_age: {}", self.max_age));
        v
    }

    /// The policy file as we publish it (CRLF lines, §3.2).
    pub fn to_text(&self) -> String {
        let mut t = String::new();
        for line in self.report_strings() {
            t.push_str(&line);
            t.push_str("\r\n");
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(txts: &[&str]) -> Result<Option<StsRecord>, StsError> {
        parse_record(&txts.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn sts1_txt_records() {
        // RFC 8461 §3.1 example.
        assert_eq!(
            rec(&["v=STSv1; id=20160831085700Z;"]).unwrap(),
            Some(StsRecord {
                id: "20160831085700Z".into()
            })
        );
        assert_eq!(rec(&["v=STSv1;id=1"]).unwrap().unwrap().id, "1");
        assert_eq!(rec(&["v=STSv1; id=abc; ext=x"]).unwrap().unwrap().id, "abc");
        assert_eq!(rec(&["v=spf1 -all"]).unwrap(), None);
        assert_eq!(rec(&[]).unwrap(), None);
        assert!(
            rec(&["v=STSv1; id=1", "v=STSv1; id=2"]).is_err(),
            "two records"
        );
        assert!(rec(&["v=STSv1;"]).is_err(), "no id");
        assert!(rec(&["v=STSv1; id="]).is_err());
        assert!(rec(&["v=STSv1; id=has-dash"]).is_err());
        assert!(rec(&["v=STSv1; id=123456789012345678901234567890123"]).is_err());
        assert!(rec(&["v=STSv1; id=1; id=2"]).is_err());
        assert!(rec(&["v=STSv1; junk"]).is_err());
        // Other records are discarded before counting.
        assert_eq!(rec(&["v=spf1", "v=STSv1; id=7"]).unwrap().unwrap().id, "7");
    }

    #[test]
    fn sts1_policy_files() {
        // RFC 8461 §3.2 example, with CRLF and with LF.
        let crlf = "version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.example.net\r\nmx: backupmx.example.com\r\nmax_age: 604800\r\n";
        let p = parse_policy(crlf).unwrap();
        assert_eq!(p.mode, StsMode::Enforce);
        assert_eq!(
            p.mx,
            ["mail.example.com", "*.example.net", "backupmx.example.com"]
        );
        assert_eq!(p.max_age, 604800);
        assert_eq!(parse_policy(&crlf.replace("\r\n", "\n")).unwrap(), p);
        assert_eq!(parse_policy(&p.to_text()).unwrap(), p);
        // Unknown keys are ignored; mode none needs no mx.
        let none = parse_policy("version: STSv1\nmode: none\nmax_age: 0\nfuture: x\n").unwrap();
        assert_eq!((none.mode, none.mx.len()), (StsMode::None, 0));
        for bad in [
            "mode: enforce\nmx: a.b\nmax_age: 1\n", // no version
            "version: STSv2\nmode: enforce\nmx: a.b\nmax_age: 1\n", // bad version
            "version: STSv1\nmode: strict\nmx: a.b\nmax_age: 1\n", // bad mode
            "version: STSv1\nmode: enforce\nmax_age: 1\n", // no mx
            "version: STSv1\nmode: enforce\nmx: a.b\n", // no max_age
            "version: STSv1\nmode: enforce\nmx: a.b\nmax_age: 31557601\n", // too long
            "version: STSv1\nmode: enforce\nmx: a.b\nmax_age: -1\n",
            "version: STSv1\nmode: enforce\nmx: a.b\nmax_age: 12345678901\n",
            "version: STSv1\nmode: enforce\nmode: testing\nmx: a.b\nmax_age: 1\n", // duplicate
            "version: STSv1\nmode: enforce\nmx: a..b\nmax_age: 1\n",
            "version: STSv1\nmode: enforce\nmx: *.*.b\nmax_age: 1\n",
            "version: STSv1\nmode enforce\nmx: a.b\nmax_age: 1\n",
        ] {
            assert!(parse_policy(bad).is_err(), "{bad:?}");
        }
        assert!(parse_policy(&"x".repeat(MAX_POLICY_BYTES + 1)).is_err());
    }

    #[test]
    fn sts7_mx_patterns() {
        assert!(mx_matches("mail.example.com", "MAIL.example.com."));
        assert!(mx_matches("*.example.net", "mx1.example.net"));
        assert!(!mx_matches("*.example.net", "example.net"));
        assert!(!mx_matches("*.example.net", "a.b.example.net"));
        assert!(!mx_matches("*.example.net", "mx1.example.network"));
        assert!(!mx_matches("mail.example.com", "mail.example.com.evil"));
    }

    #[test]
    fn sts5_requirements_per_mx() {
        let p = parse_policy("version: STSv1\nmode: enforce\nmx: *.example.net\nmax_age: 86400\n")
            .unwrap();
        assert_eq!(
            p.requirement("mx1.example.net"),
            StsRequirement::Verify { enforce: true }
        );
        assert_eq!(
            p.requirement("mx.other.net"),
            StsRequirement::NotListed { enforce: true }
        );
        let t = StsPolicy {
            mode: StsMode::Testing,
            ..p.clone()
        };
        assert_eq!(
            t.requirement("mx.other.net"),
            StsRequirement::NotListed { enforce: false }
        );
        let n = StsPolicy {
            mode: StsMode::None,
            ..p
        };
        assert_eq!(n.requirement("mx1.example.net"), StsRequirement::None);
    }
}
