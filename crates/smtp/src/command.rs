//! SMTP command lines (RFC 5321 §4.1, with the parameters of RFC 1870 SIZE, RFC 6152 8BITMIME,
//! RFC 6531 SMTPUTF8, RFC 3461 DSN, RFC 3030 BDAT, RFC 8689 REQUIRETLS). Pure parsing: bytes in,
//! a `Command` or the reason out; never panics.

use std::fmt;

/// One parsed command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Ehlo(String),
    Helo(String),
    Mail {
        from: String,
        params: MailParams,
    },
    Rcpt {
        to: String,
        params: RcptParams,
    },
    Data,
    Bdat {
        size: u64,
        last: bool,
    },
    Rset,
    Noop,
    Quit,
    Help,
    Vrfy(String),
    Expn(String),
    StartTls,
    Auth {
        mechanism: String,
        initial: Option<String>,
    },
}

/// MAIL FROM parameters we understand.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MailParams {
    pub size: Option<u64>,
    /// `BODY=8BITMIME` (or 7BIT).
    pub body_8bit: bool,
    pub smtputf8: bool,
    /// RFC 3461 `RET=FULL|HDRS`.
    pub ret: Option<String>,
    /// RFC 3461 `ENVID=` (xtext, kept as sent).
    pub envid: Option<String>,
    /// RFC 8689.
    pub require_tls: bool,
}

/// RCPT TO parameters we understand.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RcptParams {
    /// RFC 3461 `NOTIFY=` as sent, e.g. `SUCCESS,FAILURE`.
    pub notify: Option<String>,
    /// RFC 3461 `ORCPT=` as sent.
    pub orcpt: Option<String>,
}

/// Why a command line was refused; each maps to a reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandError {
    /// 500 5.5.2: not a command we know.
    Unknown,
    /// 501 5.5.4 / 5.1.7: wrong arguments.
    Syntax(String),
    /// 555 5.5.4: a parameter we do not support.
    Parameter(String),
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CommandError::Unknown => f.write_str("command not recognized"),
            CommandError::Syntax(s) | CommandError::Parameter(s) => f.write_str(s),
        }
    }
}

fn syntax(s: &str) -> CommandError {
    CommandError::Syntax(s.to_string())
}

/// Parses one command line (without the CRLF). `utf8_allowed` says whether non-ASCII bytes may
/// appear in addresses without `SMTPUTF8` (never, per RFC 6531 §3.4; passed for tests).
pub fn parse(line: &[u8]) -> Result<Command, CommandError> {
    let text = std::str::from_utf8(line).map_err(|_| syntax("the command is not valid UTF-8"))?;
    if text.chars().any(|c| c.is_control() && c != '\t') {
        return Err(syntax("control characters in the command"));
    }
    let (verb, rest) = match text.find(' ') {
        Some(i) => (&text[..i], &text[i + 1..]),
        None => (text, ""),
    };
    let arg = rest.trim();
    match verb.to_ascii_uppercase().as_str() {
        "EHLO" => Ok(Command::Ehlo(domain_arg(arg)?)),
        "HELO" => Ok(Command::Helo(domain_arg(arg)?)),
        "MAIL" => parse_mail(rest),
        "RCPT" => parse_rcpt(rest),
        "DATA" => no_arg(arg, Command::Data),
        "BDAT" => parse_bdat(arg),
        "RSET" => no_arg(arg, Command::Rset),
        "NOOP" => Ok(Command::Noop),
        "QUIT" => no_arg(arg, Command::Quit),
        "HELP" => Ok(Command::Help),
        "VRFY" => Ok(Command::Vrfy(arg.to_string())),
        "EXPN" => Ok(Command::Expn(arg.to_string())),
        "STARTTLS" => no_arg(arg, Command::StartTls),
        "AUTH" => {
            let mut parts = arg.split_whitespace();
            let mechanism = parts
                .next()
                .ok_or_else(|| syntax("AUTH needs a mechanism"))?
                .to_ascii_uppercase();
            let initial = parts.next().map(str::to_string);
            if parts.next().is_some() {
                return Err(syntax("too many arguments to AUTH"));
            }
            Ok(Command::Auth { mechanism, initial })
        }
        _ => Err(CommandError::Unknown),
    }
}

fn no_arg(arg: &str, c: Command) -> Result<Command, CommandError> {
    if arg.is_empty() {
        Ok(c)
    } else {
        Err(syntax("this command takes no arguments"))
    }
}

fn domain_arg(arg: &str) -> Result<String, CommandError> {
    if arg.is_empty() || arg.contains(char::is_whitespace) {
        return Err(syntax("a host name or address literal is required"));
    }
    Ok(arg.to_string())
}

