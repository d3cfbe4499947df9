//! `kurier serve --dev`: a working server with no configuration at all.

use std::path::Path;

use anyhow::Context;
use kurier_config::{Config, DEV_HOSTNAME, dev_ports};
use kurier_tls::dev_ca;

use crate::DevArgs;

/// Host names the dev certificate carries.
pub const DEV_CERT_NAMES: &[&str] = &["localhost", DEV_HOSTNAME];

/// Creates the data folder and the dev certificates; returns the dev configuration and whether
/// the certificates were made just now.
pub fn prepare(args: &DevArgs) -> anyhow::Result<(Config, bool)> {
    std::fs::create_dir_all(&args.data)
        .with_context(|| format!("cannot create the data folder {}", args.data.display()))?;
    let certs = dev_ca::ensure(&args.data, DEV_CERT_NAMES).with_context(|| {
        format!(
            "cannot create the dev certificates in {}",
            args.data.display()
        )
    })?;
    Ok((
        Config::dev(args.data.clone(), args.listen_ip),
        certs.created,
    ))
}

/// What a developer needs to connect, printed once everything listens.
pub fn banner(config: &Config, data: &Path) -> String {
    let ca = data.join(dev_ca::CA_CERT_FILE);
    let https = config.web.listen[0].0;
    let curl = if https.ip().is_loopback() && https.ip().to_string() == "127.0.0.1" {
        format!(
            "curl --cacert {} https://localhost:{}/",
            ca.display(),
            https.port()
        )
    } else {
        format!(
            "curl --cacert {} --resolve localhost:{port}:{ip} https://localhost:{port}/",
            ca.display(),
            port = https.port(),
            ip = https.ip()
        )
    };
    let pending = [
        ("SMTP (MX)", dev_ports::SMTP),
        ("submissions", dev_ports::SUBMISSIONS),
        ("submission", dev_ports::SUBMISSION),
        ("IMAPS", dev_ports::IMAPS),
        ("IMAP", dev_ports::IMAP),
        ("POP3S", dev_ports::POP3S),
        ("POP3", dev_ports::POP3),
    ]
    .iter()
    .map(|(name, port)| format!("{name} {port}"))
    .collect::<Vec<_>>()
    .join(", ");
    format!(
        "Kurier {version} development server ({host})\n\
         \x20 data folder    {data}\n\
         \x20 CA to trust    {ca}   (made for this data folder only)\n\
         \x20 HTTPS          https://{https}/   try: {curl}\n\
         \x20 not yet in this build: {pending}\n\
         ready. Stop with Ctrl-C.",
        version = env!("CARGO_PKG_VERSION"),
        host = config.server.hostname,
        data = data.display(),
        ca = ca.display(),
    )
}
