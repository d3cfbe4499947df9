//! SMTP TLS Reporting (RFC 8460): the `_smtp._tls` TXT record (§3), the aggregate report of one
//! UTC day for one policy domain (§4), and reading reports others send us (§4.4), leniently but
//! within limits. TR-03108 RPT-1..RPT-7.

use std::collections::BTreeMap;

use serde_json::{Value, json};

/// The result types of RFC 8460 §4.3: the one vocabulary of TLS and policy failures in Kurier,
/// from the handshake to the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ResultType {
    /// §4.3.1: the receiver does not offer STARTTLS.
    StarttlsNotSupported,
    CertificateHostMismatch,
    CertificateNotTrusted,
    CertificateExpired,
    /// Any other negotiation failure (§4.3.1), including a handshake that ended before a
    /// certificate arrived.
    ValidationFailure,
    /// §4.3.2.1 DANE: no TLSA record matched, or none was usable.
    TlsaInvalid,
    /// §4.3.2.1: the records could not be validated (bogus DNSSEC).
    DnssecInvalid,
    /// §4.3.2.1: the receiver requires DANE and it was not available.
    DaneRequired,
    /// §4.3.2.2 MTA-STS.
    StsPolicyFetchError,
    StsPolicyInvalid,
    StsWebpkiInvalid,
}

impl ResultType {
    pub const ALL: [ResultType; 11] = [
        ResultType::StarttlsNotSupported,
        ResultType::CertificateHostMismatch,
        ResultType::CertificateNotTrusted,
        ResultType::CertificateExpired,
        ResultType::ValidationFailure,
        ResultType::TlsaInvalid,
        ResultType::DnssecInvalid,
        ResultType::DaneRequired,
        ResultType::StsPolicyFetchError,
        ResultType::StsPolicyInvalid,
        ResultType::StsWebpkiInvalid,
    ];

    /// The name in reports, e.g. `tlsa-invalid`.
    pub fn as_str(self) -> &'static str {
        match self {
            ResultType::StarttlsNotSupported => "starttls-not-supported",
            ResultType::CertificateHostMismatch => "certificate-host-mismatch",
            ResultType::CertificateNotTrusted => "certificate-not-trusted",
            ResultType::CertificateExpired => "certificate-expired",
            ResultType::ValidationFailure => "validation-failure",
            ResultType::TlsaInvalid => "tlsa-invalid",
            ResultType::DnssecInvalid => "dnssec-invalid",
            ResultType::DaneRequired => "dane-required",
            ResultType::StsPolicyFetchError => "sts-policy-fetch-error",
            ResultType::StsPolicyInvalid => "sts-policy-invalid",
            ResultType::StsWebpkiInvalid => "sts-webpki-invalid",
        }
    }

    /// The type a report name stands for; `None` for names RFC 8460 does not define.
    pub fn parse(name: &str) -> Option<ResultType> {
        ResultType::ALL.into_iter().find(|r| r.as_str() == name)
    }
}

impl std::fmt::Display for ResultType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Largest report JSON we read (after decompression).
pub const MAX_REPORT_BYTES: usize = 10 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsRptError(pub String);

impl std::fmt::Display for TlsRptError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TlsRptError {}

fn err<T>(msg: impl Into<String>) -> Result<T, TlsRptError> {
    Err(TlsRptError(msg.into()))
}

/// Where reports go (§3: `rua=`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rua {
    Mailto(String),
    Https(String),
}

/// The `_smtp._tls.<domain>` record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsRptRecord {
    pub rua: Vec<Rua>,
}

