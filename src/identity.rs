//! Who is calling: the request facts a transport saw ([`RequestContext`]) turned into a
//! [`Caller`] by the [`Authenticator`].
//!
//! Credentials are a bearer token: a JWT signed with HS256 and the configured secret (claims
//! `sub`, `role`, optional `creatorId`, `brandId`, `exp`), or the operator's static admin
//! token. No token means anonymous. A token that is present but bad — wrong signature, another
//! algorithm (including `none`), expired, malformed, unknown role — is UNAUTHORIZED on every
//! procedure, never silently anonymous.

use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::api::error::ApiError;

/// What a transport knows about a request, inserted into jsonrpsee's `Extensions` by the HTTP
/// layer (and built by the tRPC adapter) so every transport authenticates the same way.
#[derive(Debug, Clone, Default)]
pub struct RequestContext {
    /// The raw `Authorization` header value (for WebSocket upgrades, also `?token=`).
    pub authorization: Option<String>,
    /// The client's address: the TCP peer, or what a trusted proxy says it forwarded.
    pub client_ip: Option<IpAddr>,
    pub user_agent: Option<String>,
    /// The `x-sluice-ack` header: `buffered` or `durable` for this request.
    pub ack: Option<String>,
    /// Where a trusted CDN in front of Sluice says the client is.
    pub geo: crate::pipeline::enrichment::Place,
}

/// The roles a JWT can carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "UPPERCASE")]
#[value(rename_all = "UPPERCASE")]
pub enum Role {
    Admin,
    Creator,
    Brand,
    Viewer,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "ADMIN",
            Self::Creator => "CREATOR",
            Self::Brand => "BRAND",
            Self::Viewer => "VIEWER",
        }
    }
}

/// The claims of a Sluice JWT.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Claims {
    pub sub: String,
    pub role: Role,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creator_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub brand_id: Option<String>,
    /// Expiry, seconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<u64>,
}

