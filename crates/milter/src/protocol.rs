//! The Sendmail milter wire protocol, version 6 (what Postfix speaks), without I/O: packets
//! (a 4-byte big-endian length, a command byte, data), the MTA's commands, the filter's
//! responses read with limits, and the option negotiation. Names follow libmilter's
//! `mfdef.h` (SMFIC_*, SMFIR_*, SMFIF_*, SMFIP_*).

/// The protocol version we speak.
pub const VERSION: u32 = 6;
/// A body chunk at most (libmilter's MILTER_CHUNK_SIZE).
pub const CHUNK: usize = 65535;
/// The largest packet we read from a filter: a body-replacement chunk or a header with room.
pub const MAX_PACKET: usize = 1 << 20;

// Actions a filter may take (SMFIF_*), of which we offer these.
pub const SMFIF_ADDHDRS: u32 = 0x01;
pub const SMFIF_CHGBODY: u32 = 0x02;
pub const SMFIF_ADDRCPT: u32 = 0x04;
pub const SMFIF_DELRCPT: u32 = 0x08;
pub const SMFIF_CHGHDRS: u32 = 0x10;
pub const SMFIF_QUARANTINE: u32 = 0x20;
/// What Kurier honours: header changes, body replacement, quarantine. Recipient and sender
/// changes are not offered (a filter that needs them fails negotiation, and its default
/// action applies).
pub const OFFERED_ACTIONS: u32 = SMFIF_ADDHDRS | SMFIF_CHGBODY | SMFIF_CHGHDRS | SMFIF_QUARANTINE;

// Protocol steps a filter may ask to skip or not answer (SMFIP_*).
pub const SMFIP_NOCONNECT: u32 = 0x01;
pub const SMFIP_NOHELO: u32 = 0x02;
pub const SMFIP_NOMAIL: u32 = 0x04;
pub const SMFIP_NORCPT: u32 = 0x08;
pub const SMFIP_NOBODY: u32 = 0x10;
pub const SMFIP_NOHDRS: u32 = 0x20;
pub const SMFIP_NOEOH: u32 = 0x40;
pub const SMFIP_NR_HDR: u32 = 0x80;
pub const SMFIP_NOUNKNOWN: u32 = 0x100;
pub const SMFIP_NODATA: u32 = 0x200;
pub const SMFIP_SKIP: u32 = 0x400;
pub const SMFIP_RCPT_REJ: u32 = 0x800;
pub const SMFIP_NR_CONN: u32 = 0x1000;
pub const SMFIP_NR_HELO: u32 = 0x2000;
pub const SMFIP_NR_MAIL: u32 = 0x4000;
pub const SMFIP_NR_RCPT: u32 = 0x8000;
pub const SMFIP_NR_DATA: u32 = 0x10000;
pub const SMFIP_NR_UNKN: u32 = 0x20000;
pub const SMFIP_NR_EOH: u32 = 0x40000;
pub const SMFIP_NR_BODY: u32 = 0x80000;
pub const SMFIP_HDR_LEADSPC: u32 = 0x100000;
/// Every step flag we understand (we offer all of them).
pub const OFFERED_STEPS: u32 = 0x1F_FFFF;

/// One step of the conversation, the MTA's side (SMFIC_*).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// SMFIC_OPTNEG 'O'.
    Negotiate { actions: u32, steps: u32 },
    /// SMFIC_MACRO 'D': macros for the command that follows.
    Macros {
        for_command: u8,
        pairs: Vec<(String, String)>,
    },
    /// SMFIC_CONNECT 'C': host name and address.
    Connect {
        hostname: String,
        ip: std::net::IpAddr,
        port: u16,
    },
    /// SMFIC_HELO 'H'.
    Helo(String),
    /// SMFIC_MAIL 'M': `<sender>` and ESMTP parameters.
    Mail(Vec<String>),
    /// SMFIC_RCPT 'R'.
    Rcpt(Vec<String>),
    /// SMFIC_DATA 'T'.
    Data,
    /// SMFIC_HEADER 'L'.
    Header { name: String, value: String },
    /// SMFIC_EOH 'N'.
    EndOfHeader,
    /// SMFIC_BODY 'B'.
    Body(Vec<u8>),
    /// SMFIC_BODYEOB 'E'.
    EndOfMessage,
    /// SMFIC_QUIT 'Q'.
    Quit,
}

