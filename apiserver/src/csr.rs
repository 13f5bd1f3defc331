//! CertificateSigningRequests: the requester's identity stamped on create, automatic
//! approval of node client certificates (what kube-controller-manager's csrapproving does for
//! bootstrap tokens and renewing nodes) and signing with the cluster CA (csrsigning).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rcgen::{
    CertificateSigningRequestParams, ExtendedKeyUsagePurpose, Issuer, KeyPair, KeyUsagePurpose,
};
use serde_json::{Value, json};
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::auth::User;
use crate::bootstrap::BOOTSTRAPPERS;
use crate::error::{ApiError, ApiResult, Target};
use crate::rbac::node::{NODE_USER_PREFIX, NODES_GROUP};

pub const KUBELET_CLIENT_SIGNER: &str = "kubernetes.io/kube-apiserver-client-kubelet";
pub const CLIENT_SIGNER: &str = "kubernetes.io/kube-apiserver-client";
/// kube-controller-manager's default `--cluster-signing-duration`.
const DEFAULT_DURATION_SECS: i64 = 365 * 24 * 3600;

/// Signs approved requests for the client signers with the cluster CA.
pub struct CertSigner {
    issuer: Issuer<'static, KeyPair>,
    ca_not_after: time::OffsetDateTime,
}

#[derive(Debug, thiserror::Error)]
pub enum SignerError {
    #[error("loading the cluster CA: {0}")]
    Ca(#[source] rcgen::Error),
    #[error("the cluster CA certificate does not parse")]
    CaCertificate,
}

impl CertSigner {
    pub fn new(ca_cert_pem: &str, ca_key_pem: &str) -> Result<Self, SignerError> {
        let key = KeyPair::from_pem(ca_key_pem).map_err(SignerError::Ca)?;
        let issuer = Issuer::from_ca_cert_pem(ca_cert_pem, key).map_err(SignerError::Ca)?;
        let der = rustls_pemfile::certs(&mut ca_cert_pem.as_bytes())
            .next()
            .and_then(Result::ok)
            .ok_or(SignerError::CaCertificate)?;
        let (_, ca) = X509Certificate::from_der(&der).map_err(|_| SignerError::CaCertificate)?;
        Ok(CertSigner {
            issuer,
            ca_not_after: ca.validity().not_after.to_datetime(),
        })
    }