/// The authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    Anonymous,
    /// A user authenticated by JWT.
    User(Claims),
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
        match self {
            Self::AdminToken => true,
            Self::User(claims) => claims.role == Role::Admin,
            Self::Anonymous => false,
        }
    }

    /// The user id, for rate limiting and deduplication.
    pub fn user_id(&self) -> Option<&str> {
        match self {
            Self::User(claims) => Some(&claims.sub),
            Self::Anonymous | Self::AdminToken => None,
        }
    }

    pub fn identity(&self) -> EventIdentity {
        match self {
            Self::Anonymous => EventIdentity {
                actor_id: None,
                actor_type: "anonymous".to_owned(),
                user_id: None,
                creator_id: None,
                brand_id: None,
            },
            Self::AdminToken => EventIdentity {
                actor_id: Some("admin-token".to_owned()),
                actor_type: "service".to_owned(),
                user_id: None,
                creator_id: None,
                brand_id: None,
            },
            Self::User(claims) => EventIdentity {
                actor_id: Some(claims.sub.clone()),
                actor_type: claims.role.as_str().to_owned(),
                user_id: Some(claims.sub.clone()),
                creator_id: claims.creator_id.clone(),
                brand_id: claims.brand_id.clone(),
            },
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

    fn bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Turns request credentials into a [`Caller`].
#[derive(Clone)]
pub struct Authenticator {
    admin_token: Option<Secret>,
    jwt: Option<(DecodingKey, Validation)>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("admin_token", &self.admin_token.is_some())
            .field("jwt", &self.jwt.is_some())
            .finish()
    }
}

impl Authenticator {
    pub fn new(admin_token: Option<Secret>, jwt_secret: Option<Secret>) -> Self {
        let jwt = jwt_secret.map(|secret| {
            let mut validation = Validation::new(Algorithm::HS256);
            // `exp` is optional in Sluice's tokens, but checked whenever present.
            validation.required_spec_claims.clear();
            validation.validate_exp = true;
            validation.leeway = 30;
            (DecodingKey::from_secret(secret.bytes()), validation)
        });
        Self { admin_token, jwt }
    }

    /// No credentials → anonymous; a valid JWT → that user; the admin token → ADMIN;
    /// anything else → UNAUTHORIZED.
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
        if self
            .admin_token
            .as_ref()
            .is_some_and(|admin| admin.matches(token))
        {
            return Ok(Caller::AdminToken);
        }
        let Some((key, validation)) = &self.jwt else {
            return Err(ApiError::unauthorized("Invalid token"));
        };
        let claims = jsonwebtoken::decode::<Claims>(token, key, validation)
            .map_err(|error| ApiError::unauthorized(token_error_message(&error)))?
            .claims;
        if claims.sub.trim().is_empty() {
            return Err(ApiError::unauthorized("Invalid token: empty subject"));
        }
        Ok(Caller::User(claims))
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

/// What went wrong with a token, without echoing it.
fn token_error_message(error: &jsonwebtoken::errors::Error) -> String {
    use jsonwebtoken::errors::ErrorKind;
    let reason = match error.kind() {
        ErrorKind::ExpiredSignature => "expired",
        ErrorKind::InvalidSignature => "bad signature",
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
            "algorithm not allowed (HS256 only)"
        }
        ErrorKind::ImmatureSignature => "not valid yet",
        ErrorKind::Json(_) => "claims do not match (sub, role ADMIN|CREATOR|BRAND|VIEWER)",
        _ => "malformed",
    };
    format!("Invalid token: {reason}")
}

/// Mints an HS256 token with `secret`, valid for `ttl_seconds` (the `token` subcommand, tests).
pub fn mint_token(
    secret: &Secret,
    mut claims: Claims,
    ttl_seconds: Option<u64>,
) -> Result<String, jsonwebtoken::errors::Error> {
    if let Some(ttl) = ttl_seconds {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_secs());
        claims.exp = Some(now + ttl);
    }
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.bytes()),
    )
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::error::ErrorCode;

    const SECRET: &str = "unit-test-secret-unit-test-secret";

    fn with_header(value: &str) -> RequestContext {
        RequestContext {
            authorization: Some(value.to_owned()),
            ..RequestContext::default()
        }
    }

    fn auth() -> Authenticator {
        Authenticator::new(
            Some(Secret::new("s3cret-admin-token")),
            Some(Secret::new(SECRET)),
        )
    }

    fn claims(role: Role) -> Claims {
        Claims {
            sub: "user-1".into(),
            role,
            creator_id: Some("c1".into()),
            brand_id: None,
            exp: None,
        }
    }

    #[test]
    fn a_valid_token_names_the_user_and_role() {
        let token =
            mint_token(&Secret::new(SECRET), claims(Role::Creator), Some(60)).expect("mint");
        let caller = auth()
            .authenticate(&with_header(&format!("Bearer {token}")))
            .expect("valid");
        let identity = caller.identity();
        assert_eq!(identity.user_id.as_deref(), Some("user-1"));
        assert_eq!(identity.actor_type, "CREATOR");
        assert_eq!(identity.creator_id.as_deref(), Some("c1"));
        assert!(!caller.is_admin());
    }

    #[test]
    fn bad_tokens_are_refused_not_ignored() {
        let other = mint_token(
            &Secret::new("another-secret-another-secret"),
            claims(Role::Admin),
            None,
        )
        .expect("mint");
        for bad in [
            "Bearer nope",
            "Bearer ",
            "Basic abc",
            "abc",
            &format!("Bearer {other}"),
        ] {
            let error = auth().authenticate(&with_header(bad)).expect_err(bad);
            assert_eq!(error.code, ErrorCode::Unauthorized, "{bad}");
        }
    }

    #[test]
    fn admin_procedures_need_an_admin() {
        let auth = auth();
        let error = auth
            .require_admin(&RequestContext::default())
            .expect_err("anonymous");
        assert_eq!(error.code, ErrorCode::Unauthorized);
        let viewer = mint_token(&Secret::new(SECRET), claims(Role::Viewer), None).expect("mint");
        let error = auth
            .require_admin(&with_header(&format!("Bearer {viewer}")))
            .expect_err("viewer");
        assert_eq!(error.code, ErrorCode::Forbidden);
        assert!(
            auth.require_admin(&with_header("Bearer s3cret-admin-token"))
                .is_ok()
        );
    }
}
