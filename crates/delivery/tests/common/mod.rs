//! What the delivery tests share: a connector to a test MX on loopback.

use std::time::Duration;

use kurier_delivery::attempt::Connector;

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
