//! Arbitrary bytes from a client never panic IMAP's command framing or parser, and the
//! reader always makes progress or asks for more.
#![no_main]

use kurier_imap::command;
use kurier_imap::reader::{CommandReader, Step};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut r = CommandReader::new(1024, 4096, 8192);
    // Feed in two pieces to exercise the partial paths.
    let (a, b) = data.split_at(data.len() / 2);
    for piece in [a, b] {
        r.feed(piece);
        for _ in 0..10_000 {
            match r.next_step() {
                Step::Command(bytes) => {
                    let _ = command::parse_in(&bytes, false);
                    let _ = command::parse(&bytes);
                }
                Step::NeedMore | Step::TooLong => break,
                Step::Literal { .. } | Step::LiteralTooBig { .. } => {}
            }
        }
    }
    let _ = command::parse(data);
});
