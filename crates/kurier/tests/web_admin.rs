//! The web administration (issue 26): the JSON API's authentication and roles (no
//! credentials, a wrong role, an expired session, a deleted token → 401/403), its input
//! checks (a bad address, a domain hosted already, a body over 16 KiB → 400 with words), CSRF
//! refusals for the API and the pages, the security headers of every page, no script and no
//! reflected input unescaped (`<script>` sent in every field), the admin area never on plain
//! HTTP, and `web.admin_networks`.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod support;

use support::Server;

/// A small HTTPS client over the server's test certificate (not verified: the test CA is the
/// server's own), with the session cookie kept like a browser keeps it.
const CLIENT: &str = r#"
import http.client, json, ssl, sys
ip = sys.argv[1]
ctx = ssl._create_unverified_context()

def call(method, path, body=None, cookie=None, csrf=None, token=None, raw=None, ctype="application/json"):
    c = http.client.HTTPSConnection(ip, 8443, context=ctx, timeout=30)
    h = {}
    if cookie: h["Cookie"] = "kurier_session=" + cookie
    if csrf: h["X-CSRF-Token"] = csrf
    if token: h["Authorization"] = "Bearer " + token
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    if data is not None: h["Content-Type"] = ctype
    c.request(method, path, body=data, headers=h)
    r = c.getresponse()
    text = r.read().decode()
    headers = {k.lower(): v for k, v in r.getheaders()}
    c.close()
    return r.status, headers, text

def js(t):
    return json.loads(t)

def sign_in(address, password):
    s, h, t = call("POST", "/api/v1/session", {"address": address, "password": password})
    assert s == 200, (s, t)
    cookie = h["set-cookie"]
    for part in ("Secure", "HttpOnly", "SameSite=Strict", "Path=/"):
        assert part in cookie, cookie
    return cookie.split(";")[0].split("=", 1)[1], js(t)["csrf"]
"#;

const API: &str = r#"
# No credentials, wrong password.
s, h, t = call("GET", "/api/v1/me")
assert s == 401 and "sign in first" in js(t)["error"], (s, t)
s, h, t = call("POST", "/api/v1/session", {"address": "admin@kurier.test", "password": "wrong"})
assert s == 401 and js(t)["error"] == "wrong address or password", (s, t)
assert "set-cookie" not in h

# Every route of the API: without credentials 401, with a user's session 403 where the role
# does not reach (the route table comes from the code, ROUTES).
user, user_csrf = sign_in("rcpt@kurier.test", "pw")
for method, pattern, access in json.load(open(sys.argv[2])):
    path = pattern.replace("{name}", "x").replace("{address}", "x%40kurier.test").replace("{id}", "999")
    body = {} if method in ("POST", "PATCH") else None
    s, h, t = call(method, path, body)
    if access == "Public":
        assert s != 401 or "wrong address" in t, (method, path, s, t)
        continue
    assert s == 401, (method, path, s, t)
    if (method, pattern) == ("DELETE", "/api/v1/session"):
        continue  # signing out is tried at the end
    s, h, t = call(method, path, body, cookie=user, csrf=user_csrf)
    if access in ("Admin", "DomainAdmin"):
        assert s == 403 and "role" in js(t)["error"], (method, path, s, t)
    else:
        assert s != 401 and s != 403, (method, path, s, t)
# A user sees only itself.
s, h, t = call("GET", "/api/v1/me", cookie=user)
assert s == 200 and js(t)["role"] == "user", t
for method, path in [("GET", "/api/v1/domains"), ("GET", "/api/v1/queue"), ("GET", "/api/v1/status")]:
    s, h, t = call(method, path, cookie=user)
    assert s == 403, (method, path, s, t)

