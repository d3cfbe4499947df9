//! A stub client. `trust_ad` mode: ask a validating resolver on a loopback address with the DO
//! and AD bits set and take its AD bit as the DNSSEC state (RFC 6840 §5.7, §5.8; RFC 4035
//! §3.2.3). A bogus answer reaches us as SERVFAIL, which is indeterminate — never "no record".
//! `off` mode: the same questions, every answer insecure. Answers are cached for their TTL
//! (negative ones for the SOA minimum, RFC 2308 §5), at most an hour.
//!
//! Also `diagnose`: when the probe fails, ask each upstream directly what is wrong with it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use crate::{Answer, DnsError, DnssecMode, DnssecState};

const MAX_CACHE_SECS: u32 = 3600;
const MAX_CACHE_ENTRIES: usize = 10_000;

type CacheKey = (String, RecordType);
type Cache = HashMap<CacheKey, (Instant, Answer<Record>)>;

#[derive(Clone)]
pub(crate) struct AdClient {
    upstream: Vec<SocketAddr>,
    timeout: Duration,
    /// Take the AD bit (`trust_ad`), or call everything insecure (`off`).
    trust_ad: bool,
    cache: Arc<Mutex<Cache>>,
}

impl AdClient {
    pub(crate) fn new(upstream: Vec<SocketAddr>, timeout: Duration, trust_ad: bool) -> Self {
        AdClient {
            upstream,
            timeout,
            trust_ad,
            cache: Arc::default(),
        }
    }

    /// `fresh`: ask the resolver even if the answer is cached (the probe: what the resolver
    /// does now is the question, not what it did an hour ago).
    pub(crate) async fn query(
        &self,
        fqdn: &str,
        rtype: RecordType,
        fresh: bool,
    ) -> Result<Answer<Record>, DnsError> {
        let key = (fqdn.to_ascii_lowercase(), rtype);
        if let Some((until, a)) = self.cache.lock().ok().and_then(|c| c.get(&key).cloned())
            && until > Instant::now()
            && !fresh
        {
            return Ok(a);
        }
        let what = format!("{fqdn} {rtype}");
        let name = Name::from_ascii(fqdn)
            .map_err(|e| DnsError::Invalid(format!("{fqdn:?} is not a DNS name: {e}")))?;
        let mut last = String::from("no upstream answered");
        for server in &self.upstream {
            match tokio::time::timeout(self.timeout, exchange(*server, &name, rtype)).await {
                Ok(Ok(response)) => {
                    let (mut answer, ttl) = interpret(response, &what)?;
                    if !self.trust_ad {
                        answer.state = DnssecState::Insecure;
                    }
                    if let Ok(mut cache) = self.cache.lock() {
                        if cache.len() >= MAX_CACHE_ENTRIES {
                            let now = Instant::now();
                            cache.retain(|_, (until, _)| *until > now);
                        }
                        let ttl = Duration::from_secs(u64::from(ttl.min(MAX_CACHE_SECS)));
                        cache.insert(key, (Instant::now() + ttl, answer.clone()));
                    }
                    return Ok(answer);
                }
                Ok(Err(e)) => last = format!("{server}: {e}"),
                Err(_) => last = format!("{server}: no answer within {:?}", self.timeout),
            }
        }
        Err(DnsError::Indeterminate(what, last))
    }
}

/// Why the upstream resolvers cannot serve DNSSEC, asked of each directly (the root's DNSKEY
/// with the DO bit): `None` if at least one looks fine — then the trust anchor or the probe's
/// zone is at fault, not the upstream.
pub(crate) async fn diagnose(
    upstream: &[SocketAddr],
    timeout: Duration,
    mode: DnssecMode,
) -> Option<String> {
    let root = Name::root();
    let mut problems = Vec::new();
    for server in upstream {
        let problem = match tokio::time::timeout(
            timeout,
            exchange(*server, &root, RecordType::DNSKEY),
        )
        .await
        {
            Err(_) => format!(
                "{server} does not answer within {} s (fix: check dns.upstream; an address without a port means port 53)",
                timeout.as_secs_f32()
            ),
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => format!(
                "{server} does not answer: nothing listens there (fix: check dns.upstream; an address without a port means port 53)"
            ),
            Ok(Err(e)) => format!("{server}: {e} (fix: check dns.upstream)"),
            Ok(Ok(m)) => match m.metadata.response_code {
                ResponseCode::Refused => format!(
                    "{server} answered REFUSED: it does not resolve for this host (fix: allow this host in its access control, or name another resolver in dns.upstream)"
                ),
                ResponseCode::NoError
                    if !m
                        .answers
                        .iter()
                        .any(|r| r.record_type() == RecordType::RRSIG) =>
                {
                    format!(
                        "{server} strips DNSSEC records (no RRSIG although the DO bit was set) (fix: name a resolver that passes DNSSEC records in dns.upstream)"
                    )
                }
                ResponseCode::NoError
                    if mode == DnssecMode::TrustAd && !m.metadata.authentic_data =>
                {
                    format!(
                        "{server} does not validate: no AD bit on the signed root (fix: enable validation in it, e.g. unbound with a trust anchor, or use dnssec = \"validate\")"
                    )
                }
                ResponseCode::NoError => return None,
                code => format!(
                    "{server} answered {code} for the root's DNSKEY (fix: check that it resolves, or name another resolver in dns.upstream)"
                ),
            },
        };
        problems.push(problem);
    }
    (!problems.is_empty()).then(|| problems.join("; "))
}

