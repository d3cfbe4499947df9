//! DMARC aggregate reports (RFC 7489 §7.2 and Appendix C): the `<feedback>` document that tells
//! a domain owner which servers sent mail in its name and how that mail fared.
//!
//! `Feedback::to_xml` writes the Appendix C format without a namespace (what reporters send
//! and receivers parse); IPv6 sources are written with all eight groups, the only form the
//! schema's `IPAddress` pattern admits. `Feedback::parse` reads a report someone sent us with a
//! real XML parser (`roxmltree`: a DTD, and so entity expansion, is refused; nodes are
//! counted), within `MAX_REPORT_BYTES` and `MAX_RECORDS`; what it does not need it ignores,
//! what it needs must be there.

use std::fmt::Write as _;
use std::net::IpAddr;

use crate::dmarc::Policy;

/// The largest report we read, uncompressed (big providers' daily reports stay well below).
pub const MAX_REPORT_BYTES: usize = 16 * 1024 * 1024;
/// The most `<record>` rows we read from one report.
pub const MAX_RECORDS: usize = 100_000;
/// XML nodes per report: elements, text and comments together.
const MAX_NODES: u32 = 4_000_000;

/// One report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Feedback {
    pub org_name: String,
    pub email: String,
    pub extra_contact_info: Option<String>,
    pub report_id: String,
    /// The period covered, seconds since the epoch (UTC).
    pub begin: i64,
    pub end: i64,
    pub policy: PolicyPublished,
    pub records: Vec<Row>,
}

/// The policy the report is about, as it was published (§7.2.1.1 "policy_published").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyPublished {
    pub domain: String,
    pub strict_dkim: bool,
    pub strict_spf: bool,
    pub p: Policy,
    pub sp: Policy,
    pub pct: u8,
    pub fo: String,
}

/// Messages alike in source, outcome and identifiers, and how many there were.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Row {
    pub source_ip: IpAddr,
    pub count: u64,
    /// What was done with them (`policy_evaluated`).
    pub disposition: Policy,
    /// Whether DKIM, SPF passed aligned.
    pub dkim_pass: bool,
    pub spf_pass: bool,
    /// Why the published policy was not applied as asked: (PolicyOverrideType, comment).
    pub overrides: Vec<(String, String)>,
    pub envelope_to: Option<String>,
    pub envelope_from: String,
    pub header_from: String,
    /// Every DKIM signature: (d=, s=, result).
    pub dkim: Vec<(String, String, String)>,
    /// SPF results: (domain, scope `mfrom`/`helo`, result).
    pub spf: Vec<(String, String, String)>,
}

/// Why a received report could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("DMARC report: {0}")]
pub struct ReportError(String);

fn bad(why: impl Into<String>) -> ReportError {
    ReportError(why.into())
}

/// The PolicyOverrideType values of Appendix C; anything else is reported as `other`.
const OVERRIDE_TYPES: [&str; 6] = [
    "forwarded",
    "sampled_out",
    "trusted_forwarder",
    "mailing_list",
    "local_policy",
    "other",
];
const DKIM_RESULTS: [&str; 7] = [
    "none",
    "pass",
    "fail",
    "policy",
    "neutral",
    "temperror",
    "permerror",
];
const SPF_RESULTS: [&str; 7] = [
    "none",
    "neutral",
    "pass",
    "fail",
    "softfail",
    "temperror",
    "permerror",
];

impl Feedback {
    /// The report as XML (Appendix C, `version` 1.0).
    pub fn to_xml(&self) -> String {
        let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<feedback>\n");
        x.push_str("  <version>1.0</version>\n  <report_metadata>\n");
        element(&mut x, 4, "org_name", &self.org_name);
        element(&mut x, 4, "email", &self.email);
        if let Some(c) = &self.extra_contact_info {
            element(&mut x, 4, "extra_contact_info", c);
        }
        element(&mut x, 4, "report_id", &self.report_id);
        let _ = write!(
            x,
            "    <date_range>\n      <begin>{}</begin>\n      <end>{}</end>\n    </date_range>\n",
            self.begin, self.end
        );
        x.push_str("  </report_metadata>\n  <policy_published>\n");
        let p = &self.policy;
        element(&mut x, 4, "domain", &p.domain);
        element(&mut x, 4, "adkim", alignment(p.strict_dkim));
        element(&mut x, 4, "aspf", alignment(p.strict_spf));
        element(&mut x, 4, "p", p.p.as_str());
        element(&mut x, 4, "sp", p.sp.as_str());
        element(&mut x, 4, "pct", &p.pct.to_string());
        element(&mut x, 4, "fo", &p.fo);
        x.push_str("  </policy_published>\n");
        for r in &self.records {
            r.write(&mut x);
        }
        x.push_str("</feedback>\n");
        x
    }

