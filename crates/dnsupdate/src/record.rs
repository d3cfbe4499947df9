//! The records Kurier publishes, in the presentation form of zone files and `kurier dns`
//! (RFC 1035 §5.1): TLSA (RFC 6698 §2.2), TXT, SRV (RFC 2782), MX, A, AAAA. Parsed strictly:
//! anything else is an error that names the record, never a guess.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use hickory_proto::rr::rdata::{A, AAAA, MX, SRV, TLSA, TXT, tlsa};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use crate::UpdateError;

/// At most this many bytes of TXT data per record (DKIM keys of 4096-bit RSA fit).
const MAX_TXT: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordData {
    A(Ipv4Addr),
    Aaaa(Ipv6Addr),
    Mx {
        preference: u16,
        exchange: String,
    },
    /// The character-strings, each at most 255 bytes.
    Txt(Vec<String>),
    Srv {
        priority: u16,
        weight: u16,
        port: u16,
        target: String,
    },
    Tlsa {
        usage: u8,
        selector: u8,
        matching: u8,
        data: Vec<u8>,
    },
}

/// One record: an absolute owner name (trailing dot optional), a TTL, the data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsRecord {
    pub name: String,
    pub ttl: u32,
    pub data: RecordData,
}

impl RecordData {
    /// `value` is the RDATA of a `rtype` record as a zone file writes it.
    pub fn parse(rtype: &str, value: &str) -> Result<RecordData, UpdateError> {
        let bad = |why: &str| UpdateError::Input(format!("{rtype} {value:?}: {why}"));
        let fields: Vec<&str> = value.split_whitespace().collect();
        let number = |s: &str| s.parse::<u16>().map_err(|_| bad("not a number"));
        let small = |s: &str| s.parse::<u8>().map_err(|_| bad("not a number below 256"));
        match (rtype.to_ascii_uppercase().as_str(), fields.as_slice()) {
            ("A", [ip]) => ip
                .parse()
                .map(RecordData::A)
                .map_err(|_| bad("no IPv4 address")),
            ("AAAA", [ip]) => ip
                .parse()
                .map(RecordData::Aaaa)
                .map_err(|_| bad("no IPv6 address")),
            ("MX", [pref, host]) => Ok(RecordData::Mx {
                preference: number(pref)?,
                exchange: host.to_string(),
            }),
            ("SRV", [prio, weight, port, target]) => Ok(RecordData::Srv {
                priority: number(prio)?,
                weight: number(weight)?,
                port: number(port)?,
                target: target.to_string(),
            }),
            ("TLSA", [usage, selector, matching, hex @ ..]) if !hex.is_empty() => {
                let hex: String = hex.concat();
                Ok(RecordData::Tlsa {
                    usage: small(usage)?,
                    selector: small(selector)?,
                    matching: small(matching)?,
                    data: from_hex(&hex).ok_or_else(|| bad("the data is not hex"))?,
                })
            }
            ("TXT", _) => txt_strings(value).map(RecordData::Txt).map_err(&bad),
            _ => Err(bad("not a record type or form Kurier publishes")),
        }
    }

    /// A TXT record holding `text`, cut into character-strings of at most 255 bytes
    /// (RFC 1035 §3.3.14; receivers join them, RFC 6376 §3.6.2.2 for DKIM keys).
    pub fn txt(text: &str) -> RecordData {
        let mut strings = Vec::new();
        let mut rest = text;
        while !rest.is_empty() {
            let mut cut = rest.len().min(255);
            while !rest.is_char_boundary(cut) {
                cut -= 1;
            }
            strings.push(rest[..cut].to_string());
            rest = &rest[cut..];
        }
        if strings.is_empty() {
            strings.push(String::new());
        }
        RecordData::Txt(strings)
    }

    pub fn record_type(&self) -> RecordType {
        match self {
            RecordData::A(_) => RecordType::A,
            RecordData::Aaaa(_) => RecordType::AAAA,
            RecordData::Mx { .. } => RecordType::MX,
            RecordData::Txt(_) => RecordType::TXT,
            RecordData::Srv { .. } => RecordType::SRV,
            RecordData::Tlsa { .. } => RecordType::TLSA,
        }
    }

    fn rdata(&self) -> Result<RData, UpdateError> {
        Ok(match self {
            RecordData::A(ip) => RData::A(A(*ip)),
            RecordData::Aaaa(ip) => RData::AAAA(AAAA(*ip)),
            RecordData::Mx {
                preference,
                exchange,
            } => RData::MX(MX::new(*preference, name(exchange)?)),
            RecordData::Txt(strings) => RData::TXT(TXT::new(strings.clone())),
            RecordData::Srv {
                priority,
                weight,
                port,
                target,
            } => RData::SRV(SRV::new(*priority, *weight, *port, name(target)?)),
            RecordData::Tlsa {
                usage,
                selector,
                matching,
                data,
            } => RData::TLSA(TLSA::new(
                tlsa::CertUsage::from(*usage),
                tlsa::Selector::from(*selector),
                tlsa::Matching::from(*matching),
                data.clone(),
            )),
        })
    }
}

impl DnsRecord {
    pub fn new(name: &str, ttl: u32, data: RecordData) -> DnsRecord {
        DnsRecord {
            name: name.trim_end_matches('.').to_ascii_lowercase(),
            ttl,
            data,
        }
    }

