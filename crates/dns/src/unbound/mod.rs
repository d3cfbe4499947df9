//! `validate` mode: libunbound, the validator of NLnet Labs' unbound, in-process, judges every
//! answer (RFC 4033–4035, RFC 5155, RFC 6840; RFC 5011 anchor updates where allowed). It asks
//! the configured upstream resolvers with the DO bit and checks every signature itself from the
//! trust anchor down, so an upstream that validates, one that does not, and an authoritative
//! server answering directly all give the same verdict. hickory only parses the answer.
//!
//! Results come back on libunbound's own background thread; one thread of ours waits on its
//! descriptor and hands each result to the waiting question.

mod ffi;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hickory_proto::op::Message;
use hickory_proto::rr::{Record, RecordType};
use tokio::sync::oneshot;

use crate::{Answer, DnsError, DnssecState};

/// The IANA root trust anchors (KSK-2017 and KSK-2024, https://data.iana.org/root-anchors/).
const ROOT_ANCHORS: [&str; 2] = [
    ". IN DS 20326 8 2 E06D44B80B8F1D39A95C0B0D7C65D08458E880409BBC683457104237C7F8EC8D",
    ". IN DS 38696 8 2 683D2D0ACB8C9B712A1948B27F741219298D0A450D612C483AF444A4C0FB2B16",
];

/// Longest why-bogus text kept (unbound's are one line; a hostile zone's names are bounded).
const MAX_REASON: usize = 400;

type Waiting = Mutex<HashMap<u64, oneshot::Sender<Result<ffi::Outcome, String>>>>;

/// Questions in flight, by token (the `mydata` of the libunbound callback).
static WAITING: std::sync::LazyLock<Waiting> = std::sync::LazyLock::new(Waiting::default);
static NEXT_TOKEN: AtomicU64 = AtomicU64::new(1);

/// Called by the libunbound callback (from `process`, on our waiting thread).
fn deliver(token: u64, outcome: Result<ffi::Outcome, String>) {
    let tx = WAITING.lock().ok().and_then(|mut w| w.remove(&token));
    if let Some(tx) = tx {
        let _ = tx.send(outcome);
    }
}

/// What the validator is built from.
pub(crate) struct ValidatorConfig<'a> {
    /// Not empty (`Resolver::new` checks).
    pub upstream: &'a [SocketAddr],
    /// `None`: the IANA root anchors built in.
    pub trust_anchor: Option<&'a Path>,
    /// Keep `trust_anchor` up to date per RFC 5011 (the file must be writable).
    pub rfc5011: bool,
    pub timeout: Duration,
}

/// The validator. Cheap to clone; the last clone stops its threads.
#[derive(Clone)]
pub(crate) struct Validator {
    shared: Arc<Shared>,
}

