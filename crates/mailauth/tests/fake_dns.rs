//! SPF, DKIM and DMARC over a made-up DNS (`AuthLookup` implemented by a table): the limits and
//! error paths a real zone cannot easily show — resolver timeouts, more than ten MX names,
//! PTR validation and `%{p}`, `exp=`, a bogus answer, the DMARCbis tree walk, `np`, 100
//! signatures on one message. The corpus against real resolvers and independent judges is
//! `crates/kurier/tests/sender_auth.rs`.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::collections::HashMap;
use std::net::IpAddr;

use kurier_dns::{Answer, DnsError, DnssecState, MxRecord};
use kurier_mailauth::dmarc::{self, Policy};
use kurier_mailauth::spf::{SpfQuery, SpfResult, check_host};
use kurier_mailauth::{AuthLookup, DmarcResult, Inbound, PublicSuffixList};

/// Records by (name, type); a name listed in `slow` times out, one in `bogus` fails validation,
/// one in `silent` never answers.
#[derive(Default)]
struct FakeDns {
    records: HashMap<(String, &'static str), Vec<String>>,
    slow: Vec<String>,
    bogus: Vec<String>,
    silent: Vec<String>,
}

impl FakeDns {
    fn add(mut self, name: &str, rtype: &'static str, value: &str) -> Self {
        self.records
            .entry((name.to_string(), rtype))
            .or_default()
            .push(value.to_string());
        self
    }

    fn answer(&self, name: &str, rtype: &'static str) -> Result<Answer<String>, DnsError> {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        if self.slow.contains(&name) {
            return Err(DnsError::Indeterminate(name, "timed out".into()));
        }
        if self.bogus.contains(&name) {
            return Err(DnsError::Bogus(name));
        }
        let records = self
            .records
            .get(&(name.clone(), rtype))
            .cloned()
            .unwrap_or_default();
        let exists = self
            .records
            .keys()
            .any(|(n, _)| *n == name || n.ends_with(&format!(".{name}")));
        Ok(Answer {
            records,
            state: DnssecState::Secure,
            nxdomain: !exists,
        })
    }
}

impl AuthLookup for FakeDns {
    async fn txt(&self, name: &str) -> Result<Answer<String>, DnsError> {
        if self.silent.iter().any(|s| name.ends_with(s.as_str())) {
            std::future::pending::<()>().await;
        }
        self.answer(name, "TXT")
    }
    async fn ips(&self, name: &str, v6: bool) -> Result<Answer<IpAddr>, DnsError> {
        let a = self.answer(name, if v6 { "AAAA" } else { "A" })?;
        Ok(Answer {
            records: a.records.iter().map(|r| r.parse().unwrap()).collect(),
            state: a.state,
            nxdomain: a.nxdomain,
        })
    }
    async fn mx(&self, name: &str) -> Result<Answer<MxRecord>, DnsError> {
        let a = self.answer(name, "MX")?;
        Ok(Answer {
            records: a
                .records
                .iter()
                .map(|r| {
                    let (p, host) = r.split_once(' ').unwrap();
                    MxRecord {
                        preference: p.parse().unwrap(),
                        exchange: host.to_string(),
                    }
                })
                .collect(),
            state: a.state,
            nxdomain: a.nxdomain,
        })
    }
    async fn ptr(&self, ip: IpAddr) -> Result<Answer<String>, DnsError> {
        self.answer(&kurier_dns::reverse_name(ip), "PTR")
    }
}

const CLIENT: &str = "192.0.2.10";

async fn spf(dns: &FakeDns, domain: &str) -> (SpfResult, String, Option<String>) {
    let sender = format!("alice@{domain}");
    let q = SpfQuery {
        ip: CLIENT.parse().unwrap(),
        domain,
        sender: &sender,
        helo: "mail.example.net",
        receiver: "mx.kurier.test",
        now: 0,
    };
    let o = check_host(dns, &q).await;
    (o.result, o.reason, o.explanation)
}

