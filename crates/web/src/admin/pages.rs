//! The administration's pages, rendered on the server with maud (every value escaped): forms
//! post back with the session's CSRF token, charts are `<meter>` elements (no inline style,
//! which the Content-Security-Policy forbids), and the one script (`COPY_SCRIPT`, a file, never
//! inline) only makes the copy buttons of DNS records work — without it everything else does.

use maud::{DOCTYPE, Markup, html};

use super::auth::{Principal, Role};
use super::records::{CheckLine, RecordCheck, Seen};
use kurier_store::{Account, QueueAttempt, QueueEntry};

/// What the dashboard shows.
#[derive(Debug, Clone, Default)]
pub struct Status {
    pub hostname: String,
    pub version: &'static str,
    pub domains: usize,
    pub accounts: usize,
    pub queued: usize,
    /// Entries with at least one failed attempt.
    pub deferred: usize,
    /// Deliveries of the last 24 hours by TLS outcome, in `TLS_OUTCOMES` order.
    pub tls: [u64; 5],
    /// (service, address).
    pub listeners: Vec<(String, String)>,
    /// (names, expiry as Unix time).
    pub certificates: Vec<(String, i64)>,
    /// The DNSSEC validator: working, and in words.
    pub validator: Option<(bool, String)>,
    /// The served chain matches our TLSA records.
    pub dane: Option<bool>,
    pub now: i64,
}

/// The TLS outcomes of a delivery, strongest first (what the dashboard's chart counts).
pub const TLS_OUTCOMES: [&str; 5] = [
    "verified (DANE)",
    "verified (MTA-STS)",
    "encrypted",
    "clear text",
    "failed",
];

/// A line at the top of a page after an action: good news or an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    Done(String),
    Failed(String),
}

pub fn login(error: Option<&str>) -> Markup {
    page(
        "Sign in",
        None,
        None,
        html! {
            h1 { "Kurier — sign in" }
            @if let Some(e) = error { p.error role="alert" { (e) } }
            form method="post" action="/admin/login" {
                label { "Address" input type="email" name="address" id="address" autocomplete="username" required; }
                label { "Password" input type="password" name="password" id="password" autocomplete="current-password" required; }
                button type="submit" id="sign-in" { "Sign in" }
            }
        },
    )
}

pub fn dashboard(p: &Principal, notice: Option<&Notice>, s: &Status) -> Markup {
    let max = s.tls.iter().copied().max().unwrap_or(0).max(1);
    page(
        "Dashboard",
        Some(p),
        notice,
        html! {
            h1 { "Kurier " (s.version) " on " (s.hostname) }
            section {
                h2 { "At a glance" }
                dl.grid {
                    dt { "Domains" } dd id="domains-count" { (s.domains) }
                    dt { "Accounts" } dd id="accounts-count" { (s.accounts) }
                    dt { "Queued messages" } dd id="queued" { (s.queued) }
                    dt { "Deferred (retrying)" } dd id="deferred" { (s.deferred) }
                }
            }
            section {
                h2 { "Security state" }
                dl.grid {
                    dt { "DNSSEC validator" }
                    dd id="validator" {
                        @match &s.validator {
                            Some((true, words)) => { span.good { "working" } " — " (words) },
                            Some((false, words)) => { span.bad { "FAILING" } " — " (words) " (outbound delivery holds mail)" },
                            None => { "not known" },
                        }
                    }
                    dt { "DANE (our TLSA records)" }
                    dd id="dane" {
                        @match s.dane {
                            Some(true) => span.good { "the served certificate matches them (or none are published)" },
                            Some(false) => span.bad { "MISMATCH: DANE senders cannot deliver to us" },
                            None => "not checked yet",
                        }
                    }
                }
                table id="certificates" {
                    tr { th { "Certificate" } th { "Expires" } }
                    @for (names, at) in &s.certificates {
                        @let days = (at - s.now).div_euclid(86400);
                        tr {
                            td { (names) }
                            td { @if days < 14 { span.bad { "in " (days) " days" } } @else { "in " (days) " days" } }
                        }
                    }
                }
                table id="listeners" {
                    tr { th { "Service" } th { "Listening on" } }
                    @for (what, at) in &s.listeners { tr { td { (what) } td { (at) } } }
                }
            }
            section {
                h2 { "Deliveries of the last 24 hours by TLS" }
                table.chart {
                    @for (name, n) in TLS_OUTCOMES.iter().zip(s.tls) {
                        tr {
                            th { (name) }
                            td { meter min="0" max=(max) value=(n) { (n) } }
                            td.num { (n) }
                        }
                    }
                }
            }
        },
    )
}

