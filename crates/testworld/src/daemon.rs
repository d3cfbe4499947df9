//! A started daemon: its own process group, ended (TERM, then KILL) when dropped.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::WorldError;

pub struct Daemon {
    pub name: String,
    pub log: PathBuf,
    child: Child,
}

impl Daemon {
    /// Starts `cmd` in the foreground in a new process group, output to `log`.
    pub fn spawn(
        name: &str,
        mut cmd: Command,
        log: PathBuf,
        package: &str,
    ) -> Result<Daemon, WorldError> {
        use std::os::unix::process::CommandExt;
        let out = std::fs::File::create(&log)?;
        let err = out.try_clone()?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .spawn()
            .map_err(|e| WorldError(format!("cannot start {name} ({e}): install the Debian package {package} (scripts/test.sh does)")))?;
        Ok(Daemon {
            name: name.to_string(),
            log,
            child,
        })
    }

    /// Waits until `ready()` holds, failing with the daemon's log if it exits or takes too long.
    pub fn wait_until(
        &mut self,
        what: &str,
        ready: impl FnMut() -> bool,
    ) -> Result<(), WorldError> {
        self.wait_until_for(what, Duration::from_secs(20), ready)
    }

    /// `wait_until` with another time limit.
    pub fn wait_until_for(
        &mut self,
        what: &str,
        limit: Duration,
        mut ready: impl FnMut() -> bool,
    ) -> Result<(), WorldError> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if ready() {
                return Ok(());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(WorldError(format!(
                    "{} exited ({status}) before {what}:\n{}",
                    self.name,
                    self.log_text()
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(WorldError(format!(
            "{} did not get {what} within {} s:\n{}",
            self.name,
            limit.as_secs(),
            self.log_text()
        )))
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let group = -(self.child.id() as i32);
        // SAFETY: kill(2) on the process group this daemon leads.
        unsafe { libc::kill(group, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // SAFETY: as above; whatever is left of the group goes now.
        unsafe { libc::kill(group, libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

/// Whether a TCP connection to `addr` succeeds now.
pub fn tcp_open(addr: std::net::SocketAddr) -> bool {
    std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
}
