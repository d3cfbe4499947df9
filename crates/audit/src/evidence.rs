//! The raw facts behind the findings (issue 23 item 5): per MX address, what one handshake
//! showed — the negotiated version, suite and group, every certificate of the chain as sent
//! (subject, issuer, validity, names, key, SPKI SHA-256 as a `3 1 1`/`2 1 1` record would name
//! it) and the TLSA records published for it. The HTML page and `--json` show them, so that an
//! auditor can recompute every verdict.

use std::net::SocketAddr;

use openssl::hash::MessageDigest;
use openssl::x509::X509;

/// One certificate as sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateFacts {
    pub subject: String,
    pub issuer: String,
    pub not_before: String,
    pub not_after: String,
    pub names: Vec<String>,
    pub key: String,
    /// SHA-256 of the SubjectPublicKeyInfo, hex (what `x 1 1` TLSA records carry).
    pub spki_sha256: String,
}

impl CertificateFacts {
    pub fn of(cert: &X509) -> CertificateFacts {
        let spki_sha256 = cert
            .public_key()
            .ok()
            .and_then(|k| k.public_key_to_der().ok())
            .and_then(|der| openssl::hash::hash(MessageDigest::sha256(), &der).ok())
            .map(|h| h.iter().map(|b| format!("{b:02x}")).collect())
            .unwrap_or_default();
        CertificateFacts {
            subject: kurier_tls::certificate::subject(cert),
            issuer: kurier_tls::certificate::issuer(cert),
            not_before: cert.not_before().to_string(),
            not_after: cert.not_after().to_string(),
            names: kurier_tls::certificate::dns_names(cert),
            key: cert
                .public_key()
                .map(|k| kurier_tls::certificate::key_description(&k))
                .unwrap_or_default(),
            spki_sha256,
        }
    }
}

/// What one handshake with an MX address showed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    pub host: String,
    pub addr: SocketAddr,
    pub version: String,
    pub cipher: String,
    pub group: Option<String>,
    pub chain: Vec<CertificateFacts>,
    /// Where the TLSA records were looked up, and the records (`u s m hex`).
    pub tlsa_name: String,
    pub tlsa: Vec<String>,
}

impl Probe {
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "host": self.host, "address": self.addr.to_string(), "version": self.version,
            "cipher": self.cipher, "group": self.group, "tlsa_name": self.tlsa_name,
            "tlsa": self.tlsa,
            "chain": self.chain.iter().map(|c| serde_json::json!({
                "subject": c.subject, "issuer": c.issuer, "not_before": c.not_before,
                "not_after": c.not_after, "names": c.names, "key": c.key,
                "spki_sha256": c.spki_sha256,
            })).collect::<Vec<_>>(),
        })
    }

    /// An HTML section (text escaped by `esc`).
    pub fn html(&self, esc: &dyn Fn(&str) -> String) -> String {
        let mut rows = String::new();
        for (i, c) in self.chain.iter().enumerate() {
            rows.push_str(&format!(
                "<tr><td>{i}</td><td>{}</td><td>{}</td><td>{} – {}</td><td>{}</td><td>{}</td><td><code>{}</code></td></tr>\n",
                esc(&c.subject),
                esc(&c.issuer),
                esc(&c.not_before),
                esc(&c.not_after),
                esc(&c.names.join(", ")),
                esc(&c.key),
                esc(&c.spki_sha256)
            ));
        }
        let tlsa = if self.tlsa.is_empty() {
            "none".to_string()
        } else {
            self.tlsa
                .iter()
                .map(|t| format!("<code>{}</code>", esc(t)))
                .collect::<Vec<_>>()
                .join("<br>")
        };
        format!(
            "<h3>{} [{}] port {}</h3>\n<p>Negotiated {} {} {}. TLSA at {}: {}</p>\n<table><tr><th>#</th><th>subject</th><th>issuer</th><th>valid</th><th>names</th><th>key</th><th>SPKI SHA-256</th></tr>\n{rows}</table>\n",
            esc(&self.host),
            self.addr.ip(),
            self.addr.port(),
            esc(&self.version),
            esc(&self.cipher),
            esc(self.group.as_deref().unwrap_or("")),
            esc(&self.tlsa_name),
            tlsa
        )
    }
}
