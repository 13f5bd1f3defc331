//! Deployments, ReplicaSets, StatefulSets, DaemonSets, Jobs and CronJobs.

use serde_json::Value;

use super::cause::{Causes, at, quoted, shown};
use super::cron::check_schedule;
use super::labels::{selector_is_empty, selector_matches, validate_label_selector};
use super::meta::str_at;
use super::names::max_len_error;
use super::pod::validate_pod_template;

const NON_NEGATIVE: &str = "must be greater than or equal to 0";
const CRONJOB_NAME_MAX: usize = 52;

fn null() -> &'static Value {
    static NULL: Value = Value::Null;
    &NULL
}

fn field<'a>(v: &'a Value, key: &str) -> &'a Value {
    v.get(key).unwrap_or(null())
}

fn non_negative(spec: &Value, path: &str, keys: &[&str], c: &mut Causes) {
    for key in keys {
        if let Some(n) = spec.get(*key).and_then(Value::as_i64)
            && n < 0
        {
            c.invalid(&at(path, key), n, NON_NEGATIVE);
        }
    }
}

/// Labels rendered as Kubernetes prints a Go `map[string]string`.
fn go_string_map(labels: &Value) -> String {
    let entries: Vec<String> = labels
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{}:{}", quoted(k), shown(v)))
        .collect();
    format!("map[string]string{{{}}}", entries.join(", "))
}

/// A selector (required unless `optional`) that must select the template's labels.
fn validate_selector(spec: &Value, optional: bool, c: &mut Causes) {
    let Some(selector) = spec.get("selector").filter(|s| !s.is_null()) else {
        if !optional {
            c.required("spec.selector", "");
        }
        return;
    };
    validate_label_selector(selector, "spec.selector", c);
    if selector_is_empty(selector) {
        c.invalid(
            "spec.selector",
            selector,
            "empty selector is invalid for deployment",
        );
        return;
    }
    let labels = field(field(spec, "template"), "metadata").get("labels");
    if !selector_matches(selector, labels) {
        c.invalid(
            "spec.template.metadata.labels",
            go_string_map(labels.unwrap_or(null())),
            "`selector` does not match template `labels`",
        );
    }
}

/// The template of a long-running workload: restartPolicy Always and no deadline.
fn validate_controller_template(spec: &Value, kind: &str, c: &mut Causes) {
    let template = field(spec, "template");
    validate_pod_template(template, "spec.template", c);
    let pod_spec = field(template, "spec");
    if let Some(policy) = pod_spec.get("restartPolicy").and_then(Value::as_str)
        && policy != "Always"
    {
        c.not_supported("spec.template.spec.restartPolicy", policy, &["Always"]);
    }
    if pod_spec
        .get("activeDeadlineSeconds")
        .is_some_and(|d| !d.is_null())
    {
        c.forbidden(
            "spec.template.spec.activeDeadlineSeconds",
            &format!("activeDeadlineSeconds in {kind} is not Supported"),
        );
    }
}

fn immutable(spec: &Value, old_spec: &Value, key: &str, c: &mut Causes) {
    let new = field(spec, key);
    if new != field(old_spec, key) {
        c.invalid(&at("spec", key), shown(new), "field is immutable");
    }
}

/// `maxUnavailable`/`maxSurge`: a non-negative integer or a percentage.
fn validate_int_or_percent(v: &Value, path: &str, c: &mut Causes) -> bool {
    match v {
        Value::Number(n) => {
            if n.as_i64().is_some_and(|n| n < 0) {
                c.invalid(path, n, NON_NEGATIVE);
            }
            n.as_i64() == Some(0)
        }
        Value::String(s) => {
            let percent = s
                .strip_suffix('%')
                .filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()));
            match percent.map(str::parse::<u64>) {
                Some(Ok(p)) => {
                    if p > 100 && path.ends_with("maxUnavailable") {
                        c.invalid(path, quoted(s), "must not be greater than 100%");
                    }
                    p == 0
                }
                _ => {
                    c.invalid(
                        path,
                        quoted(s),
                        "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')",
                    );
                    false
                }
            }
        }
        _ => false,
    }
}

