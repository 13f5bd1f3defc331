//! CertificateSigningRequests, as kube-apiserver's certificates strategy validates them.

use serde_json::Value;

use super::cause::{Causes, idx, quoted};
use super::container::items;
use super::meta::str_at;
use super::names::is_qualified_name;

/// Key usages a CSR may ask for (`certificates.k8s.io/v1` KeyUsage).
const KEY_USAGES: &[&str] = &[
    "signing",
    "digital signature",
    "content commitment",
    "key encipherment",
    "key agreement",
    "data encipherment",
    "cert sign",
    "crl sign",
    "encipher only",
    "decipher only",
    "any",
    "server auth",
    "client auth",
    "code signing",
    "email protection",
    "s/mime",
    "ipsec end system",
    "ipsec tunnel",
    "ipsec user",
    "timestamping",
    "ocsp signing",
    "microsoft sgc",
    "netscape sgc",
];

pub(crate) fn validate_csr(obj: &Value, old: Option<&Value>, c: &mut Causes) {
    let spec = obj.get("spec").unwrap_or(&Value::Null);
    if str_at(spec, "request").is_empty() {
        c.required("spec.request", "");
    }
    let signer = str_at(spec, "signerName");
    if signer.is_empty() {
        c.required("spec.signerName", "");
    } else if !signer.contains('/') || signer.split('/').any(str::is_empty) {
        c.invalid(
            "spec.signerName",
            quoted(signer),
            "must be a fully qualified domain and path of the form 'example.com/signer-name'",
        );
    } else if let Some((domain, _)) = signer.split_once('/') {
        c.invalid_each("spec.signerName", signer, is_qualified_name(domain));
    }
    let usages = items(spec, "usages");
    if usages.is_empty() {
        c.required("spec.usages", "");
    }
    for (i, usage) in usages.iter().enumerate() {
        let usage = usage.as_str().unwrap_or_default();
        if !KEY_USAGES.contains(&usage) {
            c.not_supported(&idx("spec.usages", i), usage, KEY_USAGES);
        }
    }
    if let Some(seconds) = spec.get("expirationSeconds").and_then(Value::as_i64)
        && seconds < 600
    {
        c.invalid(
            "spec.expirationSeconds",
            seconds.to_string(),
            "may not specify a duration less than 600 seconds (10 minutes)",
        );
    }
    if let Some(old) = old
        && old.get("spec") != obj.get("spec")
    {
        c.invalid("spec", "", "field is immutable");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn causes(obj: &Value, old: Option<&Value>) -> Vec<(String, &'static str)> {
        super::super::test_support::fields(|c| validate_csr(obj, old, c))
    }

    #[test]
    fn a_kubelet_client_request_is_valid() {
        let csr = json!({"spec": {"request": "LS0t", "signerName":
            "kubernetes.io/kube-apiserver-client-kubelet", "usages": ["digital signature", "client auth"]}});
        assert!(causes(&csr, None).is_empty());
    }

    #[test]
    fn missing_fields_and_bad_usages_are_reported() {
        let csr = json!({"spec": {"signerName": "nodomain", "usages": ["flying"],
            "expirationSeconds": 60}});
        let got = causes(&csr, None);
        let fields: Vec<&str> = got.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(
            fields,
            vec![
                "spec.request",
                "spec.signerName",
                "spec.usages[0]",
                "spec.expirationSeconds"
            ]
        );
    }

    #[test]
    fn the_spec_cannot_change() {
        let old = json!({"spec": {"request": "LS0t", "signerName": "a.io/b", "usages": ["any"]}});
        let mut new = old.clone();
        new["spec"]["signerName"] = json!("a.io/c");
        assert_eq!(
            causes(&new, Some(&old)),
            vec![("spec".into(), "FieldValueInvalid")]
        );
    }
}
