//! ManageSieve commands (RFC 5804 §2) without I/O: a command's words — atoms, quoted strings
//! (`\"` and `\\` escapes) and literals (`{n+}` or `{n}` then n octets, §4) — collected by
//! `Reader` from the bytes a client sends under a size limit, then typed by `parse`.

/// One word of a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Word {
    Atom(String),
    /// A quoted string or a literal.
    Text(Vec<u8>),
    Number(u64),
}

/// A typed command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Capability,
    StartTls,
    Authenticate {
        mechanism: String,
        initial: Option<Vec<u8>>,
    },
    Logout,
    Noop(Option<String>),
    HaveSpace {
        name: String,
        size: u64,
    },
    PutScript {
        name: String,
        script: Vec<u8>,
    },
    CheckScript(Vec<u8>),
    ListScripts,
    SetActive(String),
    GetScript(String),
    DeleteScript(String),
    RenameScript {
        from: String,
        to: String,
    },
}

/// Why a command is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error("{0}")]
    Syntax(String),
    #[error("the command is larger than {0} bytes")]
    TooLong(usize),
}

/// Collects one command's words from the client's bytes, literals included.
#[derive(Debug)]
pub struct Reader {
    limit: usize,
    words: Vec<Word>,
    /// Octets of a literal still to come.
    literal: Option<(usize, Vec<u8>)>,
    used: usize,
}

/// What `Reader::line` wants next.
#[derive(Debug, PartialEq, Eq)]
pub enum Need {
    /// `n` octets of a literal, then another line.
    Octets(usize),
    /// The command is complete.
    Done(Vec<Word>),
}

impl Reader {
    pub fn new(limit: usize) -> Reader {
        Reader {
            limit,
            words: Vec::new(),
            literal: None,
            used: 0,
        }
    }

    /// A line (without its CRLF) of the command.
    pub fn line(&mut self, line: &[u8]) -> Result<Need, CommandError> {
        self.used += line.len() + 2;
        if self.used > self.limit {
            return Err(CommandError::TooLong(self.limit));
        }
        let mut i = 0;
        while i < line.len() {
            match line[i] {
                b' ' | b'\t' => i += 1,
                b'"' => {
                    let mut s = Vec::new();
                    i += 1;
                    loop {
                        match line.get(i) {
                            Some(b'\\') => {
                                match line.get(i + 1) {
                                    Some(c @ (b'"' | b'\\')) => s.push(*c),
                                    _ => {
                                        return Err(CommandError::Syntax(
                                            "only \\\" and \\\\ are escapes in a quoted string"
                                                .into(),
                                        ));
                                    }
                                }
                                i += 2;
                            }
                            Some(b'"') => {
                                i += 1;
                                break;
                            }
                            Some(c) => {
                                s.push(*c);
                                i += 1;
                            }
                            None => {
                                return Err(CommandError::Syntax(
                                    "the quoted string is never closed".into(),
                                ));
                            }
                        }
                    }
                    self.words.push(Word::Text(s));
                }
                b'{' => {
                    let rest = &line[i + 1..];
                    let close = rest.iter().position(|b| *b == b'}').ok_or_else(|| {
                        CommandError::Syntax("a literal needs {n} or {n+}".into())
                    })?;
                    if i + 1 + close + 1 != line.len() {
                        return Err(CommandError::Syntax(
                            "a literal's {n} must end the line".into(),
                        ));
                    }
                    let spec = &rest[..close];
                    let digits = spec.strip_suffix(b"+").unwrap_or(spec);
                    let n: usize = std::str::from_utf8(digits)
                        .ok()
                        .and_then(|d| d.parse().ok())
                        .ok_or_else(|| {
                            CommandError::Syntax("a literal's length is no number".into())
                        })?;
                    if self.used + n > self.limit {
                        return Err(CommandError::TooLong(self.limit));
                    }
                    self.used += n;
                    self.literal = Some((n, Vec::with_capacity(n.min(1 << 16))));
                    return Ok(Need::Octets(n));
                }
                _ => {
                    let start = i;
                    while i < line.len() && !matches!(line[i], b' ' | b'\t' | b'"' | b'{') {
                        i += 1;
                    }
                    let atom = String::from_utf8_lossy(&line[start..i]).into_owned();
                    self.words.push(match atom.parse::<u64>() {
                        Ok(n) => Word::Number(n),
                        Err(_) => Word::Atom(atom),
                    });
                }
            }
        }
        Ok(Need::Done(std::mem::take(&mut self.words)))
    }

    /// The octets of the literal `line` asked for.
    pub fn octets(&mut self, data: &[u8]) {
        if let Some((_, mut buf)) = self.literal.take() {
            buf.extend_from_slice(data);
            self.words.push(Word::Text(buf));
        }
    }

    /// Nothing half-read (between commands).
    pub fn reset(&mut self) {
        self.words.clear();
        self.literal = None;
        self.used = 0;
    }
}

