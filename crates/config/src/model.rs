//! The configuration model: one struct per TOML table, defaults in `Default` impls.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The whole `kurier.toml`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub log: LogConfig,
    pub tls: TlsConfig,
    pub web: WebConfig,
    pub store: StoreConfig,
    pub smtp: SmtpConfig,
    pub submission: SubmissionConfig,
    pub imap: ImapConfig,
    pub pop3: Pop3Config,
    pub managesieve: ManageSieveConfig,
    pub sieve: SieveConfig,
    pub dns: DnsConfig,
    pub delivery: DeliveryConfig,
    pub mta_sts: MtaStsConfig,
    pub tlsrpt: TlsRptConfig,
    pub autoconfig: AutoconfigConfig,
    pub acme: AcmeConfig,
    pub dns_update: DnsUpdateConfig,
    pub sender_auth: SenderAuthConfig,
    pub blocklists: BlocklistConfig,
    pub spam: SpamConfig,
    pub greylisting: GreylistConfig,
    /// `[[milter]]` tables, in the order the filters run.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub milter: Vec<MilterConfig>,
}

/// `[dns_update]`: Kurier publishes its own TLSA, `_mta-sts`, `_smtp._tls`, SRV and DKIM
/// records on the operator's primary DNS server by RFC 2136 updates signed with TSIG
/// (RFC 8945), and retires the old TLSA record after a key change. Off by default.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct DnsUpdateConfig {
    pub enabled: bool,
    /// The primary server, e.g. "192.0.2.53:53" (TCP).
    pub server: Option<SocketAddr>,
    /// The zones it is primary for; each record goes to the longest zone that holds it, and
    /// a record in none of them is left to the operator.
    pub zones: Vec<String>,
    /// The TSIG key, as `tsig-keygen` (BIND) or `keymgr -t` (Knot) writes it.
    pub key_file: Option<PathBuf>,
    /// Log the updates (nsupdate syntax) instead of sending them.
    pub dry_run: bool,
    /// How often the records are compared with what was last published.
    pub check_secs: u64,
    /// The TTL of our TLSA records, as `kurier dns` prints them and this publishes them:
    /// short, because a key change waits two of them (RFC 7671 §8.1).
    pub tlsa_ttl: u32,
}

impl Default for DnsUpdateConfig {
    fn default() -> Self {
        DnsUpdateConfig {
            enabled: false,
            server: None,
            zones: Vec::new(),
            key_file: None,
            dry_run: false,
            check_secs: 3600,
            tlsa_ttl: 600,
        }
    }
}

/// `[acme]`: certificates from an ACME CA (RFC 8555) for `server.hostname` and the
/// `mta-sts.`, `autoconfig.` and `autodiscover.` names of every hosted domain. Off by default.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AcmeConfig {
    /// Order and renew certificates; they serve before every `[[tls.certificate]]`.
    pub enabled: bool,
    /// The CA's directory URL (https only).
    pub directory: String,
    /// Contact addresses for the CA, e.g. ["mailto:postmaster@example.org"].
    pub contact: Vec<String>,
    /// PEM CAs that the ACME server's own HTTPS certificate may chain to, besides Debian's.
    pub ca_bundle: Option<PathBuf>,
    /// The certificate key: "p256" (default) or "p384". It is kept across renewals.
    pub key: AcmeKeyType,
    /// How often the certificate is looked at (renewal due, domains added or removed).
    pub check_secs: u64,
    /// Change the certificate key when it is this many days old (0: never, the default: the
    /// `3 1 1` TLSA record then never changes). The next key is made early; the switch waits
    /// until DNS publishes its TLSA record at every DANE port (RFC 7671 §8.1).
    pub key_change_days: u32,
    /// How the CA checks that we hold each name: "http-01" (default: port 80, RFC 8555 §8.3)
    /// or "tls-alpn-01" (port 443 only, RFC 8737; no plain-HTTP listener needed).
    pub challenge: AcmeChallenge,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
pub enum AcmeChallenge {
    #[serde(rename = "http-01")]
    Http01,
    #[serde(rename = "tls-alpn-01")]
    TlsAlpn01,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AcmeKeyType {
    P256,
    P384,
}

impl Default for AcmeConfig {
    fn default() -> Self {
        AcmeConfig {
            enabled: false,
            directory: "https://acme-v02.api.letsencrypt.org/directory".into(),
            contact: Vec::new(),
            ca_bundle: None,
            key: AcmeKeyType::P256,
            check_secs: 3600,
            key_change_days: 0,
            challenge: AcmeChallenge::Http01,
        }
    }
}

/// `[autoconfig]`: what mail clients are told (Thunderbird autoconfig, Outlook Autodiscover,
/// SRV records from `kurier dns`; TR-03108 MUA-4..MUA-8). Submission ports come from
/// `[submission]`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AutoconfigConfig {
    pub enabled: bool,
    /// The host name clients connect to; unset: `server.hostname`.
    pub hostname: Option<String>,
    /// IMAP and POP3 with implicit TLS (RFC 8314); 0 leaves one out.
    pub imaps_port: u16,
    pub pop3s_port: u16,
    /// IMAP and POP3 with STARTTLS, offered after the implicit-TLS ones; 0 leaves one out.
    pub imap_starttls_port: u16,
    pub pop3_starttls_port: u16,
}

impl Default for AutoconfigConfig {
    fn default() -> Self {
        AutoconfigConfig {
            enabled: true,
            hostname: None,
            imaps_port: 993,
            pop3s_port: 995,
            imap_starttls_port: 143,
            pop3_starttls_port: 110,
        }
    }
}

/// `[sender_auth]`: SPF, DKIM and DMARC on mail from other servers (BSI TR-03182; RFC 7208,
/// 6376, 7489, 8601).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SenderAuthConfig {
    /// Check every inbound message and record the results in an Authentication-Results
    /// field. Needs the resolver, which runs with `[delivery]` (so not in `--dev`).
    pub enabled: bool,
    /// Apply what failing domains ask for: DMARC `reject` → 550, `quarantine` → the Junk
    /// folder, an unknown policy → 451. Off: results are recorded only ("monitor").
    pub enforce: bool,
    /// The Public Suffix List (organizational domains, RFC 7489 §3.2); Debian's package
    /// `publicsuffix` keeps it current. Read at start and on SIGHUP.
    pub public_suffix_list: PathBuf,
    /// Senders whose failing DMARC is recorded but not acted on, e.g. mailing lists that
    /// rewrite messages: an envelope sender (`list-bounces@lists.example.org`), a domain of it
    /// (`lists.example.org` or `@lists.example.org`), or a client network (`192.0.2.0/24`).
    pub dmarc_exempt: Vec<String>,
    /// Send each domain whose DMARC record asks for them (`rua=mailto:…`) a daily aggregate
    /// report of the mail we received in its name (RFC 7489 §7.2), signed with the DKIM key
    /// of the TLSRPT submitter domain.
    pub send_reports: bool,
    /// Where others send us DMARC reports about our domains (an account or alias here);
    /// `kurier dns` puts it in the suggested `rua`. Mail to it is also read as a report.
    pub reporting_address: Option<String>,
    /// Without `reporting_address`: every hosted domain takes DMARC reports at
    /// `dmarc-reports@<domain>`, kept as reports (accepted only with a DMARC pass of the
    /// reporter), never bounced.
    pub receive_reports: bool,
}

impl SenderAuthConfig {
    /// The `rua` address for `domain`'s DMARC record, if reports are received at all.
    pub fn reporting_address_for(&self, domain: &str) -> Option<String> {
        match &self.reporting_address {
            Some(a) => Some(a.clone()),
            None if self.enabled && self.receive_reports => {
                Some(format!("dmarc-reports@{}", domain.to_ascii_lowercase()))
            }
            None => None,
        }
    }
}

