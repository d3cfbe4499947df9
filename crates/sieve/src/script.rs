//! What a script means: the generic grammar checked against the commands, tests and tagged
//! arguments of RFC 5228 and the extensions Kurier supports, into typed commands. An unknown
//! command, a missing `require`, a wrong argument or a tag twice is an error with its place —
//! what ManageSieve's PUTSCRIPT and CHECKSCRIPT answer (RFC 5804 §2.6).

use std::collections::BTreeSet;

use crate::Position;
use crate::grammar::{self, Argument, Test as GTest};
use crate::lexer::{SyntaxError, error};

/// The extensions Kurier's interpreter runs (the `require` names, RFC 5228 §3.2).
pub const EXTENSIONS: &[&str] = &[
    "fileinto",
    "reject",
    "ereject",
    "envelope",
    "imap4flags",
    "vacation",
    "copy",
    "body",
    "variables",
    "relational",
    "subaddress",
    "date",
    "index",
    "include",
    "editheader",
    "mailbox",
    "comparator-i;ascii-numeric",
];

/// A comparator (RFC 4790 as RFC 5228 §2.7.3 names them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Comparator {
    #[default]
    AsciiCasemap,
    Octet,
    AsciiNumeric,
}

/// A relational operator (RFC 5231 §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relation {
    Gt,
    Ge,
    Lt,
    Le,
    Eq,
    Ne,
}

/// How keys are matched (RFC 5228 §2.7.1, RFC 5231).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MatchType {
    #[default]
    Is,
    Contains,
    Matches,
    Value(Relation),
    Count(Relation),
}

/// Which part of an address (RFC 5228 §2.7.4, RFC 5233).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AddressPart {
    #[default]
    All,
    LocalPart,
    Domain,
    User,
    Detail,
}

/// What a comparison needs: comparator, match type, the keys.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Match {
    pub comparator: Comparator,
    pub match_type: MatchType,
    pub keys: Vec<String>,
}

/// The body extension's transform (RFC 5173 §5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyTransform {
    Raw,
    /// Only the parts of these media types ("" for all, "text" for a type, "text/html").
    Content(Vec<String>),
    Text,
}

/// A test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Test {
    True,
    False,
    Not(Box<Test>),
    AllOf(Vec<Test>),
    AnyOf(Vec<Test>),
    Address {
        part: AddressPart,
        headers: Vec<String>,
        m: Match,
        /// RFC 5260 §6: the `index`-th field (from the end with `last`).
        index: Option<(u64, bool)>,
    },
    Envelope {
        part: AddressPart,
        parts: Vec<String>,
        m: Match,
    },
    Header {
        headers: Vec<String>,
        m: Match,
        index: Option<(u64, bool)>,
    },
    Exists(Vec<String>),
    Size {
        over: bool,
        limit: u64,
    },
    Body {
        transform: BodyTransform,
        m: Match,
    },
    /// RFC 5229 §5: match strings (with variables).
    String {
        sources: Vec<String>,
        m: Match,
    },
    /// RFC 5232 §5.
    HasFlag {
        variables: Vec<String>,
        m: Match,
    },
    /// RFC 5260 §4: a date part of a header field.
    Date {
        zone: Option<String>,
        original_zone: bool,
        header: String,
        part: String,
        m: Match,
        index: Option<(u64, bool)>,
    },
    CurrentDate {
        zone: Option<String>,
        part: String,
        m: Match,
    },
    /// RFC 5490 §3.1.
    MailboxExists(Vec<String>),
}

/// A command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    If {
        /// `if` and each `elsif`, in order.
        branches: Vec<(Test, Vec<Command>)>,
        otherwise: Option<Vec<Command>>,
    },
    Stop,
    Keep {
        flags: Option<Vec<String>>,
    },
    Discard,
    Redirect {
        address: String,
        copy: bool,
    },
    FileInto {
        mailbox: String,
        copy: bool,
        create: bool,
        flags: Option<Vec<String>>,
    },
    Reject(String),
    Ereject(String),
    Vacation(Vacation),
    /// setflag / addflag / removeflag (RFC 5232 §4), on a variable or the internal flags.
    Flags {
        op: FlagOp,
        variable: Option<String>,
        flags: Vec<String>,
    },
    /// RFC 5229 §4.
    Set {
        name: String,
        value: String,
        modifiers: Vec<String>,
    },
    /// RFC 5293 §4.
    AddHeader {
        last: bool,
        name: String,
        value: String,
    },
    DeleteHeader {
        index: Option<(u64, bool)>,
        name: String,
        m: Option<Match>,
    },
    /// RFC 6609 §3.2.
    Include {
        personal: bool,
        once: bool,
        optional: bool,
        name: String,
    },
    Return,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagOp {
    Set,
    Add,
    Remove,
}