impl Command {
    pub fn code(&self) -> u8 {
        match self {
            Command::Negotiate { .. } => b'O',
            Command::Macros { .. } => b'D',
            Command::Connect { .. } => b'C',
            Command::Helo(_) => b'H',
            Command::Mail(_) => b'M',
            Command::Rcpt(_) => b'R',
            Command::Data => b'T',
            Command::Header { .. } => b'L',
            Command::EndOfHeader => b'N',
            Command::Body(_) => b'B',
            Command::EndOfMessage => b'E',
            Command::Quit => b'Q',
        }
    }

    /// The whole packet.
    pub fn encode(&self) -> Vec<u8> {
        let mut d = Vec::new();
        let cstr = |d: &mut Vec<u8>, s: &str| {
            // A NUL inside would end the string early on the filter's side.
            d.extend(s.bytes().filter(|b| *b != 0));
            d.push(0);
        };
        match self {
            Command::Negotiate { actions, steps } => {
                d.extend(VERSION.to_be_bytes());
                d.extend(actions.to_be_bytes());
                d.extend(steps.to_be_bytes());
            }
            Command::Macros { for_command, pairs } => {
                d.push(*for_command);
                for (k, v) in pairs {
                    cstr(&mut d, k);
                    cstr(&mut d, v);
                }
            }
            Command::Connect { hostname, ip, port } => {
                cstr(&mut d, hostname);
                d.push(if ip.is_ipv4() { b'4' } else { b'6' });
                d.extend(port.to_be_bytes());
                cstr(&mut d, &ip.to_string());
            }
            Command::Helo(h) => cstr(&mut d, h),
            Command::Mail(args) | Command::Rcpt(args) => {
                for a in args {
                    cstr(&mut d, a);
                }
            }
            Command::Header { name, value } => {
                cstr(&mut d, name);
                cstr(&mut d, value);
            }
            Command::Body(b) => d.extend_from_slice(b),
            Command::Data | Command::EndOfHeader | Command::EndOfMessage | Command::Quit => {}
        }
        let mut out = Vec::with_capacity(d.len() + 5);
        out.extend(((d.len() + 1) as u32).to_be_bytes());
        out.push(self.code());
        out.extend(d);
        out
    }
}

/// What a filter said (SMFIR_*).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// 'O': its version, the actions it wants, the steps it skips.
    Negotiate {
        version: u32,
        actions: u32,
        steps: u32,
    },
    /// 'c'
    Continue,
    /// 'a': accept the message; no further steps.
    Accept,
    /// 'r': 550 5.7.1.
    Reject,
    /// 't': 451 4.7.1.
    TempFail,
    /// 'd': accept and throw away.
    Discard,
    /// 'y': this SMTP reply (a 4xx or 5xx code, text).
    ReplyCode { code: u16, text: String },
    /// 's': no more body chunks.
    Skip,
    /// 'p': still working (the time limit starts again).
    Progress,
    /// 'h': add a header field at the end.
    AddHeader { name: String, value: String },
    /// 'i': insert a header field at position `index` (0: first).
    InsertHeader {
        index: u32,
        name: String,
        value: String,
    },
    /// 'm': change the `index`-th (from 1) field called `name`; an empty value deletes it.
    ChangeHeader {
        index: u32,
        name: String,
        value: String,
    },
    /// 'b': a chunk of the new body.
    ReplaceBody(Vec<u8>),
    /// 'q': quarantine, with a reason.
    Quarantine(String),
    /// A modification we did not offer ('+', '-', 'e', '2', …): ignored, logged.
    Unoffered(u8),
}

/// Why a filter's bytes are unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    #[error("a packet of {0} bytes (at most {MAX_PACKET})")]
    TooLong(usize),
    #[error("an empty packet")]
    Empty,
    #[error("response {0:?}: {1}")]
    Malformed(char, &'static str),
    #[error("unknown response {0:?}")]
    Unknown(char),
}

