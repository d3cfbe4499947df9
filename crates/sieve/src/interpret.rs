//! Running a checked script on one message, without I/O: tests evaluated against a
//! `MessageView` (the caller decodes the message: header values unfolded and RFC 2047-decoded,
//! addresses, body text), commands turned into the actions delivery carries out, with RFC
//! 5228's implicit keep (§2.10.2) and execution limits so that no script can loop, nest
//! includes without end or send without bound.

use std::collections::BTreeSet;

use crate::script::{
    AddressPart, BodyTransform, Command, Comparator, FlagOp, Match, MatchType, Relation, Script,
    Test,
};

/// What the script may see of the message.
pub trait MessageView {
    /// The values of the header fields called `name` (any case), unfolded and decoded, in
    /// order.
    fn header_values(&self, name: &str) -> Vec<String>;
    /// The addr-specs in the address fields called `name`.
    fn addresses(&self, name: &str) -> Vec<String>;
    /// The message size in octets (RFC 5228 §5.9).
    fn size(&self) -> u64;
    /// The text the body test matches against (RFC 5173 §5).
    fn body(&self, transform: &BodyTransform) -> Vec<String>;
}

/// The envelope (RFC 5228 §5.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// The return path ("" for a null sender).
    pub from: String,
    /// The recipient as given (with its `+detail`).
    pub to: String,
    pub auth: Option<String>,
}

/// Bounds on one run.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Commands and tests evaluated at most.
    pub instructions: u32,
    /// Redirects at most (Pigeonhole's `sieve_max_redirects` is 4).
    pub redirects: usize,
    /// Actions of any kind at most.
    pub actions: usize,
    /// Include depth (RFC 6609 §3.2 leaves it to the implementation).
    pub include_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            instructions: 100_000,
            redirects: 4,
            actions: 32,
            include_depth: 10,
        }
    }
}

/// What delivery does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Into INBOX, with these IMAP flags.
    Keep {
        flags: Vec<String>,
    },
    FileInto {
        mailbox: String,
        flags: Vec<String>,
        create: bool,
    },
    Redirect {
        address: String,
    },
    /// Refuse with an MDN or at SMTP (RFC 5429).
    Reject {
        reason: String,
        smtp: bool,
    },
    Vacation(VacationReply),
}

/// A vacation reply to send, if the sender was not answered within `period` (the caller
/// keeps that memory, RFC 5230 §4.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VacationReply {
    pub to: String,
    pub subject: Option<String>,
    pub from: Option<String>,
    pub reason: String,
    pub mime: bool,
    /// What identifies this reply for the once-per-period memory.
    pub handle: String,
    pub period: u64,
    /// Our addresses besides the recipient (`:addresses`), for the "was it sent to me" check.
    pub addresses: Vec<String>,
}

/// A header change (RFC 5293).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Edit {
    Add {
        last: bool,
        name: String,
        value: String,
    },
    Delete {
        name: String,
        index: Option<(u64, bool)>,
        /// Only fields whose value matches.
        m: Option<Match>,
    },
}

/// What a run gives.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    pub actions: Vec<Action>,
    pub edits: Vec<Edit>,
    /// Why the run stopped early (a limit, an include that could not be had): delivery then
    /// keeps the message (RFC 5228 §2.10.6).
    pub error: Option<String>,
}

/// What a run knows besides the message and its envelope.
pub struct Context<'a> {
    /// Seconds since the epoch (`currentdate`, RFC 5260 §5).
    pub now: i64,
    /// Whether the recipient has this mailbox (`mailboxexists`, RFC 5490 §3.1).
    pub mailbox_exists: &'a dyn Fn(&str) -> bool,
    /// A script by name, personal or global (RFC 6609).
    pub include: &'a dyn Fn(&str, bool) -> Option<Script>,
}

/// Runs `script`.
pub fn run(
    script: &Script,
    message: &dyn MessageView,
    envelope: &Envelope,
    limits: &Limits,
    context: &Context,
) -> Outcome {
    let mut r = Run {
        message,
        envelope,
        limits,
        context,
        steps: 0,
        flags: BTreeSet::new(),
        variables: std::collections::HashMap::new(),
        matched: Vec::new(),
        out: Outcome::default(),
        keep: true,
        explicit_keep: false,
        included: BTreeSet::new(),
        variables_on: script.extensions.contains("variables"),
    };
    let result = r.block(&script.commands, 0);
    if let Err(Stop::Error(e)) = result {
        // §2.10.6: on a run-time error the message is kept; like Pigeonhole, nothing else of
        // the failed run is carried out (no half a set of redirects).
        r.out.error = Some(e);
        r.out.actions.clear();
        r.out.edits.clear();
        r.keep = true;
        r.explicit_keep = false;
        r.flags.clear();
    }
    if r.keep && !r.explicit_keep {
        let flags = r.flags.iter().cloned().collect();
        r.out.actions.push(Action::Keep { flags });
    }
    r.out
}