/// `FROM:<path> params` / `TO:<path> params` → (path, params); the colon may be followed by a space.
fn split_path<'a>(rest: &'a str, keyword: &str) -> Result<(&'a str, &'a str), CommandError> {
    let r = rest.trim_start();
    // `get`, not indexing: a multi-byte character may straddle the keyword's length.
    let Some(rest) = r
        .get(keyword.len()..)
        .filter(|_| r[..keyword.len()].eq_ignore_ascii_case(keyword))
    else {
        return Err(syntax(&format!("expected {keyword}<address>")));
    };
    let r = rest.trim_start();
    if !r.starts_with('<') {
        return Err(syntax("the address must be in angle brackets"));
    }
    let close = find_close(r).ok_or_else(|| syntax("missing '>' after the address"))?;
    Ok((&r[1..close], r[close + 1..].trim()))
}

/// The index of the `>` that ends a path starting with `<`, honouring quoted local parts.
fn find_close(s: &str) -> Option<usize> {
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in s.char_indices().skip(1) {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '>' if !quoted => return Some(i),
            _ => {}
        }
    }
    None
}

/// Checks a mailbox (local@domain), dropping an obsolete source route (`@a,@b:`; RFC 5321 §4.1.2).
fn mailbox(path: &str, smtputf8: bool) -> Result<String, CommandError> {
    let path = match path.strip_prefix('@') {
        Some(_) => path
            .split_once(':')
            .map(|(_, m)| m)
            .ok_or_else(|| syntax("bad source route"))?,
        None => path,
    };
    if !smtputf8 && !path.is_ascii() {
        return Err(CommandError::Syntax(
            "non-ASCII address without SMTPUTF8 (RFC 6531)".into(),
        ));
    }
    let (local, domain) = path
        .rsplit_once('@')
        .ok_or_else(|| syntax("the address has no @domain"))?;
    if local.is_empty() || domain.is_empty() || path.len() > 254 {
        return Err(syntax("malformed address"));
    }
    if local.len() > 64 && !local.starts_with('"') {
        return Err(syntax("local part longer than 64 octets"));
    }
    let domain_ok = if domain.starts_with('[') {
        domain.ends_with(']')
    } else {
        domain
            .split('.')
            .all(|l| !l.is_empty() && l.chars().all(|c| c.is_alphanumeric() || c == '-'))
    };
    if !domain_ok || local.chars().any(|c| c == ' ' && !local.starts_with('"')) {
        return Err(syntax("malformed address"));
    }
    Ok(path.to_string())
}

fn params(s: &str) -> impl Iterator<Item = (String, Option<&str>)> {
    s.split_whitespace().map(|p| match p.split_once('=') {
        Some((k, v)) => (k.to_ascii_uppercase(), Some(v)),
        None => (p.to_ascii_uppercase(), None),
    })
}

fn parse_mail(rest: &str) -> Result<Command, CommandError> {
    let (path, rest) = split_path(rest, "FROM:")?;
    let mut p = MailParams::default();
    for (k, v) in params(rest) {
        match (k.as_str(), v) {
            ("SIZE", Some(v)) => {
                p.size = Some(v.parse().map_err(|_| syntax("SIZE needs a number"))?)
            }
            ("BODY", Some(v)) if v.eq_ignore_ascii_case("8BITMIME") => p.body_8bit = true,
            ("BODY", Some(v)) if v.eq_ignore_ascii_case("7BIT") => {}
            ("SMTPUTF8", None) => p.smtputf8 = true,
            ("RET", Some(v))
                if v.eq_ignore_ascii_case("FULL") || v.eq_ignore_ascii_case("HDRS") =>
            {
                p.ret = Some(v.to_ascii_uppercase())
            }
            ("ENVID", Some(v)) if v.len() <= 100 => p.envid = Some(v.to_string()),
            ("REQUIRETLS", None) => p.require_tls = true,
            ("AUTH", Some(_)) => {} // RFC 4954 §5: accepted and ignored when not trusted.
            (k, _) => {
                return Err(CommandError::Parameter(format!(
                    "unsupported MAIL parameter {k}"
                )));
            }
        }
    }
    let from = if path.is_empty() {
        String::new()
    } else {
        mailbox(path, p.smtputf8)?
    };
    Ok(Command::Mail { from, params: p })
}

fn parse_rcpt(rest: &str) -> Result<Command, CommandError> {
    let (path, rest) = split_path(rest, "TO:")?;
    let mut p = RcptParams::default();
    for (k, v) in params(rest) {
        match (k.as_str(), v) {
            ("NOTIFY", Some(v)) => p.notify = Some(v.to_ascii_uppercase()),
            ("ORCPT", Some(v)) if v.len() <= 500 => p.orcpt = Some(v.to_string()),
            (k, _) => {
                return Err(CommandError::Parameter(format!(
                    "unsupported RCPT parameter {k}"
                )));
            }
        }
    }
    // RFC 5321 §4.5.1: <postmaster> without a domain must be accepted.
    let to = if path.eq_ignore_ascii_case("postmaster") {
        "postmaster".to_string()
    } else {
        // UTF-8 here is checked against the transaction's SMTPUTF8 by the session.
        mailbox(path, true)?
    };
    Ok(Command::Rcpt { to, params: p })
}