    /// Reads a received report (see the module comment for the bounds).
    pub fn parse(xml: &[u8]) -> Result<Feedback, ReportError> {
        if xml.len() > MAX_REPORT_BYTES {
            return Err(bad(format!("larger than {MAX_REPORT_BYTES} bytes")));
        }
        let text = std::str::from_utf8(xml).map_err(|_| bad("not UTF-8"))?;
        let options = roxmltree::ParsingOptions {
            allow_dtd: false,
            nodes_limit: MAX_NODES,
            ..Default::default()
        };
        let doc = roxmltree::Document::parse_with_options(text, options)
            .map_err(|e| bad(format!("not well-formed XML: {e}")))?;
        let root = doc.root_element();
        if root.tag_name().name() != "feedback" {
            return Err(bad(format!(
                "the root element is <{}>, not <feedback>",
                root.tag_name().name()
            )));
        }
        let meta = required(root, "report_metadata")?;
        let range = required(meta, "date_range")?;
        let published = required(root, "policy_published")?;
        let p = policy(&required_text(published, "p")?)?;
        let policy = PolicyPublished {
            domain: required_text(published, "domain")?.to_ascii_lowercase(),
            strict_dkim: text_of(published, "adkim").is_some_and(|a| a == "s"),
            strict_spf: text_of(published, "aspf").is_some_and(|a| a == "s"),
            p,
            sp: text_of(published, "sp")
                .map(|s| policy(&s))
                .transpose()?
                .unwrap_or(p),
            pct: text_of(published, "pct")
                .and_then(|n| n.parse().ok())
                .filter(|n| *n <= 100)
                .unwrap_or(100),
            fo: text_of(published, "fo").unwrap_or_else(|| "0".into()),
        };
        let mut records = Vec::new();
        for record in children(root, "record") {
            if records.len() == MAX_RECORDS {
                return Err(bad(format!("more than {MAX_RECORDS} records")));
            }
            records.push(Row::parse(record)?);
        }
        Ok(Feedback {
            org_name: required_text(meta, "org_name")?,
            email: text_of(meta, "email").unwrap_or_default(),
            extra_contact_info: text_of(meta, "extra_contact_info"),
            report_id: required_text(meta, "report_id")?,
            begin: number(range, "begin")?,
            end: number(range, "end")?,
            policy,
            records,
        })
    }

    /// Messages in the report, and those of them that passed DMARC (aligned DKIM or SPF).
    pub fn totals(&self) -> (u64, u64) {
        self.records.iter().fold((0, 0), |(all, pass), r| {
            let n = r.count;
            (
                all.saturating_add(n),
                pass.saturating_add(if r.dkim_pass || r.spf_pass { n } else { 0 }),
            )
        })
    }
}

