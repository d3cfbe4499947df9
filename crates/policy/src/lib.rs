//! # kurier-policy — what transport security a delivery needs, as pure functions
//!
//! Owns the decisions of RFC 7672 (SMTP security via DANE, `dane`), MTA-STS (RFC 8461, `sts`),
//! which of them governs a connection (DANE-12, `protection`), whether a new certificate of
//! ours may go live beside the published TLSA records (RFC 7671 §8, `rollover`) and TLS
//! reporting (RFC 8460, `tlsrpt`: records, the one TLS outcome type, aggregation, report JSON).
//! It is fed values that
//! others fetched (DNS answers with their DNSSEC state) and returns values that say what to do;
//! the delivery logs them and hands them to TLSRPT, so reporting cannot drift from the decision
//! (docs/architecture.md).
//!
//! Must not: open sockets, read clocks or files, or do cryptography (OpenSSL's DANE engine does
//! the matching; here it is decided *whether* and *with which records*).

#![forbid(unsafe_code)]

pub mod dane;
pub mod protection;
pub mod rollover;
pub mod sts;
pub mod tlsrpt;
