//! The world's DNS: a private root, `test.` and the test's zones, signed offline with
//! `ldns-signzone` (so that breakage can be made on purpose), served by NSD, and a validating
//! unbound whose only trust anchor is the private root.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::daemon::{Daemon, tcp_open};
use crate::net::{Net, hosts};
use crate::{WorldError, run};

/// How a zone is signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signing {
    /// ECDSA P-256 / SHA-256, DNSSEC algorithm 13.
    Ecdsa,
    /// RSA/SHA-256 with 3072-bit keys, algorithm 8.
    Rsa,
    /// ECDSA P-384 / SHA-384, algorithm 14.
    Ecdsa384,
    /// Ed25519, algorithm 15.
    Ed25519,
    /// Ed448, algorithm 16.
    Ed448,
    /// Not signed, and no DS at the parent: answers are provably insecure.
    Unsigned,
}

/// A deliberate fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Breakage {
    /// The RRSIG over the TLSA RRset does not verify: TLSA answers are bogus.
    BadTlsaRrsig,
    /// Every signature expired three days ago: all answers are bogus.
    ExpiredRrsig,
    /// The RRSIG over the DNSKEY RRset does not verify: the whole zone is bogus.
    BadDnskeySig,
    /// Signed, but the parent has no DS: answers are insecure, not bogus.
    MissingDs,
    /// The RRSIGs over this type (e.g. "DNSKEY", "MX", "A", "TLSA") expired three days ago;
    /// the rest of the zone is fine.
    ExpiredRrsigOn(&'static str),
    /// The RRSIGs over this type become valid only in three days.
    FutureRrsigOn(&'static str),
    /// The parent's DS is that of a key the zone does not have.
    DsWithoutKey,
    /// The zone serves no DNSKEY RRset (signatures and NSEC records stay).
    MissingDnskey,
    /// The parent's DS names algorithm 100, which no validator implements: by RFC 4035 §5.2
    /// and RFC 6840 §5.2 the zone is insecure, not bogus.
    UnsupportedDsAlgorithm,
    /// The signatures over the denial records (NSEC or NSEC3) do not verify.
    ForgedDenial,
    /// The denial records (NSEC or NSEC3) are gone: NXDOMAIN and NODATA come without proof.
    MissingDenial,
    /// The TLSA records and their signatures are removed, the NSEC record still lists TLSA:
    /// a stripped TLSA must not become "no TLSA".
    StrippedTlsa,
}

/// One zone of the world, a direct child of `test.` (e.g. `dane.test`).
#[derive(Debug, Clone)]
pub struct Zone {
    pub name: String,
    pub signing: Signing,
    pub breakage: Option<Breakage>,
    /// Sign with NSEC3 and this many extra hash iterations instead of NSEC.
    pub nsec3_iterations: Option<u16>,
    /// Sign with a KSK (the DNSKEY RRset) and a ZSK (the rest) instead of one key (CSK).
    pub split_keys: bool,
    /// The zone's `$TTL` (and so how long resolvers cache its records), in seconds.
    pub ttl: u32,
    /// (owner relative to the zone or `@`, type, rdata)
    records: Vec<(String, String, String)>,
}

impl Zone {
    fn new(name: &str, signing: Signing) -> Zone {
        Zone {
            name: name.trim_end_matches('.').to_ascii_lowercase(),
            signing,
            breakage: None,
            nsec3_iterations: None,
            split_keys: false,
            ttl: 60,
            records: Vec::new(),
        }
    }

    pub fn signed(name: &str) -> Zone {
        Zone::new(name, Signing::Ecdsa)
    }

    pub fn signed_rsa(name: &str) -> Zone {
        Zone::new(name, Signing::Rsa)
    }

    pub fn unsigned(name: &str) -> Zone {
        Zone::new(name, Signing::Unsigned)
    }

    /// Signed with the given algorithm.
    pub fn signed_with(name: &str, signing: Signing) -> Zone {
        Zone::new(name, signing)
    }

    /// A KSK signs the DNSKEY RRset, a ZSK the rest (instead of one combined key).
    pub fn ksk_zsk(mut self) -> Zone {
        self.split_keys = true;
        self
    }

    /// Signs with NSEC3 (no salt) and `iterations` extra hash iterations instead of NSEC.
    pub fn nsec3(mut self, iterations: u16) -> Zone {
        self.nsec3_iterations = Some(iterations);
        self
    }

    /// The records' TTL (default 60 s); short ones make rollover tests quick.
    pub fn ttl(mut self, secs: u32) -> Zone {
        self.ttl = secs;
        self
    }

    pub fn broken(mut self, how: Breakage) -> Zone {
        self.breakage = Some(how);
        self
    }

    /// Replaces the world's placeholders in every record (see `WorldBuilder::build`).
    pub(crate) fn substitute(mut self, net: &Net, values: &[(String, String)]) -> Zone {
        // Owners: `{rev:N}` is 127.A.B.N reversed (N.B.A.127), as DNS lists name addresses.
        for (owner, _, _) in &mut self.records {
            while let Some(start) = owner.find("{rev:") {
                let Some(len) = owner[start..].find('}') else {
                    break;
                };
                let host: u8 = owner[start + 5..start + len].parse().unwrap_or(0);
                let o = net.ip(host).octets();
                let reversed = format!("{}.{}.{}.{}", o[3], o[2], o[1], o[0]);
                owner.replace_range(start..=start + len, &reversed);
            }
        }
        for (_, _, rdata) in &mut self.records {
            for (k, v) in values {
                *rdata = rdata.replace(k, v);
            }
            while let Some(start) = rdata.find("{ip:") {
                let Some(len) = rdata[start..].find('}') else {
                    break;
                };
                let host: u8 = rdata[start + 4..start + len].parse().unwrap_or(0);
                rdata.replace_range(start..=start + len, &net.ip(host).to_string());
            }
        }
        self
    }

    /// Adds a record, e.g. `.record("@", "MX", "10 mx")` or `.record("_25._tcp.mx", "TLSA", "3 1 1 ab…")`.
    pub fn record(mut self, owner: &str, rtype: &str, rdata: &str) -> Zone {
        self.records
            .push((owner.to_string(), rtype.to_string(), rdata.to_string()));
        self
    }
}

/// Where the world's DNS answers, and what a validator must trust.
#[derive(Debug, Clone)]
pub struct Dns {
    /// NSD: authoritative, no recursion.
    pub authoritative: SocketAddr,
    /// unbound: recursive and validating.
    pub resolver: SocketAddr,
    /// A second unbound that recurses without validating (`module-config: "iterator"`): it
    /// passes bogus data through, so an in-process validator's own verdict can be tested.
    pub plain_resolver: SocketAddr,
    /// The root's DS record (unbound `trust-anchor-file` format).
    pub trust_anchor_ds: PathBuf,
    /// The root's DNSKEY record (for in-process validators such as hickory).
    pub trust_anchor_dnskey: PathBuf,
    /// A resolv.conf naming the resolver, with `options trust-ad` (for Postfix and tools).
    pub resolv_conf: PathBuf,
}

impl Dns {
    /// `dig` through the world's resolver; returns its output (e.g. to check for the `ad` flag).
    pub fn dig(&self, name: &str, rtype: &str) -> Result<String, WorldError> {
        let out = Command::new("dig")
            .args([
                &format!("@{}", self.resolver.ip()),
                "-p",
                &self.resolver.port().to_string(),
            ])
            .args(["+dnssec", "+time=5", "+tries=1", name, rtype])
            .output()
            .map_err(|e| {
                WorldError(format!(
                    "cannot run dig ({e}): install the Debian package dnsutils"
                ))
            })?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// `YYYYMMDDhhmmss` in UTC, the time format of ldns-signzone's -i/-e.
fn dnssec_time(t: i64) -> String {
    let c = kurier_smtp::received::UtcTime::from_unix(t);
    format!(
        "{:04}{:02}{:02}{:02}{:02}{:02}",
        c.year, c.month, c.day, c.hour, c.minute, c.second
    )
}

fn zone_text(origin: &str, extra: &str) -> String {
    zone_text_with(origin, 60, 1, extra)
}

fn zone_text_with(origin: &str, ttl: u32, serial: u32, extra: &str) -> String {
    let origin = if origin == "." {
        ".".to_string()
    } else {
        format!("{origin}.")
    };
    format!(
        "$ORIGIN {origin}\n$TTL {ttl}\n@ IN SOA ns.test. hostmaster.test. {serial} 3600 600 86400 {ttl}\n@ IN NS ns.test.\n{extra}"
    )
}

/// A served zone that can be changed while the world runs: its records and the keys it is
/// signed with (signing again with the same keys keeps the parent's DS true).
#[derive(Debug, Clone)]
pub(crate) struct LiveZone {
    name: String,
    ttl: u32,
    serial: u32,
    records: String,
    file: String,
    /// Empty for an unsigned zone.
    keys: Vec<String>,
    signed: String,
    nsec3_iterations: Option<u16>,
}

impl LiveZone {
    /// Adds a record, writes the zone again and signs it (NSD reads it on SIGHUP).
    pub(crate) fn add(
        &mut self,
        dir: &Path,
        owner: &str,
        rtype: &str,
        rdata: &str,
    ) -> Result<(), WorldError> {
        let _ = writeln!(self.records, "{owner} IN {rtype} {rdata}");
        self.serial += 1;
        std::fs::write(
            dir.join(&self.file),
            zone_text_with(&self.name, self.ttl, self.serial, &self.records),
        )?;
        if !self.keys.is_empty() {
            sign_with(
                dir,
                &self.name,
                (&self.file, &self.signed),
                &self.keys,
                validity(Validity::Current),
                self.nsec3_iterations,
            )?;
        }
        Ok(())
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }
}

/// Makes a key for `origin`; returns its file base name (`K<origin>+<alg>+<tag>`).
fn keygen(dir: &Path, origin: &str, signing: Signing, ksk: bool) -> Result<String, WorldError> {
    let mut args: Vec<&str> = match signing {
        Signing::Rsa => vec!["-a", "RSASHA256", "-b", "3072"],
        Signing::Ecdsa384 => vec!["-a", "ECDSAP384SHA384"],
        Signing::Ed25519 => vec!["-a", "ED25519"],
        Signing::Ed448 => vec!["-a", "ED448"],
        Signing::Ecdsa | Signing::Unsigned => vec!["-a", "ECDSAP256SHA256"],
    };
    if ksk {
        args.push("-k");
    }
    args.push(origin);
    Ok(run("ldns-keygen", &args, dir, "ldnsutils")?
        .trim()
        .to_string())
}

/// Signs `dir/<file>` into `dir/<out>` with `keys` (KSKs sign the DNSKEY RRset, the others
/// the rest), signatures valid from `inception` to `expiration` (Unix times).
fn sign_with(
    dir: &Path,
    origin: &str,
    (file, out): (&str, &str),
    keys: &[String],
    (inception, expiration): (i64, i64),
    nsec3_iterations: Option<u16>,
) -> Result<(), WorldError> {
    let (i, e) = (dnssec_time(inception), dnssec_time(expiration));
    let mut args = vec!["-i", &i, "-e", &e, "-f", out, "-o", origin];
    let iterations = nsec3_iterations.map(|n| n.to_string());
    if let Some(n) = &iterations {
        args.extend(["-n", "-t", n.as_str()]);
    }
    args.push(file);
    args.extend(keys.iter().map(String::as_str));
    run("ldns-signzone", &args, dir, "ldnsutils")?;
    Ok(())
}

/// Signs a parent zone of the world (`test.` or the root) in `dir/<file>` with a new ECDSA
/// key, validly; returns the signed file name, the key's DS line and its DNSKEY line.
fn sign_parent(
    dir: &Path,
    origin: &str,
    file: &str,
) -> Result<(String, String, String), WorldError> {
    let base = keygen(dir, origin, Signing::Ecdsa, true)?;
    let signed = format!("{file}.signed");
    sign_with(
        dir,
        origin,
        (file, &signed),
        std::slice::from_ref(&base),
        validity(Validity::Current),
        None,
    )?;
    let (ds, dnskey) = key_records(dir, &base)?;
    Ok((signed, ds, dnskey))
}

/// The DS and DNSKEY lines of a key made by `keygen`.
fn key_records(dir: &Path, base: &str) -> Result<(String, String), WorldError> {
    let ds = std::fs::read_to_string(dir.join(format!("{base}.ds")))?;
    let dnskey = std::fs::read_to_string(dir.join(format!("{base}.key")))?;
    Ok((ds.trim().to_string(), dnskey.trim().to_string()))
}

#[derive(Clone, Copy)]
enum Validity {
    Current,
    Expired,
    Future,
}

/// (inception, expiration) for signatures valid now, expired yesterday, valid from tomorrow.
fn validity(v: Validity) -> (i64, i64) {
    let now = unix_now();
    match v {
        // Validators allow clock skew of up to a day (unbound: val-sig-skew-max), so the
        // broken windows end or begin three days away.
        Validity::Current => (now - 3600, now + 30 * 86400),
        Validity::Expired => (now - 40 * 86400, now - 3 * 86400),
        Validity::Future => (now + 3 * 86400, now + 33 * 86400),
    }
}

/// A signed zone file, the DS line its parent publishes (`None`: no DS) and the keys.
type SignedZone = (String, Option<String>, Vec<String>);

/// Signs a test zone as `z` asks, faults included.
fn sign_zone(dir: &Path, z: &Zone, file: &str) -> Result<SignedZone, WorldError> {
    let origin = z.name.as_str();
    let ksk = keygen(dir, origin, z.signing, true)?;
    let mut keys = vec![ksk.clone()];
    if z.split_keys {
        keys.push(keygen(dir, origin, z.signing, false)?);
    }
    let signed = format!("{file}.signed");
    let when = match z.breakage {
        Some(Breakage::ExpiredRrsig) => Validity::Expired,
        _ => Validity::Current,
    };
    sign_with(
        dir,
        origin,
        (file, &signed),
        &keys,
        validity(when),
        z.nsec3_iterations,
    )?;
    let path = dir.join(&signed);
    let (mut ds, _) = key_records(dir, &ksk)?;
    match z.breakage {
        Some(Breakage::BadTlsaRrsig) => corrupt_rrsig(&path, "TLSA", false)?,
        Some(Breakage::BadDnskeySig) => corrupt_rrsig(&path, "DNSKEY", false)?,
        Some(b @ (Breakage::ExpiredRrsigOn(t) | Breakage::FutureRrsigOn(t))) => {
            let when = match b {
                Breakage::FutureRrsigOn(_) => Validity::Future,
                _ => Validity::Expired,
            };
            let other = format!("{file}.{t}.signed");
            sign_with(
                dir,
                origin,
                (file, &other),
                &keys,
                validity(when),
                z.nsec3_iterations,
            )?;
            let replacement: Vec<String> = std::fs::read_to_string(dir.join(&other))?
                .lines()
                .filter(|l| covers(l, &[t]))
                .map(str::to_string)
                .collect();
            if replacement.is_empty() {
                return Err(WorldError(format!(
                    "{origin} has no RRSIG over {t} to replace"
                )));
            }
            edit_zone(&path, |l| !covers(l, &[t]), &replacement)?;
        }
        Some(Breakage::ForgedDenial) => {
            corrupt_rrsig(&path, "NSEC", true)?;
            corrupt_rrsig(&path, "NSEC3", true)?;
        }
        Some(Breakage::MissingDenial) => {
            edit_zone(
                &path,
                |l| !is_type(l, &["NSEC", "NSEC3"]) && !covers(l, &["NSEC", "NSEC3"]),
                &[],
            )?;
        }
        Some(Breakage::MissingDnskey) => {
            edit_zone(
                &path,
                |l| !is_type(l, &["DNSKEY"]) && !covers(l, &["DNSKEY"]),
                &[],
            )?;
        }
        Some(Breakage::StrippedTlsa) => {
            edit_zone(
                &path,
                |l| !is_type(l, &["TLSA"]) && !covers(l, &["TLSA"]),
                &[],
            )?;
        }
        Some(Breakage::DsWithoutKey) => {
            let stranger = keygen(dir, origin, z.signing, true)?;
            ds = key_records(dir, &stranger)?.0;
        }
        Some(Breakage::UnsupportedDsAlgorithm) => {
            // owner [TTL] IN DS key-tag algorithm digest-type digest
            let mut f: Vec<String> = ds.split_whitespace().map(str::to_string).collect();
            let Some(at) = f
                .iter()
                .position(|x| x == "DS")
                .filter(|at| f.len() > at + 4)
            else {
                return Err(WorldError(format!("unexpected DS line {ds:?}")));
            };
            f[at + 2] = "100".into();
            ds = f.join(" ");
        }
        Some(Breakage::MissingDs) => return Ok((signed, None, keys)),
        Some(Breakage::ExpiredRrsig) | None => {}
    }
    Ok((signed, Some(ds), keys))
}

/// Fields of a zone-file line as ldns writes it: owner, TTL, class, type, rdata…
fn fields(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
}

fn is_type(line: &str, types: &[&str]) -> bool {
    fields(line).get(3).is_some_and(|t| types.contains(t))
}

/// An RRSIG over one of `types`.
fn covers(line: &str, types: &[&str]) -> bool {
    let f = fields(line);
    f.len() > 5 && f[3] == "RRSIG" && types.contains(&f[4])
}

/// Keeps the lines `keep` accepts and appends `extra`.
fn edit_zone(path: &Path, keep: impl Fn(&str) -> bool, extra: &[String]) -> Result<(), WorldError> {
    let text = std::fs::read_to_string(path)?;
    let mut out: Vec<String> = text
        .lines()
        .filter(|l| keep(l))
        .map(str::to_string)
        .collect();
    out.extend(extra.iter().cloned());
    std::fs::write(path, out.join("\n") + "\n")?;
    Ok(())
}

/// Changes one character of the signature of the RRSIG that covers `covered` in a signed file
/// (of every such RRSIG with `all`). A type the zone has no RRSIG over is an error, except
/// with `all` (NSEC3 in an NSEC zone).
fn corrupt_rrsig(path: &Path, covered: &str, all: bool) -> Result<(), WorldError> {
    let text = std::fs::read_to_string(path)?;
    let mut done = false;
    let out: Vec<String> = text
        .lines()
        .map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            if (all || !done) && f.len() > 5 && f[3] == "RRSIG" && f[4] == covered {
                done = true;
                let sig = f[f.len() - 1];
                let mut chars: Vec<char> = sig.chars().collect();
                let k = chars.len() / 2;
                chars[k] = if chars[k] == 'A' { 'B' } else { 'A' };
                let mut g: Vec<String> = f.iter().map(|s| s.to_string()).collect();
                let n = g.len();
                g[n - 1] = chars.into_iter().collect();
                g.join("\t")
            } else {
                line.to_string()
            }
        })
        .collect();
    if !done && !all {
        return Err(WorldError(format!(
            "no RRSIG over {covered} in {} to break",
            path.display()
        )));
    }
    std::fs::write(path, out.join("\n") + "\n")?;
    Ok(())
}

/// What `start` started: the DNS facts, the daemons (NSD first) and the zones that can be
/// changed while running (those without a deliberate fault).
pub(crate) type Started = (Dns, Vec<Daemon>, Vec<LiveZone>);

/// Writes, signs and serves the zones.
pub(crate) fn start(net: &Net, dir: &Path, zones: &[Zone]) -> Result<Started, WorldError> {
    std::fs::create_dir_all(dir)?;
    let ns_ip = net.ip(hosts::AUTHORITATIVE);
    let mut served: Vec<(String, String)> = Vec::new(); // (zone, file)
    let mut test_zone_extra = format!("ns IN A {ns_ip}\n");
    let mut live = Vec::new();

    for z in zones {
        if !z.name.ends_with(".test") || z.name.matches('.').count() != 1 {
            return Err(WorldError(format!(
                "zone {:?}: the world serves direct children of test. only",
                z.name
            )));
        }
        let mut records = String::new();
        for (owner, rtype, rdata) in &z.records {
            let _ = writeln!(records, "{owner} IN {rtype} {rdata}");
        }
        let file = format!("{}.zone", z.name);
        std::fs::write(dir.join(&file), zone_text_with(&z.name, z.ttl, 1, &records))?;
        let _ = writeln!(test_zone_extra, "{}. IN NS ns.test.", z.name);
        let (signed, keys) = if z.signing == Signing::Unsigned {
            (file.clone(), Vec::new())
        } else {
            let (signed, ds, keys) = sign_zone(dir, z, &file)?;
            if let Some(ds) = ds {
                let _ = writeln!(test_zone_extra, "{ds}");
            }
            (signed, keys)
        };
        served.push((z.name.clone(), signed.clone()));
        if z.breakage.is_none() {
            live.push(LiveZone {
                name: z.name.clone(),
                ttl: z.ttl,
                serial: 1,
                records,
                file,
                keys,
                signed,
                nsec3_iterations: z.nsec3_iterations,
            });
        }
    }

    std::fs::write(dir.join("test.zone"), zone_text("test", &test_zone_extra))?;
    let (test_signed, test_ds, _) = sign_parent(dir, "test", "test.zone")?;
    served.push(("test".into(), test_signed));
    let root_extra = format!("test. IN NS ns.test.\nns.test. IN A {ns_ip}\n{test_ds}\n");
    std::fs::write(dir.join("root.zone"), zone_text(".", &root_extra))?;
    let (root_signed, root_ds, root_dnskey) = sign_parent(dir, ".", "root.zone")?;
    served.push((".".into(), root_signed));

    let trust_anchor_ds = dir.join("root.ds");
    std::fs::write(&trust_anchor_ds, format!("{root_ds}\n"))?;
    let trust_anchor_dnskey = dir.join("root.dnskey");
    std::fs::write(&trust_anchor_dnskey, format!("{root_dnskey}\n"))?;

    let authoritative = SocketAddr::from((ns_ip, 53));
    let resolver = net.addr(hosts::RESOLVER, 53);
    let nsd = start_nsd(dir, authoritative, &served)?;
    let unbound = start_unbound(
        dir,
        "unbound",
        resolver,
        authoritative,
        Some(&trust_anchor_ds),
    )?;
    let plain_resolver = net.addr(hosts::PLAIN_RESOLVER, 53);
    let plain = start_unbound(dir, "unbound-plain", plain_resolver, authoritative, None)?;
    let resolv_conf = dir.join("resolv.conf");
    std::fs::write(
        &resolv_conf,
        format!("nameserver {}\noptions trust-ad\n", resolver.ip()),
    )?;
    Ok((
        Dns {
            authoritative,
            resolver,
            plain_resolver,
            trust_anchor_ds,
            trust_anchor_dnskey,
            resolv_conf,
        },
        vec![nsd, unbound, plain],
        live,
    ))
}

fn start_nsd(
    dir: &Path,
    addr: SocketAddr,
    zones: &[(String, String)],
) -> Result<Daemon, WorldError> {
    let d = dir.display();
    let mut conf = format!(
        "server:\n  ip-address: {ip}\n  port: {port}\n  username: \"\"\n  chroot: \"\"\n  zonesdir: \"{d}\"\n  \
         pidfile: \"{d}/nsd.pid\"\n  database: \"\"\n  xfrdfile: \"{d}/xfrd.state\"\n  zonelistfile: \"{d}/zone.list\"\n  \
         server-count: 1\n  verbosity: 1\n  hide-version: yes\n  reuseport: no\nremote-control:\n  control-enable: no\n",
        ip = addr.ip(),
        port = addr.port()
    );
    for (name, file) in zones {
        let name = if name == "." { "." } else { name.as_str() };
        let _ = write!(conf, "zone:\n  name: \"{name}\"\n  zonefile: \"{file}\"\n");
    }
    let path = dir.join("nsd.conf");
    std::fs::write(&path, conf)?;
    let mut cmd = Command::new("nsd");
    cmd.arg("-d").arg("-c").arg(&path);
    let mut daemon = Daemon::spawn("nsd", cmd, dir.join("nsd.log"), "nsd")?;
    daemon.wait_until("listening", || tcp_open(addr))?;
    Ok(daemon)
}

fn start_unbound(
    dir: &Path,
    name: &str,
    addr: SocketAddr,
    authoritative: SocketAddr,
    anchor: Option<&Path>,
) -> Result<Daemon, WorldError> {
    let d = dir.display();
    std::fs::write(
        dir.join("root.hints"),
        format!(
            ". 3600 IN NS ns.test.\nns.test. 3600 IN A {}\n",
            authoritative.ip()
        ),
    )?;
    // With a trust anchor it validates; without, it only recurses (and passes bogus data on).
    let validation = match anchor {
        Some(a) => format!(
            "  trust-anchor-file: \"{}\"\n  module-config: \"validator iterator\"\n  harden-dnssec-stripped: yes\n",
            a.display()
        ),
        None => "  module-config: \"iterator\"\n".to_string(),
    };
    let conf = format!(
        "server:\n  interface: {ip}\n  port: {port}\n  outgoing-interface: {ip}\n  do-ip6: no\n  \
         access-control: 127.0.0.0/8 allow\n  chroot: \"\"\n  username: \"\"\n  directory: \"{d}\"\n  \
         pidfile: \"{d}/{name}.pid\"\n  use-syslog: no\n  logfile: \"\"\n  verbosity: 1\n  val-log-level: 2\n  \
         do-not-query-localhost: no\n  root-hints: \"{d}/root.hints\"\n{validation}  \
         local-zone: \"test.\" nodefault\n  qname-minimisation: no\n  \
         num-threads: 1\n  so-reuseport: no\n  cache-max-ttl: 60\n  \
         cache-max-negative-ttl: 10\n  serve-expired: no\nremote-control:\n  control-enable: no\n",
        ip = addr.ip(),
        port = addr.port(),
    );
    let path = dir.join(format!("{name}.conf"));
    std::fs::write(&path, conf)?;
    let mut cmd = Command::new("unbound");
    cmd.arg("-d").arg("-c").arg(&path);
    let mut daemon = Daemon::spawn(name, cmd, dir.join(format!("{name}.log")), "unbound")?;
    daemon.wait_until("listening", || tcp_open(addr))?;
    Ok(daemon)
}

#[cfg(test)]
mod tests {
    #[test]
    fn dnssec_times() {
        assert_eq!(super::dnssec_time(0), "19700101000000");
        assert_eq!(super::dnssec_time(1_798_761_599), "20261231235959");
        assert_eq!(super::dnssec_time(951_782_400), "20000229000000");
    }
}
