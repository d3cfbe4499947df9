//! The TLS profiles of TR-03108 §4.1 / TR-03116-4 §2 as data, and their OpenSSL contexts.
//!
//! A profile is a list of protocol versions, suites, groups and signature algorithms. The lists
//! are the single source: contexts are built from them, and the ICS (`crate::ics`) reads them back.

use openssl::ssl::{
    SslConnector, SslContextBuilder, SslMethod, SslMode, SslOptions, SslRef, SslVerifyMode,
    SslVersion,
};

use crate::TlsError;

/// Which side of which channel a context serves (ARCHITECTURE: one TLS profile per role).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ServerProfile {
    /// MUA ports, HTTPS, and by default port 25: TR-03116-4 only (TLS-1, TLS-2).
    Strict,
    /// Port 25 only, opt-in: `Strict` first, then legacy versions and suites at the lowest
    /// priority so that opportunistic STARTTLS still works with old peers (TLS-9, TR §4.3.2).
    MtaLegacy,
}

/// TLS 1.2 suites of TR-02102-2 Table 2 with ECDHE, in our order of preference (TLS-2, TLS-3).
/// The CBC ones are only ever used with Encrypt-then-MAC, which OpenSSL negotiates by default.
pub const TLS12_SUITES: &[&str] = &[
    "ECDHE-ECDSA-AES128-GCM-SHA256", // C02B (client mandatory)
    "ECDHE-ECDSA-AES256-GCM-SHA384", // C02C
    "ECDHE-ECDSA-AES128-CCM",        // C0AC
    "ECDHE-ECDSA-AES256-CCM",        // C0AD
    "ECDHE-RSA-AES128-GCM-SHA256",   // C02F (client mandatory)
    "ECDHE-RSA-AES256-GCM-SHA384",   // C030
    "ECDHE-ECDSA-AES128-SHA256",     // C023 (client mandatory)
    "ECDHE-ECDSA-AES256-SHA384",     // C024
    "ECDHE-RSA-AES128-SHA256",       // C027 (client mandatory)
    "ECDHE-RSA-AES256-SHA384",       // C028
];

/// TLS 1.3 suites of TR-03116-4 §2.3: no ChaCha20, no CCM_8.
pub const TLS13_SUITES: &[&str] = &[
    "TLS_AES_128_GCM_SHA256",
    "TLS_AES_256_GCM_SHA384",
    "TLS_AES_128_CCM_SHA256",
];

/// Key-exchange groups, brainpool first (TLS-5, TR-03116-4 §2.2.2); no X25519/X448.
pub const GROUPS: &[&str] = &[
    "brainpoolP256r1tls13",
    "brainpoolP384r1tls13",
    "brainpoolP512r1tls13",
    "brainpoolP256r1",
    "brainpoolP384r1",
    "brainpoolP512r1",
    "P-256",
    "P-384",
    "P-521",
    "ffdhe3072",
    "ffdhe4096",
];

/// Signature algorithms of TR-02102-2 §3.4.3 / TR-03116-4 §2.3.4: ECDSA and RSA-PSS only.
/// No ed25519/ed448, no PKCS#1 v1.5 (allowed only until 2025), no SHA-1/SHA-224.
pub const SIGALGS: &[&str] = &[
    "ecdsa_brainpoolP256r1tls13_sha256",
    "ecdsa_brainpoolP384r1tls13_sha384",
    "ecdsa_brainpoolP512r1tls13_sha512",
    "ecdsa_secp256r1_sha256",
    "ecdsa_secp384r1_sha384",
    "ecdsa_secp521r1_sha512",
    "rsa_pss_rsae_sha256",
    "rsa_pss_rsae_sha384",
    "rsa_pss_rsae_sha512",
    "rsa_pss_pss_sha256",
    "rsa_pss_pss_sha384",
    "rsa_pss_pss_sha512",
];