/// The length of the packet whose 4-byte header is `head`, checked.
pub fn packet_len(head: [u8; 4]) -> Result<usize, ProtocolError> {
    let n = u32::from_be_bytes(head) as usize;
    if n == 0 {
        return Err(ProtocolError::Empty);
    }
    if n > MAX_PACKET {
        return Err(ProtocolError::TooLong(n));
    }
    Ok(n)
}

/// Reads a packet's command and data (what follows the length).
pub fn parse_response(packet: &[u8]) -> Result<Response, ProtocolError> {
    let (&code, data) = packet.split_first().ok_or(ProtocolError::Empty)?;
    let c = code as char;
    let bad = |why| ProtocolError::Malformed(c, why);
    let u32_at = |i: usize| -> Result<u32, ProtocolError> {
        data.get(i..i + 4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
            .ok_or(bad("too short"))
    };
    // NUL-terminated strings from `data[from..]`.
    let strings = |from: usize| -> Vec<String> {
        data.get(from..)
            .unwrap_or_default()
            .split(|b| *b == 0)
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect()
    };
    Ok(match code {
        b'O' => Response::Negotiate {
            version: u32_at(0)?,
            actions: u32_at(4)?,
            steps: u32_at(8)?,
        },
        b'c' => Response::Continue,
        b'a' => Response::Accept,
        b'r' => Response::Reject,
        b't' => Response::TempFail,
        b'd' => Response::Discard,
        b's' => Response::Skip,
        b'p' => Response::Progress,
        b'y' => {
            let s = strings(0);
            let text = s.first().ok_or(bad("no text"))?;
            reply_code(text).ok_or(bad("not a 4xx or 5xx reply"))?
        }
        b'h' => {
            let s = strings(0);
            match s.as_slice() {
                [name, value, ..] if field_name(name) => Response::AddHeader {
                    name: name.clone(),
                    value: value.clone(),
                },
                _ => return Err(bad("no header field name and value")),
            }
        }
        b'i' | b'm' => {
            let index = u32_at(0)?;
            let s = strings(4);
            let (name, value) = match s.as_slice() {
                [name, value, ..] if field_name(name) => (name.clone(), value.clone()),
                _ => return Err(bad("no header field name and value")),
            };
            if code == b'i' {
                Response::InsertHeader { index, name, value }
            } else {
                Response::ChangeHeader { index, name, value }
            }
        }
        b'b' => Response::ReplaceBody(data.to_vec()),
        b'q' => Response::Quarantine(strings(0).first().cloned().unwrap_or_default()),
        b'+' | b'-' | b'e' | b'2' | b'f' | b'l' => Response::Unoffered(code),
        _ => return Err(ProtocolError::Unknown(c)),
    })
}

/// "550 5.7.1 text" as a reply; only 4xx and 5xx codes (a filter cannot accept this way).
fn reply_code(s: &str) -> Option<Response> {
    let code: u16 = s.get(..3)?.parse().ok()?;
    if !(400..600).contains(&code) {
        return None;
    }
    let rest = s.get(3..).unwrap_or("").trim_start_matches([' ', '-']);
    // One line of printable ASCII (a multi-line reply is joined).
    let text: String = rest
        .chars()
        .map(|c| if c == '\r' || c == '\n' { ' ' } else { c })
        .filter(|c| c.is_ascii_graphic() || *c == ' ')
        .take(400)
        .collect();
    Some(Response::ReplyCode {
        code,
        text: text.trim().to_string(),
    })
}

/// A header field name (RFC 5322 §3.6.8).
fn field_name(n: &str) -> bool {
    !n.is_empty() && n.len() <= 200 && n.bytes().all(|b| (33..=126).contains(&b) && b != b':')
}

/// What both sides agreed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Negotiated {
    pub version: u32,
    pub actions: u32,
    /// SMFIP_* flags the filter set.
    pub steps: u32,
}