    pub(crate) fn owner(&self) -> Result<Name, UpdateError> {
        name(&self.name)
    }

    pub(crate) fn to_record(&self) -> Result<Record, UpdateError> {
        Ok(Record::from_rdata(
            self.owner()?,
            self.ttl,
            self.data.rdata()?,
        ))
    }
}

/// An absolute name; a relative one is taken as absolute (our names always are).
pub(crate) fn name(text: &str) -> Result<Name, UpdateError> {
    let text = text.trim_end_matches('.');
    Name::from_ascii(format!("{text}."))
        .map_err(|e| UpdateError::Input(format!("{text:?} is no domain name: {e}")))
}

impl fmt::Display for RecordData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecordData::A(ip) => write!(f, "{ip}"),
            RecordData::Aaaa(ip) => write!(f, "{ip}"),
            RecordData::Mx {
                preference,
                exchange,
            } => write!(f, "{preference} {exchange}"),
            RecordData::Txt(strings) => {
                let quoted: Vec<String> = strings
                    .iter()
                    .map(|s| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\"")))
                    .collect();
                write!(f, "{}", quoted.join(" "))
            }
            RecordData::Srv {
                priority,
                weight,
                port,
                target,
            } => write!(f, "{priority} {weight} {port} {target}"),
            RecordData::Tlsa {
                usage,
                selector,
                matching,
                data,
            } => {
                write!(f, "{usage} {selector} {matching} ")?;
                data.iter().try_for_each(|b| write!(f, "{b:02x}"))
            }
        }
    }
}

impl fmt::Display for DnsRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}. {} IN {} {}",
            self.name,
            self.ttl,
            self.data.record_type(),
            self.data
        )
    }
}

fn from_hex(s: &str) -> Option<Vec<u8>> {
    if s.is_empty() || !s.len().is_multiple_of(2) || !s.is_ascii() {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

/// The character-strings of a TXT value: one or more quoted strings (with `\"` and `\\`
/// escapes), or a single unquoted word.
fn txt_strings(value: &str) -> Result<Vec<String>, &'static str> {
    let value = value.trim();
    if value.len() > MAX_TXT {
        return Err("longer than Kurier ever publishes");
    }
    if !value.starts_with('"') {
        return match value.split_whitespace().count() {
            1 => Ok(vec![value.to_string()]),
            _ => Err("more than one word needs quotes"),
        };
    }
    let mut out = Vec::new();
    let mut chars = value.chars();
    loop {
        match chars.next() {
            None => break,
            Some(c) if c.is_whitespace() => continue,
            Some('"') => {}
            Some(_) => return Err("text between the quoted strings"),
        }
        let mut s = String::new();
        loop {
            match chars.next() {
                None => return Err("a quote is not closed"),
                Some('"') => break,
                Some('\\') => s.push(chars.next().ok_or("a quote is not closed")?),
                Some(c) => s.push(c),
            }
        }
        if s.len() > 255 {
            return Err("a string longer than 255 bytes (RFC 1035 §3.3)");
        }
        out.push(s);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests fail loudly by design
    use super::*;

    #[test]
    fn the_records_kurier_publishes_parse_and_print_back() {
        for (rtype, value) in [
            ("TLSA", "3 1 1 0a1b2c3d"),
            ("TXT", "\"v=STSv1; id=20261203\""),
            ("TXT", "\"v=DKIM1; k=rsa; p=AAAA\" \"BBBB\""),
            ("SRV", "0 1 993 mx.example.org."),
            ("MX", "10 mx.example.org."),
            ("A", "192.0.2.1"),
            ("AAAA", "2001:db8::1"),
        ] {
            let d = RecordData::parse(rtype, value).unwrap();
            assert_eq!(d.to_string(), value, "{rtype}");
            assert_eq!(d.record_type().to_string(), rtype);
            DnsRecord::new("x.example.org.", 300, d)
                .to_record()
                .unwrap();
        }
        assert_eq!(
            RecordData::parse("TXT", "\"a \\\"b\\\"\"").unwrap(),
            RecordData::Txt(vec!["a \"b\"".into()])
        );
    }

    #[test]
    fn bad_records_are_errors_that_name_them() {
        for (rtype, value) in [
            ("TLSA", "3 1 1 xyz"),
            ("TLSA", "3 1 1 abc"),
            ("TLSA", "300 1 1 ab"),
            ("TLSA", "3 1 1"),
            ("TXT", "\"not closed"),
            ("TXT", "\"a\" junk"),
            ("TXT", "two words"),
            ("SRV", "0 1 99999 a."),
            ("A", "::1"),
            ("CNAME", "a."),
        ] {
            let e = RecordData::parse(rtype, value).unwrap_err().to_string();
            assert!(e.starts_with(&format!("{rtype} {value:?}: ")), "{e}");
        }
        let long = format!("\"{}\"", "a".repeat(256));
        assert_eq!(
            RecordData::txt(&"a".repeat(300)),
            RecordData::Txt(vec!["a".repeat(255), "a".repeat(45)])
        );
        assert!(RecordData::parse("TXT", &long).is_err());
        assert!(
            DnsRecord::new("bad..name", 1, RecordData::A(Ipv4Addr::LOCALHOST))
                .to_record()
                .is_err()
        );
    }
}
