//! The final routing stage: where a message goes once it is accepted — mail to TLSRPT
//! addresses only is a report and goes to the report store (RFC 8460 §3: never bounced); other
//! local recipients get it in their mailboxes, remote ones (submission) go into the outbound
//! queue with their RFC 3461 requests typed; both in one transaction.

use kurier_smtp::Message;
use kurier_smtp::command::{MailParams, RcptParams};
use kurier_store::{DsnReturn, MessageDsn, NewQueueEntry, Notify, RecipientDsn};

/// Where an accepted message goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Routing {
    /// Only reports-only recipients: the report store is the durable place.
    ReportsOnly,
    /// Into these accounts' mailboxes, and the queue entry for the remote recipients.
    Store {
        local: Vec<i64>,
        queue: Option<NewQueueEntry>,
    },
}

/// The routing of `m`; `reports_intake` tells whether reports can be read here at all.
pub fn route(m: &Message, reports_intake: bool) -> Routing {
    if m.accounts.is_empty() && m.remote.is_empty() && reports_intake {
        return Routing::ReportsOnly;
    }
    let queue = (!m.remote.is_empty()).then(|| NewQueueEntry {
        sender: m.from.clone(),
        recipients: m
            .remote
            .iter()
            .map(|(to, p)| (to.clone(), recipient_dsn(p)))
            .collect(),
        require_tls: m.params.require_tls,
        dsn: message_dsn(&m.params),
    });
    Routing::Store {
        local: m.accounts.clone(),
        queue,
    }
}

/// RFC 3461 §4.1, §4.2 as the session parsed them.
pub fn recipient_dsn(p: &RcptParams) -> RecipientDsn {
    RecipientDsn {
        notify: p.notify.as_deref().map(Notify::from_rfc3461),
        orcpt: p.orcpt.clone(),
    }
}

/// RFC 3461 §4.3, §4.4 as the session parsed them.
pub fn message_dsn(p: &MailParams) -> MessageDsn {
    MessageDsn {
        ret: p.ret.as_deref().and_then(DsnReturn::parse),
        envid: p.envid.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(accounts: Vec<i64>, remote: &[&str]) -> Message {
        Message {
            id: "m1".into(),
            from: "a@kurier.test".into(),
            recipients: Vec::new(),
            accounts,
            remote: remote
                .iter()
                .map(|r| {
                    (
                        r.to_string(),
                        RcptParams {
                            notify: Some("SUCCESS,DELAY".into()),
                            orcpt: Some(format!("rfc822;{r}")),
                        },
                    )
                })
                .collect(),
            connection: kurier_smtp::ConnectionFacts {
                ip: std::net::Ipv4Addr::LOCALHOST.into(),
                helo: Some("client.kurier.test".into()),
                esmtp: true,
                tls: None,
                account: Some("a@kurier.test".into()),
            },
            params: MailParams {
                ret: Some("HDRS".into()),
                envid: Some("e1".into()),
                require_tls: true,
                ..MailParams::default()
            },
            body: b"x".to_vec(),
        }
    }

    #[test]
    fn reports_only_when_nobody_else_gets_it_and_reports_are_read_here() {
        assert_eq!(route(&message(vec![], &[]), true), Routing::ReportsOnly);
        assert!(matches!(
            route(&message(vec![], &[]), false),
            Routing::Store { queue: None, .. }
        ));
        assert!(matches!(
            route(&message(vec![7], &[]), true),
            Routing::Store { queue: None, .. }
        ));
    }

    #[test]
    fn remote_recipients_are_queued_with_their_dsn_requests_typed() {
        let Routing::Store { local, queue } = route(&message(vec![7], &["r@far.test"]), true)
        else {
            panic!()
        };
        assert_eq!(local, [7]);
        let q = queue.unwrap_or_else(|| panic!("queued"));
        assert!(q.require_tls);
        assert_eq!(q.dsn.ret, Some(DsnReturn::Headers));
        assert_eq!(q.dsn.envid.as_deref(), Some("e1"));
        let (to, dsn) = &q.recipients[0];
        assert_eq!(to, "r@far.test");
        assert_eq!(
            dsn.notify,
            Some(Notify {
                success: true,
                failure: false,
                delay: true
            })
        );
        assert_eq!(dsn.orcpt.as_deref(), Some("rfc822;r@far.test"));
    }
}