admin, csrf = sign_in("admin@kurier.test", "admin-password")
s, h, t = call("GET", "/api/v1/me", cookie=admin)
assert js(t)["role"] == "admin", t
# The server's state: listeners, certificates in use, the validator (not watched: delivery off).
s, h, t = call("GET", "/api/v1/status", cookie=admin)
st = js(t)
assert s == 200 and st["hostname"] == "mx.kurier.test" and st["queued"] == 1, t
assert {"service": "SMTP (MX)", "address": ip + ":2525"} in st["listeners"], st["listeners"]
assert [c["names"] for c in st["certificates"]] == ["mx.kurier.test"], st["certificates"]
assert st["certificates"][0]["not_after"] > 1_700_000_000
assert st["dnssec_validator"]["working"] is False and "not watched" in st["dnssec_validator"]["detail"], st
# TLS outcomes of our deliveries per destination domain and day.
s, h, t = call("GET", "/api/v1/tls?days=2", cookie=admin)
rows = js(t)
assert s == 200 and len(rows) == 1 and rows[0]["domain"] == "far.test", rows
assert rows[0]["outcomes"]["verified (DANE)"] == 1 and rows[0]["outcomes"]["failed"] == 1, rows
assert st["tls_last_24h"]["verified (DANE)"] == 1 and st["tls_last_24h"]["failed"] == 1, st
# Reports: received ones summed per day, reporter and domain; sent ones listed.
s, h, t = call("GET", "/api/v1/reports", cookie=admin)
r = js(t)
assert r["tlsrpt_received"] == [{"day": "2026-12-03", "reporter": "Example Reporter", "domain": "kurier.test",
    "reports": 1, "successful": 5, "failed": 2, "failures": {"certificate-expired": 2}}], r
assert [x["report_id"] for x in r["tlsrpt_sent"]] == ["our-report-1"] and r["dmarc_sent"] == [], r
d = r["dmarc_received"]
assert [(x["domain"], x["reports"], x["messages"], x["failed"]) for x in d] == [("kurier.test", 1, 13, 3)], d
assert d[0]["sources"][0]["source"] == "203.0.113.5" and d[0]["sources"][0]["failed"] == 3, d
# CSRF: a change with the cookie needs the session's token.
s, h, t = call("POST", "/api/v1/domains", {"name": "new.test"}, cookie=admin)
assert s == 403 and "X-CSRF-Token" in js(t)["error"], (s, t)
s, h, t = call("POST", "/api/v1/domains", {"name": "new.test"}, cookie=admin, csrf=user_csrf)
assert s == 403, (s, t)
s, h, t = call("POST", "/api/v1/domains", {"name": "new.test"}, cookie=admin, csrf=csrf)
assert s == 201 and js(t)["name"] == "new.test", (s, t)
# Input checks: 400 with words.
s, h, t = call("POST", "/api/v1/domains", {"name": "new.test"}, cookie=admin, csrf=csrf)
assert s == 400 and "exists already" in js(t)["error"], (s, t)
s, h, t = call("POST", "/api/v1/domains", {"name": "not a domain"}, cookie=admin, csrf=csrf)
assert s == 400, (s, t)
s, h, t = call("POST", "/api/v1/accounts", {"address": "no-at-sign", "password": "long enough"}, cookie=admin, csrf=csrf)
assert s == 403 or s == 400, (s, t)
s, h, t = call("POST", "/api/v1/accounts", {"address": "bad address@new.test", "password": "long enough"}, cookie=admin, csrf=csrf)
assert s == 400, (s, t)
s, h, t = call("POST", "/api/v1/accounts", {"address": "ann@new.test", "password": "short"}, cookie=admin, csrf=csrf)
assert s == 400 and "8 characters" in js(t)["error"], (s, t)
s, h, t = call("POST", "/api/v1/accounts", {"address": "ann@new.test", "password": "long enough", "quota": "lots"}, cookie=admin, csrf=csrf)
assert s == 400 and "no size" in js(t)["error"], (s, t)
s, h, t = call("POST", "/api/v1/domains", raw=b"{not json", cookie=admin, csrf=csrf)
assert s == 400 and "not JSON" in js(t)["error"], (s, t)
s, h, t = call("POST", "/api/v1/domains", raw=b'{"name": "' + b"a" * 20000 + b'"}', cookie=admin, csrf=csrf)
assert s == 400 and "16 KiB" in js(t)["error"], (s, t)
s, h, t = call("POST", "/api/v1/accounts", {"address": "ann@new.test", "password": "long enough", "quota": "2G"}, cookie=admin, csrf=csrf)
assert s == 201, (s, t)
s, h, t = call("PATCH", "/api/v1/accounts/ann%40new.test", {"enabled": False, "quota": None}, cookie=admin, csrf=csrf)
assert s == 200 and js(t)["done"] == ["disabled", "quota removed"], (s, t)
s, h, t = call("PATCH", "/api/v1/accounts/nobody%40new.test", {"enabled": True}, cookie=admin, csrf=csrf)
assert s == 404, (s, t)
s, h, t = call("GET", "/api/v1/accounts?domain=new.test", cookie=admin)
assert [(a["address"], a["enabled"], a["quota"]) for a in js(t)] == [("ann@new.test", False, None)], t
s, h, t = call("POST", "/api/v1/aliases", {"address": "team@new.test", "targets": ["ann@new.test"]}, cookie=admin, csrf=csrf)
assert s == 201, (s, t)

