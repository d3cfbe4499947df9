//! Arbitrary Sieve scripts (what users upload over ManageSieve) never panic or overflow the
//! stack of the checker, and a script that passes it runs on a message within its limits.
#![no_main]

use kurier_sieve::interpret::{Context, Envelope, Limits, MessageView, run};
use kurier_sieve::script::BodyTransform;
use libfuzzer_sys::fuzz_target;

struct Mail;

impl MessageView for Mail {
    fn header_values(&self, name: &str) -> Vec<String> {
        match name.to_ascii_lowercase().as_str() {
            "subject" => vec!["[list] hello * world ?".into()],
            "from" => vec!["A <a+tag@example.org>".into()],
            "date" => vec!["Fri, 04 Dec 2026 09:30:05 +0100".into()],
            _ => Vec::new(),
        }
    }
    fn addresses(&self, name: &str) -> Vec<String> {
        match name.to_ascii_lowercase().as_str() {
            "from" | "to" => vec!["a+tag@example.org".into()],
            _ => Vec::new(),
        }
    }
    fn size(&self) -> u64 {
        1234
    }
    fn body(&self, _: &BodyTransform) -> Vec<String> {
        vec!["some body text".into()]
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(script) = kurier_sieve::compile(&text) {
        let envelope = Envelope {
            from: "a@example.org".into(),
            to: "b+x@example.net".into(),
            auth: None,
        };
        let again = script.clone();
        let include = move |_: &str, _: bool| Some(again.clone());
        let context = Context {
            now: 1_796_376_600,
            mailbox_exists: &|m| m == "INBOX",
            include: &include,
        };
        let out = run(&script, &Mail, &envelope, &Limits::default(), &context);
        assert!(out.actions.len() <= Limits::default().actions + 1);
    }
});
