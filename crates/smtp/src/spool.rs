//! Message bodies while they arrive (DATA, BDAT): in memory up to `MEMORY_PART`, then in an
//! unlinked temporary file in the spool folder, so that a client that stalls in the middle of
//! a 40 MB transfer holds disk, not RAM. Every byte counts against one budget shared by all
//! SMTP sessions (`InFlight`): RAM for bodies (in arrival and while being stored) and all bytes
//! in arrival (RAM and spool). Past the budget a message is refused at its end with
//! 451 4.3.1 (RFC 3463: mail system full), and nothing more of it is kept.
//!
//! This is the one place where the SMTP session touches the file system; the protocol state
//! machine stays free of sockets, clocks and the store.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use kurier_access::{ByteBudget, Reservation};

/// How much of one body stays in memory before it goes to the spool file.
pub const MEMORY_PART: u64 = 256 * 1024;

/// Why a body could not be kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpoolProblem {
    /// The in-flight budget is used up: try again later (451 4.3.1).
    Busy,
    /// The spool folder cannot be written (disk full, permissions): 451 4.3.0.
    Io(String),
}

/// The budgets of message bytes in flight, shared by every SMTP session of one Kurier.
#[derive(Debug)]
pub struct InFlight {
    /// Where bodies past `MEMORY_PART` go; `None` keeps them in memory (tests, fuzzing).
    dir: Option<PathBuf>,
    /// RAM for bodies, shared with IMAP APPEND literals.
    memory: Arc<ByteBudget>,
    /// All bytes of bodies in arrival, RAM and spool.
    total: Arc<ByteBudget>,
}

impl InFlight {
    /// `memory`: RAM for bodies, all sessions together (IMAP's APPEND literals take from it
    /// too); `total_limit`: all bytes of SMTP bodies in arrival, RAM and spool.
    pub fn new(dir: Option<PathBuf>, memory: Arc<ByteBudget>, total_limit: u64) -> Arc<Self> {
        Arc::new(InFlight {
            dir,
            memory,
            total: ByteBudget::new(total_limit),
        })
    }

    /// No spool folder and no limits: for tests and the fuzz targets.
    pub fn unlimited() -> Arc<Self> {
        Self::new(None, ByteBudget::unlimited(), u64::MAX)
    }

    /// Bytes of bodies held in memory now.
    pub fn memory_in_use(&self) -> u64 {
        self.memory.in_use()
    }

    /// Bytes of bodies in arrival now (memory and spool).
    pub fn total_in_use(&self) -> u64 {
        self.total.in_use()
    }
}

/// One body in arrival.
#[derive(Debug)]
pub struct Body {
    dir: Option<PathBuf>,
    memory: Vec<u8>,
    file: Option<File>,
    len: u64,
    /// The RAM `memory` holds.
    memory_held: Reservation,
    /// Every byte kept, in RAM or in the file.
    total_held: Reservation,
    problem: Option<SpoolProblem>,
}

impl Body {
    pub fn new(budget: Arc<InFlight>) -> Body {
        Body {
            dir: budget.dir.clone(),
            memory: Vec::new(),
            file: None,
            len: 0,
            memory_held: Reservation::empty(&budget.memory),
            total_held: Reservation::empty(&budget.total),
            problem: None,
        }
    }

    /// Bytes received so far (also those dropped after a problem).
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether the body went to the spool file.
    pub fn is_spooled(&self) -> bool {
        self.file.is_some()
    }

    pub fn problem(&self) -> Option<&SpoolProblem> {
        self.problem.as_ref()
    }

    /// Appends bytes; after a problem they are only counted.
    pub fn push(&mut self, bytes: &[u8]) {
        let n = bytes.len() as u64;
        self.len += n;
        if self.problem.is_some() || n == 0 {
            return;
        }
        if !self.total_held.grow(n) {
            self.fail(SpoolProblem::Busy);
            return;
        }
        if self.file.is_none() {
            let fits = self.memory.len() as u64 + n <= MEMORY_PART || self.dir.is_none();
            if fits && self.memory_held.grow(n) {
                self.memory.extend_from_slice(bytes);
                return;
            }
            if let Err(p) = self.spill() {
                self.fail(p);
                return;
            }
        }
        if let Some(f) = &mut self.file
            && let Err(e) = f.write_all(bytes)
        {
            self.fail(SpoolProblem::Io(format!(
                "cannot write the spool file: {e}"
            )));
        }
    }

    /// Moves what is in memory to a new, already unlinked file in the spool folder.
    fn spill(&mut self) -> Result<(), SpoolProblem> {
        let Some(dir) = &self.dir else {
            return Err(SpoolProblem::Busy);
        };
        let mut file = unlinked_file(dir).map_err(|e| {
            SpoolProblem::Io(format!(
                "cannot create a spool file in {}: {e}",
                dir.display()
            ))
        })?;
        file.write_all(&self.memory)
            .map_err(|e| SpoolProblem::Io(format!("cannot write the spool file: {e}")))?;
        self.memory = Vec::new();
        self.memory_held.clear();
        self.file = Some(file);
        Ok(())
    }

