//! SPF (RFC 7208): is the client allowed to send for the MAIL FROM (or HELO) domain?
//!
//! `Record::parse` reads one `v=spf1` record (§4.6, §12 ABNF) completely before anything is
//! evaluated, so a syntax error anywhere is a `permerror` (§4.6); `expand` is the macro
//! language (§7); `check_host` walks the record and its includes over an `AuthLookup`, with the
//! limits of §4.6.4: at most 10 mechanisms and modifiers that ask DNS, at most 2 void lookups,
//! at most 10 MX and 10 PTR names, each an address lookup. Results are §2.6's seven.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use kurier_dns::{DnsError, DnssecState};

use crate::AuthLookup;

/// The result of an SPF check (RFC 7208 §2.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpfResult {
    None,
    Neutral,
    Pass,
    Fail,
    SoftFail,
    TempError,
    PermError,
}

impl SpfResult {
    /// The name in Authentication-Results (RFC 8601 §2.7.2) and Received-SPF.
    pub fn as_str(self) -> &'static str {
        match self {
            SpfResult::None => "none",
            SpfResult::Neutral => "neutral",
            SpfResult::Pass => "pass",
            SpfResult::Fail => "fail",
            SpfResult::SoftFail => "softfail",
            SpfResult::TempError => "temperror",
            SpfResult::PermError => "permerror",
        }
    }
}

/// What `check_host` found: the result, why (the matching mechanism or the error), the domain
/// whose policy gave it, its `exp=` explanation on `fail`, and whether every DNS answer used
/// was DNSSEC-secure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpfOutcome {
    pub result: SpfResult,
    pub domain: String,
    pub reason: String,
    pub explanation: Option<String>,
    pub dnssec: DnssecState,
}

/// §4.6.4: mechanisms and modifiers that cause DNS queries.
pub const MAX_DNS_TERMS: u32 = 10;
/// §4.6.4: lookups that return no records.
pub const MAX_VOID_LOOKUPS: u32 = 2;
/// §4.6.4: names an `mx` or `ptr` mechanism may look up.
pub const MAX_NAMES: usize = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Qualifier {
    Pass,
    Fail,
    SoftFail,
    Neutral,
}