# A domain administrator of new.test: its domain only.
s, h, t = call("POST", "/api/v1/accounts", {"address": "boss@new.test", "password": "boss-password"}, cookie=admin, csrf=csrf)
assert s == 201, (s, t)
print(json.dumps({"grant": "boss@new.test"}), flush=True)
sys.stdin.readline()
boss, boss_csrf = sign_in("boss@new.test", "boss-password")
s, h, t = call("GET", "/api/v1/domains", cookie=boss)
assert [d["name"] for d in js(t)] == ["new.test"], t
s, h, t = call("POST", "/api/v1/accounts", {"address": "bob@new.test", "password": "bob-password"}, cookie=boss, csrf=boss_csrf)
assert s == 201, (s, t)
s, h, t = call("POST", "/api/v1/accounts", {"address": "eve@kurier.test", "password": "eve-password"}, cookie=boss, csrf=boss_csrf)
assert s == 400 and "does not administer" in js(t)["error"], (s, t)
s, h, t = call("GET", "/api/v1/accounts?domain=kurier.test", cookie=boss)
assert s == 403, (s, t)
for method, path in [("GET", "/api/v1/queue"), ("POST", "/api/v1/domains"), ("DELETE", "/api/v1/domains/kurier.test")]:
    s, h, t = call(method, path, {"name": "x.test"} if method == "POST" else None, cookie=boss, csrf=boss_csrf)
    assert s == 403, (method, path, s, t)

# API tokens: no CSRF needed; deleted, the token is refused.
s, h, t = call("POST", "/api/v1/tokens", {"name": "backup", "days": 30}, cookie=admin, csrf=csrf)
assert s == 201 and js(t)["token"].startswith("kurier_"), (s, t)
token = js(t)["token"]
s, h, t = call("GET", "/api/v1/queue", token=token)
assert s == 200, (s, t)
queue = js(t)
assert len(queue) == 1 and queue[0]["recipients"][0]["address"] == "far@remote.test", queue
qid = queue[0]["id"]
s, h, t = call("GET", "/api/v1/queue/%d" % qid, token=token)
assert s == 200 and js(t)["attempts"] == [] and js(t)["id"] == qid, (s, t)
s, h, t = call("POST", "/api/v1/queue/%d/retry" % qid, token=token)
assert s == 200, (s, t)
# Returned to its sender (rcpt@kurier.test, ours: the notice lands in its INBOX).
s, h, t = call("POST", "/api/v1/queue/%d/bounce" % qid, token=token)
assert s == 200 and js(t) == {"returned": qid, "recipients": 1}, (s, t)
s, h, t = call("POST", "/api/v1/queue/%d/bounce" % qid, token=token)
assert s == 404, (s, t)
s, h, t = call("DELETE", "/api/v1/queue/%d" % qid, token=token)
assert s == 404, (s, t)
s, h, t = call("GET", "/api/v1/queue", token=token[:-1] + ("0" if token[-1] != "0" else "1"))
assert s == 401, (s, t)
s, h, t = call("DELETE", "/api/v1/tokens/backup", cookie=admin, csrf=csrf)
assert s == 200, (s, t)
s, h, t = call("GET", "/api/v1/queue", token=token)
assert s == 401, (s, t)
s, h, t = call("GET", "/api/v1/nothing", token=token)
assert s == 401 or s == 404, (s, t)