    fn fail(&mut self, problem: SpoolProblem) {
        self.problem = Some(problem);
        self.memory = Vec::new();
        self.file = None;
        self.memory_held.clear();
        self.total_held.clear();
    }

    /// The whole body in memory for storing, with `extra` bytes of headers to come, and the
    /// reservation that holds that memory until the message is stored.
    pub fn into_bytes(mut self, extra: u64) -> Result<(Vec<u8>, Reservation), SpoolProblem> {
        if let Some(p) = self.problem.take() {
            return Err(p);
        }
        // The in-memory part is already held; the spooled part and `extra` are not.
        let need = if self.file.is_some() { self.len } else { 0 } + extra;
        if !self.memory_held.grow(need) {
            return Err(SpoolProblem::Busy);
        }
        let bytes = match self.file.take() {
            None => std::mem::take(&mut self.memory),
            Some(mut f) => {
                let mut out = Vec::with_capacity(usize::try_from(self.len).unwrap_or(0));
                f.seek(SeekFrom::Start(0))
                    .and_then(|_| f.read_to_end(&mut out))
                    .map_err(|e| SpoolProblem::Io(format!("cannot read the spool file: {e}")))?;
                out
            }
        };
        // The memory goes with the bytes; the in-arrival count ends with `self`.
        Ok((bytes, self.memory_held.split_off()))
    }
}

/// A new file in `dir`, removed from the folder at once: it lives while it is open and
/// leaves nothing behind after a crash.
fn unlinked_file(dir: &std::path::Path) -> std::io::Result<File> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    std::fs::create_dir_all(dir)?;
    for _ in 0..16 {
        let name = format!(
            "body-{}-{}-{:x}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            crate::received::unique_stamp()
        );
        let path = dir.join(name);
        match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(f) => {
                std::fs::remove_file(&path)?;
                return Ok(f);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::other("no free spool file name"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("kurier-spool-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn small_bodies_stay_in_memory_and_large_ones_spool() {
        let dir = temp_dir("spill");
        let budget = InFlight::new(Some(dir.clone()), ByteBudget::new(10 << 20), 100 << 20);
        let mut b = Body::new(budget.clone());
        b.push(b"hello");
        assert!(!b.is_spooled());
        assert_eq!(budget.memory_in_use(), 5);
        let big = vec![b'x'; MEMORY_PART as usize];
        b.push(&big);
        assert!(b.is_spooled(), "past MEMORY_PART the body goes to disk");
        assert_eq!(budget.memory_in_use(), 0);
        assert_eq!(budget.total_in_use(), 5 + MEMORY_PART);
        assert_eq!(
            std::fs::read_dir(&dir).unwrap().count(),
            0,
            "the spool file is unlinked"
        );
        let (bytes, reservation) = b.into_bytes(100).unwrap();
        assert_eq!(bytes.len() as u64, 5 + MEMORY_PART);
        assert!(bytes.starts_with(b"hellox"));
        assert_eq!(budget.memory_in_use(), 5 + MEMORY_PART + 100);
        assert_eq!(budget.total_in_use(), 0, "in arrival no more");
        drop(reservation);
        assert_eq!(budget.memory_in_use(), 0);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_budget_refuses_and_forgets() {
        let dir = temp_dir("budget");
        let budget = InFlight::new(Some(dir.clone()), ByteBudget::new(1 << 20), 1000);
        let mut a = Body::new(budget.clone());
        a.push(&[b'a'; 600]);
        let mut b = Body::new(budget.clone());
        b.push(&[b'b'; 600]);
        assert_eq!(b.problem(), Some(&SpoolProblem::Busy));
        b.push(&[b'b'; 600]);
        assert_eq!(b.len(), 1200, "counted, not kept");
        assert_eq!(budget.total_in_use(), 600);
        drop(a);
        assert_eq!(budget.total_in_use(), 0);
        assert_eq!(budget.memory_in_use(), 0);
        assert_eq!(b.into_bytes(0).unwrap_err(), SpoolProblem::Busy);
        // Memory for storing is budgeted too.
        let small = InFlight::new(None, ByteBudget::new(100), 1000);
        let mut c = Body::new(small.clone());
        c.push(&[b'c'; 60]);
        assert_eq!(c.into_bytes(60).unwrap_err(), SpoolProblem::Busy);
        assert_eq!(small.memory_in_use(), 0);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_spool_folder_that_cannot_be_written_is_an_io_problem() {
        let budget = InFlight::new(
            Some(PathBuf::from("/proc/kurier-no-such-dir")),
            ByteBudget::new(1 << 20),
            1 << 30,
        );
        let mut b = Body::new(budget.clone());
        b.push(&vec![0u8; MEMORY_PART as usize + 1]);
        assert!(matches!(b.problem(), Some(SpoolProblem::Io(_))));
        assert_eq!(budget.total_in_use(), 0);
    }
}