impl Default for SenderAuthConfig {
    fn default() -> Self {
        SenderAuthConfig {
            enabled: true,
            enforce: true,
            public_suffix_list: PathBuf::from("/usr/share/publicsuffix/public_suffix_list.dat"),
            dmarc_exempt: Vec::new(),
            send_reports: true,
            reporting_address: None,
            receive_reports: true,
        }
    }
}

/// `[blocklists]`: DNS block- and allowlists (RFC 5782) on the MX, asked when a recipient is
/// given (as Postfix's `reject_rbl_client` with its default `smtpd_delay_reject`, so the log
/// names sender and recipient): the client address (`kind = "ip"`, IPv4 and IPv6 reversed) or
/// the MAIL FROM domain (`kind = "domain"`). Listed clients whose list weights add up to
/// `reject_score` get `554 5.7.1` naming the lists; an allowlist hit skips them all. All
/// lookups of a recipient share `timeout_ms`: a slow or failing list counts as not listed.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct BlocklistConfig {
    pub lists: Vec<DnsList>,
    pub allow: Vec<DnsList>,
    pub reject_score: f64,
    pub timeout_ms: u64,
}

impl Default for BlocklistConfig {
    fn default() -> Self {
        BlocklistConfig {
            lists: Vec::new(),
            allow: Vec::new(),
            reject_score: 1.0,
            timeout_ms: 2000,
        }
    }
}

/// `[spam]`: every message from other servers (and, with `scan_submission`, what our users
/// submit) is scanned by rspamd over its HTTP protocol before it is stored; messages users move
/// into or out of Junk over IMAP train rspamd's statistics through its controller. Off until
/// `rspamd` names the normal worker.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SpamConfig {
    /// rspamd's normal worker, e.g. "127.0.0.1:11333".
    pub rspamd: Option<SocketAddr>,
    /// rspamd's controller, e.g. "127.0.0.1:11334", for learning; unset: no learning.
    pub rspamd_controller: Option<SocketAddr>,
    /// The controller's password, if Kurier does not connect from its `secure_ip`.
    pub rspamd_password: Option<String>,
    /// The time limit of one scan.
    pub timeout_ms: u64,
    /// What happens when rspamd does not answer in time or answers garbage.
    pub on_failure: SpamFailure,
    /// Also scan what our users submit, against outbound spam from stolen accounts.
    pub scan_submission: bool,
    /// Larger messages are not scanned.
    pub max_bytes: u64,
    /// Teach rspamd from Junk moves (needs `rspamd_controller`).
    pub learn: bool,
}

impl Default for SpamConfig {
    fn default() -> Self {
        SpamConfig {
            rspamd: None,
            rspamd_controller: None,
            rspamd_password: None,
            timeout_ms: 20_000,
            on_failure: SpamFailure::Accept,
            scan_submission: false,
            max_bytes: 20 * 1024 * 1024,
            learn: true,
        }
    }
}

/// `[greylisting]`: mail from a new (client /24 or /64, sender, recipient) triplet gets 451
/// until the sending server retries after `delay_secs`. Off by default. Mail whose From domain
/// passes DMARC is never greylisted.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct GreylistConfig {
    pub enabled: bool,
    pub delay_secs: u64,
    /// A first attempt not retried within this is forgotten.
    pub retry_window_secs: u64,
    /// A triplet that passed and is not seen again for this long is forgotten.
    pub expiry_days: u64,
    /// Client networks, sender domains or addresses never greylisted (`sender_auth.dmarc_exempt`
    /// syntax); a sender domain is what any client can claim, so prefer networks.
    pub exempt: Vec<String>,
    /// "all" new triplets, or only messages rspamd's action calls for greylisting ("rspamd").
    pub scope: GreylistScope,
}

/// `greylisting.scope`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum GreylistScope {
    #[default]
    All,
    Rspamd,
}

impl Default for GreylistConfig {
    fn default() -> Self {
        GreylistConfig {
            enabled: false,
            delay_secs: 300,
            retry_window_secs: 2 * 86400,
            expiry_days: 35,
            exempt: Vec::new(),
            scope: GreylistScope::All,
        }
    }
}

/// `[[milter]]`: one content filter spoken to over the Sendmail milter protocol (as Postfix's
/// `smtpd_milters`), at the end of DATA, in the order of the tables.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MilterConfig {
    /// For the log.
    pub name: String,
    /// "127.0.0.1:8891", "inet:8891@127.0.0.1" or "unix:/run/clamav/clamav-milter.ctl".
    pub address: String,
    /// For the connection and each answer.
    #[serde(default = "milter_timeout")]
    pub timeout_ms: u64,
    /// When the filter cannot be reached or fails mid-message.
    #[serde(default)]
    pub default_action: MilterDefault,
    /// The listeners whose mail it sees: "mx", "submission".
    #[serde(default = "mx_only")]
    pub listeners: Vec<MilterListener>,
}

fn milter_timeout() -> u64 {
    30_000
}

fn mx_only() -> Vec<MilterListener> {
    vec![MilterListener::Mx]
}

/// `milter.default_action` (Postfix's `milter_default_action`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MilterDefault {
    Accept,
    /// 451: the sender retries; nothing unfiltered gets in.
    #[default]
    Tempfail,
    Reject,
}

/// `milter.listeners`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MilterListener {
    Mx,
    Submission,
}

/// `spam.on_failure`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SpamFailure {
    /// Deliver unscanned (what rspamd's documentation advises for Postfix's
    /// `milter_default_action`): mail keeps flowing while rspamd is down.
    #[default]
    Accept,
    /// 451: senders retry later; nothing unscanned gets in.
    Tempfail,
}

/// What a DNS list is asked about.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DnsListKind {
    /// The client address.
    #[default]
    Ip,
    /// The domain of the envelope sender.
    Domain,
}

/// One DNS list.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DnsList {
    pub zone: String,
    #[serde(default)]
    pub kind: DnsListKind,
    /// The answers that count as listed, addresses or ranges (`"127.0.0.2-127.0.0.11"`);
    /// empty: any 127.0.0.0/8 answer but 127.255.255.0/24, where lists put their error codes
    /// ("query refused", "rate limited").
    #[serde(default)]
    pub codes: Vec<String>,
    #[serde(default = "unit_weight")]
    pub weight: f64,
}

fn unit_weight() -> f64 {
    1.0
}

impl DnsList {
    /// `codes` as inclusive ranges.
    pub fn code_ranges(&self) -> Result<Vec<(std::net::Ipv4Addr, std::net::Ipv4Addr)>, String> {
        if self.codes.is_empty() {
            return Ok(vec![([127, 0, 0, 0].into(), [127, 255, 254, 255].into())]);
        }
        self.codes
            .iter()
            .map(|c| {
                let (from, to) = c.split_once('-').unwrap_or((c, c));
                let ip = |s: &str| {
                    s.trim()
                        .parse::<std::net::Ipv4Addr>()
                        .map_err(|_| format!("{c:?} is no IPv4 address or range"))
                };
                let (from, to) = (ip(from)?, ip(to)?);
                if from > to {
                    return Err(format!("{c:?}: the range runs backwards"));
                }
                Ok((from, to))
            })
            .collect()
    }
}

/// One `sender_auth.dmarc_exempt` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SenderPattern {
    /// An envelope sender, lower case.
    Address(String),
    /// A domain: the envelope sender's, or a parent of it.
    Domain(String),
    /// A client network.
    Network(IpAddr, u8),
}

