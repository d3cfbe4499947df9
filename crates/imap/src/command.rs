//! IMAP commands as values, and their parser (RFC 9051 §6 and §9 grammar, RFC 3501 for
//! IMAP4rev1, plus the extensions Kurier announces: IDLE RFC 2177, UIDPLUS RFC 4315, MOVE
//! RFC 6851, NAMESPACE RFC 2342, ID RFC 2971, ENABLE RFC 5161, LITERAL+ RFC 7888,
//! SPECIAL-USE/CREATE-SPECIAL-USE RFC 6154, LIST-EXTENDED RFC 5258, LIST-STATUS RFC 5819,
//! ESEARCH RFC 4731, SASL-IR RFC 4959, CONDSTORE and QRESYNC RFC 7162, UNSELECT RFC 3691, QUOTA RFC 9208,
//! BINARY RFC 3516). Input is one framed command (see `reader`), literals inline. Pure; never
//! panics on input.

use crate::date;
use crate::search::SearchKey;

/// A parse failure; `tag` is known once the tag was read (then the answer is tagged BAD).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub tag: Option<String>,
    pub message: String,
}

/// One end of a sequence range: a number or `*` (the largest in use).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeqNum {
    Value(u32),
    Largest,
}

/// A sequence set (RFC 9051 §9 `sequence-set`): ranges, in the order given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SequenceSet(pub Vec<(SeqNum, SeqNum)>);

impl SequenceSet {
    /// Whether `n` is in the set when `*` stands for `largest`.
    pub fn contains(&self, n: u32, largest: u32) -> bool {
        let v = |s: SeqNum| match s {
            SeqNum::Value(v) => v,
            SeqNum::Largest => largest,
        };
        self.0.iter().any(|&(a, b)| {
            let (lo, hi) = (v(a).min(v(b)), v(a).max(v(b)));
            (lo..=hi).contains(&n)
        })
    }
}

/// How STORE changes flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreMode {
    Add,
    Remove,
    Replace,
}

/// A body section (RFC 9051 §6.4.5): a part path and what of it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Section {
    pub part: Vec<u32>,
    pub text: Option<SectionText>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SectionText {
    Header,
    HeaderFields { not: bool, fields: Vec<String> },
    Text,
    Mime,
}

/// One FETCH data item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchAttr {
    Flags,
    Uid,
    InternalDate,
    Rfc822Size,
    Envelope,
    /// BODY without a section: BODYSTRUCTURE without extension data.
    Body,
    BodyStructure,
    Rfc822,
    Rfc822Header,
    Rfc822Text,
    Section {
        peek: bool,
        section: Section,
        partial: Option<(u32, u32)>,
    },
    Binary {
        peek: bool,
        part: Vec<u32>,
        partial: Option<(u32, u32)>,
    },
    BinarySize(Vec<u32>),
    ModSeq,
}

/// How much of a message a FETCH item reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Reads {
    /// Only what the store keeps beside it (flags, UID, dates, size, MODSEQ).
    Metadata,
    /// The top-level header (ENVELOPE, RFC822.HEADER, BODY[HEADER…]).
    Header,
    Body,
}

impl FetchAttr {
    pub fn reads(&self) -> Reads {
        match self {
            FetchAttr::Flags
            | FetchAttr::Uid
            | FetchAttr::InternalDate
            | FetchAttr::Rfc822Size
            | FetchAttr::ModSeq => Reads::Metadata,
            FetchAttr::Envelope | FetchAttr::Rfc822Header => Reads::Header,
            FetchAttr::Section {
                section:
                    Section {
                        part,
                        text: Some(SectionText::Header | SectionText::HeaderFields { .. }),
                    },
                ..
            } if part.is_empty() => Reads::Header,
            _ => Reads::Body,
        }
    }
}

/// STATUS items (RFC 9051 §6.3.11, RFC 7162 HIGHESTMODSEQ, RFC 9208 DELETED/SIZE).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusItem {
    Messages,
    Recent,
    UidNext,
    UidValidity,
    Unseen,
    Deleted,
    Size,
    HighestModSeq,
}

/// SELECT's QRESYNC parameter (RFC 7162 §3.2.5): what the client knew.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Qresync {
    pub uid_validity: u32,
    pub modseq: u64,
    /// Limits the VANISHED answer to these UIDs.
    pub known_uids: Option<SequenceSet>,
}

/// ESEARCH return options (RFC 4731).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchReturn {
    Min,
    Max,
    All,
    Count,
}

/// LIST-EXTENDED options (RFC 5258), with LIST-STATUS (RFC 5819) and SPECIAL-USE (RFC 6154).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListOptions {
    pub select_subscribed: bool,
    pub select_special_use: bool,
    pub recursive_match: bool,
    pub return_subscribed: bool,
    pub return_children: bool,
    pub return_special_use: bool,
    pub return_status: Option<Vec<StatusItem>>,
}

/// An IMAP command. Mailbox names are as sent (modified UTF-7 in IMAP4rev1 mode); the session
/// decodes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Capability,
    Noop,
    Logout,
    StartTls,
    Authenticate {
        mechanism: String,
        initial: Option<String>,
    },
    Login {
        user: Vec<u8>,
        password: Vec<u8>,
    },
    Enable(Vec<String>),
    Id(Vec<(String, Option<String>)>),
    Select {
        mailbox: Vec<u8>,
        read_only: bool,
        condstore: bool,
        qresync: Option<Qresync>,
    },
    Create {
        mailbox: Vec<u8>,
        special_use: Vec<String>,
    },
    Delete(Vec<u8>),
    Rename {
        from: Vec<u8>,
        to: Vec<u8>,
    },
    Subscribe(Vec<u8>),
    Unsubscribe(Vec<u8>),
    List {
        reference: Vec<u8>,
        patterns: Vec<Vec<u8>>,
        options: ListOptions,
        /// LIST-EXTENDED syntax was used (selection or return options): answers carry the
        /// extended data.
        extended: bool,
    },
    Lsub {
        reference: Vec<u8>,
        pattern: Vec<u8>,
    },
    Namespace,
    Status {
        mailbox: Vec<u8>,
        items: Vec<StatusItem>,
    },
    Append {
        mailbox: Vec<u8>,
        flags: Vec<String>,
        date: Option<i64>,
        message: Vec<u8>,
    },
    Idle,
    Check,
    Close,
    Unselect,
    Expunge {
        uids: Option<SequenceSet>,
    },
    Search {
        uid: bool,
        ret: Option<Vec<SearchReturn>>,
        key: SearchKey,
    },
    Fetch {
        uid: bool,
        set: SequenceSet,
        items: Vec<FetchAttr>,
        changed_since: Option<u64>,
        /// UID FETCH … (CHANGEDSINCE n VANISHED): report expunged UIDs too (RFC 7162 §3.2.6).
        vanished: bool,
    },
    Store {
        uid: bool,
        set: SequenceSet,
        unchanged_since: Option<u64>,
        mode: StoreMode,
        silent: bool,
        flags: Vec<String>,
    },
    Copy {
        uid: bool,
        set: SequenceSet,
        mailbox: Vec<u8>,
    },
    Move {
        uid: bool,
        set: SequenceSet,
        mailbox: Vec<u8>,
    },
    GetQuota(Vec<u8>),
    GetQuotaRoot(Vec<u8>),
    SetQuota,
}

