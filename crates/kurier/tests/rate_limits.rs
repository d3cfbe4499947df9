//! Connection and recipient rates on the MX (issue 24 item 6, ABUSE-6), as Postfix's anvil
//! counts them: per client address and per /24, within a window. Past the address limit a
//! client's new connections get 421; a neighbour in the same /24 then meets the network limit;
//! past the recipient limit RCPT gets 450 4.7.1 — unknown recipients count too, so an address
//! harvester is slowed to the limit and then disconnected by the error limit. And every RCPT
//! answer to another server waits for `smtp.recipient_answer_ms`, so a known and an unknown
//! address cannot be told apart by the reply time.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod support;

use support::Server;

/// Opens connections to the MX from the listed source addresses and prints each greeting's
/// first line; then, from `rcpt_ip`, one session with the listed RCPTs, printing each reply.
const CLIENT: &str = r#"
import json, smtplib, socket, sys
spec = json.load(open(sys.argv[1]))
for ip in spec["connect_from"]:
    s = socket.create_connection((spec["server"], 2525), timeout=10, source_address=(ip, 0))
    greeting = s.makefile("rb").readline().decode().strip()
    s.close()
    print(json.dumps({"from": ip, "greeting": greeting}), flush=True)
s = smtplib.SMTP(spec["server"], 2525, source_address=(spec["rcpt_ip"], 0), timeout=10)
s.ehlo("client.test")
s.mail("a@sender.test")
for to in spec["rcpts"]:
    code, text = s.rcpt(to)
    print(json.dumps({"rcpt": to, "code": code, "text": text.decode()}), flush=True)
s.close()
"#;

#[test]
fn abuse_6_connection_and_recipient_rates_per_address_and_network() {
    let ip = "127.0.62.1";
    let dir = tempfile::tempdir().unwrap();
    let config = support::configured(
        dir.path(),
        ip,
        "rate_exempt = []\nconnection_rate_per_address = 3\nconnection_rate_per_network = 5\n\
         recipient_rate_per_address = 4\nrecipient_rate_per_network = 100\n",
        "",
    );
    let server = Server::configured(dir.path(), &config);
    let spec = serde_json::json!({
        "server": ip,
        "connect_from": ["127.0.62.10", "127.0.62.10", "127.0.62.10", "127.0.62.10", "127.0.62.11", "127.0.62.11"],
        "rcpt_ip": "127.0.63.20",
        "rcpts": ["rcpt@kurier.test", "rcpt@kurier.test", "nobody@kurier.test", "rcpt@kurier.test", "rcpt@kurier.test"],
    });
    let out = support::python(CLIENT, &dir.path().join("spec.json"), &spec);
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let greetings: Vec<String> = lines[..6]
        .iter()
        .map(|l| l["greeting"].as_str().unwrap()[..3].to_string())
        .collect();
    // Three from .10, the fourth refused; .11 gets the network's fifth, not its sixth.
    assert_eq!(
        greetings,
        ["220", "220", "220", "421", "220", "421"],
        "{lines:?}"
    );
    assert!(
        lines[3]["greeting"]
            .as_str()
            .unwrap()
            .contains("4.7.0 Error: too many connections from [127.0.62.10]"),
        "{lines:?}"
    );
    let codes: Vec<u64> = lines[6..]
        .iter()
        .map(|l| l["code"].as_u64().unwrap())
        .collect();
    // The unknown recipient counts as well: the fifth RCPT is over the limit.
    assert_eq!(codes, [250, 250, 550, 250, 450], "{lines:?}");
    assert!(
        lines[10]["text"]
            .as_str()
            .unwrap()
            .contains("4.7.1 Error: too many recipients from [127.0.63.20]"),
        "{lines:?}"
    );
    let m = std::process::Command::new("curl")
        .args(["-sk", &format!("https://{ip}:8443/metrics")])
        .output()
        .unwrap();
    let m = String::from_utf8_lossy(&m.stdout);
    assert!(
        m.contains("kurier_smtp_rate_limited_total{what=\"connection\"} 2\n"),
        "{m}"
    );
    assert!(
        m.contains("kurier_smtp_rate_limited_total{what=\"recipient\"} 1\n"),
        "{m}"
    );
    assert!(
        server
            .stderr()
            .contains("SMTP connection refused: connection rate")
    );
}

/// Times each RCPT of one session (known and unknown addresses alternating) and prints them.
const TIMED_RCPTS: &str = r#"
import json, smtplib, sys, time
spec = json.load(open(sys.argv[1]))
s = smtplib.SMTP(spec["server"], 2525, source_address=(spec["client"], 0), timeout=10)
s.ehlo("client.test")
s.mail("a@sender.test")
for to in spec["rcpts"]:
    t = time.perf_counter()
    code, _ = s.rcpt(to)
    print(json.dumps({"rcpt": to, "code": code, "secs": time.perf_counter() - t}), flush=True)
s.quit()
"#;

#[test]
fn abuse_6_known_and_unknown_recipients_answer_after_the_same_floor() {
    let ip = "127.0.68.1";
    let dir = tempfile::tempdir().unwrap();
    let config = support::configured(
        dir.path(),
        ip,
        "rate_exempt = []\nrecipient_answer_ms = 150\n",
        "",
    );
    let server = Server::configured(dir.path(), &config);
    // A known address, a sub-address of it (two look-ups), an unknown one, an unknown
    // sub-address (two look-ups, both misses).
    let rcpts = [
        "rcpt@kurier.test",
        "nobody@kurier.test",
        "rcpt+tag@kurier.test",
        "nobody+tag@kurier.test",
    ];
    let spec = serde_json::json!({
        "server": ip,
        "client": "127.0.68.10",
        "rcpts": rcpts.repeat(2),
    });
    let out = support::python(TIMED_RCPTS, &dir.path().join("spec.json"), &spec);
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 8, "{lines:?}");
    let (mut known, mut unknown) = (Vec::new(), Vec::new());
    for l in &lines {
        let secs = l["secs"].as_f64().unwrap();
        // Without the floor a look-up on loopback answers in about a millisecond.
        assert!(secs >= 0.149, "{l}: answered before the floor");
        match l["code"].as_u64().unwrap() {
            250 => known.push(secs),
            550 => unknown.push(secs),
            c => panic!("unexpected {c}: {lines:?}"),
        }
    }
    assert_eq!((known.len(), unknown.len()), (4, 4), "{lines:?}");
    // The fastest of each kind (the least disturbed by a busy machine) agree closely.
    let fastest = |v: &[f64]| v.iter().copied().fold(f64::MAX, f64::min);
    let gap = (fastest(&known) - fastest(&unknown)).abs();
    assert!(gap < 0.04, "known {known:?} unknown {unknown:?}");
    let m = std::process::Command::new("curl")
        .args(["-sk", &format!("https://{ip}:8443/metrics")])
        .output()
        .unwrap();
    let m = String::from_utf8_lossy(&m.stdout);
    assert!(
        m.contains("# TYPE kurier_smtp_recipient_answers_late_total counter\n"),
        "{m}"
    );
    assert!(server.stderr().contains("recipient refused"));
}
