//! The validator's health over time (TR-03108 DNS-1, DANE-7): the probe (`Resolver::probe`)
//! re-run periodically, its verdict published, each change of verdict logged once. Whoever
//! trusts DNSSEC (the outbound queue) holds mail while it fails, instead of losing DANE
//! silently when a resolver stops validating.

use std::time::Duration;

use tokio::sync::watch;

use crate::Resolver;

/// The last probe's verdict.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ValidatorState {
    /// Not probed yet: nothing may rely on DNSSEC.
    #[default]
    Unknown,
    /// The last probe passed; what it proved.
    Working(String),
    /// The last probe failed; why, and the fix.
    Failing(String),
}

impl ValidatorState {
    pub fn is_working(&self) -> bool {
        matches!(self, ValidatorState::Working(_))
    }
}

/// Probes every `interval` (every `min(interval, 30 s)` while failing) until `stop`.
pub async fn watch_validator(
    resolver: Resolver,
    interval: Duration,
    state: watch::Sender<ValidatorState>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let next = match resolver.probe().await {
            Ok(proof) => ValidatorState::Working(proof),
            Err(e) => ValidatorState::Failing(e.to_string()),
        };
        let changed = state.send_if_modified(|s| {
            let changed = std::mem::discriminant(s) != std::mem::discriminant(&next);
            *s = next.clone();
            changed
        });
        if changed {
            match &next {
                ValidatorState::Working(proof) => {
                    tracing::info!(validator = %resolver.validator(), "DNSSEC validation works: {proof}");
                }
                ValidatorState::Failing(why) => tracing::error!(
                    "DNSSEC validation fails, outbound delivery holds mail (it stays queued) until it works again: {why}"
                ),
                ValidatorState::Unknown => {}
            }
        }
        let wait = match next {
            ValidatorState::Working(_) => interval,
            _ => interval.min(Duration::from_secs(30)),
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed() => return,
        }
    }
}