/// The connection state a command belongs to (RFC 9051 §6.1–§6.4). Commands of the
/// authenticated state stay valid once a mailbox is selected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandState {
    /// §6.1 CAPABILITY, NOOP, LOGOUT, and ID (RFC 2971).
    Any,
    /// §6.2 STARTTLS, AUTHENTICATE, LOGIN.
    NotAuthenticated,
    /// §6.3, with IDLE (RFC 2177), NAMESPACE (RFC 2342) and QUOTA (RFC 9208).
    Authenticated,
    /// §6.4, with CHECK (RFC 3501 §6.4.1).
    Selected,
}

impl Command {
    pub fn state(&self) -> CommandState {
        match self {
            Command::Capability | Command::Noop | Command::Logout | Command::Id(_) => {
                CommandState::Any
            }
            Command::StartTls | Command::Authenticate { .. } | Command::Login { .. } => {
                CommandState::NotAuthenticated
            }
            Command::Enable(_)
            | Command::Select { .. }
            | Command::Create { .. }
            | Command::Delete(_)
            | Command::Rename { .. }
            | Command::Subscribe(_)
            | Command::Unsubscribe(_)
            | Command::List { .. }
            | Command::Lsub { .. }
            | Command::Namespace
            | Command::Status { .. }
            | Command::Append { .. }
            | Command::Idle
            | Command::GetQuota(_)
            | Command::GetQuotaRoot(_)
            | Command::SetQuota => CommandState::Authenticated,
            Command::Check
            | Command::Close
            | Command::Unselect
            | Command::Expunge { .. }
            | Command::Search { .. }
            | Command::Fetch { .. }
            | Command::Store { .. }
            | Command::Copy { .. }
            | Command::Move { .. } => CommandState::Selected,
        }
    }
}

/// How deep parenthesised or NOT/OR search keys may nest (RFC 9051 sets no limit; Dovecot's
/// parser stops at a similar depth). Deeper input gets BAD instead of exhausting the stack.
pub const MAX_NESTING: u32 = 64;

/// The commands a client that has not logged in may send (RFC 9051 §6.1, §6.2). Anything else
/// is refused by name, before its arguments are parsed.
const BEFORE_LOGIN: &[&str] = &[
    "CAPABILITY",
    "NOOP",
    "LOGOUT",
    "STARTTLS",
    "AUTHENTICATE",
    "LOGIN",
    "ID",
];

/// Parses one framed command (ending in CRLF) of a logged-in client.
pub fn parse(input: &[u8]) -> Result<(String, Command), ParseError> {
    parse_in(input, true)
}

/// Parses one framed command; `authenticated` false refuses every command not allowed before
/// login without parsing its arguments (hostile input meets the smallest parser first).
pub fn parse_in(input: &[u8], authenticated: bool) -> Result<(String, Command), ParseError> {
    let mut p = Parser {
        s: input,
        i: 0,
        depth: 0,
        authenticated,
    };
    let tag = p
        .tag()
        .map_err(|message| ParseError { tag: None, message })?;
    let tagged = |message: String| ParseError {
        tag: Some(tag.clone()),
        message,
    };
    p.sp().map_err(tagged)?;
    let command = p.command().map_err(tagged)?;
    p.end().map_err(tagged)?;
    Ok((tag, command))
}

type PResult<T> = Result<T, String>;

pub(crate) struct Parser<'a> {
    pub(crate) s: &'a [u8],
    pub(crate) i: usize,
    /// Current nesting of recursive constructs (search keys), at most `MAX_NESTING`.
    pub(crate) depth: u32,
    authenticated: bool,
}

fn is_atom_char(b: u8) -> bool {
    b > 0x20 && b < 0x7f && !b"(){%*\"\\]".contains(&b)
}

fn is_astring_char(b: u8) -> bool {
    is_atom_char(b) || b == b']'
}

impl<'a> Parser<'a> {
    pub(crate) fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    pub(crate) fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn eat_word(&mut self, w: &str) -> bool {
        let end = self.i + w.len();
        let matches = self
            .s
            .get(self.i..end)
            .is_some_and(|s| s.eq_ignore_ascii_case(w.as_bytes()))
            && self
                .s
                .get(end)
                .is_none_or(|&b| !is_atom_char(b) || b == b'[');
        if matches {
            self.i = end;
        }
        matches
    }

    pub(crate) fn expect(&mut self, b: u8) -> PResult<()> {
        if self.eat(b) {
            Ok(())
        } else {
            Err(format!("expected {:?} at offset {}", char::from(b), self.i))
        }
    }

    pub(crate) fn sp(&mut self) -> PResult<()> {
        self.expect(b' ')
    }

    pub(crate) fn at_end(&self) -> bool {
        matches!(&self.s[self.i.min(self.s.len())..], b"\r\n" | b"")
    }

    fn end(&mut self) -> PResult<()> {
        if self.at_end() {
            Ok(())
        } else {
            Err(format!("unexpected text at offset {}", self.i))
        }
    }

    fn tag(&mut self) -> PResult<String> {
        let start = self.i;
        while self.peek().is_some_and(|b| is_astring_char(b) && b != b'+') {
            self.i += 1;
        }
        if self.i == start {
            return Err("a command starts with a tag".into());
        }
        Ok(String::from_utf8_lossy(&self.s[start..self.i]).into_owned())
    }

