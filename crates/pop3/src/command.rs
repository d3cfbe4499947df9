//! POP3 commands (RFC 1939 §5–7, RFC 2449 CAPA, RFC 2595 STLS, RFC 5034 AUTH). Pure.

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Capa,
    Stls,
    User(String),
    Pass(String),
    Auth {
        mechanism: Option<String>,
        initial: Option<String>,
    },
    Quit,
    Noop,
    Stat,
    List(Option<u32>),
    Retr(u32),
    Dele(u32),
    Rset,
    Top(u32, u32),
    Uidl(Option<u32>),
}

/// Parses one line (without CRLF). The error is the text for `-ERR`.
pub fn parse(line: &[u8]) -> Result<Command, String> {
    let line = std::str::from_utf8(line).map_err(|_| "command is not UTF-8".to_string())?;
    // RFC 1939 §3: keyword, then arguments separated by single spaces. PASS takes the rest
    // of the line, spaces included.
    let (keyword, rest) = line.split_once(' ').unwrap_or((line, ""));
    let args: Vec<&str> = rest.split(' ').filter(|a| !a.is_empty()).collect();
    let number = |s: Option<&&str>| -> Result<u32, String> {
        s.ok_or("a message number is needed")?
            .parse::<u32>()
            .ok()
            .filter(|&n| n > 0)
            .ok_or_else(|| "invalid message number".to_string())
    };
    let optional = |args: &[&str]| -> Result<Option<u32>, String> {
        match args {
            [] => Ok(None),
            [n] => number(Some(n)).map(Some),
            _ => Err("too many arguments".into()),
        }
    };
    let exactly = |n: usize| {
        if args.len() == n {
            Ok(())
        } else {
            Err(format!("{keyword} takes {n} argument(s)"))
        }
    };
    Ok(match keyword.to_ascii_uppercase().as_str() {
        "CAPA" => exactly(0).map(|_| Command::Capa)?,
        "STLS" => exactly(0).map(|_| Command::Stls)?,
        "USER" => {
            exactly(1)?;
            Command::User(args[0].to_string())
        }
        "PASS" => {
            if rest.is_empty() {
                return Err("PASS needs a password".into());
            }
            Command::Pass(rest.to_string())
        }
        "AUTH" => match args.as_slice() {
            [] => Command::Auth {
                mechanism: None,
                initial: None,
            },
            [m] => Command::Auth {
                mechanism: Some(m.to_ascii_uppercase()),
                initial: None,
            },
            [m, i] => Command::Auth {
                mechanism: Some(m.to_ascii_uppercase()),
                initial: Some((*i).to_string()),
            },
            _ => return Err("AUTH takes a mechanism and an initial response".into()),
        },
        "QUIT" => exactly(0).map(|_| Command::Quit)?,
        "NOOP" => exactly(0).map(|_| Command::Noop)?,
        "STAT" => exactly(0).map(|_| Command::Stat)?,
        "RSET" => exactly(0).map(|_| Command::Rset)?,
        "LIST" => Command::List(optional(&args)?),
        "UIDL" => Command::Uidl(optional(&args)?),
        "RETR" => {
            exactly(1)?;
            Command::Retr(number(args.first())?)
        }
        "DELE" => {
            exactly(1)?;
            Command::Dele(number(args.first())?)
        }
        "TOP" => {
            exactly(2)?;
            let lines = args[1]
                .parse()
                .map_err(|_| "invalid line count".to_string())?;
            Command::Top(number(args.first())?, lines)
        }
        "" => return Err("empty command".into()),
        other => return Err(format!("unknown command {other}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands() {
        assert_eq!(parse(b"capa"), Ok(Command::Capa));
        assert_eq!(
            parse(b"USER alice@example.org"),
            Ok(Command::User("alice@example.org".into()))
        );
        assert_eq!(
            parse(b"PASS two words "),
            Ok(Command::Pass("two words ".into()))
        );
        assert_eq!(parse(b"LIST"), Ok(Command::List(None)));
        assert_eq!(parse(b"LIST 2"), Ok(Command::List(Some(2))));
        assert_eq!(parse(b"TOP 1 0"), Ok(Command::Top(1, 0)));
        assert_eq!(parse(b"UIDL 3"), Ok(Command::Uidl(Some(3))));
        assert_eq!(
            parse(b"AUTH PLAIN AGFAYgBj"),
            Ok(Command::Auth {
                mechanism: Some("PLAIN".into()),
                initial: Some("AGFAYgBj".into())
            })
        );
        assert_eq!(
            parse(b"AUTH"),
            Ok(Command::Auth {
                mechanism: None,
                initial: None
            })
        );
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        for bad in [
            &b""[..],
            b"RETR",
            b"RETR 0",
            b"RETR x",
            b"RETR 99999999999",
            b"DELE 1 2",
            b"TOP 1",
            b"TOP 1 -1",
            b"PASS",
            b"USER",
            b"FROB",
            b"\xff\xfe",
            b"LIST 1 2",
        ] {
            assert!(parse(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