/// RFC 5230 §4.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vacation {
    /// Seconds between replies to one sender (`:days` × 86400, or `:seconds` of RFC 6131).
    pub period: u64,
    pub subject: Option<String>,
    pub from: Option<String>,
    pub addresses: Vec<String>,
    pub mime: bool,
    pub handle: Option<String>,
    pub reason: String,
}

/// A checked script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Script {
    pub extensions: BTreeSet<String>,
    pub commands: Vec<Command>,
}

/// Reads and checks `source`.
pub fn compile(source: &str) -> Result<Script, SyntaxError> {
    let commands = grammar::parse(source)?;
    let mut extensions = BTreeSet::new();
    let mut body = commands.as_slice();
    // require comes first (RFC 5228 §3.2).
    while let Some((c, rest)) = body.split_first() {
        if c.name != "require" {
            break;
        }
        let mut a = Args::new(&c.name, c.at, &c.arguments, &c.tests);
        for name in a.strings("the extensions to require")? {
            let name = name.to_ascii_lowercase();
            if !EXTENSIONS.contains(&name.as_str()) {
                return Err(error(c.at, format!("extension {name:?} is not supported")));
            }
            extensions.insert(name);
        }
        a.done()?;
        if c.block.is_some() {
            return Err(error(c.at, "require takes no block"));
        }
        body = rest;
    }
    let checker = Checker { ext: &extensions };
    let commands = checker.block(body)?;
    Ok(Script {
        extensions,
        commands,
    })
}

struct Checker<'a> {
    ext: &'a BTreeSet<String>,
}

