//! Bootstrap tokens: `Authorization: Bearer <id>.<secret>` authenticates a joining node as
//! `system:bootstrap:<id>`, checked against the `bootstrap-token-<id>` Secret in kube-system
//! (the Secret type and keys kubeadm uses).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;

use crate::auth::User;
use crate::error::{ApiError, ApiResult};
use crate::server::ApiServer;

pub const TOKEN_SECRET_TYPE: &str = "bootstrap.kubernetes.io/token";
pub const BOOTSTRAPPERS: &str = "system:bootstrappers";

/// A token as presented: `[a-z0-9]{6}.[a-z0-9]{16}`.
#[derive(Debug, PartialEq, Eq)]
pub struct BootstrapToken<'a> {
    pub id: &'a str,
    pub secret: &'a str,
}

impl<'a> BootstrapToken<'a> {
    pub fn parse(token: &'a str) -> Option<Self> {
        let (id, secret) = token.split_once('.')?;
        let valid = |part: &str, len: usize| {
            part.len() == len
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        };
        (valid(id, 6) && valid(secret, 16)).then_some(BootstrapToken { id, secret })
    }
}

/// The user a bearer token stands for; `Unauthorized` for a token that is malformed,
/// unknown, expired or not meant for authentication.
pub async fn authenticate(server: &ApiServer, bearer: &str) -> ApiResult<User> {
    let token = BootstrapToken::parse(bearer).ok_or(ApiError::Unauthorized)?;
    let secrets = crate::objects::resource("", "v1", "secrets")?;
    let key = crate::objects::key(
        secrets,
        Some("kube-system"),
        &format!("bootstrap-token-{}", token.id),
    );
    let secret = server
        .admission_lookup(&key)
        .await?
        .ok_or(ApiError::Unauthorized)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128);
    user_for(&secret, &token, now).ok_or(ApiError::Unauthorized)
}

fn user_for(secret: &Value, token: &BootstrapToken, now_nanos: i128) -> Option<User> {
    if secret.get("type").and_then(Value::as_str) != Some(TOKEN_SECRET_TYPE)
        || crate::objects::is_deleting(secret)
    {
        return None;
    }
    let data = |key: &str| -> Option<String> {
        let encoded = secret.get("data")?.get(key)?.as_str()?;
        String::from_utf8(STANDARD.decode(encoded).ok()?).ok()
    };
    let secret_matches = data("token-secret").is_some_and(|s| {
        // Constant-time over the secret's length: the comparison must not leak a prefix.
        s.len() == token.secret.len()
            && s.bytes()
                .zip(token.secret.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    });
    if !secret_matches
        || data("token-id").as_deref() != Some(token.id)
        || data("usage-bootstrap-authentication").as_deref() != Some("true")
    {
        return None;
    }
    if let Some(expiration) = data("expiration") {
        let expires = rkube_api::table::time::parse_rfc3339(&expiration)?;
        if expires <= now_nanos {
            return None;
        }
    }
    let mut groups = vec![BOOTSTRAPPERS.to_string()];
    groups.extend(
        data("auth-extra-groups")
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|g| g.starts_with("system:bootstrappers:"))
            .map(String::from),
    );
    groups.push("system:authenticated".into());
    Some(User {
        name: format!("system:bootstrap:{}", token.id),
        groups,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn secret(fields: &[(&str, &str)]) -> Value {
        let data: serde_json::Map<String, Value> = fields
            .iter()
            .map(|(k, v)| (k.to_string(), json!(STANDARD.encode(v))))
            .collect();
        json!({"type": TOKEN_SECRET_TYPE, "data": data})
    }

    const TOKEN: BootstrapToken = BootstrapToken {
        id: "abcdef",
        secret: "0123456789abcdef",
    };

    fn valid() -> Vec<(&'static str, &'static str)> {
        vec![
            ("token-id", "abcdef"),
            ("token-secret", "0123456789abcdef"),
            ("usage-bootstrap-authentication", "true"),
            ("expiration", "2030-01-01T00:00:00Z"),
            ("auth-extra-groups", "system:bootstrappers:worker,evil"),
        ]
    }

    #[test]
    fn tokens_parse_only_in_their_exact_shape() {
        assert_eq!(
            BootstrapToken::parse("abcdef.0123456789abcdef"),
            Some(TOKEN)
        );
        for bad in [
            "abcdef0123456789abcdef",
            "ABCDEF.0123456789abcdef",
            "abc.def",
            "",
        ] {
            assert_eq!(BootstrapToken::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_valid_token_is_a_bootstrapper() {
        let user = user_for(&secret(&valid()), &TOKEN, 0).unwrap();
        assert_eq!(user.name, "system:bootstrap:abcdef");
        assert_eq!(
            user.groups,
            vec![
                "system:bootstrappers",
                "system:bootstrappers:worker",
                "system:authenticated"
            ]
        );
    }

    #[test]
    fn wrong_secret_expired_or_unusable_tokens_are_refused() {
        let wrong = BootstrapToken {
            id: "abcdef",
            secret: "0123456789abcdee",
        };
        assert!(user_for(&secret(&valid()), &wrong, 0).is_none());
        let year_2031 = 1_924_992_000i128 * 1_000_000_000;
        assert!(user_for(&secret(&valid()), &TOKEN, year_2031).is_none());
        let mut no_auth = valid();
        no_auth.retain(|(k, _)| *k != "usage-bootstrap-authentication");
        assert!(user_for(&secret(&no_auth), &TOKEN, 0).is_none());
        let mut opaque = secret(&valid());
        opaque["type"] = json!("Opaque");
        assert!(user_for(&opaque, &TOKEN, 0).is_none());
    }
}
