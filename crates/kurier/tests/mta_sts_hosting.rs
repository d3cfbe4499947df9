//! What Kurier publishes over HTTPS for its domains: the MTA-STS policy (RFC 8461 §3; TR-03108
//! STS-1) at `mta-sts.<domain>`, fetched with curl and checked by an independent parser
//! (Python), its id in `kurier dns` matching the policy; client autoconfiguration (MUA-4..MUA-6:
//! Thunderbird autoconfig and Outlook Autodiscover, read with XPath as the clients do, agreeing
//! with the SRV records of `kurier dns`); plain HTTP only redirects (WEB-1).

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod support;

use std::process::Command;

use kurier_testworld::ca::{Ca, KeyKind};
use support::Server;

const IP: &str = "127.0.10.90";

/// RFC 8461 §3.2 checked the way a sender would, in Python (not our parser).
const PY_CHECK: &str = r#"
import re, sys
text = sys.stdin.read()
lines = text.split("\r\n")
assert lines[-1] == "", "CRLF line ends"
fields = [l.split(": ", 1) for l in lines[:-1]]
keys = [k for k, _ in fields]
assert keys[0] == "version" and dict(fields)["version"] == "STSv1", keys
assert dict(fields)["mode"] in ("enforce", "testing", "none")
assert 0 <= int(dict(fields)["max_age"]) <= 31557600
mx = [v for k, v in fields if k == "mx"]
assert mx and all(re.fullmatch(r"(\*\.)?[a-z0-9-]+(\.[a-z0-9-]+)+", m) for m in mx), mx
print(dict(fields)["mode"], ",".join(mx), dict(fields)["max_age"])
"#;

