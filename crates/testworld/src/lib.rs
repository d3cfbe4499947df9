//! # kurier-testworld — a DNSSEC world with real peers, for tests
//!
//! Owns the test harness that DANE, MTA-STS, TLSRPT, SMTP and `kurier check` tests stand on: a
//! test CA with good and bad certificates (`ca`), signed and deliberately broken DNS zones served
//! by NSD under a private root, a validating unbound that trusts only that root (`dns`), and
//! real Postfix peers (`postfix`), a Knot primary that takes TSIG-signed updates (`knot`), and rspamd with its Redis
//! (`rspamd`). Each `World` takes its own loopback block 127.A.B.0/24 and
//! its own folder, so tests run in parallel; dropping it ends every process it started, also
//! when a test panics.
//!
//! A world that cannot start fails the test with the reason (a missing Debian package names
//! the package); it never skips. Must not: be used outside tests, or send traffic beyond
//! loopback. See `tests/world/README.md` for how to write a test with it.

pub mod ca;
mod daemon;
pub mod dns;
pub mod knot;
pub mod net;
pub mod postfix;
pub mod relay;
pub mod rspamd;

use std::path::{Path, PathBuf};

pub use daemon::Daemon;
pub use dns::{Breakage, Dns, Signing, Zone};
pub use net::Net;
pub use postfix::{Postfix, PostfixSpec, ServerTls};

/// Why the world could not be built.
#[derive(Debug)]
pub struct WorldError(pub String);

impl std::fmt::Display for WorldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for WorldError {}

impl From<std::io::Error> for WorldError {
    fn from(e: std::io::Error) -> Self {
        WorldError(format!("I/O: {e}"))
    }
}

impl From<openssl::error::ErrorStack> for WorldError {
    fn from(e: openssl::error::ErrorStack) -> Self {
        WorldError(format!("OpenSSL: {e}"))
    }
}

impl From<kurier_tls::TlsError> for WorldError {
    fn from(e: kurier_tls::TlsError) -> Self {
        WorldError(e.to_string())
    }
}

/// A running world. Dropping it stops everything and removes its folder.
pub struct World {
    pub net: Net,
    pub ca: ca::Ca,
    pub dns: Option<Dns>,
    pub postfix: Vec<Postfix>,
    daemons: Vec<Daemon>,
    /// The zones `publish` may change.
    zones: std::sync::Mutex<Vec<dns::LiveZone>>,
    dir: tempfile::TempDir,
}

/// What a world should contain.
#[derive(Default)]
pub struct WorldBuilder {
    zones: Vec<Zone>,
    postfix: Vec<PostfixSpec>,
}

impl WorldBuilder {
    /// Adds a DNS zone (a direct child of `test.`); any zone makes the world start DNS.
    pub fn zone(mut self, zone: Zone) -> Self {
        self.zones.push(zone);
        self
    }

    /// Adds a Postfix peer.
    pub fn postfix(mut self, spec: PostfixSpec) -> Self {
        self.postfix.push(spec);
        self
    }

