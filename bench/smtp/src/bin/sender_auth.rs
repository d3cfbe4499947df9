//! Inbound sender authentication benchmark (issue 22): the same load against two Kurier
//! servers in one run, one with `[sender_auth]` (SPF, DKIM, DMARC through the validating
//! resolver of a signed test world) and one without; prints messages per second and the ratio.
//!
//! Each message is DKIM-signed (RSA-3072) by a domain whose SPF names the sender and whose
//! DMARC policy is `p=reject`: every message costs an SPF check for MAIL FROM and HELO, a key
//! lookup and an RSA verification, a DMARC tree walk, and an Authentication-Results field.
//! The resolver's cache is warm after the first messages, as on a busy MX.
//!
//! Usage: kurier-bench-sender-auth PATH/TO/kurier [MESSAGES] [SESSIONS]

use std::net::SocketAddr;

use kurier_testworld::{World, Zone};

use kurier_bench_smtp::{KurierProcess, Res};

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().collect();
    let kurier = args
        .get(1)
        .ok_or("usage: kurier-bench-sender-auth PATH/TO/kurier [MESSAGES] [SESSIONS]")?;
    let messages: usize = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(3000);
    let sessions: usize = args.get(3).map(|s| s.parse()).transpose()?.unwrap_or(20);

    let (key, _) =
        kurier_dkim::DkimKey::generate("sender.test", "b1", kurier_dkim::Algorithm::Rsa)?;
    let (_, record) = key.dns_record()?;
    let txt = |v: &str| {
        v.as_bytes()
            .chunks(200)
            .map(|c| format!("\"{}\"", String::from_utf8_lossy(c)))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let world = World::builder()
        .zone(
            Zone::signed("sender.test")
                .record("@", "TXT", &txt("v=spf1 ip4:127.0.0.1 -all"))
                .record("_dmarc", "TXT", &txt("v=DMARC1; p=reject"))
                .record("b1._domainkey", "TXT", &txt(&record)),
        )
        .build()?;
    let mut servers = Vec::new();
    for (n, on) in [(100u8, true), (101u8, false)] {
        let ip = world.net.ip(n).to_string();
        let dir = world.path(&format!("kurier-{n}"));
        let dns = world.dns();
        let extra = format!(
            "[dns]\nupstream = [\"{resolver}\"]\ntrust_anchor = \"{anchor}\"\n\
             [delivery]\nenabled = true\n[tlsrpt]\nenabled = false\n\
             [sender_auth]\nenabled = {on}\n",
            resolver = dns.resolver,
            anchor = dns.trust_anchor_dnskey.display(),
        );
        servers.push((KurierProcess::start(kurier, &world, &dir, &ip, &extra)?, ip));
    }
    let headers = "From: bench@sender.test\r\nTo: demo@example.test\r\nSubject: load\r\n\
                   Date: Thu, 03 Dec 2026 12:00:00 +0000\r\nMessage-ID: <1@sender.test>\r\n";
    let mut body = format!("{headers}\r\n").into_bytes();
    while body.len() < 4096 {
        body.extend_from_slice(
            b"0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz\r\n",
        );
    }
    let signature = key.sign(&body, 1_800_000_000)?;
    let mut message = signature.into_bytes();
    message.extend_from_slice(&body);
    message.extend_from_slice(b".\r\n");

    println!("{messages} DKIM-signed messages of 4 KiB over {sessions} sessions, one run");
    let addrs: Vec<SocketAddr> = servers
        .iter()
        .map(|(_, ip)| format!("{ip}:2525").parse())
        .collect::<Result<_, _>>()?;
    let rates = kurier_bench_smtp::on_and_off(
        &addrs,
        "bench.sender.test",
        "bench@sender.test",
        &message,
        messages,
        sessions,
    )?;
    println!(
        "verification on {:.0} msg/s, off {:.0} msg/s: on/off = {:.2}",
        rates[0],
        rates[1],
        rates[0] / rates[1]
    );
    for (mut s, _) in servers {
        s.stop();
    }
    Ok(())
}