impl Row {
    fn write(&self, x: &mut String) {
        x.push_str("  <record>\n    <row>\n");
        element(x, 6, "source_ip", &ip_text(self.source_ip));
        element(x, 6, "count", &self.count.to_string());
        x.push_str("      <policy_evaluated>\n");
        element(x, 8, "disposition", self.disposition.as_str());
        element(x, 8, "dkim", pass_fail(self.dkim_pass));
        element(x, 8, "spf", pass_fail(self.spf_pass));
        for (kind, comment) in &self.overrides {
            let kind = if OVERRIDE_TYPES.contains(&kind.as_str()) {
                kind.as_str()
            } else {
                "other"
            };
            x.push_str("        <reason>\n");
            element(x, 10, "type", kind);
            if !comment.is_empty() {
                element(x, 10, "comment", comment);
            }
            x.push_str("        </reason>\n");
        }
        x.push_str("      </policy_evaluated>\n    </row>\n    <identifiers>\n");
        if let Some(to) = &self.envelope_to {
            element(x, 6, "envelope_to", to);
        }
        element(x, 6, "envelope_from", &self.envelope_from);
        element(x, 6, "header_from", &self.header_from);
        x.push_str("    </identifiers>\n    <auth_results>\n");
        for (domain, selector, result) in &self.dkim {
            x.push_str("      <dkim>\n");
            element(x, 8, "domain", domain);
            if !selector.is_empty() {
                element(x, 8, "selector", selector);
            }
            element(x, 8, "result", one_of(result, &DKIM_RESULTS, "permerror"));
            x.push_str("      </dkim>\n");
        }
        // Appendix C: at least one SPF result; a message without one had none.
        let none = [(self.envelope_from.clone(), "mfrom".into(), "none".into())];
        let spf = if self.spf.is_empty() {
            &none[..]
        } else {
            &self.spf
        };
        for (domain, scope, result) in spf {
            x.push_str("      <spf>\n");
            element(x, 8, "domain", domain);
            element(
                x,
                8,
                "scope",
                if scope == "helo" { "helo" } else { "mfrom" },
            );
            element(x, 8, "result", one_of(result, &SPF_RESULTS, "permerror"));
            x.push_str("      </spf>\n");
        }
        x.push_str("    </auth_results>\n  </record>\n");
    }

    fn parse(record: roxmltree::Node) -> Result<Row, ReportError> {
        let row = required(record, "row")?;
        let evaluated = required(row, "policy_evaluated")?;
        let ids = required(record, "identifiers")?;
        let source = required_text(row, "source_ip")?;
        let auth = record.children().find(|n| n.has_tag_name("auth_results"));
        let results = |name: &'static str, second: &'static str| -> Vec<(String, String, String)> {
            auth.into_iter()
                .flat_map(|a| children(a, name))
                .map(|n| {
                    (
                        text_of(n, "domain").unwrap_or_default(),
                        text_of(n, second).unwrap_or_default(),
                        text_of(n, "result").unwrap_or_default(),
                    )
                })
                .collect()
        };
        Ok(Row {
            source_ip: source
                .parse()
                .map_err(|_| bad(format!("source_ip {source:?} is no IP address")))?,
            count: number(row, "count")?,
            disposition: policy(&required_text(evaluated, "disposition")?)?,
            dkim_pass: text_of(evaluated, "dkim").is_some_and(|r| r == "pass"),
            spf_pass: text_of(evaluated, "spf").is_some_and(|r| r == "pass"),
            overrides: children(evaluated, "reason")
                .map(|n| {
                    (
                        text_of(n, "type").unwrap_or_default(),
                        text_of(n, "comment").unwrap_or_default(),
                    )
                })
                .collect(),
            envelope_to: text_of(ids, "envelope_to"),
            envelope_from: text_of(ids, "envelope_from").unwrap_or_default(),
            header_from: required_text(ids, "header_from")?.to_ascii_lowercase(),
            dkim: results("dkim", "selector"),
            spf: results("spf", "scope"),
        })
    }
}

fn children<'a, 'i>(
    node: roxmltree::Node<'a, 'i>,
    name: &'static str,
) -> impl Iterator<Item = roxmltree::Node<'a, 'i>> {
    node.children().filter(move |n| n.has_tag_name(name))
}

fn required<'a, 'i>(
    node: roxmltree::Node<'a, 'i>,
    name: &'static str,
) -> Result<roxmltree::Node<'a, 'i>, ReportError> {
    children(node, name)
        .next()
        .ok_or_else(|| bad(format!("<{}> has no <{name}>", node.tag_name().name())))
}

/// The trimmed text of the first child `name`, if it has any.
fn text_of(node: roxmltree::Node, name: &'static str) -> Option<String> {
    let child = children(node, name).next()?;
    let text: String = child
        .descendants()
        .filter(|n| n.is_text())
        .filter_map(|n| n.text())
        .collect();
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_string())
}