/// From all TXT strings at `_smtp._tls.<domain>`: `Ok(None)` without a `v=TLSRPTv1` record, an
/// error for two or more, or for one without a usable `rua` (RPT-7: then no report is sent).
pub fn parse_record(txts: &[String]) -> Result<Option<TlsRptRecord>, TlsRptError> {
    let found: Vec<&String> = txts
        .iter()
        .filter(|t| {
            let t = t.trim_start();
            t.starts_with("v=TLSRPTv1;") || t == "v=TLSRPTv1"
        })
        .collect();
    let record = match found.as_slice() {
        [] => return Ok(None),
        [one] => one.as_str(),
        _ => return err("more than one v=TLSRPTv1 record"),
    };
    let mut rua = None;
    for field in record.split(';').skip(1) {
        let field = field.trim_matches([' ', '\t']);
        if field.is_empty() {
            continue;
        }
        let Some((key, value)) = field.split_once('=') else {
            return err(format!("field {field:?} has no '='"));
        };
        if key.trim() != "rua" {
            continue; // §3: extensions are ignored
        }
        if rua.is_some() {
            return err("two rua fields");
        }
        let mut list = Vec::new();
        for uri in value.split(',').map(str::trim) {
            if let Some(addr) = uri.strip_prefix("mailto:") {
                // A query (`?subject=…`) is not ours to use.
                let addr = addr.split('?').next().unwrap_or("");
                if !addr.contains('@') || addr.starts_with('@') || addr.ends_with('@') {
                    return err(format!("rua {uri:?} is not a mail address"));
                }
                list.push(Rua::Mailto(addr.to_string()));
            } else if uri.starts_with("https://") && uri.len() > 8 {
                list.push(Rua::Https(uri.to_string()));
            } else {
                return err(format!("rua {uri:?} is neither mailto: nor https:"));
            }
        }
        rua = Some(list);
    }
    match rua {
        Some(rua) if !rua.is_empty() => Ok(Some(TlsRptRecord { rua })),
        _ => err("no rua field"),
    }
}

/// The policy a TLS outcome is counted under (RFC 8460 §4.3 `policy-type`), in the order of
/// the names, so that a report lists its policies sorted by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PolicyType {
    NoPolicyFound,
    /// MTA-STS (RFC 8461).
    Sts,
    /// DANE (RFC 7672): the TLSA records of the MX.
    Tlsa,
}

impl PolicyType {
    pub const ALL: [PolicyType; 3] = [PolicyType::NoPolicyFound, PolicyType::Sts, PolicyType::Tlsa];

    pub fn as_str(self) -> &'static str {
        match self {
            PolicyType::Tlsa => "tlsa",
            PolicyType::Sts => "sts",
            PolicyType::NoPolicyFound => "no-policy-found",
        }
    }

    pub fn parse(name: &str) -> Option<PolicyType> {
        PolicyType::ALL.into_iter().find(|p| p.as_str() == name)
    }
}

impl std::fmt::Display for PolicyType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The TLS outcome of one outbound session, or of a policy check that ended before any session
/// (RFC 8460 §4): the one shape of this fact from the delivery attempt through the store to the
/// report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsOutcome {
    /// The recipient domain.
    pub policy_domain: String,
    pub policy_type: PolicyType,
    /// The policy as the report shows it: TLSA records, or the MTA-STS policy's lines.
    pub policy_strings: Vec<String>,
    /// Empty when no MX was concerned (an MTA-STS fetch, a bogus MX RRset).
    pub mx_host: String,
    /// `None`: TLS was established, and verified where the policy requires it.
    pub failure: Option<ResultType>,
    pub receiving_ip: Option<String>,
    /// Our address on that session.
    pub sending_ip: Option<String>,
    /// The name the receiver greeted with.
    pub receiving_helo: Option<String>,
    /// The failure in words (`failure-reason-code`; RFC 8460 §4.4 keeps `additional-information`
    /// for a URI, which we do not have).
    pub detail: Option<String>,
}

impl TlsOutcome {
    /// A failure decided before any connection (DNS, policy).
    pub fn before_session(
        policy_domain: &str,
        mx_host: &str,
        policy: (PolicyType, Vec<String>),
        failure: ResultType,
        detail: String,
    ) -> TlsOutcome {
        TlsOutcome {
            policy_domain: policy_domain.to_string(),
            policy_type: policy.0,
            policy_strings: policy.1,
            mx_host: mx_host.to_string(),
            failure: Some(failure),
            receiving_ip: None,
            sending_ip: None,
            receiving_helo: None,
            detail: Some(detail),
        }
    }
}

/// Who reports, and for which day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportMeta {
    pub organization_name: String,
    pub contact_info: String,
    pub report_id: String,
    /// RFC 3339, e.g. `2026-11-28T00:00:00Z`.
    pub start: String,
    pub end: String,
}

