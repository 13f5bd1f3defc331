//! What a CronJob does now, decided from its schedule, its Jobs and the time.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::ResourceExt;
use kube::api::ObjectMeta;

use super::schedule::Schedule;

/// The annotation Kubernetes puts on a Job with the time it was scheduled for.
pub const SCHEDULED_TIMESTAMP_ANNOTATION: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";

/// Where the schedule stands at `now`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    /// The latest scheduled time not yet run, if one has passed.
    pub scheduled: Option<Timestamp>,
    /// How many scheduled times passed without a run (the latest included).
    pub missed: usize,
    /// The first scheduled time after `now`.
    pub next: Option<Timestamp>,
}

/// Scheduled times in (`earliest`, `now`]: `earliest` is the last scheduled run (or the
/// CronJob's creation); with a starting deadline, older times no longer count.
pub fn due(
    schedule: &Schedule,
    earliest: Timestamp,
    now: Timestamp,
    starting_deadline_seconds: Option<i64>,
) -> Due {
    let earliest = match starting_deadline_seconds {
        Some(deadline) => earliest.max(now - SignedDuration::from_secs(deadline.max(0))),
        None => earliest,
    };
    let mut scheduled = None;
    let mut missed = 0;
    let mut cursor = earliest;
    loop {
        match schedule.next_after(cursor) {
            Some(t) if t <= now => {
                scheduled = Some(t);
                missed += 1;
                cursor = t;
            }
            next => {
                return Due {
                    scheduled,
                    missed,
                    next,
                };
            }
        }
    }
}

/// `<cronjob>-<scheduled time in minutes since the epoch>`, the name Kubernetes gives, so a
/// second attempt at the same time finds the Job already there.
pub fn job_name(cronjob: &str, scheduled: Timestamp) -> String {
    format!("{cronjob}-{}", scheduled.as_second().div_euclid(60))
}

/// The Job for one scheduled run.
pub fn job_for(cronjob: &CronJob, scheduled: Timestamp) -> Job {
    let template = cronjob
        .spec
        .as_ref()
        .map(|s| s.job_template.clone())
        .unwrap_or_default();
    let template_meta = template.metadata.unwrap_or_default();
    let mut annotations = template_meta.annotations.unwrap_or_default();
    annotations.insert(
        SCHEDULED_TIMESTAMP_ANNOTATION.to_string(),
        scheduled.to_string(),
    );
    Job {
        metadata: ObjectMeta {
            name: Some(job_name(&cronjob.name_any(), scheduled)),
            namespace: cronjob.namespace(),
            labels: template_meta.labels,
            annotations: Some(annotations),
            owner_references: crate::owned_pods::controller_ref(cronjob).map(|r| vec![r]),
            ..ObjectMeta::default()
        },
        spec: template.spec,
        status: None,
    }
}

/// "Complete" or "Failed" once the Job has finished.
pub fn finished(job: &Job) -> Option<&'static str> {
    let conditions = job.status.as_ref()?.conditions.as_ref()?;
    ["Complete", "Failed"].into_iter().find(|kind| {
        conditions
            .iter()
            .any(|c| c.type_ == *kind && c.status == "True")
    })
}

pub fn reference(job: &Job) -> ObjectReference {
    ObjectReference {
        api_version: Some("batch/v1".into()),
        kind: Some("Job".into()),
        name: job.metadata.name.clone(),
        namespace: job.metadata.namespace.clone(),
        uid: job.metadata.uid.clone(),
        resource_version: job.metadata.resource_version.clone(),
        ..ObjectReference::default()
    }
}

/// The latest completion time among `jobs` that completed, or `previous` if later.
pub fn last_successful(jobs: &[Job], previous: Option<Timestamp>) -> Option<Timestamp> {
    jobs.iter()
        .filter(|j| finished(j) == Some("Complete"))
        .filter_map(|j| j.status.as_ref()?.completion_time.as_ref().map(|t| t.0))
        .chain(previous)
        .max()
}

/// Names of finished Jobs beyond the history limits, oldest first.
pub fn beyond_history(jobs: &[Job], successful_limit: i32, failed_limit: i32) -> Vec<String> {
    let mut by_outcome: BTreeMap<&str, Vec<&Job>> = BTreeMap::new();
    for job in jobs {
        if let Some(kind) = finished(job) {
            by_outcome.entry(kind).or_default().push(job);
        }
    }
    let mut doomed = Vec::new();
    for (kind, mut jobs) in by_outcome {
        let limit = if kind == "Complete" {
            successful_limit
        } else {
            failed_limit
        };
        let keep = usize::try_from(limit).unwrap_or(0);
        jobs.sort_by_key(|j| {
            let started = j.status.as_ref().and_then(|s| s.start_time.as_ref());
            (
                started
                    .or(j.metadata.creation_timestamp.as_ref())
                    .map(|t| t.0),
                j.name_any(),
            )
        });
        let excess = jobs.len().saturating_sub(keep);
        doomed.extend(jobs.into_iter().take(excess).map(|j| j.name_any()));
    }
    doomed
}

/// What to do about a due scheduled time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    /// Start the Job.
    Now,
    /// Delete the running Jobs, then start (concurrencyPolicy Replace).
    Replacing,
    /// A Job is still running and concurrencyPolicy is Forbid.
    Forbidden,
    /// The starting deadline passed before the Job could start.
    TooLate,
}

pub fn start(cronjob: &CronJob, scheduled: Timestamp, active: usize, now: Timestamp) -> Start {
    let spec = cronjob.spec.clone().unwrap_or_default();
    if spec
        .starting_deadline_seconds
        .is_some_and(|d| scheduled + SignedDuration::from_secs(d.max(0)) < now)
    {
        return Start::TooLate;
    }
    match (spec.concurrency_policy.as_deref(), active) {
        (_, 0) => Start::Now,
        (Some("Forbid"), _) => Start::Forbidden,
        (Some("Replace"), _) => Start::Replacing,
        _ => Start::Now,
    }
}

