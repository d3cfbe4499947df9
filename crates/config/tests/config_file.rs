//! Every error names the key, the value and the fix; the example file is complete and valid.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::path::Path;

use kurier_config::{Config, LogFormat, parse};

fn err(text: &str) -> String {
    let e = parse(text, Path::new("kurier.toml"))
        .unwrap_err()
        .to_string();
    assert!(!e.contains('\n'), "errors are one line: {e}");
    e
}

#[test]
fn empty_file_gives_the_defaults() {
    let c = parse("", Path::new("x.toml")).unwrap();
    assert_eq!(c, Config::default());
    assert_eq!(c.server.shutdown_grace_secs, 30);
    assert_eq!(c.web.listen[0].to_string(), "[::]:443");
}

#[test]
fn unknown_key_names_the_key_its_table_and_the_allowed_ones() {
    let e = err("[server]\nhostname = \"mail.example.org\"\nhostnme = \"x\"\n");
    assert!(e.contains("kurier.toml:3"), "{e}");
    assert!(
        e.contains("server") && e.contains("unknown key `hostnme`"),
        "{e}"
    );
    assert!(e.contains("`hostname`") && e.contains("fix:"), "{e}");
    let e = err("[serverr]\n");
    assert!(
        e.contains("unknown key `serverr`") && e.contains("`server`"),
        "{e}"
    );
    let e = err("[[tls.certificate]]\ncert = \"a\"\nkey = \"b\"\nchain = \"c\"\n");
    assert!(
        e.contains("tls.certificate[0]") && e.contains("`chain`"),
        "{e}"
    );
}

#[test]
fn bad_port_names_key_value_and_fix() {
    for bad in ["0.0.0.0:99999", "0.0.0.0", "localhost:443", "0.0.0.0:0"] {
        let e = err(&format!("[web]\nlisten = [\"[::]:443\", \"{bad}\"]\n"));
        assert!(e.contains("web.listen[1]"), "{e}");
        assert!(e.contains(bad), "{e}");
        assert!(e.contains("fix:"), "{e}");
    }
}

#[test]
fn wrong_types_and_values_are_named() {
    let e = err("[server]\nshutdown_grace_secs = \"soon\"\n");
    assert!(e.contains("server.shutdown_grace_secs"), "{e}");
    let e = err("[server]\nshutdown_grace_secs = -1\n");
    assert!(e.contains("server.shutdown_grace_secs"), "{e}");
    let e = err("[server]\nhostname = \"mail example\"\n");
    assert!(
        e.contains("server.hostname = \"mail example\"") && e.contains("fix:"),
        "{e}"
    );
    let e = err("[log]\nformat = \"xml\"\n");
    assert!(e.contains("log.format") && e.contains("xml"), "{e}");
    let e = err("[log]\nlevel = \"loud\"\n");
    assert!(e.contains("log.level = \"loud\""), "{e}");
    let e = err("[[tls.certificate]]\ncert = \"a.pem\"\n");
    assert!(
        e.contains("tls.certificate[0]") && e.contains("missing key `key`"),
        "{e}"
    );
    let e = err("[web]\nlisten = [\"[::]:443\", \"[::]:443\"]\n");
    assert!(e.contains("listed twice"), "{e}");
}

#[test]
fn syntax_errors_have_line_and_column() {
    let e = err("[server]\nhostname = \n");
    assert!(e.starts_with("kurier.toml:2:"), "{e}");
    assert!(e.contains("TOML syntax error"), "{e}");
}

#[test]
fn missing_file_says_so() {
    let e = kurier_config::load(Path::new("/nonexistent/kurier.toml"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("/nonexistent/kurier.toml") && e.contains("cannot read"),
        "{e}"
    );
}

#[test]
fn example_file_parses_and_documents_every_key() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../kurier.example.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let c = parse(&text, &path).unwrap();
    assert_eq!(c.log.format, LogFormat::Text);
    // Every key of the effective configuration appears in the example (commented or not).
    let effective = Config::default().to_toml() + &c.to_toml();
    for line in effective.lines() {
        if let Some((key, _)) = line.split_once(" = ") {
            assert!(
                text.contains(&format!("{key} =")),
                "kurier.example.toml lacks `{key}`"
            );
        }
        if line.starts_with('[') {
            assert!(text.contains(line), "kurier.example.toml lacks {line}");
        }
    }
    let effective_again = parse(&c.to_toml(), &path).unwrap();
    assert_eq!(
        effective_again, c,
        "the printed effective configuration reads back the same"
    );
}

