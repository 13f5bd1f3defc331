//! Rows for configuration kinds: config maps, secrets and service accounts.

use serde_json::Value;

use super::time::age;
use super::{AGE, Column, NAME, len_at, name, text};

pub(super) const CONFIGMAP_COLUMNS: &[Column] = &[
    NAME,
    Column::new(
        "Data",
        "string",
        "Number of entries in data and binaryData.",
    ),
    AGE,
];

pub(super) fn configmap_cells(config_map: &Value, now: i64) -> Vec<Value> {
    vec![
        name(config_map).into(),
        (len_at(config_map, "/data") + len_at(config_map, "/binaryData")).into(),
        age(config_map, now).into(),
    ]
}

pub(super) const SECRET_COLUMNS: &[Column] = &[
    NAME,
    Column::new(
        "Type",
        "string",
        "Used to facilitate programmatic handling of secret data.",
    ),
    Column::new("Data", "string", "Number of entries in data."),
    AGE,
];

pub(super) fn secret_cells(secret: &Value, now: i64) -> Vec<Value> {
    vec![
        name(secret).into(),
        text(secret, "/type").into(),
        len_at(secret, "/data").into(),
        age(secret, now).into(),
    ]
}

pub(super) const SERVICEACCOUNT_COLUMNS: &[Column] = &[
    NAME,
    Column::new(
        "Secrets",
        "string",
        "Number of secrets pods running as this service account may use.",
    ),
    AGE,
];

pub(super) fn serviceaccount_cells(service_account: &Value, now: i64) -> Vec<Value> {
    vec![
        name(service_account).into(),
        len_at(service_account, "/secrets").into(),
        age(service_account, now).into(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: i64 = 1_700_000_000; // 2023-11-14T22:13:20Z

    #[test]
    fn config_map_counts_both_data_maps() {
        let cm = json!({"metadata": {"name": "settings", "creationTimestamp": "2023-11-14T16:43:20Z"},
            "data": {"a": "1", "b": "2"}, "binaryData": {"c": "AA=="}});
        assert_eq!(
            configmap_cells(&cm, NOW),
            vec![json!("settings"), json!(3), json!("5h30m")]
        );
        assert_eq!(configmap_cells(&json!({}), NOW)[1], json!(0));
    }

    #[test]
    fn secret_row() {
        let secret = json!({"metadata": {"name": "tls", "creationTimestamp": "2023-09-30T22:13:20Z"},
            "type": "kubernetes.io/tls", "data": {"tls.crt": "", "tls.key": ""}});
        assert_eq!(
            secret_cells(&secret, NOW),
            vec![
                json!("tls"),
                json!("kubernetes.io/tls"),
                json!(2),
                json!("45d")
            ]
        );
    }

    #[test]
    fn service_account_row() {
        let sa =
            json!({"metadata": {"name": "default", "creationTimestamp": "2021-11-04T22:13:20Z"}});
        assert_eq!(
            serviceaccount_cells(&sa, NOW),
            vec![json!("default"), json!(0), json!("2y10d")]
        );
    }
}
