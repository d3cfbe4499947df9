//! FETCH (RFC 9051 §6.4.5, §7.5.2) in the selected state: message attributes, body
//! sections and partial fetches, BINARY (RFC 3516) and MODSEQ (RFC 7162).

use kurier_store::FlagChange;
use tokio::io::{AsyncRead, AsyncWrite};

use super::authenticated::User;
use super::selected::Selected;
use super::{Connection, Done, Flow, Res, bad, has_flag, header, no, ok};
use crate::command::{FetchAttr, Reads, Section, SectionText, SequenceSet};
use crate::date;
use crate::mime::{self, SectionError};
use crate::response::{literal, string};
use crate::server::Io;

impl Selected {
    /// FETCH (RFC 9051 §6.4.5; RFC 3516 BINARY, RFC 7162 CHANGEDSINCE): reads only what
    /// the items need — metadata, the cached header, or the whole message.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn fetch<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        conn: &Connection,
        user: &mut User,
        uid: bool,
        set: &SequenceSet,
        items: &[FetchAttr],
        changed_since: Option<u64>,
        io: &mut Io<S>,
    ) -> Res {
        let store = conn.server.store.clone();
        let server = conn.server.clone();
        if changed_since.is_some() || items.contains(&FetchAttr::ModSeq) {
            user.enable_condstore(Some(self), io);
        }
        let (condstore, rev2) = (user.condstore, user.rev2);
        let seqs = self
            .view
            .resolve(set, uid)
            .map_err(|e| bad(format!("[CLIENTBUG] No message {}", e.0)))?;
        // ENVELOPE and the top-level header sections need only the (cached) header.
        let reads = items
            .iter()
            .map(FetchAttr::reads)
            .max()
            .unwrap_or(Reads::Metadata);
        let (needs_header, needs_body) = (reads >= Reads::Header, reads == Reads::Body);
        let marks_seen = !self.read_only
            && items.iter().any(|a| {
                matches!(
                    a,
                    FetchAttr::Rfc822
                        | FetchAttr::Rfc822Text
                        | FetchAttr::Section { peek: false, .. }
                        | FetchAttr::Binary { peek: false, .. }
                )
            });
        let mut seen_now = Vec::new();
        if marks_seen {
            let unseen: Vec<u32> = seqs
                .iter()
                .filter_map(|&s| self.view.get(s))
                .filter(|m| !has_flag(m, "\\Seen") && !self.view.is_expunged(m.uid))
                .map(|m| m.uid)
                .collect();
            if !unseen.is_empty() {
                for m in store
                    .set_flags(self.mailbox.id, &unseen, FlagChange::Add, &["\\Seen"])
                    .await?
                {
                    seen_now.push(m.uid);
                    self.view.update(m);
                }
            }
        }
        let mut failure = None;
        for seq in seqs {
            let Some(meta) = self.view.get(seq).cloned() else {
                continue;
            };
            if changed_since.is_some_and(|c| meta.modseq <= c) {
                continue;
            }
            let body: Option<std::borrow::Cow<'_, [u8]>> = if needs_body {
                match store.message_body(self.mailbox.id, meta.uid).await? {
                    Some(b) => {
                        server.headers.put(self.mailbox.id, meta.uid, &b);
                        Some(b.into())
                    }
                    // Expunged elsewhere, not yet announced (RFC 9051 §7.5.1 lets us skip it).
                    None => continue,
                }
            } else if needs_header {
                match header(&server, self.mailbox.id, meta.uid).await? {
                    Some(h) => Some(h.raw.to_vec().into()),
                    None => continue,
                }
            } else {
                None
            };
            let structure = body.as_deref().map(mime::parse);
            self.note_keywords(&meta.flags, &mut io.out);
            let out = &mut io.out;
            out.extend_from_slice(format!("* {seq} FETCH (").as_bytes());
            let mut first = true;
            let mut sep = |out: &mut Vec<u8>| {
                if !std::mem::take(&mut first) {
                    out.push(b' ');
                }
            };
            if uid && !items.contains(&FetchAttr::Uid) {
                sep(out);
                out.extend_from_slice(format!("UID {}", meta.uid).as_bytes());
            }
            for item in items {
                sep(out);
                let raw = body.as_deref().unwrap_or_default();
                match item {
                    FetchAttr::Flags => {
                        out.extend_from_slice(b"FLAGS ");
                        self.write_flags(out, &meta, rev2);
                    }
                    FetchAttr::Uid => out.extend_from_slice(format!("UID {}", meta.uid).as_bytes()),
                    FetchAttr::InternalDate => out.extend_from_slice(
                        format!(
                            "INTERNALDATE \"{}\"",
                            date::format_date_time(meta.internal_date)
                        )
                        .as_bytes(),
                    ),
                    FetchAttr::Rfc822Size => {
                        out.extend_from_slice(format!("RFC822.SIZE {}", meta.size).as_bytes())
                    }
                    FetchAttr::ModSeq => {
                        out.extend_from_slice(format!("MODSEQ ({})", meta.modseq).as_bytes())
                    }
                    FetchAttr::Envelope => {
                        out.extend_from_slice(b"ENVELOPE ");
                        if let Some(s) = &structure {
                            mime::envelope(out, raw, s);
                        }
                    }
                    FetchAttr::Body | FetchAttr::BodyStructure => {
                        let extended = *item == FetchAttr::BodyStructure;
                        out.extend_from_slice(if extended {
                            b"BODYSTRUCTURE "
                        } else {
                            b"BODY "
                        });
                        if let Some(s) = &structure {
                            mime::body_structure(out, raw, s, extended);
                        }
                    }
                    FetchAttr::Rfc822 => {
                        out.extend_from_slice(b"RFC822 ");
                        literal(out, raw);
                    }
                    FetchAttr::Rfc822Header | FetchAttr::Rfc822Text => {
                        let (label, text) = if *item == FetchAttr::Rfc822Header {
                            ("RFC822.HEADER ", SectionText::Header)
                        } else {
                            ("RFC822.TEXT ", SectionText::Text)
                        };
                        out.extend_from_slice(label.as_bytes());
                        let section = Section {
                            part: Vec::new(),
                            text: Some(text),
                        };
                        let bytes = structure
                            .as_ref()
                            .and_then(|s| mime::section(raw, s, &section).ok())
                            .unwrap_or_default();
                        literal(out, &bytes);
                    }
                    FetchAttr::Section {
                        section, partial, ..
                    } => {
                        out.extend_from_slice(b"BODY[");
                        section_label(out, section);
                        out.push(b']');
                        let data = structure.as_ref().map(|s| mime::section(raw, s, section));
                        match data {
                            Some(Ok(bytes)) => write_partial(out, &bytes, *partial, false),
                            _ => out.extend_from_slice(b" NIL"),
                        }
                    }
                    FetchAttr::Binary { part, partial, .. } => {
                        out.extend_from_slice(b"BINARY[");
                        out.extend_from_slice(part_label(part).as_bytes());
                        out.push(b']');
                        match structure.as_ref().map(|s| mime::binary(raw, s, part)) {
                            Some(Ok(bytes)) => write_partial(out, &bytes, *partial, true),
                            Some(Err(SectionError::UnknownEncoding)) => {
                                failure = Some(no(
                                    "[UNKNOWN-CTE] Cannot decode the part's Content-Transfer-Encoding",
                                ));
                                out.extend_from_slice(b" NIL");
                            }
                            _ => out.extend_from_slice(b" NIL"),
                        }
                    }
                    FetchAttr::BinarySize(part) => {
                        out.extend_from_slice(
                            format!("BINARY.SIZE[{}] ", part_label(part)).as_bytes(),
                        );
                        match structure.as_ref().map(|s| mime::binary(raw, s, part)) {
                            Some(Ok(bytes)) => {
                                out.extend_from_slice(bytes.len().to_string().as_bytes())
                            }
                            _ => out.extend_from_slice(b"NIL"),
                        }
                    }
                }
            }
            if seen_now.contains(&meta.uid) && !items.contains(&FetchAttr::Flags) {
                sep(out);
                out.extend_from_slice(b"FLAGS ");
                self.write_flags(out, &meta, rev2);
            }
            if condstore && !items.contains(&FetchAttr::ModSeq) {
                sep(out);
                out.extend_from_slice(format!("MODSEQ ({})", meta.modseq).as_bytes());
            }
            out.extend_from_slice(b")\r\n");
            if io.out.len() > 256 * 1024 {
                io.flush().await.map_err(|_| Done {
                    flow: Flow::Close,
                    ..bad("Connection lost")
                })?;
            }
        }
        match failure {
            Some(f) => Err(f),
            None => Ok(ok("FETCH completed")),
        }
    }
}

