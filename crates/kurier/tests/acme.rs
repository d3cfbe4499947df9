//! Issue 21 item 1 (CERT-1..CERT-3, STS-2, MUA-5/6; RFC 8555): certificates from a real ACME
//! server — Debian's pebble, validating HTTP-01 against Kurier's port-80 listener, with
//! pebble-challtestsrv as its DNS — for `server.hostname` and the `mta-sts.`, `autoconfig.` and
//! `autodiscover.` names of every hosted domain; a domain added later is ordered for; the key
//! (and so the `3 1 1` TLSA record) never changes; a chain that fails the certificate rules
//! (pebble's RSA-2048 intermediate) and a CA that is down leave the current certificate serving.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod support;

use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kurier_testworld::ca::{Ca, KeyKind};
use kurier_tls::tlsa::{Matching, Selector, TlsaRecord, Usage};
use support::Server;

/// A helper process, killed with the test.
struct Helper(Child);

impl Drop for Helper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(cmd: &mut Command, log: &Path) -> Helper {
    let out = std::fs::File::create(log).unwrap();
    let err = out.try_clone().unwrap();
    Helper(
        cmd.stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {cmd:?}: {e} (scripts/test.sh installs pebble)")
            }),
    )
}

fn wait_for_port(addr: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {addr}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Which pebble, and how.
struct PebbleSpec {
    /// Debian's (RSA-2048 CA keys), or the ECDSA build of scripts/pebble-ecdsa.sh.
    program: String,
    port: u16,
    /// Where every name resolves for pebble's validations (challtestsrv's answer).
    target_ip: String,
    /// Certificate lifetime in seconds (pebble's default: five years).
    validity_secs: Option<u64>,
}

impl PebbleSpec {
    fn debian(port: u16, target_ip: &str) -> Self {
        PebbleSpec {
            program: "pebble".into(),
            port,
            target_ip: target_ip.into(),
            validity_secs: None,
        }
    }

    /// Pebble with ECDSA P-384 CA keys, so that its chains pass CERT-1 (scripts/test.sh builds
    /// it from Debian's source and names it in KURIER_TEST_PEBBLE_ECDSA).
    fn ecdsa(port: u16, target_ip: &str, validity_secs: u64) -> Self {
        let program = std::env::var("KURIER_TEST_PEBBLE_ECDSA").unwrap_or_else(|_| {
            let built = concat!(env!("CARGO_MANIFEST_DIR"), "/../../target/test-tools/pebble-ecdsa");
            assert!(
                Path::new(built).exists(),
                "KURIER_TEST_PEBBLE_ECDSA is not set: run scripts/test.sh (or scripts/pebble-ecdsa.sh)"
            );
            built.into()
        });
        PebbleSpec {
            program,
            port,
            target_ip: target_ip.into(),
            validity_secs: Some(validity_secs),
        }
    }
}

/// pebble on `localhost:<port>` (its HTTPS certificate from `ca`), validating against
/// `target_ip`, port 8080 for HTTP-01; returns the helpers and the path of pebble's root.
fn pebble(dir: &Path, spec: &PebbleSpec, ca: &Ca) -> (Vec<Helper>, std::path::PathBuf) {
    let (port, target_ip) = (spec.port, spec.target_ip.as_str());
    let (cert, key) = ca
        .leaf(&["localhost"])
        .unwrap()
        .write(dir, "pebble-https")
        .unwrap();
    let dns = format!("127.0.0.1:{}", port + 4000);
    let challtest = spawn(
        Command::new("pebble-challtestsrv").args([
            "-dns01",
            &dns,
            "-http01",
            "",
            "-https01",
            "",
            "-tlsalpn01",
            "",
            "-management",
            &format!("127.0.0.1:{}", port + 4100),
            "-defaultIPv4",
            target_ip,
            "-defaultIPv6",
            "",
        ]),
        &dir.join("challtestsrv.log"),
    );
    let config = dir.join("pebble.json");
    let mut settings = serde_json::json!({
        "listenAddress": format!("127.0.0.1:{port}"),
        "managementListenAddress": format!("127.0.0.1:{}", port + 1000),
        "certificate": cert,
        "privateKey": key,
        "httpPort": 8080,
        "tlsPort": 8443,
        "ocspResponderURL": "",
        "externalAccountBindingRequired": false
    });
    if let Some(secs) = spec.validity_secs {
        settings["certificateValidityPeriod"] = secs.into();
    }
    std::fs::write(
        &config,
        serde_json::json!({ "pebble": settings }).to_string(),
    )
    .unwrap();
    let pebble = spawn(
        Command::new(&spec.program)
            .arg("-config")
            .arg(&config)
            .args(["-dnsserver", &dns])
            // Validations at once; every tenth nonce refused (RFC 8555 §6.5: the client retries).
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "10"),
        &dir.join("pebble.log"),
    );
    wait_for_port(&format!("127.0.0.1:{port}"));
    wait_for_port(&format!("127.0.0.1:{}", port + 1000));
    // Pebble makes a new root at every start; the chain check (CERT-3) must trust it.
    let root = dir.join("pebble-root.pem");
    let https_root = ca.write_root(&dir.join("pebble-https-root.pem")).unwrap();
    let pem = support::curl(
        &https_root,
        "localhost",
        port + 1000,
        "127.0.0.1",
        "/roots/0",
        None,
    );
    std::fs::write(&root, pem).unwrap();
    (vec![challtest, pebble], root)
}

