//! The MX's view of the store: recipient look-ups and durable delivery, as the `smtp` crate's
//! `MailDrop` asks for them. Wiring only: what a verdict means is the session's business.

use std::sync::Arc;

use kurier_smtp::{Delivery, MailDrop, Message, Verdict};
use kurier_store::{Recipient, Store, StoreError};

pub struct StoreMailDrop(pub Arc<dyn Store>);

impl MailDrop for StoreMailDrop {
    async fn check_recipient(&self, address: &str) -> Verdict {
        match self.0.resolve(address).await {
            Ok(Recipient::Local(accounts)) => {
                for a in &accounts {
                    // A full mailbox is refused at RCPT time (452 4.2.2), not after DATA.
                    if let (Some(q), Ok(used)) = (a.quota, self.0.usage(a.id).await)
                        && used >= q
                    {
                        return Verdict::OverQuota;
                    }
                }
                Verdict::Accept(accounts.iter().map(|a| a.id).collect())
            }
            Ok(Recipient::Unknown) => Verdict::Unknown,
            Ok(Recipient::NotHosted) => Verdict::NotHosted,
            Err(e) => {
                tracing::warn!(error = %e, "recipient look-up failed");
                Verdict::TempFail
            }
        }
    }

    async fn deliver(&self, m: &Message) -> Delivery {
        match self.0.deliver(&m.accounts, &m.body).await {
            Ok(_) => Delivery::Stored,
            Err(StoreError::QuotaExceeded { address, .. }) => Delivery::OverQuota(address),
            Err(e) => {
                tracing::error!(id = %m.id, error = %e, "storing a message failed");
                Delivery::TempFail
            }
        }
    }
}
