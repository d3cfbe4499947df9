//! The web administration in a real browser (issue 26): headless Chromium from Debian, driven
//! by selenium, signs in as an administrator, adds a domain, creates an account in it, finds a
//! deferred message with the reason its delivery failed in words, and signs out; a page then
//! sends it back to the sign-in. Screenshots of each page go to
//! `target/test-artifacts/web-admin/` (the README shows three of them).

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod support;

use std::time::Duration;

use kurier_testworld::net::hosts;
use kurier_testworld::{World, Zone};
use support::Server;

const BROWSER: &str = r#"
import json, sys, time
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

spec = json.load(open(sys.argv[1]))
base = "https://mx.kurier.test:8443"
o = Options()
o.binary_location = "/usr/bin/chromium"
for a in ["--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,900",
          "--ignore-certificate-errors", "--disable-dev-shm-usage", "--user-data-dir=" + spec["profile"],
          "--host-resolver-rules=MAP mx.kurier.test " + spec["ip"]]:
    o.add_argument(a)
d = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=o)
d.set_page_load_timeout(30)
shots = spec["shots"]
def shot(name):
    d.save_screenshot(shots + "/" + name + ".png")
def text():
    return d.find_element(By.TAG_NAME, "body").text
def until(what, check):
    # A click starts a navigation; wait (bounded) until the next page shows what it should.
    deadline = time.time() + 20
    while time.time() < deadline:
        try:
            if check():
                return
        except Exception:
            pass
        time.sleep(0.1)
    raise AssertionError("%s; at %s: %s" % (what, d.current_url, text()[:2000]))
try:
    d.get(base + "/admin/queue")
    assert d.current_url.endswith("/admin/login"), d.current_url
    shot("1-sign-in")
    d.find_element(By.ID, "address").send_keys("admin@kurier.test")
    d.find_element(By.ID, "password").send_keys("admin-password")
    d.find_element(By.ID, "sign-in").click()
    until("the dashboard", lambda: d.current_url.endswith("/admin/") and "Queued messages" in text())
    shot("2-dashboard")
    cookie = d.get_cookie("kurier_session")
    assert cookie["secure"] and cookie["httpOnly"] and cookie["sameSite"] == "Strict", cookie

    d.find_element(By.LINK_TEXT, "Domains").click()
    until("the domains", lambda: "Host a domain" in text())
    d.find_element(By.ID, "new-domain").send_keys("shop.test")
    d.find_element(By.ID, "add-domain").click()
    until("the domain added", lambda: "added domain shop.test" in text())
    assert "shop.test" in d.find_element(By.ID, "domains").text
    shot("3-domains")

    d.find_element(By.LINK_TEXT, "shop.test").click()
    until("the accounts of shop.test", lambda: "Accounts of shop.test" in text())
    d.find_element(By.ID, "new-address").send_keys("ann@shop.test")
    d.find_element(By.ID, "new-password").send_keys("ann-password")
    d.find_element(By.ID, "new-quota").send_keys("2G")
    d.find_element(By.ID, "add-account").click()
    until("the account created", lambda: "created account ann@shop.test" in text())
    assert "ann@shop.test" in d.find_element(By.ID, "accounts").text
    shot("4-accounts")

    d.find_element(By.LINK_TEXT, "Queue").click()
    until("the queue", lambda: "Outbound queue" in text())
    entry = d.find_element(By.CSS_SELECTOR, "article.entry")
    print(json.dumps({"queue": entry.text}), flush=True)
    shot("5-queue")

    d.find_element(By.ID, "sign-out").click()
    until("the sign-in page", lambda: d.current_url.endswith("/admin/login"))
    d.get(base + "/admin/")
    until("the sign-in page again", lambda: d.current_url.endswith("/admin/login") and "sign in" in text())
    shot("6-signed-out")
    print(json.dumps({"done": True}), flush=True)
finally:
    d.quit()
"#;

#[test]
fn chromium_signs_in_adds_a_domain_and_an_account_sees_a_deferral_and_signs_out() {
    // far.test's MX has an address nobody listens on: delivery is deferred with a reason.
    let world = World::builder()
        .zone(
            Zone::signed("far.test")
                .record("@", "MX", "10 mx")
                .record("mx", "A", "{ip:77}"),
        )
        .build()
        .unwrap();
    let dns = world.dns().clone();
    let ip = world.net.ip(hosts::FREE).to_string();
    let dir = tempfile::tempdir().unwrap();
    let config = support::configured(
        dir.path(),
        &ip,
        "",
        &format!(
            "\n[dns]\nupstream = [\"{}\"]\ntrust_anchor = \"{}\"\ntimeout_secs = 3\n\
             [delivery]\nenabled = true\nsource_ipv4 = \"{ip}\"\n[tlsrpt]\nenabled = false\n",
            dns.resolver,
            dns.trust_anchor_dnskey.display()
        ),
    );
    support::admin(
        &config,
        &["user", "add", "admin@kurier.test"],
        "admin-password\n",
    );
    support::admin(&config, &["user", "admin", "admin@kurier.test"], "");
    let _server = Server::configured(dir.path(), &config);
    let r = support::submit_message(&ip, "friend@far.test", "Subject: to the far side\r\n");
    assert!(r.starts_with("250"), "{r}");
    // Wait until the first attempt has failed and left its reason.
    let (rt, store) = support::store_at(dir.path());
    support::wait_until(Duration::from_secs(60), "a failed first attempt", || {
        let q = rt.block_on(store.queue()).unwrap();
        q.first()
            .is_some_and(|e| e.attempts > 0 && e.recipients[0].last_error.is_some())
    });
    drop(store);

    let shots = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/test-artifacts/web-admin");
    std::fs::create_dir_all(&shots).unwrap();
    let spec = serde_json::json!({
        "ip": ip,
        "shots": shots,
        "profile": dir.path().join("chromium-profile"),
    });
    let out = support::python(BROWSER, &dir.path().join("browser.json"), &spec);
    let out = String::from_utf8_lossy(&out);
    let lines: Vec<serde_json::Value> = out
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert!(lines.iter().any(|l| l["done"] == true), "{out}");
    let queue = lines.iter().find_map(|l| l["queue"].as_str()).unwrap();
    // The entry names the recipient, its state and the reason in words.
    assert!(queue.contains("friend@far.test"), "{queue}");
    assert!(queue.contains("pending"), "{queue}");
    assert!(
        queue.contains("mx.far.test") || queue.contains("connect"),
        "the reason: {queue}"
    );
    for name in [
        "1-sign-in",
        "2-dashboard",
        "3-domains",
        "4-accounts",
        "5-queue",
        "6-signed-out",
    ] {
        let png = std::fs::read(shots.join(format!("{name}.png"))).unwrap();
        assert!(png.starts_with(b"\x89PNG"), "{name}");
    }
}