# App passwords: made once, open IMAP, never the web administration; deleted, they are gone.
import imaplib
s, h, t = call("POST", "/api/v1/me/app-passwords", {"name": "phone"}, cookie=user, csrf=user_csrf)
assert s == 201, (s, t)
app = js(t)["password"]
assert len(app) == 27 and app.count("-") == 3, app
def imap_login(pw):
    m = imaplib.IMAP4_SSL(ip, 1993, ssl_context=ctx)
    try:
        m.login("rcpt@kurier.test", pw)
        return True
    except imaplib.IMAP4.error:
        return False
    finally:
        try: m.logout()
        except Exception: pass
assert imap_login(app)
s, h, t = call("POST", "/api/v1/session", {"address": "rcpt@kurier.test", "password": app})
assert s == 401, (s, t)
s, h, t = call("GET", "/api/v1/me/app-passwords", cookie=user)
assert [a["name"] for a in js(t)] == ["phone"] and app not in t, t
s, h, t = call("POST", "/api/v1/me/app-passwords", {"name": "phone"}, cookie=user, csrf=user_csrf)
assert s == 400 and "exists already" in js(t)["error"], (s, t)
s, h, t = call("DELETE", "/api/v1/me/app-passwords/phone", cookie=user, csrf=user_csrf)
assert s == 200, (s, t)
assert not imap_login(app)
assert imap_login("pw")

# An expired session (written into the store by the test) is no session.
s, h, t = call("GET", "/api/v1/me", cookie="expired-secret")
assert s == 401, (s, t)
# Signing out ends the session for good.
s, h, t = call("DELETE", "/api/v1/session", cookie=user, csrf=user_csrf)
assert s == 200 and "Max-Age=0" in h["set-cookie"], (s, h)
s, h, t = call("GET", "/api/v1/me", cookie=user)
assert s == 401, (s, t)
print("OK-DONE")
"#;

/// Every page: the security headers, no script, every form with its CSRF token; `<script>`
/// in every field of every form comes back escaped; a form without the token is refused.
const PAGES: &str = r#"
import html.parser, re, urllib.parse
admin, csrf = sign_in("admin@kurier.test", "admin-password")

def page(path, expect=200):
    s, h, t = call("GET", path, cookie=admin)
    assert s == expect, (path, s, t[:300])
    csp = h.get("content-security-policy", "")
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp and "script-src 'self';" in csp and "unsafe" not in csp, (path, csp)
    assert h.get("x-frame-options") == "DENY", path
    assert "max-age=" in h.get("strict-transport-security", ""), path
    assert h.get("x-content-type-options") == "nosniff", path
    # No inline script: the one script element loads our copy-button file.
    scripts = re.findall(r"<script[^>]*>", t, re.I)
    assert scripts == ['<script src="/admin/copy.js" defer>'], (path, scripts)
    assert not re.search(r"\son[a-z]+=", t) and "style=\"" not in t, path
    for form in re.findall(r"<form.*?</form>", t, re.S):
        if 'action="/admin/login"' not in form:
            assert 'name="csrf" value="%s"' % csrf in form, (path, form)
    return t

for path in ["/admin/", "/admin/queue", "/admin/domains", "/admin/accounts", "/admin/me", "/admin/accounts?domain=kurier.test", "/admin/reports", "/admin/aliases"]:
    page(path)
reports = page("/admin/reports")
assert "Example Reporter" in reports and "certificate-expired: 2" in reports and "our-report-1" in reports, reports
assert "203.0.113.5" in reports and "kurier.test: 1 reports, 13 messages, 3 failed DMARC" in reports, reports
page("/admin/nothing", 404)
s, h, t = call("GET", "/admin/login")
assert s == 200 and "<script>" not in t and h.get("x-frame-options") == "DENY"

evil = "<script>alert(1)</script>"
def post(path, fields, with_csrf=True):
    if with_csrf: fields = dict(fields, csrf=csrf)
    body = urllib.parse.urlencode(fields).encode()
    return call("POST", path, raw=body, cookie=admin, ctype="application/x-www-form-urlencoded")

for path, fields in [
    ("/admin/domains", {"name": evil}),
    ("/admin/domains/delete", {"name": evil}),
    ("/admin/accounts", {"address": evil + "@kurier.test", "password": evil, "quota": evil}),
    ("/admin/accounts/update", {"address": evil, "action": evil, "value": evil}),
    ("/admin/accounts/update", {"address": "rcpt@kurier.test", "action": "quota", "value": evil}),
    ("/admin/queue/retry", {"id": evil}),
    ("/admin/me/password", {"current": evil, "new": evil}),
    ("/admin/aliases", {"address": evil + "@kurier.test", "targets": evil}),
    ("/admin/aliases/delete", {"address": evil + "@kurier.test"}),
]:
    s, h, t = post(path, fields)
    assert s == 303, (path, s, t)
    location = h["location"]
    back = page(location)
    assert evil not in back and "&lt;script&gt;" in back or "error=" in location, (path, location, back[:500])
    assert 'class="error"' in back, (path, location)
