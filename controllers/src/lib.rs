//! controllers

mod api_status;
pub mod cronjob;
pub mod job;
pub mod owned_pods;
mod record;
