//! Active TLS enumeration of one endpoint (TR-03108 TLS-1, TLS-2, TLS-5, TLS-7, TLS-9, DNS-5): one
//! handshake per offer — each version, each suite, each group, each signature algorithm alone —
//! on the port itself or after STARTTLS (SMTP, IMAP, POP3). What the server accepted is the
//! endpoint's ICS as seen from outside, and is compared with TR-03116-4's lists.
//! Blocking (the probe is); run it on a blocking thread.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use kurier_tls::probe::{ClientOffer, probe_stream};
use kurier_tls::profile;
use openssl::ssl::SslVersion;

use crate::{Finding, Status};

/// How TLS starts on a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    Implicit,
    Smtp,
    Imap,
    Pop3,
}

/// One port to scan.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub host: String,
    pub addr: SocketAddr,
    pub start: Start,
    /// Port 25 may accept legacy offers at the lowest priority (TLS-9): a warning, not a failure.
    pub legacy_allowed: bool,
}

/// A connection ready for the TLS handshake.
fn open(ep: &Endpoint) -> std::io::Result<TcpStream> {
    let tcp = TcpStream::connect_timeout(&ep.addr, Duration::from_secs(5))?;
    tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut r = BufReader::new(tcp.try_clone()?);
    let mut w = tcp.try_clone()?;
    let mut line = String::new();
    // SMTP replies may span lines (`250-…`); the others are one line.
    let mut read_reply = |r: &mut BufReader<TcpStream>, ok: &str| -> std::io::Result<()> {
        loop {
            line.clear();
            if r.read_line(&mut line)? == 0 {
                return Err(std::io::Error::other("connection closed"));
            }
            if !line.starts_with(ok) {
                // IMAP: untagged lines before the tagged answer.
                if ok == "a OK" && line.starts_with('*') {
                    continue;
                }
                return Err(std::io::Error::other(format!("unexpected {line:?}")));
            }
            if ok.len() != 3 || line.as_bytes().get(3) != Some(&b'-') {
                return Ok(());
            }
        }
    };
    match ep.start {
        Start::Implicit => {}
        Start::Smtp => {
            read_reply(&mut r, "220")?;
            w.write_all(b"EHLO kurier-check.invalid\r\n")?;
            read_reply(&mut r, "250")?;
            w.write_all(b"STARTTLS\r\n")?;
            read_reply(&mut r, "220")?;
        }
        Start::Imap => {
            read_reply(&mut r, "* OK")?;
            w.write_all(b"a STARTTLS\r\n")?;
            read_reply(&mut r, "a OK")?;
        }
        Start::Pop3 => {
            read_reply(&mut r, "+OK")?;
            w.write_all(b"STLS\r\n")?;
            read_reply(&mut r, "+OK")?;
        }
    }
    Ok(tcp)
}

fn attempt(ep: &Endpoint, offer: ClientOffer) -> Result<String, String> {
    handshake(ep, offer)
        .map(|f| format!("{} {} {}", f.version, f.cipher, f.group.unwrap_or_default()))
}

/// One handshake with `offer` at `ep` (after STARTTLS where the protocol needs it), SNI the
/// endpoint's host.
pub fn handshake(
    ep: &Endpoint,
    offer: ClientOffer,
) -> Result<kurier_tls::probe::HandshakeFacts, String> {
    let tcp = open(ep).map_err(|e| e.to_string())?;
    let offer = ClientOffer {
        server_name: Some(ep.host.clone()),
        ..offer
    };
    probe_stream(tcp, &offer).map_err(|e| e.to_string())
}

/// The certificate chain the endpoint sends, leaf first.
pub fn served_chain(ep: &Endpoint) -> Result<Vec<openssl::x509::X509>, String> {
    let tcp = open(ep).map_err(|e| e.to_string())?;
    let offer = ClientOffer {
        server_name: Some(ep.host.clone()),
        ..ClientOffer::default()
    };
    probe_stream(tcp, &offer)
        .map(|f| f.peer_chain)
        .map_err(|e| e.to_string())
}

