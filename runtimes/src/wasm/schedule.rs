//! `limits.cpu` through epochs: a guest is interrupted at every epoch tick, yields to the async
//! executor (so a busy loop never starves its neighbours), and once it has used its quota of the
//! current period it sleeps until the next one, like the CFS bandwidth controller.

use std::time::{Duration, Instant};

/// Accounting period, the same as the kernel's default `cpu.cfs_period_us`.
const PERIOD: Duration = Duration::from_millis(100);

pub(crate) struct CpuShare {
    /// Guest time allowed per period; `None` when the limit is a full core or more.
    quota: Option<Duration>,
    tick: Duration,
    period_start: Instant,
    used: Duration,
    last_resume: Instant,
}

impl CpuShare {
    pub(crate) fn new(millicores: Option<u32>, tick: Duration, now: Instant) -> Self {
        let quota = millicores
            .map(|m| PERIOD * m.max(1) / 1000)
            .filter(|quota| *quota < PERIOD);
        Self {
            quota,
            tick,
            period_start: now,
            used: Duration::ZERO,
            last_resume: now,
        }
    }

    /// Called at each epoch deadline; returns how long the guest must pause, if at all.
    pub(crate) fn on_deadline(&mut self, now: Instant) -> Option<Duration> {
        let quota = self.quota?;
        // The guest ran since it last resumed, at most one tick: a deadline fires every tick
        // while it executes, so anything longer was time spent blocked in the host.
        let ran = now
            .saturating_duration_since(self.last_resume)
            .min(self.tick);
        if now >= self.period_start + PERIOD {
            self.period_start = now;
            self.used = Duration::ZERO;
        }
        self.used += ran;
        self.last_resume = now;
        if self.used < quota {
            return None;
        }
        let next_period = self.period_start + PERIOD;
        self.period_start = next_period;
        self.used = Duration::ZERO;
        self.last_resume = next_period;
        Some(next_period.saturating_duration_since(now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TICK: Duration = Duration::from_millis(2);

    /// Simulates a busy guest for one second and returns the time it was allowed to run.
    fn busy_second(millicores: Option<u32>) -> Duration {
        let start = Instant::now();
        let mut share = CpuShare::new(millicores, TICK, start);
        let mut now = start;
        let mut ran = Duration::ZERO;
        while now < start + Duration::from_secs(1) {
            now += TICK;
            ran += TICK;
            if let Some(pause) = share.on_deadline(now) {
                now += pause;
            }
        }
        ran
    }

    #[test]
    fn busy_guest_gets_its_share_of_a_core() {
        let quarter = busy_second(Some(250)).as_millis();
        assert!((230..=280).contains(&quarter), "250m ran {quarter} ms");
        let tenth = busy_second(Some(100)).as_millis();
        assert!((90..=120).contains(&tenth), "100m ran {tenth} ms");
    }

    #[test]
    fn a_core_or_no_limit_never_pauses() {
        assert_eq!(busy_second(None), busy_second(Some(1000)));
        assert!(busy_second(Some(2000)) >= Duration::from_secs(1));
    }

    #[test]
    fn time_blocked_in_the_host_is_not_counted() {
        let start = Instant::now();
        let mut share = CpuShare::new(Some(100), TICK, start);
        // Ten seconds asleep in the host, then one tick of work: well within the quota.
        assert_eq!(share.on_deadline(start + Duration::from_secs(10)), None);
    }
}
