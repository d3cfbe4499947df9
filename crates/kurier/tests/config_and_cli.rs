//! The command line with real configuration files: bad ones give one clear line and exit 2;
//! certificates reload on SIGHUP and on file change; the ICS printout.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use kurier_tls::probe::{ClientOffer, probe};
use support::{Server, run};

/// Makes a certificate + key with the system `openssl` tool (a real operator's workflow).
fn openssl_cert(dir: &Path, stem: &str, key_spec: &[&str], names: &str) -> (PathBuf, PathBuf) {
    let cert = dir.join(format!("{stem}.pem"));
    let key = dir.join(format!("{stem}.key"));
    let mut args = vec![
        "req",
        "-x509",
        "-nodes",
        "-days",
        "90",
        "-subj",
        "/CN=mail.example.org",
    ];
    args.extend_from_slice(key_spec);
    let san = format!("subjectAltName={names}");
    let ku = "keyUsage=critical,digitalSignature".to_string();
    let st = Command::new("openssl")
        .args(&args)
        .args(["-addext", &san, "-addext", &ku, "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("the openssl command is installed");
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    (cert, key)
}

fn ec_cert(dir: &Path, stem: &str, names: &str) -> (PathBuf, PathBuf) {
    openssl_cert(
        dir,
        stem,
        &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
        names,
    )
}

fn config(dir: &Path, body: &str) -> PathBuf {
    let p = dir.join("kurier.toml");
    std::fs::write(&p, body).unwrap();
    p
}

fn good_config(dir: &Path, listen: &str, extra_tls: &str) -> PathBuf {
    let (cert, key) = ec_cert(dir, "mail", "DNS:mail.example.org");
    config(
        dir,
        &format!(
            "[server]\nhostname = \"mail.example.org\"\ndata_dir = \"{data}\"\nshutdown_grace_secs = 2\n\n\
             [tls]\n{extra_tls}\n[[tls.certificate]]\ncert = \"{cert}\"\nkey = \"{key}\"\n\n\
             [web]\nlisten = [\"{listen}\"]\nlisten_http = [\"{http}\"]\n[smtp]\nlisten = [\"{smtp}\"]\n\
             [submission]\nlisten_implicit = [\"{s465}\"]\nlisten_starttls = [\"{s587}\"]\n\
             [imap]\nlisten_implicit = [\"{i993}\"]\nlisten_starttls = [\"{i143}\"]\n\
             [pop3]\nlisten_implicit = [\"{p995}\"]\nlisten_starttls = [\"{p110}\"]\n\
             [delivery]\nenabled = false\n",
            i993 = listen.replace(":8443", ":1993"),
            i143 = listen.replace(":8443", ":1143"),
            p995 = listen.replace(":8443", ":1995"),
            p110 = listen.replace(":8443", ":1110"),
            smtp = listen.replace(":8443", ":2525"),
            http = listen.replace(":8443", ":8080"),
            s465 = listen.replace(":8443", ":2465"),
            s587 = listen.replace(":8443", ":2587"),
            data = dir.join("data").display(),
            cert = cert.display(),
            key = key.display(),
        ),
    )
}

/// Asserts exit code 2 and exactly one line on stderr that contains every `needle`.
fn assert_config_error(args: &[&str], needles: &[&str]) {
    let (code, _out, err) = run(args);
    assert_eq!(code, 2, "exit code for {args:?}; stderr: {err}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line only: {err}");
    for n in needles {
        assert!(lines[0].contains(n), "{n:?} missing in: {}", lines[0]);
    }
}

fn both_commands(file: &Path, needles: &[&str]) {
    let f = file.to_str().unwrap();
    assert_config_error(&["config", "check", f], needles);
    assert_config_error(&["serve", "--config", f], needles);
}

#[test]
fn unknown_key_is_one_line_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let f = config(
        dir.path(),
        "[server]\nhostname = \"mail.example.org\"\nlisten = 25\n",
    );
    both_commands(
        &f,
        &[
            "kurier.toml:3",
            "server.listen",
            "unknown key `listen`",
            "fix:",
        ],
    );
}

#[test]
fn bad_port_is_one_line_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let f = config(dir.path(), "[web]\nlisten = [\"0.0.0.0:70000\"]\n");
    both_commands(&f, &["web.listen[0]", "0.0.0.0:70000", "fix:"]);
}

#[test]
fn missing_certificate_is_one_line_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let f = config(
        dir.path(),
        "[server]\nhostname = \"mail.example.org\"\n[[tls.certificate]]\ncert = \"/nonexistent/cert.pem\"\nkey = \"/nonexistent/key.pem\"\n",
    );
    both_commands(
        &f,
        &[
            "tls.certificate[0]",
            "/nonexistent/cert.pem",
            "No such file",
        ],
    );
    let f = config(dir.path(), "[server]\nhostname = \"mail.example.org\"\n");
    both_commands(
        &f,
        &["tls.certificate", "no certificate configured", "fix:"],
    );
}