/// What the reports page shows.
#[derive(Debug, Clone, Default)]
pub struct Reports {
    pub days: i64,
    /// (policy domain, reporter, day) → totals, newest day first.
    pub received: Vec<(
        (String, String, String),
        kurier_policy::tlsrpt::ReportTotals,
    )>,
    /// DMARC aggregate reports received (RFC 7489 §7.2), per our domain.
    pub dmarc_received:
        std::collections::BTreeMap<String, kurier_mailauth::aggregate::DomainTotals>,
    /// (domain, day, report id, sent at).
    pub sent_tlsrpt: Vec<(String, i64, String, i64)>,
    pub sent_dmarc: Vec<(String, i64, String, i64)>,
}

pub fn reports(p: &Principal, r: &Reports) -> Markup {
    let sent = |title: &str, id: &str, list: &[(String, i64, String, i64)]| {
        html! {
            h2 { (title) }
            @if list.is_empty() { p { "None in the last " (r.days) " days." } }
            @else {
                table id=(id) {
                    tr { th { "Day" } th { "Domain" } th { "Report" } }
                    @for (domain, day, report, _) in list {
                        tr { td { (utc_day(*day)) } td { (domain) } td.reason { (report) } }
                    }
                }
            }
        }
    };
    page(
        "Reports",
        Some(p),
        None,
        html! {
            h1 { "TLS reports" }
            p { "What other servers reported about their TLS sessions to us (RFC 8460), per day, reporter and our domain, for the last " (r.days) " days." }
            @if r.received.is_empty() { p { "No reports received." } }
            @else {
                table id="received" {
                    tr { th { "Day" } th { "Reporter" } th { "Domain" } th { "Sessions" } th { "Failed" } th { "" } th { "Failure types" } }
                    @for ((domain, org, day), t) in &r.received {
                        @let total = t.successful + t.failed;
                        tr class={ @if t.failed > 0 { "seen-different" } @else { "seen-present" } } {
                            td { (day) } td { (org) } td { (domain) }
                            td.num { (total) }
                            td.num { (t.failed) }
                            td { meter min="0" max=(total.max(1)) value=(t.successful) { (t.successful) " of " (total) } }
                            td.reason {
                                @for (kind, n) in &t.failures { (kind) ": " (n) br; }
                            }
                        }
                    }
                }
            }
            h1 { "DMARC reports" }
            p { "What receivers reported about mail in the name of our domains (RFC 7489), per domain and sending address, failing sources first." }
            @if r.dmarc_received.is_empty() { p { "No reports received." } }
            @for (domain, t) in &r.dmarc_received {
                h2 { (domain) ": " (t.reports) " reports, " (t.messages) " messages, " (t.failed) " failed DMARC" }
                table.dmarc {
                    tr { th { "Source" } th { "Messages" } th { "Failed" } th { "Reported by" } th { "What failing mail showed" } }
                    @for (ip, s) in t.ordered() {
                        tr class={ @if s.failed > 0 { "seen-different" } @else { "seen-present" } } {
                            td { (ip) }
                            td.num { (s.messages) }
                            td.num { (s.failed) }
                            td { (s.reporters.iter().cloned().collect::<Vec<_>>().join(", ")) }
                            td.reason { @for seen in &s.seen { (seen) br; } }
                        }
                    }
                }
            }
            (sent("TLS reports we sent", "sent-tlsrpt", &r.sent_tlsrpt))
            (sent("DMARC reports we sent", "sent-dmarc", &r.sent_dmarc))
        },
    )
}

