//! # kurier-spam — spam scoring and training on rspamd, over its HTTP protocol
//!
//! Owns what Kurier says to rspamd and what it makes of the answers: the scan request (the
//! message with its envelope, client address, HELO, TLS and authenticated user as rspamd's
//! request headers, `protocol`), the reply (action, score, symbols, header changes) read with
//! limits, the HTTP client with one time limit per exchange (`client`), and the training of
//! rspamd's statistics from what users move into and out of Junk (`learn`), as Dovecot's
//! IMAPSieve scripts do it.
//!
//! Protocol: rspamd's HTTP protocol (`/checkv2` on the normal worker, `/learnspam` and
//! `/learnham` on the controller), HTTP/1.1 (RFC 9112).
//!
//! Must not: decide what happens to a message (the acceptance pipeline's spam stage does),
//! trust the reply's text as header or SMTP text without cleaning it, or make an IMAP command
//! wait for rspamd.

#![forbid(unsafe_code)]

pub mod client;
pub mod learn;
pub mod protocol;

pub use client::LearnKind;
pub use client::{Rspamd, RspamdError};
pub use learn::{LearnEvents, Learner, Lesson, lesson};
pub use protocol::{Action, Learned, Reply, ScanRequest, Symbol};