/// Validates a rolling update block; `surge_excludes_unavailable` is the DaemonSet rule that
/// only one of the two may be non-zero.
fn validate_rolling_update(
    rolling: &Value,
    path: &str,
    surge_excludes_unavailable: bool,
    c: &mut Causes,
) {
    let unavailable = rolling.get("maxUnavailable").filter(|v| !v.is_null());
    let surge = rolling.get("maxSurge").filter(|v| !v.is_null());
    let unavailable_path = at(path, "maxUnavailable");
    let surge_path = at(path, "maxSurge");
    let unavailable_zero =
        unavailable.is_some_and(|v| validate_int_or_percent(v, &unavailable_path, c));
    let surge_zero = surge.is_none_or(|v| validate_int_or_percent(v, &surge_path, c));
    if unavailable_zero && surge_zero {
        c.invalid(
            &unavailable_path,
            shown(unavailable.unwrap_or(null())),
            "may not be 0 when `maxSurge` is 0",
        );
    }
    if surge_excludes_unavailable
        && let (Some(surge), Some(_)) = (surge, unavailable)
        && !surge_zero
        && !unavailable_zero
    {
        c.invalid(
            &surge_path,
            shown(surge),
            "may not be set when maxUnavailable is non-zero",
        );
    }
}

pub(crate) fn validate_deployment(obj: &Value, old: Option<&Value>, c: &mut Causes) {
    let spec = field(obj, "spec");
    non_negative(
        spec,
        "spec",
        &["replicas", "minReadySeconds", "revisionHistoryLimit"],
        c,
    );
    validate_selector(spec, false, c);
    validate_controller_template(spec, "ReplicaSet", c);
    let strategy = field(spec, "strategy");
    let rolling = strategy.get("rollingUpdate").filter(|r| !r.is_null());
    match strategy.get("type").and_then(Value::as_str) {
        None | Some("RollingUpdate") => {
            if let Some(rolling) = rolling {
                validate_rolling_update(rolling, "spec.strategy.rollingUpdate", false, c);
            }
        }
        Some("Recreate") => {
            if rolling.is_some() {
                c.forbidden(
                    "spec.strategy.rollingUpdate",
                    "may not be specified when strategy `type` is 'Recreate'",
                );
            }
        }
        Some(other) => c.not_supported("spec.strategy.type", other, &["Recreate", "RollingUpdate"]),
    }
    if let Some(deadline) = spec.get("progressDeadlineSeconds").and_then(Value::as_i64) {
        let min_ready = spec
            .get("minReadySeconds")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        if deadline <= min_ready {
            c.invalid(
                "spec.progressDeadlineSeconds",
                deadline,
                "must be greater than minReadySeconds",
            );
        }
    }
    if let Some(old) = old {
        immutable(spec, field(old, "spec"), "selector", c);
    }
}

pub(crate) fn validate_replicaset(obj: &Value, old: Option<&Value>, c: &mut Causes) {
    let spec = field(obj, "spec");
    non_negative(spec, "spec", &["replicas", "minReadySeconds"], c);
    validate_selector(spec, false, c);
    validate_controller_template(spec, "ReplicaSet", c);
    if let Some(old) = old {
        immutable(spec, field(old, "spec"), "selector", c);
    }
}