/// `YYYY-MM-DD` of a Unix time.
fn utc_day(t: i64) -> String {
    let d = kurier_smtp::received::UtcTime::from_unix(t);
    format!("{:04}-{:02}-{:02}", d.year, d.month, d.day)
}

pub fn queue(
    p: &Principal,
    notice: Option<&Notice>,
    entries: &[(QueueEntry, Vec<QueueAttempt>)],
    total: usize,
    now: i64,
) -> Markup {
    page(
        "Queue",
        Some(p),
        notice,
        html! {
            h1 { "Outbound queue" }
            @if entries.is_empty() { p { "The queue is empty." } }
            @if total > entries.len() { p { "The first " (entries.len()) " of " (total) " messages (all of them: GET /api/v1/queue)." } }
            @for (e, attempts) in entries {
                article.entry id={ "entry-" (e.id) } {
                    h2 { "Message " (e.id) " from " (if e.sender.is_empty() { "<>" } else { e.sender.as_str() }) }
                    p {
                        (e.size) " bytes, " (e.attempts) " attempts, next "
                        @if e.next_attempt <= now { "now" } @else { "in " (words(e.next_attempt - now)) }
                        @if e.require_tls { ", REQUIRETLS" }
                    }
                    table {
                        tr { th { "Recipient" } th { "State" } th { "Last reason" } }
                        @for r in &e.recipients {
                            tr {
                                td { (r.address) }
                                td { (r.status.as_str()) }
                                td.reason { (r.last_error.as_deref().unwrap_or("—")) }
                            }
                        }
                    }
                    @if !attempts.is_empty() {
                        details {
                            summary { "Every attempt (" (attempts.len()) ")" }
                            table.attempts {
                                tr { th { "When (UTC)" } th { "Recipient" } th { "Outcome" } th { "What was said" } }
                                @for a in attempts {
                                    tr {
                                        td { (kurier_smtp::received::UtcTime::from_unix(a.at).rfc3339()) }
                                        td { (a.recipient) }
                                        td { (a.status.as_str()) }
                                        td.reason { (a.detail.as_deref().unwrap_or("—")) }
                                    }
                                }
                            }
                        }
                    }
                    div.actions {
                        (action("/admin/queue/retry", p, &[("id", &e.id.to_string())], "Retry now"))
                        (action("/admin/queue/bounce", p, &[("id", &e.id.to_string())], "Return to sender"))
                        (action("/admin/queue/delete", p, &[("id", &e.id.to_string())], "Delete"))
                    }
                }
            }
        },
    )
}

pub fn domains(p: &Principal, notice: Option<&Notice>, domains: &[(String, usize)]) -> Markup {
    page(
        "Domains",
        Some(p),
        notice,
        html! {
            h1 { "Domains" }
            table id="domains" {
                tr { th { "Domain" } th { "Accounts" } th {} }
                @for (d, n) in domains {
                    tr {
                        td { a href={ "/admin/domain?name=" (super::http::encode(d)) } { (d) } }
                        td.num { (n) }
                        td { @if p.role() == Role::Admin { (action("/admin/domains/delete", p, &[("name", d)], "Remove")) } }
                    }
                }
            }
            @if p.role() == Role::Admin {
                h2 { "Host a domain" }
                form method="post" action="/admin/domains" {
                    input type="hidden" name="csrf" value=(p.csrf());
                    label { "Domain" input type="text" name="name" id="new-domain" required; }
                    button type="submit" id="add-domain" { "Add" }
                }
            }
        },
    )
}

