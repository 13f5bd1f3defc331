//! One gRPC channel to containerd; every request carries rkube's namespace (and a lease when
//! it creates content or snapshots that must outlive nothing but the operation).

use std::path::Path;

use containerd_client::Client;
use containerd_client::services::v1::{CreateRequest as CreateLeaseRequest, DeleteRequest};
use containerd_client::tonic::metadata::AsciiMetadataValue;
use containerd_client::tonic::{Code, Request, Status};

use crate::{ContainerId, RuntimeError};

const NAMESPACE_HEADER: &str = "containerd-namespace";
const LEASE_HEADER: &str = "containerd-lease";

pub(crate) struct Connection {
    pub(crate) client: Client,
    namespace: AsciiMetadataValue,
}

impl Connection {
    pub(crate) async fn connect(socket: &Path, namespace: &str) -> Result<Self, RuntimeError> {
        let namespace =
            namespace
                .parse::<AsciiMetadataValue>()
                .map_err(|e| RuntimeError::Containerd {
                    operation: "namespace",
                    target: namespace.to_string(),
                    reason: e.to_string(),
                })?;
        let client = Client::from_path(socket)
            .await
            .map_err(|e| RuntimeError::Containerd {
                operation: "connect",
                target: socket.display().to_string(),
                reason: format!("{e:?}"),
            })?;
        Ok(Self { client, namespace })
    }

    /// A request in rkube's namespace.
    pub(crate) fn request<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        request
            .metadata_mut()
            .insert(NAMESPACE_HEADER, self.namespace.clone());
        request
    }

    /// A request whose created resources the lease holds until they are referenced.
    pub(crate) fn leased<T>(&self, message: T, lease: &LeaseId) -> Request<T> {
        let mut request = self.request(message);
        request.metadata_mut().insert(LEASE_HEADER, lease.0.clone());
        request
    }

    /// Creates a lease that keeps content and snapshots alive while an image is unpacked.
    pub(crate) async fn create_lease(&self, id: &str) -> Result<LeaseId, RuntimeError> {
        let value = id
            .parse::<AsciiMetadataValue>()
            .map_err(|e| rpc_error("lease create", id)(Status::invalid_argument(e.to_string())))?;
        self.client
            .leases()
            .create(self.request(CreateLeaseRequest {
                id: id.to_string(),
                labels: Default::default(),
            }))
            .await
            .map_err(rpc_error("lease create", id))?;
        Ok(LeaseId(value))
    }

    pub(crate) async fn delete_lease(&self, lease: LeaseId) -> Result<(), RuntimeError> {
        let id = lease.0.to_str().unwrap_or_default().to_string();
        self.client
            .leases()
            .delete(self.request(DeleteRequest {
                id: id.clone(),
                sync: false,
            }))
            .await
            .map_err(rpc_error("lease delete", &id))?;
        Ok(())
    }
}

pub(crate) struct LeaseId(AsciiMetadataValue);

/// Maps a failed call to a runtime error naming what was being done to what.
pub(crate) fn rpc_error(
    operation: &'static str,
    target: impl Into<String>,
) -> impl FnOnce(Status) -> RuntimeError {
    let target = target.into();
    move |status| RuntimeError::Containerd {
        operation,
        target,
        reason: status.message().to_string(),
    }
}

/// Like [`rpc_error`] for calls about one container: a missing one is `NotFound`.
pub(crate) fn container_error(
    operation: &'static str,
    id: &ContainerId,
) -> impl FnOnce(Status) -> RuntimeError {
    let id = id.clone();
    move |status| {
        if status.code() == Code::NotFound {
            RuntimeError::NotFound { id }
        } else {
            rpc_error(operation, id.0)(status)
        }
    }
}

pub(crate) fn is_not_found(status: &Status) -> bool {
    status.code() == Code::NotFound
}