impl Qualifier {
    fn result(self) -> SpfResult {
        match self {
            Qualifier::Pass => SpfResult::Pass,
            Qualifier::Fail => SpfResult::Fail,
            Qualifier::SoftFail => SpfResult::SoftFail,
            Qualifier::Neutral => SpfResult::Neutral,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Mechanism {
    All,
    Include(String),
    A {
        domain: Option<String>,
        v4: u8,
        v6: u8,
    },
    Mx {
        domain: Option<String>,
        v4: u8,
        v6: u8,
    },
    Ptr(Option<String>),
    Ip4(Ipv4Addr, u8),
    Ip6(Ipv6Addr, u8),
    Exists(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Directive {
    qualifier: Qualifier,
    mechanism: Mechanism,
    text: String,
}

/// One parsed `v=spf1` record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    directives: Vec<Directive>,
    redirect: Option<String>,
    exp: Option<String>,
}

/// Whether a TXT string is an SPF record (§4.5: `v=spf1` then a space or the end).
pub fn is_spf(txt: &str) -> bool {
    let t = txt.as_bytes();
    t.len() >= 6 && t[..6].eq_ignore_ascii_case(b"v=spf1") && (t.len() == 6 || t[6] == b' ')
}

impl Record {
    /// Parses a whole record; any syntax error is an error (§4.6: permerror).
    pub fn parse(txt: &str) -> Result<Record, String> {
        if !is_spf(txt) {
            return Err("not a v=spf1 record".into());
        }
        let mut record = Record {
            directives: Vec::new(),
            redirect: None,
            exp: None,
        };
        for term in txt[6..].split(' ').filter(|t| !t.is_empty()) {
            if let Some((name, value)) = modifier(term) {
                check_macro_string(value, false)?;
                let slot = match name.to_ascii_lowercase().as_str() {
                    "redirect" => &mut record.redirect,
                    "exp" => &mut record.exp,
                    // §6: unknown modifiers are ignored.
                    _ => continue,
                };
                if slot.is_some() {
                    return Err(format!("{name}= appears twice (RFC 7208 section 6)"));
                }
                check_domain_spec(value)?;
                *slot = Some(value.to_string());
            } else {
                record.directives.push(directive(term)?);
            }
        }
        Ok(record)
    }
}

impl Record {
    /// The result for senders no earlier mechanism names: the qualifier of a trailing `all`
    /// (`None` when the record ends otherwise, e.g. with `redirect=`, which then decides).
    pub fn default_result(&self) -> Option<SpfResult> {
        self.directives
            .iter()
            .find(|d| d.mechanism == Mechanism::All)
            .map(|d| d.qualifier.result())
    }

    /// The `redirect=` target, if any.
    pub fn redirect(&self) -> Option<&str> {
        self.redirect.as_deref()
    }
}

/// `name=value` if `term` is a modifier (§4.6.1: a name of ALPHA *(ALPHA/DIGIT/-/_/.)).
fn modifier(term: &str) -> Option<(&str, &str)> {
    let (name, value) = term.split_once('=')?;
    let mut chars = name.chars();
    let first = chars.next()?;
    (first.is_ascii_alphabetic()
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    .then_some((name, value))
}

fn directive(term: &str) -> Result<Directive, String> {
    let (qualifier, rest) = match term.as_bytes()[0] {
        b'+' => (Qualifier::Pass, &term[1..]),
        b'-' => (Qualifier::Fail, &term[1..]),
        b'~' => (Qualifier::SoftFail, &term[1..]),
        b'?' => (Qualifier::Neutral, &term[1..]),
        _ => (Qualifier::Pass, term),
    };
    let split = rest.find([':', '/']).unwrap_or(rest.len());
    let (name, arg) = rest.split_at(split);
    let bad = || format!("unknown or malformed mechanism {term:?}");
    let required = |arg: &str| -> Result<String, String> {
        let spec = arg.strip_prefix(':').ok_or_else(bad)?;
        check_domain_spec(spec)?;
        Ok(spec.to_string())
    };
    let mechanism = match name.to_ascii_lowercase().as_str() {
        "all" if arg.is_empty() => Mechanism::All,
        "include" => Mechanism::Include(required(arg)?),
        "exists" => Mechanism::Exists(required(arg)?),
        "a" | "mx" => {
            let (spec, v4, v6) = dual_cidr(arg).ok_or_else(bad)?;
            let domain = match spec {
                "" => None,
                s => Some(required(s)?),
            };
            if name.eq_ignore_ascii_case("a") {
                Mechanism::A { domain, v4, v6 }
            } else {
                Mechanism::Mx { domain, v4, v6 }
            }
        }
        "ptr" => Mechanism::Ptr(match arg {
            "" => None,
            s => Some(required(s)?),
        }),
        "ip4" => {
            let (addr, len) = network(arg, 32).ok_or_else(bad)?;
            Mechanism::Ip4(addr.parse().map_err(|_| bad())?, len)
        }
        "ip6" => {
            let (addr, len) = network(arg, 128).ok_or_else(bad)?;
            Mechanism::Ip6(addr.parse().map_err(|_| bad())?, len)
        }
        _ => return Err(bad()),
    };
    Ok(Directive {
        qualifier,
        mechanism,
        text: term.to_string(),
    })
}

/// `:address[/prefix]` of ip4 and ip6 (§5.6): the address text and the prefix length.
fn network(arg: &str, max: u8) -> Option<(&str, u8)> {
    let spec = arg.strip_prefix(':')?;
    match spec.split_once('/') {
        Some((a, l)) => Some((a, cidr(l, max)?)),
        None => Some((spec, max)),
    }
}

/// A prefix length: digits without a leading zero (§12 `ip4-cidr-length`), at most `max`.
fn cidr(s: &str, max: u8) -> Option<u8> {
    if s.is_empty() || s.len() > 3 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if s.len() > 1 && s.starts_with('0') {
        return None;
    }
    s.parse::<u8>().ok().filter(|n| *n <= max)
}

/// `[:domain-spec][/v4][//v6]` → (":domain-spec" or "", v4, v6).
fn dual_cidr(arg: &str) -> Option<(&str, u8, u8)> {
    let (mut rest, mut v4, mut v6) = (arg, 32, 128);
    if let Some(i) = rest.rfind("//") {
        v6 = cidr(&rest[i + 2..], 128)?;
        rest = &rest[..i];
    }
    if let Some(i) = rest.rfind('/')
        && !rest[i + 1..].contains('}')
    {
        v4 = cidr(&rest[i + 1..], 32)?;
        rest = &rest[..i];
    }
    (rest.is_empty() || rest.starts_with(':')).then_some((rest, v4, v6))
}

/// §7.1 syntax of a macro-string; `exp`: the letters `c`, `r`, `t` are allowed (§7.2).
fn check_macro_string(s: &str, exp: bool) -> Result<(), String> {
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '%' {
            match chars.next() {
                Some('%' | '_' | '-') => {}
                Some('{') => {
                    let letter = chars.next().ok_or("unterminated macro")?;
                    let allowed = "slodiphv";
                    let l = letter.to_ascii_lowercase();
                    if !(allowed.contains(l) || (exp && "crt".contains(l))) {
                        return Err(format!("unknown macro letter {letter:?} in {s:?}"));
                    }
                    loop {
                        match chars.next() {
                            Some('}') => break,
                            Some(c) if c.is_ascii_digit() || ".-+,/_=rR".contains(c) => {}
                            _ => return Err(format!("malformed macro in {s:?}")),
                        }
                    }
                }
                _ => return Err(format!("a lone % in {s:?} (RFC 7208 section 7.1)")),
            }
        } else if !(('!'..='~').contains(&c) || (exp && c == ' ')) {
            return Err(format!("invalid character in {s:?}"));
        }
    }
    Ok(())
}

/// §7.1 `domain-spec`: a macro-string ending in a macro or in a top label that is not all
/// digits (so `include:192.0.2.1` is an error).
fn check_domain_spec(s: &str) -> Result<(), String> {
    check_macro_string(s, false)?;
    if s.ends_with('}') {
        return Ok(());
    }
    let top = s.trim_end_matches('.').rsplit('.').next().unwrap_or("");
    let ok = !top.is_empty()
        && top.len() <= 63
        && top.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && top.bytes().any(|b| b.is_ascii_alphabetic())
        && !top.starts_with('-')
        && !top.ends_with('-');
    ok.then_some(())
        .ok_or_else(|| format!("{s:?} is not a domain name (RFC 7208 section 7.1)"))
}

/// The values macros stand for (§7.2).
#[derive(Debug, Clone)]
pub struct MacroValues<'a> {
    /// `<sender>`: local-part@domain (`postmaster@` the HELO name for the HELO check).
    pub sender: &'a str,
    pub ip: IpAddr,
    pub helo: &'a str,
    /// Our own host name (`%{r}`).
    pub receiver: &'a str,
    /// The validated name of the client (`%{p}`), when the string needs it.
    pub validated: Option<&'a str>,
    /// Seconds since the epoch (`%{t}`).
    pub now: i64,
}

/// Expands a macro-string for `domain` (the current domain, `%{d}`); `exp` strings may use
/// `%{c}`, `%{r}`, `%{t}`. Domain-specs longer than 253 lose labels from the left (§7.3).
pub fn expand(spec: &str, v: &MacroValues<'_>, domain: &str, exp: bool) -> Result<String, String> {
    check_macro_string(spec, exp)?;
    let (local, sender_domain) = v
        .sender
        .rsplit_once('@')
        .unwrap_or(("postmaster", v.sender));
    let mut out = String::new();
    let mut chars = spec.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('%') => out.push('%'),
            Some('_') => out.push(' '),
            Some('-') => out.push_str("%20"),
            Some('{') => {
                let letter = chars.next().unwrap_or('s');
                let mut digits = String::new();
                let mut reverse = false;
                let mut delimiters = String::new();
                for c in chars.by_ref() {
                    match c {
                        '}' => break,
                        d if d.is_ascii_digit() && delimiters.is_empty() && !reverse => {
                            digits.push(d)
                        }
                        'r' | 'R' if delimiters.is_empty() => reverse = true,
                        d => delimiters.push(d),
                    }
                }
                let value = match letter.to_ascii_lowercase() {
                    's' => v.sender.to_string(),
                    'l' => local.to_string(),
                    'o' => sender_domain.to_string(),
                    'd' => domain.to_string(),
                    'i' => dotted(v.ip),
                    'p' => v.validated.unwrap_or("unknown").to_string(),
                    'v' => if v.ip.is_ipv4() { "in-addr" } else { "ip6" }.to_string(),
                    'h' => v.helo.to_string(),
                    'c' => v.ip.to_string(),
                    'r' => v.receiver.to_string(),
                    't' => v.now.to_string(),
                    _ => String::new(),
                };
                let delimiters = if delimiters.is_empty() {
                    ".".to_string()
                } else {
                    delimiters
                };
                let mut parts: Vec<&str> = value.split(|c| delimiters.contains(c)).collect();
                if reverse {
                    parts.reverse();
                }
                if !digits.is_empty() {
                    let n: usize = digits.parse().map_err(|_| "macro digits overflow")?;
                    if n == 0 {
                        return Err("a macro keeping 0 parts (RFC 7208 section 7.3)".into());
                    }
                    parts = parts.split_off(parts.len().saturating_sub(n));
                }
                let joined = parts.join(".");
                if letter.is_ascii_uppercase() {
                    out.push_str(&url_escape(&joined));
                } else {
                    out.push_str(&joined);
                }
            }
            _ => return Err("a lone %".into()),
        }
    }
    if !exp {
        while out.len() > 253 {
            match out.split_once('.') {
                Some((_, rest)) => out = rest.to_string(),
                None => break,
            }
        }
    }
    Ok(out)
}

/// `%{i}`: dotted IPv4, or IPv6 as 32 dot-separated nibbles (§7.3).
fn dotted(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => v6
            .octets()
            .iter()
            .flat_map(|b| [b >> 4, b & 0xf])
            .map(|n| format!("{n:x}"))
            .collect::<Vec<_>>()
            .join("."),
    }
}

