//! Mail access end to end (TR-03108 MUA-1, MUA-2, TLS-8): Python's imaplib and poplib and curl
//! against `kurier serve` on 993/143 and 995/110 (dev ports 1993/1143, 1995/1110): login, list,
//! select, fetch, search, store, copy, move, expunge, append, IDLE, POP3 stat/list/uidl/retr/
//! top/dele; what must be refused before TLS; two sessions on one mailbox.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use support::Server;

const PASSWORD: &str = "imap-s3cret";

/// Runs a Python script with `ip`, the dev CA and the password as arguments; it must print OK.
fn python(script: &str, ip: &str, data: &Path, extra: &[&str]) -> String {
    let ca = data.join("dev-ca.pem");
    let mut args = vec![ip, ca.to_str().unwrap(), PASSWORD];
    args.extend_from_slice(extra);
    support::python_ok(script, &args)
}

/// Shared Python helpers: clients that connect to the test address but check the
/// certificate's name (mail.example.test), and a plain SMTP delivery to the MX.
const PRELUDE: &str = r#"
import imaplib, poplib, smtplib, socket, ssl, sys, time, re
ip, ca, password = sys.argv[1], sys.argv[2], sys.argv[3]
ctx = ssl.create_default_context(cafile=ca)
HOST = "mail.example.test"
USER = "demo@example.test"

class Imaps(imaplib.IMAP4_SSL):
    def _create_socket(self, timeout):
        sock = socket.create_connection((ip, self.port), timeout)
        return self.ssl_context.wrap_socket(sock, server_hostname=HOST)

class Imap(imaplib.IMAP4):
    def _create_socket(self, timeout):
        return socket.create_connection((ip, self.port), timeout)

def imap(port):
    """993-style implicit TLS, or 143 with STARTTLS; either way logged in."""
    if port == 1993:
        m = Imaps(HOST, port, ssl_context=ctx)
    else:
        m = Imap(HOST, port)
        assert "LOGINDISABLED" in m.capabilities and "STARTTLS" in m.capabilities, m.capabilities
        assert not any(c.startswith("AUTH=") for c in m.capabilities), m.capabilities
        m.starttls(ctx)
        assert "LOGINDISABLED" not in m.capabilities, m.capabilities
    if port == 1993:
        typ, data = m.login(USER, password)
    else:
        # AUTHENTICATE PLAIN here (imaplib sends no initial response, so the server asks).
        typ, data = m.authenticate("PLAIN", lambda _: f"\0{USER}\0{password}".encode())
    assert typ == "OK", data
    return m

def deliver(subject, body="hello\r\n", to=USER):
    with smtplib.SMTP(ip, 2525) as s:
        s.sendmail("sender@remote.example", [to],
                   f"From: Sender <sender@remote.example>\r\nTo: {to}\r\nSubject: {subject}\r\n"
                   f"Message-ID: <{subject.replace(' ', '.')}@remote.example>\r\n\r\n{body}")

def ok(r):
    typ, data = r
    assert typ == "OK", (typ, data)
    return data
"#;

const IMAP_SESSION: &str = r#"
port = int(sys.argv[4])
tag = f"p{port}"
deliver(f"first {tag}", "The quick brown fox\r\n")
deliver(f"second {tag}", "--\r\njumps over the lazy dog\r\n")
m = imap(port)
# LIST with special-use attributes.
names = ok(m.list())
text = b"\n".join(names).decode()
for name, attr in [("Sent", "\\Sent"), ("Trash", "\\Trash"), ("Junk", "\\Junk"), ("Drafts", "\\Drafts")]:
    assert re.search(rf'\({re.escape(chr(92))}HasNoChildren {re.escape(attr)}\) "/" {name}', text), text
