//! # kurier-dns — lookups whose answers carry their DNSSEC state
//!
//! Owns every DNS question Kurier asks (MX, A/AAAA, TLSA, TXT) and the one fact policy needs
//! about each answer: was it proven (`Secure`), provably unsigned (`Insecure`), or could it not
//! be trusted at all (an error: bogus or indeterminate). A bogus answer is an error, never
//! "no record" (TR-03108 DNS-1; RFC 4033 §5, RFC 7672 §2.1). Validation runs in-process
//! (hickory-resolver) from a configurable trust anchor, through configurable upstream servers;
//! or, in `trust_ad` mode, the AD bit of a local validating resolver is trusted (as Postfix does,
//! RFC 6840 §5.8: only over loopback, where nobody can flip it); `off` makes every answer
//! insecure (no DANE — not TR-03108 compliant, and said so at every start). Answers are cached
//! for their TTL and every lookup has a timeout.
//!
//! Must not: decide anything. Whether DANE applies is the `policy` crate's question.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError as HickoryDnsError, NetError};
use hickory_resolver::proto::dnssec::{Proof, TrustAnchors};
use hickory_resolver::proto::rr::{RData, Record, RecordType};

mod ad;

/// What DNSSEC proved about an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DnssecState {
    /// A chain of trust from the anchor validates it.
    Secure,
    /// Provably outside any signed zone (or below an insecure delegation).
    Insecure,
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
    #[error("DNSSEC validation failed (bogus) for {0}")]
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

/// Where answers come from and what they are validated against.
#[derive(Debug, Clone)]
pub struct DnsConfig {
    pub mode: DnssecMode,
    /// Recursive resolvers to ask (they must pass DNSSEC records through, as any resolver
    /// that honours the DO bit does).
    pub upstream: Vec<SocketAddr>,
    /// DNSKEY or DS records of the root (or a test root) in zone-file form; `None` uses
    /// hickory's built-in IANA root keys.
    pub trust_anchor: Option<PathBuf>,
    pub timeout: Duration,
}

/// The resolver. Cheap to clone.
#[derive(Clone)]
pub struct Resolver {
    backend: Backend,
}

#[derive(Clone)]
enum Backend {
    /// hickory, validating (or not, in mode `off`).
    Hickory(Box<TokioResolver>, DnssecMode),
    TrustAd(ad::AdClient),
}

impl Resolver {
    pub fn new(config: &DnsConfig) -> Result<Self, DnsError> {
        if config.upstream.is_empty() {
            return Err(DnsError::Invalid("no DNS upstream configured".into()));
        }
        if config.mode == DnssecMode::TrustAd {
            if let Some(a) = config.upstream.iter().find(|a| !a.ip().is_loopback()) {
                return Err(DnsError::Invalid(format!(
                    "dnssec = \"trust_ad\" trusts the AD bit only from a resolver on this machine, not {a} (fix: run a validating resolver such as unbound on 127.0.0.1, or use dnssec = \"validate\")"
                )));
            }
            return Ok(Resolver {
                backend: Backend::TrustAd(ad::AdClient::new(
                    config.upstream.clone(),
                    config.timeout,
                )),
            });
        }
        let servers = config
            .upstream
            .iter()
            .map(|a| {
                let mut ns = NameServerConfig::udp_and_tcp(a.ip());
                for c in &mut ns.connections {
                    c.port = a.port();
                }
                ns
            })
            .collect();
        let mut builder = TokioResolver::builder_with_config(
            ResolverConfig::from_parts(None, vec![], servers),
            TokioRuntimeProvider::default(),
        );
        let opts = builder.options_mut();
        opts.validate = config.mode == DnssecMode::Validate;
        opts.timeout = config.timeout;
        opts.attempts = 2;
        if let (Some(path), DnssecMode::Validate) = (&config.trust_anchor, config.mode) {
            let anchors = TrustAnchors::from_file(path).map_err(|e| {
                DnsError::Invalid(format!(
                    "trust anchor {}: {e} (fix: a file with the root's DNSKEY or DS records)",
                    path.display()
                ))
            })?;
            builder = builder.with_trust_anchor(Arc::new(anchors));
        }
        let inner = builder
            .build()
            .map_err(|e| DnsError::Invalid(format!("cannot build the resolver: {e}")))?;
        Ok(Resolver {
            backend: Backend::Hickory(Box::new(inner), config.mode),
        })
    }

