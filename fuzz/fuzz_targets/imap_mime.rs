//! Any message a store may hold: its MIME structure, BODYSTRUCTURE, ENVELOPE, every section
//! and BINARY part, and its search text never panic, and sections stay inside the message.
#![no_main]

use kurier_imap::command::{Section, SectionText};
use kurier_imap::{mime, search};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|raw: &[u8]| {
    let root = mime::parse(raw);
    let mut out = Vec::new();
    mime::body_structure(&mut out, raw, &root, true);
    mime::envelope(&mut out, raw, &root);
    for part in [&[][..], &[1], &[2], &[1, 1], &[1, 2], &[2, 1, 1]] {
        for text in [
            None,
            Some(SectionText::Header),
            Some(SectionText::Text),
            Some(SectionText::Mime),
            Some(SectionText::HeaderFields {
                not: true,
                fields: vec!["subject".into()],
            }),
        ] {
            let s = Section {
                part: part.to_vec(),
                text,
            };
            if let Ok(bytes) = mime::section(raw, &root, &s) {
                assert!(bytes.len() <= raw.len() + 2);
            }
        }
        let _ = mime::binary(raw, &root, part);
    }
    let _ = search::SearchText::new(raw);
});
