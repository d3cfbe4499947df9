//! # kurier-dns — lookups whose answers carry their DNSSEC state
//!
//! Owns every DNS question Kurier asks (MX, A/AAAA, TLSA, TXT, SRV, DNSKEY) and the one fact
//! policy needs about each answer: was it proven (`Secure`), provably unsigned (`Insecure`), or
//! could it not be trusted at all (an error: bogus or indeterminate). A bogus answer is an
//! error, never "no record" (TR-03108 DNS-1; RFC 4033 §5, RFC 7672 §2.1).
//!
//! Who judges: in the default mode `validate`, libunbound in-process (`unbound`), from the
//! configured trust anchor, through any upstream — validating, non-validating or an
//! authoritative server, the verdict is the same. In `trust_ad` mode, the AD bit of a local
//! validating resolver (as Postfix does, RFC 6840 §5.8: only over loopback), re-probed so that
//! it cannot degrade silently (`probe`). `off` makes every answer insecure (no DANE — not
//! TR-03108 compliant, and said so at every start). hickory-proto only parses messages.
//!
//! Must not: decide anything. Whether DANE applies is the `policy` crate's question.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use hickory_proto::rr::{RData, Record, RecordType};

mod ad;
mod health;
mod unbound;

pub use health::{ValidatorState, watch_validator};

/// What DNSSEC proved about an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DnssecState {
    /// A chain of trust from the anchor validates it.
    Secure,
    /// Provably outside any signed zone (or below an insecure delegation).
    Insecure,
}

/// The questions of outbound routing (RFC 5321 §5.1, RFC 7672 §2), as a trait over `Resolver`,
/// so that routing decisions can be tested against answers made up in a test.
pub trait RouteLookup: Send + Sync {
    fn mx(
        &self,
        domain: &str,
    ) -> impl std::future::Future<Output = Result<Answer<MxRecord>, DnsError>> + Send;
    fn addresses(
        &self,
        host: &str,
    ) -> impl std::future::Future<Output = Result<Answer<IpAddr>, DnsError>> + Send;
    fn canonical_name(
        &self,
        name: &str,
    ) -> impl std::future::Future<Output = Result<Answer<String>, DnsError>> + Send;
    fn tlsa(
        &self,
        name: &str,
    ) -> impl std::future::Future<Output = Result<Answer<TlsaData>, DnsError>> + Send;
}

impl RouteLookup for Resolver {
    async fn mx(&self, domain: &str) -> Result<Answer<MxRecord>, DnsError> {
        Resolver::mx(self, domain).await
    }
    async fn addresses(&self, host: &str) -> Result<Answer<IpAddr>, DnsError> {
        Resolver::addresses(self, host).await
    }
    async fn canonical_name(&self, name: &str) -> Result<Answer<String>, DnsError> {
        Resolver::canonical_name(self, name).await
    }
    async fn tlsa(&self, name: &str) -> Result<Answer<TlsaData>, DnsError> {
        Resolver::tlsa(self, name).await
    }
}

/// An answer: records (empty for NXDOMAIN/NODATA) and whether they are proven.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer<T> {
    pub records: Vec<T>,
    pub state: DnssecState,
    /// True for NXDOMAIN (the name does not exist), false for NODATA or records.
    pub nxdomain: bool,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum DnsError {
    /// Signatures do not validate, or a proof is missing where one must be (RFC 4035 §4.3).
    #[error("DNSSEC validation failed (bogus): {0}")]
    Bogus(String),
    /// No trustworthy answer now: timeout, SERVFAIL (a validating upstream reports bogus data
    /// that way), network error. Retry later; never treat as "no record".
    #[error("no trustworthy answer for {0}: {1}")]
    Indeterminate(String, String),
    #[error("{0}")]
    Invalid(String),
}

/// One MX record (RFC 5321 §5.1); a null MX (RFC 7505) has exchange ".".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MxRecord {
    pub preference: u16,
    /// Lower case, without the trailing dot ("." stays ".").
    pub exchange: String,
}

