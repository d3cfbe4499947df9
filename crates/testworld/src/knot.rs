//! A Knot DNS primary for one zone that takes RFC 2136 updates signed with one TSIG key (RFC
//! 8945): the operator's own primary server, for the tests of Kurier's automatic DNS.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::daemon::{Daemon, tcp_open};
use crate::{WorldError, run};

pub struct Knot {
    pub addr: SocketAddr,
    dir: PathBuf,
    pub zone: String,
    /// The update key in BIND's format (`tsig-keygen`), as an operator hands it to Kurier.
    pub key_file: PathBuf,
    _daemon: Daemon,
}

impl Knot {
    /// Serves `zone` with `records` (zone-file lines, names relative to the zone) on `addr`,
    /// allowing updates signed with a fresh key named `kurier-update`. `signed`: Knot signs
    /// the zone itself (DNSSEC, its default policy: ECDSA P-256, NSEC) and every update;
    /// `trust_anchor` then gives its KSK. Negative answers may be cached for 1 s only.
    pub fn start(
        dir: &Path,
        addr: SocketAddr,
        zone: &str,
        records: &str,
        signed: bool,
    ) -> Result<Knot, WorldError> {
        // The journal of applied updates lives in the database folder, which must exist.
        std::fs::create_dir_all(dir.join("db"))?;
        let mut secret = [0u8; 32];
        openssl::rand::rand_bytes(&mut secret).map_err(|e| WorldError(e.to_string()))?;
        let secret = openssl::base64::encode_block(&secret);
        let key_file = dir.join("kurier-update.key");
        std::fs::write(
            &key_file,
            format!(
                "key \"kurier-update\" {{\n\talgorithm hmac-sha256;\n\tsecret \"{secret}\";\n}};\n"
            ),
        )?;
        std::fs::write(
            dir.join(format!("{zone}.zone")),
            format!(
                "$ORIGIN {zone}.\n$TTL 300\n@ IN SOA ns.{zone}. hostmaster.{zone}. 1 3600 600 86400 1\n\
                 @ IN NS ns.{zone}.\nns IN A {}\n{records}\n",
                addr.ip()
            ),
        )?;
        let d = dir.display();
        let conf = format!(
            "server:\n    rundir: \"{d}\"\n    listen: {ip}@{port}\n\
             log:\n  - target: stderr\n    any: info\n\
             database:\n    storage: \"{d}/db\"\n\
             key:\n  - id: kurier-update\n    algorithm: hmac-sha256\n    secret: {secret}\n\
             acl:\n  - id: kurier\n    key: kurier-update\n    action: update\n\
             template:\n  - id: default\n    storage: \"{d}\"\n    file: \"%s.zone\"\n    zonefile-sync: -1\n\
             zone:\n  - domain: {zone}\n    acl: kurier\n    dnssec-signing: {signing}\n",
            ip = addr.ip(),
            port = addr.port(),
            signing = if signed { "on" } else { "off" },
        );
        let conf_path = dir.join("knot.conf");
        std::fs::write(&conf_path, conf)?;
        let mut cmd = Command::new("knotd");
        cmd.arg("-c").arg(&conf_path);
        let mut daemon = Daemon::spawn("knotd", cmd, dir.join("knot.log"), "knot")?;
        daemon.wait_until("listening", || tcp_open(addr))?;
        Ok(Knot {
            addr,
            dir: dir.to_path_buf(),
            zone: zone.to_string(),
            key_file,
            _daemon: daemon,
        })
    }

    /// The zone's KSK as a trust anchor line (`zone. IN DNSKEY 257 …`), once Knot has signed.
    pub fn trust_anchor(&self) -> Result<String, WorldError> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            if let Some(ksk) = self
                .records(&self.zone, "DNSKEY")?
                .into_iter()
                .find(|k| k.starts_with("257 "))
            {
                return Ok(format!("{}. IN DNSKEY {ksk}", self.zone));
            }
            if std::time::Instant::now() > deadline {
                return Err(WorldError(format!("Knot did not sign {}", self.zone)));
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }

    /// The TLSA records at `owner` as Kurier writes them (`3 1 1 <lower-case hex>`): dig splits
    /// long hex and writes it in upper case.
    pub fn tlsa(&self, owner: &str) -> Result<Vec<String>, WorldError> {
        Ok(self
            .records(owner, "TLSA")?
            .iter()
            .map(|r| {
                let f: Vec<&str> = r.split_whitespace().collect();
                let hex = f.get(3..).unwrap_or(&[]).concat().to_ascii_lowercase();
                format!("{} {hex}", f.get(..3).unwrap_or(&[]).join(" "))
            })
            .collect())
    }

    /// What Knot serves now for `name` and `rtype` (`dig +short`, one line per record).
    pub fn records(&self, name: &str, rtype: &str) -> Result<Vec<String>, WorldError> {
        let out = run(
            "dig",
            &[
                "+short",
                "+norec",
                "+tcp",
                &format!("@{}", self.addr.ip()),
                "-p",
                &self.addr.port().to_string(),
                name,
                rtype,
            ],
            &self.dir,
            "dnsutils",
        )?;
        let mut lines: Vec<String> = out.lines().map(|l| l.to_string()).collect();
        lines.sort();
        Ok(lines)
    }
}