#[test]
fn cert1_weak_rsa_key_is_one_line_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = openssl_cert(
        dir.path(),
        "weak",
        &["-newkey", "rsa:2048"],
        "DNS:mail.example.org",
    );
    let f = config(
        dir.path(),
        &format!(
            "[[tls.certificate]]\ncert = \"{}\"\nkey = \"{}\"\n",
            cert.display(),
            key.display()
        ),
    );
    both_commands(&f, &["tls.certificate[0]", "2048 bits", "3072", "CERT-1"]);
}

#[test]
fn cert1_wildcard_certificate_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = ec_cert(dir.path(), "wild", "DNS:*.example.org");
    let f = config(
        dir.path(),
        &format!(
            "[[tls.certificate]]\ncert = \"{}\"\nkey = \"{}\"\n",
            cert.display(),
            key.display()
        ),
    );
    both_commands(&f, &["wildcard", "*.example.org", "CERT-1"]);
}

#[test]
fn config_check_prints_the_effective_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let f = good_config(dir.path(), "127.0.10.20:8443", "");
    let (code, out, err) = run(&["config", "check", f.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("hostname = \"mail.example.org\""), "{out}");
    assert!(
        out.contains("reload_check_secs = 10"),
        "defaults are shown: {out}"
    );
    assert!(out.contains("mta_legacy = false"), "{out}");
    assert!(err.contains("OK"), "{err}");
}