ok(m.create(f"Archive/{tag}"))
assert b"Archive" in b" ".join(ok(m.list('""', "Archive/*")))
# SELECT and what it reports.
n = int(ok(m.select("INBOX"))[0])
assert n >= 2, n
# The two new messages are \Recent for the first session that selects the mailbox (RFC 3501).
assert m.untagged_responses.get("RECENT") == [b"2"], m.untagged_responses
assert m.untagged_responses.get("UIDVALIDITY"), m.untagged_responses
# SEARCH by header and by body text.
first = ok(m.search(None, "SUBJECT", f'"first {tag}"'))[0].split()
assert len(first) == 1, first
fox = ok(m.search(None, "BODY", "fox", "SUBJECT", tag))[0].split()
assert fox == first, (fox, first)
uids = ok(m.uid("SEARCH", None, "SUBJECT", tag))[0].split()
assert len(uids) == 2, uids
# FETCH: flags, envelope, structure, peek (no \Seen), partial.
data = ok(m.uid("FETCH", uids[0], "(FLAGS ENVELOPE BODYSTRUCTURE RFC822.SIZE BODY.PEEK[HEADER.FIELDS (SUBJECT)] BODY.PEEK[TEXT]<4.5>)"))
blob = b"".join(x if isinstance(x, bytes) else b"".join(x) for x in data)
assert b'"Sender" NIL "sender" "remote.example"' in blob, blob
assert b'("text" "plain"' in blob, blob
assert f"Subject: first {tag}".encode() in blob, blob
assert b"quick" in blob and b"brown" not in blob.split(b"Subject")[0], blob
assert b"\\Seen" not in blob, blob
# BODY[] without PEEK sets \Seen.
data = ok(m.uid("FETCH", uids[0], "(BODY[])"))
assert b"The quick brown fox" in data[0][1], data
flags = ok(m.uid("FETCH", uids[0], "(FLAGS)"))
assert b"\\Seen" in flags[0], flags
# STORE flags and keywords.
data = ok(m.uid("STORE", uids[1], "+FLAGS", "(\\Flagged $Important)"))
assert b"\\Flagged" in data[0] and b"$Important" in data[0], data
assert ok(m.uid("SEARCH", None, "FLAGGED", "SUBJECT", tag))[0].split() == [uids[1]]
assert ok(m.uid("SEARCH", None, "KEYWORD", "$Important", "SUBJECT", tag))[0].split() == [uids[1]]
# COPY (COPYUID), MOVE, EXPUNGE.
typ, data = m._simple_command("UID", "COPY", uids[0], f"Archive/{tag}")
assert typ == "OK" and data[0].startswith(b"[COPYUID "), data
typ, data = m.uid("MOVE", uids[1], "Trash")
assert typ == "OK", data
assert ok(m.uid("SEARCH", None, "SUBJECT", tag))[0].split() == [uids[0]]
ok(m.uid("STORE", uids[0], "+FLAGS.SILENT", "(\\Deleted)"))
ok(m.expunge())
assert ok(m.uid("SEARCH", None, "SUBJECT", tag))[0] == b""
# The copy and the moved message are where they should be.
assert int(ok(m.select(f"Archive/{tag}"))[0]) == 1
assert int(ok(m.select("Trash"))[0]) >= 1
assert ok(m.search(None, "FLAGGED", "SUBJECT", tag))[0] != b""
# APPEND with flags and date; UIDPLUS answers APPENDUID.
typ, data = m.append(f"Archive/{tag}", "(\\Seen \\Draft)", imaplib.Time2Internaldate(time.time()), f"Subject: appended {tag}\r\n\r\ndraft\r\n".encode())
assert typ == "OK" and b"APPENDUID" in data[0], data
status = ok(m.status(f"Archive/{tag}", "(MESSAGES UNSEEN UIDNEXT)"))[0]
assert b"MESSAGES 2" in status and b"UNSEEN 0" in status, status  # both carry \\Seen
# APPEND into a missing mailbox says TRYCREATE.
typ, data = m.append("Nowhere", None, None, b"Subject: x\r\n\r\nx\r\n")
assert typ == "NO" and b"TRYCREATE" in data[0], data
# Rename and delete.
ok(m.rename(f"Archive/{tag}", f"Kept-{tag}"))
ok(m.select("INBOX"))
assert m.untagged_responses.get("RECENT") == [b"0"], "claimed by the first SELECT"
ok(m.delete(f"Kept-{tag}"))
assert not any(f"Kept-{tag}".encode() in x for x in ok(m.list()))
# Subscriptions are names (RFC 9051 §6.3.7): LSUB, LIST (SUBSCRIBED), RECURSIVEMATCH.
ok(m.subscribe("Sent"))
assert any(b"Sent" in x for x in ok(m.lsub()))
ok(m.create(f"Sub-{tag}/child"))
ok(m.subscribe(f"Sub-{tag}/child"))
ok(m.subscribe(f"Gone-{tag}"))  # no mailbox has this name
lsub = ok(m.lsub('""', "%"))
assert f'(\\Noselect) "/" Sub-{tag}'.encode() in lsub, lsub
def extended_list(*args):
    typ, _ = m._simple_command("LIST", *args)
    assert typ == "OK"
    return m.untagged_responses.pop("LIST", [])