/// What `MtaLegacy` adds after the strict suites (TLS-9): CBC-SHA1 with ECDHE, then static RSA.
pub const LEGACY_TLS12_SUITES: &[&str] = &[
    "ECDHE-ECDSA-AES128-SHA",
    "ECDHE-ECDSA-AES256-SHA",
    "ECDHE-RSA-AES128-SHA",
    "ECDHE-RSA-AES256-SHA",
    "AES128-GCM-SHA256",
    "AES256-GCM-SHA384",
    "AES128-SHA256",
    "AES256-SHA256",
    "AES128-SHA",
    "AES256-SHA",
];

/// Groups `MtaLegacy` accepts after the strict ones, for peers that offer nothing else.
pub const LEGACY_GROUPS: &[&str] = &["X25519", "X448"];

/// Signature algorithms `MtaLegacy` accepts after the strict ones.
pub const LEGACY_SIGALGS: &[&str] = &[
    "rsa_pkcs1_sha256",
    "rsa_pkcs1_sha384",
    "rsa_pkcs1_sha512",
    "ECDSA+SHA1",
    "RSA+SHA1",
];

/// Hybrid post-quantum key exchange groups (ECDHE + ML-KEM, RFC 10024), strongest last. Not
/// in TR-03116-4 yet: only with `ServerOptions::hybrid_groups`, and never X25519MLKEM768.
pub const HYBRID_GROUPS: &[&str] = &["SecP256r1MLKEM768", "SecP384r1MLKEM1024"];

/// Switches on top of a server profile, per listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct ServerOptions {
    /// Session tickets (TLS 1.3 NewSessionTicket, TLS 1.2 RFC 5077). Some large senders give up
    /// STARTTLS on port 25 against servers that send TLS 1.3 tickets, so the MX can turn them
    /// off; without tickets, clients make a full handshake each time.
    pub session_tickets: bool,
    /// Offer `HYBRID_GROUPS` before the profile's groups (opt-in).
    pub hybrid_groups: bool,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            session_tickets: true,
            hybrid_groups: false,
        }
    }
}