fn parse_bdat(arg: &str) -> Result<Command, CommandError> {
    let mut parts = arg.split_whitespace();
    let size = parts
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| syntax("BDAT needs a chunk size"))?;
    let last = match parts.next() {
        None => false,
        Some(l) if l.eq_ignore_ascii_case("LAST") => true,
        Some(_) => return Err(syntax("BDAT takes a size and optionally LAST")),
    };
    if parts.next().is_some() {
        return Err(syntax("BDAT takes a size and optionally LAST"));
    }
    Ok(Command::Bdat { size, last })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Command, CommandError> {
        parse(s.as_bytes())
    }

    #[test]
    fn rfc5321_examples() {
        assert_eq!(p("EHLO bar.com"), Ok(Command::Ehlo("bar.com".into())));
        assert_eq!(
            p("helo [192.0.2.1]"),
            Ok(Command::Helo("[192.0.2.1]".into()))
        );
        let Ok(Command::Mail { from, .. }) = p("MAIL FROM:<Smith@bar.com>") else {
            panic!()
        };
        assert_eq!(from, "Smith@bar.com");
        let Ok(Command::Rcpt { to, .. }) = p("RCPT TO:<Jones@foo.com>") else {
            panic!()
        };
        assert_eq!(to, "Jones@foo.com");
        assert_eq!(p("DATA"), Ok(Command::Data));
        assert_eq!(p("quit"), Ok(Command::Quit));
        let Ok(Command::Rcpt { to, .. }) = p("RCPT TO:<@hosta.int,@jkl.org:userc@d.bar.org>")
        else {
            panic!()
        };
        assert_eq!(to, "userc@d.bar.org", "source route dropped");
        let Ok(Command::Rcpt { to, .. }) = p("RCPT TO:<Postmaster>") else {
            panic!()
        };
        assert_eq!(to, "postmaster");
    }

    #[test]
    fn null_sender_params_and_spaces() {
        let Ok(Command::Mail { from, params }) =
            p("MAIL FROM: <> SIZE=1000 BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID=abc REQUIRETLS")
        else {
            panic!()
        };
        assert_eq!(from, "");
        assert_eq!(params.size, Some(1000));
        assert!(params.body_8bit && params.smtputf8 && params.require_tls);
        assert_eq!(params.ret.as_deref(), Some("HDRS"));
        let Ok(Command::Rcpt { params, .. }) =
            p("RCPT TO:<a@b.c> NOTIFY=success,failure ORCPT=rfc822;a@b.c")
        else {
            panic!()
        };
        assert_eq!(params.notify.as_deref(), Some("SUCCESS,FAILURE"));
        assert_eq!(
            p("BDAT 100 LAST"),
            Ok(Command::Bdat {
                size: 100,
                last: true
            })
        );
        assert_eq!(
            p("BDAT 0"),
            Ok(Command::Bdat {
                size: 0,
                last: false
            })
        );
    }

    #[test]
    fn smtputf8_addresses() {
        let Ok(Command::Mail { from, .. }) = p("MAIL FROM:<jürgen@bücher.example> SMTPUTF8")
        else {
            panic!()
        };
        assert_eq!(from, "jürgen@bücher.example");
        assert!(matches!(
            p("MAIL FROM:<jürgen@bücher.example>"),
            Err(CommandError::Syntax(_))
        ));
        let Ok(Command::Mail { from, .. }) = p("MAIL FROM:<\"john doe\"@example.org>") else {
            panic!()
        };
        assert_eq!(from, "\"john doe\"@example.org");
    }

    #[test]
    fn errors_never_panic() {
        for bad in [
            "",
            "MAIL",
            "MAIL FROM:",
            "MAIL FROM:<",
            "MAIL FROM:<a@b",
            "MAIL TO:<a@b.c>",
            "RCPT TO:<nodomain>",
            "MAIL FROM:<a@b.c> SIZE=x",
            "MAIL FROM:<a@b.c> XFOO=1",
            "BDAT",
            "BDAT x",
            "BDAT 1 FIRST",
            "EHLO",
            "DATA now",
            "AUTH",
            "XYZZY",
            "MAIL FROM:<a@b.c>\u{7}",
            "RCPT TO:<a@@>",
            "RCPT TO:<@x>",
        ] {
            assert!(p(bad).is_err(), "{bad:?}");
        }
        assert_eq!(p("XYZZY"), Err(CommandError::Unknown));
        // Found by the fuzzer: a multi-byte character across the length of "TO:".
        assert!(p("RCPT  [\u{fd3f}T").is_err());
        assert!(p("MAIL FRÖM:<a@b.c>").is_err());
        assert!(parse(&[0xff, 0xfe, b' ', b'x']).is_err());
        // Every prefix of every good command parses or fails cleanly.
        for good in [
            "MAIL FROM:<\"a>b\"@example.org> SIZE=10",
            "RCPT TO:<@a,@b:c@d.e> NOTIFY=NEVER",
        ] {
            for n in 0..=good.len() {
                if good.is_char_boundary(n) {
                    let _ = p(&good[..n]);
                }
            }
        }
    }
}