pub(crate) fn validate_statefulset(obj: &Value, old: Option<&Value>, c: &mut Causes) {
    let spec = field(obj, "spec");
    non_negative(
        spec,
        "spec",
        &["replicas", "minReadySeconds", "revisionHistoryLimit"],
        c,
    );
    validate_selector(spec, false, c);
    validate_controller_template(spec, "StatefulSet", c);
    if let Some(policy) = spec.get("podManagementPolicy").and_then(Value::as_str)
        && !["OrderedReady", "Parallel"].contains(&policy)
    {
        c.not_supported(
            "spec.podManagementPolicy",
            policy,
            &["OrderedReady", "Parallel"],
        );
    }
    let strategy = field(spec, "updateStrategy");
    let rolling = strategy.get("rollingUpdate").filter(|r| !r.is_null());
    match strategy.get("type").and_then(Value::as_str) {
        None | Some("RollingUpdate") => {
            if let Some(rolling) = rolling {
                non_negative(
                    rolling,
                    "spec.updateStrategy.rollingUpdate",
                    &["partition"],
                    c,
                );
            }
        }
        Some("OnDelete") => {
            if let Some(rolling) = rolling {
                c.invalid(
                    "spec.updateStrategy.rollingUpdate",
                    rolling,
                    "only allowed for updateStrategy 'RollingUpdate'",
                );
            }
        }
        Some(other) => c.not_supported(
            "spec.updateStrategy.type",
            other,
            &["OnDelete", "RollingUpdate"],
        ),
    }
    let retention = field(spec, "persistentVolumeClaimRetentionPolicy");
    for key in ["whenDeleted", "whenScaled"] {
        if let Some(policy) = retention.get(key).and_then(Value::as_str)
            && !["Retain", "Delete"].contains(&policy)
        {
            let path = at("spec.persistentVolumeClaimRetentionPolicy", key);
            c.not_supported(&path, policy, &["Retain", "Delete"]);
        }
    }
    if let Some(old) = old {
        validate_statefulset_update(spec, field(old, "spec"), c);
    }
}

fn validate_statefulset_update(spec: &Value, old_spec: &Value, c: &mut Causes) {
    let mutable = [
        "replicas",
        "ordinals",
        "template",
        "updateStrategy",
        "persistentVolumeClaimRetentionPolicy",
        "minReadySeconds",
        "revisionHistoryLimit",
    ];
    let strip = |s: &Value| {
        let mut s = s.clone();
        if let Some(map) = s.as_object_mut() {
            map.retain(|k, _| !mutable.contains(&k.as_str()));
        }
        s
    };
    if strip(spec) != strip(old_spec) {
        c.forbidden(
            "spec",
            "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden",
        );
    }
}

pub(crate) fn validate_daemonset(obj: &Value, old: Option<&Value>, c: &mut Causes) {
    let spec = field(obj, "spec");
    non_negative(
        spec,
        "spec",
        &["minReadySeconds", "revisionHistoryLimit"],
        c,
    );
    validate_selector(spec, false, c);
    validate_controller_template(spec, "DaemonSet", c);
    let strategy = field(spec, "updateStrategy");
    match strategy.get("type").and_then(Value::as_str) {
        None | Some("OnDelete") => {}
        Some("RollingUpdate") => {
            if let Some(rolling) = strategy.get("rollingUpdate").filter(|r| !r.is_null()) {
                validate_rolling_update(rolling, "spec.updateStrategy.rollingUpdate", true, c);
            }
        }
        Some(other) => c.not_supported(
            "spec.updateStrategy.type",
            other,
            &["OnDelete", "RollingUpdate"],
        ),
    }
    if let Some(old) = old {
        immutable(spec, field(old, "spec"), "selector", c);
    }
}