impl Checker<'_> {
    fn need(&self, ext: &str, at: Position, what: &str) -> Result<(), SyntaxError> {
        if self.ext.contains(ext) {
            Ok(())
        } else {
            Err(error(at, format!("{what} needs require \"{ext}\"")))
        }
    }

    fn block(&self, commands: &[grammar::Command]) -> Result<Vec<Command>, SyntaxError> {
        let mut out: Vec<Command> = Vec::new();
        for c in commands {
            match c.name.as_str() {
                "elsif" | "else" => {
                    let Some(Command::If {
                        otherwise: None, ..
                    }) = out.last()
                    else {
                        return Err(error(c.at, format!("{} without an if before it", c.name)));
                    };
                    let block = self.block(
                        c.block
                            .as_deref()
                            .ok_or_else(|| error(c.at, format!("{} needs a block", c.name)))?,
                    )?;
                    let test = if c.name == "elsif" {
                        let mut a = Args::new(&c.name, c.at, &c.arguments, &c.tests);
                        let t = a.test(self)?;
                        a.done()?;
                        Some(t)
                    } else {
                        Args::new(&c.name, c.at, &c.arguments, &c.tests).done()?;
                        None
                    };
                    if let Some(Command::If {
                        branches,
                        otherwise,
                    }) = out.last_mut()
                    {
                        match test {
                            Some(t) => branches.push((t, block)),
                            None => *otherwise = Some(block),
                        }
                    }
                }
                _ => out.push(self.command(c)?),
            }
        }
        Ok(out)
    }

    fn command(&self, c: &grammar::Command) -> Result<Command, SyntaxError> {
        let at = c.at;
        let mut a = Args::new(&c.name, at, &c.arguments, &c.tests);
        let plain = |c: &grammar::Command| -> Result<(), SyntaxError> {
            if c.block.is_some() {
                Err(error(c.at, format!("{} takes no block", c.name)))
            } else {
                Ok(())
            }
        };
        let cmd = match c.name.as_str() {
            "require" => return Err(error(at, "require must come before every other command")),
            "if" => {
                let test = a.test(self)?;
                a.done()?;
                let block = c
                    .block
                    .as_deref()
                    .ok_or_else(|| error(at, "if needs a block"))?;
                return Ok(Command::If {
                    branches: vec![(test, self.block(block)?)],
                    otherwise: None,
                });
            }
            "stop" => Command::Stop,
            "keep" => {
                let flags = self.flags_tag(&mut a)?;
                Command::Keep { flags }
            }
            "discard" => Command::Discard,
            "redirect" => {
                let copy = self.copy_tag(&mut a)?;
                Command::Redirect {
                    address: a.string("the address to redirect to")?,
                    copy,
                }
            }
            "fileinto" => {
                self.need("fileinto", at, "fileinto")?;
                let copy = self.copy_tag(&mut a)?;
                let create = a.flag("create");
                if create {
                    self.need("mailbox", at, "fileinto :create")?;
                }
                let flags = self.flags_tag(&mut a)?;
                Command::FileInto {
                    mailbox: a.string("the mailbox")?,
                    copy,
                    create,
                    flags,
                }
            }
            "reject" => {
                self.need("reject", at, "reject")?;
                Command::Reject(a.string("the reason")?)
            }
            "ereject" => {
                self.need("ereject", at, "ereject")?;
                Command::Ereject(a.string("the reason")?)
            }
            "vacation" => {
                self.need("vacation", at, "vacation")?;
                let days = a.number_tag("days")?;
                let seconds = a.number_tag("seconds")?;
                let period = match (days, seconds) {
                    (Some(_), Some(_)) => {
                        return Err(error(at, "vacation takes :days or :seconds, not both"));
                    }
                    // RFC 5230 §4.1: at least one day; the default is seven.
                    (Some(d), None) => d.clamp(1, 365) * 86400,
                    (None, Some(s)) => s.clamp(3600, 365 * 86400),
                    (None, None) => 7 * 86400,
                };
                Command::Vacation(Vacation {
                    period,
                    subject: a.string_tag("subject")?,
                    from: a.string_tag("from")?,
                    addresses: a.strings_tag("addresses")?.unwrap_or_default(),
                    mime: a.flag("mime"),
                    handle: a.string_tag("handle")?,
                    reason: a.string("the reason")?,
                })
            }
            "setflag" | "addflag" | "removeflag" => {
                self.need("imap4flags", at, &c.name)?;
                let op = match c.name.as_str() {
                    "setflag" => FlagOp::Set,
                    "addflag" => FlagOp::Add,
                    _ => FlagOp::Remove,
                };
                let first = a.strings("the flags")?;
                let (variable, flags) = match a.maybe_strings() {
                    Some(flags) => {
                        self.need("variables", at, "a flag variable")?;
                        (Some(single(at, first)?), flags)
                    }
                    None => (None, first),
                };
                Command::Flags {
                    op,
                    variable,
                    flags,
                }
            }
            "set" => {
                self.need("variables", at, "set")?;
                let mut modifiers = Vec::new();
                for m in [
                    "lower",
                    "upper",
                    "lowerfirst",
                    "upperfirst",
                    "quotewildcard",
                    "length",
                    "encodeurl",
                ] {
                    if a.flag(m) {
                        modifiers.push(m.to_string());
                    }
                }
                let name = a.string("the variable name")?;
                if !is_variable_name(&name) {
                    return Err(error(at, format!("{name:?} is no variable name")));
                }
                Command::Set {
                    name,
                    value: a.string("the value")?,
                    modifiers,
                }
            }
            "addheader" => {
                self.need("editheader", at, "addheader")?;
                let last = a.flag("last");
                let name = a.string("the field name")?;
                if !field_name(&name) {
                    return Err(error(at, format!("{name:?} is no header field name")));
                }
                Command::AddHeader {
                    last,
                    name,
                    value: a.string("the value")?,
                }
            }
            "deleteheader" => {
                self.need("editheader", at, "deleteheader")?;
                let index = self.index_tags(&mut a)?;
                let m = self.match_tags(&mut a)?;
                let name = a.string("the field name")?;
                let keys = a.maybe_strings();
                Command::DeleteHeader {
                    index,
                    name,
                    m: keys.map(|keys| Match { keys, ..m }),
                }
            }
            "include" => {
                self.need("include", at, "include")?;
                let personal = !a.flag("global");
                a.flag("personal");
                let once = a.flag("once");
                let optional = a.flag("optional");
                let name = a.string("the script name")?;
                Command::Include {
                    personal,
                    once,
                    optional,
                    name,
                }
            }
            "return" => {
                self.need("include", at, "return")?;
                Command::Return
            }
            other => return Err(error(at, format!("unknown command {other:?}"))),
        };
        a.done()?;
        plain(c)?;
        Ok(cmd)
    }

    fn copy_tag(&self, a: &mut Args<'_>) -> Result<bool, SyntaxError> {
        let copy = a.flag("copy");
        if copy {
            self.need("copy", a.at, ":copy")?;
        }
        Ok(copy)
    }

    fn flags_tag(&self, a: &mut Args<'_>) -> Result<Option<Vec<String>>, SyntaxError> {
        let flags = a.strings_tag("flags")?;
        if flags.is_some() {
            self.need("imap4flags", a.at, ":flags")?;
        }
        Ok(flags)
    }

    fn index_tags(&self, a: &mut Args<'_>) -> Result<Option<(u64, bool)>, SyntaxError> {
        let index = a.number_tag("index")?;
        let last = a.flag("last");
        if index.is_some() || last {
            self.need("index", a.at, ":index")?;
        }
        match (index, last) {
            (Some(0), _) => Err(error(a.at, ":index counts from 1")),
            (Some(i), last) => Ok(Some((i, last))),
            (None, true) => Err(error(a.at, ":last needs :index")),
            (None, false) => Ok(None),
        }
    }

    /// `:comparator`, a match type and `:count`/`:value`.
    fn match_tags(&self, a: &mut Args<'_>) -> Result<Match, SyntaxError> {
        let comparator = match a.string_tag("comparator")?.as_deref() {
            None | Some("i;ascii-casemap") => Comparator::AsciiCasemap,
            Some("i;octet") => Comparator::Octet,
            Some("i;ascii-numeric") => {
                self.need("comparator-i;ascii-numeric", a.at, "i;ascii-numeric")?;
                Comparator::AsciiNumeric
            }
            Some(other) => {
                return Err(error(
                    a.at,
                    format!("comparator {other:?} is not supported"),
                ));
            }
        };
        let mut types = Vec::new();
        for t in ["is", "contains", "matches"] {
            if a.flag(t) {
                types.push(match t {
                    "is" => MatchType::Is,
                    "contains" => MatchType::Contains,
                    _ => MatchType::Matches,
                });
            }
        }
        for t in ["value", "count"] {
            if let Some(r) = a.string_tag(t)? {
                self.need("relational", a.at, &format!(":{t}"))?;
                let rel = match r.to_ascii_lowercase().as_str() {
                    "gt" => Relation::Gt,
                    "ge" => Relation::Ge,
                    "lt" => Relation::Lt,
                    "le" => Relation::Le,
                    "eq" => Relation::Eq,
                    "ne" => Relation::Ne,
                    other => {
                        return Err(error(a.at, format!("{other:?} is no relational operator")));
                    }
                };
                types.push(if t == "value" {
                    MatchType::Value(rel)
                } else {
                    MatchType::Count(rel)
                });
            }
        }
        if types.len() > 1 {
            return Err(error(a.at, "only one match type"));
        }
        Ok(Match {
            comparator,
            match_type: types.pop().unwrap_or_default(),
            keys: Vec::new(),
        })
    }

    fn address_part(&self, a: &mut Args<'_>) -> Result<AddressPart, SyntaxError> {
        let mut parts = Vec::new();
        for (t, p) in [
            ("all", AddressPart::All),
            ("localpart", AddressPart::LocalPart),
            ("domain", AddressPart::Domain),
            ("user", AddressPart::User),
            ("detail", AddressPart::Detail),
        ] {
            if a.flag(t) {
                if matches!(p, AddressPart::User | AddressPart::Detail) {
                    self.need("subaddress", a.at, &format!(":{t}"))?;
                }
                parts.push(p);
            }
        }
        if parts.len() > 1 {
            return Err(error(a.at, "only one address part"));
        }
        Ok(parts.pop().unwrap_or_default())
    }

    fn test(&self, t: &GTest) -> Result<Test, SyntaxError> {
        let at = t.at;
        let mut a = Args::new(&t.name, at, &t.arguments, &t.tests);
        let test = match t.name.as_str() {
            "true" => Test::True,
            "false" => Test::False,
            "not" => Test::Not(Box::new(a.test(self)?)),
            "allof" | "anyof" => {
                let tests = a.tests(self)?;
                if t.name == "allof" {
                    Test::AllOf(tests)
                } else {
                    Test::AnyOf(tests)
                }
            }
            "address" => {
                let index = self.index_tags(&mut a)?;
                let part = self.address_part(&mut a)?;
                let mut m = self.match_tags(&mut a)?;
                let headers = a.strings("the header fields")?;
                m.keys = a.strings("the keys")?;
                Test::Address {
                    part,
                    headers,
                    m,
                    index,
                }
            }
            "envelope" => {
                self.need("envelope", at, "envelope")?;
                let part = self.address_part(&mut a)?;
                let mut m = self.match_tags(&mut a)?;
                let parts = a.strings("the envelope parts")?;
                m.keys = a.strings("the keys")?;
                Test::Envelope { part, parts, m }
            }
            "header" => {
                let index = self.index_tags(&mut a)?;
                let mut m = self.match_tags(&mut a)?;
                let headers = a.strings("the header fields")?;
                m.keys = a.strings("the keys")?;
                Test::Header { headers, m, index }
            }
            "exists" => Test::Exists(a.strings("the header fields")?),
            "size" => {
                let over = a.flag("over");
                let under = a.flag("under");
                if over == under {
                    return Err(error(at, "size needs :over or :under"));
                }
                Test::Size {
                    over,
                    limit: a.number("the size")?,
                }
            }
            "body" => {
                self.need("body", at, "body")?;
                let mut m = self.match_tags(&mut a)?;
                let transform = if a.flag("raw") {
                    BodyTransform::Raw
                } else if let Some(types) = a.strings_tag("content")? {
                    BodyTransform::Content(types)
                } else {
                    a.flag("text");
                    BodyTransform::Text
                };
                // The match tags may also follow the transform.
                let more = self.match_tags(&mut a)?;
                if more != Match::default() {
                    m = more;
                }
                m.keys = a.strings("the keys")?;
                Test::Body { transform, m }
            }
            "string" => {
                self.need("variables", at, "string")?;
                let mut m = self.match_tags(&mut a)?;
                let sources = a.strings("the strings")?;
                m.keys = a.strings("the keys")?;
                Test::String { sources, m }
            }
            "hasflag" => {
                self.need("imap4flags", at, "hasflag")?;
                let mut m = self.match_tags(&mut a)?;
                let first = a.strings("the flags")?;
                let (variables, keys) = match a.maybe_strings() {
                    Some(keys) => (first, keys),
                    None => (Vec::new(), first),
                };
                m.keys = keys;
                Test::HasFlag { variables, m }
            }
            "date" | "currentdate" => {
                self.need("date", at, &t.name)?;
                let index = if t.name == "date" {
                    self.index_tags(&mut a)?
                } else {
                    None
                };
                let zone = a.string_tag("zone")?;
                let original_zone = t.name == "date" && a.flag("originalzone");
                // RFC 5260 §4.1: one of the two; a literal zone must be one.
                if original_zone && zone.is_some() {
                    return Err(error(at, ":zone and :originalzone exclude each other"));
                }
                if let Some(z) = &zone
                    && !z.contains("${")
                    && crate::date::zone_offset(z).is_none()
                {
                    return Err(error(
                        at,
                        format!("{z:?} is no zone (\"+0100\", \"-0500\")"),
                    ));
                }
                let mut m = self.match_tags(&mut a)?;
                let header = if t.name == "date" {
                    Some(a.string("the header field")?)
                } else {
                    None
                };
                let part = a.string("the date part")?.to_ascii_lowercase();
                if !DATE_PARTS.contains(&part.as_str()) {
                    return Err(error(at, format!("{part:?} is no date part")));
                }
                m.keys = a.strings("the keys")?;
                match header {
                    Some(header) => Test::Date {
                        zone,
                        original_zone,
                        header,
                        part,
                        m,
                        index,
                    },
                    None => Test::CurrentDate { zone, part, m },
                }
            }
            "mailboxexists" => {
                self.need("mailbox", at, "mailboxexists")?;
                Test::MailboxExists(a.strings("the mailboxes")?)
            }
            other => return Err(error(at, format!("unknown test {other:?}"))),
        };
        a.done()?;
        Ok(test)
    }
}