pub fn domain(
    p: &Principal,
    name: &str,
    records: &Result<Vec<RecordCheck>, String>,
    check: Option<&Result<Vec<CheckLine>, String>>,
) -> Markup {
    page(
        name,
        Some(p),
        None,
        html! {
            h1 { (name) }
            p { a href={ "/admin/accounts?domain=" (super::http::encode(name)) } { "Accounts of " (name) } }
            h2 { "DNS records to publish" }
            @match records {
                Err(e) => p.error { "The records cannot be shown: " (e) },
                Ok(list) => {
                    p { "Looked up now through the validating resolver. Copy a value from the table into the zone." }
                    table id="records" {
                        tr { th { "Name" } th { "Type" } th { "Value" } th { "Published" } th { "DNSSEC" } th {} }
                        @for r in list {
                            tr class={ "seen-" (r.seen.word()) } {
                                td { (r.name) }
                                td { (r.rtype) }
                                td.reason { (r.value) }
                                td {
                                    (r.seen.word())
                                    @match &r.seen {
                                        Seen::Different(found) => { br; "now: " (found.join(" | ")) },
                                        Seen::Unknown(why) => { br; (why) },
                                        _ => {},
                                    }
                                }
                                td { (r.dnssec) }
                                td { button type="button" class="copy" data-copy=(r.value) { "copy" } }
                            }
                        }
                    }
                }
            }
            h2 { "kurier check" }
            form method="post" action="/admin/domain/check" {
                input type="hidden" name="csrf" value=(p.csrf());
                input type="hidden" name="name" value=(name);
                button type="submit" id="run-check" { "Run the check (takes up to a minute)" }
            }
            @match check {
                None => {},
                Some(Err(e)) => p.error { "The check could not run: " (e) },
                Some(Ok(lines)) => {
                    table id="check" {
                        tr { th { "Requirement" } th { "Result" } th { "Checked" } th { "Seen" } th { "Fix" } }
                        @for l in lines {
                            tr class={ "check-" (l.status.to_ascii_lowercase().replace('/', "")) } {
                                td { (l.id) } td { (l.status) } td { (l.subject) } td.reason { (l.evidence) } td { (l.fix) }
                            }
                        }
                    }
                }
            }
        },
    )
}

pub fn accounts(
    p: &Principal,
    notice: Option<&Notice>,
    domain: Option<&str>,
    accounts: &[(Account, u64)],
) -> Markup {
    page(
        "Accounts",
        Some(p),
        notice,
        html! {
            h1 { "Accounts" @if let Some(d) = domain { " of " (d) } }
            table id="accounts" {
                tr { th { "Address" } th { "State" } th { "Used" } th { "Quota" } th {} }
                @for (a, used) in accounts {
                    tr {
                        td { (a.address) }
                        td { @if a.enabled { "enabled" } @else { "disabled" } }
                        td.num { (size(*used)) }
                        td.num { @match a.quota { Some(q) => (size(q)), None => "unlimited" } }
                        td.actions {
                            @if a.enabled {
                                (action("/admin/accounts/update", p, &[("address", &a.address), ("action", "disable")], "Disable"))
                            } @else {
                                (action("/admin/accounts/update", p, &[("address", &a.address), ("action", "enable")], "Enable"))
                            }
                            form method="post" action="/admin/accounts/update" {
                                input type="hidden" name="csrf" value=(p.csrf());
                                input type="hidden" name="address" value=(a.address);
                                input type="hidden" name="action" value="quota";
                                input type="text" name="value" placeholder="quota, e.g. 2G" size="8";
                                button type="submit" { "Set quota" }
                            }
                            form method="post" action="/admin/accounts/update" {
                                input type="hidden" name="csrf" value=(p.csrf());
                                input type="hidden" name="address" value=(a.address);
                                input type="hidden" name="action" value="password";
                                input type="password" name="value" placeholder="new password" autocomplete="new-password";
                                button type="submit" { "Reset password" }
                            }
                        }
                    }
                }
            }
            h2 { "Create an account" }
            form method="post" action="/admin/accounts" {
                input type="hidden" name="csrf" value=(p.csrf());
                label { "Address" input type="email" name="address" id="new-address" required; }
                label { "Password" input type="password" name="password" id="new-password" autocomplete="new-password" required; }
                label { "Quota" input type="text" name="quota" id="new-quota" placeholder="unlimited"; }
                button type="submit" id="add-account" { "Create" }
            }
        },
    )
}

