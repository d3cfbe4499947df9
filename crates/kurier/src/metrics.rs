//! Counters for `/metrics` (Prometheus text format, loopback clients only): what monitoring needs
//! to alert on, starting with TLSRPT reports that show failed TLS sessions to us (TR-03108 RPT-3).

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use kurier_config::DnssecMode;
use kurier_dns::ValidatorState;
use tokio::sync::watch;

#[derive(Debug, Default)]
pub struct Metrics {
    pub tlsrpt_reports_received: AtomicU64,
    pub tlsrpt_reports_dropped: AtomicU64,
    pub tlsrpt_reports_with_failures: AtomicU64,
    pub tlsrpt_failed_sessions_reported: AtomicU64,
    /// The DNSSEC probe's verdict (set when outbound delivery starts).
    validator: OnceLock<(DnssecMode, watch::Receiver<ValidatorState>)>,
}

impl Metrics {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn watch_validator(&self, mode: DnssecMode, state: watch::Receiver<ValidatorState>) {
        let _ = self.validator.set((mode, state));
    }
}

impl kurier_accept::ReportEvents for Metrics {
    fn received(&self, failed: u64) {
        Metrics::add(&self.tlsrpt_reports_received, 1);
        Metrics::add(&self.tlsrpt_failed_sessions_reported, failed);
        if failed > 0 {
            Metrics::add(&self.tlsrpt_reports_with_failures, 1);
        }
    }

    fn dropped(&self) {
        Metrics::add(&self.tlsrpt_reports_dropped, 1);
    }
}

impl kurier_web::MetricsSource for Metrics {
    fn render(&self) -> String {
        let mut out = String::new();
        for (name, help, v) in [
            (
                "kurier_tlsrpt_reports_received_total",
                "TLSRPT reports about our domains, accepted (valid DKIM).",
                &self.tlsrpt_reports_received,
            ),
            (
                "kurier_tlsrpt_reports_dropped_total",
                "Mail to the TLSRPT address that was not a valid, signed report.",
                &self.tlsrpt_reports_dropped,
            ),
            (
                "kurier_tlsrpt_reports_with_failures_total",
                "Accepted reports that show failed TLS sessions to us.",
                &self.tlsrpt_reports_with_failures,
            ),
            (
                "kurier_tlsrpt_failed_sessions_reported_total",
                "Failed TLS sessions to us, summed over accepted reports.",
                &self.tlsrpt_failed_sessions_reported,
            ),
        ] {
            out.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}\n",
                v.load(Ordering::Relaxed)
            ));
        }
        if let Some((mode, state)) = self.validator.get() {
            let mode = match mode {
                DnssecMode::Validate => "validate",
                DnssecMode::TrustAd => "trust_ad",
                DnssecMode::Off => "off",
            };
            let working = u8::from(state.borrow().is_working());
            out.push_str(&format!(
                "# HELP kurier_dnssec_validator_working 1 while the DNSSEC probe passes; 0 while it fails or has not run (outbound delivery holds mail then).\n# TYPE kurier_dnssec_validator_working gauge\nkurier_dnssec_validator_working{{mode=\"{mode}\"}} {working}\n"
            ));
        }
        out
    }
}
