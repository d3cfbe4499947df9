//! DKIM keys as signing needs them for every submitted message: each key file is read and
//! parsed once, then kept; a file that changed (length or modification time) is read again, and
//! `clear` (on SIGHUP) forgets everything. Where a domain's key lives is the caller's business.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use crate::{DkimError, DkimKey};

/// What identifies a file version without reading it.
type Stamp = Option<(u64, SystemTime)>;

fn stamp(path: &Path) -> Stamp {
    let m = std::fs::metadata(path).ok()?;
    Some((m.len(), m.modified().ok()?))
}

#[derive(Default)]
pub struct DkimKeyring {
    keys: Mutex<HashMap<PathBuf, (Stamp, Arc<DkimKey>)>>,
}

/// Why a key could not be had.
#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    #[error("cannot read the DKIM key {0}: {1}")]
    Read(PathBuf, std::io::Error),
    #[error("the DKIM key {0}: {1}")]
    Key(PathBuf, DkimError),
}

impl DkimKeyring {
    pub fn new() -> Self {
        Self::default()
    }

    /// The key of `domain` and `selector` in `path`, parsed once per file version.
    pub fn key(
        &self,
        domain: &str,
        selector: &str,
        path: &Path,
    ) -> Result<Arc<DkimKey>, KeyringError> {
        let now = stamp(path);
        if let Ok(keys) = self.keys.lock()
            && let Some((s, key)) = keys.get(path)
            && *s == now
            && now.is_some()
            && key.domain == domain
            && key.selector == selector
        {
            return Ok(key.clone());
        }
        let pem = std::fs::read(path).map_err(|e| KeyringError::Read(path.to_owned(), e))?;
        let key = Arc::new(
            DkimKey::from_pem(domain, selector, &pem)
                .map_err(|e| KeyringError::Key(path.to_owned(), e))?,
        );
        if let Ok(mut keys) = self.keys.lock() {
            keys.insert(path.to_owned(), (now, key.clone()));
        }
        Ok(key)
    }

    /// Forgets every key (SIGHUP): the next use reads the files again.
    pub fn clear(&self) {
        if let Ok(mut keys) = self.keys.lock() {
            keys.clear();
        }
    }

    /// How many keys are held.
    pub fn len(&self) -> usize {
        self.keys.lock().map(|k| k.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests fail loudly by design
    use super::*;
    use crate::Algorithm;

    #[test]
    fn a_key_is_parsed_once_per_file_version_and_cleared_on_request() {
        let dir = std::env::temp_dir().join(format!("kurier-keyring-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("k.pem");
        let (_, pem) = DkimKey::generate("a.test", "s1", Algorithm::Ed25519).unwrap();
        std::fs::write(&path, &pem).unwrap();
        let ring = DkimKeyring::new();
        let first = ring.key("a.test", "s1", &path).unwrap();
        let again = ring.key("a.test", "s1", &path).unwrap();
        assert!(Arc::ptr_eq(&first, &again), "kept, not parsed again");
        // A new key in the same file (another length): read again.
        let (_, other) = DkimKey::generate("a.test", "s1", Algorithm::Rsa).unwrap();
        std::fs::write(&path, &other).unwrap();
        let changed = ring.key("a.test", "s1", &path).unwrap();
        assert!(!Arc::ptr_eq(&first, &changed));
        ring.clear();
        assert!(ring.is_empty());
        std::fs::remove_file(&path).unwrap();
        assert!(matches!(
            ring.key("a.test", "s1", &path),
            Err(KeyringError::Read(..))
        ));
        std::fs::write(&path, b"not a key").unwrap();
        assert!(matches!(
            ring.key("a.test", "s1", &path),
            Err(KeyringError::Key(..))
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