lines = extended_list("(SUBSCRIBED)", '""', "*")
assert f'(\\NonExistent \\Subscribed) "/" Gone-{tag}'.encode() in lines, lines
lines = extended_list("(SUBSCRIBED RECURSIVEMATCH)", '""', "%")
assert any(l.startswith(f'(\\HasChildren) "/" Sub-{tag} ("CHILDINFO" ("SUBSCRIBED"))'.encode()) for l in lines), lines
ok(m.unsubscribe(f"Gone-{tag}"))
ok(m.unsubscribe("Sent"))
m.logout()
print("OK-DONE")
"#;

#[test]
fn mua1_mua2_imaplib_on_993_and_143() {
    let dir = tempfile::tempdir().unwrap();
    let ip = "127.0.40.1";
    let data = dir.path().join("data");
    let _server = Server::dev_with_password(dir.path(), ip, Some(PASSWORD));
    let script = format!("{PRELUDE}{IMAP_SESSION}");
    python(&script, ip, &data, &["1993"]);
    python(&script, ip, &data, &["1143"]);
}

const IMAP_IDLE: &str = r#"
# Session A idles; session B (another connection) changes flags; SMTP delivers. A must hear of
# the delivery within a second (the issue's bound) and of B's flag change.
a = imap(1993)
b = imap(1143)
count = int(ok(a.select("INBOX"))[0])
ok(b.select("INBOX"))
tag = a._new_tag().decode()
a.send(f"{tag} IDLE\r\n".encode())
line = a.readline()
assert line.startswith(b"+"), line
start = time.monotonic()
deliver("while idling")
line = a.readline()
elapsed = time.monotonic() - start
assert line.strip() == f"* {count + 1} EXISTS".encode(), line
assert elapsed < 1.0, elapsed
print(f"IDLE-LATENCY {elapsed:.3f}")
ok(b.noop())  # B learns of the new message first
ok(b.store(str(count + 1), "+FLAGS", "\\Flagged"))
line = a.readline()
if re.match(rb"\* \d+ RECENT", line):  # IMAP4rev1 follows EXISTS with RECENT
    line = a.readline()
assert re.match(rb"\* %d FETCH \(UID \d+ FLAGS \((\\Recent )?\\Flagged\)" % (count + 1), line), line
a.send(b"DONE\r\n")
line = a.readline()
assert line.startswith(f"{tag} OK".encode()), line
# B expunges; A learns it at its next NOOP, not during a FETCH by sequence number.
ok(b.store(str(count + 1), "+FLAGS", "\\Deleted"))
ok(b.expunge())
typ, data = a.fetch("1", "(FLAGS)")
assert typ == "OK" and "EXPUNGE" not in a.untagged_responses, a.untagged_responses
ok(a.noop())
assert a.untagged_responses.get("EXPUNGE") == [str(count + 1).encode()], a.untagged_responses
# UIDs are never reused.
deliver("after expunge")
ok(a.noop())
uids = ok(a.uid("SEARCH", None, "ALL"))[0].split()
assert int(uids[-1]) > count + 1, uids
a.logout(); b.logout()
print("OK-DONE")
"#;