    /// Checks that validation works at all: the root's DNSKEY set must come back secure. Run at
    /// start; if it fails, DANE cannot be trusted and outbound delivery must not start. In mode
    /// `off` there is nothing to check.
    pub async fn probe(&self) -> Result<(), DnsError> {
        if matches!(self.backend, Backend::Hickory(_, DnssecMode::Off)) {
            return Ok(());
        }
        let a = self.query(".", RecordType::DNSKEY).await?;
        match a.state {
            DnssecState::Secure if !a.records.is_empty() => Ok(()),
            _ => Err(DnsError::Bogus(
                "the root DNSKEY is not secure: check the trust anchor and that the upstream passes DNSSEC records".into(),
            )),
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
            }),
            _ => None,
        }))
    }

    /// The DNSKEY RRset of a zone (what it is signed with; TR-03108 DNS-4).
    pub async fn dnskeys(&self, zone: &str) -> Result<Answer<DnsKey>, DnsError> {
        use hickory_resolver::proto::dnssec::PublicKey;
        use hickory_resolver::proto::dnssec::rdata::DNSSECRData;
        let a = self.query(zone, RecordType::DNSKEY).await?;
        Ok(a.map(|r| match r.data {
            RData::DNSSEC(DNSSECRData::DNSKEY(k)) => {
                let algorithm = u8::from(k.public_key().algorithm());
                // RFC 3110 §2: exponent length (1 or 3 bytes), exponent, modulus.
                let rsa_bits = matches!(algorithm, 5 | 7 | 8 | 10).then(|| {
                    let b = k.public_key().public_bytes();
                    let (len, skip) = match b.first() {
                        Some(0) if b.len() >= 3 => {
                            (usize::from(u16::from_be_bytes([b[1], b[2]])), 3)
                        }
                        Some(&n) => (usize::from(n), 1),
                        None => (0, 0),
                    };
                    u32::try_from(b.len().saturating_sub(skip + len) * 8).unwrap_or(0)
                });
                Some(DnsKey {
                    flags: k.flags(),
                    algorithm,
                    rsa_bits,
                })
            }
            _ => None,
        }))
    }

    /// The NSEC3 hash iterations a zone announces in its NSEC3PARAM record (RFC 5155 §4); no
    /// record: the zone uses NSEC (or is not signed).
    pub async fn nsec3_iterations(&self, zone: &str) -> Result<Answer<u16>, DnsError> {
        use hickory_resolver::proto::dnssec::rdata::DNSSECRData;
        let a = self.query(zone, RecordType::NSEC3PARAM).await?;
        Ok(a.map(|r| match r.data {
            RData::DNSSEC(DNSSECRData::NSEC3PARAM(p)) => Some(p.iterations()),
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

    /// A and AAAA together; secure only if both are.
    pub async fn addresses(&self, host: &str) -> Result<Answer<IpAddr>, DnsError> {
        let v4 = self.query(host, RecordType::A).await?;
        let v6 = self.query(host, RecordType::AAAA).await?;
        let state = if v4.state == DnssecState::Secure && v6.state == DnssecState::Secure {
            DnssecState::Secure
        } else {
            DnssecState::Insecure
        };
        let nxdomain = v4.nxdomain && v6.nxdomain;
        let mut records: Vec<IpAddr> = v4
            .map(|r| match r.data {
                RData::A(a) => Some(IpAddr::V4(a.0)),
                _ => None,
            })
            .records;
        records.extend(
            v6.map(|r| match r.data {
                RData::AAAA(a) => Some(IpAddr::V6(a.0)),
                _ => None,
            })
            .records,
        );
        Ok(Answer {
            records,
            state,
            nxdomain,
        })
    }

    /// The name `name` stands for after following CNAMEs (RFC 7672 §2.2.1: the TLSA base
    /// domain of an MX host given as an alias), taken from an A/AAAA lookup; `None` if the name
    /// is not an alias. Its state is that of the whole chain.
    pub async fn canonical_name(&self, name: &str) -> Result<Answer<String>, DnsError> {
        let a = self.query(name, RecordType::A).await?;
        let wanted = fqdn(name).to_ascii_lowercase();
        let target = a
            .records
            .first()
            .map(|r| r.name.to_string().to_ascii_lowercase())
            .filter(|n| *n != wanted);
        Ok(Answer {
            records: target.map(|t| name_text(&t)).into_iter().collect(),
            state: a.state,
            nxdomain: a.nxdomain,
        })
    }

    /// One question; the answer's state is the weakest of its records' proofs.
    async fn query(&self, name: &str, rtype: RecordType) -> Result<Answer<Record>, DnsError> {
        let mut name = fqdn(name);
        let mut hops = 0;
        loop {
            match self.query_once(&name, rtype).await {
                Err(DnsError::Bogus(what)) if hops < 8 && rtype != RecordType::CNAME => {
                    // hickory 0.26 calls an alias whose target has no record of the type
                    // (CNAME, then NODATA proven in the target's zone) bogus. Both halves can
                    // be validated on their own: the CNAME, then the question at its target —
                    // the same chain a validator walks. Anything really bogus stays bogus.
                    let cname = self.query_once(&name, RecordType::CNAME).await?;
                    let target = cname.records.iter().find_map(|r| match &r.data {
                        RData::CNAME(c) => Some(c.0.to_string()),
                        _ => None,
                    });
                    match (target, cname.state) {
                        (Some(t), DnssecState::Secure) => {
                            name = fqdn(&t);
                            hops += 1;
                        }
                        _ => return Err(DnsError::Bogus(what)),
                    }
                }
                other => return other,
            }
        }
    }

    async fn query_once(&self, fqdn: &str, rtype: RecordType) -> Result<Answer<Record>, DnsError> {
        let fqdn = fqdn.to_string();
        let what = format!("{fqdn} {rtype}");
        let (inner, mode) = match &self.backend {
            Backend::TrustAd(client) => return client.query(&fqdn, rtype).await,
            Backend::Hickory(inner, mode) => (inner, *mode),
        };
        let state_of = |proofs: &mut dyn Iterator<Item = Proof>| {
            if mode == DnssecMode::Off {
                Ok(DnssecState::Insecure)
            } else {
                combine(proofs, &what)
            }
        };
        match inner.lookup(fqdn.as_str(), rtype).await {
            Ok(lookup) => {
                let records: Vec<Record> = lookup
                    .answers()
                    .iter()
                    .filter(|r| r.record_type() == rtype)
                    .cloned()
                    .collect();
                let state = state_of(&mut records.iter().map(|r| r.proof))?;
                Ok(Answer {
                    records,
                    state,
                    nxdomain: false,
                })
            }
            Err(NetError::Dns(HickoryDnsError::NoRecordsFound(no))) => {
                let proof = no.soa.as_ref().map(|s| s.proof).unwrap_or(Proof::Insecure);
                let state = state_of(&mut std::iter::once(proof))?;
                let nxdomain =
                    no.response_code == hickory_resolver::proto::op::ResponseCode::NXDomain;
                Ok(Answer {
                    records: Vec::new(),
                    state,
                    nxdomain,
                })
            }
            Err(NetError::Dns(HickoryDnsError::DnssecBogus)) => Err(DnsError::Bogus(what)),
            Err(NetError::Dns(HickoryDnsError::Nsec { proof, .. })) => {
                let state = state_of(&mut std::iter::once(proof))?;
                Ok(Answer {
                    records: Vec::new(),
                    state,
                    nxdomain: false,
                })
            }
            Err(e) => Err(DnsError::Indeterminate(what, e.to_string())),
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

/// `name.` with exactly one trailing dot.
fn fqdn(name: &str) -> String {
    if name.ends_with('.') {
        name.to_string()
    } else {
        format!("{name}.")
    }
}

/// Secure only if every proof is; bogus anywhere is an error.
fn combine(proofs: &mut dyn Iterator<Item = Proof>, what: &str) -> Result<DnssecState, DnsError> {
    let mut state = DnssecState::Secure;
    for p in proofs {
        match p {
            Proof::Secure => {}
            Proof::Insecure => state = DnssecState::Insecure,
            Proof::Bogus => return Err(DnsError::Bogus(what.to_string())),
            _ => {
                return Err(DnsError::Indeterminate(
                    what.to_string(),
                    "no DNSSEC proof either way".into(),
                ));
            }
        }
    }
    Ok(state)
}

/// `Mx.Example.` → `mx.example`; the root stays ".".
fn name_text(s: &str) -> String {
    if s == "." {
        ".".into()
    } else {
        s.trim_end_matches('.').to_ascii_lowercase()
    }
}
