//! Real Postfix peers (Debian package `postfix`): each with its own configuration, queue and
//! maildir, on its own loopback address, port 25. A peer receives into a maildir the test can
//! read; as a sender it can relay to a fixed host or use DNS (MX, and DANE with
//! `smtp_tls_security_level = dane`) through the world's validating resolver.
//!
//! Postfix reads `/etc/resolv.conf`; the peer runs in a private mount namespace where that file
//! is the world's, so no lookup leaves the world (tests/world/README.md, "Isolation"). This needs root, as Postfix
//! itself does.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::ca::Leaf;
use crate::daemon::{Daemon, tcp_open};
use crate::net::hosts;
use crate::{World, WorldError};

/// What a Postfix peer looks like.
#[derive(Debug, Clone)]
pub struct PostfixSpec {
    /// `myhostname`, the name in its greeting and (with STARTTLS) its certificate.
    pub hostname: String,
    /// Domains it accepts mail for (delivered into its maildir).
    pub domains: Vec<String>,
    /// Offer STARTTLS with a certificate from the world CA for `hostname`.
    pub starttls: bool,
    /// Send everything to this host (`[127.0.0.5]:2525`) instead of looking up MX records.
    pub relayhost: Option<String>,
    /// `smtp_tls_security_level` for mail it sends: `none`, `may`, `encrypt`, `verify`, `dane`.
    pub tls_security_level: String,
    /// Use DNSSEC through the world's resolver (`smtp_dns_support_level = dnssec`); needed for DANE.
    pub dane_sender: bool,
    /// Serve this certificate instead of a good world one (expired, another CA, …).
    pub certificate: Option<crate::ca::Leaf>,
    /// What its STARTTLS can do: a modern server, or an old or narrow one.
    pub server_tls: ServerTls,
    /// DKIM-sign what it relays with OpenDKIM (Debian package `opendkim`) as a milter.
    pub dkim: Option<DkimSigning>,
}

/// The key OpenDKIM signs a Postfix peer's mail with.
#[derive(Debug, Clone)]
pub struct DkimSigning {
    pub domain: String,
    pub selector: String,
    /// The private key, PEM.
    pub key_pem: String,
}

/// The TLS of a peer's smtpd: what Debian's Postfix and OpenSSL 3.0 offer by default, or one
/// narrowed to play the old and unusual servers that outbound best effort must still reach.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ServerTls {
    #[default]
    Modern,
    /// TLS 1.0 and nothing newer (`smtpd_tls_protocols`, security level 0 for SHA-1).
    Tls10Only,
    /// An RSA key that signs only with PKCS#1 v1.5 (OpenSSL `SignatureAlgorithms`), TLS 1.2.
    RsaPkcs1Only,
    /// X25519 as the only key-exchange group (`tls_eecdh_auto_curves`).
    X25519Only,
}

impl ServerTls {
    /// The key of its certificate.
    pub fn key(self) -> crate::ca::KeyKind {
        match self {
            ServerTls::RsaPkcs1Only => crate::ca::KeyKind::Rsa3072,
            _ => crate::ca::KeyKind::P256,
        }
    }

    /// Lines for main.cf, and for the OpenSSL configuration file Postfix is given
    /// (`tls_config_file`, Postfix ≥ 3.7.6), if any.
    fn settings(self) -> (&'static str, Option<&'static str>) {
        match self {
            ServerTls::Modern => ("", None),
            ServerTls::Tls10Only => (
                "smtpd_tls_protocols = >=TLSv1, <=TLSv1\n\
                 tls_medium_cipherlist = DEFAULT:@SECLEVEL=0\n",
                None,
            ),
            ServerTls::RsaPkcs1Only => (
                "smtpd_tls_protocols = >=TLSv1.2, <=TLSv1.2\n",
                Some("SignatureAlgorithms = RSA+SHA256:RSA+SHA384:RSA+SHA512\n"),
            ),
            ServerTls::X25519Only => ("tls_eecdh_auto_curves = X25519\n", None),
        }
    }
}

impl PostfixSpec {
    /// A receiving peer for `domains`, STARTTLS on, sending opportunistically.
    pub fn receiver(hostname: &str, domains: &[&str]) -> Self {
        PostfixSpec {
            hostname: hostname.into(),
            domains: domains.iter().map(|d| d.to_string()).collect(),
            starttls: true,
            relayhost: None,
            tls_security_level: "may".into(),
            dane_sender: false,
            certificate: None,
            server_tls: ServerTls::Modern,
            dkim: None,
        }
    }