pub fn aliases(p: &Principal, notice: Option<&Notice>, aliases: &[kurier_store::Alias]) -> Markup {
    page(
        "Aliases",
        Some(p),
        notice,
        html! {
            h1 { "Aliases" }
            p { "An alias delivers to accounts; @domain is the domain's catch-all (it takes mail for addresses nobody has)." }
            table id="aliases" {
                tr { th { "Alias" } th { "Delivers to" } th {} }
                @for a in aliases {
                    tr {
                        td { (a.address) }
                        td { (a.targets.join(", ")) }
                        td { (action("/admin/aliases/delete", p, &[("address", &a.address)], "Delete")) }
                    }
                }
            }
            h2 { "Create an alias" }
            form method="post" action="/admin/aliases" {
                input type="hidden" name="csrf" value=(p.csrf());
                label { "Alias" input type="text" name="address" id="new-alias" placeholder="team@example.org or @example.org" required; }
                label { "Delivers to" input type="text" name="targets" id="new-targets" placeholder="ann@example.org, bob@example.org" required; }
                button type="submit" id="add-alias" { "Create" }
            }
        },
    )
}

pub fn me(
    p: &Principal,
    notice: Option<&Notice>,
    app_passwords: &[(String, i64)],
    made: Option<(&str, &str)>,
) -> Markup {
    page(
        "My account",
        Some(p),
        notice,
        html! {
            h1 { (p.account.address) }
            p { "Role: " (p.role().as_str()) }
            h2 { "Change the password" }
            form method="post" action="/admin/me/password" {
                input type="hidden" name="csrf" value=(p.csrf());
                label { "Current password" input type="password" name="current" autocomplete="current-password" required; }
                label { "New password" input type="password" name="new" autocomplete="new-password" required; }
                button type="submit" { "Change" }
            }
            h2 { "App passwords" }
            p { "A separate password for each mail client (IMAP, POP3, submission, ManageSieve): delete one and only that client is locked out. They do not open this administration." }
            @if let Some((name, password)) = made {
                p.done role="status" id="new-app-password" {
                    "The app password for " (name) ": " code { (password) } " — enter it in the mail client now; it is not shown again."
                }
            }
            table id="app-passwords" {
                tr { th { "Name" } th { "Made" } th {} }
                @for (name, created) in app_passwords {
                    tr {
                        td { (name) }
                        td { (utc_day(*created)) }
                        td { (action("/admin/me/app-passwords/delete", p, &[("name", name)], "Delete")) }
                    }
                }
            }
            form method="post" action="/admin/me/app-passwords" {
                input type="hidden" name="csrf" value=(p.csrf());
                label { "Name" input type="text" name="name" id="app-name" placeholder="phone" required; }
                button type="submit" id="add-app-password" { "Make an app password" }
            }
        },
    )
}

pub fn not_found(p: &Principal) -> Markup {
    page("Not found", Some(p), None, html! { h1 { "Not found" } })
}

pub fn forbidden(p: &Principal) -> Markup {
    page(
        "Not allowed",
        Some(p),
        None,
        html! { h1 { "Not allowed" } p { "Your account does not administer this." } },
    )
}

/// One button that posts `fields` (and the CSRF token) to `to`.
fn action(to: &str, p: &Principal, fields: &[(&str, &str)], label: &str) -> Markup {
    html! {
        form.inline method="post" action=(to) {
            input type="hidden" name="csrf" value=(p.csrf());
            @for (k, v) in fields { input type="hidden" name=(k) value=(v); }
            button type="submit" { (label) }
        }
    }
}