struct ServedCert {
    names: Vec<String>,
    tlsa: String,
    serial: String,
    issuer: String,
}

fn served(ip: &str) -> ServedCert {
    let tcp = TcpStream::connect(format!("{ip}:2465")).unwrap();
    let tls = support::tls_unverified(tcp, "mx.kurier.test").unwrap();
    let leaf = tls.ssl().peer_certificate().unwrap();
    let mut names = kurier_tls::certificate::dns_names(&leaf);
    names.sort();
    let issuer = leaf
        .issuer_name()
        .entries()
        .map(|e| String::from_utf8_lossy(e.data().as_slice()).into_owned())
        .collect::<Vec<_>>()
        .join(", ");
    ServedCert {
        names,
        serial: leaf
            .serial_number()
            .to_bn()
            .unwrap()
            .to_hex_str()
            .unwrap()
            .to_string(),
        issuer,
        tlsa: TlsaRecord::for_certificate(&leaf, Usage::DaneEe, Selector::Spki, Matching::Sha256)
            .unwrap()
            .rdata(),
    }
}

fn config(
    dir: &Path,
    ip: &str,
    directory: &str,
    ca_bundle: &Path,
    extra: &str,
) -> std::path::PathBuf {
    support::configured(
        dir,
        ip,
        "",
        &format!(
            "\n[acme]\nenabled = true\ndirectory = \"{directory}\"\nca_bundle = \"{}\"\n\
             contact = [\"mailto:postmaster@kurier.test\"]\ncheck_secs = 2\n{extra}",
            ca_bundle.display()
        ),
    )
}

/// `config` for pebble on `port`: its directory, its DNS (no DNSSEC there), its root trusted
/// for the chain check. `acme` goes into `[acme]`. Pebble's DNS answers no TLSA queries
/// (NOTIMP), so a test whose chain must go live turns the rollover guard off
/// (`rollover_check`); DANE rollover has tests of its own (`cert1_dane3_*`, dane_rollover.rs).
fn pebble_config(
    dir: &Path,
    ip: &str,
    port: u16,
    acme: &str,
    rollover_check: bool,
) -> std::path::PathBuf {
    let extra = format!(
        "{acme}[dns]\ndnssec = \"off\"\nupstream = [\"127.0.0.1:{}\"]\ntimeout_secs = 2\n\
         [tls]\ntrusted_roots = \"{}\"\ndane_rollover_check = {rollover_check}\n",
        port + 4000,
        dir.join("pebble-root.pem").display()
    );
    config(
        dir,
        ip,
        &format!("https://localhost:{port}/dir"),
        &dir.join("pebble-https-root.pem"),
        &extra,
    )
}