    pub(crate) fn atom(&mut self) -> PResult<String> {
        let start = self.i;
        while self.peek().is_some_and(is_atom_char) {
            self.i += 1;
        }
        if self.i == start {
            return Err(format!("expected an atom at offset {}", self.i));
        }
        Ok(String::from_utf8_lossy(&self.s[start..self.i]).into_owned())
    }

    fn quoted(&mut self) -> PResult<Vec<u8>> {
        self.expect(b'"')?;
        let mut out = Vec::new();
        loop {
            match self.peek() {
                Some(b'"') => {
                    self.i += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.i += 1;
                    match self.peek() {
                        Some(c @ (b'"' | b'\\')) => {
                            out.push(c);
                            self.i += 1;
                        }
                        _ => return Err("bad escape in a quoted string".into()),
                    }
                }
                Some(b'\r' | b'\n' | 0) | None => {
                    return Err("unterminated quoted string".into());
                }
                Some(c) => {
                    out.push(c);
                    self.i += 1;
                }
            }
        }
    }

    fn literal(&mut self) -> PResult<Vec<u8>> {
        self.eat(b'~');
        self.expect(b'{')?;
        let n = self.number()?;
        self.eat(b'+');
        self.expect(b'}')?;
        self.expect(b'\r')?;
        self.expect(b'\n')?;
        let n = usize::try_from(n).map_err(|_| "literal too large".to_string())?;
        let end = self
            .i
            .checked_add(n)
            .filter(|&e| e <= self.s.len())
            .ok_or("literal shorter than announced")?;
        let v = self.s[self.i..end].to_vec();
        self.i = end;
        Ok(v)
    }

    pub(crate) fn string(&mut self) -> PResult<Vec<u8>> {
        match self.peek() {
            Some(b'"') => self.quoted(),
            Some(b'{') => self.literal(),
            Some(b'~') if self.literal8_ahead() => self.literal(),
            _ => Err(format!("expected a string at offset {}", self.i)),
        }
    }

    /// `~{` starts a literal8 (RFC 3516); a lone `~` is an ordinary atom character.
    fn literal8_ahead(&self) -> bool {
        self.s.get(self.i..self.i + 2) == Some(b"~{")
    }

    pub(crate) fn astring(&mut self) -> PResult<Vec<u8>> {
        match self.peek() {
            Some(b'"' | b'{') => self.string(),
            Some(b'~') if self.literal8_ahead() => self.string(),
            _ => {
                let start = self.i;
                while self.peek().is_some_and(is_astring_char) {
                    self.i += 1;
                }
                if self.i == start {
                    return Err(format!("expected a string at offset {}", self.i));
                }
                Ok(self.s[start..self.i].to_vec())
            }
        }
    }

    /// `astring` that must be UTF-8 (user names, header names, search strings).
    pub(crate) fn astring_text(&mut self) -> PResult<String> {
        String::from_utf8(self.astring()?).map_err(|_| "the string is not UTF-8".to_string())
    }

    fn nstring_text(&mut self) -> PResult<Option<String>> {
        if self.eat_word("NIL") {
            return Ok(None);
        }
        let v = self.string()?;
        Ok(Some(String::from_utf8_lossy(&v).into_owned()))
    }