# Reflected through the query string too.
back = page("/admin/domains?error=" + urllib.parse.quote(evil))
assert evil not in back and "&lt;script&gt;alert(1)&lt;/script&gt;" in back
s, h, t = call("GET", "/admin/copy.js")
assert s == 200 and h["content-type"].startswith("text/javascript") and "clipboard" in t, (s, h)
# The login page reflects nothing it is sent.
s, h, t = call("POST", "/admin/login", raw=urllib.parse.urlencode({"address": evil, "password": evil}).encode(), ctype="application/x-www-form-urlencoded")
assert s == 401 and evil not in t, (s, t)

# A form without its token changes nothing.
s, h, t = post("/admin/domains", {"name": "csrf.test"}, with_csrf=False)
assert s == 403 and "CSRF" in t, (s, t)
s, h, t = call("GET", "/api/v1/domains", cookie=admin)
assert "csrf.test" not in t
# With it, it does.
s, h, t = post("/admin/domains", {"name": "forms.test"})
assert s == 303 and "done=" in h["location"], (s, h)
assert "forms.test" in page("/admin/domains")
# An app password through its form: shown in the answer itself, never in a URL.
s, h, t = post("/admin/me/app-passwords", {"name": "laptop"})
assert s == 200 and 'id="new-app-password"' in t and "location" not in h, (s, h)
assert "laptop" in page("/admin/me")
# An alias through its form.
s, h, t = post("/admin/aliases", {"address": "info@kurier.test", "targets": "rcpt@kurier.test, admin@kurier.test"})
assert s == 303 and "done=" in h["location"], (s, h)
assert "info@kurier.test" in page("/admin/aliases")
s, h, t = post("/admin/aliases/delete", {"address": "info@kurier.test"})
assert "done=" in h["location"], h
assert "info@kurier.test" not in page("/admin/aliases")
# Without a session the pages send to the sign-in.
s, h, t = call("GET", "/admin/queue")
assert s == 303 and h["location"] == "/admin/login", (s, h)
print("OK-DONE")
"#;

/// An RFC 8460 report about kurier.test: 5 good sessions, 2 with an expired certificate.
const REPORT: &str = r#"{"organization-name": "Example Reporter", "date-range": {"start-datetime": "2026-12-03T00:00:00Z", "end-datetime": "2026-12-03T23:59:59Z"}, "contact-info": "tls@reporter.test", "report-id": "r1", "policies": [{"policy": {"policy-type": "sts", "policy-domain": "kurier.test"}, "summary": {"total-successful-session-count": 5, "total-failure-session-count": 2}, "failure-details": [{"result-type": "certificate-expired", "failed-session-count": 2}]}]}"#;

/// An RFC 7489 aggregate report about kurier.test: 10 messages passed from 192.0.2.1, 3 failed
/// from 203.0.113.5.
const DMARC_REPORT: &str = "<?xml version=\"1.0\"?>\n<feedback><report_metadata><org_name>Reporter Inc.</org_name>\
    <email>noreply@reporter.test</email><report_id>r-3</report_id><date_range><begin>1796083200</begin>\
    <end>1796169599</end></date_range></report_metadata><policy_published><domain>kurier.test</domain>\
    <adkim>r</adkim><aspf>r</aspf><p>reject</p><sp>reject</sp><pct>100</pct></policy_published>\
    <record><row><source_ip>192.0.2.1</source_ip><count>10</count><policy_evaluated><disposition>none</disposition>\
    <dkim>pass</dkim><spf>pass</spf></policy_evaluated></row><identifiers><header_from>kurier.test</header_from>\
    </identifiers><auth_results><dkim><domain>kurier.test</domain><result>pass</result></dkim><spf>\
    <domain>kurier.test</domain><result>pass</result></spf></auth_results></record><record><row>\
    <source_ip>203.0.113.5</source_ip><count>3</count><policy_evaluated><disposition>reject</disposition>\
    <dkim>fail</dkim><spf>fail</spf></policy_evaluated></row><identifiers><header_from>kurier.test</header_from>\
    </identifiers><auth_results><spf><domain>spam.test</domain><result>fail</result></spf></auth_results>\
    </record></feedback>\n";

