//! What a Job needs next, decided from the Job and its pods alone: which finished pods to
//! count, how many pods to create or delete, and the status to write.

use std::time::Duration;

use k8s_openapi::api::batch::v1::{Job, JobCondition, JobStatus, UncountedTerminatedPods};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::ResourceExt;

use crate::owned_pods;

/// Keeps a finished pod around until the Job has counted it.
pub const TRACKING_FINALIZER: &str = "batch.kubernetes.io/job-tracking";

/// Why a Job stops for good; reasons and messages are the ones Kubernetes writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Succeeded,
    BackoffLimitExceeded,
    DeadlineExceeded,
}

impl Outcome {
    /// The condition set as soon as the outcome is known, while pods may still run.
    fn target_type(self) -> &'static str {
        match self {
            Outcome::Succeeded => "SuccessCriteriaMet",
            _ => "FailureTarget",
        }
    }

    /// The condition set once no pod of the Job is left running.
    pub fn final_type(self) -> &'static str {
        match self {
            Outcome::Succeeded => "Complete",
            _ => "Failed",
        }
    }

    pub fn reason(self) -> &'static str {
        match self {
            Outcome::Succeeded => "CompletionsReached",
            Outcome::BackoffLimitExceeded => "BackoffLimitExceeded",
            Outcome::DeadlineExceeded => "DeadlineExceeded",
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            Outcome::Succeeded => "Reached expected number of succeeded pods",
            Outcome::BackoffLimitExceeded => "Job has reached the specified backoff limit",
            Outcome::DeadlineExceeded => "Job was active longer than specified deadline",
        }
    }

    fn from_condition(condition: &JobCondition) -> Option<Outcome> {
        if condition.status != "True" {
            return None;
        }
        match (condition.type_.as_str(), condition.reason.as_deref()) {
            ("SuccessCriteriaMet" | "Complete", _) => Some(Outcome::Succeeded),
            ("FailureTarget" | "Failed", Some("DeadlineExceeded")) => {
                Some(Outcome::DeadlineExceeded)
            }
            ("FailureTarget" | "Failed", _) => Some(Outcome::BackoffLimitExceeded),
            _ => None,
        }
    }
}

/// The next steps for an unfinished Job.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub status: JobStatus,
    pub create: usize,
    /// Names of pods to delete.
    pub delete: Vec<String>,
    /// Look again after this long even if nothing changes (the active deadline).
    pub requeue: Option<Duration>,
}

fn condition_true(job: &Job, kind: &str) -> bool {
    job.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == kind && c.status == "True"))
}

/// Complete or Failed: nothing more happens to the Job but its TTL.
pub fn is_finished(job: &Job) -> bool {
    condition_true(job, "Complete") || condition_true(job, "Failed")
}

