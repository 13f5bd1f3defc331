use crate::common;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use rkube_controllers::cronjob::{self, CronJobOptions};
use serde_json::json;

/// Marks a Job Complete, as the Job controller (not running here) would.
async fn complete(jobs: &Api<Job>, name: &str) {
    let now = Timestamp::now().to_string();
    let patch = json!({"status": {"completionTime": now, "startTime": now, "succeeded": 1,
        "conditions": [{"type": "Complete", "status": "True", "lastTransitionTime": now}]}});
    jobs.patch_status(name, &PatchParams::default(), &Patch::Merge(patch))
        .await
        .unwrap();
}

/// A clock that stands still at the test's start (so real time crossing a minute cannot
/// fire a schedule early) and moves only by `offset` seconds; returns the options, the
/// offset and the start in Unix seconds.
fn frozen_clock() -> (CronJobOptions, Arc<AtomicI64>, i64) {
    let base = Timestamp::now().as_second();
    let offset = Arc::new(AtomicI64::new(0));
    let clock_offset = offset.clone();
    let options = CronJobOptions {
        clock: Arc::new(move || {
            Timestamp::from_second(base + clock_offset.load(Ordering::SeqCst))
                .unwrap_or_else(|_| Timestamp::now())
        }),
        max_wait: Duration::from_millis(200),
    };
    (options, offset, base)
}

#[tokio::test]
async fn every_minute_cronjob_fires_on_the_test_clock() {
    let client = common::client().await;
    let (options, offset, base) = frozen_clock();
    tokio::spawn(cronjob::run_with(client.clone(), options));
    let cronjobs: Api<CronJob> = Api::namespaced(client.clone(), "default");
    let jobs: Api<Job> = Api::namespaced(client.clone(), "default");
    let spec: CronJob = serde_json::from_value(json!({
        "metadata": {"name": "tick"},
        "spec": {"schedule": "* * * * *", "successfulJobsHistoryLimit": 1,
                 "jobTemplate": {"metadata": {"labels": {"from": "tick"}},
                                 "spec": {"template": common::pod_template("Never")}}}
    }))
    .unwrap();
    let created = cronjobs
        .create(&PostParams::default(), &spec)
        .await
        .unwrap();
    let created_at = created.metadata.creation_timestamp.unwrap().0.as_second();

    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        jobs.list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );

    let first_minute = created_at / 60 + 1;
    offset.store(first_minute * 60 - base + 1, Ordering::SeqCst);
    let first = format!("tick-{first_minute}");
    let job = common::eventually("the first job", 10, || async {
        jobs.get_opt(&first).await.unwrap()
    })
    .await;
    assert_eq!(job.labels()["from"], "tick");
    assert_eq!(job.owner_references()[0].kind, "CronJob");

    // The next minute, with the first job still running: concurrencyPolicy Allow runs both.
    offset.fetch_add(60, Ordering::SeqCst);
    let second = format!("tick-{}", first_minute + 1);
    common::eventually("the second job", 10, || async {
        jobs.get_opt(&second).await.unwrap()
    })
    .await;
    let status = common::eventually("two active jobs", 10, || async {
        let status = cronjobs.get("tick").await.unwrap().status?;
        (status.active.as_ref()?.len() == 2).then_some(status)
    })
    .await;
    assert_eq!(
        status.last_schedule_time.unwrap().0.as_second(),
        (first_minute + 1) * 60
    );

    complete(&jobs, &first).await;
    complete(&jobs, &second).await;
    // History keeps one successful job: the older one goes.
    common::eventually("history trimmed to one job", 10, || async {
        let status = cronjobs.get("tick").await.unwrap().status?;
        let gone = jobs.get_opt(&first).await.unwrap().is_none();
        (gone && status.active.is_none() && status.last_successful_time.is_some()).then_some(())
    })
    .await;
    assert!(jobs.get_opt(&second).await.unwrap().is_some());
}

#[tokio::test]
async fn forbid_waits_for_the_running_job() {
    let client = common::client().await;
    let (options, offset, base) = frozen_clock();
    tokio::spawn(cronjob::run_with(client.clone(), options));
    let cronjobs: Api<CronJob> = Api::namespaced(client.clone(), "default");
    let jobs: Api<Job> = Api::namespaced(client.clone(), "default");
    let spec: CronJob = serde_json::from_value(json!({
        "metadata": {"name": "solo"},
        "spec": {"schedule": "@hourly", "concurrencyPolicy": "Forbid",
                 "jobTemplate": {"spec": {"template": common::pod_template("Never")}}}
    }))
    .unwrap();
    let created = cronjobs
        .create(&PostParams::default(), &spec)
        .await
        .unwrap();
    let created_at = created.metadata.creation_timestamp.unwrap().0.as_second();
    let first_hour = created_at / 3600 + 1;
    offset.store(first_hour * 3600 - base + 1, Ordering::SeqCst);
    let first = format!("solo-{}", first_hour * 60);
    common::eventually("the first job", 10, || async {
        jobs.get_opt(&first).await.unwrap()
    })
    .await;
    offset.fetch_add(3600, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        jobs.list(&ListParams::default()).await.unwrap().items.len(),
        1
    );
    complete(&jobs, &first).await;
    let second = format!("solo-{}", (first_hour + 1) * 60);
    common::eventually("the second job once the first finished", 10, || async {
        jobs.get_opt(&second).await.unwrap()
    })
    .await;
}