impl SenderPattern {
    pub fn parse(s: &str) -> Option<SenderPattern> {
        let s = s.trim().to_ascii_lowercase();
        if let Some((ip, len)) = s.split_once('/') {
            let ip: IpAddr = ip.parse().ok()?;
            let len: u8 = len.parse().ok()?;
            let max = if ip.is_ipv4() { 32 } else { 128 };
            return (len <= max).then_some(SenderPattern::Network(ip, len));
        }
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Some(SenderPattern::Network(
                ip,
                if ip.is_ipv4() { 32 } else { 128 },
            ));
        }
        let domain_ok = |d: &str| {
            !d.is_empty()
                && d.split('.').all(|l| {
                    !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                })
        };
        match s.rsplit_once('@') {
            Some(("", d)) if domain_ok(d) => Some(SenderPattern::Domain(d.to_string())),
            Some((local, d)) if !local.is_empty() && domain_ok(d) => {
                Some(SenderPattern::Address(s.clone()))
            }
            None if domain_ok(&s) => Some(SenderPattern::Domain(s.clone())),
            _ => None,
        }
    }

    /// Whether mail from `ip` with envelope sender `sender` matches.
    pub fn matches(&self, ip: IpAddr, sender: &str) -> bool {
        let sender = sender.to_ascii_lowercase();
        match self {
            SenderPattern::Address(a) => *a == sender,
            SenderPattern::Domain(d) => sender
                .rsplit_once('@')
                .is_some_and(|(_, sd)| sd == d || sd.ends_with(&format!(".{d}"))),
            SenderPattern::Network(net, len) => match (ip, net) {
                (IpAddr::V4(a), IpAddr::V4(n)) => {
                    let mask = u32::MAX.checked_shl(32 - u32::from(*len)).unwrap_or(0);
                    u32::from(a) & mask == u32::from(*n) & mask
                }
                (IpAddr::V6(a), IpAddr::V6(n)) => {
                    let mask = u128::MAX.checked_shl(128 - u32::from(*len)).unwrap_or(0);
                    u128::from(a) & mask == u128::from(*n) & mask
                }
                _ => false,
            },
        }
    }
}

/// `[tlsrpt]`: SMTP TLS reporting (RFC 8460; TR-03108 RPT-1..RPT-11).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsRptConfig {
    /// Send a report for each UTC day to every domain that asks for one.
    pub enabled: bool,
    /// `organization-name`; unset: `server.hostname`.
    pub organization: Option<String>,
    /// `contact-info`; unset: `mailto:postmaster@<submitter>`.
    pub contact: Option<String>,
    /// Our reporting domain (signs the reports with its DKIM key); unset: the domain of
    /// `server.hostname`.
    pub submitter: Option<String>,
    /// From address of report mail; unset: `tlsrpt-noreply@<submitter>`.
    pub from: Option<String>,
    /// Reports go out at a random moment within this many seconds after midnight UTC.
    pub max_delay_secs: u64,
    /// Where others send us their reports (an account or alias here), e.g.
    /// `tlsrpt@example.org`; mail to it is also read as a report. `kurier dns` publishes it.
    pub reporting_address: Option<String>,
    /// Without `reporting_address`: every hosted domain takes reports at `tlsrpt@<domain>`
    /// (TR-03108: TLSRPT in both directions), kept as reports, never bounced.
    pub receive_reports: bool,
}

impl TlsRptConfig {
    /// The address `_smtp._tls.<domain>` names, if reports are received at all.
    pub fn reporting_address_for(&self, domain: &str) -> Option<String> {
        match &self.reporting_address {
            Some(a) => Some(a.clone()),
            None if self.receive_reports => Some(format!("tlsrpt@{}", domain.to_ascii_lowercase())),
            None => None,
        }
    }
}

impl Default for TlsRptConfig {
    fn default() -> Self {
        TlsRptConfig {
            enabled: true,
            organization: None,
            contact: None,
            submitter: None,
            from: None,
            max_delay_secs: 3600,
            reporting_address: None,
            receive_reports: true,
        }
    }
}

/// How DNSSEC states are established (TR-03108 DNS-1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DnssecMode {
    /// Validate in-process from the trust anchor.
    #[default]
    Validate,
    /// Trust the AD bit of a validating resolver on this machine (loopback only).
    TrustAd,
    /// No DNSSEC, no DANE: not TR-03108 compliant; logged at every start.
    Off,
}

/// `[dns]`: the resolver of outbound delivery (and later MTA-STS and TLSRPT).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct DnsConfig {
    pub dnssec: DnssecMode,
    /// Resolvers to ask (`ip`, `ip:port`, `[v6]:port`; no port means 53); empty: the
    /// nameservers of /etc/resolv.conf.
    pub upstream: Vec<UpstreamAddr>,
    /// The root's DNSKEY or DS records in zone-file form; unset: the IANA root keys built in.
    pub trust_anchor: Option<PathBuf>,
    /// Keep `trust_anchor` current by RFC 5011 (the file must be writable by kurier).
    pub trust_anchor_updates: bool,
    pub timeout_secs: u64,
    /// The probe: a name whose DNSKEY must validate, and one that must fail validation.
    pub probe_secure: String,
    pub probe_bogus: String,
    /// How often the probe runs (it also runs at start; while failing, every 30 s at most).
    pub probe_interval_secs: u64,
}

impl Default for DnsConfig {
    fn default() -> Self {
        DnsConfig {
            dnssec: DnssecMode::Validate,
            upstream: Vec::new(),
            trust_anchor: None,
            trust_anchor_updates: false,
            timeout_secs: 5,
            probe_secure: ".".into(),
            probe_bogus: "dnssec-failed.org".into(),
            probe_interval_secs: 300,
        }
    }
}

/// `[delivery]`: the outbound queue (RFC 5321 §4.5.4.1).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeliveryConfig {
    /// Deliver queued mail at all (off: it stays queued).
    pub enabled: bool,
    /// The port of receiving servers; 25 except in labs.
    pub port: u16,
    pub retry_min_secs: u64,
    pub retry_max_secs: u64,
    /// How long a message is retried before it is returned (default 5 days).
    pub lifetime_secs: u64,
    /// After how long the sender is told that delivery is delayed (0: never).
    pub delay_warning_secs: u64,
    pub timeout_secs: u64,
    pub data_timeout_secs: u64,
    pub max_connections: u32,
    pub max_per_domain: u32,
    /// CAs trusted for MTA-STS in addition to the system's (labs, tests).
    pub extra_ca_file: Option<PathBuf>,
    /// The local addresses to send from (TLSRPT's sending-mta-ip and SPF depend on them);
    /// unset: the system's choice.
    pub source_ipv4: Option<std::net::Ipv4Addr>,
    pub source_ipv6: Option<std::net::Ipv6Addr>,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            enabled: true,
            port: 25,
            retry_min_secs: 300,
            retry_max_secs: 3600,
            lifetime_secs: 5 * 86400,
            delay_warning_secs: 4 * 3600,
            timeout_secs: 300,
            data_timeout_secs: 600,
            max_connections: 100,
            max_per_domain: 10,
            extra_ca_file: None,
            source_ipv4: None,
            source_ipv6: None,
        }
    }
}

/// `[submission]`: mail clients sending (RFC 6409, RFC 8314). Size and line limits come from
/// `[smtp]`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SubmissionConfig {
    /// Implicit TLS (RFC 8314 §3.3; TR-03108 MUA-1), port 465.
    pub listen_implicit: Vec<ListenAddr>,
    /// STARTTLS (TR-03108 MUA-2), port 587.
    pub listen_starttls: Vec<ListenAddr>,
    /// Whether the Received header of submitted mail names the client's IP address.
    pub received_client_ip: bool,
    /// Messages one account may send per hour.
    pub max_messages_per_hour: u32,
    /// Failed logins within `auth_window_secs` (counted when they start) after which further
    /// attempts from that address, or for that account from that network, are refused for the
    /// window; four times as many for an account from everywhere block it only for networks
    /// where it has not logged in before (kurier-access `AuthThrottle`).
    pub auth_block_after: u32,
    pub auth_window_secs: u64,
}