/// A Job spec at `path` (`spec`, or `spec.jobTemplate.spec` inside a CronJob).
fn validate_job_spec(spec: &Value, path: &str, c: &mut Causes) {
    non_negative(
        spec,
        path,
        &[
            "parallelism",
            "completions",
            "backoffLimit",
            "activeDeadlineSeconds",
            "ttlSecondsAfterFinished",
        ],
        c,
    );
    let manual = spec.get("manualSelector").and_then(Value::as_bool) == Some(true);
    if path == "spec" {
        validate_selector(spec, !manual, c);
    }
    let template_path = at(path, "template");
    let template = field(spec, "template");
    validate_pod_template(template, &template_path, c);
    let policy_path = at(&template_path, "spec.restartPolicy");
    match field(template, "spec")
        .get("restartPolicy")
        .and_then(Value::as_str)
    {
        None => c.required(&policy_path, "valid values: \"OnFailure\", \"Never\""),
        Some("OnFailure" | "Never") => {}
        Some(other) => c.not_supported(&policy_path, other, &["OnFailure", "Never"]),
    }
    match spec.get("completionMode").and_then(Value::as_str) {
        None | Some("NonIndexed") => {}
        Some("Indexed") => {
            if spec.get("completions").is_none_or(Value::is_null) {
                c.required(&at(path, "completions"), "when completion mode is Indexed");
            }
        }
        Some(other) => c.not_supported(
            &at(path, "completionMode"),
            other,
            &["NonIndexed", "Indexed"],
        ),
    }
}

pub(crate) fn validate_job(obj: &Value, old: Option<&Value>, c: &mut Causes) {
    let spec = field(obj, "spec");
    validate_job_spec(spec, "spec", c);
    if let Some(old) = old {
        let old_spec = field(old, "spec");
        for key in ["selector", "template", "completionMode", "completions"] {
            immutable(spec, old_spec, key, c);
        }
    }
}