#[tokio::test]
async fn spf_limits_and_errors_rfc7208_section_4_6_4() {
    let mut dns = FakeDns::default()
        .add("timeout.test", "TXT", "v=spf1 include:slow.test -all")
        .add("bogus.test", "TXT", "v=spf1 a:forged.test -all")
        .add("mx11.test", "TXT", "v=spf1 mx -all")
        .add("ptr.test", "TXT", "v=spf1 ptr -all")
        .add("10.2.0.192.in-addr.arpa", "PTR", "host.ptr.test")
        .add("10.2.0.192.in-addr.arpa", "PTR", "liar.other.test")
        .add("host.ptr.test", "A", CLIENT)
        .add(
            "pmacro.test",
            "TXT",
            "v=spf1 exists:%{p}.allowed.pmacro.test -all",
        )
        .add("host.ptr.test.allowed.pmacro.test", "A", "127.0.0.2")
        .add("exp.test", "TXT", "v=spf1 -all exp=why.exp.test")
        .add(
            "why.exp.test",
            "TXT",
            "%{l} may not send from %{i} for %{d}",
        )
        .add("nomatch.test", "TXT", "v=spf1 ip4:198.51.100.0/24");
    dns.slow.push("slow.test".into());
    dns.bogus.push("forged.test".into());
    for i in 0..11 {
        dns = dns.add("mx11.test", "MX", &format!("{i} mx{i}.mx11.test"));
    }
    assert_eq!(spf(&dns, "timeout.test").await.0, SpfResult::TempError);
    assert_eq!(spf(&dns, "bogus.test").await.0, SpfResult::TempError);
    let (r, why, _) = spf(&dns, "mx11.test").await;
    assert_eq!(r, SpfResult::PermError, "{why}");
    assert!(why.contains("more than 10 MX"), "{why}");
    // §5.5: only a name whose address leads back counts: liar.other.test has no address.
    assert_eq!(spf(&dns, "ptr.test").await.0, SpfResult::Pass);
    let dns = dns.add("other.test", "TXT", "v=spf1 ptr -all");
    assert_eq!(spf(&dns, "other.test").await.0, SpfResult::Fail);
    assert_eq!(spf(&dns, "pmacro.test").await.0, SpfResult::Pass);
    let (r, _, exp) = spf(&dns, "exp.test").await;
    assert_eq!(r, SpfResult::Fail);
    assert_eq!(
        exp.as_deref(),
        Some("alice may not send from 192.0.2.10 for exp.test")
    );
    assert_eq!(spf(&dns, "nomatch.test").await.0, SpfResult::Neutral);
    assert_eq!(spf(&dns, "not-a-domain").await.0, SpfResult::None);
}

fn psl() -> PublicSuffixList {
    PublicSuffixList::parse("test\nco.test\n").unwrap()
}

#[tokio::test]
async fn dmarc_tree_walk_np_and_temperror() {
    let mut dns = FakeDns::default()
        .add(
            "_dmarc.org.test",
            "TXT",
            "v=DMARC1; p=reject; sp=quarantine; np=reject",
        )
        .add("exists.org.test", "A", "192.0.2.1")
        .add("_dmarc.odd.org.test", "TXT", "v=DMARC1; p=bogus")
        .add("_dmarc.two.test", "TXT", "v=DMARC1; p=reject")
        .add("_dmarc.two.test", "TXT", "v=DMARC1; p=none");
    dns.slow.push("_dmarc.slow.test".into());
    let found = |d: Option<dmarc::Discovered>| d.map(|d| (d.domain, d.policy));
    assert_eq!(
        found(dmarc::discover(&dns, "org.test").await.unwrap()),
        Some(("org.test".into(), Policy::Reject))
    );
    assert_eq!(
        found(dmarc::discover(&dns, "exists.org.test").await.unwrap()),
        Some(("org.test".into(), Policy::Quarantine))
    );
    // DMARCbis np: a From domain that does not exist.
    assert_eq!(
        found(dmarc::discover(&dns, "ghost.org.test").await.unwrap()),
        Some(("org.test".into(), Policy::Reject))
    );
    // A malformed record is no record: the walk goes on up.
    assert_eq!(
        found(
            dmarc::discover(&dns, "a.b.c.d.e.f.g.h.i.odd.org.test")
                .await
                .unwrap()
        ),
        Some(("org.test".into(), Policy::Reject))
    );
    assert_eq!(dmarc::discover(&dns, "two.test").await.unwrap(), None);
    assert!(dmarc::discover(&dns, "slow.test").await.is_err());
    let input = Inbound {
        ip: CLIENT.parse().unwrap(),
        helo: Some("mail.example.net"),
        mail_from: "x@evil.test",
        from_domains: vec!["slow.test".into()],
        message: b"From: a@slow.test\r\n\r\nhi\r\n",
        receiver: "mx.kurier.test",
        now: 0,
    };
    let v = kurier_mailauth::verify(&dns, &psl(), &input).await;
    assert_eq!(v.dmarc[0].result, DmarcResult::TempError);
    assert_eq!(v.disposition(0).0, kurier_mailauth::Disposition::TempFail);
}

