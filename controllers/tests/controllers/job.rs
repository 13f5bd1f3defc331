use crate::common;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::{Api, ListParams, PostParams};
use rkube_controllers::job;
use serde_json::json;

fn has_condition(job: &Job, kind: &str) -> bool {
    job.status
        .iter()
        .flat_map(|s| s.conditions.iter().flatten())
        .any(|c| c.type_ == kind && c.status == "True")
}

#[tokio::test]
async fn job_with_parallelism_three_completes() {
    let client = common::client().await;
    tokio::spawn(job::run(client.clone()));
    let jobs: Api<Job> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let spec: Job = serde_json::from_value(json!({
        "metadata": {"name": "work"},
        "spec": {"completions": 6, "parallelism": 3, "template": common::pod_template("Never")}
    }))
    .unwrap();
    jobs.create(&PostParams::default(), &spec).await.unwrap();

    let by_job = ListParams::default().labels("batch.kubernetes.io/job-name=work");
    let mut finished = 0;
    while finished < 6 {
        let running = common::eventually("job pods", 10, || async {
            let listed = pods.list(&by_job).await.unwrap().items;
            let active: Vec<Pod> = listed
                .into_iter()
                .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) != Some("Succeeded"))
                .collect();
            (!active.is_empty()).then_some(active)
        })
        .await;
        assert!(running.len() <= 3, "{} pods active at once", running.len());
        let pod = &running[0];
        assert!(
            pod.finalizers()
                .iter()
                .any(|f| f == "batch.kubernetes.io/job-tracking")
        );
        let owner = &pod.owner_references()[0];
        assert_eq!((owner.kind.as_str(), owner.controller), ("Job", Some(true)));
        common::set_phase(&pods, &pod.name_any(), "Succeeded", false).await;
        finished += 1;
    }

    let done = common::eventually("the job to complete", 10, || async {
        let job = jobs.get("work").await.unwrap();
        has_condition(&job, "Complete").then_some(job)
    })
    .await;
    assert!(has_condition(&done, "SuccessCriteriaMet"));
    let status = done.status.unwrap();
    assert_eq!(status.succeeded, Some(6));
    assert_eq!(status.active, None);
    assert!(status.start_time.is_some() && status.completion_time.is_some());
    let all = pods.list(&by_job).await.unwrap().items;
    assert_eq!(
        all.len(),
        6,
        "no pod beyond the six completions was created"
    );
    common::eventually("finalizers released", 10, || async {
        let all = pods.list(&by_job).await.unwrap().items;
        all.iter().all(|p| p.finalizers().is_empty()).then_some(())
    })
    .await;
}

#[tokio::test]
async fn job_fails_past_its_backoff_limit_and_ttl_deletes_it() {
    let client = common::client().await;
    tokio::spawn(job::run(client.clone()));
    let jobs: Api<Job> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let spec: Job = serde_json::from_value(json!({
        "metadata": {"name": "flaky"},
        "spec": {"backoffLimit": 1, "ttlSecondsAfterFinished": 1,
                 "template": common::pod_template("Never")}
    }))
    .unwrap();
    jobs.create(&PostParams::default(), &spec).await.unwrap();
    let by_job = ListParams::default().labels("batch.kubernetes.io/job-name=flaky");
    for attempt in 1..=2 {
        let pod = common::eventually("a pod to fail", 10, || async {
            let listed = pods.list(&by_job).await.unwrap().items;
            listed
                .into_iter()
                .find(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) != Some("Failed"))
        })
        .await;
        common::set_phase(&pods, &pod.name_any(), "Failed", false).await;
        assert!(attempt <= 2);
    }
    let failed = common::eventually("the job to fail", 10, || async {
        let job = jobs.get_opt("flaky").await.unwrap()?;
        has_condition(&job, "Failed").then_some(job)
    })
    .await;
    assert!(has_condition(&failed, "FailureTarget"));
    let condition = failed
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Failed"))
        .unwrap();
    assert_eq!(condition.reason.as_deref(), Some("BackoffLimitExceeded"));
    assert_eq!(failed.status.as_ref().unwrap().failed, Some(2));
    common::eventually("the ttl to delete the job", 10, || async {
        jobs.get_opt("flaky").await.unwrap().is_none().then_some(())
    })
    .await;
}