pub(crate) fn validate_cronjob(obj: &Value, c: &mut Causes) {
    let name = str_at(field(obj, "metadata"), "name");
    if name.len() > CRONJOB_NAME_MAX {
        c.invalid(
            "metadata.name",
            quoted(name),
            &max_len_error(CRONJOB_NAME_MAX),
        );
    }
    let spec = field(obj, "spec");
    let schedule = str_at(spec, "schedule");
    if schedule.is_empty() {
        c.required("spec.schedule", "");
    } else if schedule.contains("TZ") {
        c.invalid(
            "spec.schedule",
            quoted(schedule),
            "cannot use TZ or CRON_TZ in schedule, use timeZone field instead",
        );
    } else if let Err(problem) = check_schedule(schedule) {
        c.invalid("spec.schedule", quoted(schedule), &problem);
    }
    if let Some(policy) = spec.get("concurrencyPolicy").and_then(Value::as_str)
        && !["Allow", "Forbid", "Replace"].contains(&policy)
    {
        c.not_supported(
            "spec.concurrencyPolicy",
            policy,
            &["Allow", "Forbid", "Replace"],
        );
    }
    non_negative(
        spec,
        "spec",
        &[
            "startingDeadlineSeconds",
            "successfulJobsHistoryLimit",
            "failedJobsHistoryLimit",
        ],
        c,
    );
    let job_template = field(spec, "jobTemplate");
    let job_path = "spec.jobTemplate";
    let meta = field(job_template, "metadata");
    super::labels::validate_labels(meta.get("labels"), &at(job_path, "metadata.labels"), c);
    validate_job_spec(field(job_template, "spec"), &at(job_path, "spec"), c);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    type Check = fn(&Value, Option<&Value>, &mut Causes);
    type Case = (Check, Value, Vec<(&'static str, &'static str)>);

    fn fields(check: Check, obj: &Value, old: Option<&Value>) -> Vec<(String, &'static str)> {
        let mut c = Causes::default();
        check(obj, old, &mut c);
        c.into_vec()
            .into_iter()
            .map(|e| (e.field, e.reason.as_str()))
            .collect()
    }

    fn template(labels: Value, restart: &str) -> Value {
        json!({"metadata": {"labels": labels},
               "spec": {"containers": [{"name": "c", "image": "i"}], "restartPolicy": restart}})
    }

    fn workload(spec: Value) -> Value {
        json!({"metadata": {"name": "w", "namespace": "d"}, "spec": spec})
    }

    fn cronjob(obj: &Value, _old: Option<&Value>, c: &mut Causes) {
        validate_cronjob(obj, c)
    }

    #[test]
    fn invalid_workloads_report_exact_causes() {
        let sel = json!({"matchLabels": {"app": "web"}});
        let good = template(json!({"app": "web"}), "Always");
        let job_template = template(json!({"app": "web"}), "Never");
        let cases: Vec<Case> = vec![
            (
                validate_deployment,
                json!({"selector": sel, "template": good}),
                vec![],
            ),
            (
                validate_deployment,
                json!({"template": good, "replicas": -1}),
                vec![
                    ("spec.replicas", "FieldValueInvalid"),
                    ("spec.selector", "FieldValueRequired"),
                ],
            ),
            (
                validate_deployment,
                json!({"selector": {"matchLabels": {"app": "db"}}, "template": good}),
                vec![("spec.template.metadata.labels", "FieldValueInvalid")],
            ),
            (
                validate_deployment,
                json!({"selector": {}, "template": good}),
                vec![("spec.selector", "FieldValueInvalid")],
            ),
            (
                validate_deployment,
                json!({"selector": sel, "template": template(json!({"app": "web"}), "Never")}),
                vec![("spec.template.spec.restartPolicy", "FieldValueNotSupported")],
            ),
            (
                validate_deployment,
                json!({"selector": sel, "template": good,
                       "strategy": {"type": "RollingUpdate",
                                    "rollingUpdate": {"maxUnavailable": 0, "maxSurge": "0%"}}}),
                vec![(
                    "spec.strategy.rollingUpdate.maxUnavailable",
                    "FieldValueInvalid",
                )],
            ),
            (
                validate_deployment,
                json!({"selector": sel, "template": good,
                       "strategy": {"type": "Recreate", "rollingUpdate": {"maxSurge": 1}}}),
                vec![("spec.strategy.rollingUpdate", "FieldValueForbidden")],
            ),
            (
                validate_deployment,
                json!({"selector": sel, "template": good, "strategy": {"type": "Blue"},
                       "minReadySeconds": 10, "progressDeadlineSeconds": 5}),
                vec![
                    ("spec.strategy.type", "FieldValueNotSupported"),
                    ("spec.progressDeadlineSeconds", "FieldValueInvalid"),
                ],
            ),
            (
                validate_deployment,
                json!({"selector": sel, "template": good,
                       "strategy": {"rollingUpdate": {"maxUnavailable": "120%", "maxSurge": "x"}}}),
                vec![
                    (
                        "spec.strategy.rollingUpdate.maxUnavailable",
                        "FieldValueInvalid",
                    ),
                    ("spec.strategy.rollingUpdate.maxSurge", "FieldValueInvalid"),
                ],
            ),
            (
                validate_replicaset,
                json!({"selector": sel, "template": {"metadata": {"labels": {"app": "web"}},
                       "spec": {"containers": [], "activeDeadlineSeconds": 5}}}),
                vec![
                    ("spec.template.spec.containers", "FieldValueRequired"),
                    (
                        "spec.template.spec.activeDeadlineSeconds",
                        "FieldValueForbidden",
                    ),
                ],
            ),
            (
                validate_statefulset,
                json!({"selector": sel, "template": good, "podManagementPolicy": "Random",
                       "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": -1}}}),
                vec![
                    ("spec.podManagementPolicy", "FieldValueNotSupported"),
                    (
                        "spec.updateStrategy.rollingUpdate.partition",
                        "FieldValueInvalid",
                    ),
                ],
            ),
            (
                validate_daemonset,
                json!({"selector": sel, "template": good,
                       "updateStrategy": {"type": "RollingUpdate",
                                          "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 1}}}),
                vec![(
                    "spec.updateStrategy.rollingUpdate.maxSurge",
                    "FieldValueInvalid",
                )],
            ),
            (validate_job, json!({"template": job_template}), vec![]),
            (
                validate_job,
                json!({"template": template(json!({}), "Always"), "parallelism": -1,
                       "completions": -2, "completionMode": "Indexed"}),
                vec![
                    ("spec.parallelism", "FieldValueInvalid"),
                    ("spec.completions", "FieldValueInvalid"),
                    ("spec.template.spec.restartPolicy", "FieldValueNotSupported"),
                ],
            ),
            (
                validate_job,
                json!({"manualSelector": true, "completionMode": "Indexed",
                       "template": job_template}),
                vec![
                    ("spec.selector", "FieldValueRequired"),
                    ("spec.completions", "FieldValueRequired"),
                ],
            ),
            (
                cronjob,
                json!({"schedule": "61 * * * *", "concurrencyPolicy": "Sometimes",
                       "jobTemplate": {"spec": {"template": job_template}}}),
                vec![
                    ("spec.schedule", "FieldValueInvalid"),
                    ("spec.concurrencyPolicy", "FieldValueNotSupported"),
                ],
            ),
            (
                cronjob,
                json!({"jobTemplate": {"spec": {"template": template(json!({}), "Always")}}}),
                vec![
                    ("spec.schedule", "FieldValueRequired"),
                    (
                        "spec.jobTemplate.spec.template.spec.restartPolicy",
                        "FieldValueNotSupported",
                    ),
                ],
            ),
        ];
        for (check, spec, expected) in cases {
            let got = fields(check, &workload(spec.clone()), None);
            let want: Vec<(String, &str)> = expected
                .into_iter()
                .map(|(f, r)| (f.to_string(), r))
                .collect();
            assert_eq!(got, want, "spec: {spec}");
        }
    }

    #[test]
    fn selector_mismatch_message() {
        let obj = workload(json!({"selector": {"matchLabels": {"app": "db"}},
            "template": template(json!({"app": "web"}), "Always")}));
        let mut c = Causes::default();
        validate_deployment(&obj, None, &mut c);
        assert_eq!(
            c.into_vec()[0].message,
            r#"Invalid value: map[string]string{"app":"web"}: `selector` does not match template `labels`"#
        );
    }

    #[test]
    fn updates_keep_selectors_and_job_templates() {
        let sel = json!({"matchLabels": {"app": "web"}});
        let wide = json!({"matchLabels": {}, "matchExpressions": [
            {"key": "app", "operator": "Exists"}]});
        let old = workload(
            json!({"selector": sel, "template": template(json!({"app": "web"}), "Always")}),
        );
        let scaled = workload(json!({"selector": sel, "replicas": 5,
            "template": template(json!({"app": "web", "v": "2"}), "Always")}));
        let reselected = workload(json!({"selector": wide,
            "template": template(json!({"app": "web"}), "Always")}));
        for check in [
            validate_deployment as Check,
            validate_replicaset,
            validate_daemonset,
        ] {
            assert_eq!(fields(check, &scaled, Some(&old)), []);
            assert_eq!(
                fields(check, &reselected, Some(&old)),
                [("spec.selector".to_string(), "FieldValueInvalid")]
            );
        }
        let sts_changed = workload(json!({"selector": sel, "serviceName": "other",
            "template": template(json!({"app": "web"}), "Always")}));
        assert_eq!(
            fields(validate_statefulset, &sts_changed, Some(&old)),
            [("spec".to_string(), "FieldValueForbidden")]
        );
        assert_eq!(fields(validate_statefulset, &scaled, Some(&old)), []);
        let job = workload(
            json!({"selector": sel, "template": template(json!({"app": "web"}), "Never")}),
        );
        let job_changed = workload(json!({"selector": sel, "parallelism": 4,
            "template": template(json!({"app": "web", "x": "y"}), "Never")}));
        assert_eq!(
            fields(validate_job, &job_changed, Some(&job)),
            [("spec.template".to_string(), "FieldValueInvalid")]
        );
    }
}