fn part_label(part: &[u32]) -> String {
    part.iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(".")
}

/// The section spec as the response names it (RFC 9051 §7.5.2).
fn section_label(out: &mut Vec<u8>, s: &Section) {
    let mut label = part_label(&s.part);
    let text = match &s.text {
        None => None,
        Some(SectionText::Header) => Some("HEADER".to_string()),
        Some(SectionText::Text) => Some("TEXT".to_string()),
        Some(SectionText::Mime) => Some("MIME".to_string()),
        Some(SectionText::HeaderFields { not, fields }) => {
            let mut v = Vec::new();
            for (i, f) in fields.iter().enumerate() {
                if i > 0 {
                    v.push(b' ');
                }
                string(&mut v, f.as_bytes());
            }
            Some(format!(
                "HEADER.FIELDS{} ({})",
                if *not { ".NOT" } else { "" },
                String::from_utf8_lossy(&v)
            ))
        }
    };
    if let Some(t) = text {
        if !label.is_empty() {
            label.push('.');
        }
        label.push_str(&t);
    }
    out.extend_from_slice(label.as_bytes());
}

/// ` {n}…` or, for a partial fetch, `<origin> {n}…`; BINARY data with NUL uses literal8.
fn write_partial(out: &mut Vec<u8>, bytes: &[u8], partial: Option<(u32, u32)>, binary: bool) {
    let data = match partial {
        Some((offset, length)) => {
            out.extend_from_slice(format!("<{offset}>").as_bytes());
            let start = (offset as usize).min(bytes.len());
            let end = start.saturating_add(length as usize).min(bytes.len());
            &bytes[start..end]
        }
        None => bytes,
    };
    out.push(b' ');
    if binary && data.contains(&0) {
        out.push(b'~');
    }
    literal(out, data);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn section_labels_and_partial_data() {
        let mut out = Vec::new();
        section_label(
            &mut out,
            &Section {
                part: vec![1, 2],
                text: Some(SectionText::HeaderFields {
                    not: true,
                    fields: vec!["From".into(), "X Y".into()],
                }),
            },
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "1.2.HEADER.FIELDS.NOT (\"From\" \"X Y\")"
        );
        let mut out = Vec::new();
        write_partial(&mut out, b"0123456789", Some((8, 5)), false);
        assert_eq!(out, b"<8> {2}\r\n89");
        let mut out = Vec::new();
        write_partial(&mut out, b"a\0b", None, true);
        assert_eq!(out, b" ~{3}\r\na\0b");
    }
}