/// The whole RFC 8555 exchange against pebble: account (with refused nonces retried), an
/// order for every name, HTTP-01 validated by pebble on Kurier's port-80 listener, the CSR,
/// the download. Pebble's CA keys are RSA-2048 (its `ca.go` has no other), so the chain ends
/// at Kurier's own CERT-1 check: it is refused before it touches the disk, the bootstrap
/// certificate keeps serving, and the next try (backoff) orders again — with the names of a
/// domain added meanwhile.
#[test]
fn cert1_acme_orders_every_name_from_pebble_and_checks_the_chain_before_use() {
    let dir = tempfile::tempdir().unwrap();
    let ip = "127.0.10.87";
    let port = 14087;
    let ca = Ca::new("Pebble HTTPS", KeyKind::P256).unwrap();
    let _helpers = pebble(dir.path(), &PebbleSpec::debian(port, ip), &ca);
    // The chain is refused before the rollover guard would look at it.
    let config = pebble_config(dir.path(), ip, port, "", true);
    let server = Server::configured(dir.path(), &config);
    server.wait_for_log("Kurier started");
    let bootstrap = served(ip);
    assert_eq!(bootstrap.names, ["mx.kurier.test"]);
    let bootstrap_pem = std::fs::read(dir.path().join("data/acme/cert.pem")).unwrap();

    let refusals = |n: usize| {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let log = server.stderr();
            if log
                .matches("the CA issued a certificate Kurier cannot serve")
                .count()
                >= n
            {
                return log;
            }
            assert!(Instant::now() < deadline, "no refusal {n}:\n{log}");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let log = refusals(1);
    let line = log.lines().find(|l| l.contains("cannot serve")).unwrap();
    assert!(
        line.contains("Pebble Intermediate CA")
            && line.contains("RSA key has 2048 bits")
            && line.contains("CERT-1"),
        "{line}"
    );
    // Pebble did issue, for our key (the chain check got as far as the intermediate).
    let pebble_log = std::fs::read_to_string(dir.path().join("pebble.log")).unwrap();
    assert!(
        pebble_log.contains("Issued certificate serial"),
        "{pebble_log}"
    );
    for name in [
        "mx.kurier.test",
        "mta-sts.kurier.test",
        "autoconfig.kurier.test",
        "autodiscover.kurier.test",
    ] {
        assert!(
            log.lines()
                .any(|l| l.contains("ordering a certificate") && l.contains(name)),
            "{name}: {log}"
        );
    }
    // Nothing unusable on disk, the bootstrap certificate serves, with the same key.
    assert_eq!(
        std::fs::read(dir.path().join("data/acme/cert.pem")).unwrap(),
        bootstrap_pem
    );
    assert!(!dir.path().join("data/acme/cert.pem.new").exists());
    assert_eq!(served(ip).tlsa, bootstrap.tlsa);

    // `kurier domain add`: the next order names the new domain's hosts as well.
    support::admin(&config, &["domain", "add", "new.test"], "");
    support::wait_until(Duration::from_secs(60), "an order for new.test", || {
        server
            .stderr()
            .lines()
            .any(|l| l.contains("ordering a certificate") && l.contains("mta-sts.new.test"))
    });
    let n = server.stderr().matches("cannot serve").count();
    refusals(n + 1);
    assert_eq!(served(ip).tlsa, bootstrap.tlsa, "the key never changes");
}

/// RFC 8737: with `challenge = "tls-alpn-01"` the CA validates each name on the HTTPS
/// listener (pebble's port 8443 stands for 443), and no plain-HTTP listener is needed at all.
/// The ECDSA pebble's chain passes CERT-1, so the issued certificate serves.
#[test]
fn cert1_acme_tls_alpn_01_validates_on_the_https_listener_without_port_80() {
    let dir = tempfile::tempdir().unwrap();
    let ip = "127.0.10.92";
    let port = 14093;
    let ca = Ca::new("Pebble HTTPS", KeyKind::P256).unwrap();
    let _helpers = pebble(dir.path(), &PebbleSpec::ecdsa(port, ip, 3600), &ca);
    let config = pebble_config(dir.path(), ip, port, "challenge = \"tls-alpn-01\"\n", false);
    let text = std::fs::read_to_string(&config).unwrap();
    let no_http = text.replace(
        &format!("listen_http = [\"{ip}:8080\"]"),
        "listen_http = []",
    );
    assert_ne!(text, no_http);
    std::fs::write(&config, no_http).unwrap();
    let server = Server::configured(dir.path(), &config);
    server.wait_for_log("Kurier started");
    assert!(
        TcpStream::connect(format!("{ip}:8080")).is_err(),
        "no port-80 listener"
    );

    support::wait_until(Duration::from_secs(60), "a certificate from pebble", || {
        served(ip).issuer.contains("Pebble Intermediate")
    });
    let names = [
        "autoconfig.kurier.test",
        "autodiscover.kurier.test",
        "mta-sts.kurier.test",
        "mx.kurier.test",
    ];
    assert_eq!(served(ip).names, names);
    let log = server.stderr();
    for name in names {
        assert!(
            log.lines()
                .any(|l| l.contains("answered a TLS-ALPN-01 challenge") && l.contains(name)),
            "{name}: {log}"
        );
    }
}

/// Bad input: an ACME server that is not there. The bootstrap certificate keeps serving, the
/// error says what failed, and the next try waits (a minute, doubling, at most check_secs).
#[test]
fn cert1_acme_down_leaves_the_current_certificate_serving() {
    let dir = tempfile::tempdir().unwrap();
    let ip = "127.0.10.88";
    let ca = Ca::new("Nobody", KeyKind::P256).unwrap();
    let root = ca.write_root(&dir.path().join("root.pem")).unwrap();
    // Nothing listens on port 9 of this address.
    let config = config(
        dir.path(),
        ip,
        &format!("https://{ip}:9/dir"),
        &root,
        "[tls]\ndane_rollover_check = false\n",
    );
    let server = Server::configured(dir.path(), &config);
    let line = server.log_line("ACME order failed; the current certificate keeps serving");
    assert!(
        line.contains(&format!("https://{ip}:9/dir")) && line.contains("retry_secs=2"),
        "{line}"
    );
    assert_eq!(served(ip).names, ["mx.kurier.test"]);
    assert!(dir.path().join("data/acme/account.key").exists());
    // Item 4: the failures are on /metrics (the bootstrap certificate is its own anchor here).
    let metrics = support::curl(
        &dir.path().join("data/acme/cert.pem"),
        "mx.kurier.test",
        8443,
        ip,
        "/metrics",
        None,
    );
    let failures: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("kurier_acme_order_failures "))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{metrics}"));
    assert!(failures >= 1, "{metrics}");
}

