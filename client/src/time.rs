//! Timestamps as the Kubernetes types carry them.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, Time};
use k8s_openapi::jiff::Timestamp;

pub fn now() -> Time {
    Time(Timestamp::now())
}

pub fn micro_now() -> MicroTime {
    MicroTime(Timestamp::now())
}