fn required_text(node: roxmltree::Node, name: &'static str) -> Result<String, ReportError> {
    text_of(node, name).ok_or_else(|| bad(format!("<{name}> is missing or empty")))
}

fn number<T: std::str::FromStr>(
    node: roxmltree::Node,
    name: &'static str,
) -> Result<T, ReportError> {
    let t = required_text(node, name)?;
    t.parse()
        .map_err(|_| bad(format!("<{name}> {t:?} is not a number in range")))
}

fn policy(s: &str) -> Result<Policy, ReportError> {
    match s.to_ascii_lowercase().as_str() {
        "none" => Ok(Policy::None),
        "quarantine" => Ok(Policy::Quarantine),
        "reject" => Ok(Policy::Reject),
        _ => Err(bad(format!(
            "disposition {s:?} is none of none, quarantine, reject"
        ))),
    }
}

fn alignment(strict: bool) -> &'static str {
    if strict { "s" } else { "r" }
}

fn pass_fail(pass: bool) -> &'static str {
    if pass { "pass" } else { "fail" }
}

fn one_of<'a>(value: &'a str, allowed: &[&'static str], otherwise: &'static str) -> &'a str {
    if allowed.contains(&value) {
        value
    } else {
        otherwise
    }
}

/// IPv4 dotted; IPv6 with all eight groups, since Appendix C's pattern knows no `::`.
pub fn ip_text(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => v6
            .segments()
            .iter()
            .map(|s| format!("{s:x}"))
            .collect::<Vec<_>>()
            .join(":"),
    }
}

/// `<name>text</name>` on a line of its own, the text escaped and stripped of what XML 1.0
/// cannot carry (control characters from a hostile header must not break the document).
fn element(x: &mut String, indent: usize, name: &str, text: &str) {
    let _ = write!(x, "{:indent$}<{name}>", "");
    for c in text.chars() {
        match c {
            '&' => x.push_str("&amp;"),
            '<' => x.push_str("&lt;"),
            '>' => x.push_str("&gt;"),
            '"' => x.push_str("&quot;"),
            '\'' => x.push_str("&apos;"),
            '\t' | '\n' | '\r' => x.push(' '),
            // XML 1.0 §2.2 Char: no C0 controls but these three, no U+FFFE, U+FFFF.
            c if c < ' ' || c == '\u{FFFE}' || c == '\u{FFFF}' => {}
            c => x.push(c),
        }
    }
    let _ = writeln!(x, "</{name}>");
}

/// One sending source in the received reports about one of our domains.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceTotals {
    pub messages: u64,
    /// Messages that passed neither DKIM nor SPF (DMARC failed).
    pub failed: u64,
    pub reporters: std::collections::BTreeSet<String>,
    /// What the failing messages showed: "From … dkim=… spf=… → disposition".
    pub seen: std::collections::BTreeSet<String>,
}

/// The received reports about one of our domains, summed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DomainTotals {
    pub reports: u64,
    pub messages: u64,
    pub failed: u64,
    /// By source address (`ip_text`).
    pub sources: std::collections::BTreeMap<String, SourceTotals>,
}

impl DomainTotals {
    /// The sources, failing ones first, then by messages, most first.
    pub fn ordered(&self) -> Vec<(&String, &SourceTotals)> {
        let mut v: Vec<(&String, &SourceTotals)> = self.sources.iter().collect();
        v.sort_by_key(|s| std::cmp::Reverse((s.1.failed, s.1.messages)));
        v
    }
}

