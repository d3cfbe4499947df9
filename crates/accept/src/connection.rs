//! The connection stage: who is at the other end, typed once for the stages after it — the
//! client's address (IPv4 clients of a dual-stack listener as IPv4, as SPF and DNS blocklists
//! need them, RFC 7208 §5), what it called itself in EHLO/HELO (RFC 5321 §4.1.1.1, address
//! literals §4.1.3), the TLS it negotiated (RFC 8314 §4.3), and whether it is one of our users
//! (submission, RFC 6409) or another server. SPF checks the HELO identity only when it is a
//! domain name (RFC 7208 §2.3); what is signed and which checks run depend on the origin.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use kurier_smtp::{ConnectionFacts, TlsInfo};

/// What the client said in EHLO/HELO.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Helo {
    /// No EHLO/HELO (the session asks for one before MAIL; a stage must not assume it).
    Missing,
    /// A fully qualified domain name, in lower case, without a final dot.
    Domain(String),
    /// `[192.0.2.1]` or `[IPv6:2001:db8::1]` (RFC 5321 §4.1.3).
    AddressLiteral(IpAddr),
    /// Anything else (a single label, a bare IP address, a general literal): kept for the
    /// record, never an identity to check.
    Other(String),
}

/// RFC 1035 §2.3.4: a name has at most 253 characters, a label at most 63.
const MAX_NAME: usize = 253;
const MAX_LABEL: usize = 63;

impl Helo {
    /// Classifies an EHLO/HELO argument; `None` when there was none.
    pub fn parse(argument: Option<&str>) -> Helo {
        let Some(arg) = argument else {
            return Helo::Missing;
        };
        if let Some(inner) = arg.strip_prefix('[').and_then(|a| a.strip_suffix(']')) {
            return match address_literal(inner) {
                Some(ip) => Helo::AddressLiteral(ip),
                None => Helo::Other(arg.to_string()),
            };
        }
        let name = arg.strip_suffix('.').unwrap_or(arg);
        if is_fqdn(name) {
            Helo::Domain(name.to_lowercase())
        } else {
            Helo::Other(arg.to_string())
        }
    }

    /// The HELO identity SPF checks (RFC 7208 §2.3): only a domain name, never a literal.
    pub fn spf_domain(&self) -> Option<&str> {
        match self {
            Helo::Domain(d) => Some(d),
            _ => None,
        }
    }
}

impl fmt::Display for Helo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Helo::Missing => f.write_str("(none)"),
            Helo::Domain(d) => f.write_str(d),
            Helo::AddressLiteral(IpAddr::V4(a)) => write!(f, "[{a}]"),
            Helo::AddressLiteral(IpAddr::V6(a)) => write!(f, "[IPv6:{a}]"),
            Helo::Other(o) => f.write_str(o),
        }
    }
}

/// The address inside `[...]`: dotted IPv4 or `IPv6:` (RFC 5321 §4.1.3); general literals
/// (`tag:content`) name no address.
fn address_literal(inner: &str) -> Option<IpAddr> {
    match inner.get(..5) {
        Some(tag) if tag.eq_ignore_ascii_case("IPv6:") => {
            inner[5..].parse::<Ipv6Addr>().ok().map(IpAddr::V6)
        }
        _ => inner.parse::<Ipv4Addr>().ok().map(IpAddr::V4),
    }
}

/// At least two labels of letters, digits and inner hyphens (non-ASCII letters as U-labels,
/// RFC 6531 §3.3), and a top label that is not all digits — `192.0.2.1` is an address.
fn is_fqdn(name: &str) -> bool {
    let labels: Vec<&str> = name.split('.').collect();
    let label_ok = |l: &&str| {
        !l.is_empty()
            && l.len() <= MAX_LABEL
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| {
                c.is_ascii_alphanumeric() || c == '-' || (!c.is_ascii() && c.is_alphanumeric())
            })
    };
    name.len() <= MAX_NAME
        && labels.len() >= 2
        && labels.iter().all(label_ok)
        && labels
            .last()
            .is_some_and(|top| !top.chars().all(|c| c.is_ascii_digit()))
}

/// Where a message comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// One of our users, authenticated on the submission port.
    Submission { account: String },
    /// Another server, on the MX.
    Inbound,
}

/// The connection as the envelope and message stages see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    /// The client's address; an IPv4 client is IPv4 also when it came in as `::ffff:a.b.c.d`.
    pub ip: IpAddr,
    pub helo: Helo,
    /// EHLO rather than HELO.
    pub esmtp: bool,
    /// `None`: the session ran in plain text.
    pub tls: Option<TlsInfo>,
    pub origin: Origin,
}

impl Connection {
    /// The TLS version and cipher, if the session ran over TLS (what filters are told).
    pub fn tls_version_and_cipher(&self) -> Option<(&str, &str)> {
        self.tls
            .as_ref()
            .map(|t| (t.version.as_str(), t.cipher.as_str()))
    }