#[test]
fn store_url_defaults_to_sqlite_in_the_data_folder() {
    let c = parse("[server]\ndata_dir = \"/srv/mail\"\n", Path::new("k.toml")).unwrap();
    assert_eq!(c.store_url(), "sqlite:/srv/mail/kurier.db");
    let c = parse(
        "[store]\nurl = \"postgres://kurier@db/kurier\"\n",
        Path::new("k.toml"),
    )
    .unwrap();
    assert_eq!(c.store_url(), "postgres://kurier@db/kurier");
    let e = err("[store]\nurl = \"mysql://x\"\n");
    assert!(
        e.contains("store.url = \"mysql://x\"") && e.contains("fix:"),
        "{e}"
    );
}

/// DNS-1: `dns.upstream` may leave the port out (53, as in resolv.conf); anything else that is
/// not an address is named with the fix. The probe names must be DNS names, and RFC 5011
/// updates need an anchor file.
#[test]
fn dns_upstream_without_port_means_53_and_bad_dns_settings_are_named() {
    let c = parse(
        "[dns]\nupstream = [\"127.0.0.53\", \"::1\", \"127.0.0.1:5353\", \"[::1]:53\"]\n",
        Path::new("x.toml"),
    )
    .unwrap();
    let got: Vec<String> = c.dns.upstream.iter().map(|a| a.to_string()).collect();
    assert_eq!(
        got,
        ["127.0.0.53:53", "[::1]:53", "127.0.0.1:5353", "[::1]:53"]
    );
    for bad in ["resolver.example", "127.0.0.1:0", "127.0.0.1:99999"] {
        let e = err(&format!("[dns]\nupstream = [\"{bad}\"]\n"));
        assert!(
            e.contains("dns.upstream[0]") && e.contains(bad) && e.contains("fix:"),
            "{e}"
        );
    }
    let e = err("[dns]\nprobe_bogus = \"not a name!\"\n");
    assert!(e.contains("dns.probe_bogus") && e.contains("fix:"), "{e}");
    let e = err("[dns]\ntrust_anchor_updates = true\n");
    assert!(e.contains("dns.trust_anchor") && e.contains("fix:"), "{e}");
    assert!(parse("[dns]\nprobe_secure = \".\"\n", Path::new("x.toml")).is_ok());
}

/// `[acme]` (issue 21): HTTPS directories only (RFC 8555 §6.1), mailto: contacts, a port-80
/// listener for HTTP-01 (§8.3) but not for TLS-ALPN-01, a check interval; each mistake is named
/// with its fix.
#[test]
fn acme_settings_are_checked() {
    let ok = parse(
        "[acme]\nenabled = true\ncontact = [\"mailto:postmaster@example.org\"]\nkey = \"p384\"\n",
        Path::new("x.toml"),
    )
    .unwrap();
    assert!(ok.acme.enabled && ok.acme.directory.starts_with("https://"));
    assert_eq!(ok.acme.key, kurier_config::AcmeKeyType::P384);
    for (text, key) in [
        (
            "[acme]\nenabled = true\ndirectory = \"http://ca.test/dir\"\n",
            "acme.directory",
        ),
        (
            "[acme]\ncontact = [\"postmaster@example.org\"]\n",
            "acme.contact",
        ),
        (
            "[acme]\nenabled = true\ncheck_secs = 0\n",
            "acme.check_secs",
        ),
        (
            "[acme]\nenabled = true\n[web]\nlisten_http = []\n",
            "web.listen_http",
        ),
        ("[acme]\nkey = \"rsa\"\n", "acme.key"),
        ("[acme]\nchallenge = \"dns-01\"\n", "acme.challenge"),
    ] {
        let e = err(text);
        assert!(e.contains(key) && e.contains("fix:"), "{key}: {e}");
    }
    // TLS-ALPN-01 (RFC 8737) needs port 443 only.
    let alpn = parse(
        "[acme]\nenabled = true\nchallenge = \"tls-alpn-01\"\n[web]\nlisten_http = []\n",
        Path::new("x.toml"),
    )
    .unwrap();
    assert_eq!(alpn.acme.challenge, kurier_config::AcmeChallenge::TlsAlpn01);
}

