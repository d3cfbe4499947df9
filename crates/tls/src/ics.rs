//! The Implementation Conformance Statement (ICS) of a TLS channel, as data (TR-03108 DNS-5,
//! TR-03108-P §4.5): what a live context offers, for the test lab and for `kurier tls-profile`.
//!
//! Suites are read back from the built OpenSSL context, not from our lists, so the ICS shows
//! what is really configured; groups and signature algorithms (OpenSSL has no getter) come from
//! the profile lists the context was built from.

use std::fmt::Write as _;

use openssl::ssl::{SslContextRef, SslVersion};

use crate::certificate::LoadedCertificate;
use crate::ffi;
use crate::profile::{ClientProfile, ServerProfile};
use crate::{TlsAcceptor, TlsError};

#[derive(Debug, Clone, serde::Serialize)]
pub struct Ics {
    /// e.g. `strict` or `mta-legacy`.
    pub profile: &'static str,
    /// The channels this profile serves, e.g. `HTTPS 8443`.
    pub channels: Vec<String>,
    pub versions: Vec<&'static str>,
    pub tls12_suites: Vec<IcsSuite>,
    /// The TLS 1.2 suites a client gets that does not offer Encrypt-then-MAC (TLS-7).
    pub tls12_suites_without_etm: Vec<IcsSuite>,
    pub tls13_suites: Vec<IcsSuite>,
    pub groups: Vec<&'static str>,
    pub signature_algorithms: Vec<&'static str>,
    pub certificates: Vec<IcsCertificate>,
    pub features: Vec<(&'static str, String)>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct IcsSuite {
    /// The IANA code point, e.g. `0xC02B`.
    pub iana: String,
    /// The RFC name, e.g. `TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256`.
    pub name: String,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct IcsCertificate {
    /// The signature algorithms this certificate's key can make in TLS 1.3, where ECDSA is
    /// bound to the curve (RFC 8446 §4.2.3) — what a scan of this listener finds.
    pub tls13_signature_algorithms: Vec<&'static str>,
    /// The same for TLS 1.2, where an ECDSA signature may use any of the listed hashes.
    pub tls12_signature_algorithms: Vec<&'static str>,
    pub names: Vec<String>,
    pub key: String,
    pub not_after: String,
    pub issuer: String,
}

/// The names of the protocol versions from `min` to `max`, oldest first.
fn version_names(min: SslVersion, max: SslVersion) -> Vec<&'static str> {
    const ALL: [(SslVersion, &str); 4] = [
        (SslVersion::TLS1, "TLSv1"),
        (SslVersion::TLS1_1, "TLSv1.1"),
        (SslVersion::TLS1_2, "TLSv1.2"),
        (SslVersion::TLS1_3, "TLSv1.3"),
    ];
    let at = |v: SslVersion| ALL.iter().position(|(a, _)| *a == v).unwrap_or(0);
    ALL[at(min)..=at(max)].iter().map(|(_, n)| *n).collect()
}

/// The TLS 1.2 and the TLS 1.3 suites a built context offers, in its order.
fn suites(ctx: &SslContextRef) -> (Vec<IcsSuite>, Vec<IcsSuite>) {
    let mut tls12_suites = Vec::new();
    let mut tls13_suites = Vec::new();
    for c in ffi::context_ciphers(ctx) {
        let id = c.protocol_id();
        let suite = IcsSuite {
            iana: format!("0x{:02X}{:02X}", id[0], id[1]),
            name: c.standard_name().unwrap_or(c.name()).to_string(),
        };
        if c.version() == "TLSv1.3" {
            tls13_suites.push(suite)
        } else {
            tls12_suites.push(suite)
        }
    }
    (tls12_suites, tls13_suites)
}

/// Describes an outbound SMTP client profile (TLS-4): what Kurier offers as a client.
pub fn describe_client(profile: ClientProfile) -> Result<Ics, TlsError> {
    let ctx = profile.context_builder()?.build();
    let (tls12_suites, tls13_suites) = suites(&ctx);
    let (min, max) = profile.versions();
    let versions = version_names(min, max);
    let (channels, features) = match profile {
        ClientProfile::Strict => (
            vec![
                "outbound SMTP (every destination first)".into(),
                "HTTPS client: MTA-STS policies, TLSRPT reports to https collectors".into(),
            ],
            vec![
                ("peer check", "DANE (RFC 7672) or PKIX for MTA-STS, as the destination's policy demands"),
                ("SNI", "the MX host name (the TLSA base name for DANE)"),
            ],
        ),
        ClientProfile::Legacy => (
            vec!["outbound SMTP, best effort only: destinations without DANE or MTA-STS, after the strict profile failed, before clear text".into()],
            vec![("peer check", "none (never used where a policy asks for one)")],
        ),
    };
    let mut features: Vec<(&'static str, String)> = features
        .into_iter()
        .map(|(k, v)| (k, v.to_string()))
        .collect();
    if !profile.key_shares().is_empty() {
        features.push(("TLS 1.3 key shares", profile.key_shares().join(", ")));
    }
    features.extend(
        [
            (
                "signature_algorithms_cert",
                "not sent: OpenSSL cannot; signature_algorithms then also governs certificates (RFC 8446 §4.2.3)",
            ),
            ("compression", "off (TLS-6)"),
            ("renegotiation", "refused (TLS-6)"),
            ("Encrypt-then-MAC", "offered (TLS-7)"),
            ("Extended Master Secret", "offered (TLS-7)"),
        ]
        .map(|(k, v)| (k, v.to_string())),
    );
    Ok(Ics {
        profile: match profile {
            ClientProfile::Strict => "client-strict",
            ClientProfile::Legacy => "client-legacy",
        },
        channels,
        versions,
        tls12_suites_without_etm: tls12_suites.clone(),
        tls12_suites,
        // The context keeps its TLS 1.3 suites; without TLS 1.3 they are never offered.
        tls13_suites: if max == SslVersion::TLS1_3 {
            tls13_suites
        } else {
            Vec::new()
        },
        groups: profile.groups(),
        signature_algorithms: profile.sigalgs(),
        certificates: Vec::new(),
        features,
    })
}

/// Describes the live contexts of `acceptor`, serving on `channels`.
pub fn describe(acceptor: &TlsAcceptor, channels: Vec<String>) -> Ics {
    let profile = acceptor.profile();
    let options = acceptor.options();
    let certificates = acceptor.certificates();
    let (tls12_suites, tls13_suites) = suites(&acceptor.default_context());
    let versions = version_names(profile.min_version(), SslVersion::TLS1_3);
    Ics {
        profile: profile.name(),
        channels,
        versions,
        // The strict profile gives a client without EtM the AEAD suites only (TLS-7).
        tls12_suites_without_etm: match profile {
            ServerProfile::Strict => tls12_suites
                .iter()
                .filter(|c| crate::profile::is_aead(&c.name))
                .cloned()
                .collect(),
            ServerProfile::MtaLegacy => tls12_suites.clone(),
        },
        tls12_suites,
        tls13_suites,
        groups: profile.groups_with(options),
        signature_algorithms: profile.sigalgs(),
        certificates: certificates
            .iter()
            .map(|c| describe_certificate(c, &profile.sigalgs()))
            .collect(),
        features: vec![
            (
                "certificate keys",
                "ECDSA P-256/P-384/P-521 or brainpoolP256r1/384r1/512r1, RSA ≥ 3072 bits (CERT-1)",
            ),
            (
                "key exchange",
                "ECDHE on the groups above; finite-field DHE only as ffdhe3072/ffdhe4096 (≥ 3072 bits)",
            ),
            (
                "session tickets",
                if options.session_tickets {
                    "sent (TLS 1.3 NewSessionTicket, TLS 1.2 RFC 5077)"
                } else {
                    "off: no tickets in TLS 1.3 or 1.2 (smtp.tls_session_tickets = false)"
                },
            ),
            (
                "hybrid post-quantum groups",
                if options.hybrid_groups {
                    "offered first (tls.hybrid_groups = true): SecP256r1MLKEM768, SecP384r1MLKEM1024 — not in TR-03116-4 yet"
                } else {
                    "off (tls.hybrid_groups; not in TR-03116-4 yet)"
                },
            ),
            ("compression", "off (TLS-6)"),
            ("heartbeat", "not implemented (TLS-6)"),
            ("truncated_hmac", "not implemented (TLS-6)"),
            (
                "renegotiation",
                "refused, client- and server-initiated (TLS-6)",
            ),
            ("0-RTT early data", "not accepted (TLS-6)"),
            ("TLS 1.3 resumption", "psk_dhe_ke only (TLS-6)"),
            (
                "Encrypt-then-MAC",
                match profile {
                    ServerProfile::Strict => {
                        "required for CBC suites: a client that does not offer it gets GCM/CCM only (TLS-7)"
                    }
                    ServerProfile::MtaLegacy => {
                        "used with CBC suites whenever the client offers it; old clients without it get CBC with MAC-then-encrypt (TLS-9)"
                    }
                },
            ),
            ("Extended Master Secret", "on (TLS-7)"),
            ("client certificates", "not requested (TLS-10)"),
            ("session lifetime cap", "none (TLS-8, TR-03108 §4.3.1)"),
            ("cipher order", "server preference"),
            (
                "SNI",
                "selects the certificate; without SNI the default one is served",
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k, v.to_string()))
        .collect(),
    }
}

fn describe_certificate(c: &LoadedCertificate, sigalgs: &[&'static str]) -> IcsCertificate {
    let leaf = c.leaf();
    let key = c.key_description();
    let tls12 = |name: &str| match key.split(' ').next().unwrap_or_default() {
        "ECDSA" => name.starts_with("ecdsa_secp") || name == "ECDSA+SHA1",
        "RSA" => {
            name.starts_with("rsa_pss_rsae_")
                || name.starts_with("rsa_pkcs1_")
                || name == "RSA+SHA1"
        }
        "RSA-PSS" => name.starts_with("rsa_pss_pss_"),
        _ => false,
    };
    let usable = |name: &str| match key.split(' ').collect::<Vec<_>>().as_slice() {
        ["ECDSA", "P-256"] => name == "ecdsa_secp256r1_sha256",
        ["ECDSA", "P-384"] => name == "ecdsa_secp384r1_sha384",
        ["ECDSA", "P-521"] => name == "ecdsa_secp521r1_sha512",
        ["ECDSA", curve] if curve.starts_with("brainpool") => {
            name.starts_with(&format!("ecdsa_{curve}tls13_"))
        }
        ["RSA", _] => name.starts_with("rsa_pss_rsae_"),
        ["RSA-PSS", _] => name.starts_with("rsa_pss_pss_"),
        _ => false,
    };
    let issuer = leaf
        .issuer_name()
        .entries()
        .filter_map(|e| e.data().to_string().ok())
        .collect::<Vec<_>>()
        .join(", ");
    IcsCertificate {
        tls13_signature_algorithms: sigalgs.iter().copied().filter(|a| usable(a)).collect(),
        tls12_signature_algorithms: sigalgs.iter().copied().filter(|a| tls12(a)).collect(),
        names: c.names.clone(),
        key,
        not_after: leaf.not_after().to_string(),
        issuer,
    }
}

impl IcsCertificate {
    /// `mx.example.org — ECDSA P-256, valid until …, issuer …`.
    pub fn summary(&self) -> String {
        format!(
            "{} — {}, valid until {}, issuer {}",
            self.names.join(" "),
            self.key,
            self.not_after,
            self.issuer
        )
    }
}

impl Ics {
    /// A plain-text table, as `kurier tls-profile` prints it.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "TLS profile {:?}", self.profile);
        if !self.channels.is_empty() {
            let _ = writeln!(s, "  channels:   {}", self.channels.join(", "));
        }
        let _ = writeln!(s, "  versions:   {}", self.versions.join(", "));
        let _ = writeln!(s, "  TLS 1.2 cipher suites (in order of preference):");
        for c in &self.tls12_suites {
            let _ = writeln!(s, "    {}  {}", c.iana, c.name);
        }
        let _ = writeln!(s, "  TLS 1.3 cipher suites:");
        for c in &self.tls13_suites {
            let _ = writeln!(s, "    {}  {}", c.iana, c.name);
        }
        let _ = writeln!(s, "  groups:     {}", self.groups.join(", "));
        let _ = writeln!(
            s,
            "  signature algorithms: {}",
            self.signature_algorithms.join(", ")
        );
        for c in &self.certificates {
            let _ = writeln!(s, "  certificate: {}", c.summary());
        }
        for (k, v) in &self.features {
            let _ = writeln!(s, "  {k}: {v}");
        }
        s
    }
}