struct Shared {
    ctx: Arc<ffi::Context>,
    stop: Arc<AtomicBool>,
    timeout: Duration,
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl Validator {
    pub(crate) fn new(cfg: &ValidatorConfig<'_>) -> Result<Validator, DnsError> {
        let invalid = DnsError::Invalid;
        let ctx = ffi::Context::new().map_err(invalid)?;
        for (name, value) in [
            // Test labs and local resolvers live on loopback.
            ("do-not-query-localhost", "no"),
            // Failures are reported per answer (why-bogus), not in a log of libunbound's.
            ("verbosity", "0"),
            ("use-syslog", "no"),
            ("logfile", "/dev/null"),
            // RFC 4035 §4.3: a signed zone's answer without signatures is bogus.
            ("harden-dnssec-stripped", "yes"),
            ("harden-below-nxdomain", "yes"),
            ("harden-algo-downgrade", "yes"),
            ("val-clean-additional", "yes"),
            ("do-ip6", "yes"),
        ] {
            ctx.set_option(name, value).map_err(invalid)?;
        }
        for a in cfg.upstream {
            ctx.set_forwarder(&format!("{}@{}", a.ip(), a.port()))
                .map_err(invalid)?;
        }
        match cfg.trust_anchor {
            Some(path) => {
                check_anchor_file(path)?;
                if cfg.rfc5011 {
                    std::fs::OpenOptions::new()
                        .append(true)
                        .open(path)
                        .map_err(|e| {
                            DnsError::Invalid(format!(
                                "dns.trust_anchor {}: not writable ({e}), but RFC 5011 updates need to write it (fix: make it writable for kurier, or set dns.trust_anchor_updates = false)",
                                path.display()
                            ))
                        })?;
                }
                ctx.add_anchor_file(&path.display().to_string(), cfg.rfc5011)
                    .map_err(invalid)?;
            }
            None => {
                for a in ROOT_ANCHORS {
                    ctx.add_anchor(a).map_err(invalid)?;
                }
            }
        }
        ctx.use_thread().map_err(invalid)?;
        // Labs with a private root serve `test.` (RFC 6761 §6.2 lets a resolver ask for it);
        // from the public root the answer is a secure NXDOMAIN either way. (This applies the
        // configuration, so it comes last.)
        let refused = |e| {
            DnsError::Invalid(format!(
                "{e} (fix: check dns.trust_anchor and dns.upstream)"
            ))
        };
        ctx.add_local_zone("test.", "nodefault").map_err(refused)?;
        ctx.finalize().map_err(refused)?;
        let ctx = Arc::new(ctx);
        let stop = Arc::new(AtomicBool::new(false));
        {
            let (ctx, stop) = (ctx.clone(), stop.clone());
            std::thread::Builder::new()
                .name("dnssec-results".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        if ctx.wait_readable(200) && ctx.process().is_err() {
                            std::thread::sleep(Duration::from_millis(50));
                        }
                    }
                })
                .map_err(|e| DnsError::Invalid(format!("cannot start the resolver thread: {e}")))?;
        }
        Ok(Validator {
            shared: Arc::new(Shared {
                ctx,
                stop,
                timeout: cfg.timeout,
            }),
        })
    }

    /// "libunbound 1.17.1".
    pub(crate) fn describe() -> String {
        match ffi::version() {
            Ok(v) => format!("libunbound {v}"),
            Err(e) => e,
        }
    }

    pub(crate) async fn query(
        &self,
        fqdn: &str,
        rtype: RecordType,
    ) -> Result<Answer<Record>, DnsError> {
        let what = format!("{fqdn} {rtype}");
        let token = NEXT_TOKEN.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        if let Ok(mut w) = WAITING.lock() {
            w.insert(token, tx);
        }
        let id = match self.shared.ctx.resolve_async(fqdn, u16::from(rtype), token) {
            Ok(id) => id,
            Err(e) => {
                forget(token);
                return Err(DnsError::Indeterminate(what, e));
            }
        };
        // Dropped with the question (timeout, or the caller gave up): nobody waits any more.
        let _guard = Question {
            ctx: &self.shared.ctx,
            token,
            id,
        };
        match tokio::time::timeout(self.shared.timeout, rx).await {
            Ok(Ok(Ok(outcome))) => interpret(outcome, &what),
            Ok(Ok(Err(e))) => Err(DnsError::Indeterminate(what, e)),
            Ok(Err(_)) => Err(DnsError::Indeterminate(what, "the resolver stopped".into())),
            Err(_) => Err(DnsError::Indeterminate(
                what,
                format!(
                    "no answer within {} s (fix: check that dns.upstream is reachable and answers)",
                    self.shared.timeout.as_secs_f32()
                ),
            )),
        }
    }
}

fn forget(token: u64) -> bool {
    WAITING
        .lock()
        .ok()
        .and_then(|mut w| w.remove(&token))
        .is_some()
}

struct Question<'a> {
    ctx: &'a ffi::Context,
    token: u64,
    id: i32,
}

impl Drop for Question<'_> {
    fn drop(&mut self) {
        if forget(self.token) {
            self.ctx.cancel(self.id);
        }
    }
}