/// One DNSKEY (RFC 4034 §2): its flags, algorithm number, and for RSA the modulus size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsKey {
    pub flags: u16,
    pub algorithm: u8,
    pub rsa_bits: Option<u32>,
}

/// One SRV record (RFC 2782).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrvRecord {
    pub priority: u16,
    pub weight: u16,
    pub port: u16,
    pub target: String,
}

/// TLSA record data (RFC 6698 §2.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsaData {
    pub usage: u8,
    pub selector: u8,
    pub matching: u8,
    pub data: Vec<u8>,
    /// Seconds the answer may still be cached (a rollover waits for caches, RFC 7671 §8.1).
    pub ttl: u32,
}

/// Who establishes the DNSSEC state of an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DnssecMode {
    /// Validate in-process from the trust anchor (the default).
    #[default]
    Validate,
    /// Trust the AD bit of a validating resolver on a loopback address (RFC 6840 §5.8).
    TrustAd,
    /// No DNSSEC: every answer is insecure, DANE never applies. Not TR-03108 compliant.
    Off,
}

/// The DNSSEC signing algorithms (RFC 8624 numbers) as the ICS declares them (TR-03108 DNS-5):
/// (number, mnemonic, validated). `true`: libunbound as Debian builds it validates the
/// algorithm; `false`: it does not, and a zone signed only with it is insecure (RFC 6840
/// §5.2), never bogus. `dns/tests/world.rs::b01_t_*` proves every entry against a signed zone.
pub const DNSSEC_ALGORITHMS: [(u8, &str, bool); 5] = [
    (8, "RSASHA256", true),
    (13, "ECDSAP256SHA256", true),
    (14, "ECDSAP384SHA384", true),
    (15, "ED25519", true),
    (16, "ED448", false),
];

/// Where answers come from and what they are validated against.
#[derive(Debug, Clone)]
pub struct DnsConfig {
    pub mode: DnssecMode,
    /// Resolvers to ask. In `validate` mode any server that answers with DNSSEC records
    /// when asked (DO bit) will do: a validating or non-validating recursive resolver, or the
    /// authoritative server of a lab.
    pub upstream: Vec<SocketAddr>,
    /// DS or DNSKEY records of the root (or a test root) in zone-file form; `None` uses the
    /// IANA root anchors built in.
    pub trust_anchor: Option<PathBuf>,
    /// Keep `trust_anchor` current by RFC 5011 (libunbound rewrites the file).
    pub trust_anchor_updates: bool,
    pub timeout: Duration,
    /// What the probe asks (see `Resolver::probe`).
    pub probe: ProbeNames,
}

impl Default for DnsConfig {
    fn default() -> Self {
        DnsConfig {
            mode: DnssecMode::Validate,
            upstream: Vec::new(),
            trust_anchor: None,
            trust_anchor_updates: false,
            timeout: Duration::from_secs(5),
            probe: ProbeNames::default(),
        }
    }
}

/// A name that must validate and one that must not, for the probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeNames {
    /// Its DNSKEY RRset must be secure: the root by default (always signed, proves the anchor).
    pub secure: String,
    /// Must never resolve: a domain broken on purpose (Comcast's `dnssec-failed.org` by
    /// default). An error of any kind passes; an answer means nobody validates.
    pub bogus: String,
}

impl Default for ProbeNames {
    fn default() -> Self {
        ProbeNames {
            secure: ".".into(),
            bogus: "dnssec-failed.org".into(),
        }
    }
}

/// The resolver. Cheap to clone.
#[derive(Clone)]
pub struct Resolver {
    backend: Backend,
    mode: DnssecMode,
    upstream: Vec<SocketAddr>,
    anchor: Option<PathBuf>,
    timeout: Duration,
    probe: ProbeNames,
}

#[derive(Clone)]
enum Backend {
    /// `validate`: libunbound judges.
    Unbound(unbound::Validator),
    /// `trust_ad` (AD bit taken) or `off` (ignored).
    Stub(ad::AdClient),
}