#[test]
fn web_admin_api_roles_input_and_csrf() {
    let ip = "127.0.69.1";
    let dir = tempfile::tempdir().unwrap();
    let config = support::configured(dir.path(), ip, "", "");
    support::admin(
        &config,
        &["user", "add", "admin@kurier.test"],
        "admin-password\n",
    );
    support::admin(&config, &["user", "admin", "admin@kurier.test"], "");
    // A deferred message for the queue endpoints, and an expired session.
    {
        let (rt, store) = support::store_at(dir.path());
        rt.block_on(async {
            let e = kurier_store::NewQueueEntry {
                sender: "rcpt@kurier.test".into(),
                recipients: vec![("far@remote.test".into(), Default::default())],
                require_tls: false,
                dsn: Default::default(),
            };
            store.enqueue(&e, b"Subject: x\r\n\r\nx\r\n").await.unwrap();
            // A TLS report an outside reporter sent us, and one we sent.
            store
                .store_report("kurier.test", "reporter.test", REPORT.as_bytes())
                .await
                .unwrap();
            // Two deliveries to far.test today: one DANE-verified, one failed DANE.
            for failure in [None, Some(kurier_store::ResultType::TlsaInvalid)] {
                let outcome = kurier_store::TlsOutcome {
                    policy_domain: "far.test".into(),
                    policy_type: kurier_store::PolicyType::Tlsa,
                    policy_strings: vec![],
                    mx_host: "mx.far.test".into(),
                    failure,
                    receiving_ip: None,
                    sending_ip: None,
                    receiving_helo: None,
                    detail: None,
                };
                store
                    .record_tls_event(&outcome, kurier_store::now())
                    .await
                    .unwrap();
            }
            store
                .store_dmarc_report("kurier.test", "reporter.test", DMARC_REPORT.as_bytes())
                .await
                .unwrap();
            let today = kurier_store::now() - kurier_store::now().rem_euclid(86400);
            store
                .claim_report(
                    kurier_store::ReportKind::Tlsrpt,
                    "far.test",
                    today,
                    "our-report-1",
                    kurier_store::now(),
                )
                .await
                .unwrap();
            let a = store.account("rcpt@kurier.test").await.unwrap().unwrap();
            store
                .put_web_session(&kurier_store::WebSession {
                    id: kurier_web::admin::auth::sha256_hex("expired-secret"),
                    account: a.id,
                    csrf: "x".into(),
                    created: 1,
                    expires: kurier_store::now() - 1,
                })
                .await
                .unwrap();
        });
    }
    let server = Server::configured(dir.path(), &config);
    // The API script stops once for the test to grant boss@new.test its domain (as an
    // operator would with the CLI).
    let routes: Vec<(&str, &str, String)> = kurier_web::admin::api::ROUTES
        .iter()
        .map(|(m, p, a)| (*m, *p, format!("{a:?}")))
        .collect();
    let routes_file = dir.path().join("routes.json");
    std::fs::write(&routes_file, serde_json::to_vec(&routes).unwrap()).unwrap();
    let mut child = std::process::Command::new("python3")
        .arg("-c")
        .arg(format!("{CLIENT}{API}"))
        .arg(ip)
        .arg(&routes_file)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut out, &mut line).unwrap();
    if line.contains("grant") {
        support::admin(
            &config,
            &["user", "admin", "boss@new.test", "--domain", "new.test"],
            "",
        );
        use std::io::Write;
        writeln!(child.stdin.as_mut().unwrap()).unwrap();
    }
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    let result = child.wait_with_output().unwrap();
    assert!(
        rest.contains("OK-DONE"),
        "{line}{rest}\n{}",
        String::from_utf8_lossy(&result.stderr)
    );
    assert!(server.stderr().contains("web sign-in failed"));
    // The bounce's notice reached the sender, naming the recipient and who returned it.
    let inbox = support::inbox(dir.path(), "rcpt@kurier.test");
    assert_eq!(inbox.len(), 1, "{inbox:?}");
    for want in [
        "Undelivered mail returned to sender",
        "far@remote.test",
        "returned by admin@kurier.test in the web administration",
        "Status: 5.0.0",
    ] {
        assert!(inbox[0].contains(want), "{want} in {}", inbox[0]);
    }
    // The CLI does what the API does.
    {
        let (rt, store) = support::store_at(dir.path());
        let e = kurier_store::NewQueueEntry {
            sender: "rcpt@kurier.test".into(),
            recipients: vec![("x@remote.test".into(), Default::default())],
            require_tls: false,
            dsn: Default::default(),
        };
        let id = rt
            .block_on(store.enqueue(&e, b"Subject: y\r\n\r\ny\r\n"))
            .unwrap();
        let c = config.to_str().unwrap();
        let (code, out, err) = support::run(&["queue", "retry", &id.to_string(), "--config", c]);
        assert_eq!(code, 0, "{err}");
        assert!(out.contains("is due now"), "{out}");
        let (code, out, err) = support::run(&["queue", "bounce", &id.to_string(), "--config", c]);
        assert_eq!(code, 0, "{err}");
        assert!(
            out.contains("returned message") && out.contains("(1 recipients)"),
            "{out}"
        );
        let (code, _, err) = support::run(&["queue", "delete", &id.to_string(), "--config", c]);
        assert_ne!(code, 0);
        assert!(err.contains("not found"), "{err}");
    }

    support::python_ok(&format!("{CLIENT}{PAGES}"), &[ip]);

    // Plain HTTP never serves the administration: a redirect to HTTPS.
    let out = std::process::Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{redirect_url}",
        ])
        .arg(format!("http://{ip}:8080/admin/"))
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.starts_with("301 https://"), "{out}");
}