/// TLS 1.2 suites tried besides the allowed and legacy ones: what scanners look for.
const OTHER_TLS12_SUITES: &[&str] = &[
    "ECDHE-ECDSA-CHACHA20-POLY1305",
    "ECDHE-RSA-CHACHA20-POLY1305",
    "ECDHE-ECDSA-AES128-CCM8",
    "ECDHE-ECDSA-AES256-CCM8",
    "DHE-RSA-AES128-GCM-SHA256",
    "DHE-RSA-AES256-GCM-SHA384",
    "DHE-RSA-AES128-SHA256",
    "DHE-RSA-AES256-SHA256",
    "DHE-RSA-AES128-CCM",
    "DHE-RSA-AES256-CCM",
    "DHE-RSA-CHACHA20-POLY1305",
    "DHE-RSA-AES128-SHA",
    "DHE-RSA-AES256-SHA",
    "DES-CBC3-SHA",
];
const ALL_TLS13_SUITES: &[&str] = &[
    "TLS_AES_128_GCM_SHA256",
    "TLS_AES_256_GCM_SHA384",
    "TLS_AES_128_CCM_SHA256",
    "TLS_AES_128_CCM_8_SHA256",
    "TLS_CHACHA20_POLY1305_SHA256",
];
const OTHER_GROUPS: &[&str] = &[
    "ffdhe2048",
    "ffdhe6144",
    "ffdhe8192",
    "X25519MLKEM768",
    "SecP256r1MLKEM768",
    "SecP384r1MLKEM1024",
];
const OTHER_SIGALGS: &[&str] = &["ed25519", "ed448"];

/// What an endpoint accepted, offer by offer: its ICS as seen from outside (DNS-5).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Enumeration {
    pub host: String,
    pub port: u16,
    /// `TLSv1.3` …
    pub versions: Vec<String>,
    /// OpenSSL names; TLS 1.3 suites as `TLS_…`.
    pub suites: Vec<String>,
    pub groups: Vec<String>,
    pub sigalgs: Vec<String>,
}

impl Enumeration {
    /// What was accepted that TR-03116-4 does not allow.
    pub fn not_allowed(&self) -> Vec<String> {
        let versions = self
            .versions
            .iter()
            .filter(|v| *v != "TLSv1.2" && *v != "TLSv1.3");
        let suites = self.suites.iter().filter(|s| {
            !profile::TLS12_SUITES.contains(&s.as_str())
                && !profile::TLS13_SUITES.contains(&s.as_str())
        });
        let groups = self
            .groups
            .iter()
            .filter(|g| !profile::GROUPS.contains(&g.as_str()));
        let sigalgs = self
            .sigalgs
            .iter()
            .filter(|a| !profile::SIGALGS.contains(&a.as_str()));
        versions
            .chain(suites)
            .chain(groups)
            .chain(sigalgs)
            .cloned()
            .collect()
    }
}

/// An offer of protocol version `v` only, with every suite OpenSSL has (even at security level
/// 0), so that the version alone decides.
pub fn only_version(v: SslVersion) -> ClientOffer {
    ClientOffer {
        min_version: Some(v),
        max_version: Some(v),
        tls12_ciphers: Some("ALL:COMPLEMENTOFALL:@SECLEVEL=0".into()),
        security_level: Some(0),
        ..ClientOffer::default()
    }
}

/// The group name of an EC certificate's curve, as offers name it (`P-256`, `brainpoolP256r1`).
fn certificate_curve(cert: &openssl::x509::X509) -> Option<String> {
    use openssl::nid::Nid;
    let key = cert.public_key().ok()?.ec_key().ok()?;
    Some(
        match key.group().curve_name()? {
            Nid::X9_62_PRIME256V1 => "P-256",
            Nid::SECP384R1 => "P-384",
            Nid::SECP521R1 => "P-521",
            Nid::BRAINPOOL_P256R1 => "brainpoolP256r1",
            Nid::BRAINPOOL_P384R1 => "brainpoolP384r1",
            Nid::BRAINPOOL_P512R1 => "brainpoolP512r1",
            _ => return None,
        }
        .to_string(),
    )
}

