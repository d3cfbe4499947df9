//! Active TLS enumeration of one endpoint (TR-03108 TLS-1, TLS-2, TLS-5, TLS-9): handshakes
//! with chosen offers — each version, forbidden groups and suites alone, brainpool alone — on
//! the port itself or after STARTTLS (SMTP, IMAP, POP3), and what the server accepted.
//! Blocking (the probe is); run it on a blocking thread.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use kurier_tls::probe::{ClientOffer, probe_stream};
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
    let tcp = open(ep).map_err(|e| e.to_string())?;
    let offer = ClientOffer {
        server_name: Some(ep.host.clone()),
        ..offer
    };
    probe_stream(tcp, &offer)
        .map(|f| format!("{} {} {}", f.version, f.cipher, f.group.unwrap_or_default()))
        .map_err(|e| e.to_string())
}

/// The findings for one endpoint.
pub fn scan(ep: &Endpoint) -> Vec<Finding> {
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
        return out;
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
    // TLS-2: offers made only of what TR-03116-4 forbids get no handshake.
    let forbidden: Vec<&str> = [
        (
            "X25519",
            ClientOffer {
                groups: Some("X25519".into()),
                ..ClientOffer::default()
            },
        ),
        (
            "ChaCha20-Poly1305",
            ClientOffer {
                tls13_suites: Some("TLS_CHACHA20_POLY1305_SHA256".into()),
                tls12_ciphers: Some(
                    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305".into(),
                ),
                ..ClientOffer::default()
            },
        ),
    ]
    .into_iter()
    .filter(|(_, offer)| attempt(ep, offer.clone()).is_ok())
    .map(|(n, _)| n)
    .collect();
    add(
        "TLS-2",
        match (forbidden.is_empty(), ep.legacy_allowed) {
            (true, _) => Status::Pass,
            (false, true) => Status::Warn,
            (false, false) => Status::Fail,
        },
        if forbidden.is_empty() {
            "X25519-only and ChaCha20-only clients are refused".into()
        } else {
            format!("accepted: {}", forbidden.join(", "))
        },
        "allow only the TR-03116-4 groups and suites (no X25519, no ChaCha20)",
    );
    // TLS-5: a brainpool-only client is served.
    let brainpool = attempt(
        ep,
        ClientOffer {
            groups: Some("brainpoolP256r1tls13:brainpoolP256r1".into()),
            ..ClientOffer::default()
        },
    );
    add(
        "TLS-5",
        if brainpool.is_ok() {
            Status::Pass
        } else {
            Status::Fail
        },
        match brainpool {
            Ok(f) => format!("brainpool-only client: {f}"),
            Err(e) => format!("brainpool-only client refused: {e}"),
        },
        "support brainpoolP256r1 (TLS 1.2) and brainpoolP256r1tls13 (TLS 1.3) with OpenSSL ≥ 3.5",
    );
    out
}
