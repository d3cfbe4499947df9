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
    /// Serves `zone` (unsigned) with `records` (zone-file lines, names relative to the zone)
    /// on `addr`, allowing updates signed with a fresh key named `kurier-update`.
    pub fn start(
        dir: &Path,
        addr: SocketAddr,
        zone: &str,
        records: &str,
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
                "$ORIGIN {zone}.\n$TTL 300\n@ IN SOA ns.{zone}. hostmaster.{zone}. 1 3600 600 86400 60\n\
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
             zone:\n  - domain: {zone}\n    acl: kurier\n",
            ip = addr.ip(),
            port = addr.port(),
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