/// How long until `next`, at most `cap`.
pub fn wait(now: Timestamp, next: Option<Timestamp>, cap: Duration) -> Duration {
    next.and_then(|t| Duration::try_from(t.duration_since(now)).ok())
        .map_or(cap, |d| d.min(cap))
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::batch::v1::{CronJobSpec, JobCondition, JobStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    use super::*;

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn every_minute() -> Schedule {
        "* * * * *".parse().unwrap()
    }

    #[test]
    fn due_finds_the_latest_missed_time() {
        let due = due(
            &every_minute(),
            at("2025-01-01T00:00:30Z"),
            at("2025-01-01T00:03:10Z"),
            None,
        );
        assert_eq!(due.scheduled, Some(at("2025-01-01T00:03:00Z")));
        assert_eq!(due.missed, 3);
        assert_eq!(due.next, Some(at("2025-01-01T00:04:00Z")));
    }

    #[test]
    fn nothing_due_before_the_first_time() {
        let due = due(
            &every_minute(),
            at("2025-01-01T00:00:30Z"),
            at("2025-01-01T00:00:59Z"),
            None,
        );
        assert_eq!(due.scheduled, None);
        assert_eq!(due.next, Some(at("2025-01-01T00:01:00Z")));
    }

    #[test]
    fn starting_deadline_limits_how_far_back_runs_count() {
        let hourly: Schedule = "@hourly".parse().unwrap();
        let now = at("2025-01-01T05:30:00Z");
        let long_ago = at("2024-12-31T00:00:00Z");
        assert_eq!(due(&hourly, long_ago, now, Some(60)).scheduled, None);
        let within = due(&hourly, long_ago, now, Some(3600));
        assert_eq!(within.scheduled, Some(at("2025-01-01T05:00:00Z")));
        assert_eq!(within.missed, 1);
    }

    fn cronjob(policy: &str, deadline: Option<i64>) -> CronJob {
        CronJob {
            metadata: ObjectMeta {
                name: Some("report".into()),
                namespace: Some("default".into()),
                uid: Some("u1".into()),
                ..ObjectMeta::default()
            },
            spec: Some(CronJobSpec {
                schedule: "* * * * *".into(),
                concurrency_policy: Some(policy.into()),
                starting_deadline_seconds: deadline,
                ..CronJobSpec::default()
            }),
            status: None,
        }
    }

    #[test]
    fn concurrency_policy_and_deadline_decide_the_start() {
        let scheduled = at("2025-01-01T00:01:00Z");
        let now = at("2025-01-01T00:01:20Z");
        assert_eq!(
            start(&cronjob("Allow", None), scheduled, 2, now),
            Start::Now
        );
        assert_eq!(
            start(&cronjob("Forbid", None), scheduled, 1, now),
            Start::Forbidden
        );
        assert_eq!(
            start(&cronjob("Forbid", None), scheduled, 0, now),
            Start::Now
        );
        assert_eq!(
            start(&cronjob("Replace", None), scheduled, 1, now),
            Start::Replacing
        );
        assert_eq!(
            start(&cronjob("Allow", Some(10)), scheduled, 0, now),
            Start::TooLate
        );
    }

    #[test]
    fn jobs_are_named_by_scheduled_minute_and_owned() {
        let scheduled = at("2025-01-01T00:01:00Z");
        let job = job_for(&cronjob("Allow", None), scheduled);
        assert_eq!(job.name_any(), format!("report-{}", 1_735_689_660 / 60));
        assert_eq!(
            job.annotations()[SCHEDULED_TIMESTAMP_ANNOTATION],
            "2025-01-01T00:01:00Z"
        );
        let owner = &job.owner_references()[0];
        assert_eq!((owner.kind.as_str(), owner.uid.as_str()), ("CronJob", "u1"));
    }

    fn finished_job(name: &str, kind: &str, start_minute: i64) -> Job {
        let time = Time(Timestamp::from_second(start_minute * 60).unwrap());
        Job {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..ObjectMeta::default()
            },
            status: Some(JobStatus {
                start_time: Some(time.clone()),
                completion_time: (kind == "Complete").then_some(time),
                conditions: Some(vec![JobCondition {
                    type_: kind.into(),
                    status: "True".into(),
                    ..JobCondition::default()
                }]),
                ..JobStatus::default()
            }),
            ..Job::default()
        }
    }

    #[test]
    fn history_keeps_the_newest_finished_jobs() {
        let jobs = [
            finished_job("ok-3", "Complete", 3),
            finished_job("ok-1", "Complete", 1),
            finished_job("ok-2", "Complete", 2),
            finished_job("bad-1", "Failed", 1),
            finished_job("bad-2", "Failed", 2),
            Job::default(),
        ];
        assert_eq!(beyond_history(&jobs, 2, 1), vec!["ok-1", "bad-1"]);
        assert_eq!(
            last_successful(&jobs, None),
            Timestamp::from_second(180).ok()
        );
    }

    #[test]
    fn wait_is_capped() {
        let now = at("2025-01-01T00:00:00Z");
        let cap = Duration::from_secs(60);
        assert_eq!(
            wait(now, Some(at("2025-01-01T00:00:10Z")), cap),
            Duration::from_secs(10)
        );
        assert_eq!(wait(now, Some(at("2025-01-01T03:00:00Z")), cap), cap);
        assert_eq!(wait(now, None, cap), cap);
    }
}