/// When a finished Job finished.
pub fn finish_time(job: &Job) -> Option<Timestamp> {
    let status = job.status.as_ref()?;
    status.completion_time.as_ref().map(|t| t.0).or_else(|| {
        status
            .conditions
            .as_ref()?
            .iter()
            .find(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")
            .and_then(|c| c.last_transition_time.as_ref().map(|t| t.0))
    })
}

/// For a finished Job with `ttlSecondsAfterFinished`: how long until it is to be deleted
/// (zero when due).
pub fn ttl_remaining(job: &Job, now: Timestamp) -> Option<Duration> {
    let ttl = job.spec.as_ref()?.ttl_seconds_after_finished?;
    let expires = finish_time(job)? + SignedDuration::from_secs(i64::from(ttl.max(0)));
    Some(until(now, expires))
}

fn until(now: Timestamp, then: Timestamp) -> Duration {
    Duration::try_from(then.duration_since(now)).unwrap_or(Duration::ZERO)
}

fn replaces_terminating(job: &Job) -> bool {
    job.spec
        .as_ref()
        .and_then(|s| s.pod_replacement_policy.as_deref())
        != Some("Failed")
}

/// A pod that ended in failure, or (unless the Job only replaces Failed pods) is being
/// deleted before it succeeded: such pods may never reach a phase.
pub fn counts_as_failed(job: &Job, pod: &Pod) -> bool {
    let phase = owned_pods::phase(pod);
    phase == "Failed"
        || (replaces_terminating(job) && owned_pods::is_terminating(pod) && phase != "Succeeded")
}

fn has_tracking_finalizer(pod: &Pod) -> bool {
    pod.finalizers().iter().any(|f| f == TRACKING_FINALIZER)
}

/// Finished pods still carrying the tracking finalizer and not yet recorded as uncounted:
/// (succeeded uids, failed uids).
pub fn newly_finished(job: &Job, pods: &[Pod]) -> (Vec<String>, Vec<String>) {
    let uncounted = uncounted(job);
    let known = |uid: &String| {
        uncounted.succeeded.iter().flatten().any(|u| u == uid)
            || uncounted.failed.iter().flatten().any(|u| u == uid)
    };
    let mut succeeded = Vec::new();
    let mut failed = Vec::new();
    for pod in pods.iter().filter(|p| has_tracking_finalizer(p)) {
        let Some(uid) = pod.uid() else { continue };
        if known(&uid) {
            continue;
        }
        if owned_pods::phase(pod) == "Succeeded" {
            succeeded.push(uid);
        } else if counts_as_failed(job, pod) {
            failed.push(uid);
        }
    }
    (succeeded, failed)
}

pub fn uncounted(job: &Job) -> UncountedTerminatedPods {
    job.status
        .as_ref()
        .and_then(|s| s.uncounted_terminated_pods.clone())
        .unwrap_or_default()
}

/// Pods whose tracking finalizer may go: the ones recorded as uncounted.
pub fn releasable<'a>(job: &Job, pods: &'a [Pod]) -> Vec<&'a Pod> {
    let uncounted = uncounted(job);
    pods.iter()
        .filter(|p| has_tracking_finalizer(p))
        .filter(|p| {
            p.uid().is_some_and(|uid| {
                uncounted.succeeded.iter().flatten().any(|u| *u == uid)
                    || uncounted.failed.iter().flatten().any(|u| *u == uid)
            })
        })
        .collect()
}

/// Moves the uncounted pods into the succeeded/failed counts, once their finalizers are gone.
pub fn count_uncounted(status: &mut JobStatus) {
    let uncounted = status.uncounted_terminated_pods.take().unwrap_or_default();
    let len = |v: Option<Vec<String>>| i32::try_from(v.map_or(0, |v| v.len())).unwrap_or(i32::MAX);
    let succeeded = status.succeeded.unwrap_or(0) + len(uncounted.succeeded);
    let failed = status.failed.unwrap_or(0) + len(uncounted.failed);
    status.succeeded = (succeeded > 0).then_some(succeeded);
    status.failed = (failed > 0).then_some(failed);
    status.uncounted_terminated_pods = Some(UncountedTerminatedPods::default());
}

/// Sets a condition to True, keeping its transition time when it already was.
fn set_condition(conditions: &mut Vec<JobCondition>, kind: &str, outcome: Outcome, now: Timestamp) {
    if let Some(existing) = conditions.iter_mut().find(|c| c.type_ == kind) {
        if existing.status == "True" {
            return;
        }
        *existing = JobCondition::default();
        existing.type_ = kind.to_string();
    } else {
        conditions.push(JobCondition {
            type_: kind.to_string(),
            ..JobCondition::default()
        });
    }
    if let Some(c) = conditions.iter_mut().find(|c| c.type_ == kind) {
        c.status = "True".into();
        c.reason = Some(outcome.reason().into());
        c.message = Some(outcome.message().into());
        c.last_probe_time = Some(Time(now));
        c.last_transition_time = Some(Time(now));
    }
}

fn set_suspended(conditions: &mut Vec<JobCondition>, suspended: bool, now: Timestamp) {
    let status = if suspended { "True" } else { "False" };
    match conditions.iter_mut().find(|c| c.type_ == "Suspended") {
        Some(c) if c.status == status => {}
        Some(c) => {
            c.status = status.into();
            c.reason = Some(
                if suspended {
                    "JobSuspended"
                } else {
                    "JobResumed"
                }
                .into(),
            );
            c.message = Some(
                if suspended {
                    "Job suspended"
                } else {
                    "Job resumed"
                }
                .into(),
            );
            c.last_probe_time = Some(Time(now));
            c.last_transition_time = Some(Time(now));
        }
        None if suspended => conditions.push(JobCondition {
            type_: "Suspended".into(),
            status: "True".into(),
            reason: Some("JobSuspended".into()),
            message: Some("Job suspended".into()),
            last_probe_time: Some(Time(now)),
            last_transition_time: Some(Time(now)),
        }),
        None => {}
    }
}