/// Bad input: a full disk. `data/acme` is a 64 KiB tmpfs, filled up, in a mount namespace of
/// Kurier's own (`unshare -m`: nothing leaks to the host). Pebble issues, writing the chain
/// fails: the error says where and why, nothing half-written stays behind, the bootstrap
/// certificate keeps serving, and the order is retried with backoff. Once there is room again
/// the next try serves pebble's certificate.
#[test]
fn cert1_acme_a_full_disk_keeps_the_current_certificate_and_retries() {
    let dir = tempfile::tempdir().unwrap();
    let ip = "127.0.10.93";
    let port = 14094;
    let ca = Ca::new("Pebble HTTPS", KeyKind::P256).unwrap();
    // `prepare` makes the keys and the bootstrap certificate on a first start, before the CA
    // is there; then Kurier stops.
    let pebble_root = dir.path().join("pebble-root.pem");
    let config = pebble_config(dir.path(), ip, port, "", false);
    // Placeholders until pebble runs (`pebble` writes both files anew).
    std::fs::write(&pebble_root, ca.root_pem()).unwrap();
    ca.write_root(&dir.path().join("pebble-https-root.pem"))
        .unwrap();
    drop(Server::configured(dir.path(), &config));
    let acme = dir.path().join("data/acme");
    let bootstrap_pem = std::fs::read(acme.join("cert.pem")).unwrap();

    let _helpers = pebble(dir.path(), &PebbleSpec::ecdsa(port, ip, 3600), &ca);
    let script = format!(
        "set -e; cp -a '{a}' '{d}/acme-copy'; mount -t tmpfs -o size=64k kurier-full '{a}'; \
         cp -a '{d}/acme-copy/.' '{a}/'; dd if=/dev/zero of='{a}/fill' bs=4k 2>/dev/null || true; \
         exec '{bin}' serve --config '{c}'",
        a = acme.display(),
        d = dir.path().display(),
        bin = support::bin(),
        c = config.display()
    );
    let mut cmd = Command::new("unshare");
    cmd.args(["-m", "sh", "-c", &script]);
    let server = Server::from_command(cmd, dir.path());
    server.wait_for_log("Kurier started");
    // The namespace's view of data/acme, from outside.
    let inside = Path::new(&format!("/proc/{}/root", server.child.id()))
        .join(acme.strip_prefix("/").unwrap());
    assert!(inside.join("fill").exists(), "{}", server.stderr());

    let failures = |n: usize| {
        support::wait_until(Duration::from_secs(60), "failed writes", || {
            server.stderr().matches("No space left on device").count() >= n
        });
    };
    failures(2);
    let log = server.stderr();
    let line = log
        .lines()
        .find(|l| l.contains("No space left on device"))
        .unwrap();
    assert!(
        line.contains("ACME order failed; the current certificate keeps serving")
            && line.contains("cert.pem.new")
            && line.contains("retry_secs="),
        "{line}"
    );
    let leftovers: Vec<_> = std::fs::read_dir(&inside)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n != "fill")
        .collect();
    let mut leftovers = leftovers;
    leftovers.sort();
    assert_eq!(
        leftovers,
        ["account.key", "cert.key", "cert.pem"],
        "nothing half-written"
    );
    assert_eq!(
        std::fs::read(inside.join("cert.pem")).unwrap(),
        bootstrap_pem
    );
    assert_eq!(served(ip).names, ["mx.kurier.test"]);
    assert!(!served(ip).issuer.contains("Pebble"));

    // Room again: the next try serves pebble's chain.
    std::fs::remove_file(inside.join("fill")).unwrap();
    support::wait_until(Duration::from_secs(60), "a certificate from pebble", || {
        served(ip).issuer.contains("Pebble Intermediate")
    });
}

