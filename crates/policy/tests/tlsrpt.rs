//! TLSRPT reports (RFC 8460 §4.4; TR-03108 RPT-3, RPT-6): what we generate validates against a
//! JSON Schema of the RFC (checked by Python's `jsonschema`, an independent validator), and the
//! field layouts of large reporters parse into the same totals.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::process::Command;

use kurier_policy::tlsrpt::{
    PolicyType, ReportMeta, ResultType, TlsOutcome, build_report, parse_report,
};

const RESULT_TYPES: &[&str] = &[
    "starttls-not-supported",
    "certificate-host-mismatch",
    "certificate-expired",
    "certificate-not-trusted",
    "validation-failure",
    "tlsa-invalid",
    "dnssec-invalid",
    "dane-required",
    "sts-policy-fetch-error",
    "sts-policy-invalid",
    "sts-webpki-invalid",
];

/// RPT-6: the enum spells exactly the result types of RFC 8460 §4.3, each once.
#[test]
fn rpt6_result_types_are_rfc8460s_names() {
    let mut ours: Vec<&str> = ResultType::ALL.iter().map(|r| r.as_str()).collect();
    let mut rfc = RESULT_TYPES.to_vec();
    ours.sort();
    rfc.sort();
    assert_eq!(ours, rfc);
    for name in RESULT_TYPES {
        assert_eq!(
            ResultType::parse(name).map(|r| r.to_string()).as_deref(),
            Some(*name)
        );
    }
    assert_eq!(ResultType::parse("tlsa_invalid"), None);
}

fn fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Validates `json` with Python's jsonschema; returns its complaint, if any.
fn schema_errors(json: &str) -> Option<String> {
    let dir = tempfile_dir();
    let file = dir.join("report.json");
    std::fs::write(&file, json).unwrap();
    let out = Command::new("python3")
        .args([
            "-c",
            "import json, sys, jsonschema; jsonschema.validate(json.load(open(sys.argv[1])), json.load(open(sys.argv[2])))",
        ])
        .arg(&file)
        .arg(fixture("tlsrpt-schema.json"))
        .output()
        .expect("python3 with jsonschema (scripts/test.sh installs it)");
    (!out.status.success()).then(|| String::from_utf8_lossy(&out.stderr).into_owned())
}

fn tempfile_dir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!(
        "kurier-tlsrpt-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn rpt6_generated_reports_validate_against_the_rfc8460_schema() {
    let sts = [
        "version: STSv1",
        "mode: enforce",
        "mx: mx.b.test",
        "max_age: 86400",
    ];
    let mut events = vec![
        TlsOutcome {
            policy_domain: "b.test".into(),
            policy_type: PolicyType::Sts,
            policy_strings: sts.iter().map(|s| s.to_string()).collect(),
            mx_host: "mx.b.test".into(),
            failure: None,
            receiving_ip: Some("192.0.2.1".into()),
            sending_ip: Some("198.51.100.7".into()),
            receiving_helo: Some("mx.b.test".into()),
            detail: None,
        },
        TlsOutcome {
            policy_domain: "b.test".into(),
            policy_type: PolicyType::NoPolicyFound,
            policy_strings: vec![],
            mx_host: "mx3.b.test".into(),
            failure: None,
            receiving_ip: None,
            sending_ip: None,
            receiving_helo: None,
            detail: None,
        },
    ];
    for (i, kind) in RESULT_TYPES.iter().enumerate() {
        events.push(TlsOutcome {
            policy_domain: "b.test".into(),
            policy_type: if i % 2 == 0 {
                PolicyType::Tlsa
            } else {
                PolicyType::Sts
            },
            policy_strings: if i % 2 == 0 {
                vec!["3 1 1 00ff".into()]
            } else {
                sts.iter().map(|s| s.to_string()).collect()
            },
            mx_host: "mx.b.test".into(),
            failure: Some(ResultType::parse(kind).unwrap()),
            receiving_ip: Some("192.0.2.1".into()),
            sending_ip: Some("198.51.100.7".into()),
            receiving_helo: Some("mx.b.test".into()),
            detail: Some(format!("the {kind} case")),
        });
    }
    let meta = ReportMeta {
        organization_name: "Kurier at a.test".into(),
        contact_info: "mailto:postmaster@a.test".into(),
        report_id: "2026-11-28.b.test@mx.a.test".into(),
        start: "2026-11-28T00:00:00Z".into(),
        end: "2026-11-29T00:00:00Z".into(),
    };
    let report = build_report(&meta, "b.test", &events);
    let text = report.to_string();
    assert_eq!(schema_errors(&text), None);
    let types: Vec<&str> = report["policies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["policy"]["policy-type"].as_str().unwrap())
        .collect();
    for t in ["tlsa", "sts", "no-policy-found"] {
        assert!(types.contains(&t), "{types:?}");
    }
    for kind in RESULT_TYPES {
        assert!(text.contains(&format!("\"{kind}\"")), "{kind}");
    }
    // The validator is not a rubber stamp.
    let mut broken = report.clone();
    broken["policies"][0]
        .as_object_mut()
        .unwrap()
        .remove("summary");
    assert!(schema_errors(&broken.to_string()).is_some());
    let mut broken = report;
    broken["policies"][0]["policy"]["policy-type"] = "dane".into();
    assert!(schema_errors(&broken.to_string()).is_some());
}

#[test]
fn rpt3_reports_in_the_layouts_of_large_reporters_parse_to_the_same_totals() {
    let mut totals = Vec::new();
    for name in [
        "report-google.json",
        "report-microsoft.json",
        "report-minimal.json",
    ] {
        let bytes = std::fs::read(fixture(name)).unwrap();
        let r = parse_report(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        let p = &r.policies[0];
        let failures: u64 = p.failures.iter().map(|(_, n)| n).sum();
        totals.push((p.policy_domain.clone(), p.successful, p.failed, failures));
    }
    assert!(
        totals
            .iter()
            .all(|t| *t == ("example.org".to_string(), 118, 2, 2)),
        "{totals:?}"
    );
}