impl Default for SubmissionConfig {
    fn default() -> Self {
        SubmissionConfig {
            listen_implicit: vec![ListenAddr("[::]:465".parse().expect("literal address"))],
            listen_starttls: vec![ListenAddr("[::]:587".parse().expect("literal address"))],
            received_client_ip: false,
            max_messages_per_hour: 500,
            auth_block_after: 10,
            auth_window_secs: 900,
        }
    }
}

/// `[imap]`: mail clients reading mail (RFC 9051; TR-03108 MUA-1, MUA-2). Logins share the
/// throttle of `[submission]`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ImapConfig {
    /// Implicit TLS (RFC 8314), port 993.
    pub listen_implicit: Vec<ListenAddr>,
    /// STARTTLS with LOGINDISABLED until TLS is up, port 143.
    pub listen_starttls: Vec<ListenAddr>,
    /// Largest APPEND in bytes (announced as APPENDLIMIT).
    pub max_append_size: u64,
    pub max_connections_per_ip: u32,
    /// Waiting for a login.
    pub login_timeout_secs: u64,
    /// Waiting for a command after login, outside IDLE (RFC 9051 §5.4: at least 1800).
    pub idle_timeout_secs: u64,
    /// How often an IDLE session hears `* OK Still here`; IDLE itself never times out
    /// (TR-03108 TLS-8: no cap on a TLS session's lifetime).
    pub keepalive_secs: u64,
}

impl Default for ImapConfig {
    fn default() -> Self {
        ImapConfig {
            listen_implicit: vec![ListenAddr("[::]:993".parse().expect("literal address"))],
            listen_starttls: vec![ListenAddr("[::]:143".parse().expect("literal address"))],
            max_append_size: 50 << 20,
            max_connections_per_ip: 100,
            login_timeout_secs: 120,
            idle_timeout_secs: 1800,
            keepalive_secs: 300,
        }
    }
}

/// `[pop3]`: mail clients downloading mail (RFC 1939; TR-03108 MUA-1, MUA-2).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Pop3Config {
    /// Implicit TLS (RFC 8314), port 995.
    pub listen_implicit: Vec<ListenAddr>,
    /// STLS (RFC 2595), no credentials before it, port 110.
    pub listen_starttls: Vec<ListenAddr>,
    pub max_connections_per_ip: u32,
    /// RFC 1939 §3: at least 600.
    pub timeout_secs: u64,
}

impl Default for Pop3Config {
    fn default() -> Self {
        Pop3Config {
            listen_implicit: vec![ListenAddr("[::]:995".parse().expect("literal address"))],
            listen_starttls: vec![ListenAddr("[::]:110".parse().expect("literal address"))],
            max_connections_per_ip: 50,
            timeout_secs: 600,
        }
    }
}

/// `[sieve]`: what one account's Sieve scripts may do at delivery, so that a script cannot
/// turn the server into a mail cannon.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SieveConfig {
    /// Redirects one run may make (Pigeonhole's `sieve_max_redirects`).
    pub max_redirects: u32,
    /// Vacation replies (RFC 5230) one account sends in 24 hours at most.
    pub vacation_replies_per_day: u32,
}

impl Default for SieveConfig {
    fn default() -> Self {
        SieveConfig {
            max_redirects: 4,
            vacation_replies_per_day: 100,
        }
    }
}

/// `[managesieve]`: mail clients managing their Sieve scripts (RFC 5804), STARTTLS only, no
/// credentials before it. Off until `listen` names an address (port 4190).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ManageSieveConfig {
    pub listen: Vec<ListenAddr>,
    pub max_connections_per_ip: u32,
    pub timeout_secs: u64,
    /// Largest script in bytes.
    pub max_script_size: u64,
    /// Scripts per account at most.
    pub max_scripts: u32,
}

impl Default for ManageSieveConfig {
    fn default() -> Self {
        ManageSieveConfig {
            listen: Vec::new(),
            max_connections_per_ip: 20,
            timeout_secs: 1800,
            max_script_size: 1 << 20,
            max_scripts: 32,
        }
    }
}

/// `[smtp]`: the inbound MX (port 25).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmtpConfig {
    pub listen: Vec<ListenAddr>,
    /// Largest message accepted, in bytes (advertised as SIZE).
    pub max_message_size: u64,
    pub max_recipients: u32,
    /// Bad commands and refused recipients before the session is closed.
    pub max_errors: u32,
    /// Longest line in a message, without CRLF (RFC 5321 §4.5.3.1.6 requires at least 998).
    pub max_line_length: u32,
    /// `reject` (default) or `normalize` bare CR/LF in DATA (SMTP smuggling defence).
    pub bare_line_ending: BareLineEndingConfig,
    /// RFC 5321 §4.5.3.2: at least 300 s between commands.
    pub command_timeout_secs: u64,
    /// For the whole message body.
    pub data_timeout_secs: u64,
    pub max_connections_per_ip: u32,
    /// RAM for message bodies of all SMTP sessions and IMAP APPEND literals together (arriving
    /// and being stored), in MiB; past 256 KiB an SMTP body in arrival goes to a spool file in
    /// `server.data_dir`.
    pub body_memory_mb: u64,
    /// All bytes of bodies in arrival (RAM and spool), in MiB; past it messages get 451 4.3.1.
    pub in_flight_mb: u64,
    /// TLS session tickets after STARTTLS on port 25. Some large senders give up STARTTLS
    /// against servers that send TLS 1.3 tickets; `false` sends none (full handshakes).
    pub tls_session_tickets: bool,
    /// New connections per `rate_window_secs` from one address (IPv6: its /64) and from its
    /// network (IPv4 /24, IPv6 /48); past them 421 (Postfix's anvil). 0: no limit.
    pub connection_rate_per_address: u32,
    pub connection_rate_per_network: u32,
    /// Recipients (RCPT TO) per window from one address and from its network; past them 450.
    pub recipient_rate_per_address: u32,
    pub recipient_rate_per_network: u32,
    pub rate_window_secs: u64,
    /// Client networks the rates and `recipient_answer_ms` do not apply to (Postfix exempts
    /// `$mynetworks`).
    pub rate_exempt: Vec<String>,
    /// Every RCPT answer to another server takes at least this long, known address or not, so
    /// reply times do not tell an address harvester which addresses exist. 0: off.
    pub recipient_answer_ms: u64,
    /// Sub-addressing (RFC 5233, Postfix's `recipient_delimiter`): `user+tag@domain` reaches
    /// `user@domain` unless that whole address exists; "" turns it off.
    pub recipient_delimiter: String,
}

impl SmtpConfig {
    /// `rate_exempt` as (network, prefix length); `None` for an entry that is no network.
    pub fn rate_exempt_networks(&self) -> Option<Vec<(IpAddr, u8)>> {
        self.rate_exempt
            .iter()
            .map(|e| match SenderPattern::parse(e)? {
                SenderPattern::Network(ip, len) => Some((ip, len)),
                _ => None,
            })
            .collect()
    }
}