/// Whether the group OpenSSL reports after a handshake (`secp256r1`, `x25519`) is `offered`
/// (`P-256`, `X25519`).
fn same_group(negotiated: &str, offered: &str) -> bool {
    let offered = match offered {
        "P-256" => "secp256r1",
        "P-384" => "secp384r1",
        "P-521" => "secp521r1",
        other => other,
    };
    negotiated.eq_ignore_ascii_case(offered)
}

/// Offers every candidate alone and keeps what the server accepted.
pub fn enumerate(ep: &Endpoint) -> Enumeration {
    let accepted = |offer: ClientOffer| attempt(ep, offer).is_ok();
    let only = only_version;
    let versions = [
        (SslVersion::TLS1_3, "TLSv1.3"),
        (SslVersion::TLS1_2, "TLSv1.2"),
        (SslVersion::TLS1_1, "TLSv1.1"),
        (SslVersion::TLS1, "TLSv1.0"),
    ]
    .into_iter()
    .filter(|(v, _)| accepted(only(*v)))
    .map(|(_, n)| n.to_string())
    .collect();
    let mut suites = Vec::new();
    let tls12 = profile::TLS12_SUITES
        .iter()
        .chain(profile::LEGACY_TLS12_SUITES)
        .chain(OTHER_TLS12_SUITES);
    for name in tls12 {
        let offer = ClientOffer {
            tls12_ciphers: Some(format!("{name}:@SECLEVEL=0")),
            ..only(SslVersion::TLS1_2)
        };
        if accepted(offer) {
            suites.push(name.to_string());
        }
    }
    for name in ALL_TLS13_SUITES {
        let offer = ClientOffer {
            tls13_suites: Some(name.to_string()),
            ..only(SslVersion::TLS1_3)
        };
        if accepted(offer) {
            suites.push(name.to_string());
        }
    }
    // Groups and signature algorithms are tried in TLS 1.3 and in TLS 1.2 each: some exist
    // only in one (brainpoolP256r1 is a TLS 1.2 group; ecdsa_secp384r1_sha384 on a P-256 key
    // is TLS 1.2's ECDSA+SHA384 — TLS 1.3 ties the hash to the curve).
    let in_either = |offer: &dyn Fn(SslVersion) -> ClientOffer| {
        [SslVersion::TLS1_3, SslVersion::TLS1_2]
            .into_iter()
            .any(|v| accepted(offer(v)))
    };
    // In TLS 1.2 the client's groups also say which certificate curves it can verify (RFC
    // 8422 §5.1): a group is offered with the certificate's curve behind it, and counts when
    // the server picks it.
    let cert_curve = handshake(ep, ClientOffer::default())
        .ok()
        .and_then(|f| f.peer_chain.first().and_then(certificate_curve));
    let groups = profile::GROUPS
        .iter()
        .chain(profile::LEGACY_GROUPS)
        .chain(OTHER_GROUPS)
        .filter(|g| {
            accepted(ClientOffer {
                groups: Some(g.to_string()),
                ..only(SslVersion::TLS1_3)
            }) || {
                let offer = match &cert_curve {
                    Some(c) if c != *g => format!("{g}:{c}"),
                    _ => g.to_string(),
                };
                handshake(
                    ep,
                    ClientOffer {
                        groups: Some(offer),
                        ..only(SslVersion::TLS1_2)
                    },
                )
                .is_ok_and(|f| f.group.is_some_and(|n| same_group(&n, g)))
            }
        })
        .map(|g| g.to_string())
        .collect();
    let sigalgs = profile::SIGALGS
        .iter()
        .chain(profile::LEGACY_SIGALGS)
        .chain(OTHER_SIGALGS)
        .filter(|a| {
            in_either(&|v| ClientOffer {
                sigalgs: Some(a.to_string()),
                ..only(v)
            })
        })
        .map(|a| a.to_string())
        .collect();
    Enumeration {
        host: ep.host.clone(),
        port: ep.addr.port(),
        versions,
        suites,
        groups,
        sigalgs,
    }
}