    /// A sender that delivers with DANE (looks up MX and TLSA through the world's resolver).
    pub fn dane_sender(hostname: &str) -> Self {
        PostfixSpec {
            tls_security_level: "dane".into(),
            dane_sender: true,
            ..Self::receiver(hostname, &[])
        }
    }

    pub fn relayhost(mut self, relay: &str) -> Self {
        self.relayhost = Some(relay.into());
        self
    }

    pub fn tls_security_level(mut self, level: &str) -> Self {
        self.tls_security_level = level.into();
        self
    }

    /// STARTTLS with `leaf` (e.g. an expired one) instead of a good world certificate.
    pub fn certificate(mut self, leaf: crate::ca::Leaf) -> Self {
        self.certificate = Some(leaf);
        self.starttls = true;
        self
    }

    pub fn starttls(mut self, on: bool) -> Self {
        self.starttls = on;
        self
    }

    /// Sign relayed mail for `domain` with OpenDKIM (relaxed/relaxed, rsa-sha256).
    pub fn dkim(mut self, domain: &str, selector: &str, key_pem: &str) -> Self {
        self.dkim = Some(DkimSigning {
            domain: domain.into(),
            selector: selector.into(),
            key_pem: key_pem.into(),
        });
        self
    }

    /// STARTTLS narrowed to `tls` (an old or unusual server).
    pub fn server_tls(mut self, tls: ServerTls) -> Self {
        self.server_tls = tls;
        self.starttls = true;
        self
    }
}

/// A running Postfix peer.
pub struct Postfix {
    pub spec: PostfixSpec,
    /// Where it listens (port 25).
    pub addr: SocketAddr,
    pub dir: PathBuf,
    /// The certificate it serves (if STARTTLS): chain file and key.
    pub cert: Option<(PathBuf, PathBuf)>,
    /// `3 1 1` TLSA data of its certificate (if STARTTLS).
    pub tlsa_3_1_1: Option<String>,
    daemon: Daemon,
    /// OpenDKIM, when the peer signs.
    _milter: Option<Daemon>,
}

const MASTER_CF: &str = "\
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
";

/// The uid/gid that owns delivered mail (Postfix refuses root for that).
const MAIL_UID: u32 = 65534;