impl Default for SmtpConfig {
    fn default() -> Self {
        SmtpConfig {
            listen: vec![ListenAddr("[::]:25".parse().expect("literal address"))],
            max_message_size: 50 << 20,
            max_recipients: 100,
            max_errors: 10,
            max_line_length: 8192,
            bare_line_ending: BareLineEndingConfig::Reject,
            command_timeout_secs: 300,
            data_timeout_secs: 600,
            max_connections_per_ip: 50,
            body_memory_mb: 256,
            in_flight_mb: 4096,
            tls_session_tickets: true,
            // Generous for one sending host (big senders reuse connections and spread over
            // many networks); an operator of a large site raises them.
            connection_rate_per_address: 60,
            connection_rate_per_network: 600,
            recipient_rate_per_address: 500,
            recipient_rate_per_network: 3000,
            rate_window_secs: 60,
            rate_exempt: vec!["127.0.0.0/8".into(), "::1/128".into()],
            // Above a store look-up (SQLite: well under 1 ms, PostgreSQL: a few ms); 100
            // recipients then cost 3 s, which a sending MTA's RCPT timeout (5 min) allows.
            recipient_answer_ms: 30,
            recipient_delimiter: "+".into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BareLineEndingConfig {
    Reject,
    Normalize,
}

/// `[store]`: where accounts, mailboxes, messages and the queue live.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// `sqlite:/path/kurier.db` or `postgres://user@host/db` (or `postgres:` + a libpq
    /// key=value string). Unset: the SQLite file `kurier.db` in `server.data_dir`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// `[server]`
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Our host name: the MX name in greetings and the name certificates must carry.
    pub hostname: String,
    /// Where all state lives (database, message files, dev certificates).
    pub data_dir: PathBuf,
    /// How long, after SIGTERM/SIGINT, open sessions may take to finish.
    pub shutdown_grace_secs: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            hostname: "localhost".into(),
            data_dir: PathBuf::from("/var/lib/kurier"),
            shutdown_grace_secs: 30,
        }
    }
}

/// `[log]`
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A tracing filter: a level (`info`) or directives (`info,kurier_tls=debug`).
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::Text,
            level: "info".into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// `[tls]`
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// Certificates; the first is the default, served when the client sends no or an unknown SNI.
    #[serde(rename = "certificate", skip_serializing_if = "Vec::is_empty")]
    pub certificates: Vec<CertificateConfig>,
    /// How often certificate files are checked for changes (seconds); 0 turns polling off
    /// (SIGHUP still reloads).
    pub reload_check_secs: u64,
    /// A reload (SIGHUP, changed files) whose chain matches none of the TLSA records published
    /// for `server.hostname` is refused, so that DANE senders keep delivering (RFC 7671 §8).
    /// `false` only for an emergency switch, e.g. after a key compromise.
    pub dane_rollover_check: bool,
    /// How often the served certificate is compared with the published TLSA records
    /// (seconds; TR-03108 DANE-3 monitoring); 0 turns it off.
    pub tlsa_check_secs: u64,
    /// TR-03108 TLS-9: on port 25 only, also accept legacy TLS versions and suites at the lowest
    /// priority. Off by default.
    pub mta_legacy: bool,
    /// Hybrid post-quantum key exchange (SecP256r1MLKEM768, SecP384r1MLKEM1024, RFC 10024)
    /// offered first on every listener. Off by default: TR-03116-4 does not list them yet.
    pub hybrid_groups: bool,
    /// A PEM file of CAs (a company or lab CA) that count as trusted roots when the served
    /// chains are checked on load, besides Debian's CA bundle.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trusted_roots: Option<PathBuf>,
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            certificates: Vec::new(),
            reload_check_secs: 10,
            dane_rollover_check: true,
            tlsa_check_secs: 3600,
            mta_legacy: false,
            hybrid_groups: false,
            trusted_roots: None,
        }
    }
}

/// `[[tls.certificate]]`
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateConfig {
    /// PEM file: the certificate, then its intermediates (a "fullchain").
    pub cert: PathBuf,
    /// PEM file: the private key.
    pub key: PathBuf,
    /// PEM file: the key the next certificate will have. `kurier dns` then lists a `3 1 1`
    /// TLSA record for it beside the current one, so that the switch breaks no DANE peer
    /// (RFC 7671 §8.1: publish, wait two TTLs, switch, then drop the old record).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_key: Option<PathBuf>,
}

/// `[web]`: the HTTPS listener (MTA-STS policy, autoconfig, status).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebConfig {
    pub listen: Vec<ListenAddr>,
    /// Plain HTTP listeners; they only redirect to HTTPS (TR-03108 WEB-1). Empty: none.
    pub listen_http: Vec<ListenAddr>,
    /// The web administration at `/admin/` and its API at `/api/v1/` (HTTPS only).
    pub admin: bool,
    /// Client networks the administration answers (`["192.0.2.0/24", "::1/128"]`); empty: any.
    pub admin_networks: Vec<String>,
    /// How long a sign-in lasts.
    pub session_hours: u32,
}

impl WebConfig {
    /// `admin_networks` as (network, prefix length); `None` for an entry that is no network.
    pub fn admin_networks(&self) -> Option<Vec<(IpAddr, u8)>> {
        self.admin_networks
            .iter()
            .map(|e| match SenderPattern::parse(e)? {
                SenderPattern::Network(ip, len) => Some((ip, len)),
                _ => None,
            })
            .collect()
    }
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            listen: vec![ListenAddr("[::]:443".parse().expect("literal address"))],
            listen_http: vec![ListenAddr("[::]:80".parse().expect("literal address"))],
            admin: true,
            admin_networks: Vec::new(),
            session_hours: 12,
        }
    }
}

/// The MTA-STS policy mode we publish (RFC 8461 §3.2).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StsModeConfig {
    #[default]
    Enforce,
    Testing,
    None,
}

/// `[mta_sts]`: the policy served at `https://mta-sts.<domain>/.well-known/mta-sts.txt` for
/// every hosted domain (RFC 8461; TR-03108 STS-1).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct MtaStsConfig {
    pub enabled: bool,
    pub mode: StsModeConfig,
    /// MX names (or `*.domain` patterns) of the policy; empty: `server.hostname`.
    pub mx: Vec<String>,
    pub max_age_secs: u64,
}

impl Default for MtaStsConfig {
    fn default() -> Self {
        MtaStsConfig {
            enabled: true,
            mode: StsModeConfig::Enforce,
            mx: Vec::new(),
            max_age_secs: 604_800,
        }
    }
}

/// An IP address and a port to listen on, written `"0.0.0.0:25"` or `"[::]:25"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ListenAddr(pub SocketAddr);

impl<'de> Deserialize<'de> for ListenAddr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_listen(&s)
            .map(ListenAddr)
            .map_err(serde::de::Error::custom)
    }
}

fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    let addr: SocketAddr = s.parse().map_err(|_| {
        format!(
            "{s:?} is not an IP address with a port 1–65535 (fix: write it like \"0.0.0.0:25\", \"127.0.0.1:8443\" or \"[::]:443\")"
        )
    })?;
    if addr.port() == 0 {
        return Err(format!(
            "{s:?} has port 0 (fix: name the port to listen on, e.g. \"0.0.0.0:443\")"
        ));
    }
    Ok(addr)
}