/// One question over UDP, again over TCP if the answer was truncated.
async fn exchange(server: SocketAddr, name: &Name, rtype: RecordType) -> std::io::Result<Message> {
    let mut query = Message::new(rand_id(), MessageType::Query, OpCode::Query);
    query.metadata.recursion_desired = true;
    query.metadata.authentic_data = true;
    query.add_query(Query::query(name.clone(), rtype));
    let mut edns = Edns::new();
    edns.set_dnssec_ok(true);
    edns.set_max_payload(1232);
    query.set_edns(edns);
    let bytes = query.to_vec().map_err(std::io::Error::other)?;

    let bind: SocketAddr = if server.is_ipv4() {
        "0.0.0.0:0".parse().map_err(std::io::Error::other)?
    } else {
        "[::]:0".parse().map_err(std::io::Error::other)?
    };
    let socket = UdpSocket::bind(bind).await?;
    socket.connect(server).await?;
    socket.send(&bytes).await?;
    let mut buf = vec![0u8; 65535];
    let response = loop {
        let n = socket.recv(&mut buf).await?;
        // Anything that is not the answer to our question is ignored (RFC 5452 §9.1).
        if let Ok(m) = Message::from_vec(&buf[..n])
            && m.metadata.id == query.metadata.id
            && m.metadata.message_type == MessageType::Response
            && m.queries == query.queries
        {
            break m;
        }
    };
    if !response.metadata.truncation {
        return Ok(response);
    }
    let mut tcp = TcpStream::connect(server).await?;
    let len = u16::try_from(bytes.len()).map_err(std::io::Error::other)?;
    tcp.write_all(&len.to_be_bytes()).await?;
    tcp.write_all(&bytes).await?;
    let len = tcp.read_u16().await?;
    let mut buf = vec![0u8; usize::from(len)];
    tcp.read_exact(&mut buf).await?;
    Message::from_vec(&buf).map_err(std::io::Error::other)
}

/// The answer and how long it may be cached.
fn interpret(m: Message, what: &str) -> Result<(Answer<Record>, u32), DnsError> {
    let state = if m.metadata.authentic_data {
        DnssecState::Secure
    } else {
        DnssecState::Insecure
    };
    match m.metadata.response_code {
        ResponseCode::NoError | ResponseCode::NXDomain => {}
        // A validating resolver answers bogus data with SERVFAIL (RFC 4035 §5.5).
        code => {
            return Err(DnsError::Indeterminate(
                what.to_string(),
                format!("the resolver answered {code} (bogus DNSSEC data is reported this way)"),
            ));
        }
    }
    let nxdomain = m.metadata.response_code == ResponseCode::NXDomain;
    let records: Vec<Record> = m
        .answers
        .iter()
        .filter(|r| r.record_type() != RecordType::RRSIG)
        .cloned()
        .collect();
    let ttl = if records.is_empty() {
        m.authorities
            .iter()
            .find_map(|r| match &r.data {
                RData::SOA(soa) => Some(soa.minimum.min(r.ttl)),
                _ => None,
            })
            .unwrap_or(0)
    } else {
        m.answers.iter().map(|r| r.ttl).min().unwrap_or(0)
    };
    Ok((
        Answer {
            records,
            state,
            nxdomain,
        },
        ttl,
    ))
}

/// A query ID nobody off this machine needs to guess (the resolver is on loopback), but still
/// not predictable: the low bits of a fresh hasher's random keys.
fn rand_id() -> u16 {
    use std::hash::{BuildHasher, RandomState};
    (RandomState::new().hash_one(Instant::now()) & 0xffff) as u16
}