    /// Starts the world. Zone records may use placeholders that only the world knows:
    /// `{ip:N}` (127.A.B.N), `{postfix:I}` (the address of Postfix peer I), `{tlsa-ca}` (`2 1 1`
    /// of the world CA, matching every certificate it issues), `{tlsa-postfix:I}` (`3 1 1` of
    /// peer I's certificate), `{tlsa-postfix:I:S:M}` (`3 S M` of it) and `{hash-postfix:I}` (the
    /// SHA2-256 of its public key, hex, to build wrong records from). Owner names may use
    /// `{rev:N}`: 127.A.B.N reversed, as a DNS list names it (RFC 5782 §2.1).
    pub fn build(self) -> Result<World, WorldError> {
        let net = Net::allocate()?;
        let dir = tempfile::Builder::new().prefix("kurier-world-").tempdir()?;
        let ca = ca::Ca::new("World", ca::KeyKind::P256)?;
        // Peer certificates first: DNS publishes their TLSA records.
        let leaves = self
            .postfix
            .iter()
            .map(|p| match (&p.certificate, p.starttls) {
                (Some(leaf), _) => Ok(Some(leaf.clone())),
                (None, true) => ca
                    .issue(&ca::LeafSpec::new(&[&p.hostname]).key(p.server_tls.key()))
                    .map(Some),
                (None, false) => Ok(None),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut values = vec![("{tlsa-ca}".to_string(), ca.tlsa_2_1_1()?)];
        for (i, leaf) in leaves.iter().enumerate() {
            values.push((
                format!("{{postfix:{i}}}"),
                net.ip(net::hosts::POSTFIX + i as u8).to_string(),
            ));
            if let Some(l) = leaf {
                use kurier_tls::tlsa::{Matching, Selector};
                values.push((format!("{{tlsa-postfix:{i}}}"), l.tlsa_3_1_1()?));
                for (s, sel) in [(0, Selector::Cert), (1, Selector::Spki)] {
                    for (m, mat) in [
                        (0, Matching::Full),
                        (1, Matching::Sha256),
                        (2, Matching::Sha512),
                    ] {
                        values.push((format!("{{tlsa-postfix:{i}:{s}:{m}}}"), l.tlsa(sel, mat)?));
                    }
                }
                let spki = l.tlsa_3_1_1()?;
                let hash = spki.rsplit(' ').next().unwrap_or_default().to_string();
                values.push((format!("{{hash-postfix:{i}}}"), hash));
            }
        }
        let zones: Vec<Zone> = self
            .zones
            .into_iter()
            .map(|z| z.substitute(&net, &values))
            .collect();
        let mut world = World {
            net,
            ca,
            dns: None,
            postfix: Vec::new(),
            daemons: Vec::new(),
            zones: std::sync::Mutex::new(Vec::new()),
            dir,
        };
        if !zones.is_empty() || self.postfix.iter().any(|p| p.dane_sender) {
            let (dns, daemons, live) = dns::start(&world.net, &world.path("dns"), &zones)?;
            world.dns = Some(dns);
            world.daemons.extend(daemons);
            world.zones = std::sync::Mutex::new(live);
        }
        for (i, (spec, leaf)) in self.postfix.into_iter().zip(leaves).enumerate() {
            let p = postfix::start(&world, i, spec, leaf)?;
            world.postfix.push(p);
        }
        Ok(world)
    }
}

impl World {
    pub fn builder() -> WorldBuilder {
        WorldBuilder::default()
    }

    /// The world's folder.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A sub-folder of the world's folder, created if missing.
    pub fn path(&self, name: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        let _ = std::fs::create_dir_all(&p);
        p
    }

    /// Publishes one more record in a running zone (e.g. the TLSA record of a next key): the
    /// zone is written again, signed with its keys, and NSD reloads it. Resolvers see it when
    /// their cached copy expires (the zone's TTL).
    pub fn publish(
        &self,
        zone: &str,
        owner: &str,
        rtype: &str,
        rdata: &str,
    ) -> Result<(), WorldError> {
        let dir = self.dir.path().join("dns");
        let mut zones = self
            .zones
            .lock()
            .map_err(|_| WorldError("zone list poisoned".into()))?;
        let z = zones
            .iter_mut()
            .find(|z| z.name() == zone)
            .ok_or_else(|| WorldError(format!("{zone}: no such zone (or a broken one)")))?;
        z.add(&dir, owner, rtype, rdata)?;
        let nsd = self
            .daemons
            .iter()
            .find(|d| d.name == "nsd")
            .ok_or_else(|| WorldError("this world runs no NSD".into()))?;
        // SIGHUP: NSD reads the zone files whose mtime changed.
        // SAFETY: kill(2) with a pid we started and still own.
        if unsafe { libc::kill(nsd.pid() as i32, libc::SIGHUP) } != 0 {
            return Err(WorldError(format!(
                "cannot signal nsd: {}",
                std::io::Error::last_os_error()
            )));
        }
        Ok(())
    }

    /// The DNS part; panics with a clear message if the world has none.
    pub fn dns(&self) -> &Dns {
        self.dns
            .as_ref()
            .expect("this world has no DNS: add a zone to the builder")
    }
}

impl Drop for World {
    fn drop(&mut self) {
        // Peers first (they may use the resolver), then DNS.
        self.postfix.clear();
        while let Some(d) = self.daemons.pop() {
            drop(d);
        }
    }
}

/// Runs a helper command to completion; a missing program names its Debian package.
pub(crate) fn run(
    program: &str,
    args: &[&str],
    cwd: &Path,
    package: &str,
) -> Result<String, WorldError> {
    let out = std::process::Command::new(program)
        .args(args)
        .current_dir(cwd)
        .output()
        .map_err(|e| WorldError(format!("cannot run {program} ({e}): install the Debian package {package} (scripts/test.sh does)")))?;
    if !out.status.success() {
        return Err(WorldError(format!(
            "{program} {} failed: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs swaks (Debian package `swaks`) with `args`; returns its transcript.
pub fn swaks(args: &[&str]) -> Result<String, WorldError> {
    let out = std::process::Command::new("swaks")
        .args(args)
        .args(["--timeout", "20", "--suppress-data"])
        .output()
        .map_err(|e| {
            WorldError(format!(
                "cannot run swaks ({e}): install the Debian package swaks"
            ))
        })?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        Ok(text)
    } else {
        Err(WorldError(format!("swaks failed:\n{text}")))
    }
}

/// The MTA-STS policy host and other HTTPS servers: a small Python server (the machine's
/// `python3`) serving files over TLS with a world certificate.
const HTTPS_SERVER: &str = r#"
import functools, http.server, os, ssl, sys
root, ip, port, cert, key = sys.argv[1:]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
class Handler(http.server.SimpleHTTPRequestHandler):
    # A collector too: every POST body is kept in <root>/../posted/<n>, with its content type.
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        posted = os.path.join(root, "..", "posted")
        os.makedirs(posted, exist_ok=True)
        n = len(os.listdir(posted)) // 2
        open(os.path.join(posted, str(n)), "wb").write(body)
        open(os.path.join(posted, str(n) + ".type"), "w").write(self.headers.get("Content-Type", ""))
        self.send_response(201)
        self.send_header("Content-Length", "0")
        self.end_headers()
handler = functools.partial(Handler, directory=root)
server = http.server.ThreadingHTTPServer((ip, int(port)), handler)
server.socket = ctx.wrap_socket(server.socket, server_side=True)
server.serve_forever()
"#;

impl World {
    /// Starts Postfix's `smtp-sink` (accepts and discards everything) on 127.A.B.`host`:25.
    pub fn start_smtp_sink(&mut self, host: u8) -> Result<std::net::SocketAddr, WorldError> {
        let addr = self.net.addr(host, 25);
        let mut cmd = std::process::Command::new("smtp-sink");
        cmd.args(["-u", "postfix", &addr.to_string(), "1000"]);
        let mut d = Daemon::spawn(
            "smtp-sink",
            cmd,
            self.path("sink").join(format!("{host}.log")),
            "postfix",
        )?;
        d.wait_until("listening", || daemon::tcp_open(addr))?;
        self.daemons.push(d);
        Ok(addr)
    }

    /// Starts an HTTPS server on 127.A.B.`host`:443 with a world certificate for `names`
    /// (POSTs are kept, see `posted`),
    /// serving `files` (path below the root, content), e.g.
    /// `(".well-known/mta-sts.txt", "version: STSv1\n…")`.
    pub fn start_https(
        &mut self,
        host: u8,
        names: &[&str],
        files: &[(&str, &str)],
    ) -> Result<std::net::SocketAddr, WorldError> {
        let addr = self.net.addr(host, 443);
        let base = self.path(&format!("https-{host}"));
        let root = base.join("root");
        write_files(&root, files.iter().map(|(p, c)| (*p, c.as_bytes())))?;
        let (cert, key) = self.ca.leaf(names)?.write(&base, "server")?;
        let mut cmd = std::process::Command::new("python3");
        cmd.arg("-c")
            .arg(HTTPS_SERVER)
            .arg(&root)
            .arg(addr.ip().to_string())
            .arg("443")
            .arg(&cert)
            .arg(&key);
        let mut d = Daemon::spawn("https", cmd, base.join("server.log"), "python3")?;
        d.wait_until("listening", || daemon::tcp_open(addr))?;
        self.daemons.push(d);
        Ok(addr)
    }

    /// Starts a plain HTTP server on 127.A.B.`host`:80 serving `files` (CRLs and the like).
    pub fn start_http(
        &mut self,
        host: u8,
        files: &[(&str, &[u8])],
    ) -> Result<std::net::SocketAddr, WorldError> {
        let addr = self.net.addr(host, 80);
        let root = self.path(&format!("http-{host}"));
        write_files(&root, files.iter().map(|(p, c)| (*p, *c)))?;
        let mut cmd = std::process::Command::new("python3");
        cmd.args(["-m", "http.server", "--bind"])
            .arg(addr.ip().to_string())
            .arg("--directory")
            .arg(&root)
            .arg("80");
        let mut d = Daemon::spawn("http", cmd, root.join("../http.log"), "python3")?;
        d.wait_until("listening", || daemon::tcp_open(addr))?;
        self.daemons.push(d);
        Ok(addr)
    }

    /// The bodies POSTed to the HTTPS server on 127.A.B.`host`, oldest first, with their
    /// content types.
    pub fn posted(&self, host: u8) -> Vec<(String, Vec<u8>)> {
        let dir = self.path(&format!("https-{host}")).join("posted");
        let mut out = Vec::new();
        for n in 0.. {
            let Ok(body) = std::fs::read(dir.join(n.to_string())) else {
                break;
            };
            let kind = std::fs::read_to_string(dir.join(format!("{n}.type"))).unwrap_or_default();
            out.push((kind, body));
        }
        out
    }

    /// The world CA's root as a PEM file (for clients' trust stores).
    pub fn ca_file(&self) -> Result<PathBuf, WorldError> {
        self.ca.write_root(&self.path("ca").join("world-root.pem"))
    }
}

/// Writes `files` (path below `root`, content) and makes sure `root` exists.
fn write_files<'a>(
    root: &std::path::Path,
    files: impl Iterator<Item = (&'a str, &'a [u8])>,
) -> Result<(), WorldError> {
    std::fs::create_dir_all(root)?;
    for (path, content) in files {
        let p = root.join(path.trim_start_matches('/'));
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(p, content)?;
    }
    Ok(())
}
