//! The web administration in a real browser (issue 26): headless Chromium from Debian, driven
//! by selenium, signs in as an administrator, adds a domain, creates an account in it, finds a
//! deferred message with the reason its delivery failed in words, looks at a domain's DNS
//! records as the validating resolver finds them (present, different, missing) and runs
//! `kurier check` on it, and signs out; a page then sends it back to the sign-in. Screenshots of each page go to
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
    assert "mx.kurier.test" in d.find_element(By.ID, "certificates").text, text()
    assert "SMTP (MX)" in d.find_element(By.ID, "listeners").text, text()
    assert d.find_element(By.ID, "validator").text.startswith("working"), text()
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
    until("the page of shop.test", lambda: "DNS records to publish" in text())
    d.find_element(By.LINK_TEXT, "Accounts of shop.test").click()
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

    # kurier.test's page: its records as the validating resolver finds them, then the audit.
    d.get(base + "/admin/domain?name=kurier.test")
    until("the page of kurier.test", lambda: "DNS records to publish" in text())
    rows = [[c.text for c in tr.find_elements(By.TAG_NAME, "td")]
            for tr in d.find_element(By.ID, "records").find_elements(By.TAG_NAME, "tr")[1:]]
    print(json.dumps({"records": rows}), flush=True)
    shot("6-domain")
    # The copy button puts the record's value on the clipboard (the one script of the pages).
    d.execute_cdp_cmd("Browser.grantPermissions", {"origin": base, "permissions": ["clipboardReadWrite", "clipboardSanitizedWrite"]})
    button = d.find_element(By.CSS_SELECTOR, '#records button.copy')
    want = button.get_attribute("data-copy")
    button.click()
    until("the button says copied", lambda: button.text == "copied")
    pasted = d.execute_async_script("var done = arguments[0]; navigator.clipboard.readText().then(done, function (e) { done('ERR ' + e); })")
    assert pasted == want, (pasted, want)
    print(json.dumps({"copied": pasted}), flush=True)
    d.find_element(By.ID, "run-check").click()
    deadline = time.time() + 90
    while time.time() < deadline and not d.find_elements(By.ID, "check"):
        time.sleep(0.5)
    findings = [[c.text for c in tr.find_elements(By.TAG_NAME, "td")]
                for tr in d.find_element(By.ID, "check").find_elements(By.TAG_NAME, "tr")[1:]]
    print(json.dumps({"check": findings}), flush=True)
    shot("7-check")

    d.find_element(By.ID, "sign-out").click()
    until("the sign-in page", lambda: d.current_url.endswith("/admin/login"))
    d.get(base + "/admin/")
    until("the sign-in page again", lambda: d.current_url.endswith("/admin/login") and "sign in" in text())
    shot("8-signed-out")
    print(json.dumps({"done": True}), flush=True)
finally:
    d.quit()
"#;

#[test]
fn chromium_signs_in_adds_a_domain_and_an_account_sees_a_deferral_and_signs_out() {
    // far.test's MX has an address nobody listens on: delivery is deferred with a reason.
    // kurier.test publishes its MX, a different SPF record than Kurier suggests, and no DMARC.
    let world = World::builder()
        .zone(
            Zone::signed("far.test")
                .record("@", "MX", "10 mx")
                .record("mx", "A", "{ip:77}"),
        )
        .zone(
            Zone::signed("kurier.test")
                .record("@", "MX", "10 mx")
                .record("mx", "A", "{ip:100}")
                .record("@", "TXT", &support::txt("v=spf1 -all")),
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
    assert!(queue.contains("Every attempt (1)"), "{queue}");
    assert!(
        queue.contains("mx.far.test") || queue.contains("connect"),
        "the reason: {queue}"
    );
    // The records as the validating resolver found them (name, type, value, published, DNSSEC).
    let records = lines.iter().find_map(|l| l["records"].as_array()).unwrap();
    let row = |name: &str, rtype: &str| {
        records
            .iter()
            .find(|r| r[0] == name && r[1] == rtype)
            .unwrap_or_else(|| panic!("no {rtype} {name}: {records:?}"))
    };
    let mx = row("kurier.test.", "MX");
    assert_eq!(
        (mx[3].as_str(), mx[4].as_str()),
        (Some("present"), Some("secure")),
        "{mx:?}"
    );
    let spf = row("kurier.test.", "TXT");
    assert!(spf[3].as_str().unwrap().starts_with("different"), "{spf:?}");
    assert!(spf[3].as_str().unwrap().contains("v=spf1 -all"), "{spf:?}");
    assert!(
        row("_dmarc.kurier.test.", "TXT")[3]
            .as_str()
            .unwrap()
            .starts_with("missing")
    );
    // The copy button copied the first record's value (the MX).
    let copied = lines.iter().find_map(|l| l["copied"].as_str()).unwrap();
    assert_eq!(copied, "10 mx.kurier.test.");
    // The audit ran and names its requirements.
    let check = lines.iter().find_map(|l| l["check"].as_array()).unwrap();
    assert!(
        check.iter().any(|f| f[0] == "DNS-2"),
        "the check's findings: {check:?}"
    );
    for name in [
        "1-sign-in",
        "2-dashboard",
        "3-domains",
        "4-accounts",
        "5-queue",
        "6-domain",
        "7-check",
        "8-signed-out",
    ] {
        let png = std::fs::read(shots.join(format!("{name}.png"))).unwrap();
        assert!(png.starts_with(b"\x89PNG"), "{name}");
    }
}
