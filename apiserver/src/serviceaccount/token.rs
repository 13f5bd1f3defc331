//! Service-account tokens as compact JWS: ES256 over the claims Kubernetes puts in them,
//! signed and verified with the cluster's P-256 service-account key (`pki/sa.key`).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::SystemRandom;
use ring::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair,
    UnparsedPublicKey,
};
use serde::{Deserialize, Deserializer, Serialize};

/// The issuer kube-apiserver names by default, also the audience the API server accepts.
pub const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
const ALGORITHM: &str = "ES256";
/// How far a token's `nbf` may lie ahead of this clock (another server's clock may run fast).
const CLOCK_SKEW_SECS: i64 = 60;

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("the service-account key is not a PKCS#8 P-256 private key: {reason}")]
    Key { reason: String },
    #[error("signing the token failed")]
    Sign,
    #[error("the token is not a compact JWS")]
    Shape,
    #[error("the token's {part} is not valid base64url JSON")]
    Encoding { part: &'static str },
    #[error("the token is signed with {alg:?}, not ES256")]
    Algorithm { alg: String },
    #[error("the token names key {kid:?}, not this server's")]
    UnknownKey { kid: String },
    #[error("the token's signature does not verify")]
    Signature,
    #[error("the token was issued by {iss:?}")]
    Issuer { iss: String },
    #[error("the token expired at {exp}")]
    Expired { exp: i64 },
    #[error("the token is not valid before {nbf}")]
    NotYetValid { nbf: i64 },
    #[error("the token is not meant for audience {audience:?}")]
    Audience { audience: String },
}

/// A `{name, uid}` reference in the `kubernetes.io` claim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectRef {
    pub name: String,
    pub uid: String,
}

/// The private `kubernetes.io` claim: who the token is for and what it is bound to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KubernetesClaims {
    pub namespace: String,
    pub serviceaccount: ObjectRef,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<ObjectRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<ObjectRef>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    #[serde(deserialize_with = "one_or_many")]
    pub aud: Vec<String>,
    pub sub: String,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    pub jti: String,
    #[serde(rename = "kubernetes.io")]
    pub kubernetes: KubernetesClaims,
}

/// RFC 7519 lets `aud` be one string or an array of them.
fn one_or_many<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Audience {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Audience::deserialize(deserializer)? {
        Audience::One(one) => vec![one],
        Audience::Many(many) => many,
    })
}

#[derive(Serialize, Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    kid: String,
}

/// The service-account signing key and the key id tokens carry.
pub struct TokenKey {
    pair: EcdsaKeyPair,
    kid: String,
    rng: SystemRandom,
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenKey").field("kid", &self.kid).finish()
    }
}

impl TokenKey {
    /// Loads the PEM `PRIVATE KEY` (PKCS#8) that `ClusterPki::ensure` writes.
    pub fn from_pem(pem: &str) -> Result<TokenKey, TokenError> {
        let der = rustls_pemfile::pkcs8_private_keys(&mut pem.as_bytes())
            .next()
            .ok_or_else(|| TokenError::Key {
                reason: "no PRIVATE KEY block".into(),
            })?
            .map_err(|e| TokenError::Key {
                reason: e.to_string(),
            })?;
        Self::from_pkcs8(der.secret_pkcs8_der())
    }

    /// A fresh key that lives as long as the process: for API servers without a data dir,
    /// such as in-process test servers, whose tokens need not outlive them.
    pub fn generate() -> Result<TokenKey, TokenError> {
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                .map_err(|e| TokenError::Key {
                    reason: e.to_string(),
                })?;
        Self::from_pkcs8(pkcs8.as_ref())
    }