/// The outcome already decided by a target condition, or the one the counts and clock decide.
fn outcome(job: &Job, status: &JobStatus, now: Timestamp) -> Option<Outcome> {
    let decided = status
        .conditions
        .iter()
        .flatten()
        .find_map(Outcome::from_condition);
    if decided.is_some() {
        return decided;
    }
    let spec = job.spec.clone().unwrap_or_default();
    let succeeded = status.succeeded.unwrap_or(0);
    let failed = status.failed.unwrap_or(0);
    if failed > spec.backoff_limit.unwrap_or(6) {
        return Some(Outcome::BackoffLimitExceeded);
    }
    if let (Some(deadline), Some(start)) = (spec.active_deadline_seconds, &status.start_time)
        && now >= start.0 + SignedDuration::from_secs(deadline)
    {
        return Some(Outcome::DeadlineExceeded);
    }
    let active = status.active.unwrap_or(0);
    let done = match spec.completions {
        Some(completions) => succeeded >= completions,
        // Without completions the first success ends the Job once the rest have stopped.
        None => succeeded > 0 && active == 0,
    };
    done.then_some(Outcome::Succeeded)
}

/// Pods to remove when more are active than wanted: not-ready ones first, then the newest.
fn excess(mut active: Vec<&Pod>, keep: usize) -> Vec<String> {
    active.sort_by_key(|p| {
        (
            owned_pods::is_ready(p),
            std::cmp::Reverse(p.creation_timestamp().map(|t| t.0)),
        )
    });
    let remove = active.len().saturating_sub(keep);
    active
        .into_iter()
        .take(remove)
        .map(|p| p.name_any())
        .collect()
}