/// The report for `domain` from the events of the day (§4.4): one entry per distinct policy,
/// with session counts and failure details grouped by result type, MX and address.
pub fn build_report(meta: &ReportMeta, domain: &str, events: &[TlsOutcome]) -> Value {
    type Key = (PolicyType, Vec<String>);
    /// (result type, MX, receiving IP, sending IP, HELO) → (sessions, first detail).
    type Failures = BTreeMap<(String, String, String, String, String), (u64, String)>;
    let mut policies: BTreeMap<Key, (u64, u64, Failures)> = BTreeMap::new();
    for e in events.iter().filter(|e| e.policy_domain == domain) {
        let entry = policies
            .entry((e.policy_type, e.policy_strings.clone()))
            .or_default();
        match &e.failure {
            None => entry.0 += 1,
            Some(kind) => {
                entry.1 += 1;
                let key = (
                    kind.to_string(),
                    e.mx_host.clone(),
                    e.receiving_ip.clone().unwrap_or_default(),
                    e.sending_ip.clone().unwrap_or_default(),
                    e.receiving_helo.clone().unwrap_or_default(),
                );
                let d = entry.2.entry(key).or_default();
                d.0 += 1;
                if d.1.is_empty() {
                    d.1 = e.detail.clone().unwrap_or_default();
                }
            }
        }
    }
    let policies: Vec<Value> = policies
        .into_iter()
        .map(|((kind, strings), (ok, failed, details))| {
            let mut policy = json!({
                "policy-type": kind.as_str(),
                "policy-string": strings,
                "policy-domain": domain,
            });
            let mx: Vec<&str> = strings
                .iter()
                .filter_map(|s| s.strip_prefix("mx: "))
                .collect();
            if kind == PolicyType::Sts && !mx.is_empty() {
                policy["mx-host"] = json!(mx);
            }
            let details: Vec<Value> = details
                .into_iter()
                .map(|((result, mx, ip, sending, helo), (n, detail))| {
                    let mut d = json!({ "result-type": result, "failed-session-count": n });
                    for (key, value) in [
                        ("receiving-mx-hostname", mx),
                        ("receiving-ip", ip),
                        ("sending-mta-ip", sending),
                        ("receiving-mx-helo", helo),
                        ("failure-reason-code", detail),
                    ] {
                        if !value.is_empty() {
                            d[key] = json!(value);
                        }
                    }
                    d
                })
                .collect();
            let mut p = json!({
                "policy": policy,
                "summary": {
                    "total-successful-session-count": ok,
                    "total-failure-session-count": failed,
                },
            });
            if !details.is_empty() {
                p["failure-details"] = json!(details);
            }
            p
        })
        .collect();
    json!({
        "organization-name": meta.organization_name,
        "date-range": { "start-datetime": meta.start, "end-datetime": meta.end },
        "contact-info": meta.contact_info,
        "report-id": meta.report_id,
        "policies": policies,
    })
}

/// A report someone sent us, reduced to what evaluation needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedSummary {
    pub organization: String,
    pub report_id: String,
    pub start: String,
    pub end: String,
    pub policies: Vec<PolicySummary>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicySummary {
    pub policy_type: String,
    pub policy_domain: String,
    pub successful: u64,
    pub failed: u64,
    /// (result type, failed sessions).
    pub failures: Vec<(String, u64)>,
}

/// Received reports summed: how many, successful and failed sessions, failed sessions by
/// result type.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReportTotals {
    pub reports: u64,
    pub successful: u64,
    pub failed: u64,
    pub failures: std::collections::BTreeMap<String, u64>,
}

/// Received reports (JSON as stored) summed per (policy domain, reporting organisation, day):
/// the day is the report's start date (`YYYY-MM-DD`) with `by_day`, else "". Reports that do
/// not parse are left out, and so are policy domains other than `domain` when it is given.
pub fn sum_reports<'a>(
    reports: impl IntoIterator<Item = &'a [u8]>,
    domain: Option<&str>,
    by_day: bool,
) -> std::collections::BTreeMap<(String, String, String), ReportTotals> {
    let mut out: std::collections::BTreeMap<(String, String, String), ReportTotals> =
        Default::default();
    for json in reports {
        let Ok(report) = parse_report(json) else {
            continue;
        };
        let day = if by_day {
            report.start.get(..10).unwrap_or("").to_string()
        } else {
            String::new()
        };
        for p in report.policies {
            if domain.is_some_and(|d| !d.eq_ignore_ascii_case(&p.policy_domain)) {
                continue;
            }
            let t = out
                .entry((
                    p.policy_domain.clone(),
                    report.organization.clone(),
                    day.clone(),
                ))
                .or_default();
            t.reports += 1;
            t.successful += p.successful;
            t.failed += p.failed;
            for (kind, n) in p.failures {
                *t.failures.entry(kind).or_default() += n;
            }
        }
    }
    out
}

