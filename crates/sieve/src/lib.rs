//! # kurier-sieve — the Sieve mail filtering language (RFC 5228)
//!
//! Owns reading users' Sieve scripts: the lexical grammar (`lexer`: tokens with their line and
//! column), the generic grammar (`grammar`: commands, arguments, tests and blocks, nesting
//! bounded), and what a script means (`script`: typed commands and tests, every `require`,
//! tag and argument checked, errors with their place), and running a script on one message
//! (`interpret`: tests against a `MessageView` the caller decodes, the actions delivery
//! carries out, RFC 5228's implicit keep, limits on steps, redirects, actions and includes;
//! `date` for RFC 5260's date parts).
//!
//! Why our own: `sieve-rs`, the well-kept Rust implementation, is AGPL-3.0-only, which a
//! dependency of this Apache-2.0 project cannot be.
//!
//! RFCs: 5228 (Sieve) with the extensions of `script::EXTENSIONS`: 5229 variables, 5230
//! vacation, 5231 relational, 5232 imap4flags, 5233 subaddress, 5173 body, 5260 date and index,
//! 5293 editheader, 5429 reject/ereject, 5490 mailbox, 3894 copy, 6609 include.
//!
//! Must not: recurse without a bound on input, or accept a script it cannot point an error at.

#![forbid(unsafe_code)]

pub mod date;
pub mod grammar;
pub mod interpret;
pub mod lexer;
pub mod script;

pub use grammar::{Argument, Command, Test, parse};
pub use interpret::{Action, Context, Envelope, Limits, MessageView, Outcome, run};
pub use lexer::SyntaxError;
pub use script::{Script, compile};

/// Where in a script: line and column, both from 1 (columns count characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub line: u32,
    pub column: u32,
}