/// RFC 5260 §4.2.
const DATE_PARTS: &[&str] = &[
    "year", "month", "day", "date", "julian", "hour", "minute", "second", "time", "iso8601",
    "std11", "zone", "weekday",
];

/// RFC 5229 §3: identifier, or a number for a match variable.
pub fn is_variable_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 128
        && (n.bytes().all(|b| b.is_ascii_digit())
            || n.split('.').all(|p| {
                !p.is_empty()
                    && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                    && !p.as_bytes()[0].is_ascii_digit()
            }))
}

/// RFC 5322 §3.6.8.
fn field_name(n: &str) -> bool {
    !n.is_empty() && n.len() <= 200 && n.bytes().all(|b| (33..=126).contains(&b) && b != b':')
}

fn single(at: Position, mut v: Vec<String>) -> Result<String, SyntaxError> {
    if v.len() == 1 {
        Ok(v.remove(0))
    } else {
        Err(error(at, "expected one string, not a list"))
    }
}

/// The arguments of one command or test, taken as its checker asks for them: tags first
/// (in any order), then the positional arguments, then tests.
struct Args<'a> {
    name: &'a str,
    at: Position,
    /// What is not taken yet.
    rest: std::collections::VecDeque<(Argument, Position)>,
    tests: &'a [GTest],
    tests_taken: bool,
}