impl ServerProfile {
    pub fn name(self) -> &'static str {
        match self {
            ServerProfile::Strict => "strict",
            ServerProfile::MtaLegacy => "mta-legacy",
        }
    }

    pub fn min_version(self) -> SslVersion {
        match self {
            ServerProfile::Strict => SslVersion::TLS1_2,
            ServerProfile::MtaLegacy => SslVersion::TLS1,
        }
    }

    pub fn tls12_suites(self) -> Vec<&'static str> {
        self.with_legacy(TLS12_SUITES, LEGACY_TLS12_SUITES)
    }

    pub fn groups(self) -> Vec<&'static str> {
        self.with_legacy(GROUPS, LEGACY_GROUPS)
    }

    /// The groups a listener with `options` offers, in order.
    pub fn groups_with(self, options: ServerOptions) -> Vec<&'static str> {
        let mut list = Vec::new();
        if options.hybrid_groups {
            list.extend_from_slice(HYBRID_GROUPS);
        }
        list.extend(self.groups());
        list
    }

    /// `groups_with` in OpenSSL's list syntax (3.5+). The hybrid groups form a tuple of their
    /// own (`/`), so that they are preferred even at the cost of a HelloRetryRequest when the
    /// client sent a classic key share only.
    fn groups_list(self, options: ServerOptions) -> String {
        let classic = self.groups().join(":");
        if options.hybrid_groups {
            format!("{}/{classic}", HYBRID_GROUPS.join(":"))
        } else {
            classic
        }
    }

    pub fn sigalgs(self) -> Vec<&'static str> {
        self.with_legacy(SIGALGS, LEGACY_SIGALGS)
    }

    fn with_legacy(self, strict: &[&'static str], legacy: &[&'static str]) -> Vec<&'static str> {
        with_legacy(self == ServerProfile::MtaLegacy, strict, legacy)
    }

    /// A context builder with every rule of the profile and `options` applied and no
    /// certificate yet.
    pub(crate) fn context_builder(
        self,
        options: ServerOptions,
    ) -> Result<SslContextBuilder, TlsError> {
        let mut b = SslContextBuilder::new(SslMethod::tls_server())
            .map_err(TlsError::openssl("create server context"))?;
        // RELEASE_BUFFERS: an idle connection (IMAP IDLE, for days) keeps no 16 KiB record
        // buffers; they come back for the next record.
        b.set_mode(
            SslMode::AUTO_RETRY
                | SslMode::ACCEPT_MOVING_WRITE_BUFFER
                | SslMode::ENABLE_PARTIAL_WRITE
                | SslMode::RELEASE_BUFFERS,
        );
        apply_common(
            &mut b,
            (self.min_version(), SslVersion::TLS1_3),
            &self.tls12_suites(),
            &self.groups_list(options),
            &self.sigalgs(),
        )?;
        if !options.session_tickets {
            b.set_num_tickets(0)
                .map_err(TlsError::openssl("turn TLS 1.3 session tickets off"))?;
            b.set_options(SslOptions::NO_TICKET);
        }
        if self == ServerProfile::MtaLegacy {
            // TLS 1.0/1.1 need SHA-1 in the handshake, which level 1 still forbids.
            b.set_security_level(0);
        }
        let rule = self.client_hello_rule();
        b.set_client_hello_callback(move |ssl, _alert| {
            rule(ssl)?;
            Ok(openssl::ssl::ClientHelloResponse::SUCCESS)
        });
        // Server preference, so that brainpool and GCM win whenever the client allows them.
        b.set_options(SslOptions::CIPHER_SERVER_PREFERENCE);
        // TLS-10: public endpoints ask for no client certificate (no CertificateRequest).
        b.set_verify(SslVerifyMode::NONE);
        // TLS-6: no 0-RTT. TLS-8: no session lifetime cap is set anywhere.
        b.set_max_early_data(0)
            .map_err(TlsError::openssl("disable 0-RTT"))?;
        Ok(b)
    }
}

/// What the profile does with each ClientHello, in the client-hello callback (a context has
/// one: a caller that installs its own, as `TlsAcceptor` does, must run this first).
pub(crate) type ClientHelloRule =
    std::sync::Arc<dyn Fn(&mut SslRef) -> Result<(), openssl::error::ErrorStack> + Send + Sync>;

impl ServerProfile {
    /// TLS-7 (TR-03116-4 §2.3.2: CBC only with Encrypt-then-MAC). OpenSSL would pick a CBC
    /// suite for a client that does not offer EtM and then use MAC-then-encrypt; so a
    /// ClientHello without the encrypt_then_mac extension (RFC 7366, type 22) gets the AEAD
    /// suites only — GCM or CCM if it offers one, else no handshake. (TLS 1.3 has AEAD suites
    /// only anyway.) The legacy profile keeps MAC-then-encrypt for old peers (TLS-9).
    pub(crate) fn client_hello_rule(self) -> ClientHelloRule {
        if self == ServerProfile::MtaLegacy {
            return std::sync::Arc::new(|_| Ok(()));
        }
        let aead = aead_suites(TLS12_SUITES).join(":");
        std::sync::Arc::new(move |ssl| {
            if crate::ffi::client_hello_extension(ssl, EXT_ENCRYPT_THEN_MAC).is_none() {
                // A subset of a list the context accepted; should it fail, the handshake is refused.
                ssl.set_cipher_list(&aead)?;
            }
            Ok(())
        })
    }
}

/// RFC 7366 encrypt_then_mac.
const EXT_ENCRYPT_THEN_MAC: u32 = 22;

/// Whether a suite (by OpenSSL or RFC name) is an AEAD one (GCM, CCM), which needs no EtM.
pub fn is_aead(suite: &str) -> bool {
    suite.contains("GCM") || suite.contains("CCM")
}