/// The findings for one endpoint, and what it accepted.
pub fn scan(ep: &Endpoint) -> (Vec<Finding>, Option<Enumeration>) {
    let subject = format!("TLS on {} port {}", ep.host, ep.addr.port());
    let mut out = Vec::new();
    let mut add = |id: &'static str, status: Status, evidence: String, fix: &str| {
        out.push(Finding {
            id,
            status,
            subject: subject.clone(),
            evidence,
            fix: if status == Status::Pass {
                String::new()
            } else {
                fix.into()
            },
        })
    };
    if let Err(e) = open(ep) {
        add(
            "TLS-1",
            Status::NotApplicable,
            format!("not reachable: {e}"),
            "",
        );
        return (out, None);
    }
    let only = |v: SslVersion| ClientOffer {
        min_version: Some(v),
        max_version: Some(v),
        ..ClientOffer::default()
    };
    let legacy = |v: SslVersion| ClientOffer {
        tls12_ciphers: Some("ALL:@SECLEVEL=0".into()),
        security_level: Some(0),
        ..only(v)
    };
    // TLS-1: 1.2 and 1.3 work; 1.0 and 1.1 do not (port 25: tolerated, TLS-9).
    let v13 = attempt(ep, only(SslVersion::TLS1_3));
    let v12 = attempt(ep, only(SslVersion::TLS1_2));
    let old: Vec<&str> = [
        (SslVersion::TLS1, "TLSv1.0"),
        (SslVersion::TLS1_1, "TLSv1.1"),
    ]
    .into_iter()
    .filter(|(v, _)| attempt(ep, legacy(*v)).is_ok())
    .map(|(_, n)| n)
    .collect();
    let versions_ok = v13.is_ok() && v12.is_ok();
    let status = match (versions_ok, old.is_empty(), ep.legacy_allowed) {
        (true, true, _) => Status::Pass,
        (true, false, true) => Status::Warn,
        _ => Status::Fail,
    };
    add(
        "TLS-1",
        status,
        format!(
            "TLS 1.3: {}; TLS 1.2: {}; older accepted: {}",
            v13.unwrap_or_else(|e| format!("refused ({e})")),
            v12.unwrap_or_else(|e| format!("refused ({e})")),
            if old.is_empty() {
                "none".into()
            } else {
                old.join(", ")
            }
        ),
        "offer TLS 1.2 and 1.3 only (TR-03116-4 §2.1)",
    );
    // TLS-2: every suite, group and signature algorithm the server accepts is on
    // TR-03116-4's lists; port 25 MAY accept legacy ones for opportunistic TLS (TLS-9): a
    // warning there.
    let ics = enumerate(ep);
    let strict = ics.not_allowed();
    add(
        "TLS-2",
        match (strict.is_empty(), ep.legacy_allowed) {
            (true, _) => Status::Pass,
            (false, true) => Status::Warn,
            (false, false) => Status::Fail,
        },
        format!(
            "{} suites, {} groups, {} signature algorithms accepted; not in TR-03116-4: {}",
            ics.suites.len(),
            ics.groups.len(),
            ics.sigalgs.len(),
            if strict.is_empty() {
                "none".to_string()
            } else {
                strict.join(", ")
            }
        ),
        "allow only the TR-03116-4 suites, groups and signature algorithms (no X25519, no ChaCha20, no PKCS#1 v1.5)",
    );
    // TLS-5 (TR-03116-4 §2.2.2, §2.3.3): in TLS 1.2 brainpoolP256r1 is served and preferred
    // (a client that lists P-256 first still gets brainpool: the server's priority); in TLS
    // 1.3 brainpoolP256r1tls13 should be served.
    let (status, evidence) = brainpool_verdict(ep);
    add(
        "TLS-5",
        status,
        evidence,
        "support brainpoolP256r1 in TLS 1.2 at the highest priority, and brainpoolP256r1tls13 in TLS 1.3 (OpenSSL ≥ 3.5)",
    );
    // TLS-7 (TR-03116-4 §2.2.3.2): CBC only with Encrypt-then-MAC.
    let (status, evidence) = etm_verdict(ep);
    add(
        "TLS-7",
        status,
        evidence,
        "use CBC suites only with Encrypt-then-MAC (RFC 7366), or offer no CBC suites",
    );
    (out, Some(ics))
}