#[tokio::test]
async fn a_hundred_signatures_cost_ten_verifications() {
    let mut message = Vec::new();
    for i in 0..100 {
        message.extend_from_slice(
            format!(
                "DKIM-Signature: v=1; a=rsa-sha256; d=s{i}.test; s=k; h=from; bh=AA==; b=AA==\r\n"
            )
            .as_bytes(),
        );
    }
    message.extend_from_slice(b"From: a@org.test\r\n\r\nhi\r\n");
    let input = Inbound {
        ip: CLIENT.parse().unwrap(),
        helo: None,
        mail_from: "a@org.test",
        from_domains: vec!["org.test".into()],
        message: &message,
        receiver: "mx.kurier.test",
        now: 0,
    };
    let v = kurier_mailauth::verify(&FakeDns::default(), &psl(), &input).await;
    assert_eq!(v.dkim.len(), kurier_mailauth::MAX_SIGNATURES);
    assert_eq!(v.dkim_unchecked, 100 - kurier_mailauth::MAX_SIGNATURES);
    let field = kurier_mailauth::results::header("mx.kurier.test", &v);
    assert_eq!(
        field.matches("dkim=").count(),
        kurier_mailauth::MAX_SIGNATURES
    );
}

/// A sender whose DNS never answers costs `CHECK_TIMEOUT` in all, however many signatures and
/// lookups it asks for; what is left undone is a temperror (paused time: no real waiting).
#[tokio::test(start_paused = true)]
async fn a_silent_dns_costs_one_deadline() {
    let mut message = Vec::new();
    for i in 0..10 {
        message.extend_from_slice(
            format!("DKIM-Signature: v=1; a=rsa-sha256; d=s{i}.silent.test; s=k; h=from; bh=AA==; b=AA==\r\n").as_bytes(),
        );
    }
    message.extend_from_slice(b"From: a@silent.test\r\n\r\nhi\r\n");
    let dns = FakeDns {
        silent: vec!["silent.test".into()],
        ..FakeDns::default()
    };
    let input = Inbound {
        ip: CLIENT.parse().unwrap(),
        helo: Some("mx.silent.test"),
        mail_from: "a@silent.test",
        from_domains: vec!["silent.test".into()],
        message: &message,
        receiver: "mx.kurier.test",
        now: 0,
    };
    let start = tokio::time::Instant::now();
    let v = kurier_mailauth::verify(&dns, &psl(), &input).await;
    assert!(start.elapsed() <= kurier_mailauth::CHECK_TIMEOUT + std::time::Duration::from_secs(1));
    assert_eq!(v.spf_mail_from.unwrap().1.result, SpfResult::TempError);
    assert!(
        v.dkim
            .iter()
            .all(|d| d.result == kurier_dkim::verify::DkimResult::TempError)
    );
    assert_eq!(v.dmarc[0].result, DmarcResult::TempError);
}