    pub(crate) fn number(&mut self) -> PResult<u64> {
        let start = self.i;
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.i += 1;
        }
        std::str::from_utf8(&self.s[start..self.i])
            .ok()
            .and_then(|d| d.parse().ok())
            .ok_or_else(|| format!("expected a number at offset {start}"))
    }

    pub(crate) fn nz_number(&mut self) -> PResult<u32> {
        match u32::try_from(self.number()?) {
            Ok(n) if n > 0 => Ok(n),
            _ => Err("expected a number from 1 to 4294967295".into()),
        }
    }

    fn seq_num(&mut self) -> PResult<SeqNum> {
        if self.eat(b'*') {
            Ok(SeqNum::Largest)
        } else {
            Ok(SeqNum::Value(self.nz_number()?))
        }
    }

    pub(crate) fn sequence_set(&mut self) -> PResult<SequenceSet> {
        let mut out = Vec::new();
        loop {
            let a = self.seq_num()?;
            let b = if self.eat(b':') { self.seq_num()? } else { a };
            out.push((a, b));
            if !self.eat(b',') {
                return Ok(SequenceSet(out));
            }
        }
    }

    /// `(a b c)` of items parsed by `item`; empty lists allowed.
    pub(crate) fn list<T>(
        &mut self,
        mut item: impl FnMut(&mut Self) -> PResult<T>,
    ) -> PResult<Vec<T>> {
        self.expect(b'(')?;
        let mut out = Vec::new();
        if self.eat(b')') {
            return Ok(out);
        }
        loop {
            out.push(item(self)?);
            if self.eat(b')') {
                return Ok(out);
            }
            self.sp()?;
        }
    }

    fn flag(&mut self) -> PResult<String> {
        if self.eat(b'\\') {
            Ok(format!("\\{}", self.atom()?))
        } else {
            self.atom()
        }
    }

    fn flag_list(&mut self) -> PResult<Vec<String>> {
        self.list(Self::flag)
    }

    /// `date` (RFC 9051 §9): `d-Mon-yyyy`, optionally quoted; as days since the epoch.
    pub(crate) fn date(&mut self) -> PResult<i64> {
        let quoted = self.eat(b'"');
        let start = self.i;
        while self
            .peek()
            .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            self.i += 1;
        }
        let text = std::str::from_utf8(&self.s[start..self.i]).unwrap_or_default();
        let days = date::parse_date(text).ok_or_else(|| format!("bad date {text:?}"))?;
        if quoted {
            self.expect(b'"')?;
        }
        Ok(days)
    }

    /// Enters one level of nesting; `leave` must follow. Refuses input nested too deep.
    pub(crate) fn enter(&mut self) -> PResult<()> {
        if self.depth >= MAX_NESTING {
            return Err(format!(
                "[LIMIT] nested more than {MAX_NESTING} levels deep"
            ));
        }
        self.depth += 1;
        Ok(())
    }

    pub(crate) fn leave(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }

    fn command(&mut self) -> PResult<Command> {
        let name = self.atom()?.to_ascii_uppercase();
        if !self.authenticated && !BEFORE_LOGIN.contains(&name.as_str()) {
            return Err(format!("[CLIENTBUG] {name} needs a login first"));
        }
        Ok(match name.as_str() {
            "CAPABILITY" => Command::Capability,
            "NOOP" => Command::Noop,
            "LOGOUT" => Command::Logout,
            "STARTTLS" => Command::StartTls,
            "AUTHENTICATE" => {
                self.sp()?;
                let mechanism = self.atom()?.to_ascii_uppercase();
                let initial = if self.eat(b' ') {
                    if self.eat(b'=') {
                        Some(String::new())
                    } else {
                        Some(self.atom()?)
                    }
                } else {
                    None
                };
                Command::Authenticate { mechanism, initial }
            }
            "LOGIN" => {
                self.sp()?;
                let user = self.astring()?;
                self.sp()?;
                let password = self.astring()?;
                Command::Login { user, password }
            }
            "ENABLE" => {
                let mut caps = Vec::new();
                while self.eat(b' ') {
                    caps.push(self.atom()?.to_ascii_uppercase());
                }
                if caps.is_empty() {
                    return Err("ENABLE needs at least one capability".into());
                }
                Command::Enable(caps)
            }
            "ID" => {
                self.sp()?;
                if self.eat_word("NIL") {
                    Command::Id(Vec::new())
                } else {
                    Command::Id(self.list(|p| {
                        let k = String::from_utf8_lossy(&p.string()?).into_owned();
                        p.sp()?;
                        Ok((k, p.nstring_text()?))
                    })?)
                }
            }
            "SELECT" | "EXAMINE" => {
                self.sp()?;
                let mailbox = self.astring()?;
                let mut condstore = false;
                let mut qresync = None;
                if self.eat(b' ') {
                    self.list(|p| {
                        match p.atom()?.to_ascii_uppercase().as_str() {
                            "CONDSTORE" => condstore = true,
                            "QRESYNC" => {
                                p.sp()?;
                                qresync = Some(p.qresync()?);
                            }
                            other => return Err(format!("unknown SELECT parameter {other}")),
                        }
                        Ok(())
                    })?;
                }
                Command::Select {
                    mailbox,
                    read_only: name == "EXAMINE",
                    condstore,
                    qresync,
                }
            }
            "CREATE" => {
                self.sp()?;
                let mailbox = self.astring()?;
                let mut special_use = Vec::new();
                if self.eat(b' ') {
                    self.expect(b'(')?;
                    if !self.eat_word("USE") {
                        return Err("the only CREATE parameter is USE".into());
                    }
                    self.sp()?;
                    special_use = self.flag_list()?;
                    self.expect(b')')?;
                }
                Command::Create {
                    mailbox,
                    special_use,
                }
            }
            "DELETE" => Command::Delete(self.sp_astring()?),
            "RENAME" => {
                let from = self.sp_astring()?;
                let to = self.sp_astring()?;
                Command::Rename { from, to }
            }
            "SUBSCRIBE" => Command::Subscribe(self.sp_astring()?),
            "UNSUBSCRIBE" => Command::Unsubscribe(self.sp_astring()?),
            "LIST" => self.list_command()?,
            "LSUB" => {
                let reference = self.sp_astring()?;
                self.sp()?;
                let pattern = self.list_mailbox()?;
                Command::Lsub { reference, pattern }
            }
            "NAMESPACE" => Command::Namespace,
            "STATUS" => {
                let mailbox = self.sp_astring()?;
                self.sp()?;
                let items = self.list(Self::status_item)?;
                Command::Status { mailbox, items }
            }
            "APPEND" => {
                let mailbox = self.sp_astring()?;
                self.sp()?;
                let mut flags = Vec::new();
                if self.peek() == Some(b'(') {
                    flags = self.flag_list()?;
                    self.sp()?;
                }
                let mut date = None;
                if self.peek() == Some(b'"') {
                    let text = self.quoted()?;
                    let text = String::from_utf8_lossy(&text);
                    date = Some(
                        date::parse_date_time(&text)
                            .ok_or_else(|| format!("bad date-time {text:?}"))?,
                    );
                    self.sp()?;
                }
                let message = self.literal()?;
                if !self.at_end() {
                    return Err("MULTIAPPEND is not supported".into());
                }
                Command::Append {
                    mailbox,
                    flags,
                    date,
                    message,
                }
            }
            "IDLE" => Command::Idle,
            "CHECK" => Command::Check,
            "CLOSE" => Command::Close,
            "UNSELECT" => Command::Unselect,
            "EXPUNGE" => Command::Expunge { uids: None },
            "SEARCH" => self.search(false)?,
            "FETCH" => self.fetch(false)?,
            "STORE" => self.store(false)?,
            "COPY" => self.copy(false, false)?,
            "MOVE" => self.copy(false, true)?,
            "UID" => {
                self.sp()?;
                let sub = self.atom()?.to_ascii_uppercase();
                match sub.as_str() {
                    "SEARCH" => self.search(true)?,
                    "FETCH" => self.fetch(true)?,
                    "STORE" => self.store(true)?,
                    "COPY" => self.copy(true, false)?,
                    "MOVE" => self.copy(true, true)?,
                    "EXPUNGE" => {
                        self.sp()?;
                        Command::Expunge {
                            uids: Some(self.sequence_set()?),
                        }
                    }
                    other => return Err(format!("unknown UID command {other}")),
                }
            }
            "GETQUOTA" => Command::GetQuota(self.sp_astring()?),
            "GETQUOTAROOT" => Command::GetQuotaRoot(self.sp_astring()?),
            "SETQUOTA" => {
                self.i = self.s.len();
                Command::SetQuota
            }
            other => return Err(format!("unknown command {other}")),
        })
    }

    fn sp_astring(&mut self) -> PResult<Vec<u8>> {
        self.sp()?;
        self.astring()
    }

    /// `list-mailbox`: like astring but `%` and `*` are allowed unquoted.
    fn list_mailbox(&mut self) -> PResult<Vec<u8>> {
        match self.peek() {
            Some(b'"' | b'{') => self.string(),
            Some(b'~') if self.literal8_ahead() => self.string(),
            _ => {
                let start = self.i;
                while self
                    .peek()
                    .is_some_and(|b| is_astring_char(b) || b == b'%' || b == b'*')
                {
                    self.i += 1;
                }
                if self.i == start {
                    return Err("expected a mailbox pattern".into());
                }
                Ok(self.s[start..self.i].to_vec())
            }
        }
    }

    /// `(uidvalidity modseq [known-uids [(seq-match)]])`; the sequence match data is read
    /// and not used (it only narrows what VANISHED must say).
    fn qresync(&mut self) -> PResult<Qresync> {
        self.expect(b'(')?;
        let uid_validity = self.nz_number()?;
        self.sp()?;
        let modseq = self.number()?;
        let mut known_uids = None;
        if self.eat(b' ') {
            if self.peek() == Some(b'(') {
                self.list(Self::sequence_set)?;
            } else {
                known_uids = Some(self.sequence_set()?);
                if self.eat(b' ') {
                    self.list(Self::sequence_set)?;
                }
            }
        }
        self.expect(b')')?;
        Ok(Qresync {
            uid_validity,
            modseq,
            known_uids,
        })
    }

    fn status_item(&mut self) -> PResult<StatusItem> {
        let a = self.atom()?.to_ascii_uppercase();
        Ok(match a.as_str() {
            "MESSAGES" => StatusItem::Messages,
            "RECENT" => StatusItem::Recent,
            "UIDNEXT" => StatusItem::UidNext,
            "UIDVALIDITY" => StatusItem::UidValidity,
            "UNSEEN" => StatusItem::Unseen,
            "DELETED" => StatusItem::Deleted,
            "SIZE" => StatusItem::Size,
            "HIGHESTMODSEQ" => StatusItem::HighestModSeq,
            other => return Err(format!("unknown STATUS item {other}")),
        })
    }

    fn list_command(&mut self) -> PResult<Command> {
        self.sp()?;
        let mut options = ListOptions::default();
        let mut extended = false;
        if self.peek() == Some(b'(') {
            extended = true;
            for o in self.list(Self::atom)? {
                match o.to_ascii_uppercase().as_str() {
                    "SUBSCRIBED" => options.select_subscribed = true,
                    "SPECIAL-USE" => options.select_special_use = true,
                    "RECURSIVEMATCH" => options.recursive_match = true,
                    "REMOTE" => {}
                    other => return Err(format!("unknown LIST selection option {other}")),
                }
            }
            if options.recursive_match && !options.select_subscribed {
                return Err("RECURSIVEMATCH needs another selection option".into());
            }
            self.sp()?;
        }
        let reference = self.astring()?;
        self.sp()?;
        let patterns = if self.peek() == Some(b'(') {
            extended = true;
            self.list(Self::list_mailbox)?
        } else {
            vec![self.list_mailbox()?]
        };
        if self.eat(b' ') {
            if !self.eat_word("RETURN") {
                return Err("expected RETURN".into());
            }
            extended = true;
            self.sp()?;
            self.expect(b'(')?;
            let mut first = true;
            while !self.eat(b')') {
                if !first {
                    self.sp()?;
                }
                first = false;
                let o = self.atom()?.to_ascii_uppercase();
                match o.as_str() {
                    "SUBSCRIBED" => options.return_subscribed = true,
                    "CHILDREN" => options.return_children = true,
                    "SPECIAL-USE" => options.return_special_use = true,
                    "STATUS" => {
                        self.sp()?;
                        options.return_status = Some(self.list(Self::status_item)?);
                    }
                    other => return Err(format!("unknown LIST return option {other}")),
                }
            }
        }
        Ok(Command::List {
            reference,
            patterns,
            options,
            extended,
        })
    }

    fn search(&mut self, uid: bool) -> PResult<Command> {
        self.sp()?;
        let mut ret = None;
        if self.eat_word("RETURN") {
            self.sp()?;
            let opts = self.list(|p| {
                Ok(match p.atom()?.to_ascii_uppercase().as_str() {
                    "MIN" => SearchReturn::Min,
                    "MAX" => SearchReturn::Max,
                    "ALL" => SearchReturn::All,
                    "COUNT" => SearchReturn::Count,
                    other => return Err(format!("unknown SEARCH return option {other}")),
                })
            })?;
            ret = Some(opts);
            self.sp()?;
        }
        if self.eat_word("CHARSET") {
            self.sp()?;
            let charset = self.astring_text()?.to_ascii_uppercase();
            if charset != "UTF-8" && charset != "US-ASCII" {
                return Err(format!("[BADCHARSET (UTF-8 US-ASCII)] charset {charset}"));
            }
            self.sp()?;
        }
        let mut keys = vec![SearchKey::parse(self)?];
        while self.eat(b' ') {
            keys.push(SearchKey::parse(self)?);
        }
        let key = if keys.len() == 1 {
            keys.remove(0)
        } else {
            SearchKey::And(keys)
        };
        Ok(Command::Search { uid, ret, key })
    }

    fn fetch(&mut self, uid: bool) -> PResult<Command> {
        self.sp()?;
        let set = self.sequence_set()?;
        self.sp()?;
        let mut items = if self.peek() == Some(b'(') {
            self.list(Self::fetch_attr)?
        } else if self.eat_word("ALL") {
            vec![
                FetchAttr::Flags,
                FetchAttr::InternalDate,
                FetchAttr::Rfc822Size,
                FetchAttr::Envelope,
            ]
        } else if self.eat_word("FAST") {
            vec![
                FetchAttr::Flags,
                FetchAttr::InternalDate,
                FetchAttr::Rfc822Size,
            ]
        } else if self.eat_word("FULL") {
            vec![
                FetchAttr::Flags,
                FetchAttr::InternalDate,
                FetchAttr::Rfc822Size,
                FetchAttr::Envelope,
                FetchAttr::Body,
            ]
        } else {
            vec![self.fetch_attr()?]
        };
        let mut changed_since = None;
        let mut vanished = false;
        if self.eat(b' ') {
            self.list(|p| {
                match p.atom()?.to_ascii_uppercase().as_str() {
                    "CHANGEDSINCE" => {
                        p.sp()?;
                        changed_since = Some(p.number()?);
                    }
                    "VANISHED" => vanished = true,
                    other => return Err(format!("unknown FETCH modifier {other}")),
                }
                Ok(())
            })?;
            if changed_since.is_none() {
                return Err("FETCH modifiers need CHANGEDSINCE".into());
            }
            if vanished && !uid {
                return Err("VANISHED only with UID FETCH (RFC 7162, 3.2.6)".into());
            }
            if !items.contains(&FetchAttr::ModSeq) {
                items.push(FetchAttr::ModSeq);
            }
        }
        Ok(Command::Fetch {
            uid,
            set,
            items,
            changed_since,
            vanished,
        })
    }

    fn fetch_attr(&mut self) -> PResult<FetchAttr> {
        let start = self.i;
        while self.peek().is_some_and(|b| is_atom_char(b) && b != b'[') {
            self.i += 1;
        }
        let name = String::from_utf8_lossy(&self.s[start..self.i]).to_ascii_uppercase();
        Ok(match name.as_str() {
            "FLAGS" => FetchAttr::Flags,
            "UID" => FetchAttr::Uid,
            "INTERNALDATE" => FetchAttr::InternalDate,
            "RFC822.SIZE" => FetchAttr::Rfc822Size,
            "ENVELOPE" => FetchAttr::Envelope,
            "BODYSTRUCTURE" => FetchAttr::BodyStructure,
            "RFC822" => FetchAttr::Rfc822,
            "RFC822.HEADER" => FetchAttr::Rfc822Header,
            "RFC822.TEXT" => FetchAttr::Rfc822Text,
            "MODSEQ" => FetchAttr::ModSeq,
            "BODY" if self.peek() != Some(b'[') => FetchAttr::Body,
            "BODY" | "BODY.PEEK" => {
                let section = self.section()?;
                let partial = self.partial()?;
                FetchAttr::Section {
                    peek: name == "BODY.PEEK",
                    section,
                    partial,
                }
            }
            "BINARY" | "BINARY.PEEK" | "BINARY.SIZE" => {
                self.expect(b'[')?;
                let part = self.part_path()?;
                self.expect(b']')?;
                if name == "BINARY.SIZE" {
                    FetchAttr::BinarySize(part)
                } else {
                    let partial = self.partial()?;
                    FetchAttr::Binary {
                        peek: name == "BINARY.PEEK",
                        part,
                        partial,
                    }
                }
            }
            "" => return Err(format!("expected a FETCH item at offset {start}")),
            other => return Err(format!("unknown FETCH item {other}")),
        })
    }

    fn part_path(&mut self) -> PResult<Vec<u32>> {
        let mut part = Vec::new();
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            part.push(self.nz_number()?);
            if !self.eat(b'.') {
                break;
            }
        }
        Ok(part)
    }

    fn section(&mut self) -> PResult<Section> {
        self.expect(b'[')?;
        let mut section = Section {
            part: self.part_path()?,
            text: None,
        };
        if self.peek() != Some(b']') {
            let start = self.i;
            while self
                .peek()
                .is_some_and(|b| b.is_ascii_alphabetic() || b == b'.')
            {
                self.i += 1;
            }
            let word = String::from_utf8_lossy(&self.s[start..self.i]).to_ascii_uppercase();
            section.text = Some(match word.as_str() {
                "HEADER" => SectionText::Header,
                "TEXT" => SectionText::Text,
                "MIME" if !section.part.is_empty() => SectionText::Mime,
                "HEADER.FIELDS" | "HEADER.FIELDS.NOT" => {
                    self.sp()?;
                    let fields = self.list(Self::astring_text)?;
                    if fields.is_empty() {
                        return Err("HEADER.FIELDS needs at least one field name".into());
                    }
                    SectionText::HeaderFields {
                        not: word.ends_with(".NOT"),
                        fields,
                    }
                }
                other => return Err(format!("unknown section {other:?}")),
            });
        }
        self.expect(b']')?;
        Ok(section)
    }

    fn partial(&mut self) -> PResult<Option<(u32, u32)>> {
        if !self.eat(b'<') {
            return Ok(None);
        }
        let offset = u32::try_from(self.number()?).map_err(|_| "partial offset too large")?;
        self.expect(b'.')?;
        let length = self.nz_number()?;
        self.expect(b'>')?;
        Ok(Some((offset, length)))
    }

    fn store(&mut self, uid: bool) -> PResult<Command> {
        self.sp()?;
        let set = self.sequence_set()?;
        self.sp()?;
        let mut unchanged_since = None;
        if self.eat(b'(') {
            if !self.eat_word("UNCHANGEDSINCE") {
                return Err("the only STORE modifier is UNCHANGEDSINCE".into());
            }
            self.sp()?;
            unchanged_since = Some(self.number()?);
            self.expect(b')')?;
            self.sp()?;
        }
        let mode = if self.eat(b'+') {
            StoreMode::Add
        } else if self.eat(b'-') {
            StoreMode::Remove
        } else {
            StoreMode::Replace
        };
        let silent = if self.eat_word("FLAGS.SILENT") {
            true
        } else if self.eat_word("FLAGS") {
            false
        } else {
            return Err("STORE changes FLAGS or FLAGS.SILENT".into());
        };
        self.sp()?;
        let flags = if self.peek() == Some(b'(') {
            self.flag_list()?
        } else {
            let mut f = vec![self.flag()?];
            while self.eat(b' ') {
                f.push(self.flag()?);
            }
            f
        };
        Ok(Command::Store {
            uid,
            set,
            unchanged_since,
            mode,
            silent,
            flags,
        })
    }

    fn copy(&mut self, uid: bool, is_move: bool) -> PResult<Command> {
        self.sp()?;
        let set = self.sequence_set()?;
        let mailbox = self.sp_astring()?;
        Ok(if is_move {
            Command::Move { uid, set, mailbox }
        } else {
            Command::Copy { uid, set, mailbox }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> Command {
        let (tag, c) = parse(s.as_bytes()).unwrap_or_else(|e| panic!("{s}: {e:?}"));
        assert_eq!(tag, "a1");
        c
    }

    fn bad(s: &str) -> ParseError {
        parse(s.as_bytes()).expect_err(s)
    }

    #[test]
    fn simple_commands() {
        assert_eq!(ok("a1 capability\r\n"), Command::Capability);
        assert_eq!(ok("a1 NOOP\r\n"), Command::Noop);
        assert_eq!(ok("a1 UNSELECT\r\n"), Command::Unselect);
        assert_eq!(ok("a1 IDLE\r\n"), Command::Idle);
    }

    #[test]
    fn login_with_quoted_and_literal_strings() {
        assert_eq!(
            ok("a1 LOGIN \"al\\\"ice\" {4+}\r\np w!\r\n"),
            Command::Login {
                user: b"al\"ice".to_vec(),
                password: b"p w!".to_vec()
            }
        );
        assert_eq!(
            ok("a1 LOGIN alice@example.org secret]\r\n"),
            Command::Login {
                user: b"alice@example.org".to_vec(),
                password: b"secret]".to_vec()
            }
        );
    }

    #[test]
    fn authenticate_with_and_without_initial_response() {
        assert_eq!(
            ok("a1 AUTHENTICATE plain AGFAYgBj\r\n"),
            Command::Authenticate {
                mechanism: "PLAIN".into(),
                initial: Some("AGFAYgBj".into())
            }
        );
        assert_eq!(
            ok("a1 AUTHENTICATE PLAIN =\r\n"),
            Command::Authenticate {
                mechanism: "PLAIN".into(),
                initial: Some(String::new())
            }
        );
        assert_eq!(
            ok("a1 AUTHENTICATE LOGIN\r\n"),
            Command::Authenticate {
                mechanism: "LOGIN".into(),
                initial: None
            }
        );
    }

    #[test]
    fn fetch_items_sections_and_partials() {
        let c = ok(
            "a1 UID FETCH 1:*,7 (FLAGS BODY.PEEK[1.2.HEADER.FIELDS (From To)]<0.100> BODY[] BINARY[2] BINARY.SIZE[1] RFC822.SIZE)\r\n",
        );
        let Command::Fetch {
            uid, set, items, ..
        } = c
        else {
            panic!()
        };
        assert!(uid);
        assert_eq!(
            set.0,
            [
                (SeqNum::Value(1), SeqNum::Largest),
                (SeqNum::Value(7), SeqNum::Value(7))
            ]
        );
        assert_eq!(
            items,
            [
                FetchAttr::Flags,
                FetchAttr::Section {
                    peek: true,
                    section: Section {
                        part: vec![1, 2],
                        text: Some(SectionText::HeaderFields {
                            not: false,
                            fields: vec!["From".into(), "To".into()]
                        })
                    },
                    partial: Some((0, 100))
                },
                FetchAttr::Section {
                    peek: false,
                    section: Section::default(),
                    partial: None
                },
                FetchAttr::Binary {
                    peek: false,
                    part: vec![2],
                    partial: None
                },
                FetchAttr::BinarySize(vec![1]),
                FetchAttr::Rfc822Size,
            ]
        );
        assert!(
            matches!(ok("a1 FETCH 1 ALL\r\n"), Command::Fetch { items, .. } if items.len() == 4)
        );
        assert!(
            matches!(ok("a1 FETCH 1 body\r\n"), Command::Fetch { items, .. } if items == [FetchAttr::Body])
        );
        assert!(matches!(
            ok("a1 FETCH 1:2 (FLAGS) (CHANGEDSINCE 12345)\r\n"),
            Command::Fetch { changed_since: Some(12345), items, .. } if items.contains(&FetchAttr::ModSeq)
        ));
        assert!(matches!(
            ok("a1 FETCH 1 BODY[1.MIME]\r\n"),
            Command::Fetch { .. }
        ));
        bad("a1 FETCH 1 BODY[MIME]\r\n");
        bad("a1 FETCH 0 FLAGS\r\n");
        bad("a1 FETCH 1 (FLAGS\r\n");
        bad("a1 FETCH 1 BODY[HEADER.FIELDS ()]\r\n");
    }

    #[test]
    fn what_fetch_items_read() {
        let Command::Fetch { items, .. } = ok(
            "a1 FETCH 1 (FLAGS ENVELOPE BODY.PEEK[HEADER.FIELDS (From)] BODY[1.HEADER] BODY[] RFC822.SIZE)\r\n",
        ) else {
            panic!()
        };
        let reads: Vec<Reads> = items.iter().map(FetchAttr::reads).collect();
        assert_eq!(
            reads,
            [
                Reads::Metadata,
                Reads::Header,
                Reads::Header,
                Reads::Body,
                Reads::Body,
                Reads::Metadata
            ]
        );
    }

    #[test]
    fn store_forms() {
        assert_eq!(
            ok("a1 STORE 2:4 +FLAGS.SILENT (\\Deleted $Junk)\r\n"),
            Command::Store {
                uid: false,
                set: SequenceSet(vec![(SeqNum::Value(2), SeqNum::Value(4))]),
                unchanged_since: None,
                mode: StoreMode::Add,
                silent: true,
                flags: vec!["\\Deleted".into(), "$Junk".into()]
            }
        );
        assert!(matches!(
            ok("a1 UID STORE 1 (UNCHANGEDSINCE 5) -FLAGS \\Seen\r\n"),
            Command::Store {
                unchanged_since: Some(5),
                mode: StoreMode::Remove,
                ..
            }
        ));
        bad("a1 STORE 1 +LABELS (x)\r\n");
    }

    #[test]
    fn list_forms() {
        assert!(matches!(
            ok("a1 LIST \"\" *\r\n"),
            Command::List { extended: false, patterns, .. } if patterns == [b"*".to_vec()]
        ));
        let Command::List {
            options,
            patterns,
            extended,
            ..
        } = ok(
            "a1 LIST (SUBSCRIBED) \"\" (INBOX Sent/%) RETURN (CHILDREN STATUS (MESSAGES UNSEEN))\r\n",
        )
        else {
            panic!()
        };
        assert!(extended && options.select_subscribed && options.return_children);
        assert_eq!(patterns, [b"INBOX".to_vec(), b"Sent/%".to_vec()]);
        assert_eq!(
            options.return_status,
            Some(vec![StatusItem::Messages, StatusItem::Unseen])
        );
        bad("a1 LIST (RECURSIVEMATCH) \"\" *\r\n");
    }

    #[test]
    fn append_with_flags_and_date() {
        let Command::Append {
            mailbox,
            flags,
            date,
            message,
        } = ok("a1 APPEND Sent (\\Seen) \" 7-Feb-1994 21:52:25 -0800\" {5}\r\nHello\r\n")
        else {
            panic!()
        };
        assert_eq!(mailbox, b"Sent");
        assert_eq!(flags, ["\\Seen"]);
        assert_eq!(date, Some(760_686_745));
        assert_eq!(message, b"Hello");
        assert!(matches!(
            ok("a1 APPEND INBOX {2+}\r\nhi\r\n"),
            Command::Append { .. }
        ));
        bad("a1 APPEND INBOX {9}\r\nshort\r\n");
        bad("a1 APPEND INBOX \"32-Feb-1994 21:52:25 -0800\" {1}\r\nx\r\n");
    }

    #[test]
    fn select_create_status_enable_id() {
        assert!(matches!(
            ok("a1 SELECT INBOX (CONDSTORE)\r\n"),
            Command::Select {
                condstore: true,
                read_only: false,
                ..
            }
        ));
        assert!(matches!(
            ok("a1 EXAMINE \"a b\"\r\n"),
            Command::Select {
                read_only: true,
                ..
            }
        ));
        assert_eq!(
            ok("a1 CREATE Archive (USE (\\Archive))\r\n"),
            Command::Create {
                mailbox: b"Archive".to_vec(),
                special_use: vec!["\\Archive".into()]
            }
        );
        assert!(matches!(
            ok("a1 STATUS INBOX (MESSAGES UIDNEXT HIGHESTMODSEQ)\r\n"),
            Command::Status { items, .. } if items.len() == 3
        ));
        assert_eq!(
            ok("a1 ENABLE IMAP4rev2 condstore\r\n"),
            Command::Enable(vec!["IMAP4REV2".into(), "CONDSTORE".into()])
        );
        assert_eq!(
            ok("a1 ID (\"name\" \"imaplib\" \"version\" NIL)\r\n"),
            Command::Id(vec![
                ("name".into(), Some("imaplib".into())),
                ("version".into(), None)
            ])
        );
        assert_eq!(ok("a1 ID NIL\r\n"), Command::Id(vec![]));
        assert_eq!(ok("a1 DELETE ~foo\r\n"), Command::Delete(b"~foo".to_vec()));
        assert!(matches!(
            ok("a1 LIST \"\" ~foo/%\r\n"),
            Command::List { .. }
        ));
        assert_eq!(
            ok("a1 SELECT INBOX (QRESYNC (67890007 20050715194045000 41,43:211,214:541))\r\n"),
            Command::Select {
                mailbox: b"INBOX".to_vec(),
                read_only: false,
                condstore: false,
                qresync: Some(Qresync {
                    uid_validity: 67_890_007,
                    modseq: 20_050_715_194_045_000,
                    known_uids: Some(SequenceSet(vec![
                        (SeqNum::Value(41), SeqNum::Value(41)),
                        (SeqNum::Value(43), SeqNum::Value(211)),
                        (SeqNum::Value(214), SeqNum::Value(541)),
                    ])),
                }),
            }
        );
        assert!(matches!(
            ok("a1 EXAMINE INBOX (QRESYNC (1 2 1:5 (1:5 1:5)))\r\n"),
            Command::Select {
                qresync: Some(_),
                read_only: true,
                ..
            }
        ));
        assert!(matches!(
            ok("a1 UID FETCH 1:* FLAGS (CHANGEDSINCE 5 VANISHED)\r\n"),
            Command::Fetch {
                vanished: true,
                changed_since: Some(5),
                ..
            }
        ));
        bad("a1 FETCH 1:* FLAGS (CHANGEDSINCE 5 VANISHED)\r\n");
        bad("a1 UID FETCH 1:* FLAGS (VANISHED)\r\n");
        bad("a1 SELECT INBOX (QRESYNC (0 2))\r\n");
    }

    /// Issue 16: `a SEARCH ((((…` before login overflowed the stack and aborted the process.
    /// Every nesting form far beyond the limit gets BAD, logged in or not.
    #[test]
    fn deep_search_nesting_is_refused_not_recursed() {
        let n = 100_000;
        let forms = [
            format!("a SEARCH {}ALL{}\r\n", "(".repeat(n), ")".repeat(n)),
            format!("a SEARCH {}ALL\r\n", "NOT ".repeat(n)),
            format!("a SEARCH {}ALL ALL\r\n", "OR ALL ".repeat(n)),
            format!("a UID SEARCH {}ALL\r\n", "OR (NOT ".repeat(n)),
        ];
        for input in &forms {
            for authenticated in [false, true] {
                let e = parse_in(input.as_bytes(), authenticated).unwrap_err();
                assert_eq!(e.tag.as_deref(), Some("a"));
                if authenticated {
                    assert!(e.message.contains("nested"), "{}", e.message);
                } else {
                    assert!(e.message.contains("login first"), "{}", e.message);
                }
            }
        }
        // Within the limit it parses.
        let ok = format!(
            "a SEARCH {}ALL{}\r\n",
            "(".repeat(MAX_NESTING as usize - 1),
            ")".repeat(MAX_NESTING as usize - 1)
        );
        assert!(parse(ok.as_bytes()).is_ok());
        let too_deep = format!(
            "a SEARCH {}ALL{}\r\n",
            "(".repeat(MAX_NESTING as usize),
            ")".repeat(MAX_NESTING as usize)
        );
        assert!(parse(too_deep.as_bytes()).is_err());
    }

    #[test]
    fn before_login_only_the_login_commands_parse() {
        for ok in [
            &b"a CAPABILITY\r\n"[..],
            b"a NOOP\r\n",
            b"a LOGOUT\r\n",
            b"a STARTTLS\r\n",
            b"a LOGIN u p\r\n",
            b"a AUTHENTICATE PLAIN\r\n",
            b"a ID NIL\r\n",
        ] {
            assert!(
                parse_in(ok, false).is_ok(),
                "{:?}",
                String::from_utf8_lossy(ok)
            );
        }
        for refused in [
            &b"a SELECT INBOX\r\n"[..],
            b"a FETCH 1 (BODY[])\r\n",
            b"a APPEND INBOX {3}\r\nabc\r\n",
            b"a LIST \"\" *\r\n",
            b"a ENABLE IMAP4rev2\r\n",
        ] {
            let e = parse_in(refused, false).unwrap_err();
            assert!(e.message.contains("login first"), "{}", e.message);
            assert!(
                parse_in(refused, true).is_ok(),
                "{:?}",
                String::from_utf8_lossy(refused)
            );
        }
    }

    #[test]
    fn garbage_is_refused_without_panic() {
        assert_eq!(bad("\r\n").tag, None);
        assert_eq!(bad("a1 FROB\r\n").tag.as_deref(), Some("a1"));
        for s in [
            "a1\r\n",
            "a1 LOGIN\r\n",
            "a1 LOGIN \"x\r\n",
            "a1 LOGIN {99}\r\nx\r\n",
            "a1 FETCH 1:* (BODY[1.2.3.)\r\n",
            "a1 UID FROB 1\r\n",
            "a1 SEARCH\r\n",
            "a1 STATUS x (BOGUS)\r\n",
            "+ NOOP\r\n",
        ] {
            bad(s);
        }
    }
}