impl Resolver {
    pub fn new(config: &DnsConfig) -> Result<Self, DnsError> {
        if config.upstream.is_empty() {
            return Err(DnsError::Invalid("no DNS upstream configured".into()));
        }
        let backend = match config.mode {
            DnssecMode::TrustAd => {
                if let Some(a) = config.upstream.iter().find(|a| !a.ip().is_loopback()) {
                    return Err(DnsError::Invalid(format!(
                        "dnssec = \"trust_ad\" trusts the AD bit only from a resolver on this machine, not {a} (fix: run a validating resolver such as unbound on 127.0.0.1, or use dnssec = \"validate\")"
                    )));
                }
                Backend::Stub(ad::AdClient::new(
                    config.upstream.clone(),
                    config.timeout,
                    true,
                ))
            }
            DnssecMode::Off => Backend::Stub(ad::AdClient::new(
                config.upstream.clone(),
                config.timeout,
                false,
            )),
            DnssecMode::Validate => {
                Backend::Unbound(unbound::Validator::new(&unbound::ValidatorConfig {
                    upstream: &config.upstream,
                    trust_anchor: config.trust_anchor.as_deref(),
                    rfc5011: config.trust_anchor_updates,
                    timeout: config.timeout,
                })?)
            }
        };
        Ok(Resolver {
            backend,
            mode: config.mode,
            upstream: config.upstream.clone(),
            anchor: config.trust_anchor.clone(),
            timeout: config.timeout,
            probe: config.probe.clone(),
        })
    }

