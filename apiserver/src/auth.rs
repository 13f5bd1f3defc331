//! Authenticated users: who a request comes from, taken from its client certificate.

use x509_parser::prelude::{FromDer, X509Certificate};

/// The authenticated user of a request, inserted as a request extension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub groups: Vec<String>,
}

/// The user of a request without credentials, where one is allowed at all.
pub const ANONYMOUS: &str = "system:anonymous";

impl User {
    pub fn anonymous() -> User {
        User {
            name: ANONYMOUS.into(),
            groups: vec!["system:unauthenticated".into()],
        }
    }

    /// The identity a client certificate carries: CN is the user, each O a group.
    pub fn from_certificate(der: &[u8]) -> Option<User> {
        let (_, cert) = X509Certificate::from_der(der).ok()?;
        let subject = cert.subject();
        let name = subject
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())?
            .to_string();
        let groups = subject
            .iter_organization()
            .filter_map(|o| o.as_str().ok().map(String::from))
            .collect();
        Some(User { name, groups })
    }
}
