//! An independent scan of the dev HTTPS listener by testssl.sh (Debian package `testssl.sh`),
//! whose JSON is checked against the allowed lists of TR-03108 §2 / TR-03116-4 (written out below) — not against our own
//! profile lists, so that a mistake in those shows up here.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod support;

use std::collections::HashMap;
use std::process::Command;

use support::Server;

/// TR-03116-4 as TR-03108 §2 summarises it: TLS 1.2 with ECDHE only, and TLS 1.3, as testssl
/// writes the codes.
const ALLOWED_SUITES: &[&str] = &[
    "xc02b", "xc02c", "xc02f", "xc030", "xc0ac", "xc0ad", "xc023", "xc024", "xc027", "xc028",
    "x1301", "x1302", "x1304",
];
const ALLOWED_CURVES: &[&str] = &[
    "prime256v1",
    "secp384r1",
    "secp521r1",
    "brainpoolP256r1",
    "brainpoolP384r1",
    "brainpoolP512r1",
];
const ALLOWED_DH_GROUPS: &[&str] = &["ffdhe3072", "ffdhe4096"];

/// Runs testssl.sh against `ip` with `args` (its target last); returns id → finding.
fn scan(dir: &std::path::Path, ip: &str, args: &[&str]) -> (HashMap<String, String>, String) {
    let testssl = ["testssl", "testssl.sh"]
        .into_iter()
        .find(|c| Command::new(c).arg("--version").output().is_ok())
        .expect("testssl.sh is not installed: run scripts/test.sh (it installs the Debian package testssl.sh)");
    let json = dir.join("testssl.json");
    let out = Command::new(testssl)
        .args([
            "--quiet",
            "--color",
            "0",
            "--nodns=none",
            "--warnings",
            "off",
            "--ip",
            ip,
        ])
        .args(["-p", "-E", "-f", "-S", "-R", "-C", "-H", "--jsonfile"])
        .arg(&json)
        .args(args)
        .output()
        .unwrap();
    let text = std::fs::read_to_string(&json).unwrap_or_else(|e| {
        panic!(
            "no JSON from testssl ({e}); it printed:\n{}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    let entries: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
    let findings = entries
        .iter()
        .map(|e| {
            (
                e["id"].as_str().unwrap_or("").to_string(),
                e["finding"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    (findings, text)
}

/// Everything TR-03108 §2 demands of a strict endpoint, checked on testssl's findings.
fn assert_tr03108_profile(findings: &HashMap<String, String>, text: &str) {
    let get = |id: &str| {
        findings
            .get(id)
            .unwrap_or_else(|| panic!("testssl reported no {id}:\n{text}"))
            .as_str()
    };
    // TLS-1: only TLS 1.2 and 1.3.
    for old in ["SSLv2", "SSLv3", "TLS1", "TLS1_1"] {
        assert!(get(old).contains("not offered"), "{old}: {}", get(old));
    }
    assert!(get("TLS1_2").starts_with("offered"), "{}", get("TLS1_2"));
    assert!(get("TLS1_3").starts_with("offered"), "{}", get("TLS1_3"));
    // TLS-2: every suite the server accepts is on the list; no ChaCha20.
    let suites: Vec<&str> = findings
        .keys()
        .filter_map(|k| k.strip_prefix("cipher-"))
        .collect();
    assert!(
        suites.len() >= 6,
        "testssl enumerated too few suites: {suites:?}"
    );
    for s in &suites {
        let code = s.rsplit('_').next().unwrap();
        assert!(
            ALLOWED_SUITES.contains(&code),
            "suite {s} is not allowed by TR-03108 §2.2/§2.3"
        );
    }
    assert!(
        !text.to_uppercase().contains("CHACHA"),
        "ChaCha20 must not be offered"
    );
    // TLS-3: a mandatory suite for the ECDSA certificate.
    assert!(
        suites
            .iter()
            .any(|s| s.ends_with("xc02b") || s.ends_with("xc023")),
        "{suites:?}"
    );
    // TLS-2/TLS-5: curves and DH groups.
    for c in get("PFS_ECDHE_curves").split_whitespace() {
        assert!(
            ALLOWED_CURVES.contains(&c),
            "curve {c} is not allowed (no X25519/X448)"
        );
    }
    if let Some(groups) = findings.get("DH_groups") {
        for g in groups.split_whitespace() {
            assert!(
                ALLOWED_DH_GROUPS.contains(&g),
                "DH group {g} is not allowed"
            );
        }
    }
    // TLS-6: no client-initiated renegotiation, no compression, no heartbeat.
    assert!(
        get("secure_client_renego").contains("not vulnerable"),
        "{}",
        get("secure_client_renego")
    );
    assert!(
        get("CRIME_TLS").contains("not vulnerable"),
        "{}",
        get("CRIME_TLS")
    );
    assert!(
        get("heartbleed").contains("not vulnerable"),
        "{}",
        get("heartbleed")
    );
    // CERT-1: the dev certificate is ECDSA P-256.
    assert!(
        get("cert_keySize").contains("EC 256"),
        "{}",
        get("cert_keySize")
    );
}

/// DNS-5: `kurier check`'s enumeration of the same port (its ICS as scanned) names the suites
/// and curves testssl found, no more and no fewer.
fn assert_same_enumeration(
    findings: &HashMap<String, String>,
    addr: std::net::SocketAddr,
    start: kurier_audit::tls_scan::Start,
) {
    use std::collections::BTreeSet;
    let ics = kurier_audit::tls_scan::enumerate(&kurier_audit::tls_scan::Endpoint {
        host: "localhost".into(),
        addr,
        start,
        legacy_allowed: false,
    });
    let testssl_suites: BTreeSet<String> = findings
        .iter()
        .filter(|(k, _)| k.starts_with("cipher-"))
        .filter_map(|(_, f)| {
            // e.g. "TLS 1.2  xc02b  ECDHE-ECDSA-AES128-GCM-SHA256  ECDH 256 …": the name follows
            // the hex code.
            let words: Vec<&str> = f.split_whitespace().collect();
            let code = words.iter().position(|w| {
                w.len() > 1 && w.starts_with('x') && w[1..].chars().all(|c| c.is_ascii_hexdigit())
            })?;
            words.get(code + 1).map(|n| n.to_string())
        })
        .collect();
    let ours: BTreeSet<String> = ics.suites.iter().cloned().collect();
    assert_eq!(ours, testssl_suites, "suites: kurier check vs testssl.sh");
    let openssl_name = |g: &str| match g {
        "P-256" => "prime256v1".to_string(),
        "P-384" => "secp384r1".to_string(),
        "P-521" => "secp521r1".to_string(),
        other => other.trim_end_matches("tls13").to_string(),
    };
    let ours: BTreeSet<String> = ics
        .groups
        .iter()
        .filter(|g| !g.starts_with("ffdhe"))
        .map(|g| openssl_name(g))
        .collect();
    let theirs: BTreeSet<String> = findings["PFS_ECDHE_curves"]
        .split_whitespace()
        .map(str::to_string)
        .collect();
    // testssl.sh on Debian 12 runs Debian's OpenSSL 3.0, which cannot offer the brainpool
    // groups; those are the only ones it may miss (TLS-5 is tested on its own).
    assert!(
        theirs.is_subset(&ours),
        "curves: testssl.sh {theirs:?}, kurier check {ours:?}"
    );
    assert!(
        ours.difference(&theirs).all(|g| g.starts_with("brainpool")),
        "curves: testssl.sh {theirs:?}, kurier check {ours:?}"
    );
    assert_eq!(ics.versions, ["TLSv1.3", "TLSv1.2"]);
    assert!(ics.not_allowed().is_empty(), "{ics:?}");
}

#[test]
fn tls1_tls2_tls6_testssl_scan_of_the_dev_https_listener_shows_only_allowed_parameters() {
    let dir = tempfile::tempdir().unwrap();
    let ip = "127.0.10.30";
    let _server = Server::dev(dir.path(), ip);
    let (findings, text) = scan(dir.path(), ip, &["https://localhost:8443/"]);
    assert_tr03108_profile(&findings, &text);
    assert_same_enumeration(
        &findings,
        format!("{ip}:8443").parse().unwrap(),
        kurier_audit::tls_scan::Start::Implicit,
    );
}

#[test]
fn smtp1_testssl_starttls_scan_of_the_dev_mx_shows_only_allowed_parameters() {
    let dir = tempfile::tempdir().unwrap();
    let ip = "127.0.10.31";
    let _server = Server::dev(dir.path(), ip);
    let (findings, text) = scan(dir.path(), ip, &["--starttls", "smtp", "localhost:2525"]);
    assert_tr03108_profile(&findings, &text);
    assert!(
        findings.get("PFS").is_some_and(|f| f.contains("offered")),
        "ECDHE (forward secrecy) negotiated"
    );
    assert_same_enumeration(
        &findings,
        format!("{ip}:2525").parse().unwrap(),
        kurier_audit::tls_scan::Start::Smtp,
    );
}

#[test]
fn mua2_testssl_starttls_scan_of_the_dev_imap_port_shows_only_allowed_parameters() {
    let dir = tempfile::tempdir().unwrap();
    let ip = "127.0.10.32";
    let _server = Server::dev(dir.path(), ip);
    let (findings, text) = scan(dir.path(), ip, &["--starttls", "imap", "localhost:1143"]);
    assert_tr03108_profile(&findings, &text);
    assert_same_enumeration(
        &findings,
        format!("{ip}:1143").parse().unwrap(),
        kurier_audit::tls_scan::Start::Imap,
    );
}

/// Issue 19: testssl.sh on every other port of the dev server too — submission (implicit and
/// STARTTLS), IMAPS, POP3S and POP3 with STARTTLS — each with only allowed parameters.
#[test]
fn mua1_mua2_testssl_scans_of_the_remaining_dev_ports_show_only_allowed_parameters() {
    let dir = tempfile::tempdir().unwrap();
    let ip = "127.0.10.33";
    let _server = Server::dev(dir.path(), ip);
    let ports: [(&[&str], &str); 5] = [
        (&[], "2465"),
        (&["--starttls", "smtp"], "2587"),
        (&[], "1993"),
        (&[], "1995"),
        (&["--starttls", "pop3"], "1110"),
    ];
    std::thread::scope(|s| {
        for (args, port) in ports {
            let dir = dir.path().join(port);
            std::fs::create_dir_all(&dir).unwrap();
            s.spawn(move || {
                let target = format!("localhost:{port}");
                let mut all: Vec<&str> = args.to_vec();
                all.push(&target);
                let (findings, text) = scan(&dir, ip, &all);
                assert_tr03108_profile(&findings, &text);
            });
        }
    });
}

/// The path of the independent OpenSSL ≥ 3.5 `openssl` tool scripts/test.sh builds
/// (scripts/openssl-cli.sh): Debian's 3.0 cannot offer TLS 1.3 brainpool groups.
fn independent_openssl() -> String {
    std::env::var("KURIER_TEST_OPENSSL").expect(
        "KURIER_TEST_OPENSSL is not set: run scripts/test.sh, which builds an openssl tool from the vendored OpenSSL source (scripts/openssl-cli.sh)",
    )
}

/// TLS-5 (issue 19), checked without Kurier's code: `openssl s_client` offering only a
/// brainpool group gets it, in TLS 1.3 (brainpoolP256r1tls13, RFC 8734) and in TLS 1.2
/// (brainpoolP256r1), on every port of the dev server.
#[test]
fn tls5_an_independent_client_gets_brainpool_in_tls_1_3_and_1_2_on_every_port() {
    let openssl = independent_openssl();
    let dir = tempfile::tempdir().unwrap();
    let ip = "127.0.10.34";
    let _server = Server::dev(dir.path(), ip);
    let ports: [(&str, Option<&str>); 8] = [
        ("8443", None),
        ("2465", None),
        ("2587", Some("smtp")),
        ("2525", Some("smtp")),
        ("1993", None),
        ("1143", Some("imap")),
        ("1995", None),
        ("1110", Some("pop3")),
    ];
    for (port, starttls) in ports {
        for (version, group, curve, protocol) in [
            ("-tls1_3", "brainpoolP256r1tls13", "P-256", "TLSv1.3"),
            ("-tls1_2", "brainpoolP256r1", "P-256", "TLSv1.2"),
        ] {
            // TLS 1.2: the certificate's curve must be offered too (RFC 8422 §5.1); the
            // server's preference then picks brainpool for the key exchange.
            let groups = if version == "-tls1_2" {
                format!("{group}:{curve}")
            } else {
                group.to_string()
            };
            let mut cmd = Command::new(&openssl);
            cmd.args(["s_client", "-connect", &format!("{ip}:{port}"), version]);
            cmd.args([
                "-groups",
                &groups,
                "-servername",
                "mail.example.test",
                "-brief",
            ]);
            if let Some(p) = starttls {
                cmd.args(["-starttls", p]);
            }
            let out = cmd.stdin(std::process::Stdio::null()).output().unwrap();
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            // s_client names the curve of both brainpoolP256r1 groups "brainpoolP256r1".
            assert!(
                text.contains(&format!("Protocol version: {protocol}"))
                    && text.contains("Peer Temp Key: ECDH, brainpoolP256r1, 256 bits"),
                "{port} {version}: {text}"
            );
        }
    }
}