#[test]
fn version_and_usage_errors() {
    let (code, out, _) = run(&["version"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("kurier "), "{out}");
    let (code, _, err) = run(&["serve", "--bogus"]);
    assert_eq!(code, 2, "{err}");
    let (code, _, _) = run(&["serve", "--dev", "--config", "x.toml"]);
    assert_eq!(code, 2, "--dev and --config conflict");
}

#[test]
fn dns5_tls_profile_prints_the_ics_of_the_live_profiles() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (code, out, err) = run(&[
        "tls-profile",
        "--dev",
        "--data",
        data.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let tls = v["tls"].as_array().unwrap();
    let strict = &tls[0];
    assert_eq!(strict["profile"], "strict");
    let suites: Vec<&str> = strict["tls12_suites"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["iana"].as_str().unwrap())
        .collect();
    assert!(
        suites.contains(&"0xC023") && suites.contains(&"0xC02B"),
        "{suites:?}"
    );
    assert!(!strict.to_string().contains("CHACHA") && !strict.to_string().contains("X25519"));
    assert_eq!(strict["certificates"][0]["key"], "ECDSA P-256");
    // Issue 19 item 4: every channel of the configuration, from the live config — here the
    // dev ports, port 25 on the strict context.
    let channels = strict["channels"].to_string();
    for port in [
        "8443", "2465", "2587", "1993", "1143", "1995", "1110", "2525",
    ] {
        assert!(channels.contains(&format!(":{port}")), "{port}: {channels}");
    }
    assert!(v["plain"].to_string().contains(":8080"), "{v}");
    assert_eq!(v["dnssec"]["timeout_secs"], 5);
    assert!(v["dane"].to_string().contains("DANE-EE(3)"));
    assert_eq!(v["tlsrpt_organization"], "mail.example.test");
    // The outbound client declares both of its profiles (issue 18 item 2): legacy with
    // TLS 1.0–1.2, X25519 and PKCS#1, for best effort only.
    let client = |name: &str| {
        tls.iter()
            .find(|p| p["profile"] == name)
            .unwrap_or_else(|| panic!("no {name} in {out}"))
            .clone()
    };
    let strict_client = client("client-strict").to_string();
    assert!(!strict_client.contains("X25519") && !strict_client.contains("TLSv1\""));
    assert!(strict_client.contains("HTTPS client"), "{strict_client}");
    let legacy = client("client-legacy");
    assert_eq!(legacy["versions"][0], "TLSv1");
    assert!(
        legacy["groups"].to_string().contains("X25519")
            && legacy["signature_algorithms"]
                .to_string()
                .contains("rsa_pkcs1_sha256"),
        "{legacy}"
    );

    // Port 25 with its own settings gets its own entry: the legacy profile, no session
    // tickets (issue 19 item 5), hybrid groups offered (item 6).
    let f = good_config(
        dir.path(),
        "127.0.10.21:8443",
        "mta_legacy = true\nhybrid_groups = true\n",
    );
    let text = std::fs::read_to_string(&f)
        .unwrap()
        .replace("[smtp]\n", "[smtp]\ntls_session_tickets = false\n");
    std::fs::write(&f, text).unwrap();
    let (code, out, err) = run(&["tls-profile", "--config", f.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("TLS profile \"strict\"") && out.contains("TLS profile \"mta-legacy\""),
        "{out}"
    );
    assert!(out.contains("brainpoolP256r1tls13"), "{out}");
    assert!(
        out.contains("groups:     SecP256r1MLKEM768, SecP384r1MLKEM1024, brainpoolP256r1tls13")
            && !out.contains("X25519MLKEM768"),
        "{out}"
    );
    let legacy_part = &out[out.find("TLS profile \"mta-legacy\"").unwrap()..];
    assert!(
        legacy_part.contains("session tickets: off") && legacy_part.contains("SMTP MX"),
        "{legacy_part}"
    );
    assert!(
        out.contains("DNSSEC validation: libunbound")
            && out.contains("algorithms validated: 8 RSASHA256, 13 ECDSAP256SHA256, 14 ECDSAP384SHA384, 15 ED25519")
            && out.contains("not supported (zones signed only with these are insecure, RFC 6840 §5.2): 16 ED448"),
        "{out}"
    );
    let (code, html, err) = run(&["tls-profile", "--html", "--config", f.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(
        html.starts_with("<!DOCTYPE html>")
            && html.contains("<h2>TLS profile mta-legacy</h2>")
            && html.contains("TLSRPT organization-name"),
        "{html}"
    );
}

/// Issue 16 item 8: a data folder that does not exist (a volume that failed to mount) stops
/// `serve` and the admin commands with one line naming the fix, and creates nothing; `kurier
/// init` (or `serve --create`) makes it on the first start.
#[test]
fn a_missing_data_dir_is_an_error_until_init() {
    let dir = tempfile::tempdir().unwrap();
    let f = good_config(dir.path(), "127.0.10.24:8443", "");
    let f = f.to_str().unwrap();
    let needles = [
        "server.data_dir",
        "does not exist",
        "kurier init",
        "mounted",
    ];
    for args in [
        &["domain", "add", "example.org", "--config", f][..],
        &["user", "list", "--config", f],
    ] {
        assert_config_error(args, &needles);
    }
    // serve logs the certificates it loaded first; its last line is the error.
    let (code, _, err) = run(&["serve", "--config", f]);
    assert_eq!(code, 2, "{err}");
    let last = err.lines().rfind(|l| !l.trim().is_empty()).unwrap();
    assert!(needles.iter().all(|n| last.contains(n)), "{err}");
    assert!(!dir.path().join("data").exists(), "nothing was created");
    let (code, out, err) = run(&["init", "--config", f]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("created data folder"), "{out}");
    assert!(dir.path().join("data/kurier.db").exists());
    let (code, out, err) = run(&["init", "--config", f]);
    assert_eq!(code, 0, "init twice is harmless: {err}");
    assert!(out.contains("ready"), "{out}");
    let (code, _, err) = run(&["domain", "add", "example.org", "--config", f]);
    assert_eq!(code, 0, "{err}");
}

fn served_names(ip: &str) -> Vec<String> {
    let facts = probe(support::addr(ip), &ClientOffer::default()).unwrap();
    kurier_tls::certificate::dns_names(&facts.peer_chain[0])
}

#[test]
fn certificates_reload_on_sighup_and_keep_serving_on_a_bad_file() {
    let dir = tempfile::tempdir().unwrap();
    let ip = "127.0.10.22";
    // No DNS here: the TLSA check of a reload has its own test (dane_rollover.rs).
    let f = good_config(
        dir.path(),
        &format!("{ip}:8443"),
        "reload_check_secs = 0\ndane_rollover_check = false\n",
    );
    let server = Server::start(
        &["serve", "--create", "--config", f.to_str().unwrap()],
        dir.path(),
    );
    server.wait_for_log("Kurier started");
    assert_eq!(served_names(ip), ["mail.example.org"]);
    // Same file names, new content.
    ec_cert(
        dir.path(),
        "mail",
        "DNS:mail.example.org,DNS:mx2.example.org",
    );
    server.signal(libc::SIGHUP);
    server.wait_for_log("certificates reloaded");
    assert_eq!(served_names(ip), ["mail.example.org", "mx2.example.org"]);
    // A weak key: the reload fails loudly, the good certificate stays.
    openssl_cert(
        dir.path(),
        "mail",
        &["-newkey", "rsa:2048"],
        "DNS:weak.example.org",
    );
    server.signal(libc::SIGHUP);
    server.wait_for_log("certificate reload failed");
    assert_eq!(served_names(ip), ["mail.example.org", "mx2.example.org"]);
}

#[test]
fn certificates_reload_when_the_files_change() {
    let dir = tempfile::tempdir().unwrap();
    let ip = "127.0.10.23";
    // No DNS here: the TLSA check of a reload has its own test (dane_rollover.rs).
    let f = good_config(
        dir.path(),
        &format!("{ip}:8443"),
        "reload_check_secs = 1\ndane_rollover_check = false\n",
    );
    let (code, _, err) = run(&["init", "--config", f.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let server = Server::start(&["serve", "--config", f.to_str().unwrap()], dir.path());
    server.wait_for_log("Kurier started");
    assert_eq!(served_names(ip), ["mail.example.org"]);
    std::thread::sleep(Duration::from_millis(1100));
    ec_cert(
        dir.path(),
        "mail",
        "DNS:mail.example.org,DNS:new.example.org",
    );
    server.wait_for_log("certificate files changed");
    server.wait_for_log("certificates reloaded");
    assert_eq!(served_names(ip), ["mail.example.org", "new.example.org"]);
}

/// Issue 19 item 3 (CERT-1, CERT-3), bad input: a chain with a weak intermediate, one with a
/// SHA-1-signed intermediate, an expired intermediate and a SHA-1-signed leaf — each is one
/// clear line at `config check`, and at a reload the old certificate keeps serving.
#[test]
fn cert1_a_bad_chain_is_one_line_at_config_check_and_at_reload() {
    use kurier_testworld::ca::{Ca, IntermediateFlaw, KeyKind, LeafSpec};
    let dir = tempfile::tempdir().unwrap();
    let ip = "127.0.10.24";
    // No DNS here: the TLSA check of a reload has its own test (dane_rollover.rs).
    let f = good_config(
        dir.path(),
        &format!("{ip}:8443"),
        "reload_check_secs = 0\ndane_rollover_check = false\n",
    );
    let name = ["mail.example.org"];
    let bad = [
        (
            Ca::flawed("Weak", IntermediateFlaw::WeakKey)
                .unwrap()
                .leaf(&name)
                .unwrap(),
            "2048 bits",
        ),
        (
            Ca::flawed("Old", IntermediateFlaw::Sha1Signature)
                .unwrap()
                .leaf(&name)
                .unwrap(),
            "SHA-1",
        ),
        (
            Ca::flawed("Past", IntermediateFlaw::Expired)
                .unwrap()
                .leaf(&name)
                .unwrap(),
            "expired",
        ),
        (
            Ca::new("Good", KeyKind::P256)
                .unwrap()
                .issue(&LeafSpec::new(&name).sha1())
                .unwrap(),
            "SHA-1",
        ),
    ];
    let good = ec_cert(dir.path(), "mail", "DNS:mail.example.org");
    let keep = |from: &Path, to: &Path| std::fs::copy(from, to).unwrap();
    let saved = (dir.path().join("good.pem"), dir.path().join("good.key"));
    keep(&good.0, &saved.0);
    keep(&good.1, &saved.1);
    for (i, (leaf, says)) in bad.iter().enumerate() {
        leaf.write(dir.path(), "mail").unwrap();
        let (code, _, err) = run(&["config", "check", f.to_str().unwrap()]);
        assert_ne!(code, 0, "case {i}");
        let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "case {i}: one line: {err}");
        assert!(
            lines[0].contains("tls.certificate[0]") && lines[0].contains(says),
            "case {i}: {err}"
        );
    }
    keep(&saved.0, &good.0);
    keep(&saved.1, &good.1);
    let server = Server::start(
        &["serve", "--create", "--config", f.to_str().unwrap()],
        dir.path(),
    );
    server.wait_for_log("Kurier started");
    let fingerprint = || {
        let facts = probe(support::addr(ip), &ClientOffer::default()).unwrap();
        facts.peer_chain[0]
            .digest(openssl::hash::MessageDigest::sha256())
            .unwrap()
            .to_vec()
    };
    let serving = fingerprint();
    for (n, (leaf, says)) in bad.iter().enumerate() {
        leaf.write(dir.path(), "mail").unwrap();
        server.signal(libc::SIGHUP);
        support::wait_until(Duration::from_secs(10), "the failed reload", || {
            server.stderr().matches("certificate reload failed").count() > n
        });
        let log = server.stderr();
        let line = log
            .lines()
            .filter(|l| l.contains("certificate reload failed"))
            .nth(n)
            .unwrap();
        assert!(line.contains(says), "{line}");
        assert_eq!(fingerprint(), serving, "the old certificate keeps serving");
    }
}