pub(crate) fn start(
    world: &World,
    index: usize,
    spec: PostfixSpec,
    leaf: Option<Leaf>,
) -> Result<Postfix, WorldError> {
    let addr = world.net.addr(hosts::POSTFIX + index as u8, 25);
    let dir = world.path(&format!("postfix-{index}"));
    let conf = dir.join("conf");
    for d in ["conf", "queue", "data", "mail"] {
        std::fs::create_dir_all(dir.join(d))?;
    }
    let _ = std::os::unix::fs::chown(dir.join("mail"), Some(MAIL_UID), Some(MAIL_UID));
    let _ = std::os::unix::fs::chown(dir.join("data"), postfix_uid(), None);

    let mut main = format!(
        "compatibility_level = 3.6\n\
         queue_directory = {q}\n\
         data_directory = {data}\n\
         mail_owner = postfix\n\
         setgid_group = postdrop\n\
         inet_interfaces = loopback-only\n\
         inet_protocols = ipv4\n\
         myhostname = {host}\n\
         mydomain = {host}\n\
         myorigin = $myhostname\n\
         mydestination =\n\
         mynetworks = 127.0.0.0/8\n\
         local_recipient_maps =\n\
         alias_maps =\n\
         alias_database =\n\
         biff = no\n\
         append_dot_mydomain = no\n\
         smtpd_peername_lookup = no\n\
         smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination\n\
         virtual_mailbox_domains = {domains}\n\
         virtual_mailbox_base = {mail}\n\
         virtual_mailbox_maps = static:maildir/\n\
         virtual_uid_maps = static:{uid}\n\
         virtual_gid_maps = static:{uid}\n\
         maillog_file = {log}\n\
         maillog_file_prefixes = {dir}\n\
         smtp_tls_security_level = {level}\n\
         smtp_tls_loglevel = 1\n\
         smtpd_tls_loglevel = 1\n\
         smtp_address_preference = ipv4\n\
         maximal_queue_lifetime = 1h\n\
         minimal_backoff_time = 5s\n\
         maximal_backoff_time = 10s\n\
         queue_run_delay = 5s\n\
         smtp_connect_timeout = 5s\n",
        q = dir.join("queue").display(),
        data = dir.join("data").display(),
        host = spec.hostname,
        domains = spec.domains.join(", "),
        mail = dir.join("mail").display(),
        uid = MAIL_UID,
        log = dir.join("maillog").display(),
        dir = dir.display(),
        level = spec.tls_security_level,
    );
    if let Some(relay) = &spec.relayhost {
        main.push_str(&format!("relayhost = {relay}\n"));
    }
    if spec.dane_sender {
        main.push_str("smtp_dns_support_level = dnssec\nsmtp_host_lookup = dns\n");
    } else {
        main.push_str("disable_dns_lookups = yes\nsmtp_host_lookup = native\n");
    }
    let root_ca = world.ca.write_root(&dir.join("world-ca.pem"))?;
    main.push_str(&format!("smtp_tls_CAfile = {}\n", root_ca.display()));
    let mut cert = None;
    let mut tlsa = None;
    if let Some(leaf) = leaf {
        let (c, k) = leaf.write(&dir, "smtpd")?;
        main.push_str(&format!(
            "smtpd_tls_security_level = may\nsmtpd_tls_chain_files = {}, {}\n",
            k.display(),
            c.display()
        ));
        // The Received header says whether, and how, the mail came encrypted.
        main.push_str("smtpd_tls_received_header = yes\n");
        let (lines, openssl_conf) = spec.server_tls.settings();
        main.push_str(lines);
        if let Some(conf_lines) = openssl_conf {
            let file = dir.join("openssl.cnf");
            std::fs::write(
                &file,
                format!(
                    "postfix = postfix_settings\n[postfix_settings]\nssl_conf = postfix_ssl\n\
                     [postfix_ssl]\nsystem_default = peer_tls\n[peer_tls]\n{conf_lines}"
                ),
            )?;
            main.push_str(&format!(
                "tls_config_file = {}\ntls_config_name = postfix\n",
                file.display()
            ));
        }
        tlsa = Some(leaf.tlsa_3_1_1()?);
        cert = Some((c, k));
    } else {
        main.push_str("smtpd_tls_security_level = none\n");
    }
    let milter = match &spec.dkim {
        Some(signing) => {
            let port = 8891;
            main.push_str(&format!(
                "smtpd_milters = inet:{ip}:{port}\nnon_smtpd_milters = $smtpd_milters\n\
                 milter_default_action = tempfail\n",
                ip = addr.ip()
            ));
            Some(opendkim(&dir, addr.ip(), port, signing)?)
        }
        None => None,
    };
    std::fs::write(conf.join("main.cf"), main)?;
    std::fs::write(
        conf.join("master.cf"),
        format!("{}:smtp inet n - n - - smtpd\n{MASTER_CF}", addr.ip()),
    )?;

    // Postfix sets up its queue folders itself; then the master runs in the foreground, in a
    // mount namespace whose /etc/resolv.conf is the world's.
    crate::run(
        "postfix",
        &["-c", conf.to_str().unwrap_or_default(), "check"],
        &dir,
        "postfix",
    )?;
    let resolv = world.dns.as_ref().map(|d| d.resolv_conf.clone());
    let script = match &resolv {
        Some(r) => format!(
            "mount --bind {} /etc/resolv.conf && exec postfix -c {} start-fg",
            r.display(),
            conf.display()
        ),
        None => format!("exec postfix -c {} start-fg", conf.display()),
    };
    let mut cmd = Command::new("unshare");
    cmd.args(["--mount", "--propagation", "private", "sh", "-c", &script]);
    let mut daemon = Daemon::spawn(
        &format!("postfix {}", spec.hostname),
        cmd,
        dir.join("master.out"),
        "postfix",
    )?;
    daemon.wait_until("listening on port 25", || tcp_open(addr))?;
    Ok(Postfix {
        spec,
        addr,
        dir,
        cert,
        tlsa_3_1_1: tlsa,
        daemon,
        _milter: milter,
    })
}