/// RFC 3986 §2.3: unreserved characters stay, everything else is %XX.
fn url_escape(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Whether `ip` is in `net/len`.
fn in_network(ip: IpAddr, net: IpAddr, len: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

/// §4.3: a multi-label domain name with labels of 1–63 octets, 253 at most.
fn valid_domain(d: &str) -> bool {
    let d = d.strip_suffix('.').unwrap_or(d);
    d.len() <= 253 && d.contains('.') && d.split('.').all(|l| !l.is_empty() && l.len() <= 63)
}

/// One SPF question: `check_host(ip, domain, sender)` of §4 with our own name for `%{r}`.
#[derive(Debug, Clone)]
pub struct SpfQuery<'a> {
    pub ip: IpAddr,
    /// The domain whose policy is asked: that of MAIL FROM, or the HELO name.
    pub domain: &'a str,
    /// MAIL FROM (`postmaster@<helo>` for the HELO check or a null sender, §2.4).
    pub sender: &'a str,
    pub helo: &'a str,
    pub receiver: &'a str,
    pub now: i64,
}

/// An evaluation's running state (the limits of §4.6.4 count across includes).
struct Walk<'a, L> {
    lookup: &'a L,
    query: &'a SpfQuery<'a>,
    ip: IpAddr,
    terms: u32,
    voids: u32,
    secure: bool,
}

