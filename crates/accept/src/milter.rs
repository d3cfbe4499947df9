//! The milter stage: the operator's content filters (clamav-milter, OpenDKIM, OpenDMARC,
//! rspamd's proxy …) over the Sendmail milter protocol (kurier-milter), one after the other at
//! the end of DATA, each seeing what the one before left. What their verdicts mean here, as
//! Postfix has it: a 5xx reply → 554 5.7.1 with the filter's text, a 4xx reply or tempfail →
//! 451, discard → acknowledged and not stored (the operator's filter decided so; logged),
//! quarantine → the recipient's Junk folder (Kurier has no hold queue), header changes and a
//! new body → written into the message. A filter that cannot be reached, times out, closes the
//! connection mid-message or answers garbage gets its `default_action` (Postfix's
//! `milter_default_action`: tempfail unless the operator says otherwise), logged.
//!
//! Milters run on the whole message at end of DATA, so a filter's verdict at MAIL or RCPT
//! applies to the whole message.

use std::time::Duration;

use kurier_milter::{Changes, MilterAddress, Verdict};

/// What a filter that gives no usable answer means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultAction {
    Accept,
    TempFail,
    Reject,
}

/// One configured filter.
#[derive(Debug, Clone)]
pub struct Milter {
    pub name: String,
    pub address: MilterAddress,
    /// For the connection and each answer.
    pub timeout: Duration,
    pub default_action: DefaultAction,
}

/// What the stage decided for the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filtered {
    /// Deliver this message (`None`: unchanged), into Junk if `quarantine` says why.
    Deliver {
        message: Option<Vec<u8>>,
        quarantine: Option<String>,
    },
    /// 554 5.7.1 with this text.
    Reject(String),
    /// 451 with this text.
    Defer(String),
    /// Acknowledge and drop.
    Discard(String),
}

/// The text of a filter's reply without its leading enhanced status code (the session writes
/// its own).
pub fn reply_text(text: &str) -> String {
    let mut words = text.splitn(2, ' ');
    let first = words.next().unwrap_or("");
    let enhanced = first.split('.').count() == 3
        && first
            .split('.')
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    let rest = if enhanced {
        words.next().unwrap_or("")
    } else {
        text
    };
    let rest = rest.trim();
    if rest.is_empty() {
        "Message content rejected".into()
    } else {
        rest.to_string()
    }
}

/// The outcome of one filter that answered `verdict` with `changes`.
pub fn decide(name: &str, verdict: Verdict, changes: &Changes) -> Result<(), Filtered> {
    match verdict {
        Verdict::Deliver => Ok(()),
        Verdict::Reject { text, .. } => Err(Filtered::Reject(reply_text(&text))),
        Verdict::TempFail { text, .. } => Err(Filtered::Defer(reply_text(&text))),
        Verdict::Discard => Err(Filtered::Discard(format!("milter {name} said discard"))),
    }
    .inspect(|_| {
        if let Some(q) = &changes.quarantine {
            tracing::info!(milter = name, reason = %q, "milter quarantine: filed into Junk");
        }
    })
}

/// What a filter's `default_action` makes of a failure.
pub fn failed<T>(m: &Milter, why: &str) -> Result<Option<T>, Filtered> {
    match m.default_action {
        DefaultAction::Accept => {
            tracing::warn!(milter = %m.name, address = %m.address, error = why, "milter failed; accepted as if it had (milter default_action = \"accept\")");
            Ok(None)
        }
        DefaultAction::TempFail => {
            tracing::warn!(milter = %m.name, address = %m.address, error = why, "milter failed; deferred (milter default_action = \"tempfail\")");
            Err(Filtered::Defer(
                "Content filter unavailable, try again later".into(),
            ))
        }
        DefaultAction::Reject => {
            tracing::warn!(milter = %m.name, address = %m.address, error = why, "milter failed; rejected (milter default_action = \"reject\")");
            Err(Filtered::Reject("Content filter unavailable".into()))
        }
    }
}

/// Runs `message` through `milters` in order.
pub async fn run(
    milters: &[Milter],
    envelope: &kurier_milter::Envelope<'_>,
    message: &[u8],
) -> Filtered {
    let mut current: Option<Vec<u8>> = None;
    let mut quarantine = None;
    for m in milters {
        let body = current.as_deref().unwrap_or(message);
        let step = match kurier_milter::check(&m.address, m.timeout, envelope, body).await {
            Ok((verdict, changes)) => decide(&m.name, verdict, &changes).map(|()| {
                if changes.quarantine.is_some() {
                    quarantine = changes.quarantine.clone();
                }
                kurier_milter::apply(body, &changes)
            }),
            Err(why) => failed(m, &why),
        };
        match step {
            Ok(Some(changed)) => current = Some(changed),
            Ok(None) => {}
            Err(outcome) => {
                tracing::info!(milter = %m.name, id = envelope.queue_id, outcome = ?outcome, "milter verdict");
                return outcome;
            }
        }
    }
    Filtered::Deliver {
        message: current,
        quarantine,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filters_text_without_its_status_code() {
        assert_eq!(reply_text("5.7.1 Virus found: Eicar"), "Virus found: Eicar");
        assert_eq!(reply_text("Command rejected"), "Command rejected");
        assert_eq!(reply_text("5.7.1"), "Message content rejected");
        assert_eq!(reply_text("5.x.1 odd"), "5.x.1 odd");
    }

    #[test]
    fn verdicts_and_default_actions() {
        let none = Changes::default();
        assert_eq!(decide("a", Verdict::Deliver, &none), Ok(()));
        assert_eq!(
            decide(
                "a",
                Verdict::Reject {
                    code: 550,
                    text: "5.7.1 Virus found".into()
                },
                &none
            ),
            Err(Filtered::Reject("Virus found".into()))
        );
        assert!(matches!(
            decide("a", Verdict::Discard, &none),
            Err(Filtered::Discard(_))
        ));
        let m = |default_action| Milter {
            name: "x".into(),
            address: MilterAddress::Tcp("127.0.0.1:1".parse().expect("literal")),
            timeout: Duration::from_secs(1),
            default_action,
        };
        assert_eq!(failed::<()>(&m(DefaultAction::Accept), "gone"), Ok(None));
        assert!(matches!(
            failed::<()>(&m(DefaultAction::TempFail), "gone"),
            Err(Filtered::Defer(_))
        ));
        assert!(matches!(
            failed::<()>(&m(DefaultAction::Reject), "gone"),
            Err(Filtered::Reject(_))
        ));
    }
}