/// Bad input from the CA side. A challenge that never validates (pebble finds nobody at the
/// address the name resolves to) fails the order with pebble's reason; an "ACME server" that
/// answers garbage (`openssl s_server -WWW` serving a file that is no directory) is named as
/// such. Both times the bootstrap certificate keeps serving and the next try backs off.
#[test]
fn cert1_acme_a_challenge_that_never_validates_and_a_garbage_directory() {
    let dir = tempfile::tempdir().unwrap();
    let ip = "127.0.10.89";
    let port = 14089;
    let ca = Ca::new("Pebble HTTPS", KeyKind::P256).unwrap();
    // Every name resolves to 127.0.10.98, where nothing listens.
    let (_helpers, _root) = pebble(dir.path(), &PebbleSpec::debian(port, "127.0.10.98"), &ca);
    let https_root = dir.path().join("pebble-https-root.pem");
    let first = config(
        dir.path(),
        ip,
        &format!("https://localhost:{port}/dir"),
        &https_root,
        "[tls]\ndane_rollover_check = false\n",
    );
    let server = Server::configured(dir.path(), &first);
    let line = server.log_line("ACME order failed");
    assert!(
        line.contains("/.well-known/acme-challenge/") && line.contains("connection refused"),
        "pebble's reason: {line}"
    );
    assert_eq!(served(ip).names, ["mx.kurier.test"]);
    drop(server);

    // Garbage where the directory should be.
    let www = dir.path().join("www");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("dir"), b"{\"newNonce\": 17, \"<html>\"").unwrap();
    let (cert, key) = ca
        .leaf(&["localhost"])
        .unwrap()
        .write(dir.path(), "garbage")
        .unwrap();
    let garbage_port = port + 1;
    let _garbage = spawn(
        Command::new("openssl")
            .args(["s_server", "-quiet", "-WWW", "-accept"])
            .arg(format!("127.0.0.1:{garbage_port}"))
            .arg("-cert")
            .arg(&cert)
            .arg("-cert_chain")
            .arg(&cert)
            .arg("-key")
            .arg(&key)
            .current_dir(&www),
        &dir.path().join("s_server.log"),
    );
    wait_for_port(&format!("127.0.0.1:{garbage_port}"));
    let other = dir.path().join("second");
    std::fs::create_dir_all(&other).unwrap();
    let second = config(
        &other,
        "127.0.10.91",
        &format!("https://localhost:{garbage_port}/dir"),
        &https_root,
        "[tls]\ndane_rollover_check = false\n",
    );
    let server = Server::configured(&other, &second);
    let line = server.log_line("ACME order failed");
    assert!(line.contains("is no directory"), "{line}");
    assert_eq!(served("127.0.10.91").names, ["mx.kurier.test"]);
}