#[test]
fn sts1_web1_our_policy_over_https_and_only_a_redirect_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let config = support::configured(
        dir.path(),
        IP,
        "",
        "\n[mta_sts]\nmode = \"enforce\"\nmx = [\"mx.kurier.test\", \"*.backup.kurier.test\"]\nmax_age_secs = 1209600\n",
    );
    // A certificate that names the policy host too (STS-2: no wildcard).
    let ca = Ca::new("Hosting", KeyKind::P256).unwrap();
    ca.leaf(&[
        "mx.kurier.test",
        "mta-sts.kurier.test",
        "autoconfig.kurier.test",
        "autodiscover.kurier.test",
        "kurier.test",
    ])
    .unwrap()
    .write(dir.path(), "mx")
    .unwrap();
    let ca_file = ca.write_root(&dir.path().join("ca.pem")).unwrap();
    let server = Server::configured(dir.path(), &config);

    let url = "https://mta-sts.kurier.test:8443/.well-known/mta-sts.txt";
    let curl = |args: &[&str]| {
        let out = Command::new("curl")
            .args(["-sS", "--max-redirs", "0", "--cacert"])
            .arg(&ca_file)
            .args(["--resolve", &format!("mta-sts.kurier.test:8443:{IP}")])
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    // Domains are picked up from the store within seconds.
    support::wait_until(std::time::Duration::from_secs(15), "the policy", || {
        curl(&["-D", "-", url]).starts_with("HTTP/1.1 200")
    });
    let response = curl(&["-D", "-", url]);
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/plain\r\n"),
        "{head}"
    );
    assert!(!head.to_ascii_lowercase().contains("location:"));
    let mut py = Command::new("python3")
        .args(["-c", PY_CHECK])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    py.stdin.take().unwrap().write_all(body.as_bytes()).unwrap();
    let out = py.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}\n{body}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "enforce mx.kurier.test,*.backup.kurier.test 1209600"
    );

    // Not for a domain we do not host, nor on the plain host name.
    let other = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-k"])
        .args(["--resolve", &format!("mta-sts.other.test:8443:{IP}")])
        .arg("https://mta-sts.other.test:8443/.well-known/mta-sts.txt")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&other.stdout), "404");

    // `kurier dns` names the same policy id, and the records a domain needs.
    let (code, dns, err) =
        support::run(&["dns", "kurier.test", "--config", config.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(
        dns.contains("kurier.test. IN MX 10 mx.kurier.test."),
        "{dns}"
    );
    assert!(
        dns.contains("_25._tcp.mx.kurier.test. 600 IN TLSA 3 1 1 "),
        "{dns}"
    );
    assert!(
        dns.contains("_25._tcp.mx.kurier.test. 600 IN TLSA 2 1 1 "),
        "{dns}"
    );
    assert!(
        dns.contains("mta-sts.kurier.test. IN CNAME mx.kurier.test."),
        "{dns}"
    );
    let id = dns
        .lines()
        .find_map(|l| l.split("id=").nth(1))
        .map(|s| s.trim_end_matches(['"', ' ', ')']).to_string())
        .unwrap();
    assert!(is_the_configured_policy(body), "{body:?}");
    // The id is derived from the served text, so it changes exactly when the policy does.
    let digest = openssl::sha::sha256(body.as_bytes());
    let expected: String = digest[..10].iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(id, expected);
    let (code, _, err) = support::run(&[
        "dns",
        "nothosted.test",
        "--config",
        config.to_str().unwrap(),
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("not hosted"), "{err}");
    // The MX host's address, from the listener the MX binds.
    assert!(dns.contains(&format!("mx.kurier.test. IN A {IP}")), "{dns}");
    // DANE-2 / RFC 7671 §8.1: a staged next key gets its own 3 1 1 beside the current one.
    let next = openssl::ec::EcKey::generate(
        &openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::X9_62_PRIME256V1).unwrap(),
    )
    .unwrap();
    let next = openssl::pkey::PKey::from_ec_key(next).unwrap();
    let next_file = dir.path().join("next.key");
    std::fs::write(&next_file, next.private_key_to_pem_pkcs8().unwrap()).unwrap();
    let spki_hash: String = openssl::sha::sha256(&next.public_key_to_der().unwrap())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let staged = dir.path().join("staged.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    let text = text.replacen(
        "[[tls.certificate]]\n",
        &format!(
            "[[tls.certificate]]\nnext_key = \"{}\"\n",
            next_file.display()
        ),
        1,
    );
    std::fs::write(&staged, text).unwrap();
    let (code, dns2, err) =
        support::run(&["dns", "kurier.test", "--config", staged.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let tlsa25: Vec<&str> = dns2
        .lines()
        .filter(|l| l.starts_with("_25._tcp.mx.kurier.test."))
        .collect();
    assert_eq!(tlsa25.len(), 3, "{dns2}");
    assert!(
        dns2.contains(&format!(
            "_25._tcp.mx.kurier.test. 600 IN TLSA 3 1 1 {spki_hash}"
        )),
        "{dns2}"
    );

    // MUA-4..MUA-6: what a client sees, read as Thunderbird and Outlook read it (XPath).
    let fetch = |host: &str, args: &[&str], path: &str| {
        let out = Command::new("curl")
            .args(["-sS", "--fail", "--cacert"])
            .arg(&ca_file)
            .args(["--resolve", &format!("{host}:8443:{IP}")])
            .args(args)
            .arg(format!("https://{host}:8443{path}"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{host}{path}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let tb = fetch("autoconfig.kurier.test", &[], "/mail/config-v1.1.xml");
    let well_known = fetch(
        "kurier.test",
        &[],
        "/.well-known/autoconfig/mail/config-v1.1.xml",
    );
    assert_eq!(tb, well_known);
    assert_eq!(
        xpath(&tb, "THUNDERBIRD"),
        "imap 993 SSL|pop3 995 SSL|imap 143 STARTTLS|pop3 110 STARTTLS|smtp 2465 SSL|smtp 2587 STARTTLS"
    );
    let request = "<?xml version=\"1.0\" encoding=\"utf-8\"?><Autodiscover xmlns=\"http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006\"><Request><EMailAddress>rcpt@kurier.test</EMailAddress><AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema></Request></Autodiscover>";
    for host in ["autodiscover.kurier.test", "kurier.test"] {
        let ad = fetch(
            host,
            &[
                "-X",
                "POST",
                "-H",
                "Content-Type: text/xml",
                "--data",
                request,
            ],
            "/Autodiscover/Autodiscover.xml",
        );
        assert_eq!(
            xpath(&ad, "OUTLOOK"),
            "IMAP mx.kurier.test 993 on rcpt@kurier.test|POP3 mx.kurier.test 995 on rcpt@kurier.test|SMTP mx.kurier.test 2465 on rcpt@kurier.test"
        );
    }
    // Not for other domains' addresses.
    let other = request.replace("rcpt@kurier.test", "someone@elsewhere.test");
    let out = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
        .arg(&ca_file)
        .args(["--resolve", &format!("autodiscover.kurier.test:8443:{IP}")])
        .args(["-X", "POST", "--data", &other])
        .arg("https://autodiscover.kurier.test:8443/autodiscover/autodiscover.xml")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "404");
    // The SRV records say the same (RFC 6186, RFC 8314: implicit TLS first).
    assert!(
        dns.contains("_submissions._tcp.kurier.test. IN SRV 0 1 2465 mx.kurier.test."),
        "{dns}"
    );
    assert!(
        dns.contains("_imaps._tcp.kurier.test. IN SRV 0 1 993 mx.kurier.test."),
        "{dns}"
    );
    assert!(
        dns.contains("_submission._tcp.kurier.test. IN SRV 10 1 2587 mx.kurier.test."),
        "{dns}"
    );
    assert!(
        dns.contains("autoconfig.kurier.test. IN CNAME mx.kurier.test."),
        "{dns}"
    );

    // The same as JSON, with DANE records for the client ports too (RFC 7673).
    let json = support::dns_json(&config, "kurier.test");
    let records = json["records"].as_array().unwrap();
    let has = |name: &str, kind: &str| {
        records
            .iter()
            .any(|r| r["name"] == name && r["type"] == kind)
    };
    for port in [25, 2465, 993, 2587] {
        assert!(
            has(&format!("_{port}._tcp.mx.kurier.test."), "TLSA"),
            "{port}: {json}"
        );
    }
    assert!(has("_mta-sts.kurier.test.", "TXT") && has("_imaps._tcp.kurier.test.", "SRV"));

    // WEB-1: plain HTTP answers with a redirect to HTTPS, nothing else.
    let out = Command::new("curl")
        .args(["-sS", "-I", "--max-redirs", "0"])
        .args(["--resolve", &format!("mta-sts.kurier.test:8080:{IP}")])
        .arg("http://mta-sts.kurier.test:8080/.well-known/mta-sts.txt")
        .output()
        .unwrap();
    let head = String::from_utf8_lossy(&out.stdout);
    assert!(head.starts_with("HTTP/1.1 301"), "{head}");
    assert!(
        head.contains("location: https://mta-sts.kurier.test:8443/.well-known/mta-sts.txt"),
        "{head}"
    );
    drop(server);
}

/// The served text is what our own parser reads back as the configured policy.
fn is_the_configured_policy(body: &str) -> bool {
    body == "version: STSv1\r\nmode: enforce\r\nmx: mx.kurier.test\r\nmx: *.backup.kurier.test\r\nmax_age: 1209600\r\n"
}

/// Reads client configuration the way clients do, with XPath (Python's ElementTree):
/// `THUNDERBIRD`: "type port socketType" of every server entry in order; `OUTLOOK`: "Type
/// Server Port SSL LoginName" of every Protocol.
fn xpath(xml: &str, kind: &str) -> String {
    const PY: &str = r#"
import sys, xml.etree.ElementTree as ET
root = ET.fromstring(sys.stdin.read())
if sys.argv[1] == "THUNDERBIRD":
    servers = root.findall("./emailProvider/incomingServer") + root.findall("./emailProvider/outgoingServer")
    print("|".join(f"{s.get('type')} {s.findtext('port')} {s.findtext('socketType')}" for s in servers))
else:
    ns = {"a": "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"}
    ps = root.findall("./a:Response/a:Account/a:Protocol", ns)
    print("|".join(" ".join(p.findtext(f"a:{k}", namespaces=ns) for k in ("Type", "Server", "Port", "SSL", "LoginName")) for p in ps))
"#;
    let mut py = Command::new("python3")
        .args(["-c", PY, kind])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    py.stdin.take().unwrap().write_all(xml.as_bytes()).unwrap();
    let out = py.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}\n{xml}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}
