//! What the delivery tests share: a connector to a test MX on loopback, and one message.

use std::sync::Arc;
use std::time::Duration;

use kurier_delivery::attempt::{Connector, Item};
use kurier_smtp::client::Envelope;

/// A message from a@kurier.test to `to`.
pub fn item(to: &str, body: &[u8]) -> Item {
    Item {
        envelope: Envelope {
            from: "a@kurier.test".into(),
            recipients: vec![(to.into(), None)],
            require_tls: false,
            dsn: None,
        },
        body: Arc::new(body.to_vec()),
    }
}

/// Our side of a connection to a test MX on `port`, with `timeout` for every step.
pub fn connector(port: u16, timeout: Duration) -> Connector {
    Connector {
        tls: kurier_tls::ClientTls::new(None).unwrap(),
        helo: "mx.kurier.test".into(),
        port,
        timeout,
        data_timeout: timeout,
        revocation: None,
        source: Default::default(),
    }
}