    /// Issues the certificate a request asks for: its subject and public key, client usage
    /// only, valid for `expirationSeconds` (a year by default) but never past the CA.
    fn sign(&self, request_pem: &str, seconds: i64) -> Result<String, String> {
        let mut csr = CertificateSigningRequestParams::from_pem(request_pem)
            .map_err(|e| format!("spec.request is not a valid certificate request: {e}"))?;
        let params = &mut csr.params;
        // Only the subject and key are taken from the request; extensions are the signer's.
        params.subject_alt_names.clear();
        params.is_ca = rcgen::IsCa::ExplicitNoCa;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::minutes(5);
        params.not_after = (now + time::Duration::seconds(seconds)).min(self.ca_not_after);
        csr.signed_by(&self.issuer)
            .map(|cert| cert.pem())
            .map_err(|e| format!("signing failed: {e}"))
    }
}

/// Admission for a new request: the server records who asked, as kube-apiserver does, and
/// a bootstrap token may only ask for its node's client certificate.
pub fn admit_new(user: &User, obj: &mut Value, target: &Target) -> ApiResult<()> {
    let spec = obj
        .get_mut("spec")
        .and_then(Value::as_object_mut)
        .ok_or_else(|| ApiError::BadRequest("spec is required".into()))?;
    spec.insert("username".into(), json!(user.name));
    spec.insert("groups".into(), json!(user.groups));
    spec.remove("uid");
    spec.remove("extra");
    let is_bootstrapper = user.groups.iter().any(|g| g == BOOTSTRAPPERS);
    let signer = spec.get("signerName").and_then(Value::as_str);
    if is_bootstrapper && signer != Some(KUBELET_CLIENT_SIGNER) {
        return Err(ApiError::Forbidden {
            target: target.clone(),
            message: format!("a bootstrap token may only request signer {KUBELET_CLIENT_SIGNER}"),
        });
    }
    Ok(())
}

/// Approves a node client request made by a bootstrap token or by the node itself, then
/// signs it when a signer is configured. Other requests stay pending for an admin
/// (`kubectl certificate approve`).
pub fn approve_and_sign(signer: Option<&CertSigner>, user: &User, obj: &mut Value) {
    if !is_approved(obj) && node_may_self_approve(user, obj) {
        add_condition(
            obj,
            "Approved",
            "AutoApproved",
            "Auto approving kubelet client certificate after SubjectAccessReview.",
        );
    }
    sign_if_approved(signer, obj);
}

/// Signs an approved request of a client signer that has no certificate yet.
pub fn sign_if_approved(signer: Option<&CertSigner>, obj: &mut Value) {
    let Some(signer) = signer else { return };
    let signer_name = obj.pointer("/spec/signerName").and_then(Value::as_str);
    if !matches!(signer_name, Some(KUBELET_CLIENT_SIGNER | CLIENT_SIGNER))
        || !is_approved(obj)
        || has_condition(obj, "Denied")
        || has_condition(obj, "Failed")
        || obj.pointer("/status/certificate").is_some()
    {
        return;
    }
    let request = obj
        .pointer("/spec/request")
        .and_then(Value::as_str)
        .and_then(|b64| STANDARD.decode(b64).ok())
        .and_then(|pem| String::from_utf8(pem).ok())
        .unwrap_or_default();
    let seconds = obj
        .pointer("/spec/expirationSeconds")
        .and_then(Value::as_i64)
        .unwrap_or(DEFAULT_DURATION_SECS);
    match signer.sign(&request, seconds) {
        Ok(pem) => obj["status"]["certificate"] = json!(STANDARD.encode(pem)),
        Err(message) => add_condition(obj, "Failed", "SignerValidationFailure", &message),
    }
}

/// The request is for `system:node:<n>` in `system:nodes` with client usages, and comes
/// from a bootstrap token or from node `<n>` itself.
fn node_may_self_approve(user: &User, obj: &Value) -> bool {
    if obj.pointer("/spec/signerName").and_then(Value::as_str) != Some(KUBELET_CLIENT_SIGNER) {
        return false;
    }
    let allowed = ["digital signature", "key encipherment", "client auth"];
    let usages: Vec<&str> = obj
        .pointer("/spec/usages")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    if !usages.contains(&"client auth") || usages.iter().any(|u| !allowed.contains(u)) {
        return false;
    }
    let Some(subject) = requested_subject(obj) else {
        return false;
    };
    let Some(node) = subject.common_name.strip_prefix(NODE_USER_PREFIX) else {
        return false;
    };
    if subject.organizations != [NODES_GROUP] {
        return false;
    }
    user.groups.iter().any(|g| g == BOOTSTRAPPERS)
        || user.name == format!("{NODE_USER_PREFIX}{node}")
}

struct Subject {
    common_name: String,
    organizations: Vec<String>,
}

fn requested_subject(obj: &Value) -> Option<Subject> {
    let pem = STANDARD
        .decode(obj.pointer("/spec/request")?.as_str()?)
        .ok()?;
    let params = CertificateSigningRequestParams::from_pem(std::str::from_utf8(&pem).ok()?).ok()?;
    let dn = &params.params.distinguished_name;
    let common_name = dn.get(&rcgen::DnType::CommonName).and_then(dn_text)?;
    let organizations = dn
        .iter()
        .filter(|(t, _)| **t == rcgen::DnType::OrganizationName)
        .filter_map(|(_, v)| dn_text(v))
        .collect();
    Some(Subject {
        common_name,
        organizations,
    })
}

fn dn_text(value: &rcgen::DnValue) -> Option<String> {
    match value {
        rcgen::DnValue::Utf8String(s) => Some(s.clone()),
        rcgen::DnValue::PrintableString(s) => Some(s.as_str().to_string()),
        _ => None,
    }
}

fn has_condition(obj: &Value, kind: &str) -> bool {
    obj.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter().any(|c| {
                c.get("type").and_then(Value::as_str) == Some(kind)
                    && c.get("status").and_then(Value::as_str) != Some("False")
            })
        })
}