/// The AEAD (GCM, CCM) suites of `suites`.
pub fn aead_suites(suites: &[&'static str]) -> Vec<&'static str> {
    suites.iter().copied().filter(|s| is_aead(s)).collect()
}

/// The `strict` list, followed by the `legacy` additions if `legacy` is on.
fn with_legacy(
    legacy: bool,
    strict: &[&'static str],
    additions: &[&'static str],
) -> Vec<&'static str> {
    let mut list = strict.to_vec();
    if legacy {
        list.extend_from_slice(additions);
    }
    list
}

/// The profiles of the outbound SMTP client (TLS-4).
///
/// `Legacy` is TR-03116-4's lowest priority, and TR-03108's best effort before clear text:
/// TLS 1.0–1.2 with the `mta-legacy` suites, X25519/X448 and RSA PKCS#1 signatures added, for
/// old or narrow peers the strict profile cannot reach. The delivery engine uses it only for
/// destinations no DANE or MTA-STS policy protects, after `Strict` failed, and without any peer
/// check (`ClientTls::legacy_ssl` takes none), so it can never weaken a verified connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClientProfile {
    Strict,
    Legacy,
}

impl ClientProfile {
    pub fn name(self) -> &'static str {
        match self {
            ClientProfile::Strict => "strict",
            ClientProfile::Legacy => "legacy",
        }
    }

    /// The lowest and highest protocol version offered.
    pub fn versions(self) -> (SslVersion, SslVersion) {
        match self {
            ClientProfile::Strict => (SslVersion::TLS1_2, SslVersion::TLS1_3),
            // Not 1.3: a peer that needs this profile is one whose TLS 1.3 is broken or
            // absent, and a 1.3 handshake with it would fail the same way again.
            ClientProfile::Legacy => (SslVersion::TLS1, SslVersion::TLS1_2),
        }
    }

    pub fn tls12_suites(self) -> Vec<&'static str> {
        with_legacy(
            self == ClientProfile::Legacy,
            TLS12_SUITES,
            LEGACY_TLS12_SUITES,
        )
    }

    pub fn groups(self) -> Vec<&'static str> {
        with_legacy(self == ClientProfile::Legacy, GROUPS, LEGACY_GROUPS)
    }

    pub fn sigalgs(self) -> Vec<&'static str> {
        with_legacy(self == ClientProfile::Legacy, SIGALGS, LEGACY_SIGALGS)
    }

    /// The groups the TLS 1.3 ClientHello sends key shares for: brainpoolP256r1tls13 first
    /// (TR-03116-4) and secp256r1, which nearly every server has, so that a server without
    /// brainpool needs no HelloRetryRequest (RFC 8446 §4.1.4).
    pub fn key_shares(self) -> &'static [&'static str] {
        match self {
            ClientProfile::Strict => &["brainpoolP256r1tls13", "P-256"],
            // TLS ≤ 1.2 has no key shares.
            ClientProfile::Legacy => &[],
        }
    }

    /// The groups in OpenSSL's list syntax (3.5+): a `*` marks a key share.
    fn groups_offer(self) -> String {
        self.groups()
            .iter()
            .map(|g| {
                if self.key_shares().contains(g) {
                    format!("*{g}")
                } else {
                    g.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join(":")
    }

    /// Applies the profile's lists to a client context.
    fn apply(self, b: &mut SslContextBuilder) -> Result<(), TlsError> {
        apply_common(
            b,
            self.versions(),
            &self.tls12_suites(),
            &self.groups_offer(),
            &self.sigalgs(),
        )
    }

    /// A client context builder with the profile's lists applied.
    pub(crate) fn context_builder(self) -> Result<SslContextBuilder, TlsError> {
        let mut b = SslContextBuilder::new(SslMethod::tls_client())
            .map_err(TlsError::openssl("create client context"))?;
        self.apply(&mut b)?;
        if self == ClientProfile::Legacy {
            // TLS 1.0/1.1 sign and derive keys with SHA-1/MD5, which level 1 forbids.
            b.set_security_level(0);
        }
        Ok(b)
    }
}

// OpenSSL 3 option bits the `openssl` crate does not name (include/openssl/ssl.h).
const OP_NO_EXTENDED_MASTER_SECRET: SslOptions = SslOptions::from_bits_retain(1 << 0);
const OP_ALLOW_CLIENT_RENEGOTIATION: SslOptions = SslOptions::from_bits_retain(1 << 8);
/// Set, it would allow TLS 1.3 resumption without (EC)DHE (psk_ke), which TLS-6 forbids.
const OP_ALLOW_NO_DHE_KEX: SslOptions = SslOptions::from_bits_retain(1 << 10);
pub(crate) const OP_NO_ENCRYPT_THEN_MAC: SslOptions = SslOptions::from_bits_retain(1 << 19);

/// Rules shared by both sides: versions, suites, groups (`groups` in OpenSSL's list syntax,
/// with key-share marks or tuples), sigalgs, and TLS-6 prohibitions.
pub(crate) fn apply_common(
    b: &mut SslContextBuilder,
    (min, max): (SslVersion, SslVersion),
    tls12: &[&str],
    groups: &str,
    sigalgs: &[&str],
) -> Result<(), TlsError> {
    b.set_min_proto_version(Some(min))
        .map_err(TlsError::openssl("set minimum TLS version"))?;
    b.set_max_proto_version(Some(max))
        .map_err(TlsError::openssl("set maximum TLS version"))?;
    b.set_cipher_list(&tls12.join(":"))
        .map_err(TlsError::openssl("set TLS 1.2 cipher suites"))?;
    b.set_ciphersuites(&TLS13_SUITES.join(":"))
        .map_err(TlsError::openssl("set TLS 1.3 cipher suites"))?;
    b.set_groups_list(groups)
        .map_err(TlsError::openssl("set key-exchange groups"))?;
    b.set_sigalgs_list(&sigalgs.join(":"))
        .map_err(TlsError::openssl("set signature algorithms"))?;
    // TLS-6: no compression, no renegotiation at all (OpenSSL has no heartbeat or
    // truncated_hmac). TLS-7: Encrypt-then-MAC and Extended Master Secret stay on (default).
    b.set_options(SslOptions::NO_COMPRESSION | SslOptions::NO_RENEGOTIATION);
    b.clear_options(
        SslOptions::NO_TICKET
            | SslOptions::ALLOW_UNSAFE_LEGACY_RENEGOTIATION
            | OP_ALLOW_CLIENT_RENEGOTIATION
            | OP_NO_ENCRYPT_THEN_MAC
            | OP_NO_EXTENDED_MASTER_SECRET
            | OP_ALLOW_NO_DHE_KEX,
    );
    Ok(())
}

/// Debian's bundle of trusted CAs (package ca-certificates).
pub const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// The client side: outbound SMTP and HTTPS fetches (TLS-4). It offers all suites of TLS-2,
/// including the four that clients must support (C023, C027, C02B, C02F), and sends
/// supported_groups and signature_algorithms. SNI is set per connection by the caller.
///
/// OpenSSL 3.6 never sends signature_algorithms_cert; per RFC 8446 §4.2.3 the
/// signature_algorithms list then also governs certificates.
pub fn client_connector(verify_peer: bool) -> Result<SslConnector, TlsError> {
    let mut b = SslConnector::builder(SslMethod::tls_client())
        .map_err(TlsError::openssl("create client context"))?;
    ClientProfile::Strict.apply(&mut b)?;
    b.set_verify(if verify_peer {
        SslVerifyMode::PEER
    } else {
        SslVerifyMode::NONE
    });
    // The vendored OpenSSL looks for CAs under its build prefix; use the system bundle.
    if verify_peer && std::path::Path::new(SYSTEM_CA_BUNDLE).exists() {
        b.set_ca_file(SYSTEM_CA_BUNDLE)
            .map_err(TlsError::openssl("load the system CA bundle"))?;
    }
    Ok(b.build())
}
