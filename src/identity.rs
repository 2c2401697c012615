//! Who is calling: the request facts a transport saw ([`RequestContext`]) turned into a
//! [`Caller`] by the [`Authenticator`].
//!
//! Today an operator-configured admin token grants ADMIN; any other bearer token is refused,
//! never silently treated as anonymous. JWT verification plugs in here.

use std::net::SocketAddr;

use crate::api::error::ApiError;

/// What a transport knows about a request, inserted into jsonrpsee's `Extensions` by the HTTP
/// layer (and built by the tRPC adapter) so every transport authenticates the same way.
#[derive(Debug, Clone, Default)]
pub struct RequestContext {
    /// The raw `Authorization` header value.
    pub authorization: Option<String>,
    /// The TCP peer.
    pub peer_addr: Option<SocketAddr>,
    pub user_agent: Option<String>,
}

/// The authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    Anonymous,
    /// Holder of the operator's static admin token.
    AdminToken,
}

/// The identity stamped on an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventIdentity {
    pub actor_id: Option<String>,
    pub actor_type: String,
    pub user_id: Option<String>,
    pub creator_id: Option<String>,
    pub brand_id: Option<String>,
}

impl Caller {
    pub fn is_admin(&self) -> bool {
        matches!(self, Self::AdminToken)
    }

    pub fn identity(&self) -> EventIdentity {
        let (actor_id, actor_type) = match self {
            Self::Anonymous => (None, "anonymous"),
            Self::AdminToken => (Some("admin-token".to_owned()), "ADMIN"),
        };
        EventIdentity {
            actor_id,
            actor_type: actor_type.to_owned(),
            user_id: None,
            creator_id: None,
            brand_id: None,
        }
    }
}

/// A secret that never prints.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    fn matches(&self, candidate: &str) -> bool {
        constant_time_eq(self.0.as_bytes(), candidate.as_bytes())
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Turns request credentials into a [`Caller`].
#[derive(Debug, Clone, Default)]
pub struct Authenticator {
    admin_token: Option<Secret>,
}

impl Authenticator {
    pub fn new(admin_token: Option<Secret>) -> Self {
        Self { admin_token }
    }

    /// No credentials → anonymous; the admin token → ADMIN; anything else → UNAUTHORIZED.
    pub fn authenticate(&self, context: &RequestContext) -> Result<Caller, ApiError> {
        let Some(header) = context.authorization.as_deref() else {
            return Ok(Caller::Anonymous);
        };
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|token| !token.is_empty())
            .ok_or_else(|| {
                ApiError::unauthorized("Authorization header must be 'Bearer <token>'")
            })?;
        match &self.admin_token {
            Some(admin) if admin.matches(token) => Ok(Caller::AdminToken),
            _ => Err(ApiError::unauthorized("Invalid or expired token")),
        }
    }

    /// ADMIN-only procedures: no credentials → UNAUTHORIZED, other roles → FORBIDDEN.
    pub fn require_admin(&self, context: &RequestContext) -> Result<Caller, ApiError> {
        match self.authenticate(context)? {
            Caller::Anonymous => Err(ApiError::unauthorized(
                "This procedure requires an admin token",
            )),
            caller if caller.is_admin() => Ok(caller),
            _ => Err(ApiError::forbidden("This procedure is for admins only")),
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::error::ErrorCode;

    fn with_header(value: &str) -> RequestContext {
        RequestContext {
            authorization: Some(value.to_owned()),
            ..RequestContext::default()
        }
    }

    #[test]
    fn tokens_other_than_the_admin_token_are_refused_not_ignored() {
        let auth = Authenticator::new(Some(Secret::new("s3cret")));
        assert_eq!(
            auth.authenticate(&RequestContext::default()),
            Ok(Caller::Anonymous)
        );
        assert_eq!(
            auth.authenticate(&with_header("Bearer s3cret")),
            Ok(Caller::AdminToken)
        );
        for bad in ["Bearer nope", "Bearer ", "Basic s3cret", "s3cret"] {
            let error = auth.authenticate(&with_header(bad)).expect_err(bad);
            assert_eq!(error.code, ErrorCode::Unauthorized, "{bad}");
        }
    }

    #[test]
    fn admin_procedures_need_the_admin_token() {
        let auth = Authenticator::new(None);
        let error = auth
            .require_admin(&RequestContext::default())
            .expect_err("anonymous");
        assert_eq!(error.code, ErrorCode::Unauthorized);
        let error = auth
            .require_admin(&with_header("Bearer anything"))
            .expect_err("no token configured");
        assert_eq!(error.code, ErrorCode::Unauthorized);
    }
}