/// Issue 21 items 1 and 2 against a CA whose chains pass CERT-1 (pebble with ECDSA keys), in a
/// signed test world whose TLSA RRsets name Kurier's key, with a real Postfix DANE sender
/// delivering to Kurier at every step: the first issuance goes live (every name, pebble's
/// chain); renewals keep the key, so the published `3 1 1` stays true; a key change
/// (`kurier acme next-key`) orders the next key's certificate at once but serves it only after
/// its TLSA record is published at every DANE port and two TTLs have passed — until then the
/// next chain is refused and the old key keeps serving.
#[test]
fn cert1_dane3_acme_issues_renews_with_the_same_key_and_a_key_change_waits_for_its_tlsa() {
    use kurier_testworld::net::hosts;
    use kurier_testworld::{PostfixSpec, World, Zone};

    let dir = tempfile::tempdir().unwrap();
    // The operator's key, published before the first start (`prepare` keeps a key it finds).
    let key = kurier_testworld::ca::new_key(KeyKind::P256).unwrap();
    let current = TlsaRecord::dane_ee_for_key(&key).unwrap().rdata();
    let acme_dir = dir.path().join("data/acme");
    std::fs::create_dir_all(&acme_dir).unwrap();
    std::fs::write(
        acme_dir.join("cert.key"),
        key.private_key_to_pem_pkcs8().unwrap(),
    )
    .unwrap();
    let ttl = 2;
    let mut zone = Zone::signed("kurier.test")
        .ttl(ttl)
        .record("@", "MX", "10 mx")
        .record("mx", "A", &format!("{{ip:{}}}", hosts::FREE));
    for port in [25, 2525] {
        zone = zone.record(&format!("_{port}._tcp.mx"), "TLSA", &current);
    }
    let world = World::builder()
        .zone(zone)
        .postfix(PostfixSpec::dane_sender("postfix.test").relayhost("kurier.test:2525"))
        .build()
        .unwrap();
    let ip = world.net.ip(hosts::FREE).to_string();
    let port = 14092;
    let ca = Ca::new("Pebble HTTPS", KeyKind::P256).unwrap();
    let (_helpers, pebble_root) = pebble(dir.path(), &PebbleSpec::ecdsa(port, &ip, 45), &ca);
    let https_root = dir.path().join("pebble-https-root.pem");
    let dns = world.dns();
    let extra = format!(
        "[dns]\nupstream = [\"{}\"]\ntrust_anchor = \"{}\"\ntimeout_secs = 3\n\
         [tls]\ntrusted_roots = \"{}\"\n",
        dns.resolver,
        dns.trust_anchor_dnskey.display(),
        pebble_root.display()
    );
    let config = config(
        dir.path(),
        &ip,
        &format!("https://localhost:{port}/dir"),
        &https_root,
        &extra,
    );
    let kurier = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--config", config.to_str().unwrap()]);
        let (code, out, err) = support::run(&all);
        assert_eq!(code, 0, "kurier {args:?}: {err}");
        out
    };
    let server = Server::configured(dir.path(), &config);

    let mut dane = support::DaneDeliveries::new(&world.postfix[0], dir.path());
    let mut postfix_delivers = |step: &str| dane.deliver(step);
    let from_ca = |s: &ServedCert| s.issuer.contains("Pebble Intermediate");
    // Item 4: where a key change stands, on /metrics.
    let gauges = || {
        let metrics = support::curl(&pebble_root, "mx.kurier.test", 8443, &ip, "/metrics", None);
        let value = |name: &str| -> u64 {
            metrics
                .lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
                .unwrap_or_else(|| panic!("{name}: {metrics}"))
        };
        (
            value("kurier_acme_key_change"),
            value("kurier_acme_next_key_created_timestamp_seconds"),
        )
    };

    // First issuance: pebble's chain for every name, with the published key.
    support::wait_until(Duration::from_secs(60), "the first certificate", || {
        from_ca(&served(&ip))
    });
    let first = served(&ip);
    assert_eq!(
        first.names,
        [
            "autoconfig.kurier.test",
            "autodiscover.kurier.test",
            "mta-sts.kurier.test",
            "mx.kurier.test"
        ]
    );
    assert_eq!(first.tlsa, current);
    assert_eq!(gauges(), (0, 0), "no key change under way");
    postfix_delivers("first issuance");

    // Renewal at two thirds of 45 s: a new certificate, the same key.
    support::wait_until(Duration::from_secs(90), "a renewal", || {
        served(&ip).serial != first.serial
    });
    let renewed = served(&ip);
    assert!(from_ca(&renewed), "{}", renewed.issuer);
    assert_eq!(renewed.tlsa, current, "renewal keeps the key");
    postfix_delivers("after the renewal");

    // A key change by hand: the next key's record is named for every DANE port.
    let out = kurier(&["acme", "next-key"]);
    let next = out
        .lines()
        .find_map(|l| l.strip_prefix("_25._tcp.mx.kurier.test. IN TLSA "))
        .unwrap_or_else(|| panic!("{out}"))
        .to_string();
    assert_ne!(next, current);
    // Its certificate is issued, but refused while DNS does not name it.
    let waits = server.log_line("key change waits: the next key's certificate matches none");
    assert!(
        waits.contains(&format!("_2525._tcp.mx.kurier.test. IN TLSA {next}")),
        "{waits}"
    );
    assert!(acme_dir.join("next.pem").exists());
    let status = kurier(&["acme", "status"]);
    assert!(
        status.contains(&format!("TLSA {current}")) && status.contains(&format!("TLSA {next}")),
        "{status}"
    );
    let records = kurier(&["dns", "kurier.test"]);
    for r in [&current, &next] {
        assert!(
            records.contains(&format!("_25._tcp.mx.kurier.test. 600 IN TLSA {r}")),
            "{records}"
        );
    }
    assert_eq!(served(&ip).tlsa, current);
    let (state, since) = gauges();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert_eq!(state, 1, "waiting for the TLSA records");
    assert!(since <= now && since + 300 > now, "{since} {now}");
    postfix_delivers("while the next key waits");

    // Published at one DANE port only: still refused there.
    world
        .publish("kurier.test", "_25._tcp.mx", "TLSA", &next)
        .unwrap();
    support::wait_until(
        Duration::from_secs(30),
        "a refusal naming 2525 only",
        || {
            server.stderr().lines().any(|l| {
                l.contains("key change waits")
                    && l.contains("published at _2525._tcp.mx.kurier.test. Publish")
            })
        },
    );
    assert_eq!(served(&ip).tlsa, current);

    // Published everywhere: two TTLs later the next key serves.
    world
        .publish("kurier.test", "_2525._tcp.mx", "TLSA", &next)
        .unwrap();
    support::wait_until(
        Duration::from_secs(30),
        "the key change propagating",
        || gauges().0 == 2,
    );
    let done = server.log_line("key change done");
    assert!(done.contains(&format!("Remove TLSA {current}")), "{done}");
    let log = server.stderr();
    let propagating = log
        .find("waiting two TTLs for caches to expire")
        .unwrap_or_else(|| panic!("no wait before the switch: {log}"));
    assert!(propagating < log.find("key change done").unwrap());
    let switched = served(&ip);
    assert_eq!(switched.tlsa, next);
    assert!(from_ca(&switched));
    assert!(!acme_dir.join("next.key").exists() && !acme_dir.join("next.pem").exists());
    assert_eq!(gauges(), (0, 0), "the key change is over");
    postfix_delivers("after the key change");
}