/// Decides the next step of an unfinished Job whose finished pods are already counted in
/// its status.
pub fn plan(job: &Job, pods: &[Pod], now: Timestamp) -> Plan {
    let spec = job.spec.clone().unwrap_or_default();
    let mut status = job.status.clone().unwrap_or_default();
    let active: Vec<&Pod> = pods.iter().filter(|p| owned_pods::is_active(p)).collect();
    let terminating = pods
        .iter()
        .filter(|p| owned_pods::is_terminating(p) && !owned_pods::is_finished(p))
        .count();
    let suspended = spec.suspend == Some(true);
    if !suspended && status.start_time.is_none() {
        status.start_time = Some(Time(now));
    }
    let mut conditions = status.conditions.take().unwrap_or_default();
    set_suspended(&mut conditions, suspended, now);
    status.conditions = Some(conditions);
    status.active = Some(i32::try_from(active.len()).unwrap_or(i32::MAX));

    let mut create = 0;
    let mut requeue = None;
    let decided = outcome(job, &status, now);
    let delete;
    if let Some(decided) = decided {
        let conditions = status.conditions.get_or_insert_with(Vec::new);
        set_condition(conditions, decided.target_type(), decided, now);
        delete = active.iter().map(|p| p.name_any()).collect();
        // The final condition waits until every pod has stopped.
        if active.is_empty() && terminating == 0 {
            set_condition(conditions, decided.final_type(), decided, now);
            if decided == Outcome::Succeeded {
                status.completion_time = Some(Time(now));
            }
        }
    } else if suspended {
        delete = active.iter().map(|p| p.name_any()).collect();
    } else {
        let parallelism = usize::try_from(spec.parallelism.unwrap_or(1)).unwrap_or(0);
        let succeeded = usize::try_from(status.succeeded.unwrap_or(0)).unwrap_or(0);
        let wanted = match spec.completions {
            Some(completions) => {
                let remaining = usize::try_from(completions).unwrap_or(0);
                parallelism.min(remaining.saturating_sub(succeeded))
            }
            None if succeeded > 0 => 0,
            None => parallelism,
        };
        let occupying = active.len()
            + if replaces_terminating(job) {
                0
            } else {
                terminating
            };
        create = wanted.saturating_sub(occupying);
        delete = excess(active.clone(), wanted);
        if let (Some(deadline), Some(start)) = (spec.active_deadline_seconds, &status.start_time) {
            requeue = Some(until(now, start.0 + SignedDuration::from_secs(deadline)));
        }
    }
    let ready = active.iter().filter(|p| owned_pods::is_ready(p)).count();
    let after = (active.len() + create).saturating_sub(delete.len());
    status.active = (after > 0).then(|| i32::try_from(after).unwrap_or(i32::MAX));
    status.ready = Some(i32::try_from(ready).unwrap_or(i32::MAX));
    status.terminating = Some(i32::try_from(terminating + delete.len()).unwrap_or(i32::MAX));
    status
        .uncounted_terminated_pods
        .get_or_insert_with(UncountedTerminatedPods::default);
    Plan {
        status,
        create,
        delete,
        requeue,
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::batch::v1::JobSpec;
    use k8s_openapi::api::core::v1::{PodCondition, PodStatus};
    use kube::api::ObjectMeta;

    use super::*;

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + s).unwrap()
    }

    fn job(completions: Option<i32>, parallelism: i32) -> Job {
        Job {
            spec: Some(JobSpec {
                completions,
                parallelism: Some(parallelism),
                backoff_limit: Some(2),
                ..JobSpec::default()
            }),
            ..Job::default()
        }
    }

    fn pod(name: &str, phase: &str, ready: bool) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                uid: Some(format!("uid-{name}")),
                finalizers: Some(vec![TRACKING_FINALIZER.into()]),
                ..ObjectMeta::default()
            },
            status: Some(PodStatus {
                phase: Some(phase.into()),
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: if ready { "True" } else { "False" }.into(),
                    ..PodCondition::default()
                }]),
                ..PodStatus::default()
            }),
            ..Pod::default()
        }
    }

    fn has(status: &JobStatus, kind: &str) -> bool {
        status
            .conditions
            .iter()
            .flatten()
            .any(|c| c.type_ == kind && c.status == "True")
    }

    #[test]
    fn new_job_creates_up_to_parallelism() {
        let plan = plan(&job(Some(5), 3), &[], at(0));
        assert_eq!(plan.create, 3);
        assert_eq!(plan.status.active, Some(3));
        assert_eq!(plan.status.start_time, Some(Time(at(0))));
        assert_eq!(plan.status.ready, Some(0));
    }

    #[test]
    fn remaining_completions_cap_new_pods() {
        let mut j = job(Some(5), 3);
        j.status = Some(JobStatus {
            succeeded: Some(4),
            ..JobStatus::default()
        });
        let running = [pod("a", "Running", true)];
        let plan = plan(&j, &running, at(0));
        assert_eq!(plan.create, 0);
        assert_eq!(plan.status.ready, Some(1));
    }

    #[test]
    fn finished_pods_are_counted_once() {
        let mut j = job(Some(3), 3);
        let pods = [
            pod("a", "Succeeded", false),
            pod("b", "Failed", false),
            pod("c", "Running", false),
        ];
        let (succeeded, failed) = newly_finished(&j, &pods);
        assert_eq!(succeeded, vec!["uid-a"]);
        assert_eq!(failed, vec!["uid-b"]);
        j.status = Some(JobStatus {
            uncounted_terminated_pods: Some(UncountedTerminatedPods {
                succeeded: Some(succeeded),
                failed: Some(failed),
            }),
            ..JobStatus::default()
        });
        assert_eq!(newly_finished(&j, &pods), (vec![], vec![]));
        // A pod deleted before it succeeded counts as failed, unless only Failed pods count.
        let mut deleted = pod("d", "Running", true);
        deleted.metadata.deletion_timestamp = Some(Time(at(0)));
        assert!(counts_as_failed(&j, &deleted));
        let mut failed_only = j.clone();
        failed_only.spec.as_mut().unwrap().pod_replacement_policy = Some("Failed".into());
        assert!(!counts_as_failed(&failed_only, &deleted));
        assert_eq!(releasable(&j, &pods).len(), 2);
        let status = j.status.as_mut().unwrap();
        count_uncounted(status);
        assert_eq!((status.succeeded, status.failed), (Some(1), Some(1)));
        count_uncounted(status);
        assert_eq!((status.succeeded, status.failed), (Some(1), Some(1)));
    }

    #[test]
    fn completion_sets_success_then_complete() {
        let mut j = job(Some(2), 2);
        j.status = Some(JobStatus {
            succeeded: Some(2),
            start_time: Some(Time(at(0))),
            ..JobStatus::default()
        });
        let plan = plan(&j, &[pod("a", "Succeeded", false)], at(5));
        assert!(has(&plan.status, "SuccessCriteriaMet"));
        assert!(has(&plan.status, "Complete"));
        assert_eq!(plan.status.completion_time, Some(Time(at(5))));
        assert_eq!(plan.status.active, None);
    }

    #[test]
    fn backoff_limit_fails_the_job_after_its_pods_stop() {
        let mut j = job(Some(5), 2);
        j.status = Some(JobStatus {
            failed: Some(3),
            start_time: Some(Time(at(0))),
            ..JobStatus::default()
        });
        let running = [pod("a", "Running", true)];
        let first = plan(&j, &running, at(1));
        assert!(has(&first.status, "FailureTarget"));
        assert!(!has(&first.status, "Failed"));
        assert_eq!(first.delete, vec!["a"]);
        assert_eq!(first.create, 0);
        j.status = Some(first.status);
        let second = plan(&j, &[], at(2));
        let failed = second
            .status
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == "Failed")
            .unwrap();
        assert_eq!(failed.reason.as_deref(), Some("BackoffLimitExceeded"));
        assert!(is_finished(&Job {
            status: Some(second.status),
            ..j
        }));
    }

    #[test]
    fn active_deadline_fails_and_requeues_before() {
        let mut j = job(Some(1), 1);
        j.spec.as_mut().unwrap().active_deadline_seconds = Some(10);
        j.status = Some(JobStatus {
            start_time: Some(Time(at(0))),
            ..JobStatus::default()
        });
        let running = [pod("a", "Running", false)];
        let early = plan(&j, &running, at(4));
        assert_eq!(early.requeue, Some(Duration::from_secs(6)));
        let late = plan(&j, &running, at(10));
        let target = late
            .status
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == "FailureTarget");
        assert_eq!(target.unwrap().reason.as_deref(), Some("DeadlineExceeded"));
    }

    #[test]
    fn without_completions_the_first_success_ends_it() {
        let mut j = job(None, 2);
        j.status = Some(JobStatus {
            succeeded: Some(1),
            ..JobStatus::default()
        });
        let running = [pod("b", "Running", false)];
        let plan1 = plan(&j, &running, at(0));
        assert_eq!(plan1.create, 0);
        assert!(!has(&plan1.status, "Complete"));
        let plan2 = plan(&j, &[], at(0));
        assert!(has(&plan2.status, "Complete"));
    }

    #[test]
    fn lowered_parallelism_deletes_not_ready_first() {
        let j = job(Some(10), 1);
        let pods = [pod("ready", "Running", true), pod("slow", "Pending", false)];
        let plan = plan(&j, &pods, at(0));
        assert_eq!(plan.delete, vec!["slow"]);
    }

    #[test]
    fn suspended_job_deletes_pods_and_says_so() {
        let mut j = job(Some(1), 1);
        j.spec.as_mut().unwrap().suspend = Some(true);
        let plan = plan(&j, &[pod("a", "Running", false)], at(0));
        assert_eq!(plan.delete, vec!["a"]);
        assert!(has(&plan.status, "Suspended"));
        assert_eq!(plan.status.start_time, None);
    }

    #[test]
    fn ttl_counts_from_completion() {
        let mut j = job(Some(1), 1);
        j.spec.as_mut().unwrap().ttl_seconds_after_finished = Some(30);
        j.status = Some(JobStatus {
            completion_time: Some(Time(at(0))),
            ..JobStatus::default()
        });
        assert_eq!(ttl_remaining(&j, at(10)), Some(Duration::from_secs(20)));
        assert_eq!(ttl_remaining(&j, at(40)), Some(Duration::ZERO));
    }
}