impl<'a> Args<'a> {
    fn new(
        name: &'a str,
        at: Position,
        args: &'a [(Argument, Position)],
        tests: &'a [GTest],
    ) -> Self {
        Args {
            name,
            at,
            rest: args.iter().cloned().collect(),
            tests,
            tests_taken: false,
        }
    }

    /// Takes the tag `:name` (without a value) wherever it stands among the leading tags.
    fn flag(&mut self, name: &str) -> bool {
        self.take_tag(name).is_some()
    }

    fn take_tag(&mut self, name: &str) -> Option<usize> {
        let i = self
            .rest
            .iter()
            .position(|(a, _)| matches!(a, Argument::Tag(t) if t == name))?;
        self.rest.remove(i)?;
        Some(i)
    }

    fn tag_value(&mut self, name: &str) -> Result<Option<Argument>, SyntaxError> {
        let Some(i) = self.take_tag(name) else {
            return Ok(None);
        };
        match self.rest.remove(i) {
            Some((Argument::Tag(t), at)) => {
                Err(error(at, format!(":{name} needs a value, not :{t}")))
            }
            Some((v, _)) => {
                if self.take_tag(name).is_some() {
                    return Err(error(self.at, format!(":{name} given twice")));
                }
                Ok(Some(v))
            }
            None => Err(error(self.at, format!(":{name} needs a value"))),
        }
    }

