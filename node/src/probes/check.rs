//! One probe of a container as the prober runs it: what to do and when, and how consecutive
//! results add up to a verdict.

use std::time::Duration;

use k8s_openapi::api::core::v1::{HTTPGetAction, Probe, TCPSocketAction};

/// What a probe does on each attempt.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    Exec(Vec<String>),
    HttpGet(HTTPGetAction),
    TcpSocket(TCPSocketAction),
    Grpc,
    /// Rejected by validation; kept so that a probe without a handler errors instead of passing.
    Missing,
}

/// A probe with its timing in durations (the API counts in seconds; tests use milliseconds).
#[derive(Clone, Debug, PartialEq)]
pub struct Check {
    pub action: Action,
    pub initial_delay: Duration,
    pub period: Duration,
    pub timeout: Duration,
    pub success_threshold: u32,
    pub failure_threshold: u32,
    /// The probe's own `terminationGracePeriodSeconds`, used when it kills the container.
    pub grace: Option<Duration>,
}

fn seconds(value: Option<i32>, default: u64) -> Duration {
    Duration::from_secs(value.and_then(|v| u64::try_from(v).ok()).unwrap_or(default))
}

fn count(value: Option<i32>, default: u32) -> u32 {
    value
        .and_then(|v| u32::try_from(v).ok())
        .filter(|v| *v > 0)
        .unwrap_or(default)
}

impl Check {
    /// The probe as the API gives it; missing fields take the API defaults (normally already
    /// filled in by defaulting).
    pub fn from_probe(probe: &Probe) -> Self {
        let action = if let Some(exec) = &probe.exec {
            Action::Exec(exec.command.clone().unwrap_or_default())
        } else if let Some(http) = &probe.http_get {
            Action::HttpGet(http.clone())
        } else if let Some(tcp) = &probe.tcp_socket {
            Action::TcpSocket(tcp.clone())
        } else if probe.grpc.is_some() {
            Action::Grpc
        } else {
            Action::Missing
        };
        Self {
            action,
            initial_delay: seconds(probe.initial_delay_seconds, 0),
            // A zero period would spin: the API's minimum is one second.
            period: seconds(probe.period_seconds, 10).max(Duration::from_secs(1)),
            timeout: seconds(probe.timeout_seconds, 1).max(Duration::from_secs(1)),
            success_threshold: count(probe.success_threshold, 1),
            failure_threshold: count(probe.failure_threshold, 3),
            grace: probe
                .termination_grace_period_seconds
                .and_then(|s| u64::try_from(s).ok())
                .map(Duration::from_secs),
        }
    }
}

/// Consecutive equal results; a result counts once it repeats as often as its threshold says.
#[derive(Debug, Default)]
pub struct Tally {
    last: Option<bool>,
    run: u32,
}

impl Tally {
    /// Adds one result; returns it when it has now reached its threshold.
    pub fn observe(&mut self, success: bool, check: &Check) -> Option<bool> {
        if self.last == Some(success) {
            self.run = self.run.saturating_add(1);
        } else {
            self.last = Some(success);
            self.run = 1;
        }
        let threshold = if success {
            check.success_threshold
        } else {
            check.failure_threshold
        };
        (self.run >= threshold).then_some(success)
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{ExecAction, GRPCAction};

    use super::*;

    #[test]
    fn defaults_fill_what_the_probe_leaves_out() {
        let probe = Probe {
            exec: Some(ExecAction {
                command: Some(vec!["true".into()]),
            }),
            period_seconds: Some(0),
            termination_grace_period_seconds: Some(5),
            ..Probe::default()
        };
        let check = Check::from_probe(&probe);
        assert_eq!(check.action, Action::Exec(vec!["true".into()]));
        assert_eq!(check.initial_delay, Duration::ZERO);
        assert_eq!(check.period, Duration::from_secs(1));
        assert_eq!(check.timeout, Duration::from_secs(1));
        assert_eq!((check.success_threshold, check.failure_threshold), (1, 3));
        assert_eq!(check.grace, Some(Duration::from_secs(5)));
        let grpc = Probe {
            grpc: Some(GRPCAction::default()),
            ..Probe::default()
        };
        assert_eq!(Check::from_probe(&grpc).action, Action::Grpc);
        assert_eq!(Check::from_probe(&Probe::default()).action, Action::Missing);
    }

    #[test]
    fn a_result_counts_after_its_threshold_of_repeats() {
        let check = Check {
            success_threshold: 2,
            failure_threshold: 3,
            ..Check::from_probe(&Probe::default())
        };
        let mut tally = Tally::default();
        let seen: Vec<_> = [true, true, false, false, true, false, false, false, false]
            .into_iter()
            .map(|r| tally.observe(r, &check))
            .collect();
        assert_eq!(
            seen,
            vec![
                None,
                Some(true),
                None,
                None,
                None,
                None,
                None,
                Some(false),
                Some(false)
            ]
        );
    }
}