    fn from_pkcs8(der: &[u8]) -> Result<TokenKey, TokenError> {
        let rng = SystemRandom::new();
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der, &rng).map_err(|e| {
                TokenError::Key {
                    reason: e.to_string(),
                }
            })?;
        let digest = ring::digest::digest(&ring::digest::SHA256, pair.public_key().as_ref());
        Ok(TokenKey {
            kid: URL_SAFE_NO_PAD.encode(digest.as_ref()),
            pair,
            rng,
        })
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn sign(&self, claims: &Claims) -> Result<String, TokenError> {
        let header = Header {
            alg: ALGORITHM.into(),
            kid: self.kid.clone(),
        };
        let signing_input = format!("{}.{}", encode_json(&header)?, encode_json(claims)?);
        let signature = self
            .pair
            .sign(&self.rng, signing_input.as_bytes())
            .map_err(|_| TokenError::Sign)?;
        Ok(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature.as_ref())
        ))
    }

    /// The claims of a token this key signed that is valid at `now` (Unix seconds) for
    /// `audience`. Never panics, whatever the input.
    pub fn verify(&self, token: &str, audience: &str, now: i64) -> Result<Claims, TokenError> {
        let (signing_input, signature) = token.rsplit_once('.').ok_or(TokenError::Shape)?;
        let (header, payload) = signing_input
            .split_once('.')
            .filter(|(_, payload)| !payload.contains('.'))
            .ok_or(TokenError::Shape)?;
        let header: Header = decode_json(header, "header")?;
        if header.alg != ALGORITHM {
            return Err(TokenError::Algorithm { alg: header.alg });
        }
        if header.kid != self.kid {
            return Err(TokenError::UnknownKey { kid: header.kid });
        }
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| TokenError::Encoding { part: "signature" })?;
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, self.pair.public_key().as_ref())
            .verify(signing_input.as_bytes(), &signature)
            .map_err(|_| TokenError::Signature)?;
        let claims: Claims = decode_json(payload, "claims")?;
        if claims.iss != ISSUER {
            return Err(TokenError::Issuer { iss: claims.iss });
        }
        if claims.exp <= now {
            return Err(TokenError::Expired { exp: claims.exp });
        }
        if claims.nbf > now + CLOCK_SKEW_SECS {
            return Err(TokenError::NotYetValid { nbf: claims.nbf });
        }
        if !claims.aud.iter().any(|a| a == audience) {
            return Err(TokenError::Audience {
                audience: audience.into(),
            });
        }
        Ok(claims)
    }
}

fn encode_json<T: Serialize>(value: &T) -> Result<String, TokenError> {
    let json = serde_json::to_vec(value).map_err(|_| TokenError::Sign)?;
    Ok(URL_SAFE_NO_PAD.encode(json))
}