    fn number_tag(&mut self, name: &str) -> Result<Option<u64>, SyntaxError> {
        match self.tag_value(name)? {
            None => Ok(None),
            Some(Argument::Number(n)) => Ok(Some(n)),
            Some(_) => Err(error(self.at, format!(":{name} needs a number"))),
        }
    }

    fn string_tag(&mut self, name: &str) -> Result<Option<String>, SyntaxError> {
        match self.tag_value(name)? {
            None => Ok(None),
            Some(Argument::Strings { mut values, list }) if !list || values.len() == 1 => {
                Ok(Some(values.remove(0)))
            }
            Some(_) => Err(error(self.at, format!(":{name} needs one string"))),
        }
    }

    fn strings_tag(&mut self, name: &str) -> Result<Option<Vec<String>>, SyntaxError> {
        match self.tag_value(name)? {
            None => Ok(None),
            Some(Argument::Strings { values, .. }) => Ok(Some(values)),
            Some(_) => Err(error(self.at, format!(":{name} needs a string list"))),
        }
    }

    /// The next positional argument; tags still in front of it are unknown ones.
    fn positional(&mut self, what: &str) -> Result<Argument, SyntaxError> {
        match self.rest.pop_front() {
            Some((Argument::Tag(t), at)) => {
                Err(error(at, format!("{} does not know :{t}", self.name)))
            }
            Some((a, _)) => Ok(a),
            None => Err(error(self.at, format!("{} needs {what}", self.name))),
        }
    }