/// Why evaluation stopped early: a result for the whole check (§4.6.4, §5.2, §4.4).
#[derive(Debug)]
struct Stop(SpfResult, String);

type Step<T> = Result<T, Stop>;

fn perm(why: impl Into<String>) -> Stop {
    Stop(SpfResult::PermError, why.into())
}

/// `check_host()` (§4) for `query`.
pub async fn check_host<L: AuthLookup>(lookup: &L, query: &SpfQuery<'_>) -> SpfOutcome {
    // §5: an IPv4-mapped IPv6 client is an IPv4 client.
    let ip = match query.ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(query.ip, IpAddr::V4),
        v4 => v4,
    };
    let mut walk = Walk {
        lookup,
        query,
        ip,
        terms: 0,
        voids: 0,
        secure: true,
    };
    let domain = query.domain.trim_end_matches('.').to_ascii_lowercase();
    let (result, reason, explanation) = match walk.check(domain.clone(), 0, true).await {
        Ok(done) => done,
        Err(Stop(result, why)) => (result, why, None),
    };
    SpfOutcome {
        result,
        domain,
        reason,
        explanation,
        dnssec: if walk.secure {
            DnssecState::Secure
        } else {
            DnssecState::Insecure
        },
    }
}

type Checked = (SpfResult, String, Option<String>);