    /// The connection stage over what the SMTP session knows.
    pub fn new(facts: &ConnectionFacts) -> Connection {
        Connection {
            ip: facts.ip.to_canonical(),
            helo: Helo::parse(facts.helo.as_deref()),
            esmtp: facts.esmtp,
            tls: facts.tls.clone(),
            origin: match &facts.account {
                Some(a) => Origin::Submission { account: a.clone() },
                None => Origin::Inbound,
            },
        }
    }

    /// The authenticated account, for submission.
    pub fn account(&self) -> Option<&str> {
        match &self.origin {
            Origin::Submission { account } => Some(account),
            Origin::Inbound => None,
        }
    }

    /// How the session was protected, for the log: `TLSv1.3 TLS_AES_256_GCM_SHA384` or `none`.
    pub fn transport(&self) -> String {
        match &self.tls {
            Some(t) => format!("{} {}", t.version, t.cipher),
            None => "none".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(ip: &str, helo: Option<&str>, account: Option<&str>) -> ConnectionFacts {
        ConnectionFacts {
            ip: ip.parse().unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
            helo: helo.map(str::to_string),
            esmtp: true,
            tls: None,
            account: account.map(str::to_string),
        }
    }

    #[test]
    fn helo_names_and_literals_are_told_apart() {
        assert_eq!(
            Helo::parse(Some("Mail.Example.ORG.")),
            Helo::Domain("mail.example.org".into())
        );
        assert_eq!(
            Helo::parse(Some("[192.0.2.1]")),
            Helo::AddressLiteral(
                "192.0.2.1"
                    .parse()
                    .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
            )
        );
        assert_eq!(
            Helo::parse(Some("[ipv6:2001:db8::1]")),
            Helo::AddressLiteral(
                "2001:db8::1"
                    .parse()
                    .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
            )
        );
        assert_eq!(Helo::parse(None), Helo::Missing);
        assert_eq!(
            Helo::parse(Some("bücher.example")),
            Helo::Domain("bücher.example".into())
        );
        for other in [
            "localhost",
            "192.0.2.1",
            "[300.0.0.1]",
            "[IPv6:zz]",
            "[x-tag:stuff]",
            "-bad.example",
            "a..example",
            "under_score.example",
            ".",
        ] {
            assert_eq!(
                Helo::parse(Some(other)),
                Helo::Other(other.into()),
                "{other}"
            );
        }
        let long = format!("{}.example", "a".repeat(64));
        assert_eq!(Helo::parse(Some(&long)), Helo::Other(long.clone()));
    }

    #[test]
    fn spf_checks_the_helo_identity_only_for_a_domain_name() {
        // RFC 7208 §2.3.
        assert_eq!(
            Helo::parse(Some("mx.example.net")).spf_domain(),
            Some("mx.example.net")
        );
        assert_eq!(Helo::parse(Some("[192.0.2.1]")).spf_domain(), None);
        assert_eq!(Helo::parse(Some("localhost")).spf_domain(), None);
        assert_eq!(Helo::Missing.spf_domain(), None);
    }

    #[test]
    fn helo_prints_as_the_client_would_write_it() {
        for s in [
            "mx.example.net",
            "[192.0.2.1]",
            "[IPv6:2001:db8::1]",
            "weird",
        ] {
            assert_eq!(Helo::parse(Some(s)).to_string(), s);
        }
        assert_eq!(Helo::Missing.to_string(), "(none)");
    }

    #[test]
    fn an_ipv4_client_of_a_dual_stack_listener_is_ipv4() {
        let c = Connection::new(&facts("::ffff:192.0.2.7", Some("mx.example.net"), None));
        assert_eq!(
            c.ip,
            "192.0.2.7"
                .parse()
                .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
        );
        let v6 = Connection::new(&facts("2001:db8::7", None, None));
        assert!(v6.ip.is_ipv6());
    }

    #[test]
    fn origin_is_submission_only_with_an_authenticated_account() {
        let inbound = Connection::new(&facts("192.0.2.7", Some("mx.example.net"), None));
        assert_eq!(inbound.origin, Origin::Inbound);
        assert_eq!(inbound.account(), None);
        let sub = Connection::new(&facts(
            "192.0.2.8",
            Some("laptop.example"),
            Some("a@b.test"),
        ));
        assert_eq!(sub.account(), Some("a@b.test"));
        assert_eq!(sub.transport(), "none");
        let mut tls = facts("192.0.2.8", None, None);
        tls.tls = Some(TlsInfo {
            version: "TLSv1.3".into(),
            cipher: "TLS_AES_256_GCM_SHA384".into(),
            group: Some("X25519MLKEM768".into()),
        });
        assert_eq!(
            Connection::new(&tls).transport(),
            "TLSv1.3 TLS_AES_256_GCM_SHA384"
        );
    }
}