fn decode_json<T: serde::de::DeserializeOwned>(
    part: &str,
    name: &'static str,
) -> Result<T, TokenError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| TokenError::Encoding { part: name })?;
    serde_json::from_slice(&bytes).map_err(|_| TokenError::Encoding { part: name })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pem() -> String {
        rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .unwrap()
            .serialize_pem()
    }

    fn key() -> TokenKey {
        TokenKey::from_pem(&pem()).unwrap()
    }

    fn claims(aud: &[&str], exp: i64) -> Claims {
        Claims {
            iss: ISSUER.into(),
            aud: aud.iter().map(|a| a.to_string()).collect(),
            sub: "system:serviceaccount:default:builder".into(),
            iat: 1000,
            nbf: 1000,
            exp,
            jti: "j".into(),
            kubernetes: KubernetesClaims {
                namespace: "default".into(),
                serviceaccount: ObjectRef {
                    name: "builder".into(),
                    uid: "sa-uid".into(),
                },
                pod: Some(ObjectRef {
                    name: "web".into(),
                    uid: "pod-uid".into(),
                }),
                node: None,
            },
        }
    }

    #[test]
    fn a_signed_token_verifies_to_its_claims() {
        let key = key();
        let issued = claims(&[ISSUER], 5000);
        let token = key.sign(&issued).unwrap();
        assert_eq!(token.split('.').count(), 3);
        assert_eq!(key.verify(&token, ISSUER, 2000).unwrap(), issued);
        let header: Header = decode_json(token.split('.').next().unwrap(), "header").unwrap();
        assert_eq!(
            (header.alg.as_str(), header.kid.as_str()),
            ("ES256", key.kid())
        );
    }

    #[test]
    fn the_key_survives_a_pem_round_trip() {
        let pem = pem();
        let (first, second) = (
            TokenKey::from_pem(&pem).unwrap(),
            TokenKey::from_pem(&pem).unwrap(),
        );
        assert_eq!(first.kid(), second.kid());
        let token = first.sign(&claims(&[ISSUER], 5000)).unwrap();
        assert!(second.verify(&token, ISSUER, 2000).is_ok());
        assert!(matches!(
            TokenKey::from_pem("not a key"),
            Err(TokenError::Key { .. })
        ));
    }

    #[test]
    fn a_generated_key_signs_and_is_its_own() {
        let (key, other) = (TokenKey::generate().unwrap(), TokenKey::generate().unwrap());
        assert_ne!(key.kid(), other.kid());
        let token = key.sign(&claims(&[ISSUER], 5000)).unwrap();
        assert!(key.verify(&token, ISSUER, 2000).is_ok());
        assert!(other.verify(&token, ISSUER, 2000).is_err());
    }

    #[test]
    fn another_keys_or_a_tampered_signature_is_refused() {
        let (ours, theirs) = (key(), key());
        let token = theirs.sign(&claims(&[ISSUER], 5000)).unwrap();
        assert!(matches!(
            ours.verify(&token, ISSUER, 2000),
            Err(TokenError::UnknownKey { .. })
        ));
        // Same kid, claims swapped for others: the signature no longer covers them.
        let genuine = ours.sign(&claims(&[ISSUER], 5000)).unwrap();
        let forged_claims =
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims(&[ISSUER], 9999)).unwrap());
        let mut parts: Vec<&str> = genuine.split('.').collect();
        parts[1] = &forged_claims;
        assert!(matches!(
            ours.verify(&parts.join("."), ISSUER, 2000),
            Err(TokenError::Signature)
        ));
    }

    #[test]
    fn expired_early_or_foreign_audience_tokens_are_refused() {
        let key = key();
        let token = key.sign(&claims(&[ISSUER], 5000)).unwrap();
        assert!(matches!(
            key.verify(&token, ISSUER, 5000),
            Err(TokenError::Expired { exp: 5000 })
        ));
        assert!(matches!(
            key.verify(&token, ISSUER, 900),
            Err(TokenError::NotYetValid { nbf: 1000 })
        ));
        let vault = key.sign(&claims(&["vault"], 5000)).unwrap();
        assert!(matches!(
            key.verify(&vault, ISSUER, 2000),
            Err(TokenError::Audience { .. })
        ));
        assert!(key.verify(&vault, "vault", 2000).is_ok());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let key = key();
        let header = URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"ES256","kid":"{}"}}"#, key.kid()));
        let none = URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#);
        for garbage in [
            String::new(),
            "abcdef.0123456789abcdef".into(),
            "a.b.c.d".into(),
            "..".into(),
            "%%%.%%%.%%%".into(),
            format!("{header}.e30.AAAA"),
            format!("{header}.e30."),
            format!("{header}.!!.AAAA"),
            format!("{none}.e30."),
            "é.é.é".into(),
        ] {
            assert!(key.verify(&garbage, ISSUER, 2000).is_err(), "{garbage}");
        }
    }

    #[test]
    fn a_single_string_audience_is_accepted() {
        let json = serde_json::json!({
            "iss": ISSUER, "aud": ISSUER, "sub": "s", "iat": 0, "nbf": 0, "exp": 1, "jti": "j",
            "kubernetes.io": {"namespace": "n", "serviceaccount": {"name": "a", "uid": "u"}},
        });
        let claims: Claims = serde_json::from_value(json).unwrap();
        assert_eq!(claims.aud, vec![ISSUER.to_string()]);
        assert_eq!(claims.kubernetes.pod, None);
    }
}
