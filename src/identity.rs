//! Who is calling: the request facts a transport saw ([`RequestContext`]) turned into a
//! [`Caller`] by the [`Authenticator`].
//!
//! Credentials are a bearer token: a JWT signed with HS256 and the configured secret (claims
//! `sub`, `role`, optional `creatorId`, `brandId`, `exp`), or the operator's static admin
//! token. No token means anonymous. A token that is present but bad — wrong signature, another
//! algorithm (including `none`), expired, malformed, unknown role — is UNAUTHORIZED on every
//! procedure, never silently anonymous.

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};

use crate::domain::{Caller, Claims, RequestContext};

/// Why a request's credentials were not good enough; `api::error` maps it to the wire.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// Missing where required, malformed, badly signed or expired (UNAUTHORIZED).
    #[error("{0}")]
    Unauthenticated(String),
    /// Valid, but the role may not do this (FORBIDDEN).
    #[error("{0}")]
    Forbidden(String),
}

impl AuthError {
    /// A stable tag for logs and metrics.
    pub fn tag(&self) -> &'static str {
        match self {
            Self::Unauthenticated(_) => "unauthenticated",
            Self::Forbidden(_) => "forbidden",
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

    /// The secret itself, to derive other keys from; never log it.
    pub fn expose(&self) -> &str {
        &self.0
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
    pub fn authenticate(&self, context: &RequestContext) -> Result<Caller, AuthError> {
        let Some(header) = context.authorization.as_deref() else {
            return Ok(Caller::Anonymous);
        };
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|token| !token.is_empty())
            .ok_or_else(|| {
                AuthError::Unauthenticated(
                    "Authorization header must be 'Bearer <token>'".to_owned(),
                )
            })?;
        if self
            .admin_token
            .as_ref()
            .is_some_and(|admin| admin.matches(token))
        {
            return Ok(Caller::AdminToken);
        }
        let Some((key, validation)) = &self.jwt else {
            return Err(AuthError::Unauthenticated("Invalid token".to_owned()));
        };
        let claims = jsonwebtoken::decode::<Claims>(token, key, validation)
            .map_err(|error| AuthError::Unauthenticated(token_error_message(&error)))?
            .claims;
        if claims.sub.trim().is_empty() {
            return Err(AuthError::Unauthenticated(
                "Invalid token: empty subject".to_owned(),
            ));
        }
        Ok(Caller::User(claims))
    }

    /// ADMIN-only procedures: no credentials → UNAUTHORIZED, other roles → FORBIDDEN.
    pub fn require_admin(&self, context: &RequestContext) -> Result<Caller, AuthError> {
        match self.authenticate(context)? {
            Caller::Anonymous => Err(AuthError::Unauthenticated(
                "This procedure requires an admin token".to_owned(),
            )),
            caller if caller.is_admin() => Ok(caller),
            _ => Err(AuthError::Forbidden(
                "This procedure is for admins only".to_owned(),
            )),
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
        ErrorKind::Json(_) => "claims do not match (sub, role ADMIN|CREATOR|BRAND|VIEWER|SERVICE)",
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
    use crate::domain::Role;

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
            assert!(matches!(error, AuthError::Unauthenticated(_)), "{bad}");
        }
    }

    #[test]
    fn admin_procedures_need_an_admin() {
        let auth = auth();
        let error = auth
            .require_admin(&RequestContext::default())
            .expect_err("anonymous");
        assert!(matches!(error, AuthError::Unauthenticated(_)));
        let viewer = mint_token(&Secret::new(SECRET), claims(Role::Viewer), None).expect("mint");
        let error = auth
            .require_admin(&with_header(&format!("Bearer {viewer}")))
            .expect_err("viewer");
        assert!(matches!(error, AuthError::Forbidden(_)));
        assert!(
            auth.require_admin(&with_header("Bearer s3cret-admin-token"))
                .is_ok()
        );
    }
}