    fn string(&mut self, what: &str) -> Result<String, SyntaxError> {
        match self.positional(what)? {
            Argument::Strings { mut values, list } if !list || values.len() == 1 => {
                Ok(values.remove(0))
            }
            _ => Err(error(
                self.at,
                format!("{} needs {what} as one string", self.name),
            )),
        }
    }

    fn strings(&mut self, what: &str) -> Result<Vec<String>, SyntaxError> {
        match self.positional(what)? {
            Argument::Strings { values, .. } => Ok(values),
            _ => Err(error(
                self.at,
                format!("{} needs {what} as strings", self.name),
            )),
        }
    }

    fn maybe_strings(&mut self) -> Option<Vec<String>> {
        match self.rest.front() {
            Some((Argument::Strings { .. }, _)) => match self.rest.pop_front() {
                Some((Argument::Strings { values, .. }, _)) => Some(values),
                _ => None,
            },
            _ => None,
        }
    }

    fn number(&mut self, what: &str) -> Result<u64, SyntaxError> {
        match self.positional(what)? {
            Argument::Number(n) => Ok(n),
            _ => Err(error(
                self.at,
                format!("{} needs {what} as a number", self.name),
            )),
        }
    }

    fn test(&mut self, c: &Checker<'_>) -> Result<Test, SyntaxError> {
        self.tests_taken = true;
        match self.tests {
            [t] => c.test(t),
            [] => Err(error(self.at, format!("{} needs a test", self.name))),
            _ => Err(error(
                self.at,
                format!("{} takes one test, not a list", self.name),
            )),
        }
    }

    fn tests(&mut self, c: &Checker<'_>) -> Result<Vec<Test>, SyntaxError> {
        self.tests_taken = true;
        if self.tests.is_empty() {
            return Err(error(self.at, format!("{} needs a test list", self.name)));
        }
        self.tests.iter().map(|t| c.test(t)).collect()
    }