#[test]
fn web_admin_only_to_its_networks() {
    let ip = "127.0.69.2";
    let dir = tempfile::tempdir().unwrap();
    let config = support::configured(dir.path(), ip, "", "");
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("[web]\n", "[web]\nadmin_networks = [\"10.0.0.0/8\"]\n");
    std::fs::write(&config, text).unwrap();
    let _server = Server::configured(dir.path(), &config);
    let code = |path: &str| {
        let out = std::process::Command::new("curl")
            .args(["-sk", "-o", "/dev/null", "-w", "%{http_code}"])
            .arg(format!("https://{ip}:8443{path}"))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    assert_eq!(code("/admin/login"), "403");
    assert_eq!(code("/api/v1/me"), "403");
    // The rest of the site is served as before.
    assert_eq!(code("/healthz"), "200");
}

/// Signing in goes through the login throttle every protocol shares: after
/// `submission.auth_block_after` failures the web sign-in answers 429, and so does IMAP for
/// that account from that address — switching protocols gains nothing (TR-03108 MUA-2).
#[test]
fn web_sign_in_is_throttled_with_the_other_protocols() {
    let ip = "127.0.69.3";
    let dir = tempfile::tempdir().unwrap();
    let config = support::configured(dir.path(), ip, "", "auth_block_after = 3\n");
    let _server = Server::configured(dir.path(), &config);
    let script = r#"
import http.client, imaplib, json, ssl, sys
ip = sys.argv[1]
ctx = ssl._create_unverified_context()
def sign_in(pw):
    c = http.client.HTTPSConnection(ip, 8443, context=ctx, timeout=30)
    c.request("POST", "/api/v1/session", body=json.dumps({"address": "rcpt@kurier.test", "password": pw}),
              headers={"Content-Type": "application/json"})
    r = c.getresponse()
    r.read()
    return r.status
codes = [sign_in("wrong") for _ in range(4)]
assert codes == [401, 401, 401, 429], codes
# Now even the right password is held back, here and over IMAP.
assert sign_in("pw") == 429
m = imaplib.IMAP4_SSL(ip, 1993, ssl_context=ctx)
try:
    m.login("rcpt@kurier.test", "pw")
    raise AssertionError("IMAP let the blocked account in")
except imaplib.IMAP4.error as e:
    assert "UNAVAILABLE" in str(e) or "try" in str(e).lower(), e
print("OK-DONE")
"#;
    support::python_ok(script, &[ip]);
}
