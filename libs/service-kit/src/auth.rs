//! Admin calls: `Authorization: Bearer <ADMIN_TOKEN>`. With no token configured, admin calls are
//! refused (403) rather than open.

use axum::http::{HeaderMap, StatusCode, header};

use crate::error::ApiError;

#[derive(Clone, Default)]
pub struct AdminToken(Option<std::sync::Arc<str>>);

impl AdminToken {
    pub fn new(token: Option<&str>) -> AdminToken {
        AdminToken(token.filter(|t| !t.is_empty()).map(Into::into))
    }

    pub fn check(&self, headers: &HeaderMap) -> Result<(), ApiError> {
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
            Ok(())
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
