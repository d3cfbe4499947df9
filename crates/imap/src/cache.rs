//! Message headers kept in memory: ENVELOPE, header fetches and header searches need only a
//! message's header, and stored messages never change (a UID is never reused in a mailbox, a
//! mailbox id never reused), so a header once read stays true. Bounded: past `limit` bytes
//! the cache starts over.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use kurier_store::MailboxId;

use crate::search::SearchText;

/// One message's header, and what header searches look at, computed once.
#[derive(Debug)]
pub struct CachedHeader {
    pub raw: Box<[u8]>,
    search: OnceLock<SearchText>,
}

impl CachedHeader {
    /// The decoded, lower-cased header fields and the sent date.
    pub fn search_text(&self) -> &SearchText {
        self.search.get_or_init(|| SearchText::new(&self.raw))
    }
}

#[derive(Debug)]
pub struct HeaderCache {
    limit: usize,
    inner: Mutex<Entries>,
}

#[derive(Debug, Default)]
struct Entries {
    map: HashMap<(MailboxId, u32), Arc<CachedHeader>>,
    bytes: usize,
}

impl HeaderCache {
    pub fn new(limit: usize) -> Self {
        HeaderCache {
            limit,
            inner: Mutex::new(Entries::default()),
        }
    }

    pub fn get(&self, mailbox: MailboxId, uid: u32) -> Option<Arc<CachedHeader>> {
        let e = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        e.map.get(&(mailbox, uid)).cloned()
    }

    /// Keeps the header part of `raw` and returns it.
    pub fn put(&self, mailbox: MailboxId, uid: u32, raw: &[u8]) -> Arc<CachedHeader> {
        let header = Arc::new(CachedHeader {
            raw: raw[..crate::mime::header_len(raw)].into(),
            search: OnceLock::new(),
        });
        // The raw bytes, and about as much again once the search text is made.
        let cost = header.raw.len() * 2 + 64;
        let mut e = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if e.bytes + cost > self.limit {
            e.map.clear();
            e.bytes = 0;
        }
        if e.map.insert((mailbox, uid), header.clone()).is_none() {
            e.bytes += cost;
        }
        header
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_headers_within_the_limit() {
        let c = HeaderCache::new(200);
        let h = c.put(1, 1, b"Subject: a\r\n\r\nbody");
        assert_eq!(&*h.raw, b"Subject: a\r\n\r\n");
        assert_eq!(&*c.get(1, 1).unwrap().raw, b"Subject: a\r\n\r\n");
        let text = h.search_text();
        assert_eq!(text.headers.len(), 1);
        assert!(text.headers[0].0 == "subject" && text.headers[0].1.contains('a'));
        assert!(c.get(2, 1).is_none());
        c.put(1, 2, b"Subject: b\r\n\r\nbody");
        c.put(1, 3, b"Subject: c\r\n\r\nbody");
        assert!(c.get(1, 1).is_none(), "over the limit: started over");
        assert!(c.get(1, 3).is_some());
    }
}
