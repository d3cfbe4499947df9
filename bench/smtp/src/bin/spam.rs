//! Spam scanning benchmark (issue 24): the same inbound load against two Kurier servers in one
//! run, one scanning every message with a real rspamd (Debian's configuration, Redis for its
//! statistics) and one without; prints messages per second and the ratio.
//!
//! rspamd's `local_addrs` is emptied so that every rule runs for the loopback senders, as for
//! mail from the Internet; its DNS rules fail at once (no network here), so the cost of DNS
//! lookups on a real MX is not in the number.
//!
//! Usage: kurier-bench-spam PATH/TO/kurier [MESSAGES] [SESSIONS]

use std::net::SocketAddr;

use kurier_testworld::World;

use kurier_bench_smtp::{KurierProcess, Res, message};

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().collect();
    let kurier = args
        .get(1)
        .ok_or("usage: kurier-bench-spam PATH/TO/kurier [MESSAGES] [SESSIONS]")?;
    let messages: usize = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(3000);
    let sessions: usize = args.get(3).map(|s| s.parse()).transpose()?.unwrap_or(20);

    let world = World::builder().build()?;
    let rspamd_ip = world.net.ip(90).to_string();
    let _rspamd = kurier_testworld::rspamd::Rspamd::start(
        &world.path("rspamd"),
        &rspamd_ip,
        &[("options.inc", "local_addrs = [];\n".into())],
    )?;
    let mut servers = Vec::new();
    for (n, on) in [(100u8, true), (101u8, false)] {
        let ip = world.net.ip(n).to_string();
        let dir = world.path(&format!("kurier-{n}"));
        // Only the spam stage differs (no DNS here for sender authentication or delivery).
        let mut extra = "[delivery]\nenabled = false\n[sender_auth]\nenabled = false\n".to_string();
        if on {
            extra.push_str(&format!("[spam]\nrspamd = \"{rspamd_ip}:11333\"\n"));
        }
        servers.push((KurierProcess::start(kurier, &world, &dir, &ip, &extra)?, ip));
    }
    let message = message(
        "From: Alice <alice@sender.test>\r\nTo: demo@example.test\r\nSubject: quarterly numbers\r\n\
         Date: Fri, 04 Dec 2026 12:00:00 +0000\r\nMessage-ID: <1@sender.test>\r\n",
        4096,
    );
    println!("{messages} messages of 4 KiB over {sessions} sessions, one run");
    let addrs: Vec<SocketAddr> = servers
        .iter()
        .map(|(_, ip)| format!("{ip}:2525").parse())
        .collect::<Result<_, _>>()?;
    let rates = kurier_bench_smtp::on_and_off(
        &addrs,
        "mail.sender.test",
        "alice@sender.test",
        &message,
        messages,
        sessions,
    )?;
    println!(
        "rspamd on {:.0} msg/s, off {:.0} msg/s: on/off = {:.2}",
        rates[0],
        rates[1],
        rates[0] / rates[1]
    );
    for (mut s, _) in servers {
        s.stop();
    }
    Ok(())
}