/// The verdict: bogus is an error with unbound's reason; SERVFAIL and friends are
/// indeterminate; otherwise the records with their state.
fn interpret(o: ffi::Outcome, what: &str) -> Result<Answer<Record>, DnsError> {
    if o.bogus {
        let mut why = o.why_bogus.unwrap_or_else(|| "no reason given".into());
        why = why.replace(['\n', '\r'], " ");
        if why.len() > MAX_REASON {
            let mut cut = MAX_REASON;
            while !why.is_char_boundary(cut) {
                cut -= 1;
            }
            why.truncate(cut);
            why.push('…');
        }
        return Err(DnsError::Bogus(format!("{what}: {why}")));
    }
    match o.rcode {
        0 | 3 => {}
        code => {
            let name = hickory_proto::op::ResponseCode::from(0, u8::try_from(code).unwrap_or(2));
            return Err(DnsError::Indeterminate(
                what.to_string(),
                format!("the upstream resolvers gave no usable answer ({name})"),
            ));
        }
    }
    let records = if o.havedata {
        let m = Message::from_vec(&o.packet).map_err(|e| {
            DnsError::Indeterminate(what.to_string(), format!("unreadable answer: {e}"))
        })?;
        m.answers
            .into_iter()
            .filter(|r| r.record_type() != RecordType::RRSIG)
            .collect()
    } else {
        Vec::new()
    };
    Ok(Answer {
        records,
        state: if o.secure {
            DnssecState::Secure
        } else {
            DnssecState::Insecure
        },
        nxdomain: o.nxdomain,
    })
}

/// A trust anchor file must hold DS or DNSKEY records in zone-file form (`;` comments,
/// parentheses across lines); anything else is named by line, before libunbound sees it.
fn check_anchor_file(path: &Path) -> Result<(), DnsError> {
    let fail = |why: String| {
        DnsError::Invalid(format!(
            "dns.trust_anchor {}: {why} (fix: a file of the root's DS or DNSKEY records, e.g. /usr/share/dns/root.ds, or leave dns.trust_anchor unset for the built-in IANA anchors)",
            path.display()
        ))
    };
    let text = std::fs::read(path).map_err(|e| fail(format!("cannot read it: {e}")))?;
    let text = String::from_utf8(text).map_err(|_| fail("not a text file".into()))?;
    let mut found = 0;
    let mut record = String::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (n, line) in text.lines().enumerate() {
        let line = line.split(';').next().unwrap_or("");
        if record.is_empty() {
            start = n + 1;
        }
        depth += line.matches('(').count() as i32 - line.matches(')').count() as i32;
        record.push(' ');
        record.push_str(&line.replace(['(', ')'], " "));
        if depth > 0 {
            continue;
        }
        let fields: Vec<&str> = record.split_whitespace().collect();
        if !fields.is_empty() && !fields[0].starts_with('$') {
            let Some(t) = fields.iter().position(|f| *f == "DS" || *f == "DNSKEY") else {
                let shown: String = fields.join(" ").chars().take(60).collect();
                return Err(fail(format!(
                    "line {start} is not a DS or DNSKEY record: {shown:?}"
                )));
            };
            if fields.len() < t + 4 {
                return Err(fail(format!("line {start}: the record is incomplete")));
            }
            found += 1;
        }
        record.clear();
        depth = 0;
    }
    if found == 0 {
        return Err(fail("it holds no DS or DNSKEY record".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn anchor(text: &str) -> Result<(), DnsError> {
        let dir = std::env::temp_dir().join(format!(
            "kurier-anchor-{}-{}",
            std::process::id(),
            NEXT_TOKEN.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::write(&dir, text).map_err(|e| DnsError::Invalid(e.to_string()))?;
        let r = check_anchor_file(&dir);
        let _ = std::fs::remove_file(&dir);
        r
    }

    #[test]
    fn anchor_files_of_ds_and_dnskey_records_pass() {
        assert!(anchor(&ROOT_ANCHORS.join("\n")).is_ok());
        assert!(anchor("; comment\n. 3600 IN DNSKEY 257 3 13 (\n abc= ) ; KSK\n").is_ok());
    }

    #[test]
    fn garbage_anchor_files_are_one_clear_line() {
        for (text, says) in [
            ("", "no DS or DNSKEY"),
            ("hello world\n", "line 1 is not a DS or DNSKEY record"),
            (". IN DS 20326\n", "incomplete"),
        ] {
            let e = anchor(text).unwrap_err().to_string();
            assert!(e.contains(says) && !e.contains('\n'), "{text:?}: {e}");
        }
    }
}