/// `[dns_update]` (issue 21 item 3): off by default; when on, a server, a TSIG key file and
/// the zones are needed, each named with its fix.
#[test]
fn dns_update_settings_are_checked() {
    let off = parse("", Path::new("x.toml")).unwrap();
    assert!(!off.dns_update.enabled);
    let ok = parse(
        "[dns_update]\nenabled = true\nserver = \"192.0.2.53:53\"\nzones = [\"example.org\"]\nkey_file = \"/etc/kurier/update.key\"\n",
        Path::new("x.toml"),
    )
    .unwrap();
    assert_eq!(ok.dns_update.zones, ["example.org"]);
    for (text, key) in [
        (
            "[dns_update]\nenabled = true\nzones = [\"a\"]\nkey_file = \"k\"\n",
            "dns_update.server",
        ),
        (
            "[dns_update]\nenabled = true\nserver = \"192.0.2.1:53\"\nzones = [\"a\"]\n",
            "dns_update.key_file",
        ),
        (
            "[dns_update]\nenabled = true\nserver = \"192.0.2.1:53\"\nkey_file = \"k\"\n",
            "dns_update.zones",
        ),
        (
            "[dns_update]\nserver = \"not an address\"\n",
            "dns_update.server",
        ),
    ] {
        let e = err(text);
        assert!(e.contains(key) && e.contains("fix:"), "{key}: {e}");
    }
}

#[test]
fn blocklists_are_checked() {
    let ok = parse(
        "[blocklists]\nlists = [{ zone = \"zen.spamhaus.org\", codes = [\"127.0.0.2-127.0.0.11\"] }, { zone = \"dbl.example\", kind = \"domain\", weight = 0.5 }]\n",
        Path::new("x.toml"),
    )
    .unwrap();
    assert_eq!(ok.blocklists.lists.len(), 2);
    assert_eq!(
        ok.blocklists.lists[0].code_ranges().unwrap(),
        [("127.0.0.2".parse().unwrap(), "127.0.0.11".parse().unwrap())]
    );
    for (text, key) in [
        (
            "[blocklists]\nlists = [{ zone = \"\" }]\n",
            "blocklists.lists",
        ),
        (
            "[blocklists]\nlists = [{ zone = \"bl.example\", codes = [\"127.0.0.9-127.0.0.2\"] }]\n",
            "blocklists.lists",
        ),
        (
            "[blocklists]\nallow = [{ zone = \"wl.example\", codes = [\"nonsense\"] }]\n",
            "blocklists.allow",
        ),
        (
            "[blocklists]\nlists = [{ zone = \"bl.example\", weight = 0 }]\n",
            "blocklists.lists",
        ),
        ("[blocklists]\ntimeout_ms = 0\n", "blocklists.timeout_ms"),
        (
            "[blocklists]\nreject_score = -1.0\n",
            "blocklists.reject_score",
        ),
    ] {
        let e = err(text);
        assert!(e.contains(key), "{text}: {e}");
    }
    let e = err("[blocklists]\nlists = [{ zone = \"bl.example\", kind = \"asn\" }]\n");
    assert!(e.contains("kind") || e.contains("asn"), "{e}");
}

#[test]
fn spam_settings_are_checked() {
    let ok = parse(
        "[spam]\nrspamd = \"127.0.0.1:11333\"\nrspamd_controller = \"127.0.0.1:11334\"\non_failure = \"tempfail\"\n",
        Path::new("x.toml"),
    )
    .unwrap();
    assert_eq!(ok.spam.on_failure, kurier_config::SpamFailure::Tempfail);
    assert_eq!(ok.spam.rspamd, Some("127.0.0.1:11333".parse().unwrap()));
    // Off by default, fail-open by default.
    assert_eq!(Config::default().spam.rspamd, None);
    assert_eq!(
        Config::default().spam.on_failure,
        kurier_config::SpamFailure::Accept
    );
    for (text, key) in [
        ("[spam]\ntimeout_ms = 0\n", "spam.timeout_ms"),
        (
            "[spam]\nrspamd_controller = \"127.0.0.1:11334\"\n",
            "spam.rspamd",
        ),
        (
            "[spam]\nrspamd = \"127.0.0.1:11333\"\nrspamd_password = \"a\\nb\"\n",
            "spam.rspamd_password",
        ),
        ("[spam]\nrspamd = \"localhost\"\n", "rspamd"),
        ("[spam]\non_failure = \"maybe\"\n", "on_failure"),
    ] {
        let e = err(text);
        assert!(e.contains(key), "{text}: {e}");
    }
}