fn is_approved(obj: &Value) -> bool {
    has_condition(obj, "Approved")
}

fn add_condition(obj: &mut Value, kind: &str, reason: &str, message: &str) {
    let now = crate::objects::now_rfc3339();
    if !obj.get("status").is_some_and(Value::is_object) {
        obj["status"] = json!({});
    }
    let conditions = obj["status"]
        .as_object_mut()
        .map(|s| s.entry("conditions").or_insert_with(|| json!([])));
    if let Some(Value::Array(list)) = conditions {
        list.push(
            json!({"type": kind, "status": "True", "reason": reason, "message": message,
            "lastUpdateTime": now, "lastTransitionTime": now}),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer() -> CertSigner {
        let key = KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::default();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key).unwrap();
        CertSigner::new(&cert.pem(), &key.serialize_pem()).unwrap()
    }

    fn request(cn: &str, org: &str) -> Value {
        let key = KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::default();
        let mut dn = rcgen::DistinguishedName::new();
        dn.push(rcgen::DnType::CommonName, cn);
        dn.push(rcgen::DnType::OrganizationName, org);
        params.distinguished_name = dn;
        let pem = params.serialize_request(&key).unwrap().pem().unwrap();
        json!({"spec": {"request": STANDARD.encode(pem), "signerName": KUBELET_CLIENT_SIGNER,
            "usages": ["digital signature", "client auth"]}})
    }

    fn bootstrapper() -> User {
        User {
            name: "system:bootstrap:abcdef".into(),
            groups: vec![BOOTSTRAPPERS.into()],
        }
    }

    fn issued_subject(csr: &Value) -> Option<String> {
        let pem = STANDARD
            .decode(csr.pointer("/status/certificate")?.as_str()?)
            .ok()?;
        let der = rustls_pemfile::certs(&mut pem.as_slice()).next()?.ok()?;
        let (_, cert) = X509Certificate::from_der(&der).ok()?;
        Some(cert.subject().to_string())
    }

    #[test]
    fn a_node_client_request_from_a_bootstrap_token_is_approved_and_signed() {
        let mut csr = request("system:node:edge-1", "system:nodes");
        approve_and_sign(Some(&signer()), &bootstrapper(), &mut csr);
        assert!(is_approved(&csr));
        assert_eq!(
            issued_subject(&csr).as_deref(),
            Some("CN=system:node:edge-1, O=system:nodes")
        );
    }

    #[test]
    fn other_identities_stay_pending() {
        let mut admin = request("rkube-admin", "system:masters");
        approve_and_sign(Some(&signer()), &bootstrapper(), &mut admin);
        assert!(!is_approved(&admin) && issued_subject(&admin).is_none());
        // A node may renew its own certificate, not another node's.
        let node = User {
            name: "system:node:edge-2".into(),
            groups: vec![NODES_GROUP.into()],
        };
        let mut other = request("system:node:edge-1", "system:nodes");
        approve_and_sign(Some(&signer()), &node, &mut other);
        assert!(!is_approved(&other));
    }

    #[test]
    fn an_admin_approval_is_signed_and_garbage_fails() {
        let mut csr = request("jane", "dev");
        csr["spec"]["signerName"] = json!(CLIENT_SIGNER);
        add_condition(&mut csr, "Approved", "KubectlApprove", "approved");
        sign_if_approved(Some(&signer()), &mut csr);
        assert_eq!(issued_subject(&csr).as_deref(), Some("CN=jane, O=dev"));
        let mut garbage = json!({"spec": {"request": "bm90IGEgY3Ny", "signerName": CLIENT_SIGNER}});
        add_condition(&mut garbage, "Approved", "KubectlApprove", "approved");
        sign_if_approved(Some(&signer()), &mut garbage);
        assert!(has_condition(&garbage, "Failed"));
    }
}
