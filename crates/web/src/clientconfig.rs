//! Mail client autoconfiguration (TR-03108 MUA-4..MUA-8): Thunderbird's `config-v1.1.xml`
//! (the "autoconfig" format) and Microsoft's Autodiscover POX response (schema 2006a). Implicit
//! TLS is offered first (IMAP 993, POP3 995, SMTP 465; RFC 8314 §5.1), STARTTLS only after it,
//! plain text never. ManageSieve is a `setupServer` at the top level, as the IETF's Mail
//! Autoconfig draft (draft-ietf-mailmaint-autoconfig) defines it; clients that do not know the
//! element ignore it (its must-ignore rule, which Thunderbird follows). Pure functions: values
//! in, XML out.

/// Where the client services are (from the configuration).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientServices {
    /// The host name clients connect to (it is in our certificate).
    pub hostname: String,
    pub imaps: Option<u16>,
    pub pop3s: Option<u16>,
    pub submissions: Option<u16>,
    pub imap_starttls: Option<u16>,
    pub pop3_starttls: Option<u16>,
    pub submission_starttls: Option<u16>,
    /// ManageSieve (RFC 5804), STARTTLS only.
    pub managesieve: Option<u16>,
}

/// XML text and attribute escaping.
pub fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && c != '\t' && c != '\n' && c != '\r' => {}
            c => out.push(c),
        }
    }
    out
}

/// Thunderbird autoconfig for `domain`.
pub fn thunderbird(domain: &str, s: &ClientServices) -> String {
    let d = xml_escape(domain);
    let host = xml_escape(&s.hostname);
    let server = |tag: &str, kind: &str, port: u16, socket: &str| {
        format!(
            "    <{tag} type=\"{kind}\">\n      <hostname>{host}</hostname>\n      <port>{port}</port>\n      <socketType>{socket}</socketType>\n      <authentication>password-cleartext</authentication>\n      <username>%EMAILADDRESS%</username>\n    </{tag}>\n"
        )
    };
    let mut x = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<clientConfig version=\"1.1\">\n  <emailProvider id=\"{d}\">\n    <domain>{d}</domain>\n    <displayName>{d}</displayName>\n    <displayShortName>{d}</displayShortName>\n"
    );
    let incoming = [
        ("imap", s.imaps, "SSL"),
        ("pop3", s.pop3s, "SSL"),
        ("imap", s.imap_starttls, "STARTTLS"),
        ("pop3", s.pop3_starttls, "STARTTLS"),
    ];
    for (kind, port, socket) in incoming {
        if let Some(p) = port {
            x.push_str(&server("incomingServer", kind, p, socket));
        }
    }
    for (port, socket) in [(s.submissions, "SSL"), (s.submission_starttls, "STARTTLS")] {
        if let Some(p) = port {
            x.push_str(&server("outgoingServer", "smtp", p, socket));
        }
    }
    x.push_str("  </emailProvider>\n");
    if let Some(p) = s.managesieve {
        // One level up from the mail servers.
        let sieve = server("setupServer", "managesieve", p, "STARTTLS");
        x.push_str(&sieve.replace("\n    ", "\n  ")[2..]);
    }
    x.push_str("</clientConfig>\n");
    x
}

/// The `EMailAddress` of an Autodiscover request (POX, schema 2006), if it is one.
pub fn autodiscover_email(request: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(request).ok()?;
    let start = text.find("<EMailAddress>")? + "<EMailAddress>".len();
    let end = start + text[start..].find("</EMailAddress>")?;
    let email = text[start..end].trim();
    let ok = email.len() <= 254
        && email.contains('@')
        && !email
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "<>&\"'".contains(c));
    ok.then(|| email.to_string())
}

/// The Autodiscover POX response (schema 2006a) for `email`: IMAP, POP3 and SMTP with SSL on.
pub fn autodiscover(email: &str, s: &ClientServices) -> String {
    let login = xml_escape(email);
    let host = xml_escape(&s.hostname);
    let mut protocols = String::new();
    for (kind, port) in [
        ("IMAP", s.imaps),
        ("POP3", s.pop3s),
        ("SMTP", s.submissions),
    ] {
        if let Some(p) = port {
            protocols.push_str(&format!(
                "      <Protocol>\n        <Type>{kind}</Type>\n        <Server>{host}</Server>\n        <Port>{p}</Port>\n        <LoginName>{login}</LoginName>\n        <DomainRequired>off</DomainRequired>\n        <SPA>off</SPA>\n        <SSL>on</SSL>\n        <AuthRequired>on</AuthRequired>\n      </Protocol>\n"
            ));
        }
    }
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<Autodiscover xmlns=\"http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006\">\n  <Response xmlns=\"http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a\">\n    <Account>\n      <AccountType>email</AccountType>\n      <Action>settings</Action>\n{protocols}    </Account>\n  </Response>\n</Autodiscover>\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn services() -> ClientServices {
        ClientServices {
            hostname: "mail.example.org".into(),
            imaps: Some(993),
            pop3s: Some(995),
            submissions: Some(465),
            imap_starttls: Some(143),
            pop3_starttls: None,
            submission_starttls: Some(587),
            managesieve: Some(4190),
        }
    }

    #[test]
    fn mua4_implicit_tls_first_starttls_after_never_plain() {
        let x = thunderbird("example.org", &services());
        let i993 = x.find("<port>993</port>").expect("993");
        let i143 = x.find("<port>143</port>").expect("143");
        let i465 = x.find("<port>465</port>").expect("465");
        let i587 = x.find("<port>587</port>").expect("587");
        assert!(i993 < i143 && i465 < i587);
        assert!(!x.contains("<socketType>plain</socketType>"));
        assert!(!x.contains("<port>110</port>"));
        // ManageSieve after the mail account, at the top level, STARTTLS.
        let sieve = x.find("<setupServer type=\"managesieve\">").expect("sieve");
        assert!(x.find("</emailProvider>").unwrap() < sieve);
        assert!(x[sieve..].starts_with(
            "<setupServer type=\"managesieve\">\n    <hostname>mail.example.org</hostname>\n    <port>4190</port>\n    <socketType>STARTTLS</socketType>\n"
        ));
        let none = thunderbird(
            "example.org",
            &ClientServices {
                managesieve: None,
                ..services()
            },
        );
        assert!(!none.contains("setupServer"));
    }

    #[test]
    fn autodiscover_requests_and_escaping() {
        let req = b"<?xml version=\"1.0\"?><Autodiscover xmlns=\"http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006\"><Request><EMailAddress>alice@example.org</EMailAddress><AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema></Request></Autodiscover>";
        assert_eq!(
            autodiscover_email(req).as_deref(),
            Some("alice@example.org")
        );
        assert_eq!(
            autodiscover_email(b"<EMailAddress>a<b@c</EMailAddress>"),
            None
        );
        assert_eq!(autodiscover_email(b"no xml"), None);
        let r = autodiscover("alice@example.org", &services());
        assert_eq!(r.matches("<SSL>on</SSL>").count(), 3);
        assert!(!r.contains("<SSL>off</SSL>"));
        assert_eq!(xml_escape("a<&>\"'\u{1}"), "a&lt;&amp;&gt;&quot;&apos;");
    }
}