enum Stop {
    /// `stop`: the script ends normally.
    Done,
    /// `return` from an included script.
    Return,
    Error(String),
}

struct Run<'a> {
    message: &'a dyn MessageView,
    envelope: &'a Envelope,
    limits: &'a Limits,
    context: &'a Context<'a>,
    steps: u32,
    /// The internal flags of imap4flags (RFC 5232 §3).
    flags: BTreeSet<String>,
    variables: std::collections::HashMap<String, String>,
    /// ${0}…${9} of the last :matches that succeeded.
    matched: Vec<String>,
    out: Outcome,
    /// The implicit keep is still on.
    keep: bool,
    explicit_keep: bool,
    included: BTreeSet<String>,
    variables_on: bool,
}

impl Run<'_> {
    fn step(&mut self) -> Result<(), Stop> {
        self.steps += 1;
        if self.steps > self.limits.instructions {
            return Err(Stop::Error(format!(
                "the script ran more than {} steps",
                self.limits.instructions
            )));
        }
        Ok(())
    }

    fn act(&mut self, a: Action) -> Result<(), Stop> {
        if self.out.actions.len() >= self.limits.actions {
            return Err(Stop::Error(format!(
                "the script took more than {} actions",
                self.limits.actions
            )));
        }
        // RFC 5228 §2.10.3: the same action twice is done once.
        if !self.out.actions.contains(&a) {
            self.out.actions.push(a);
        }
        Ok(())
    }

    fn block(&mut self, commands: &[Command], depth: usize) -> Result<(), Stop> {
        for c in commands {
            self.command(c, depth)?;
        }
        Ok(())
    }

    fn command(&mut self, c: &Command, depth: usize) -> Result<(), Stop> {
        self.step()?;
        match c {
            Command::If {
                branches,
                otherwise,
            } => {
                for (test, block) in branches {
                    if self.test(test)? {
                        return self.block(block, depth);
                    }
                }
                if let Some(block) = otherwise {
                    self.block(block, depth)?;
                }
            }
            Command::Stop => return Err(Stop::Done),
            Command::Return => return Err(Stop::Return),
            Command::Keep { flags } => {
                let flags = self.flag_set(flags.as_ref());
                self.explicit_keep = true;
                self.keep = false;
                self.act(Action::Keep { flags })?;
            }
            Command::Discard => self.keep = false,
            Command::Redirect { address, copy } => {
                let address = self.expand(address);
                let redirects = self
                    .out
                    .actions
                    .iter()
                    .filter(|a| matches!(a, Action::Redirect { .. }))
                    .count();
                if redirects >= self.limits.redirects {
                    return Err(Stop::Error(format!(
                        "more than {} redirects",
                        self.limits.redirects
                    )));
                }
                if !*copy {
                    self.keep = false;
                }
                self.act(Action::Redirect { address })?;
            }
            Command::FileInto {
                mailbox,
                copy,
                create,
                flags,
            } => {
                let mailbox = self.expand(mailbox);
                let flags = self.flag_set(flags.as_ref());
                if !*copy {
                    self.keep = false;
                }
                self.act(Action::FileInto {
                    mailbox,
                    flags,
                    create: *create,
                })?;
            }
            Command::Reject(reason) | Command::Ereject(reason) => {
                let reason = self.expand(reason);
                self.keep = false;
                self.act(Action::Reject {
                    reason,
                    smtp: matches!(c, Command::Ereject(_)),
                })?;
            }
            Command::Vacation(v) => {
                let reason = self.expand(&v.reason);
                let handle = v.handle.clone().unwrap_or_else(|| {
                    // RFC 5230 §4.2: by default, the reason and subject say which reply it is.
                    format!("{}\u{0}{}", v.subject.clone().unwrap_or_default(), v.reason)
                });
                self.act(Action::Vacation(VacationReply {
                    to: self.envelope.from.clone(),
                    subject: v.subject.as_ref().map(|s| self.expand(s)),
                    from: v.from.as_ref().map(|s| self.expand(s)),
                    reason,
                    mime: v.mime,
                    handle,
                    period: v.period,
                    addresses: v.addresses.clone(),
                }))?;
            }
            Command::Flags {
                op,
                variable,
                flags,
            } => {
                let list = self.flag_words(flags);
                let mut set: BTreeSet<String> = match variable {
                    Some(v) => self
                        .variables
                        .get(&v.to_ascii_lowercase())
                        .map(|s| s.split_whitespace().map(str::to_string).collect())
                        .unwrap_or_default(),
                    None => self.flags.clone(),
                };
                match op {
                    FlagOp::Set => set = list.into_iter().collect(),
                    FlagOp::Add => set.extend(list),
                    FlagOp::Remove => {
                        for f in list {
                            set.retain(|s| !s.eq_ignore_ascii_case(&f));
                        }
                    }
                }
                match variable {
                    Some(v) => {
                        let joined = set.into_iter().collect::<Vec<_>>().join(" ");
                        self.variables.insert(v.to_ascii_lowercase(), joined);
                    }
                    None => self.flags = set,
                }
            }
            Command::Set {
                name,
                value,
                modifiers,
            } => {
                let mut v = self.expand(value);
                for m in modifiers {
                    v = modify(m, &v);
                }
                self.variables.insert(name.to_ascii_lowercase(), v);
            }
            Command::AddHeader { last, name, value } => {
                let value = self.expand(value);
                self.out.edits.push(Edit::Add {
                    last: *last,
                    name: name.clone(),
                    value,
                });
            }
            Command::DeleteHeader { index, name, m } => {
                // Fields Kurier writes for the user's protection stay (RFC 5293 §6).
                if !matches!(
                    name.to_ascii_lowercase().as_str(),
                    "received" | "auto-submitted"
                ) {
                    self.out.edits.push(Edit::Delete {
                        name: name.clone(),
                        index: *index,
                        m: m.clone(),
                    });
                }
            }
            Command::Include {
                personal,
                once,
                optional,
                name,
            } => {
                if depth + 1 > self.limits.include_depth {
                    return Err(Stop::Error(format!(
                        "includes nest deeper than {}",
                        self.limits.include_depth
                    )));
                }
                let key = format!("{}:{name}", if *personal { "p" } else { "g" });
                if *once && !self.included.insert(key.clone()) {
                    return Ok(());
                }
                match (self.context.include)(name, *personal) {
                    Some(s) => match self.block(&s.commands, depth + 1) {
                        Err(Stop::Return) | Ok(()) => {}
                        Err(other) => return Err(other),
                    },
                    None if *optional => {}
                    None => {
                        return Err(Stop::Error(format!("included script {name:?} is missing")));
                    }
                }
            }
        }
        Ok(())
    }

    /// The flags `flags` name, variables expanded: each string is a space-separated list
    /// (RFC 5232 §3).
    fn flag_words(&self, flags: &[String]) -> Vec<String> {
        flags
            .iter()
            .flat_map(|f| {
                self.expand(f)
                    .split_whitespace()
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    fn flag_set(&self, flags: Option<&Vec<String>>) -> Vec<String> {
        match flags {
            Some(f) => self
                .flag_words(f)
                .into_iter()
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect(),
            None => self.flags.iter().cloned().collect(),
        }
    }

    /// `${name}` and `${0}`…`${9}` replaced (RFC 5229 §3), when variables are on.
    fn expand(&self, s: &str) -> String {
        if !self.variables_on || !s.contains("${") {
            return s.to_string();
        }
        let mut out = String::with_capacity(s.len());
        let mut rest = s;
        while let Some(i) = rest.find("${") {
            out.push_str(&rest[..i]);
            let after = &rest[i + 2..];
            match after.find('}') {
                Some(j) if crate::script::is_variable_name(&after[..j]) => {
                    let name = after[..j].to_ascii_lowercase();
                    let value = match name.parse::<usize>() {
                        Ok(n) => self.matched.get(n).cloned().unwrap_or_default(),
                        Err(_) => self.variables.get(&name).cloned().unwrap_or_default(),
                    };
                    out.push_str(&value);
                    rest = &after[j + 1..];
                }
                _ => {
                    out.push_str("${");
                    rest = after;
                }
            }
        }
        out.push_str(rest);
        // RFC 5229 §3: values are at least 4000 octets; a bound keeps a doubling loop small.
        out.truncate(out.len().min(MAX_VALUE));
        while !out.is_char_boundary(out.len()) {
            out.pop();
        }
        out
    }

    fn test(&mut self, t: &Test) -> Result<bool, Stop> {
        self.step()?;
        Ok(match t {
            Test::True => true,
            Test::False => false,
            Test::Not(t) => !self.test(t)?,
            Test::AllOf(ts) => {
                for t in ts {
                    if !self.test(t)? {
                        return Ok(false);
                    }
                }
                true
            }
            Test::AnyOf(ts) => {
                for t in ts {
                    if self.test(t)? {
                        return Ok(true);
                    }
                }
                false
            }
            Test::Header { headers, m, index } => {
                let mut values = Vec::new();
                for h in headers {
                    values.extend(pick(self.message.header_values(&self.expand(h)), *index));
                }
                self.compare(&values, m)
            }
            Test::Address {
                part,
                headers,
                m,
                index,
            } => {
                let mut values = Vec::new();
                for h in headers {
                    for a in pick(self.message.addresses(&self.expand(h)), *index) {
                        values.extend(address_part(&a, *part));
                    }
                }
                self.compare(&values, m)
            }
            Test::Envelope { part, parts, m } => {
                let mut values = Vec::new();
                for p in parts {
                    let a = match p.to_ascii_lowercase().as_str() {
                        "from" => self.envelope.from.clone(),
                        "to" => self.envelope.to.clone(),
                        "auth" => self.envelope.auth.clone().unwrap_or_default(),
                        _ => continue,
                    };
                    // The null sender's address part is "" (RFC 5228 §5.4).
                    values.extend(address_part(&a, *part).or(Some(String::new())));
                }
                self.compare(&values, m)
            }
            Test::Exists(names) => names
                .iter()
                .all(|n| !self.message.header_values(&self.expand(n)).is_empty()),
            Test::Size { over, limit } => {
                let size = self.message.size();
                if *over { size > *limit } else { size < *limit }
            }
            Test::Body { transform, m } => {
                let values = self.message.body(transform);
                self.compare(&values, m)
            }
            Test::String { sources, m } => {
                let values: Vec<String> = sources
                    .iter()
                    .map(|s| self.expand(s))
                    .filter(|s| !s.is_empty() || !matches!(m.match_type, MatchType::Count(_)))
                    .collect();
                self.compare(&values, m)
            }
            Test::HasFlag { variables, m } => {
                let flags: Vec<String> = if variables.is_empty() {
                    self.flags.iter().cloned().collect()
                } else {
                    variables
                        .iter()
                        .flat_map(|v| {
                            self.variables
                                .get(&v.to_ascii_lowercase())
                                .map(|s| {
                                    s.split_whitespace().map(str::to_string).collect::<Vec<_>>()
                                })
                                .unwrap_or_default()
                        })
                        .collect()
                };
                self.compare(&flags, m)
            }
            // Date tests need the message's date fields and the clock: the caller's view gives
            // header values; the part is taken from an RFC 5322 date.
            Test::Date {
                header,
                part,
                m,
                index,
                zone,
                original_zone,
            } => {
                // RFC 5260 §4.1: a zone that is no zone makes the test false.
                let Some(zone) = self.zone(zone.as_deref(), *original_zone) else {
                    return Ok(false);
                };
                let values: Vec<String> = pick(self.message.header_values(header), *index)
                    .iter()
                    .filter_map(|v| crate::date::part(v, part, zone))
                    .collect();
                self.compare(&values, m)
            }
            Test::CurrentDate { part, m, zone } => {
                let Some(zone) = self.zone(zone.as_deref(), false) else {
                    return Ok(false);
                };
                let now = crate::date::rfc5322_utc(self.context.now);
                let values: Vec<String> = crate::date::part(&now, part, zone).into_iter().collect();
                self.compare(&values, m)
            }
            Test::MailboxExists(names) => {
                let names: Vec<String> = names.iter().map(|n| self.expand(n)).collect();
                names.iter().all(|n| (self.context.mailbox_exists)(n))
            }
        })
    }

    /// The zone a date test sees dates in: `:originalzone`, `:zone` (expanded), else UTC.
    fn zone(&self, zone: Option<&str>, original: bool) -> Option<crate::date::Zone> {
        use crate::date::{Zone, zone_offset};
        match (original, zone) {
            (true, _) => Some(Zone::Original),
            (false, Some(z)) => zone_offset(&self.expand(z)).map(Zone::Offset),
            (false, None) => Some(Zone::Offset(0)),
        }
    }

    /// Whether any of `values` matches any key (or, for :count, the number of values).
    fn compare(&mut self, values: &[String], m: &Match) -> bool {
        let keys: Vec<String> = m.keys.iter().map(|k| self.expand(k)).collect();
        match m.match_type {
            MatchType::Count(rel) => {
                let n = values.len().to_string();
                keys.iter()
                    .any(|k| relate(m.comparator, &n, k).is_some_and(|o| holds(rel, o)))
            }
            MatchType::Value(rel) => values.iter().any(|v| {
                keys.iter()
                    .any(|k| relate(m.comparator, v, k).is_some_and(|o| holds(rel, o)))
            }),
            MatchType::Is => values
                .iter()
                .any(|v| keys.iter().any(|k| equal(m.comparator, v, k))),
            MatchType::Contains => values
                .iter()
                .any(|v| keys.iter().any(|k| contains(m.comparator, v, k))),
            MatchType::Matches => {
                for v in values {
                    for k in &keys {
                        if let Some(captures) = wildcard(m.comparator, v, k) {
                            let mut all = vec![v.clone()];
                            all.extend(captures);
                            all.truncate(10);
                            self.matched = all;
                            return true;
                        }
                    }
                }
                false
            }
        }
    }
}

/// Whether one header value matches `m` (deleteheader's value patterns, RFC 5293 §5: no
/// variables, :count compares the count of this one value).
pub fn value_matches(m: &Match, value: &str) -> bool {
    m.keys.iter().any(|k| match m.match_type {
        MatchType::Is => equal(m.comparator, value, k),
        MatchType::Contains => contains(m.comparator, value, k),
        MatchType::Matches => wildcard(m.comparator, value, k).is_some(),
        MatchType::Value(rel) => relate(m.comparator, value, k).is_some_and(|o| holds(rel, o)),
        MatchType::Count(rel) => relate(m.comparator, "1", k).is_some_and(|o| holds(rel, o)),
    })
}

/// The longest value a variable gets.
const MAX_VALUE: usize = 64 * 1024;

/// The `index`-th value (from 1; from the end with `last`), or all.
fn pick(mut values: Vec<String>, index: Option<(u64, bool)>) -> Vec<String> {
    let Some((i, last)) = index else {
        return values;
    };
    let i = usize::try_from(i).unwrap_or(usize::MAX);
    let at = if last {
        values.len().checked_sub(i)
    } else {
        i.checked_sub(1)
    };
    match at {
        Some(at) if at < values.len() => vec![values.swap_remove(at)],
        _ => Vec::new(),
    }
}

/// A part of an address (RFC 5228 §2.7.4, RFC 5233 §4 with "+" as the separator).
pub fn address_part(address: &str, part: AddressPart) -> Option<String> {
    let (local, domain) = match address.rsplit_once('@') {
        Some((l, d)) => (l, d),
        None => (address, ""),
    };
    match part {
        AddressPart::All => Some(address.to_string()),
        AddressPart::LocalPart => Some(local.to_string()),
        AddressPart::Domain => Some(domain.to_string()),
        AddressPart::User => Some(local.split_once('+').map_or(local, |(u, _)| u).to_string()),
        // No separator: the detail test fails (RFC 5233 §4).
        AddressPart::Detail => local.split_once('+').map(|(_, d)| d.to_string()),
    }
}

fn fold(c: Comparator, s: &str) -> String {
    match c {
        Comparator::Octet => s.to_string(),
        _ => s.to_ascii_lowercase(),
    }
}

fn equal(c: Comparator, v: &str, k: &str) -> bool {
    match c {
        Comparator::AsciiNumeric => numeric(v) == numeric(k),
        _ => fold(c, v) == fold(c, k),
    }
}

fn contains(c: Comparator, v: &str, k: &str) -> bool {
    fold(c, v).contains(&fold(c, k))
}

/// i;ascii-numeric (RFC 4790 §9.1): the leading digits as a number, none = infinity.
fn numeric(s: &str) -> Option<u128> {
    let digits: String = s.chars().take_while(|c| c.is_ascii_digit()).collect();
    if digits.is_empty() {
        return None;
    }
    // Long runs compare as the largest number, not as an overflow.
    Some(digits.parse::<u128>().unwrap_or(u128::MAX))
}

fn relate(c: Comparator, v: &str, k: &str) -> Option<std::cmp::Ordering> {
    match c {
        Comparator::AsciiNumeric => match (numeric(v), numeric(k)) {
            (Some(a), Some(b)) => Some(a.cmp(&b)),
            (None, None) => Some(std::cmp::Ordering::Equal),
            (None, Some(_)) => Some(std::cmp::Ordering::Greater),
            (Some(_), None) => Some(std::cmp::Ordering::Less),
        },
        _ => Some(fold(c, v).cmp(&fold(c, k))),
    }
}

fn holds(r: Relation, o: std::cmp::Ordering) -> bool {
    use std::cmp::Ordering::*;
    match r {
        Relation::Gt => o == Greater,
        Relation::Ge => o != Less,
        Relation::Lt => o == Less,
        Relation::Le => o != Greater,
        Relation::Eq => o == Equal,
        Relation::Ne => o != Equal,
    }
}

/// Cells of the matching table at most (value length × pattern length): past it, no match.
const MAX_MATCH_CELLS: usize = 16 << 20;

/// `*` and `?` wildcards with `\` escaping (RFC 5228 §2.7.1): the text each wildcard matched
/// (each `*` as few characters as the rest allows, left to right: RFC 5229 §3.2's
/// `"[*] *"` gives "acme-users" for "[acme-users] [fwd] version 1.0 is out"), or `None`.
/// A table of which suffixes match which pattern tails keeps a hostile pattern at
/// length × length steps.
fn wildcard(c: Comparator, value: &str, pattern: &str) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum P {
        Lit(char),
        One,
        Any,
    }
    let v: Vec<char> = fold(c, value).chars().collect();
    let original: Vec<char> = value.chars().collect();
    let mut p = Vec::new();
    let mut chars = fold(c, pattern).chars().collect::<Vec<_>>().into_iter();
    while let Some(ch) = chars.next() {
        p.push(match ch {
            '\\' => P::Lit(chars.next().unwrap_or('\\')),
            '?' => P::One,
            '*' => P::Any,
            other => P::Lit(other),
        });
    }
    let (n, m) = (v.len(), p.len());
    if (n + 1).saturating_mul(m + 1) > MAX_MATCH_CELLS {
        return None;
    }
    // ok[i * (m + 1) + j]: v[i..] matches p[j..].
    let w = m + 1;
    let mut ok = vec![false; (n + 1) * w];
    ok[n * w + m] = true;
    for i in (0..=n).rev() {
        for j in (0..m).rev() {
            ok[i * w + j] = match p[j] {
                P::Any => ok[i * w + j + 1] || (i < n && ok[(i + 1) * w + j]),
                P::One => i < n && ok[(i + 1) * w + j + 1],
                P::Lit(ch) => i < n && v[i] == ch && ok[(i + 1) * w + j + 1],
            };
        }
    }
    if !ok[0] {
        return None;
    }
    let mut captures = Vec::new();
    let mut i = 0;
    for j in 0..m {
        match p[j] {
            P::Lit(_) => i += 1,
            P::One => {
                captures.push(original.get(i).map(|c| c.to_string()).unwrap_or_default());
                i += 1;
            }
            P::Any => {
                let mut k = i;
                while !ok[k * w + j + 1] {
                    k += 1;
                }
                captures.push(
                    original[i.min(original.len())..k.min(original.len())]
                        .iter()
                        .collect(),
                );
                i = k;
            }
        }
    }
    Some(captures)
}

fn modify(m: &str, v: &str) -> String {
    match m {
        "lower" => v.to_lowercase(),
        "upper" => v.to_uppercase(),
        "lowerfirst" => first(v, char::to_lowercase),
        "upperfirst" => first(v, char::to_uppercase),
        "quotewildcard" => v
            .chars()
            .flat_map(|c| {
                if matches!(c, '*' | '?' | '\\') {
                    vec!['\\', c]
                } else {
                    vec![c]
                }
            })
            .collect(),
        "length" => v.chars().count().to_string(),
        _ => v.to_string(),
    }
}

fn first<I: Iterator<Item = char>>(v: &str, f: impl Fn(char) -> I) -> String {
    let mut c = v.chars();
    match c.next() {
        Some(x) => f(x).chain(c).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests fail loudly by design
    use super::*;
    use crate::script::compile;

    struct Mail {
        headers: Vec<(&'static str, &'static str)>,
        body: &'static str,
    }

    impl MessageView for Mail {
        fn header_values(&self, name: &str) -> Vec<String> {
            self.headers
                .iter()
                .filter(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.to_string())
                .collect()
        }
        fn addresses(&self, name: &str) -> Vec<String> {
            self.header_values(name)
                .iter()
                .flat_map(|v| {
                    v.split(',')
                        .map(|a| {
                            let a = a.trim();
                            match (a.find('<'), a.find('>')) {
                                (Some(o), Some(c)) => a[o + 1..c].to_string(),
                                _ => a.to_string(),
                            }
                        })
                        .collect::<Vec<_>>()
                })
                .collect()
        }
        fn size(&self) -> u64 {
            1000
        }
        fn body(&self, _: &BodyTransform) -> Vec<String> {
            vec![self.body.to_string()]
        }
    }

    fn mail() -> Mail {
        Mail {
            headers: vec![
                ("From", "Alice <alice@example.org>"),
                ("To", "bob+lists@example.net, carol@example.net"),
                ("Subject", "[acme-users] [fwd] version 1.0 is out"),
                ("Received", "from a"),
                ("Received", "from b"),
                ("Received", "from c"),
                ("List-Id", "<acme.lists.example.org>"),
                ("Date", "Fri, 04 Dec 2026 23:30:00 -0800"),
            ],
            body: "Please find the release notes attached.",
        }
    }

    fn envelope() -> Envelope {
        Envelope {
            from: "alice@example.org".into(),
            to: "bob+lists@example.net".into(),
            auth: None,
        }
    }

    /// 2026-12-04 09:30:00 UTC, and the mailboxes INBOX and Lists.
    const NOW: i64 = 1_796_376_600;

    fn context<'a>(include: &'a dyn Fn(&str, bool) -> Option<Script>) -> Context<'a> {
        Context {
            now: NOW,
            mailbox_exists: &|m| ["INBOX", "Lists"].contains(&m),
            include,
        }
    }

    fn go(script: &str) -> Outcome {
        let s = compile(script).unwrap();
        run(
            &s,
            &mail(),
            &envelope(),
            &Limits::default(),
            &context(&|_, _| None),
        )
    }

    #[test]
    fn implicit_keep_and_its_cancellation() {
        assert_eq!(
            go("if header :contains \"subject\" \"nothing\" { discard; }").actions,
            [Action::Keep { flags: vec![] }]
        );
        assert!(go("discard;").actions.is_empty());
        assert_eq!(
            go("require \"fileinto\"; if exists \"list-id\" { fileinto \"Lists\"; }").actions,
            [Action::FileInto {
                mailbox: "Lists".into(),
                flags: vec![],
                create: false
            }]
        );
        // :copy keeps the implicit keep.
        let o = go("require [\"fileinto\", \"copy\"]; fileinto :copy \"Archive\";");
        assert_eq!(o.actions.len(), 2);
        assert_eq!(o.actions[1], Action::Keep { flags: vec![] });
    }

    #[test]
    fn match_variables_and_subaddress() {
        let o = go(
            "require [\"fileinto\", \"variables\", \"envelope\", \"subaddress\"];\n\
             if header :matches \"Subject\" \"[*] *\" { fileinto \"Lists/${1}\"; }\n\
             if envelope :detail \"to\" \"lists\" { fileinto \"By-tag\"; }\n\
             if address :user \"to\" \"carol\" { fileinto \"Carol\"; }",
        );
        let boxes: Vec<&str> = o
            .actions
            .iter()
            .filter_map(|a| match a {
                Action::FileInto { mailbox, .. } => Some(mailbox.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(boxes, ["Lists/acme-users", "By-tag", "Carol"]);
    }

    #[test]
    fn relational_counts_and_numbers() {
        let o = go(
            "require [\"relational\", \"comparator-i;ascii-numeric\"];\n\
             if header :count \"ge\" :comparator \"i;ascii-numeric\" \"received\" \"3\" { discard; }",
        );
        assert!(o.actions.is_empty());
        let o = go(
            "require [\"relational\", \"comparator-i;ascii-numeric\"];\n\
             if header :count \"gt\" :comparator \"i;ascii-numeric\" \"received\" \"3\" { discard; }",
        );
        assert_eq!(o.actions.len(), 1);
    }

    #[test]
    fn flags_reject_and_vacation() {
        let o = go(
            "require [\"imap4flags\"]; addflag \"\\\\Flagged\"; addflag \"$Work \\\\Seen\"; removeflag \"\\\\seen\"; keep;",
        );
        assert_eq!(
            o.actions,
            [Action::Keep {
                flags: vec!["$Work".into(), "\\Flagged".into()]
            }]
        );
        let o = go("require \"reject\"; reject \"Not here.\";");
        assert_eq!(
            o.actions,
            [Action::Reject {
                reason: "Not here.".into(),
                smtp: false
            }]
        );
        let o = go("require \"vacation\"; vacation :days 2 :subject \"Away\" \"Back Monday.\";");
        let Action::Vacation(v) = &o.actions[0] else {
            panic!()
        };
        assert_eq!((v.to.as_str(), v.period), ("alice@example.org", 2 * 86400));
        assert_eq!(o.actions[1], Action::Keep { flags: vec![] });
    }

    #[test]
    fn date_tests_see_the_zone_asked_for() {
        let kept = |script: &str| {
            let o = go(&format!("require [\"date\", \"relational\"];\n{script}"));
            o.actions.iter().any(|a| matches!(a, Action::Keep { .. }))
        };
        // RFC 5260 §4.1: without :zone the date is seen in the server's zone (UTC): 07:30
        // the next day.
        assert!(!kept(
            "if date :is \"date\" \"date\" \"2026-12-05\" { discard; }"
        ));
        assert!(!kept("if date :is \"date\" \"hour\" \"07\" { discard; }"));
        assert!(!kept(
            "if date :originalzone :is \"date\" \"date\" \"2026-12-04\" { discard; }"
        ));
        assert!(!kept(
            "if date :zone \"+0100\" :is \"date\" \"iso8601\" \"2026-12-05T08:30:00+01:00\" { discard; }"
        ));
        assert!(!kept(
            "if date :zone \"-0800\" :is \"date\" \"weekday\" \"5\" { discard; }"
        ));
        // A zone that is no zone makes the test false (here given through a variable).
        assert!(kept(
            "require \"variables\"; set \"z\" \"CET\";\n\
             if date :zone \"${z}\" :is \"date\" \"year\" \"2026\" { discard; }"
        ));
        // currentdate sees the run's clock (09:30 UTC), in the zone asked for.
        assert!(!kept("if currentdate :is \"hour\" \"09\" { discard; }"));
        assert!(!kept(
            "if currentdate :zone \"+0530\" :is \"time\" \"15:00:00\" { discard; }"
        ));
        assert!(!kept(
            "if currentdate :zone \"-1000\" :value \"lt\" \"date\" \"2026-12-04\" { discard; }"
        ));
        assert!(kept("if currentdate :is \"year\" \"2025\" { discard; }"));
    }

    #[test]
    fn mailboxexists_asks_for_the_recipients_mailboxes() {
        let o = go("require [\"mailbox\", \"fileinto\"];\n\
             if mailboxexists \"Lists\" { fileinto \"Lists\"; }\n\
             if mailboxexists [\"Lists\", \"Nope\"] { discard; }");
        assert_eq!(
            o.actions,
            [Action::FileInto {
                mailbox: "Lists".into(),
                flags: vec![],
                create: false
            }]
        );
    }

    #[test]
    fn limits_stop_a_script_and_keep_the_mail() {
        let s = compile(
            "redirect \"a@x.test\"; redirect \"b@x.test\"; redirect \"c@x.test\"; redirect \"d@x.test\"; redirect \"e@x.test\";",
        )
        .unwrap();
        let o = run(
            &s,
            &mail(),
            &envelope(),
            &Limits::default(),
            &context(&|_, _| None),
        );
        assert!(o.error.unwrap().contains("redirects"));
        assert_eq!(o.actions, [Action::Keep { flags: vec![] }]);
        // A script that includes itself: bounded by the include depth.
        let me = compile("require \"include\"; include \"me\";").unwrap();
        let again = me.clone();
        let o = run(
            &me,
            &mail(),
            &envelope(),
            &Limits::default(),
            &context(&move |_, _| Some(again.clone())),
        );
        assert!(o.error.unwrap().contains("includes nest deeper"));
        assert_eq!(o.actions, [Action::Keep { flags: vec![] }]);
    }

    #[test]
    fn wildcards_are_shortest_first_and_bounded() {
        let c = Comparator::AsciiCasemap;
        assert_eq!(
            wildcard(c, "[acme-users] [fwd] version 1.0 is out", "[*] *").unwrap(),
            ["acme-users", "[fwd] version 1.0 is out"]
        );
        assert_eq!(wildcard(c, "abc", "a?c").unwrap(), ["b"]);
        assert_eq!(wildcard(c, "a*c", "a\\*c").unwrap(), Vec::<String>::new());
        assert!(wildcard(c, "abc", "a\\*c").is_none());
        assert!(wildcard(c, "ABC", "abc").is_some());
        assert!(wildcard(Comparator::Octet, "ABC", "abc").is_none());
        let long = "a".repeat(5000);
        let hostile = "*a".repeat(50) + "b";
        assert!(wildcard(c, &long, &hostile).is_none());
    }
}