/// Starts OpenDKIM in the foreground as the peer's signing milter on `ip:port`.
fn opendkim(
    dir: &Path,
    ip: std::net::IpAddr,
    port: u16,
    signing: &DkimSigning,
) -> Result<Daemon, WorldError> {
    use std::os::unix::fs::PermissionsExt;
    let key = dir.join("dkim.key");
    std::fs::write(&key, &signing.key_pem)?;
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600))?;
    let conf = dir.join("opendkim.conf");
    std::fs::write(
        &conf,
        format!(
            "Mode s\nDomain {domain}\nSelector {selector}\nKeyFile {key}\n\
             Socket inet:{port}@{ip}\nCanonicalization relaxed/relaxed\n\
             SignatureAlgorithm rsa-sha256\nInternalHosts 127.0.0.0/8\nSyslog no\n\
             LogWhy yes\nBackground no\nPidFile {pid}\n\
             RequireSafeKeys no\n",
            domain = signing.domain,
            selector = signing.selector,
            key = key.display(),
            pid = dir.join("opendkim.pid").display(),
        ),
    )?;
    let mut cmd = Command::new("opendkim");
    cmd.args(["-f", "-x"]).arg(&conf);
    let mut daemon = Daemon::spawn("opendkim", cmd, dir.join("opendkim.out"), "opendkim")?;
    daemon.wait_until("OpenDKIM listening", || {
        tcp_open(std::net::SocketAddr::new(ip, port))
    })?;
    Ok(daemon)
}

impl Drop for Postfix {
    fn drop(&mut self) {
        // Stop the master (it ends its children); the Daemon's drop then ends the wrapper.
        let Some(pid) = self.master_pid() else { return };
        // SAFETY: kill(2) on the master this peer started.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(5);
        // SAFETY: signal 0 only checks that the process exists.
        while Instant::now() < deadline && unsafe { libc::kill(pid, 0) } == 0 && !is_zombie(pid) {
            std::thread::sleep(Duration::from_millis(20));
        }
        // SAFETY: as above.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
}

/// PID 1 may reap late (a container whose init does not reap at once): a zombie counts as gone.
fn is_zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit(')')
                .next()
                .is_some_and(|rest| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(true)
}

fn postfix_uid() -> Option<u32> {
    let out = Command::new("id").args(["-u", "postfix"]).output().ok()?;
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

impl Postfix {
    /// Messages delivered into the maildir so far (files in `new/`), oldest first.
    pub fn messages(&self) -> Vec<Vec<u8>> {
        let new = self.dir.join("mail/maildir/new");
        let mut files: Vec<_> = std::fs::read_dir(new)
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        files.sort();
        files.iter().filter_map(|p| std::fs::read(p).ok()).collect()
    }

    /// Waits until at least `n` messages arrived; fails with the mail log otherwise.
    pub fn wait_for_messages(&self, n: usize, limit: Duration) -> Result<Vec<Vec<u8>>, WorldError> {
        let deadline = Instant::now() + limit;
        loop {
            let m = self.messages();
            if m.len() >= n {
                return Ok(m);
            }
            if Instant::now() > deadline {
                return Err(WorldError(format!(
                    "{} got {} of {n} messages in {limit:?}; its log:\n{}",
                    self.spec.hostname,
                    m.len(),
                    self.maillog()
                )));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until the mail log contains `needle` (e.g. `Verified TLS connection established`).
    pub fn wait_for_log(&self, needle: &str, limit: Duration) -> Result<String, WorldError> {
        let deadline = Instant::now() + limit;
        loop {
            let log = self.maillog();
            if log.contains(needle) {
                return Ok(log);
            }
            if Instant::now() > deadline {
                return Err(WorldError(format!(
                    "{}: no {needle:?} in the log:\n{log}",
                    self.spec.hostname
                )));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn maillog(&self) -> String {
        std::fs::read_to_string(self.dir.join("maillog")).unwrap_or_default()
    }

    /// Hands a message to this Postfix for delivery (like `sendmail`), via its SMTP port.
    pub fn submit(&self, from: &str, to: &str, body: &str) -> Result<(), WorldError> {
        crate::swaks(&[
            "--server",
            &self.addr.to_string(),
            "--from",
            from,
            "--to",
            to,
            "--body",
            body,
        ])
        .map(|_| ())
    }

    pub fn pid(&self) -> u32 {
        self.daemon.pid()
    }

    /// The master's pid from its pid file (the master leaves our process group: setsid).
    fn master_pid(&self) -> Option<i32> {
        std::fs::read_to_string(self.dir.join("queue/pid/master.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    pub fn conf_dir(&self) -> &Path {
        &self.dir
    }
}