/// Whether `name` is `domain` or below it (both lower case).
fn within(name: &str, domain: &str) -> bool {
    name == domain
        || name
            .strip_suffix(domain)
            .is_some_and(|rest| rest.ends_with('.'))
}

impl<'a, L: AuthLookup> Walk<'a, L> {
    fn values<'b>(&'b self, validated: Option<&'b str>) -> MacroValues<'b> {
        MacroValues {
            sender: self.query.sender,
            ip: self.ip,
            helo: self.query.helo,
            receiver: self.query.receiver,
            validated,
            now: self.query.now,
        }
    }

    fn count_term(&mut self) -> Step<()> {
        self.terms += 1;
        if self.terms > MAX_DNS_TERMS {
            return Err(perm(format!(
                "more than {MAX_DNS_TERMS} DNS lookups (RFC 7208 section 4.6.4)"
            )));
        }
        Ok(())
    }

    fn count_void(&mut self, empty: bool) -> Step<()> {
        if empty {
            self.voids += 1;
            if self.voids > MAX_VOID_LOOKUPS {
                return Err(perm(format!(
                    "more than {MAX_VOID_LOOKUPS} void lookups (RFC 7208 section 4.6.4)"
                )));
            }
        }
        Ok(())
    }

    fn note<T>(&mut self, answer: &kurier_dns::Answer<T>) {
        self.secure &= answer.state == DnssecState::Secure;
    }

    /// A DNS answer, or the temperror a failed lookup means (§2.6.6).
    fn answer<T>(
        &mut self,
        name: &str,
        r: Result<kurier_dns::Answer<T>, DnsError>,
    ) -> Step<kurier_dns::Answer<T>> {
        match r {
            Ok(a) => {
                self.note(&a);
                Ok(a)
            }
            Err(DnsError::Invalid(_)) => Ok(kurier_dns::Answer {
                records: Vec::new(),
                state: DnssecState::Insecure,
                nxdomain: true,
            }),
            Err(e) => Err(Stop(SpfResult::TempError, format!("DNS for {name}: {e}"))),
        }
    }

    /// The SPF record of `domain` (§4.4, §4.5): `Ok(None)` when it has none.
    async fn record(&mut self, domain: &str) -> Step<Option<Record>> {
        let r = self.lookup.txt(domain).await;
        let a = self.answer(domain, r)?;
        let spf: Vec<&String> = a.records.iter().filter(|t| is_spf(t)).collect();
        match spf.as_slice() {
            [] => Ok(None),
            [one] => Record::parse(one)
                .map(Some)
                .map_err(|e| perm(format!("{domain}: {e}"))),
            _ => Err(perm(format!(
                "{domain} publishes more than one SPF record (RFC 7208 section 4.5)"
            ))),
        }
    }