/// Types a command's words.
pub fn parse(words: Vec<Word>) -> Result<Command, CommandError> {
    let mut w = words.into_iter();
    let name = match w.next() {
        Some(Word::Atom(a)) => a.to_ascii_uppercase(),
        _ => return Err(CommandError::Syntax("expected a command".into())),
    };
    let bad = |why: &str| CommandError::Syntax(format!("{name}: {why}"));
    let mut text = |what: &str| -> Result<Vec<u8>, CommandError> {
        match w.next() {
            Some(Word::Text(t)) => Ok(t),
            _ => Err(bad(&format!("expected {what} as a string"))),
        }
    };
    let name_of = |t: Vec<u8>| String::from_utf8(t).map_err(|_| bad("a script name is UTF-8"));
    let cmd = match name.as_str() {
        "CAPABILITY" => Command::Capability,
        "STARTTLS" => Command::StartTls,
        "LOGOUT" => Command::Logout,
        "LISTSCRIPTS" => Command::ListScripts,
        "NOOP" => {
            let tag = match w.next() {
                Some(Word::Text(t)) => Some(String::from_utf8_lossy(&t).into_owned()),
                None => None,
                _ => return Err(bad("expected a tag string")),
            };
            return if w.next().is_some() {
                Err(bad("too many arguments"))
            } else {
                Ok(Command::Noop(tag))
            };
        }
        "AUTHENTICATE" => {
            let mechanism = String::from_utf8_lossy(&text("the mechanism")?).to_ascii_uppercase();
            let initial = match w.next() {
                Some(Word::Text(t)) => Some(t),
                None => None,
                _ => return Err(bad("expected the initial response as a string")),
            };
            Command::Authenticate { mechanism, initial }
        }
        "HAVESPACE" => {
            let name = name_of(text("the script name")?)?;
            let size = match w.next() {
                Some(Word::Number(n)) => n,
                _ => return Err(bad("expected the size as a number")),
            };
            Command::HaveSpace { name, size }
        }
        "PUTSCRIPT" => Command::PutScript {
            name: name_of(text("the script name")?)?,
            script: text("the script")?,
        },
        "CHECKSCRIPT" => Command::CheckScript(text("the script")?),
        "SETACTIVE" => Command::SetActive(name_of(text("the script name")?)?),
        "GETSCRIPT" => Command::GetScript(name_of(text("the script name")?)?),
        "DELETESCRIPT" => Command::DeleteScript(name_of(text("the script name")?)?),
        "RENAMESCRIPT" => Command::RenameScript {
            from: name_of(text("the old name")?)?,
            to: name_of(text("the new name")?)?,
        },
        other => return Err(CommandError::Syntax(format!("unknown command {other}"))),
    };
    if w.next().is_some() {
        return Err(bad("too many arguments"));
    }
    Ok(cmd)
}

/// A string as ManageSieve sends it: quoted when it can be, else a literal (§4).
pub fn string(s: &str) -> String {
    if s.len() < 1024 && !s.contains(['"', '\\', '\r', '\n']) {
        format!("\"{s}\"")
    } else {
        format!("{{{}}}\r\n{s}", s.len())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests fail loudly by design
    use super::*;

    fn one(lines: &[&[u8]]) -> Result<Command, CommandError> {
        let mut r = Reader::new(1 << 20);
        let mut lines = lines.iter();
        loop {
            match r.line(lines.next().unwrap())? {
                Need::Done(words) => return parse(words),
                Need::Octets(_) => {
                    let data = lines.next().unwrap();
                    r.octets(data);
                }
            }
        }
    }

    #[test]
    fn commands_with_strings_numbers_and_literals() {
        assert_eq!(one(&[b"capability"]).unwrap(), Command::Capability);
        assert_eq!(
            one(&[b"HAVESPACE \"main\" 1024"]).unwrap(),
            Command::HaveSpace {
                name: "main".into(),
                size: 1024
            }
        );
        assert_eq!(
            one(&[b"PUTSCRIPT \"main\" {6+}", b"keep;\n", b""]).unwrap(),
            Command::PutScript {
                name: "main".into(),
                script: b"keep;\n".to_vec()
            }
        );
        assert_eq!(
            one(&[b"RENAMESCRIPT \"a \\\"b\\\"\" \"c\""]).unwrap(),
            Command::RenameScript {
                from: "a \"b\"".into(),
                to: "c".into()
            }
        );
        assert_eq!(
            one(&[b"Authenticate \"plain\" \"AGEAYg==\""]).unwrap(),
            Command::Authenticate {
                mechanism: "PLAIN".into(),
                initial: Some(b"AGEAYg==".to_vec())
            }
        );
        assert_eq!(
            one(&[b"NOOP \"t1\""]).unwrap(),
            Command::Noop(Some("t1".into()))
        );
    }

    #[test]
    fn bad_commands_are_errors() {
        for bad in [
            &b"FROBNICATE"[..],
            b"GETSCRIPT",
            b"GETSCRIPT main",
            b"HAVESPACE \"x\" big",
            b"LISTSCRIPTS \"extra\"",
            b"SETACTIVE \"open",
            b"GETSCRIPT \"a\\x\"",
            b"PUTSCRIPT \"x\" {12x}",
            b"PUTSCRIPT \"x\" {5} trailing",
            b"",
        ] {
            assert!(one(&[bad]).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn a_command_larger_than_the_limit_is_refused_before_it_is_read() {
        let mut r = Reader::new(100);
        assert_eq!(
            r.line(b"PUTSCRIPT \"x\" {1000000+}"),
            Err(CommandError::TooLong(100))
        );
        let mut r = Reader::new(10);
        assert!(r.line(&[b'a'; 50]).is_err());
    }

    #[test]
    fn strings_are_quoted_or_literals() {
        assert_eq!(string("main"), "\"main\"");
        assert_eq!(string("a\"b"), "{3}\r\na\"b");
        assert_eq!(string("keep;\r\n"), "{7}\r\nkeep;\r\n");
    }
}