/// Reads a report (§4.4) leniently: unknown fields are ignored, counts may be missing (0), but
/// it must be a JSON object with `policies` (an array; a single object is accepted too, as some
/// reporters send) and within `MAX_REPORT_BYTES`.
pub fn parse_report(json: &[u8]) -> Result<ReceivedSummary, TlsRptError> {
    if json.len() > MAX_REPORT_BYTES {
        return err("the report is too large");
    }
    let v: Value = serde_json::from_slice(json)
        .map_err(|e| TlsRptError(format!("the report is not JSON: {e}")))?;
    let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let count = |v: &Value, k: &str| v.get(k).and_then(Value::as_u64).unwrap_or(0);
    let policies = match v.get("policies") {
        Some(Value::Array(a)) => a.clone(),
        Some(o @ Value::Object(_)) => vec![o.clone()],
        _ => return err("the report has no policies"),
    };
    let range = v.get("date-range").cloned().unwrap_or(Value::Null);
    Ok(ReceivedSummary {
        organization: text(&v, "organization-name"),
        report_id: text(&v, "report-id"),
        start: text(&range, "start-datetime"),
        end: text(&range, "end-datetime"),
        policies: policies
            .iter()
            .map(|p| {
                let policy = p.get("policy").cloned().unwrap_or(Value::Null);
                let summary = p.get("summary").cloned().unwrap_or(Value::Null);
                let failures = p
                    .get("failure-details")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .map(|d| (text(d, "result-type"), count(d, "failed-session-count")))
                            .collect()
                    })
                    .unwrap_or_default();
                PolicySummary {
                    policy_type: text(&policy, "policy-type"),
                    policy_domain: text(&policy, "policy-domain").to_ascii_lowercase(),
                    successful: count(&summary, "total-successful-session-count"),
                    failed: count(&summary, "total-failure-session-count"),
                    failures,
                }
            })
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(txts: &[&str]) -> Result<Option<TlsRptRecord>, TlsRptError> {
        parse_record(&txts.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    /// Issue 16: a report that nests 100,000 levels deep is refused by serde_json's recursion
    /// limit (128) with an error, not a stack overflow.
    #[test]
    fn deeply_nested_reports_are_an_error() {
        for (open, close) in [("[", "]"), ("{\"a\":", "}")] {
            let json = format!("{}1{}", open.repeat(100_000), close.repeat(100_000));
            let e = parse_report(json.as_bytes()).unwrap_err();
            assert!(e.0.contains("not JSON"), "{}", e.0);
        }
    }

    #[test]
    fn rpt7_records() {
        assert_eq!(
            rec(&["v=TLSRPTv1; rua=mailto:reports@example.com"]).unwrap(),
            Some(TlsRptRecord {
                rua: vec![Rua::Mailto("reports@example.com".into())]
            })
        );
        assert_eq!(
            rec(&[
                "v=TLSRPTv1;rua=https://reporting.example.com/v1/tlsrpt, mailto:a@b.c?subject=x"
            ])
            .unwrap()
            .unwrap()
            .rua,
            [
                Rua::Https("https://reporting.example.com/v1/tlsrpt".into()),
                Rua::Mailto("a@b.c".into())
            ]
        );
        assert_eq!(rec(&["v=spf1 -all"]).unwrap(), None, "H-02: no record");
        assert!(
            rec(&[
                "v=TLSRPTv1; rua=mailto:a@b.c",
                "v=TLSRPTv1; rua=mailto:d@e.f"
            ])
            .is_err(),
            "H-03: two"
        );
        assert!(rec(&["v=TLSRPTv1;"]).is_err(), "H-04: no rua");
        assert!(rec(&["v=TLSRPTv1; rua=ftp://x"]).is_err());
        assert!(rec(&["v=TLSRPTv1; rua=mailto:@b"]).is_err());
    }

    fn ev(
        domain: &str,
        kind: &str,
        strings: &[&str],
        mx: &str,
        failure: Option<&str>,
    ) -> TlsOutcome {
        TlsOutcome {
            policy_domain: domain.into(),
            policy_type: PolicyType::parse(kind).unwrap(),
            policy_strings: strings.iter().map(|s| s.to_string()).collect(),
            mx_host: mx.into(),
            failure: failure.and_then(ResultType::parse),
            receiving_ip: Some("192.0.2.1".into()),
            sending_ip: Some("198.51.100.7".into()),
            receiving_helo: Some(mx.into()),
            detail: failure.map(|f| format!("because {f}")),
        }
    }

    #[test]
    fn rpt6_aggregation_per_policy() {
        let sts = [
            "version: STSv1",
            "mode: enforce",
            "mx: mx.b.test",
            "max_age: 86400",
        ];
        let events = [
            ev("b.test", "sts", &sts, "mx.b.test", None),
            ev("b.test", "sts", &sts, "mx.b.test", None),
            ev(
                "b.test",
                "sts",
                &sts,
                "mx.b.test",
                Some("certificate-expired"),
            ),
            ev(
                "b.test",
                "tlsa",
                &["3 1 1 00"],
                "mx2.b.test",
                Some("tlsa-invalid"),
            ),
            ev("other.test", "no-policy-found", &[], "mx.other.test", None),
        ];
        let meta = ReportMeta {
            organization_name: "Kurier".into(),
            contact_info: "mailto:postmaster@a.test".into(),
            report_id: "r1".into(),
            start: "2026-11-28T00:00:00Z".into(),
            end: "2026-11-29T00:00:00Z".into(),
        };
        let r = build_report(&meta, "b.test", &events);
        let policies = r["policies"].as_array().unwrap();
        assert_eq!(policies.len(), 2);
        let sts_p = policies
            .iter()
            .find(|p| p["policy"]["policy-type"] == "sts")
            .unwrap();
        assert_eq!(sts_p["summary"]["total-successful-session-count"], 2);
        assert_eq!(sts_p["summary"]["total-failure-session-count"], 1);
        assert_eq!(sts_p["policy"]["mx-host"], json!(["mx.b.test"]));
        assert_eq!(
            sts_p["failure-details"][0]["result-type"],
            "certificate-expired"
        );
        assert_eq!(
            sts_p["failure-details"][0]["receiving-mx-hostname"],
            "mx.b.test"
        );
        // §4.4: the words are a failure-reason-code; additional-information is for a URI.
        assert_eq!(
            sts_p["failure-details"][0]["failure-reason-code"],
            "because certificate-expired"
        );
        assert!(
            sts_p["failure-details"][0]
                .get("additional-information")
                .is_none()
        );
        let back = parse_report(r.to_string().as_bytes()).unwrap();
        assert_eq!(back.report_id, "r1");
        assert_eq!(back.policies.iter().map(|p| p.failed).sum::<u64>(), 2);
    }

    #[test]
    fn received_reports_are_read_leniently_but_not_blindly() {
        assert!(parse_report(b"not json").is_err());
        assert!(parse_report(b"{}").is_err());
        let single = br#"{"organization-name":"X","policies":{"policy":{"policy-type":"sts","policy-domain":"A.test"},"summary":{"total-successful-session-count":3}}}"#;
        let s = parse_report(single).unwrap();
        assert_eq!(
            (
                s.policies[0].policy_domain.as_str(),
                s.policies[0].successful,
                s.policies[0].failed
            ),
            ("a.test", 3, 0)
        );
    }

    #[test]
    fn received_reports_are_summed_per_domain_reporter_and_day() {
        let r = |org: &str, day: &str, domain: &str, ok: u64, failed: u64| {
            format!(
                r#"{{"organization-name":"{org}","date-range":{{"start-datetime":"{day}T00:00:00Z"}},"policies":[{{"policy":{{"policy-type":"sts","policy-domain":"{domain}"}},"summary":{{"total-successful-session-count":{ok},"total-failure-session-count":{failed}}},"failure-details":[{{"result-type":"certificate-expired","failed-session-count":{failed}}}]}}]}}"#
            )
        };
        let reports = [
            r("G", "2026-12-01", "a.test", 5, 1),
            r("G", "2026-12-01", "a.test", 2, 0),
            r("G", "2026-12-02", "a.test", 1, 2),
            r("M", "2026-12-01", "b.test", 9, 0),
            "garbage".to_string(),
        ];
        let by_day = sum_reports(reports.iter().map(|r| r.as_bytes()), None, true);
        let key = |d: &str, o: &str, day: &str| (d.to_string(), o.to_string(), day.to_string());
        let t = &by_day[&key("a.test", "G", "2026-12-01")];
        assert_eq!((t.reports, t.successful, t.failed), (2, 7, 1));
        assert_eq!(t.failures["certificate-expired"], 1);
        assert_eq!(by_day.len(), 3);
        let all = sum_reports(reports.iter().map(|r| r.as_bytes()), Some("A.test"), false);
        let t = &all[&key("a.test", "G", "")];
        assert_eq!((all.len(), t.reports, t.successful, t.failed), (1, 3, 8, 3));
    }
}
