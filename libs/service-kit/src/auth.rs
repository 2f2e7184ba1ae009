//! Admin calls: `Authorization: Bearer <ADMIN_TOKEN>`. With no token configured, admin calls are
//! refused (403) rather than open. An accepted call is made by an [`Actor`]: a fingerprint of the
//! token, which the audit log records and which cannot be turned back into the token.

use std::fmt;

use axum::http::{HeaderMap, StatusCode, header};
use sha2::{Digest, Sha256};

use crate::error::ApiError;

/// Who made an admin call: `token:` and the first 12 hex digits of the token's SHA-256.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Actor(String);

impl Actor {
    pub fn of_token(token: &str) -> Actor {
        let digest = Sha256::digest(token.as_bytes());
        let hex: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
        Actor(format!("token:{hex}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Clone, Default)]
pub struct AdminToken(Option<std::sync::Arc<str>>);

impl AdminToken {
    pub fn new(token: Option<&str>) -> AdminToken {
        AdminToken(token.filter(|t| !t.is_empty()).map(Into::into))
    }

    /// Whether the request carries the admin token: the actor if it does, else the 401/403.
    pub fn check(&self, headers: &HeaderMap) -> Result<Actor, ApiError> {
        let Some(expected) = &self.0 else {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "ADMIN_DISABLED",
                "admin calls are disabled: no ADMIN_TOKEN is configured",
            ));
        };
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if constant_time_eq(given.as_bytes(), expected.as_bytes()) {
            Ok(Actor::of_token(given))
        } else {
            Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "UNAUTHORIZED",
                "admin calls need Authorization: Bearer <ADMIN_TOKEN>",
            ))
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bearer(token: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            format!("Bearer {token}").parse().unwrap(),
        );
        h
    }

    #[test]
    fn no_configured_token_means_forbidden_whatever_is_sent() {
        let err = AdminToken::new(None).check(&bearer("x")).unwrap_err();
        assert_eq!(err.status, StatusCode::FORBIDDEN);
        assert_eq!(
            AdminToken::new(Some(""))
                .check(&bearer(""))
                .unwrap_err()
                .status,
            StatusCode::FORBIDDEN
        );
    }

    #[test]
    fn the_actor_is_a_stable_fingerprint_that_does_not_show_the_token() {
        let admin = AdminToken::new(Some("s3cret-token"));
        let actor = admin.check(&bearer("s3cret-token")).unwrap();
        assert_eq!(actor, Actor::of_token("s3cret-token"));
        assert!(actor.as_str().starts_with("token:"));
        assert_eq!(actor.as_str().len(), "token:".len() + 12);
        assert!(!actor.as_str().contains("s3cret"));
        assert_ne!(actor, Actor::of_token("another"));
    }

    #[test]
    fn only_the_exact_token_passes() {
        let admin = AdminToken::new(Some("s3cret"));
        assert!(admin.check(&bearer("s3cret")).is_ok());
        assert_eq!(
            admin.check(&bearer("s3cre")).unwrap_err().status,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            admin.check(&HeaderMap::new()).unwrap_err().status,
            StatusCode::UNAUTHORIZED
        );
    }
}
