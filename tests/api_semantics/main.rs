//! Integration tests of the API server's semantics and its handling of bad input: raw HTTP
//! requests through the real router (and a kube-rs client over it), on the MemoryStore, with a
//! core subset also on the embedded RedbStore.

#[macro_use]
mod support;

mod auth;
mod bad_input;
mod deletion;
mod kube_client;
mod lists;
mod patches;
mod rbac;
mod serviceaccounts;
mod subresources;
mod watches;
mod writes;