    /// Who judges DNSSEC, for the start log line and `/metrics`.
    pub fn validator(&self) -> String {
        match self.mode {
            DnssecMode::Validate => format!("{} in-process", unbound::Validator::describe()),
            DnssecMode::TrustAd => format!(
                "the AD bit of {}",
                self.upstream
                    .iter()
                    .map(|a| a.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            DnssecMode::Off => "none (dnssec = \"off\")".into(),
        }
    }

    /// Checks that validation works: the probe's secure name must come back secure, its bogus
    /// name must not resolve. Run at start and periodically; while it fails, DANE cannot be
    /// trusted and outbound delivery holds mail. The error is one line naming the cause
    /// (refused, unreachable, stripping or not validating upstream; wrong trust anchor) and
    /// the fix. Returns what was proven. In mode `off` there is nothing to check.
    pub async fn probe(&self) -> Result<String, DnsError> {
        if self.mode == DnssecMode::Off {
            return Ok("DNSSEC is off".into());
        }
        let secure = self
            .lookup(&self.probe.secure, RecordType::DNSKEY, true)
            .await;
        let ok = match &secure {
            Ok(a) => a.state == DnssecState::Secure && !a.records.is_empty(),
            Err(_) => false,
        };
        if !ok {
            let cause = match ad::diagnose(&self.upstream, self.timeout, self.mode).await {
                Some(cause) => cause,
                None => match (&secure, self.mode) {
                    (Err(e), _) => e.to_string(),
                    (Ok(_), DnssecMode::TrustAd) => {
                        "the resolver does not set the AD bit on a signed answer: it does not validate (fix: enable validation in it, e.g. unbound with a trust anchor, or use dnssec = \"validate\")".into()
                    }
                    (Ok(_), _) => "the answer is not signed".into(),
                },
            };
            return Err(DnsError::Indeterminate(
                format!(
                    "{} DNSKEY (the probe){}",
                    fqdn(&self.probe.secure),
                    self.anchor_text()
                ),
                cause,
            ));
        }
        // An error passes, and so does proven non-existence (a lab's private root has no
        // such name); records mean nobody checked the signatures.
        match self.lookup(&self.probe.bogus, RecordType::A, true).await {
            Ok(a) if a.records.iter().any(|r| r.record_type() == RecordType::A) => {
                return Err(DnsError::Indeterminate(
                    format!("{} A (the probe)", fqdn(&self.probe.bogus)),
                    "a name that must fail validation resolved: DNSSEC is not being checked (fix: use dnssec = \"validate\", or a validating resolver in trust_ad mode)".into(),
                ));
            }
            _ => {}
        }
        Ok(format!(
            "{} validated {} DNSKEY{}; {} fails as it must",
            self.validator(),
            fqdn(&self.probe.secure),
            self.anchor_text(),
            fqdn(&self.probe.bogus)
        ))
    }

    /// " from the trust anchor FILE" / " from the IANA root anchors"; nothing in `trust_ad`
    /// mode, where the resolver's own anchor counts.
    fn anchor_text(&self) -> String {
        match (&self.anchor, self.mode) {
            (_, DnssecMode::TrustAd) => String::new(),
            (Some(p), _) => format!(" from the trust anchor {}", p.display()),
            (None, _) => " from the IANA root anchors".into(),
        }
    }

    pub async fn mx(&self, domain: &str) -> Result<Answer<MxRecord>, DnsError> {
        let a = self.query(domain, RecordType::MX).await?;
        Ok(a.map(|r| match r.data {
            RData::MX(mx) => Some(MxRecord {
                preference: mx.preference,
                exchange: name_text(&mx.exchange.to_string()),
            }),
            _ => None,
        }))
    }

    pub async fn tlsa(&self, name: &str) -> Result<Answer<TlsaData>, DnsError> {
        let a = self.query(name, RecordType::TLSA).await?;
        Ok(a.map(|r| match r.data {
            RData::TLSA(t) => Some(TlsaData {
                usage: t.cert_usage.into(),
                selector: t.selector.into(),
                matching: t.matching.into(),
                data: t.cert_data.to_vec(),
                ttl: r.ttl,
            }),
            _ => None,
        }))
    }

    /// The DNSKEY RRset of a zone (what it is signed with; TR-03108 DNS-4).
    pub async fn dnskeys(&self, zone: &str) -> Result<Answer<DnsKey>, DnsError> {
        let a = self.query(zone, RecordType::DNSKEY).await?;
        Ok(a.map(|r| match r.data {
            RData::Unknown { rdata, .. } => parse_dnskey(&rdata.anything),
            _ => None,
        }))
    }

    /// The NSEC3 hash iterations a zone announces in its NSEC3PARAM record (RFC 5155 §4); no
    /// record: the zone uses NSEC (or is not signed).
    pub async fn nsec3_iterations(&self, zone: &str) -> Result<Answer<u16>, DnsError> {
        let a = self.query(zone, RecordType::NSEC3PARAM).await?;
        // RFC 5155 §4.2: hash algorithm (1), flags (1), iterations (2), salt.
        Ok(a.map(|r| match r.data {
            RData::Unknown { rdata, .. } => match rdata.anything.as_slice() {
                [_, _, hi, lo, ..] => Some(u16::from_be_bytes([*hi, *lo])),
                _ => None,
            },
            _ => None,
        }))
    }

    /// SRV records (RFC 2782): (priority, weight, port, target without the trailing dot; "."
    /// means the service is not offered).
    pub async fn srv(&self, name: &str) -> Result<Answer<SrvRecord>, DnsError> {
        let a = self.query(name, RecordType::SRV).await?;
        Ok(a.map(|r| match r.data {
            RData::SRV(s) => Some(SrvRecord {
                priority: s.priority,
                weight: s.weight,
                port: s.port,
                target: name_text(&s.target.to_string()),
            }),
            _ => None,
        }))
    }

    /// TXT records, each one's strings joined (RFC 7208 §3.3 style).
    pub async fn txt(&self, name: &str) -> Result<Answer<String>, DnsError> {
        let a = self.query(name, RecordType::TXT).await?;
        Ok(a.map(|r| match r.data {
            RData::TXT(t) => Some(
                t.txt_data
                    .iter()
                    .map(|s| String::from_utf8_lossy(s).into_owned())
                    .collect(),
            ),
            _ => None,
        }))
    }

    /// A and AAAA together; secure only if every answer used is. One family failing (a
    /// timeout, SERVFAIL) leaves the other usable: a host whose AAAA lookup times out but
    /// whose A is secure is reachable over IPv4, securely. Bogus data in either is an error
    /// (somebody tampers with this name). Both failing is the first error.
    pub async fn addresses(&self, host: &str) -> Result<Answer<IpAddr>, DnsError> {
        let (v4, v6) = tokio::join!(
            self.query(host, RecordType::A),
            self.query(host, RecordType::AAAA)
        );
        let (v4, v6) = match (v4, v6) {
            (Err(e @ DnsError::Bogus(_)), _) | (_, Err(e @ DnsError::Bogus(_))) => {
                return Err(e);
            }
            (Err(e), Err(_)) => return Err(e),
            (v4, v6) => (v4.ok(), v6.ok()),
        };
        let answers: Vec<Answer<Record>> = v4.into_iter().chain(v6).collect();
        let state = if answers.iter().all(|a| a.state == DnssecState::Secure) {
            DnssecState::Secure
        } else {
            DnssecState::Insecure
        };
        let nxdomain = answers.iter().all(|a| a.nxdomain);
        let records = answers
            .into_iter()
            .flat_map(|a| a.records)
            .filter_map(|r| match r.data {
                RData::A(a) => Some(IpAddr::V4(a.0)),
                RData::AAAA(a) => Some(IpAddr::V6(a.0)),
                _ => None,
            })
            .collect();
        Ok(Answer {
            records,
            state,
            nxdomain,
        })
    }

    /// The A records (`v6` false) or the AAAA records of `host` alone: SPF's `a` and `mx`
    /// mechanisms ask only for the client's address family (RFC 7208 §5.3).
    pub async fn addresses_of_family(
        &self,
        host: &str,
        v6: bool,
    ) -> Result<Answer<IpAddr>, DnsError> {
        let rtype = if v6 { RecordType::AAAA } else { RecordType::A };
        let a = self.query(host, rtype).await?;
        Ok(a.map(|r| match r.data {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            RData::AAAA(a) => Some(IpAddr::V6(a.0)),
            _ => None,
        }))
    }

    /// The PTR names of `ip` (RFC 1035 §3.5 in-addr.arpa, RFC 3596 §2.5 ip6.arpa), lower case
    /// without the trailing dot.
    pub async fn ptr(&self, ip: IpAddr) -> Result<Answer<String>, DnsError> {
        let a = self.query(&reverse_name(ip), RecordType::PTR).await?;
        Ok(a.map(|r| match r.data {
            RData::PTR(p) => Some(name_text(&p.0.to_string())),
            _ => None,
        }))
    }

    /// The name `name` stands for after following CNAMEs (RFC 7672 §2.2.1: the TLSA base
    /// domain of an MX host given as an alias), from the CNAME chain of an A lookup; `None` if
    /// the name is not an alias. Its state is that of the whole chain, the weakest link.
    pub async fn canonical_name(&self, name: &str) -> Result<Answer<String>, DnsError> {
        let a = self.lookup(name, RecordType::A, false).await?;
        let wanted = fqdn(name).to_ascii_lowercase();
        let mut current = wanted.clone();
        // RFC 1034 §3.6.2 chains; a loop or an overlong chain ends the walk.
        for _ in 0..16 {
            let next = a.records.iter().find_map(|r| match &r.data {
                RData::CNAME(c) if r.name.to_string().eq_ignore_ascii_case(&current) => {
                    Some(c.0.to_string().to_ascii_lowercase())
                }
                _ => None,
            });
            match next {
                Some(n) if n != current => current = n,
                _ => break,
            }
        }
        Ok(Answer {
            records: (current != wanted)
                .then(|| name_text(&current))
                .into_iter()
                .collect(),
            state: a.state,
            nxdomain: a.nxdomain,
        })
    }

    /// One question; only the records of the type asked (the CNAMEs that led there count for
    /// the state, not as records).
    async fn query(&self, name: &str, rtype: RecordType) -> Result<Answer<Record>, DnsError> {
        let mut a = self.lookup(name, rtype, false).await?;
        a.records.retain(|r| r.record_type() == rtype);
        Ok(a)
    }

    /// One question; the whole answer section (CNAME chain included) with one state for all
    /// of it — the validator's, which is that of the weakest link of the chain. `fresh`: not
    /// from the stub's cache (libunbound's cache holds only what it validated itself).
    async fn lookup(
        &self,
        name: &str,
        rtype: RecordType,
        fresh: bool,
    ) -> Result<Answer<Record>, DnsError> {
        let name = fqdn(name);
        if name.len() > 254 || name.split('.').any(|l| l.len() > 63) {
            return Err(DnsError::Invalid(format!("{name:?} is not a DNS name")));
        }
        match &self.backend {
            Backend::Unbound(v) => v.query(&name, rtype).await,
            Backend::Stub(client) => client.query(&name, rtype, fresh).await,
        }
    }
}

impl Answer<Record> {
    pub(crate) fn map<T>(self, f: impl Fn(Record) -> Option<T>) -> Answer<T> {
        Answer {
            records: self.records.into_iter().filter_map(f).collect(),
            state: self.state,
            nxdomain: self.nxdomain,
        }
    }
}

/// RFC 4034 §2.1: flags (2), protocol (1), algorithm (1), public key; RSA (RFC 3110 §2):
/// exponent length (1, or 0 and 2 more), exponent, modulus.
fn parse_dnskey(rdata: &[u8]) -> Option<DnsKey> {
    let [f1, f2, _protocol, algorithm, key @ ..] = rdata else {
        return None;
    };
    let rsa_bits = matches!(algorithm, 5 | 7 | 8 | 10).then(|| {
        let (len, skip) = match key {
            [0, hi, lo, ..] => (usize::from(u16::from_be_bytes([*hi, *lo])), 3),
            [n, ..] => (usize::from(*n), 1),
            [] => (0, 0),
        };
        u32::try_from(key.len().saturating_sub(skip + len) * 8).unwrap_or(0)
    });
    Some(DnsKey {
        flags: u16::from_be_bytes([*f1, *f2]),
        algorithm: *algorithm,
        rsa_bits,
    })
}

/// The reverse-lookup name of `ip`: `4.3.2.1.in-addr.arpa.` or 32 nibbles under `ip6.arpa.`.
pub fn reverse_name(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            format!("{}.{}.{}.{}.in-addr.arpa.", o[3], o[2], o[1], o[0])
        }
        IpAddr::V6(v6) => {
            let mut s = String::with_capacity(73);
            for b in v6.octets().iter().rev() {
                s.push_str(&format!("{:x}.{:x}.", b & 0xf, b >> 4));
            }
            s.push_str("ip6.arpa.");
            s
        }
    }
}