impl Serialize for ListenAddr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0.to_string())
    }
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A DNS server to ask: `"127.0.0.53"` (port 53), `"127.0.0.1:5353"`, `"::1"`, `"[::1]:53"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UpstreamAddr(pub SocketAddr);

impl<'de> Deserialize<'de> for UpstreamAddr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_upstream(&s)
            .map(UpstreamAddr)
            .map_err(serde::de::Error::custom)
    }
}

fn parse_upstream(s: &str) -> Result<SocketAddr, String> {
    let addr = match s.parse::<IpAddr>() {
        Ok(ip) => SocketAddr::new(ip, 53),
        Err(_) => s.parse::<SocketAddr>().map_err(|_| {
            format!(
                "{s:?} is not an IP address, with or without a port (fix: write it like \"127.0.0.53\", \"127.0.0.1:5353\" or \"[::1]:53\"; without a port, 53 is used)"
            )
        })?,
    };
    if addr.port() == 0 {
        return Err(format!(
            "{s:?} has port 0 (fix: leave the port out for 53, or name the resolver's port)"
        ));
    }
    Ok(addr)
}

impl Serialize for UpstreamAddr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0.to_string())
    }
}

impl fmt::Display for UpstreamAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The fixed development ports of `kurier serve --dev` (unprivileged versions of the real ones).
pub mod dev_ports {
    pub const SMTP: u16 = 2525;
    pub const SUBMISSIONS: u16 = 2465;
    pub const SUBMISSION: u16 = 2587;
    pub const IMAPS: u16 = 1993;
    pub const IMAP: u16 = 1143;
    pub const POP3S: u16 = 1995;
    pub const POP3: u16 = 1110;
    pub const HTTPS: u16 = 8443;
    pub const HTTP: u16 = 8080;
}

/// The host name and mail domain of `serve --dev`.
pub const DEV_HOSTNAME: &str = "mail.example.test";
pub const DEV_DOMAIN: &str = "example.test";

/// A (key, value, problem, fix) quadruple for `ConfigError::Invalid`.
pub(crate) type Invalid = (String, String, String, String);

impl Config {
    /// The configuration of `kurier serve --dev`: everything on `ip`, data in `data_dir`, the
    /// dev certificate (made by the binary) in the data folder.
    pub fn dev(data_dir: PathBuf, ip: IpAddr) -> Config {
        Config {
            server: ServerConfig {
                hostname: DEV_HOSTNAME.into(),
                data_dir: data_dir.clone(),
                shutdown_grace_secs: 5,
            },
            log: LogConfig::default(),
            tls: TlsConfig {
                certificates: vec![CertificateConfig {
                    cert: data_dir.join("dev-server.pem"),
                    key: data_dir.join("dev-server.key"),
                    next_key: None,
                }],
                ..TlsConfig::default()
            },
            web: WebConfig {
                listen: vec![ListenAddr(SocketAddr::new(ip, dev_ports::HTTPS))],
                listen_http: vec![ListenAddr(SocketAddr::new(ip, dev_ports::HTTP))],
                ..WebConfig::default()
            },
            store: StoreConfig::default(),
            smtp: SmtpConfig {
                listen: vec![ListenAddr(SocketAddr::new(ip, dev_ports::SMTP))],
                ..SmtpConfig::default()
            },
            submission: SubmissionConfig {
                listen_implicit: vec![ListenAddr(SocketAddr::new(ip, dev_ports::SUBMISSIONS))],
                listen_starttls: vec![ListenAddr(SocketAddr::new(ip, dev_ports::SUBMISSION))],
                ..SubmissionConfig::default()
            },
            imap: ImapConfig {
                listen_implicit: vec![ListenAddr(SocketAddr::new(ip, dev_ports::IMAPS))],
                listen_starttls: vec![ListenAddr(SocketAddr::new(ip, dev_ports::IMAP))],
                ..ImapConfig::default()
            },
            pop3: Pop3Config {
                listen_implicit: vec![ListenAddr(SocketAddr::new(ip, dev_ports::POP3S))],
                listen_starttls: vec![ListenAddr(SocketAddr::new(ip, dev_ports::POP3))],
                ..Pop3Config::default()
            },
            dns: DnsConfig::default(),
            // A dev server has no real domain and must not send to the Internet by accident.
            delivery: DeliveryConfig {
                enabled: false,
                ..DeliveryConfig::default()
            },
            mta_sts: MtaStsConfig::default(),
            tlsrpt: TlsRptConfig::default(),
            autoconfig: AutoconfigConfig {
                imaps_port: dev_ports::IMAPS,
                pop3s_port: dev_ports::POP3S,
                imap_starttls_port: dev_ports::IMAP,
                pop3_starttls_port: dev_ports::POP3,
                ..AutoconfigConfig::default()
            },
            acme: AcmeConfig::default(),
            dns_update: DnsUpdateConfig::default(),
            // Like delivery: a dev server asks no DNS about other people's domains.
            sender_auth: SenderAuthConfig {
                enabled: false,
                ..SenderAuthConfig::default()
            },
            blocklists: BlocklistConfig::default(),
            spam: SpamConfig::default(),
            greylisting: GreylistConfig::default(),
            milter: Vec::new(),
            managesieve: ManageSieveConfig::default(),
            sieve: SieveConfig::default(),
        }
    }

    /// The store URL in effect (`store.url`, else SQLite in the data folder).
    pub fn store_url(&self) -> String {
        match &self.store.url {
            Some(url) => url.clone(),
            None => format!(
                "sqlite:{}",
                self.server.data_dir.join("kurier.db").display()
            ),
        }
    }

    /// Checks that need more than one value's type; returns the first problem.
    pub(crate) fn validate(&self) -> Result<(), Invalid> {
        let bad = |key: &str, value: &dyn fmt::Debug, problem: &str, fix: &str| {
            Err((
                key.to_string(),
                format!("{value:?}"),
                problem.to_string(),
                fix.to_string(),
            ))
        };
        if !is_host_name(&self.server.hostname) {
            return bad(
                "server.hostname",
                &self.server.hostname,
                "not a valid host name",
                "use the fully qualified name of this mail server, e.g. \"mail.example.org\"",
            );
        }
        if self.server.data_dir.as_os_str().is_empty() {
            return bad(
                "server.data_dir",
                &self.server.data_dir,
                "empty path",
                "name a folder, e.g. \"/var/lib/kurier\"",
            );
        }
        if self.server.shutdown_grace_secs > 3600 {
            return bad(
                "server.shutdown_grace_secs",
                &self.server.shutdown_grace_secs,
                "more than an hour",
                "use a value from 0 to 3600 seconds",
            );
        }
        if !is_log_filter(&self.log.level) {
            return bad(
                "log.level",
                &self.log.level,
                "not a log level or filter",
                "use error, warn, info, debug or trace, or directives like \"info,kurier_tls=debug\"",
            );
        }
        for (i, c) in self.tls.certificates.iter().enumerate() {
            if c.cert.as_os_str().is_empty() || c.key.as_os_str().is_empty() {
                return bad(
                    &format!("tls.certificate[{i}]"),
                    c,
                    "cert and key must both name PEM files",
                    "set cert = \"/path/fullchain.pem\" and key = \"/path/key.pem\"",
                );
            }
        }
        if self.acme.enabled && !self.acme.directory.starts_with("https://") {
            return bad(
                "acme.directory",
                &self.acme.directory,
                "not an https URL (RFC 8555 §6.1)",
                "use the CA's directory, e.g. \"https://acme-v02.api.letsencrypt.org/directory\"",
            );
        }
        if let Some(c) = self.acme.contact.iter().find(|c| !c.starts_with("mailto:")) {
            return bad(
                "acme.contact",
                c,
                "not a mailto: URL",
                "write e.g. \"mailto:postmaster@example.org\"",
            );
        }
        if self.acme.enabled
            && self.acme.challenge == AcmeChallenge::Http01
            && self.web.listen_http.is_empty()
        {
            return bad(
                "web.listen_http",
                &self.web.listen_http,
                "empty, but [acme] is enabled with challenge \"http-01\": the CA checks it over plain HTTP on port 80 (RFC 8555 §8.3)",
                "list a port-80 address, e.g. [\"[::]:80\"], or set acme.challenge = \"tls-alpn-01\" (port 443 only)",
            );
        }
        if let Some(bad_entry) = self
            .sender_auth
            .dmarc_exempt
            .iter()
            .find(|e| SenderPattern::parse(e).is_none())
        {
            return bad(
                "sender_auth.dmarc_exempt",
                bad_entry,
                "is no envelope sender, domain or client network",
                "write e.g. \"lists.example.org\", \"bounces@news.example.net\" or \"192.0.2.0/24\"",
            );
        }
        let b = &self.blocklists;
        for (key, list) in b
            .lists
            .iter()
            .map(|l| ("blocklists.lists", l))
            .chain(b.allow.iter().map(|l| ("blocklists.allow", l)))
        {
            let zone_ok = !list.zone.is_empty()
                && list.zone.len() <= 200
                && list.zone.split('.').all(|l| {
                    !l.is_empty() && l.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-')
                });
            if !zone_ok {
                return bad(
                    key,
                    &list.zone,
                    "is no DNS zone name",
                    "name the list's zone, e.g. \"zen.spamhaus.org\"",
                );
            }
            if let Err(e) = list.code_ranges() {
                return bad(
                    key,
                    &list.codes,
                    &e,
                    "write answers as \"127.0.0.2\" or \"127.0.0.2-127.0.0.11\"",
                );
            }
            if !(list.weight > 0.0 && list.weight.is_finite()) {
                return bad(
                    key,
                    &list.weight,
                    "weight must be above 0",
                    "e.g. weight = 1.0",
                );
            }
        }
        if !(b.reject_score > 0.0 && b.reject_score.is_finite()) {
            return bad(
                "blocklists.reject_score",
                &b.reject_score,
                "must be above 0",
                "e.g. 1.0: one list of weight 1 rejects",
            );
        }
        if b.timeout_ms == 0 || b.timeout_ms > 30_000 {
            return bad(
                "blocklists.timeout_ms",
                &b.timeout_ms,
                "must be 1 to 30000",
                "e.g. 2000: a slow list must not stall the session",
            );
        }
        if self.smtp.rate_exempt_networks().is_none() {
            return bad(
                "smtp.rate_exempt",
                &self.smtp.rate_exempt,
                "lists something that is no client network",
                "write networks, e.g. [\"127.0.0.0/8\", \"192.0.2.0/24\"]",
            );
        }
        if self.web.admin_networks().is_none() {
            return bad(
                "web.admin_networks",
                &self.web.admin_networks,
                "lists something that is no client network",
                "write networks, e.g. [\"192.0.2.0/24\", \"::1/128\"], or [] for any",
            );
        }
        if !(1..=24 * 30).contains(&self.web.session_hours) {
            return bad(
                "web.session_hours",
                &self.web.session_hours,
                "must be 1 to 720",
                "e.g. 12",
            );
        }
        let d = &self.smtp.recipient_delimiter;
        if d.chars().count() > 1
            || d.chars()
                .any(|c| c == '@' || c.is_whitespace() || c.is_control())
        {
            return bad(
                "smtp.recipient_delimiter",
                d,
                "must be one character other than @ and white space, or empty",
                "e.g. \"+\" (user+tag@domain) or \"-\"",
            );
        }
        if self.smtp.rate_window_secs == 0 || self.smtp.rate_window_secs > 86400 {
            return bad(
                "smtp.rate_window_secs",
                &self.smtp.rate_window_secs,
                "must be 1 to 86400",
                "e.g. 60: the limits count per minute",
            );
        }
        for (i, m) in self.milter.iter().enumerate() {
            if m.timeout_ms == 0 || m.timeout_ms > 600_000 {
                return bad(
                    &format!("milter[{i}].timeout_ms"),
                    &m.timeout_ms,
                    "must be 1 to 600000",
                    "e.g. 30000",
                );
            }
            if m.address.trim().is_empty() {
                return bad(
                    &format!("milter[{i}].address"),
                    &m.address,
                    "is empty",
                    "write e.g. \"inet:7357@127.0.0.1\" or \"unix:/run/clamav/clamav-milter.ctl\"",
                );
            }
        }
        let gl = &self.greylisting;
        if gl.enabled && gl.scope == GreylistScope::Rspamd && self.spam.rspamd.is_none() {
            return bad(
                "greylisting.scope",
                &"rspamd",
                "needs spam.rspamd",
                "name rspamd in [spam], or greylist all new triplets (scope = \"all\")",
            );
        }
        if let Some(bad_entry) = gl.exempt.iter().find(|e| SenderPattern::parse(e).is_none()) {
            return bad(
                "greylisting.exempt",
                bad_entry,
                "is no client network, sender domain or address",
                "write e.g. \"192.0.2.0/24\" or \"lists.example.org\"",
            );
        }
        if gl.delay_secs == 0 || gl.delay_secs > 86400 {
            return bad(
                "greylisting.delay_secs",
                &gl.delay_secs,
                "must be 1 to 86400",
                "e.g. 300: real servers retry within minutes",
            );
        }
        if gl.retry_window_secs <= gl.delay_secs {
            return bad(
                "greylisting.retry_window_secs",
                &gl.retry_window_secs,
                "must be longer than greylisting.delay_secs",
                "e.g. 172800 (two days)",
            );
        }
        if gl.expiry_days == 0 || gl.expiry_days > 3650 {
            return bad(
                "greylisting.expiry_days",
                &gl.expiry_days,
                "must be 1 to 3650",
                "e.g. 35",
            );
        }
        let sp = &self.spam;
        if sp.timeout_ms == 0 || sp.timeout_ms > 300_000 {
            return bad(
                "spam.timeout_ms",
                &sp.timeout_ms,
                "must be 1 to 300000",
                "e.g. 20000: rspamd scans in well under a second",
            );
        }
        if sp.rspamd.is_none() && sp.rspamd_controller.is_some() {
            return bad(
                "spam.rspamd",
                &sp.rspamd,
                "missing, but spam.rspamd_controller is set",
                "name rspamd's normal worker, e.g. \"127.0.0.1:11333\"",
            );
        }
        if sp
            .rspamd_password
            .as_deref()
            .is_some_and(|p| p.chars().any(char::is_control))
        {
            return bad(
                "spam.rspamd_password",
                &"(hidden)",
                "has control characters",
                "write the controller password as rspamd's `password` setting has it",
            );
        }
        let u = &self.dns_update;
        if u.enabled && u.server.is_none() {
            return bad(
                "dns_update.server",
                &u.server,
                "missing, but [dns_update] is enabled",
                "name the primary server, e.g. \"192.0.2.53:53\"",
            );
        }
        if u.enabled && u.key_file.is_none() {
            return bad(
                "dns_update.key_file",
                &u.key_file,
                "missing, but [dns_update] is enabled: updates are signed with TSIG (RFC 8945)",
                "make a key with `tsig-keygen kurier-update` (BIND) or `keymgr -t kurier-update hmac-sha256` (Knot), allow it to update the zones, and name the file",
            );
        }
        if u.enabled && u.zones.is_empty() {
            return bad(
                "dns_update.zones",
                &u.zones,
                "empty, but [dns_update] is enabled",
                "list the zones the server is primary for, e.g. [\"example.org\"]",
            );
        }
        if u.enabled && u.check_secs == 0 {
            return bad(
                "dns_update.check_secs",
                &u.check_secs,
                "zero",
                "use a number of seconds, e.g. 3600",
            );
        }
        if self.acme.enabled && self.acme.check_secs == 0 {
            return bad(
                "acme.check_secs",
                &self.acme.check_secs,
                "zero",
                "use a number of seconds, e.g. 3600",
            );
        }
        if self.web.listen.is_empty() {
            return bad(
                "web.listen",
                &self.web.listen,
                "no address",
                "list at least one, e.g. [\"[::]:443\"]",
            );
        }
        if let Some(url) = &self.store.url
            && !(url.starts_with("sqlite:")
                || url.starts_with("postgres:")
                || url.starts_with("postgresql:"))
        {
            return bad(
                "store.url",
                url,
                "not a store URL",
                "use \"sqlite:/var/lib/kurier/kurier.db\" or \"postgres://kurier@db.example.org/kurier\"",
            );
        }
        let smtp = &self.smtp;
        if smtp.max_line_length < 998 {
            return bad(
                "smtp.max_line_length",
                &smtp.max_line_length,
                "below the 998 bytes RFC 5321 §4.5.3.1.6 requires",
                "use 998 or more (default 8192)",
            );
        }
        if smtp.recipient_answer_ms > 5_000 {
            return bad(
                "smtp.recipient_answer_ms",
                &smtp.recipient_answer_ms,
                "above 5 s per RCPT: a message to many recipients would run into the sender's timeouts",
                "use 30 (the default) to 1000, or 0 for off",
            );
        }
        let d = &self.delivery;
        for (key, value, min) in [
            ("smtp.command_timeout_secs", smtp.command_timeout_secs, 1),
            ("smtp.data_timeout_secs", smtp.data_timeout_secs, 1),
            ("smtp.max_message_size", smtp.max_message_size, 1024),
            ("smtp.max_recipients", u64::from(smtp.max_recipients), 1),
            ("smtp.max_errors", u64::from(smtp.max_errors), 1),
            // One largest message must fit, with its headers.
            (
                "smtp.body_memory_mb",
                smtp.body_memory_mb,
                (smtp.max_message_size >> 20) + 1,
            ),
            (
                "smtp.in_flight_mb",
                smtp.in_flight_mb,
                (smtp.max_message_size >> 20) + 1,
            ),
            (
                "smtp.max_connections_per_ip",
                u64::from(smtp.max_connections_per_ip),
                1,
            ),
            ("delivery.port", u64::from(d.port), 1),
            ("delivery.retry_min_secs", d.retry_min_secs, 1),
            (
                "delivery.retry_max_secs",
                d.retry_max_secs,
                d.retry_min_secs,
            ),
            ("delivery.lifetime_secs", d.lifetime_secs, 1),
            ("delivery.timeout_secs", d.timeout_secs, 1),
            ("delivery.data_timeout_secs", d.data_timeout_secs, 1),
            ("delivery.max_connections", u64::from(d.max_connections), 1),
            ("delivery.max_per_domain", u64::from(d.max_per_domain), 1),
            ("dns.timeout_secs", self.dns.timeout_secs, 1),
            ("dns.probe_interval_secs", self.dns.probe_interval_secs, 1),
        ] {
            if value < min {
                return bad(
                    key,
                    &value,
                    &format!("must be at least {min}"),
                    "see kurier.example.toml for the defaults",
                );
            }
        }
        if let Some(a) = &self.sender_auth.reporting_address
            && !a.contains('@')
        {
            return bad(
                "sender_auth.reporting_address",
                a,
                "not a mail address",
                "name an account or alias here, e.g. \"dmarc-reports@example.org\"",
            );
        }
        if let Some(a) = &self.tlsrpt.reporting_address
            && !a.contains('@')
        {
            return bad(
                "tlsrpt.reporting_address",
                a,
                "not a mail address",
                "name an account or alias here, e.g. \"tlsrpt@example.org\"",
            );
        }
        if self.mta_sts.max_age_secs > 31_557_600 {
            return bad(
                "mta_sts.max_age_secs",
                &self.mta_sts.max_age_secs,
                "more than RFC 8461 allows (31557600)",
                "use weeks, e.g. 604800 (one week)",
            );
        }
        if let Some(p) = self
            .mta_sts
            .mx
            .iter()
            .find(|p| !is_host_name(p.strip_prefix("*.").unwrap_or(p)))
        {
            return bad(
                "mta_sts.mx",
                p,
                "not a host name or *.domain pattern",
                "list the MX names of your domains, e.g. [\"mail.example.org\"]",
            );
        }
        for (key, name) in [
            ("dns.probe_secure", &self.dns.probe_secure),
            ("dns.probe_bogus", &self.dns.probe_bogus),
        ] {
            let bare = name.trim_end_matches('.');
            let root_ok = bare.is_empty() && key == "dns.probe_secure";
            if !root_ok && !is_host_name(bare) {
                return bad(
                    key,
                    name,
                    "not a DNS name",
                    "name a domain, e.g. \".\" (the root) for probe_secure, \"dnssec-failed.org\" for probe_bogus",
                );
            }
        }
        if self.dns.trust_anchor_updates && self.dns.trust_anchor.is_none() {
            return bad(
                "dns.trust_anchor_updates",
                &true,
                "RFC 5011 updates need a trust anchor file to keep current",
                "set dns.trust_anchor to a file kurier may write, e.g. /var/lib/kurier/root.key (start it as a copy of /usr/share/dns/root.key)",
            );
        }
        if self.dns.dnssec == DnssecMode::TrustAd
            && let Some(a) = self.dns.upstream.iter().find(|a| !a.0.ip().is_loopback())
        {
            return bad(
                "dns.upstream",
                a,
                "dnssec = \"trust_ad\" trusts the AD bit only from a resolver on this machine",
                "run a validating resolver (e.g. unbound) on 127.0.0.1 and name it, or use dnssec = \"validate\"",
            );
        }
        let sub = &self.submission;
        for (key, value) in [
            (
                "submission.max_messages_per_hour",
                u64::from(sub.max_messages_per_hour),
            ),
            (
                "submission.auth_block_after",
                u64::from(sub.auth_block_after),
            ),
            ("submission.auth_window_secs", sub.auth_window_secs),
            ("imap.max_append_size", self.imap.max_append_size),
            (
                "imap.max_connections_per_ip",
                u64::from(self.imap.max_connections_per_ip),
            ),
            ("imap.login_timeout_secs", self.imap.login_timeout_secs),
            ("imap.keepalive_secs", self.imap.keepalive_secs),
            (
                "pop3.max_connections_per_ip",
                u64::from(self.pop3.max_connections_per_ip),
            ),
        ] {
            if value == 0 {
                return bad(
                    key,
                    &value,
                    "must be at least 1",
                    "see kurier.example.toml for the defaults",
                );
            }
        }
        let mut seen = std::collections::HashSet::new();
        for (key, list) in [
            ("web.listen", &self.web.listen),
            ("smtp.listen", &self.smtp.listen),
            ("submission.listen_implicit", &sub.listen_implicit),
            ("submission.listen_starttls", &sub.listen_starttls),
            ("imap.listen_implicit", &self.imap.listen_implicit),
            ("imap.listen_starttls", &self.imap.listen_starttls),
            ("pop3.listen_implicit", &self.pop3.listen_implicit),
            ("pop3.listen_starttls", &self.pop3.listen_starttls),
        ] {
            for (i, a) in list.iter().enumerate() {
                if !seen.insert(a) {
                    return bad(
                        &format!("{key}[{i}]"),
                        &a.0,
                        "listed twice",
                        "remove the duplicate",
                    );
                }
            }
        }
        Ok(())
    }

    /// The effective configuration as TOML (defaults filled in), for `kurier config check`.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_else(|e| format!("# cannot print the configuration: {e}\n"))
    }
}

/// RFC 1123 host name: labels of letters, digits and hyphens, not starting or ending with one.
fn is_host_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.trim_end_matches('.').split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

fn is_log_filter(s: &str) -> bool {
    const LEVELS: &[&str] = &["off", "error", "warn", "info", "debug", "trace"];
    !s.trim().is_empty()
        && s.split(',').all(|part| {
            let level = part.rsplit('=').next().unwrap_or("").trim();
            let target_ok = part.split_once('=').is_none_or(|(t, _)| {
                !t.is_empty()
                    && t.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
            });
            target_ok && LEVELS.contains(&level.to_ascii_lowercase().as_str())
        })
}
