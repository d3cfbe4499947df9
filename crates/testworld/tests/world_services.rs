//! Self-test of the world's smaller services: smtp-sink and the HTTPS policy host.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use kurier_testworld::{World, net::hosts};

#[test]
fn smtp_sink_accepts_mail() {
    let mut world = World::builder().build().unwrap();
    let sink = world.start_smtp_sink(hosts::FREE).unwrap();
    let out = kurier_testworld::swaks(&[
        "--server",
        &sink.to_string(),
        "--from",
        "a@x.test",
        "--to",
        "b@y.test",
    ])
    .unwrap();
    assert!(out.contains("250"), "{out}");
}

#[test]
fn https_policy_host_serves_a_verified_mta_sts_policy() {
    let mut world = World::builder().build().unwrap();
    let policy = "version: STSv1\nmode: enforce\nmx: mx.peer.test\nmax_age: 86400\n";
    let addr = world
        .start_https(
            hosts::FREE + 1,
            &["mta-sts.peer.test"],
            &[(".well-known/mta-sts.txt", policy)],
        )
        .unwrap();
    let ca = world.ca_file().unwrap();
    let out = std::process::Command::new("curl")
        .args(["-sS", "-D", "-", "--cacert", ca.to_str().unwrap()])
        .args(["--resolve", &format!("mta-sts.peer.test:443:{}", addr.ip())])
        .arg("https://mta-sts.peer.test/.well-known/mta-sts.txt")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("200")
            && text
                .to_ascii_lowercase()
                .contains("content-type: text/plain"),
        "{text}"
    );
    assert!(text.ends_with(policy), "{text}");
}