/// DANE-3 with `[dns_update]` (issue 21 items 2 and 3): the whole key change without a human.
/// Knot is the primary of kurier.test and signs it; Kurier validates through it with the
/// zone's KSK as trust anchor. Kurier publishes the current key's TLSA at the start, the next
/// key's beside it when the key change begins (not waiting for the hourly `dns_update.check_secs`),
/// switches once its validating resolver sees the new RRset and two TTLs have passed, and then
/// removes the old record.
#[test]
fn dane3_a_key_change_publishes_the_next_tlsa_by_rfc_2136_and_retires_the_old_one() {
    use kurier_testworld::knot::Knot;
    let dir = tempfile::tempdir().unwrap();
    let ip = "127.0.10.97";
    let port = 14097;
    let knot = Knot::start(
        &dir.path().join("knot"),
        format!("{ip}:5353").parse().unwrap(),
        "kurier.test",
        &format!("mx IN A {ip}"),
        true,
    )
    .unwrap();
    let anchor = dir.path().join("kurier.test.anchor");
    std::fs::write(&anchor, format!("{}\n", knot.trust_anchor().unwrap())).unwrap();
    let ca = Ca::new("Pebble HTTPS", KeyKind::P256).unwrap();
    let _helpers = pebble(dir.path(), &PebbleSpec::ecdsa(port, ip, 3600), &ca);
    let extra = format!(
        "[dns_update]\nenabled = true\nserver = \"{}\"\nzones = [\"kurier.test\"]\nkey_file = \"{}\"\n\
         check_secs = 3600\ntlsa_ttl = 2\n\
         [dns]\nupstream = [\"{}\"]\ntrust_anchor = \"{}\"\ntimeout_secs = 3\n\
         [tls]\ntrusted_roots = \"{}\"\n",
        knot.addr,
        knot.key_file.display(),
        knot.addr,
        anchor.display(),
        dir.path().join("pebble-root.pem").display()
    );
    let config = config(
        dir.path(),
        ip,
        &format!("https://localhost:{port}/dir"),
        &dir.path().join("pebble-https-root.pem"),
        &extra,
    );
    let server = Server::configured(dir.path(), &config);
    let current = TlsaRecord::dane_ee_for_key(
        &openssl::pkey::PKey::private_key_from_pem(
            &std::fs::read(dir.path().join("data/acme/cert.key")).unwrap(),
        )
        .unwrap(),
    )
    .unwrap()
    .rdata();
    let owners = ["_25._tcp.mx.kurier.test", "_2465._tcp.mx.kurier.test"];
    let tlsa_on_knot = |owner: &str| knot.tlsa(owner).unwrap();
    // Beside the records of the manual certificate that `support::configured` also serves.
    support::wait_until(
        Duration::from_secs(30),
        "the current key's TLSA on Knot",
        || owners.iter().all(|o| tlsa_on_knot(o).contains(&current)),
    );
    support::wait_until(Duration::from_secs(60), "the first certificate", || {
        served(ip).issuer.contains("Pebble Intermediate")
    });

    let (code, out, err) =
        support::run(&["acme", "next-key", "--config", config.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let next = out
        .lines()
        .find_map(|l| l.strip_prefix("_25._tcp.mx.kurier.test. IN TLSA "))
        .unwrap_or_else(|| panic!("{out}"))
        .to_string();
    server.log_line(&format!(
        "the next key's TLSA {next} was published by [dns_update]"
    ));
    let done = server.log_line("key change done");
    assert!(
        done.contains(&format!("TLSA {current} (the old key) was removed")),
        "{done}"
    );
    let log = server.stderr();
    assert!(
        log.find("waiting two TTLs").unwrap_or(usize::MAX) < log.find("key change done").unwrap(),
        "the switch waited for caches: {log}"
    );
    assert_eq!(served(ip).tlsa, next);
    for o in owners {
        let records = tlsa_on_knot(o);
        assert!(
            records.contains(&next) && !records.contains(&current),
            "{o}: {records:?}"
        );
    }
}
