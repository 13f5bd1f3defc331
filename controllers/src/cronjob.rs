//! The CronJob controller: creates a Job at each scheduled time, honours the concurrency
//! policy, suspension and starting deadline, trims finished Jobs to the history limits and
//! keeps `status.active`, `lastScheduleTime` and `lastSuccessfulTime`.

pub mod plan;
pub mod schedule;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, ListParams, PostParams, PropagationPolicy};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use rkube_client::events::{EventType, Recorder};

use crate::{api_status, owned_pods, record};
use plan::Start;
use schedule::Schedule;

/// What time it is, to the controller; tests move it forward instead of waiting.
pub type Clock = Arc<dyn Fn() -> Timestamp + Send + Sync>;

#[derive(Clone)]
pub struct CronJobOptions {
    pub clock: Clock,
    /// The longest the controller sleeps before looking at a CronJob again, so a clock that
    /// jumps (or a test clock) is noticed.
    pub max_wait: Duration,
}

impl Default for CronJobOptions {
    fn default() -> Self {
        CronJobOptions {
            clock: Arc::new(Timestamp::now),
            max_wait: Duration::from_secs(60),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CronJobError {
    #[error("reading cronjob {cronjob}: {source}")]
    Get {
        cronjob: String,
        #[source]
        source: kube::Error,
    },
    #[error("listing jobs of cronjob {cronjob}: {source}")]
    ListJobs {
        cronjob: String,
        #[source]
        source: kube::Error,
    },
    #[error("creating job {job} for cronjob {cronjob}: {source}")]
    CreateJob {
        cronjob: String,
        job: String,
        #[source]
        source: kube::Error,
    },
    #[error("deleting job {job} of cronjob {cronjob}: {source}")]
    DeleteJob {
        cronjob: String,
        job: String,
        #[source]
        source: kube::Error,
    },
    #[error("writing status of cronjob {cronjob}: {source}")]
    Status {
        cronjob: String,
        #[source]
        source: kube::Error,
    },
}

struct Context {
    client: Client,
    recorder: Recorder,
    options: CronJobOptions,
}

/// Runs the CronJob controller on the real clock until its watches end.
pub async fn run(client: Client) -> Result<(), CronJobError> {
    run_with(client, CronJobOptions::default()).await
}

pub async fn run_with(client: Client, options: CronJobOptions) -> Result<(), CronJobError> {
    let context = Arc::new(Context {
        recorder: Recorder::new(client.clone(), "cronjob-controller"),
        client: client.clone(),
        options,
    });
    Controller::new(
        Api::<CronJob>::all(client.clone()),
        watcher::Config::default(),
    )
    .watches(
        Api::<Job>::all(client),
        watcher::Config::default(),
        |child| owned_pods::controller_of::<CronJob, _>(&child),
    )
    .run(reconcile, retry, context)
    .for_each(|result| async move {
        if let Err(err) = result {
            tracing::debug!(error = %err, "cronjob reconcile failed");
        }
    })
    .await;
    Ok(())
}

fn retry(_cronjob: Arc<CronJob>, err: &CronJobError, _context: Arc<Context>) -> Action {
    tracing::info!(error = %err, "cronjob reconcile failed; retrying");
    Action::requeue(Duration::from_millis(500))
}

async fn reconcile(cached: Arc<CronJob>, context: Arc<Context>) -> Result<Action, CronJobError> {
    let namespace = cached.namespace().unwrap_or_default();
    let name = cached.name_any();
    let key = format!("{namespace}/{name}");
    let cronjobs: Api<CronJob> = Api::namespaced(context.client.clone(), &namespace);
    let fresh = cronjobs.get_opt(&name).await;
    let Some(cronjob) = fresh.map_err(|source| CronJobError::Get {
        cronjob: key.clone(),
        source,
    })?
    else {
        return Ok(Action::await_change());
    };
    if cronjob.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let jobs_api: Api<Job> = Api::namespaced(context.client.clone(), &namespace);
    let uid = cronjob.uid().unwrap_or_default();
    let listed = jobs_api
        .list(&ListParams::default())
        .await
        .map_err(|source| CronJobError::ListJobs {
            cronjob: key.clone(),
            source,
        })?;
    let mut jobs: Vec<Job> = listed
        .items
        .into_iter()
        .filter(|j| {
            j.owner_references()
                .iter()
                .any(|r| r.controller == Some(true) && r.uid == uid)
        })
        .collect();
    let now = (context.options.clock)();
    let spec = cronjob.spec.clone().unwrap_or_default();
    let mut status = cronjob.status.clone().unwrap_or_default();

    let doomed = plan::beyond_history(
        &jobs,
        spec.successful_jobs_history_limit.unwrap_or(3),
        spec.failed_jobs_history_limit.unwrap_or(1),
    );
    for job in &doomed {
        delete_job(&context, &jobs_api, &cronjob, &key, job).await?;
    }
    jobs.retain(|j| !doomed.contains(&j.name_any()));
    status.last_successful_time =
        plan::last_successful(&jobs, status.last_successful_time.map(|t| t.0)).map(Time);
    let mut active: Vec<Job> = jobs
        .into_iter()
        .filter(|j| plan::finished(j).is_none())
        .collect();

    let mut requeue = Action::await_change();
    if spec.suspend != Some(true) {
        match parse(&spec.schedule, spec.time_zone.as_deref()) {
            Err(message) => {
                record::event(
                    &context.recorder,
                    &cronjob,
                    EventType::Warning,
                    "UnparseableSchedule",
                    &message,
                )
                .await;
            }
            Ok(schedule) => {
                let earliest = status
                    .last_schedule_time
                    .as_ref()
                    .or(cronjob.metadata.creation_timestamp.as_ref())
                    .map_or(now, |t| t.0);
                let due = plan::due(&schedule, earliest, now, spec.starting_deadline_seconds);
                if due.missed > 100 {
                    record::event(
                        &context.recorder,
                        &cronjob,
                        EventType::Warning,
                        "TooManyMissedTimes",
                        "too many missed start times; set or decrease .spec.startingDeadlineSeconds or check clock skew",
                    )
                    .await;
                }
                if let Some(scheduled) = due.scheduled
                    && start(
                        &context,
                        &jobs_api,
                        &cronjob,
                        &key,
                        scheduled,
                        &mut active,
                        now,
                    )
                    .await?
                {
                    status.last_schedule_time = Some(Time(scheduled));
                }
                requeue = Action::requeue(
                    plan::wait(now, due.next, context.options.max_wait)
                        + Duration::from_millis(100),
                );
            }
        }
    }

    active.sort_by_key(|j| j.name_any());
    let references: Vec<_> = active.iter().map(plan::reference).collect();
    status.active = (!references.is_empty()).then_some(references);
    if cronjob.status.as_ref() != Some(&status) {
        let mut updated = cronjob.clone();
        updated.status = Some(status);
        cronjobs
            .replace_status(&name, &PostParams::default(), &updated)
            .await
            .map_err(|source| CronJobError::Status {
                cronjob: key,
                source,
            })?;
    }
    Ok(requeue)
}

/// Only UTC is known here: the schedule is read in UTC when no time zone is given.
fn parse(text: &str, time_zone: Option<&str>) -> Result<Schedule, String> {
    if let Some(zone) = time_zone
        && !matches!(zone, "UTC" | "Etc/UTC" | "Etc/GMT" | "GMT")
    {
        return Err(format!(
            "unsupported time zone {zone:?}: only UTC is supported"
        ));
    }
    text.parse()
        .map_err(|err: schedule::ScheduleError| format!("unparseable schedule {text:?}: {err}"))
}

/// Acts on a due scheduled time; true when it counts as handled (a Job runs for it, or it
/// was missed for good).
async fn start(
    context: &Context,
    jobs_api: &Api<Job>,
    cronjob: &CronJob,
    key: &str,
    scheduled: Timestamp,
    active: &mut Vec<Job>,
    now: Timestamp,
) -> Result<bool, CronJobError> {
    match plan::start(cronjob, scheduled, active.len(), now) {
        Start::TooLate => {
            let message = format!("Missed scheduled time to start a job: {scheduled}");
            record::event(
                &context.recorder,
                cronjob,
                EventType::Warning,
                "MissSchedule",
                &message,
            )
            .await;
            return Ok(true);
        }
        Start::Forbidden => {
            let message = "Not starting job because prior execution is running and concurrency policy is Forbid";
            record::event(
                &context.recorder,
                cronjob,
                EventType::Normal,
                "JobAlreadyActive",
                message,
            )
            .await;
            return Ok(false);
        }
        Start::Replacing => {
            for job in active.drain(..) {
                delete_job(context, jobs_api, cronjob, key, &job.name_any()).await?;
            }
        }
        Start::Now => {}
    }
    let job = plan::job_for(cronjob, scheduled);
    let job_name = job.name_any();
    match jobs_api.create(&PostParams::default(), &job).await {
        Ok(created) => {
            let message = format!("Created job {job_name}");
            record::event(
                &context.recorder,
                cronjob,
                EventType::Normal,
                "SuccessfulCreate",
                &message,
            )
            .await;
            active.push(created);
        }
        // An earlier attempt made it; the name is per scheduled time.
        Err(err) if api_status::has_code(&err, 409) => {}
        Err(source) => {
            return Err(CronJobError::CreateJob {
                cronjob: key.to_string(),
                job: job_name,
                source,
            });
        }
    }
    Ok(true)
}

async fn delete_job(
    context: &Context,
    jobs_api: &Api<Job>,
    cronjob: &CronJob,
    key: &str,
    job: &str,
) -> Result<(), CronJobError> {
    let params = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Background),
        ..DeleteParams::default()
    };
    let deleted = jobs_api.delete(job, &params).await;
    api_status::ok_or_code(deleted, &[404]).map_err(|source| CronJobError::DeleteJob {
        cronjob: key.to_string(),
        job: job.to_string(),
        source,
    })?;
    let message = format!("Deleted job {job}");
    record::event(
        &context.recorder,
        cronjob,
        EventType::Normal,
        "SuccessfulDelete",
        &message,
    )
    .await;
    Ok(())
}