/// TLS-5: a TLS 1.2 client that lists P-256 before brainpoolP256r1 gets brainpool (supported,
/// and first by the server's priority; a brainpool-only TLS 1.2 client cannot be served by a
/// P-256 certificate at all, RFC 8422 §5.1, so it proves nothing); a TLS 1.3 client with only
/// brainpoolP256r1tls13 should be served.
fn brainpool_verdict(ep: &Endpoint) -> (Status, String) {
    let preferred = handshake(
        ep,
        ClientOffer {
            groups: Some("P-256:brainpoolP256r1".into()),
            ..only_version(SslVersion::TLS1_2)
        },
    );
    let tls13 = handshake(
        ep,
        ClientOffer {
            groups: Some("brainpoolP256r1tls13".into()),
            ..only_version(SslVersion::TLS1_3)
        },
    );
    let group = |r: &Result<kurier_tls::probe::HandshakeFacts, String>| match r {
        Ok(f) => f.group.clone().unwrap_or_else(|| "?".into()),
        Err(e) => format!("refused ({e})"),
    };
    let evidence = format!(
        "TLS 1.2 client offering P-256, then brainpoolP256r1: {}; TLS 1.3 client offering brainpoolP256r1tls13 alone: {}",
        group(&preferred),
        group(&tls13)
    );
    let preferred_ok = preferred
        .as_ref()
        .is_ok_and(|f| f.group.as_deref() == Some("brainpoolP256r1"));
    let status = match (preferred_ok, tls13.is_ok()) {
        (true, true) => Status::Pass,
        (true, false) => Status::Warn,
        (false, _) => Status::Fail,
    };
    (status, evidence)
}

/// TLS-7: a client offering only CBC suites, with Encrypt-then-MAC and without it.
fn etm_verdict(ep: &Endpoint) -> (Status, String) {
    let cbc: Vec<&str> = profile::TLS12_SUITES
        .iter()
        .chain(profile::LEGACY_TLS12_SUITES)
        .copied()
        .filter(|s| !s.contains("GCM") && !s.contains("CCM"))
        .collect();
    let offer = |no_etm: bool| {
        handshake(
            ep,
            ClientOffer {
                tls12_ciphers: Some(format!("{}:@SECLEVEL=0", cbc.join(":"))),
                no_encrypt_then_mac: no_etm,
                ..only_version(SslVersion::TLS1_2)
            },
        )
    };
    let with = offer(false);
    let without = offer(true);
    let etm = |f: &kurier_tls::probe::HandshakeFacts| {
        f.server_hello_extensions
            .contains(&kurier_tls::probe::EXT_ENCRYPT_THEN_MAC)
    };
    match (&with, &without) {
        (Err(_), Err(_)) => (Status::Pass, "no CBC suite accepted".into()),
        (Ok(f), _) if !etm(f) => (
            Status::Fail,
            format!(
                "{} without Encrypt-then-MAC although the client offered it",
                f.cipher
            ),
        ),
        (_, Ok(f)) => (
            if ep.legacy_allowed {
                Status::Warn
            } else {
                Status::Fail
            },
            format!(
                "{} for a client without Encrypt-then-MAC (CBC with MAC-then-encrypt)",
                f.cipher
            ),
        ),
        (Ok(f), Err(_)) => (
            Status::Pass,
            format!(
                "{} only with Encrypt-then-MAC; refused without it",
                f.cipher
            ),
        ),
    }
}