#[test]
fn idle_hears_delivery_within_a_second_and_sessions_see_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let ip = "127.0.40.2";
    let data = dir.path().join("data");
    let _server = Server::dev_with_password(dir.path(), ip, Some(PASSWORD));
    let script = format!("{PRELUDE}\ndeliver(\"before\")\n{IMAP_IDLE}");
    let out = python(&script, ip, &data, &[]);
    assert!(out.contains("IDLE-LATENCY"), "{out}");
}

const POP3_SESSION: &str = r#"
class Pop3s(poplib.POP3_SSL):
    def _create_socket(self, timeout):
        sock = socket.create_connection((ip, self.port), timeout)
        return self.context.wrap_socket(sock, server_hostname=HOST)

class Pop3(poplib.POP3):
    def _create_socket(self, timeout):
        return socket.create_connection((ip, self.port), timeout)

def pop(port):
    if port == 1995:
        p = Pop3s(HOST, port, context=ctx)
    else:
        p = Pop3(HOST, port)
        caps = p.capa()
        assert "STLS" in caps and "USER" not in caps and "SASL" not in caps, caps
        try:
            p.user(USER)
            raise SystemExit("USER accepted before STLS")
        except poplib.error_proto as e:
            assert b"STLS" in e.args[0], e
        p.stls(ctx)
    assert "USER" in p.capa(), p.capa()
    p.user(USER)
    p.pass_(password)
    return p

deliver("pop one", "line one\r\n.dot line\r\nline three\r\n")
deliver("pop two")
for port in (1995, 1110):
    p = pop(port)
    count, size = p.stat()
    assert count >= 2, count
    listing = p.list()[1]
    assert len(listing) == count and sum(int(x.split()[1]) for x in listing) == size, (listing, size)
    uidl = p.uidl()[1]
    ids = [x.split()[1] for x in uidl]
    assert len(set(ids)) == count, uidl
    resp, lines, octets = p.retr(1)
    assert b"Subject: pop one" in lines and b".dot line" in lines, lines
    resp, lines, octets = p.top(1, 1)
    assert lines[-1] == b"line one" and b"line three" not in lines, lines
    if port == 1995:
        # DELE marks; RSET clears; a dropped connection deletes nothing.
        p.dele(1)
        p.rset()
        p.dele(1)
        p.sock.close()
    else:
        # Only QUIT deletes.
        p.dele(1)
        p.quit()
# AUTH PLAIN (RFC 5034) with an initial response instead of USER/PASS.
import base64
p = Pop3s(HOST, 1995, context=ctx)
resp = p._shortcmd("AUTH PLAIN " + base64.b64encode(f"\0{USER}\0{password}".encode()).decode())
assert resp.startswith(b"+OK"), resp
count2, _ = p.stat()
p.quit()
p = pop(1995)
count2, _ = p.stat()
assert count2 == count - 1, (count, count2)
assert p.uidl()[1][0].split()[1] == ids[1], "the first message is gone, the second is now number 1"
p.quit()
print("OK-DONE")
"#;

#[test]
fn mua1_mua2_poplib_on_995_and_110() {
    let dir = tempfile::tempdir().unwrap();
    let ip = "127.0.40.3";
    let data = dir.path().join("data");
    let _server = Server::dev_with_password(dir.path(), ip, Some(PASSWORD));
    python(&format!("{PRELUDE}{POP3_SESSION}"), ip, &data, &[]);
}