/// `name.` with exactly one trailing dot.
fn fqdn(name: &str) -> String {
    if name.ends_with('.') {
        name.to_string()
    } else {
        format!("{name}.")
    }
}

/// `Mx.Example.` → `mx.example`; the root stays ".".
fn name_text(s: &str) -> String {
    if s == "." {
        ".".into()
    } else {
        s.trim_end_matches('.').to_ascii_lowercase()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::unwrap_used)] // tests fail loudly by design
    fn reverse_names() {
        assert_eq!(
            reverse_name("192.0.2.1".parse().unwrap()),
            "1.2.0.192.in-addr.arpa."
        );
        let v6 = reverse_name("2001:db8::1".parse().unwrap());
        assert!(v6.starts_with("1.0.0.0.0.0.0.0") && v6.ends_with(".8.b.d.0.1.0.0.2.ip6.arpa."));
    }

    #[test]
    fn dnskey_rdata() {
        // 257, protocol 3, algorithm 13, 64 key bytes.
        let mut ec = vec![1, 1, 3, 13];
        ec.extend([7u8; 64]);
        assert_eq!(
            parse_dnskey(&ec),
            Some(DnsKey {
                flags: 257,
                algorithm: 13,
                rsa_bits: None
            })
        );
        // RSA: exponent length 3, exponent 65537, a 384-byte modulus.
        let mut rsa = vec![1, 0, 3, 8, 3, 1, 0, 1];
        rsa.extend([0xffu8; 384]);
        assert_eq!(parse_dnskey(&rsa).and_then(|k| k.rsa_bits), Some(3072));
        assert_eq!(parse_dnskey(&[1, 0, 3]), None);
        assert_eq!(
            parse_dnskey(&[1, 0, 3, 8]).and_then(|k| k.rsa_bits),
            Some(0)
        );
    }
}