#[test]
fn greylisting_settings_are_checked() {
    let c = parse(
        "[greylisting]\nenabled = true\nexempt = [\"192.0.2.0/24\", \"lists.example.org\"]\n",
        Path::new("x.toml"),
    )
    .unwrap();
    assert!(c.greylisting.enabled);
    assert!(!Config::default().greylisting.enabled, "off by default");
    for (text, key) in [
        (
            "[greylisting]\nexempt = [\"not a/net\"]\n",
            "greylisting.exempt",
        ),
        ("[greylisting]\ndelay_secs = 0\n", "greylisting.delay_secs"),
        (
            "[greylisting]\ndelay_secs = 600\nretry_window_secs = 300\n",
            "greylisting.retry_window_secs",
        ),
        (
            "[greylisting]\nexpiry_days = 0\n",
            "greylisting.expiry_days",
        ),
    ] {
        let e = err(text);
        assert!(e.contains(key), "{text}: {e}");
    }
}

#[test]
fn smtp_rates_are_checked() {
    let c = Config::default();
    assert_eq!(c.smtp.recipient_answer_ms, 30);
    assert_eq!(
        c.smtp.rate_exempt_networks().unwrap(),
        [
            ("127.0.0.0".parse().unwrap(), 8),
            ("::1".parse().unwrap(), 128)
        ]
    );
    for (text, key) in [
        (
            "[smtp]\nrate_exempt = [\"example.org\"]\n",
            "smtp.rate_exempt",
        ),
        ("[smtp]\nrate_window_secs = 0\n", "smtp.rate_window_secs"),
        (
            "[smtp]\nrecipient_answer_ms = 60000\n",
            "smtp.recipient_answer_ms",
        ),
    ] {
        let e = err(text);
        assert!(e.contains(key), "{text}: {e}");
    }
}

#[test]
fn milters_are_read_in_order_with_defaults() {
    let c = parse(
        "[[milter]]\nname = \"clamav\"\naddress = \"inet:7357@127.0.0.1\"\n\
         [[milter]]\nname = \"dkim\"\naddress = \"unix:/run/opendkim.sock\"\ndefault_action = \"accept\"\nlisteners = [\"mx\", \"submission\"]\n",
        Path::new("x.toml"),
    )
    .unwrap();
    assert_eq!(c.milter.len(), 2);
    assert_eq!(c.milter[0].timeout_ms, 30_000);
    assert_eq!(
        c.milter[0].default_action,
        kurier_config::MilterDefault::Tempfail
    );
    assert_eq!(c.milter[0].listeners, [kurier_config::MilterListener::Mx]);
    assert_eq!(
        c.milter[1].default_action,
        kurier_config::MilterDefault::Accept
    );
    for (text, key) in [
        (
            "[[milter]]\nname = \"x\"\naddress = \"\"\n",
            "milter[0].address",
        ),
        (
            "[[milter]]\nname = \"x\"\naddress = \"127.0.0.1:1\"\ntimeout_ms = 0\n",
            "milter[0].timeout_ms",
        ),
        (
            "[[milter]]\nname = \"x\"\naddress = \"127.0.0.1:1\"\nlisteners = [\"imap\"]\n",
            "imap",
        ),
        ("[[milter]]\naddress = \"127.0.0.1:1\"\n", "name"),
    ] {
        let e = err(text);
        assert!(e.contains(key), "{text}: {e}");
    }
}

#[test]
fn the_recipient_delimiter_is_one_character_or_none() {
    assert_eq!(Config::default().smtp.recipient_delimiter, "+");
    assert!(parse("[smtp]\nrecipient_delimiter = \"\"\n", Path::new("x.toml")).is_ok());
    for bad in ["++", "@", " "] {
        let e = err(&format!("[smtp]\nrecipient_delimiter = \"{bad}\"\n"));
        assert!(e.contains("smtp.recipient_delimiter"), "{bad}: {e}");
    }
}