impl Negotiated {
    /// Checks the filter's answer to our offer.
    pub fn from_response(r: &Response) -> Result<Negotiated, String> {
        let Response::Negotiate {
            version,
            actions,
            steps,
        } = *r
        else {
            return Err(format!("answered {r:?} to the option negotiation"));
        };
        if version < 2 {
            return Err(format!("speaks milter protocol version {version}"));
        }
        if actions & !OFFERED_ACTIONS != 0 {
            return Err(format!(
                "wants actions {actions:#x}; Kurier offers {OFFERED_ACTIONS:#x} (no recipient or sender changes)"
            ));
        }
        if steps & !OFFERED_STEPS != 0 {
            return Err(format!("wants protocol steps {steps:#x} we do not know"));
        }
        Ok(Negotiated {
            version: version.min(VERSION),
            actions,
            steps,
        })
    }

    pub fn skips(&self, flag: u32) -> bool {
        self.steps & flag != 0
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests fail loudly by design
    use super::*;

    #[test]
    fn commands_encode_as_libmilter_reads_them() {
        assert_eq!(
            Command::Negotiate {
                actions: OFFERED_ACTIONS,
                steps: 0
            }
            .encode(),
            [0, 0, 0, 13, b'O', 0, 0, 0, 6, 0, 0, 0, 0x33, 0, 0, 0, 0]
        );
        assert_eq!(
            Command::Connect {
                hostname: "[192.0.2.1]".into(),
                ip: "192.0.2.1".parse().unwrap(),
                port: 25
            }
            .encode(),
            b"\0\0\0\x1aC[192.0.2.1]\x004\0\x19192.0.2.1\0"
        );
        assert_eq!(
            Command::Mail(vec!["<a@b>".into(), "SIZE=10".into()]).encode(),
            b"\0\0\0\x0fM<a@b>\0SIZE=10\0"
        );
        assert_eq!(
            Command::Header {
                name: "Subject".into(),
                value: "a\0b".into()
            }
            .encode(),
            b"\0\0\0\x0cLSubject\0ab\0"
        );
        assert_eq!(Command::EndOfMessage.encode(), [0, 0, 0, 1, b'E']);
    }

    #[test]
    fn responses_parse_and_garbage_is_an_error() {
        assert_eq!(parse_response(b"c"), Ok(Response::Continue));
        assert_eq!(
            parse_response(b"y550 5.7.1 Virus found: Eicar\r\n\0"),
            Ok(Response::ReplyCode {
                code: 550,
                text: "5.7.1 Virus found: Eicar".into()
            })
        );
        // A filter cannot say 250 this way.
        assert!(parse_response(b"y250 ok\0").is_err());
        assert_eq!(
            parse_response(b"hX-Virus-Scanned\0ClamAV\0"),
            Ok(Response::AddHeader {
                name: "X-Virus-Scanned".into(),
                value: "ClamAV".into()
            })
        );
        assert_eq!(
            parse_response(b"m\0\0\0\x01Subject\0\0"),
            Ok(Response::ChangeHeader {
                index: 1,
                name: "Subject".into(),
                value: "".into()
            })
        );
        assert!(parse_response(b"hbad name\0x\0").is_err());
        assert!(parse_response(b"i\0\0").is_err());
        assert!(parse_response(b"O\0\0\0\x06").is_err());
        assert!(parse_response(b"Z").is_err());
        assert!(parse_response(b"").is_err());
        assert_eq!(parse_response(b"+<x@y>\0"), Ok(Response::Unoffered(b'+')));
        assert_eq!(packet_len([0, 0, 0, 0]), Err(ProtocolError::Empty));
        assert!(packet_len([0xff, 0xff, 0xff, 0xff]).is_err());
        assert_eq!(packet_len([0, 0, 1, 0]), Ok(256));
    }

    #[test]
    fn negotiation_refuses_what_we_do_not_offer() {
        let r = |version, actions, steps| Response::Negotiate {
            version,
            actions,
            steps,
        };
        let n =
            Negotiated::from_response(&r(6, SMFIF_ADDHDRS, SMFIP_NOHELO | SMFIP_NR_HDR)).unwrap();
        assert!(n.skips(SMFIP_NOHELO));
        assert!(!n.skips(SMFIP_NOMAIL));
        assert!(Negotiated::from_response(&r(6, SMFIF_ADDRCPT, 0)).is_err());
        assert!(Negotiated::from_response(&r(1, 0, 0)).is_err());
        assert!(Negotiated::from_response(&Response::Continue).is_err());
    }
}