#[test]
fn curl_reads_over_imaps_and_pop3s() {
    let dir = tempfile::tempdir().unwrap();
    let ip = "127.0.40.4";
    let data = dir.path().join("data");
    let _server = Server::dev_with_password(dir.path(), ip, Some(PASSWORD));
    python(
        &format!("{PRELUDE}\ndeliver('for curl', 'curl was here\\r\\n')\nprint('OK-DONE')\n"),
        ip,
        &data,
        &[],
    );
    let ca = data.join("dev-ca.pem");
    let curl = |url: &str| {
        let out = Command::new("curl")
            .args(["-sS", "--cacert", ca.to_str().unwrap()])
            .args(["--resolve", &format!("mail.example.test:1993:{ip}")])
            .args(["--resolve", &format!("mail.example.test:1995:{ip}")])
            .args(["-u", &format!("demo@example.test:{PASSWORD}"), url])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{url}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let listing = curl("imaps://mail.example.test:1993/");
    assert!(
        listing.contains("INBOX") && listing.contains("Sent"),
        "{listing}"
    );
    let message = curl("imaps://mail.example.test:1993/INBOX;UID=1");
    assert!(message.contains("curl was here"), "{message}");
    let pop = curl("pop3s://mail.example.test:1995/1");
    assert!(pop.contains("Subject: for curl"), "{pop}");
}

/// A raw line client for what libraries will not send.
struct Raw {
    r: BufReader<TcpStream>,
}

impl Raw {
    fn connect(addr: &str) -> Raw {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut r = Raw {
            r: BufReader::new(s),
        };
        r.line();
        r
    }

    fn line(&mut self) -> String {
        let mut l = String::new();
        self.r.read_line(&mut l).unwrap();
        l
    }

    fn send(&mut self, s: &str) {
        self.r.get_mut().write_all(s.as_bytes()).unwrap();
    }

    /// Lines up to and including the one starting with `tag `.
    fn until(&mut self, tag: &str) -> String {
        let mut all = String::new();
        loop {
            let l = self.line();
            assert!(!l.is_empty(), "closed; got {all}");
            all.push_str(&l);
            if l.starts_with(&format!("{tag} ")) {
                return all;
            }
        }
    }
}

#[test]
fn mua2_nothing_before_tls_and_garbage_is_answered() {
    let dir = tempfile::tempdir().unwrap();
    let ip = "127.0.40.5";
    let _server = Server::dev_with_password(dir.path(), ip, Some(PASSWORD));
    let mut c = Raw::connect(&format!("{ip}:1143"));
    let auth = format!(
        "a1 AUTHENTICATE PLAIN {}\r\n",
        support::plain("demo@example.test", PASSWORD)
    );
    c.send(&auth);
    assert!(c.until("a1").contains("a1 NO [PRIVACYREQUIRED]"));
    c.send(&format!("a2 LOGIN demo@example.test {PASSWORD}\r\n"));
    assert!(c.until("a2").contains("a2 NO [PRIVACYREQUIRED]"));
    c.send("a3 SELECT INBOX\r\n");
    assert!(c.until("a3").contains("a3 BAD"));
    for garbage in [
        "\r\n",
        "a4\r\n",
        "a5 FETCH 1:* (BODY[\r\n",
        "a6 LOGIN {3}\r\n",
        "* NOOP\r\n",
        "a7 \u{1b}[31m\r\n",
    ] {
        c.send(garbage);
        let l = c.line();
        assert!(l.contains("BAD") || l.starts_with('+'), "{garbage:?}: {l}");
        if l.starts_with('+') {
            c.send("abc\r\n");
            assert!(c.line().contains("BAD"));
        }
    }
    drop(c);
    // STARTTLS with a command pipelined behind it: the command must not survive the
    // handshake (RFC 9051 §6.2.1, CVE-2011-0411).
    let injection = r#"
import socket, ssl, sys
s = socket.create_connection((sys.argv[1], 1143))
f = s.makefile("rb")
f.readline()
s.sendall(b"s1 STARTTLS\r\ns2 NOOP\r\n")
assert f.readline().startswith(b"s1 OK")
t = ssl._create_unverified_context().wrap_socket(s, server_hostname="mail.example.test")
t.sendall(b"s3 NOOP\r\n")
g = t.makefile("rb")
line = g.readline()
assert line.startswith(b"s3 OK"), line
print("OK-DONE")
"#;
    // Fails if the pipelined s2 is answered after the handshake.
    support::python_ok(injection, &[ip]);
    // The POP3 side refuses credentials before STLS, too.
    let mut p = Raw::connect(&format!("{ip}:1110"));
    p.send(&format!(
        "USER demo@example.test\r\nPASS {PASSWORD}\r\nAUTH PLAIN {}\r\nSTAT\r\n",
        support::plain("demo@example.test", PASSWORD)
    ));
    for _ in 0..4 {
        let l = p.line();
        assert!(l.starts_with("-ERR"), "{l}");
    }
}

#[test]
fn append_limit_literals_and_imap4rev2() {
    let dir = tempfile::tempdir().unwrap();
    let ip = "127.0.40.6";
    let data = dir.path().join("data");
    let _server = Server::dev_with_password(dir.path(), ip, Some(PASSWORD));
    let script = format!(
        "{PRELUDE}{}",
        r#"
m = imap(1993)
# A synchronizing literal larger than APPENDLIMIT is refused before it is sent.
tag = m._new_tag().decode()
m.send(f"{tag} APPEND INBOX {{999999999999}}\r\n".encode())
line = m.readline()
assert line.startswith(f"{tag} NO [TOOBIG]".encode()), line
# LITERAL+ (non-synchronizing) APPEND goes through in one write.
tag = m._new_tag().decode()
body = b"Subject: literal plus\r\n\r\nx\r\n"
m.send(f"{tag} APPEND INBOX {{{len(body)}+}}\r\n".encode() + body + b"\r\n")
while True:
    line = m.readline()
    if line.startswith(tag.encode()):
        break
assert b"OK [APPENDUID" in line, line
# ENABLE IMAP4rev2: SEARCH answers ESEARCH; UTF-8 mailbox names.
# AUTHENTICATE LOGIN on a second connection: user and password asked for one by one.
answers = iter([USER.encode(), password.encode()])
l = Imaps(HOST, 1993, ssl_context=ctx)
ok(l.authenticate("LOGIN", lambda _: next(answers)))
l.logout()
ok(m._simple_command("ENABLE", "IMAP4rev2"))
ok(m.select("INBOX"))
typ, data = m._simple_command("SEARCH", "ALL")
assert typ == "OK" and "ESEARCH" in m.untagged_responses, m.untagged_responses
m.logout()
print("OK-DONE")
"#
    );
    python(&script, ip, &data, &[]);
}

const THROTTLE: &str = r#"
import imaplib, poplib, smtplib, socket, ssl, sys
ip = sys.argv[1]
ctx = ssl._create_unverified_context()  # the throttle, not TLS, is under test here
USER = "rcpt@kurier.test"

def imap_login(password):
    c = imaplib.IMAP4_SSL(ip, 1993, ssl_context=ctx)
    try:
        c.login(USER, password)
        return "OK"
    except imaplib.IMAP4.error as e:
        return str(e)
    finally:
        c.shutdown()

# Three failures over IMAP (auth_block_after = 3) block the address on every protocol.
for _ in range(3):
    assert "AUTHENTICATIONFAILED" in imap_login("wrong")
assert "UNAVAILABLE" in imap_login("pw"), "IMAP blocked even with the right password"
p = poplib.POP3_SSL(ip, 1995, context=ctx)
p.user(USER)
try:
    p.pass_("pw")
    raise SystemExit("POP3 login allowed after the block")
except poplib.error_proto as e:
    assert b"SYS/TEMP" in e.args[0], e
with smtplib.SMTP_SSL(ip, 2465, context=ctx) as s:
    try:
        s.login(USER, "pw")
        raise SystemExit("submission login allowed after the block")
    except smtplib.SMTPAuthenticationError as e:
        assert e.smtp_code == 454, e
print("OK-DONE")
"#;

#[test]
fn mua2_one_login_throttle_for_imap_pop3_and_submission() {
    let dir = tempfile::tempdir().unwrap();
    let ip = "127.0.40.7";
    let config = support::configured(dir.path(), ip, "", "auth_block_after = 3\n");
    let _server = Server::configured(dir.path(), &config);
    support::python_ok(THROTTLE, &[ip]);
}

const QRESYNC: &str = r#"
# RFC 7162: a client that was away resynchronizes with SELECT (QRESYNC …); one that stays
# hears VANISHED instead of EXPUNGE.
for i in range(3):
    deliver(f"qresync {i}")
a = imap(1993)
ok(a._simple_command("ENABLE", "QRESYNC"))
assert a.untagged_responses.pop("ENABLED") == [b"QRESYNC"], a.untagged_responses
ok(a.select("INBOX"))
validity = int(a.untagged_responses["UIDVALIDITY"][0])
since = int(a.untagged_responses["HIGHESTMODSEQ"][0])
uids = ok(a.uid("SEARCH", None, "ALL"))[0].split()
assert len(uids) == 3, uids
# Meanwhile, elsewhere: one flagged, one expunged, one more delivered.
b = imap(1143)
ok(b.select("INBOX"))
ok(b.uid("STORE", uids[0], "+FLAGS", "(\\Flagged)"))
ok(b.uid("STORE", uids[1], "+FLAGS", "(\\Deleted)"))
ok(b.expunge())
deliver("qresync 3")
# A, still selected, hears VANISHED, not EXPUNGE.
ok(a.noop())
assert a.untagged_responses.get("VANISHED") == [uids[1]], a.untagged_responses
assert "EXPUNGE" not in a.untagged_responses, a.untagged_responses
# A client that comes back with what it knew.
c = imap(1993)
try:
    c._simple_command("SELECT", "INBOX", f"(QRESYNC ({validity} {since}))")
    raise SystemExit("SELECT (QRESYNC) accepted before ENABLE QRESYNC")
except imaplib.IMAP4.error as e:
    assert "ENABLE QRESYNC first" in str(e), e
ok(c._simple_command("ENABLE", "QRESYNC"))
typ, _ = c._simple_command("SELECT", "INBOX", f"(QRESYNC ({validity} {since}))")
assert typ == "OK", typ
assert c.untagged_responses.get("VANISHED") == [b"(EARLIER) " + uids[1]], c.untagged_responses
fetched = b" ".join(c.untagged_responses.get("FETCH", []))
assert b"UID " + uids[0] + b" FLAGS (\\Flagged) MODSEQ" in fetched, fetched
assert fetched.count(b"MODSEQ") == 2, fetched  # the flagged one and the new one
# UID FETCH … (CHANGEDSINCE … VANISHED).
c.state = "SELECTED"  # imaplib does not track a raw SELECT
c.untagged_responses.clear()
ok(c._simple_command("UID", "FETCH", "1:*", "(FLAGS)", f"(CHANGEDSINCE {since} VANISHED)"))
assert c.untagged_responses.get("VANISHED") == [b"(EARLIER) " + uids[1]], c.untagged_responses
a.logout(); b.logout(); c.logout()
print("OK-DONE")
"#;

#[test]
fn qresync_vanished_and_resynchronization() {
    let dir = tempfile::tempdir().unwrap();
    let ip = "127.0.40.10";
    let data = dir.path().join("data");
    let _server = Server::dev_with_password(dir.path(), ip, Some(PASSWORD));
    python(&format!("{PRELUDE}{QRESYNC}"), ip, &data, &[]);
}
