//! A real rspamd (Debian package `rspamd`) with its Redis on one loopback address: Debian's
//! configuration as shipped, plus the test's own `local.d` files, rspamd's DNS pointed at a
//! closed loopback port (no lookup leaves the machine; DNS rules fail at once), its greylist
//! module off (Kurier greylists itself). Normal worker on 11333, controller on 11334 (password
//! `q1` as Debian ships it, and no password from 127.0.0.1), Redis on 6379.

use std::path::Path;
use std::process::Command;

use crate::{Daemon, WorldError};

pub struct Rspamd {
    pub ip: String,
    _rspamd: Daemon,
    _redis: Daemon,
}

impl Rspamd {
    /// Starts Redis and rspamd on `ip` with their files in `dir`; `local` are extra
    /// `local.d/NAME` files (name, content), e.g. multimap rules.
    pub fn start(dir: &Path, ip: &str, local: &[(&str, String)]) -> Result<Rspamd, WorldError> {
        std::fs::create_dir_all(dir.join("local.d"))?;
        std::fs::write(
            dir.join("rspamd.conf"),
            format!(
                ".include \"$CONFDIR/common.conf\"\n\
                 options {{\n  pidfile = \"$RUNDIR/rspamd.pid\";\n  .include \"$CONFDIR/options.inc\"\n  \
                 .include(try=true; priority=1,duplicate=merge) \"$LOCAL_CONFDIR/local.d/options.inc\"\n  \
                 dns {{ nameserver = [\"127.0.0.1:9\"]; timeout = 0.3s; retransmits = 1; }}\n}}\n\
                 logging {{ type = \"console\"; level = \"notice\"; }}\n\
                 worker \"normal\" {{ bind_socket = \"{ip}:11333\"; .include \"$CONFDIR/worker-normal.inc\"\n count = 1; }}\n\
                 worker \"controller\" {{ bind_socket = \"{ip}:11334\"; .include \"$CONFDIR/worker-controller.inc\" }}\n"
            ),
        )?;
        std::fs::write(
            dir.join("local.d/redis.conf"),
            format!("servers = \"{ip}:6379\";\n"),
        )?;
        std::fs::write(dir.join("local.d/greylist.conf"), "enabled = false;\n")?;
        for (name, text) in local {
            std::fs::write(dir.join("local.d").join(name), text)?;
        }
        let mut redis = Command::new("redis-server");
        redis.args([
            "--bind",
            ip,
            "--port",
            "6379",
            "--save",
            "",
            "--appendonly",
            "no",
        ]);
        let mut redis = Daemon::spawn("redis", redis, dir.join("redis.log"), "redis-server")?;
        let redis_addr: std::net::SocketAddr = format!("{ip}:6379")
            .parse()
            .map_err(|e| WorldError(format!("{ip}: {e}")))?;
        redis.wait_until("Redis listening", || tcp_open(redis_addr))?;
        let var = |k: &str| format!("--var={k}={}", dir.display());
        let mut cmd = Command::new("rspamd");
        cmd.args(["-f", "-i", "-c"])
            .arg(dir.join("rspamd.conf"))
            .args([
                var("LOCAL_CONFDIR"),
                var("DBDIR"),
                var("RUNDIR"),
                var("LOGDIR"),
            ]);
        let mut rspamd = Daemon::spawn("rspamd", cmd, dir.join("rspamd.log"), "rspamd")?;
        for port in [11333u16, 11334] {
            let addr: std::net::SocketAddr = format!("{ip}:{port}")
                .parse()
                .map_err(|e| WorldError(format!("{ip}: {e}")))?;
            // rspamd loads its rules for some seconds before its workers listen.
            rspamd.wait_until_for(
                "rspamd listening",
                std::time::Duration::from_secs(90),
                || tcp_open(addr),
            )?;
        }
        Ok(Rspamd {
            ip: ip.to_string(),
            _rspamd: rspamd,
            _redis: redis,
        })
    }
}

fn tcp_open(addr: std::net::SocketAddr) -> bool {
    std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_millis(200)).is_ok()
}