    /// Nothing may be left over.
    fn done(&mut self) -> Result<(), SyntaxError> {
        if let Some((a, at)) = self.rest.front() {
            return Err(error(
                *at,
                match a {
                    Argument::Tag(t) => {
                        format!("{} does not know :{t} (or it is given twice)", self.name)
                    }
                    _ => format!("{} takes fewer arguments", self.name),
                },
            ));
        }
        if !self.tests_taken && !self.tests.is_empty() {
            return Err(error(self.at, format!("{} takes no test", self.name)));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests fail loudly by design
    use super::*;

    #[test]
    fn a_typical_script() {
        let s = compile(
            "require [\"fileinto\", \"imap4flags\", \"vacation\", \"subaddress\", \"copy\"];\n\
             if address :detail :is \"to\" \"lists\" { fileinto :copy :flags [\"\\\\Seen\"] \"Lists\"; stop; }\n\
             elsif header :contains [\"subject\"] \"urgent\" { addflag \"\\\\Flagged\"; }\n\
             else { keep; }\n\
             vacation :days 3 :subject \"Away\" :addresses [\"me@example.org\"] \"I am away.\";\n",
        )
        .unwrap();
        assert!(s.extensions.contains("vacation"));
        let Command::If {
            branches,
            otherwise,
        } = &s.commands[0]
        else {
            panic!()
        };
        assert_eq!(branches.len(), 2);
        assert!(otherwise.is_some());
        assert_eq!(
            branches[0].0,
            Test::Address {
                part: AddressPart::Detail,
                headers: vec!["to".into()],
                m: Match {
                    keys: vec!["lists".into()],
                    ..Match::default()
                },
                index: None
            }
        );
        assert_eq!(
            branches[0].1[0],
            Command::FileInto {
                mailbox: "Lists".into(),
                copy: true,
                create: false,
                flags: Some(vec!["\\Seen".into()])
            }
        );
        let Command::Vacation(v) = &s.commands[1] else {
            panic!()
        };
        assert_eq!(v.period, 3 * 86400);
        assert_eq!(v.subject.as_deref(), Some("Away"));
        assert_eq!(v.reason, "I am away.");
    }

    #[test]
    fn checks_with_their_place() {
        for (script, says) in [
            ("fileinto \"x\";", "needs require \"fileinto\""),
            ("require \"nonsense\";", "not supported"),
            ("keep; require \"fileinto\";", "must come before"),
            ("else { keep; }", "without an if"),
            (
                "if true { keep; } else { keep; } else { keep; }",
                "without an if",
            ),
            ("if true;", "needs a block"),
            ("keep { }", "takes no block"),
            ("frobnicate;", "unknown command"),
            ("if frob { }", "unknown test"),
            ("if size 10 { }", "needs :over or :under"),
            (
                "if header :is :contains \"a\" \"b\" { }",
                "only one match type",
            ),
            ("if header :bogus \"a\" \"b\" { }", "does not know :bogus"),
            ("if header \"a\" { }", "needs the keys"),
            ("redirect \"a@b\" \"c@d\";", "fewer arguments"),
            ("if true true { }", "takes no test"),
            (
                "require \"vacation\"; vacation :days 1 :seconds 3600 \"x\";",
                "not both",
            ),
            (
                "require \"variables\"; set \"1a\" \"x\";",
                "no variable name",
            ),
            (
                "if address :user \"to\" \"x\" { }",
                "needs require \"subaddress\"",
            ),
            (
                "require \"relational\"; if header :count \"xx\" \"a\" \"1\" { }",
                "no relational operator",
            ),
            (
                "require \"editheader\"; addheader \"bad name\" \"v\";",
                "no header field name",
            ),
            (
                "require \"date\"; if currentdate \"century\" \"21\" { }",
                "no date part",
            ),
            (
                "require \"date\"; if date :zone \"CET\" \"date\" \"year\" \"2026\" { }",
                "is no zone",
            ),
            (
                "require \"date\"; if date :zone \"+0100\" :originalzone \"date\" \"year\" \"2026\" { }",
                "exclude each other",
            ),
            (
                "require \"date\"; if currentdate :originalzone \"year\" \"2026\" { }",
                "originalzone",
            ),
        ] {
            let e = compile(script).unwrap_err();
            assert!(e.message.contains(says), "{script}: {e}");
        }
        let e = compile("keep;\nif header :bogus \"a\" \"b\" { }").unwrap_err();
        assert_eq!((e.at.line, e.at.column), (2, 11));
    }

    #[test]
    fn relational_index_body_and_flags() {
        let s = compile(
            "require [\"relational\", \"comparator-i;ascii-numeric\", \"index\", \"body\", \"imap4flags\", \"variables\"];\n\
             if header :count \"ge\" :comparator \"i;ascii-numeric\" \"received\" \"3\" { discard; }\n\
             if header :index 2 :last \"received\" \"x\" { keep; }\n\
             if body :content \"text\" :contains \"offer\" { keep; }\n\
             setflag \"myflags\" \"\\\\Seen\";\n",
        )
        .unwrap();
        let Command::If { branches, .. } = &s.commands[0] else {
            panic!()
        };
        assert_eq!(
            branches[0].0,
            Test::Header {
                headers: vec!["received".into()],
                m: Match {
                    comparator: Comparator::AsciiNumeric,
                    match_type: MatchType::Count(Relation::Ge),
                    keys: vec!["3".into()]
                },
                index: None
            }
        );
        let Command::If { branches, .. } = &s.commands[1] else {
            panic!()
        };
        assert!(matches!(
            branches[0].0,
            Test::Header {
                index: Some((2, true)),
                ..
            }
        ));
        let Command::If { branches, .. } = &s.commands[2] else {
            panic!()
        };
        assert!(matches!(
            &branches[0].0,
            Test::Body {
                transform: BodyTransform::Content(t),
                m: Match { match_type: MatchType::Contains, .. }
            } if t == &["text".to_string()]
        ));
        assert_eq!(
            s.commands[3],
            Command::Flags {
                op: FlagOp::Set,
                variable: Some("myflags".into()),
                flags: vec!["\\Seen".into()]
            }
        );
    }
}
