//! # kurier-milter — the client side of the Sendmail milter protocol
//!
//! Owns talking to content filters that Postfix and Sendmail users already run (clamav-milter,
//! OpenDKIM, OpenDMARC, rspamd's proxy): the wire protocol (`protocol`: packets, commands,
//! responses, option negotiation), one filter's conversation about one message as a state
//! machine (`conversation`: which steps, which answers are awaited, the changes collected, and
//! `apply` to write them into the message), and the async driver over TCP or a Unix socket
//! with a time limit per answer (`client`).
//!
//! Protocol: Sendmail's milter protocol version 6 (libmilter `mfdef.h`), as Postfix speaks it
//! (`MILTER_README`).
//!
//! Must not: decide what a verdict means for delivery (the acceptance pipeline's milter stage
//! does), offer recipient or sender changes, or read an unbounded answer.

#![forbid(unsafe_code)]

pub mod client;
pub mod conversation;
pub mod protocol;

pub use client::{MilterAddress, check};
pub use conversation::{Changes, Envelope, HeaderChange, Verdict, apply};