fn page(title: &str, p: Option<&Principal>, notice: Option<&Notice>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " — Kurier" }
                link rel="stylesheet" href="/admin/style.css";
                script src="/admin/copy.js" defer {}
            }
            body {
                @if let Some(p) = p {
                    nav {
                        @if p.role() == Role::Admin {
                            a href="/admin/" { "Dashboard" }
                            a href="/admin/queue" { "Queue" }
                            a href="/admin/reports" { "Reports" }
                        }
                        @if p.role() != Role::User {
                            a href="/admin/domains" { "Domains" }
                            a href="/admin/accounts" { "Accounts" }
                            a href="/admin/aliases" { "Aliases" }
                        }
                        a href="/admin/me" { "My account" }
                        span.who { (p.account.address) " (" (p.role().as_str()) ")" }
                        form.inline method="post" action="/admin/logout" {
                            input type="hidden" name="csrf" value=(p.csrf());
                            button type="submit" id="sign-out" { "Sign out" }
                        }
                    }
                }
                main {
                    @match notice {
                        Some(Notice::Done(m)) => p.done role="status" { (m) },
                        Some(Notice::Failed(m)) => p.error role="alert" { (m) },
                        None => {},
                    }
                    (body)
                }
            }
        }
    }
}

/// `secs` in words: "3 min", "2 h 5 min", "4 days".
fn words(secs: i64) -> String {
    match secs {
        s if s < 60 => format!("{s} s"),
        s if s < 3600 => format!("{} min", s / 60),
        s if s < 86400 => format!("{} h {} min", s / 3600, s % 3600 / 60),
        s => format!("{} days", s / 86400),
    }
}

fn size(bytes: u64) -> String {
    const UNITS: [(&str, u64); 3] = [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)];
    for (unit, n) in UNITS {
        if bytes >= n {
            return format!("{:.1} {unit}", bytes as f64 / n as f64);
        }
    }
    format!("{bytes} B")
}

/// The only script: a button with `data-copy` puts that text on the clipboard.
pub const COPY_SCRIPT: &str = "\
// Kurier's administration: copy buttons for DNS records. Nothing else runs here.\n\
document.addEventListener('click', function (e) {\n\
  var b = e.target.closest('button[data-copy]');\n\
  if (!b || !navigator.clipboard) { return; }\n\
  navigator.clipboard.writeText(b.getAttribute('data-copy')).then(function () {\n\
    b.textContent = 'copied';\n\
  });\n\
});\n";

/// The stylesheet (the only one; `style-src 'self'`).
pub const STYLE: &str = "\
body{font:15px/1.45 system-ui,sans-serif;margin:0;color:#1b1f24;background:#f6f7f9}\
nav{display:flex;gap:1em;align-items:center;padding:.6em 1.2em;background:#14325c}\
nav a{color:#fff;text-decoration:none;font-weight:600}nav .who{margin-left:auto;color:#cdd8e6}\
main{max-width:70em;margin:1.5em auto;padding:0 1.2em}\
table{border-collapse:collapse;width:100%;background:#fff;margin:.5em 0 1em}\
th,td{text-align:left;padding:.35em .6em;border-bottom:1px solid #e3e6ea;vertical-align:top}\
td.num{text-align:right}td.reason{font-family:monospace;font-size:90%}\
form{margin:.4em 0}form.inline{display:inline}label{display:block;margin:.4em 0}\
input{margin-left:.5em;padding:.25em}button{padding:.3em .8em;cursor:pointer}\
.error{background:#fde8e8;border-left:4px solid #c62828;padding:.5em .8em}\
.done{background:#e6f4ea;border-left:4px solid #2e7d32;padding:.5em .8em}\
dl.grid{display:grid;grid-template-columns:max-content auto;gap:.3em 1.5em}dd{margin:0;font-weight:600}\
article.entry{background:#fff;padding:.6em 1em;margin:1em 0;border:1px solid #e3e6ea}\
.good{color:#2e7d32;font-weight:600}.bad{color:#c62828;font-weight:600}\
meter{width:20em}.actions form{display:inline-block;margin-right:.5em}\
tr.seen-present td:nth-child(4),tr.check-pass td:nth-child(2){color:#2e7d32;font-weight:600}\
tr.seen-missing td:nth-child(4),tr.seen-different td:nth-child(4),tr.check-fail td:nth-child(2){color:#c62828;font-weight:600}\
tr.seen-unknown td:nth-child(4),tr.check-warn td:nth-child(2){color:#b26a00;font-weight:600}\
";