    /// §4 for one domain; `top`: its `exp=` is wanted (not inside an include).
    fn check(
        &mut self,
        domain: String,
        depth: u32,
        top: bool,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Step<Checked>> + Send + '_>>
    where
        L: 'a,
    {
        Box::pin(async move {
            // The term limit bounds recursion already; this guards against a bug in counting.
            if depth > MAX_DNS_TERMS {
                return Err(perm("includes nested too deeply"));
            }
            if !valid_domain(&domain) {
                return Ok((
                    SpfResult::None,
                    format!("{domain:?} is not a domain name"),
                    None,
                ));
            }
            let Some(record) = self.record(&domain).await? else {
                return Ok((SpfResult::None, format!("{domain} has no SPF record"), None));
            };
            for d in &record.directives {
                if self.matches(&d.mechanism, &domain, depth).await? {
                    let result = d.qualifier.result();
                    let explanation = match (&record.exp, result, top) {
                        (Some(exp), SpfResult::Fail, true) => self.explain(exp, &domain).await,
                        _ => None,
                    };
                    return Ok((result, format!("{domain}: {} matched", d.text), explanation));
                }
            }
            if let Some(target) = &record.redirect {
                self.count_term()?;
                let target = self.expand_domain(target, &domain).await?;
                let (result, why, exp) = self.check(target.clone(), depth + 1, top).await?;
                if result == SpfResult::None {
                    return Err(perm(format!(
                        "redirect to {target}, which has no SPF record"
                    )));
                }
                return Ok((result, why, exp));
            }
            Ok((
                SpfResult::Neutral,
                format!("{domain}: no mechanism matched"),
                None,
            ))
        })
    }

    /// The client's validated name for `%{p}` (§7.3), only when a string uses it.
    async fn validated_name(&mut self, spec: &str, domain: &str) -> Option<String> {
        if !spec.to_ascii_lowercase().contains("%{p") {
            return None;
        }
        let names = self.validated_names().await;
        let target = domain.to_ascii_lowercase();
        names
            .iter()
            .find(|n| within(n, &target))
            .or(names.first())
            .cloned()
    }

    /// PTR names of the client whose addresses lead back to it (§5.5); DNS errors skip a name.
    async fn validated_names(&mut self) -> Vec<String> {
        let Ok(names) = self.lookup.ptr(self.ip).await else {
            return Vec::new();
        };
        self.note(&names);
        let mut out = Vec::new();
        for name in names.records.into_iter().take(MAX_NAMES) {
            if self.leads_back(&name).await {
                out.push(name);
            }
        }
        out
    }

    /// Whether an address of `name` is the client's (§5.5); a DNS error is a no.
    async fn leads_back(&mut self, name: &str) -> bool {
        match self.lookup.ips(name, self.ip.is_ipv6()).await {
            Ok(a) if a.records.contains(&self.ip) => {
                self.note(&a);
                true
            }
            _ => false,
        }
    }

    /// The domain a mechanism names: its expanded domain-spec, or the current domain (§5).
    async fn target(&mut self, spec: Option<&str>, domain: &str) -> Step<String> {
        match spec {
            Some(s) => self.expand_domain(s, domain).await,
            None => Ok(domain.to_string()),
        }
    }

    /// `expand` with this check's values, `%{p}` looked up only when `spec` uses it.
    async fn expand_here(&mut self, spec: &str, domain: &str, exp: bool) -> Result<String, String> {
        let validated = self.validated_name(spec, domain).await;
        expand(spec, &self.values(validated.as_deref()), domain, exp)
    }

    async fn expand_domain(&mut self, spec: &str, domain: &str) -> Step<String> {
        self.expand_here(spec, domain, false).await.map_err(perm)
    }

    /// `exp=` (§6.2): its TXT record, expanded; any problem means no explanation.
    async fn explain(&mut self, spec: &str, domain: &str) -> Option<String> {
        let name = self.expand_domain(spec, domain).await.ok()?;
        let txt = self.lookup.txt(&name).await.ok()?;
        let [one] = txt.records.as_slice() else {
            return None;
        };
        self.expand_here(one, domain, true).await.ok()
    }

    /// The addresses of `name` in the client's family; void lookups are counted.
    async fn addresses(&mut self, name: &str) -> Step<Vec<IpAddr>> {
        let r = self.lookup.ips(name, self.ip.is_ipv6()).await;
        let a = self.answer(name, r)?;
        self.count_void(a.records.is_empty())?;
        Ok(a.records)
    }

    fn target_matches(&self, addresses: &[IpAddr], v4: u8, v6: u8) -> bool {
        let len = if self.ip.is_ipv4() { v4 } else { v6 };
        addresses.iter().any(|a| in_network(self.ip, *a, len))
    }

    async fn matches(&mut self, m: &Mechanism, domain: &str, depth: u32) -> Step<bool> {
        match m {
            Mechanism::All => Ok(true),
            Mechanism::Ip4(net, len) => Ok(in_network(self.ip, IpAddr::V4(*net), *len)),
            Mechanism::Ip6(net, len) => Ok(in_network(self.ip, IpAddr::V6(*net), *len)),
            Mechanism::A {
                domain: spec,
                v4,
                v6,
            } => {
                self.count_term()?;
                let name = self.target(spec.as_deref(), domain).await?;
                let addresses = self.addresses(&name).await?;
                Ok(self.target_matches(&addresses, *v4, *v6))
            }
            Mechanism::Mx {
                domain: spec,
                v4,
                v6,
            } => {
                self.count_term()?;
                let name = self.target(spec.as_deref(), domain).await?;
                let r = self.lookup.mx(&name).await;
                let mut mx = self.answer(&name, r)?;
                self.count_void(mx.records.is_empty())?;
                if mx.records.len() > MAX_NAMES {
                    return Err(perm(format!(
                        "{name} has more than {MAX_NAMES} MX records (RFC 7208 section 4.6.4)"
                    )));
                }
                mx.records.sort_by_key(|m| m.preference);
                for host in mx.records.iter().filter(|m| m.exchange != ".") {
                    let addresses = self.addresses(&host.exchange).await?;
                    if self.target_matches(&addresses, *v4, *v6) {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
            Mechanism::Ptr(spec) => {
                self.count_term()?;
                let target = self
                    .target(spec.as_deref(), domain)
                    .await?
                    .to_ascii_lowercase();
                // §5.5: a failed PTR lookup is no match; an empty one is a void lookup.
                let names = match self.lookup.ptr(self.ip).await {
                    Ok(a) => a,
                    Err(_) => return Ok(false),
                };
                self.note(&names);
                self.count_void(names.records.is_empty())?;
                for name in names.records.iter().take(MAX_NAMES) {
                    if within(name, &target) && self.leads_back(name).await {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
            Mechanism::Exists(spec) => {
                self.count_term()?;
                let name = self.expand_domain(spec, domain).await?;
                // §5.7: an A lookup whatever the client's family.
                let r = self.lookup.ips(&name, false).await;
                let a = self.answer(&name, r)?;
                self.count_void(a.records.is_empty())?;
                Ok(!a.records.is_empty())
            }
            Mechanism::Include(spec) => {
                self.count_term()?;
                let target = self.expand_domain(spec, domain).await?;
                // §5.2's table.
                let (result, why, _) = self.check(target.clone(), depth + 1, false).await?;
                match result {
                    SpfResult::Pass => Ok(true),
                    SpfResult::Fail | SpfResult::SoftFail | SpfResult::Neutral => Ok(false),
                    SpfResult::TempError => Err(Stop(SpfResult::TempError, why)),
                    SpfResult::PermError => Err(perm(why)),
                    SpfResult::None => {
                        Err(perm(format!("include:{target}, which has no SPF record")))
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests fail loudly by design
    use super::*;

    fn values(ip: &str) -> MacroValues<'static> {
        MacroValues {
            sender: "strong-bad@email.example.com",
            ip: ip.parse().unwrap(),
            helo: "mx.example.org",
            receiver: "mx.kurier.test",
            validated: None,
            now: 1_000_000,
        }
    }

    #[test]
    fn rfc7208_section_7_4_macro_examples() {
        let v = values("192.0.2.3");
        let d = "email.example.com";
        let e = |s: &str| expand(s, &v, d, false).unwrap();
        assert_eq!(e("%{s}"), "strong-bad@email.example.com");
        assert_eq!(e("%{o}"), "email.example.com");
        assert_eq!(e("%{d}"), "email.example.com");
        assert_eq!(e("%{d4}"), "email.example.com");
        assert_eq!(e("%{d3}"), "email.example.com");
        assert_eq!(e("%{d2}"), "example.com");
        assert_eq!(e("%{d1}"), "com");
        assert_eq!(e("%{dr}"), "com.example.email");
        assert_eq!(e("%{d2r}"), "example.email");
        assert_eq!(e("%{l}"), "strong-bad");
        assert_eq!(e("%{l-}"), "strong.bad");
        assert_eq!(e("%{lr}"), "strong-bad");
        assert_eq!(e("%{lr-}"), "bad.strong");
        assert_eq!(e("%{l1r-}"), "strong");
        assert_eq!(
            e("%{ir}.%{v}._spf.%{d2}"),
            "3.2.0.192.in-addr._spf.example.com"
        );
        assert_eq!(e("%{lr-}.lp._spf.%{d2}"), "bad.strong.lp._spf.example.com");
        assert_eq!(
            e("%{lr-}.lp.%{ir}.%{v}._spf.%{d2}"),
            "bad.strong.lp.3.2.0.192.in-addr._spf.example.com"
        );
        assert_eq!(
            e("%{d2}.trusted-domains.example.net"),
            "example.com.trusted-domains.example.net"
        );
        let v6 = values("2001:db8::cb01");
        assert_eq!(
            expand("%{ir}.%{v}._spf.%{d2}", &v6, d, false).unwrap(),
            "1.0.b.c.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6._spf.example.com"
        );
        assert_eq!(e("%%%_%-"), "% %20");
        assert_eq!(e("%{S}"), "strong-bad%40email.example.com");
        assert!(expand("%{d0}", &v, d, false).is_err());
        assert!(expand("%{c}", &v, d, false).is_err());
        assert_eq!(
            expand("%{c} %{r}", &v, d, true).unwrap(),
            "192.0.2.3 mx.kurier.test"
        );
        // §7.3: a long result loses labels from the left.
        let long = format!(
            "{}.%{{d}}",
            "a".repeat(60) + "." + &"b".repeat(60) + "." + &"c".repeat(60) + "." + &"e".repeat(60)
        );
        assert!(e(&long).len() <= 253);
    }

    #[test]
    fn records_parse_completely_or_not_at_all() {
        let r = Record::parse("v=spf1 +a mx/24 -ip4:192.0.2.0/24 ip6:2001:db8::/32 a:%{d}/28//64 ptr include:_spf.example.com exists:%{ir}.x.example ~all foo=bar").unwrap();
        assert_eq!(r.directives.len(), 9);
        assert_eq!(
            r.directives[4].mechanism,
            Mechanism::A {
                domain: Some("%{d}".into()),
                v4: 28,
                v6: 64
            }
        );
        assert!(
            Record::parse("v=spf1 redirect=_spf.example.com")
                .unwrap()
                .redirect
                .is_some()
        );
        assert!(Record::parse("v=spf10 -all").is_err());
        for bad in [
            "v=spf1 ip4:192.0.2.0/33",
            "v=spf1 ip4:192.0.2.0/024",
            "v=spf1 ip4:300.0.0.1",
            "v=spf1 include:",
            "v=spf1 include:192.0.2.1",
            "v=spf1 foo:bar",
            "v=spf1 -all/8",
            "v=spf1 a:%{x}",
            "v=spf1 a:50%.example",
            "v=spf1 redirect=a.example redirect=b.example",
            "v=spf1 exp=a.example exp=b.example",
            "v=spf1 ip6:2001:db8::/129",
        ] {
            assert!(Record::parse(bad).is_err(), "{bad}");
        }
        assert!(is_spf("V=SPF1") && is_spf("v=spf1 -all") && !is_spf("v=spf1-all"));
    }

    #[test]
    fn networks() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(in_network(ip("192.0.2.77"), ip("192.0.2.0"), 24));
        assert!(!in_network(ip("192.0.3.1"), ip("192.0.2.0"), 24));
        assert!(in_network(ip("10.1.2.3"), ip("0.0.0.0"), 0));
        assert!(in_network(ip("2001:db8::1"), ip("2001:db8::"), 32));
        assert!(!in_network(ip("2001:db9::1"), ip("2001:db8::"), 32));
        assert!(!in_network(ip("192.0.2.1"), ip("::"), 0));
    }
}