/// Received aggregate reports `(policy domain, XML)` summed per policy domain; reports that do
/// not parse are left out.
pub fn sum_feedback<'a>(
    reports: impl IntoIterator<Item = (&'a str, &'a [u8])>,
) -> std::collections::BTreeMap<String, DomainTotals> {
    let mut rows: std::collections::BTreeMap<String, DomainTotals> = Default::default();
    for (domain, xml) in reports {
        let Ok(report) = Feedback::parse(xml) else {
            continue;
        };
        let row = rows.entry(domain.to_string()).or_default();
        let (messages, passed) = report.totals();
        row.reports += 1;
        row.messages += messages;
        row.failed += messages - passed;
        for rec in &report.records {
            let s = row.sources.entry(ip_text(rec.source_ip)).or_default();
            s.messages += rec.count;
            s.reporters.insert(report.org_name.clone());
            if !(rec.dkim_pass || rec.spf_pass) {
                s.failed += rec.count;
                let list = |v: &[(String, String, String)]| -> String {
                    if v.is_empty() {
                        return "none".into();
                    }
                    v.iter()
                        .map(|(d, _, r)| format!("{d}:{r}"))
                        .collect::<Vec<_>>()
                        .join(",")
                };
                s.seen.insert(format!(
                    "From {} dkim={} spf={} → {}",
                    rec.header_from,
                    list(&rec.dkim),
                    list(&rec.spf),
                    rec.disposition.as_str()
                ));
            }
        }
    }
    rows
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests fail loudly by design
    use super::*;

    fn report() -> Feedback {
        Feedback {
            org_name: "Kurier <mx.a.test>".into(),
            email: "postmaster@a.test".into(),
            extra_contact_info: None,
            report_id: "2026-12-01.b.test@mx.a.test".into(),
            begin: 1_796_083_200,
            end: 1_796_169_599,
            policy: PolicyPublished {
                domain: "b.test".into(),
                strict_dkim: false,
                strict_spf: true,
                p: Policy::Reject,
                sp: Policy::Quarantine,
                pct: 50,
                fo: "0".into(),
            },
            records: vec![Row {
                source_ip: "2001:db8::7".parse().unwrap(),
                count: 3,
                disposition: Policy::None,
                dkim_pass: false,
                spf_pass: false,
                overrides: vec![("local_policy".into(), "monitor & see".into())],
                envelope_to: Some("a.test".into()),
                envelope_from: "b.test".into(),
                header_from: "b.test\u{1}".into(),
                dkim: vec![("b.test".into(), "s1".into(), "fail".into())],
                spf: Vec::new(),
            }],
        }
    }

    #[test]
    fn written_reports_read_back_the_same() {
        let r = report();
        let xml = r.to_xml();
        assert!(
            xml.contains("<source_ip>2001:db8:0:0:0:0:0:7</source_ip>"),
            "{xml}"
        );
        assert!(xml.contains("<org_name>Kurier &lt;mx.a.test&gt;</org_name>"));
        assert!(xml.contains("<comment>monitor &amp; see</comment>"));
        let back = Feedback::parse(xml.as_bytes()).unwrap();
        assert_eq!(back.records[0].header_from, "b.test");
        assert_eq!(
            back.records[0].spf,
            [("b.test".into(), "mfrom".into(), "none".into())]
        );
        assert_eq!(back.policy, r.policy);
        assert_eq!(back.totals(), (3, 0));
    }

    /// Hostile input: entities (a DTD), a wrong root, missing parts, bad numbers, size.
    #[test]
    fn bad_reports_are_refused_with_a_reason() {
        let bomb = "<?xml version=\"1.0\"?><!DOCTYPE f [<!ENTITY a \"aaaaaaaaaa\"><!ENTITY b \"&a;&a;&a;&a;\">]><feedback>&b;</feedback>";
        for (xml, why) in [
            (bomb, "not well-formed"),
            ("<html/>", "not <feedback>"),
            ("<feedback><report_metadata/></feedback>", "no <date_range>"),
            ("<feedback", "not well-formed"),
        ] {
            let e = Feedback::parse(xml.as_bytes()).unwrap_err().to_string();
            assert!(e.contains(why), "{xml}: {e}");
        }
        let xml = report()
            .to_xml()
            .replace("<count>3</count>", "<count>-3</count>");
        assert!(Feedback::parse(xml.as_bytes()).is_err());
        assert!(Feedback::parse(&vec![b' '; MAX_REPORT_BYTES + 1]).is_err());
        // Deep nesting costs no stack.
        let deep = format!(
            "<feedback>{}{}</feedback>",
            "<x>".repeat(200_000),
            "</x>".repeat(200_000)
        );
        assert!(Feedback::parse(deep.as_bytes()).is_err());
    }
}