#[cfg(test)]
mod tests {
    use super::*;
    use kurier_store::{AdminScope, QueueRecipient, RecipientStatus};

    fn admin() -> Principal {
        Principal {
            account: Account {
                id: 1,
                address: "admin@example.org".into(),
                domain: "example.org".into(),
                quota: None,
                enabled: true,
                created: 0,
            },
            scopes: vec![AdminScope::Server],
            session: Some(("id".into(), "c5rf".into())),
        }
    }

    /// An attribute like `onclick=` (inline script the CSP would block anyway).
    fn has_event_handler(page: &str) -> bool {
        page.match_indices(" on").any(|(i, _)| {
            let rest = &page[i + 3..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_lowercase())
                .collect();
            !name.is_empty() && rest[name.len()..].starts_with('=')
        })
    }

    #[test]
    fn input_is_escaped_everywhere() {
        let evil = "<script>alert(1)</script>\"'";
        let p = admin();
        let pages = [
            login(Some(evil)).into_string(),
            domains(&p, Some(&Notice::Failed(evil.into())), &[(evil.into(), 1)]).into_string(),
            queue(
                &p,
                None,
                &[(
                    QueueEntry {
                        id: 7,
                        sender: evil.into(),
                        recipients: vec![QueueRecipient {
                            address: evil.into(),
                            status: RecipientStatus::Pending,
                            last_error: Some(evil.into()),
                            dsn: Default::default(),
                        }],
                        size: 1,
                        created: 0,
                        next_attempt: 100,
                        attempts: 1,
                        require_tls: false,
                        dsn: Default::default(),
                        lease: None,
                    },
                    vec![QueueAttempt {
                        at: 0,
                        recipient: evil.into(),
                        status: RecipientStatus::Pending,
                        detail: Some(evil.into()),
                    }],
                )],
                1,
                0,
            )
            .into_string(),
        ];
        for page in pages {
            assert_eq!(
                page.matches("<script").count(),
                1,
                "only the copy script: {page}"
            );
            assert!(!page.contains("<script>"), "{page}");
            assert!(page.contains("&lt;script&gt;"), "{page}");
        }
    }

    #[test]
    fn every_form_carries_the_csrf_token_and_no_page_has_inline_script_or_style() {
        let p = admin();
        let status = Status {
            tls: [3, 1, 2, 0, 1],
            ..Status::default()
        };
        let pages = [
            dashboard(&p, None, &status).into_string(),
            domains(&p, None, &[("example.org".into(), 2)]).into_string(),
            accounts(&p, None, None, &[(p.account.clone(), 10)]).into_string(),
            me(&p, None, &[("phone".into(), 0)], None).into_string(),
        ];
        for page in pages {
            let forms = page.matches("<form").count();
            assert!(forms > 0);
            assert_eq!(
                page.matches("name=\"csrf\" value=\"c5rf\"").count(),
                forms,
                "{page}"
            );
            // The one script is a file; nothing inline.
            assert_eq!(page.matches("<script").count(), 1, "{page}");
            assert!(
                page.contains("<script src=\"/admin/copy.js\" defer></script>"),
                "{page}"
            );
            assert!(
                !page.contains("style=\"") && !has_event_handler(&page),
                "{page}"
            );
        }
        assert_eq!(utc_day(0), "1970-01-01");
        assert_eq!(utc_day(1_796_376_600), "2026-12-04");
        assert_eq!(utc_day(951_782_400), "2000-02-29");
        assert_eq!(words(30), "30 s");
        assert_eq!(words(3700), "1 h 1 min");
        assert_eq!(size(1536), "1.5 KiB");
    }
}
