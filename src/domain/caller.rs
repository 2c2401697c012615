//! Who is calling, once the credentials were checked, and the identity stamped on their events.

use serde::{Deserialize, Serialize};

/// The roles a JWT can carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "UPPERCASE")]
#[value(rename_all = "UPPERCASE")]
pub enum Role {
    Admin,
    Creator,
    Brand,
    Viewer,
    /// A trusted server: may track events on behalf of a user (`userId`).
    Service,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "ADMIN",
            Self::Creator => "CREATOR",
            Self::Brand => "BRAND",
            Self::Viewer => "VIEWER",
            Self::Service => "SERVICE",
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

    /// Whether this caller may set `userId` on an event (docs/identity-and-limits.md, trusted servers): a
    /// SERVICE JWT or the admin token.
    pub fn may_act_for_users(&self) -> bool {
        match self {
            Self::AdminToken => true,
            Self::User(claims) => claims.role == Role::Service,
            Self::Anonymous => false,
        }
    }

    /// The identity stamped on an event this caller tracks for `user_id`, when it may.
    pub fn identity_for(&self, user_id: Option<&str>) -> EventIdentity {
        match user_id {
            Some(user) if self.may_act_for_users() => EventIdentity {
                actor_id: Some(user.to_owned()),
                actor_type: "service".to_owned(),
                user_id: Some(user.to_owned()),
                creator_id: None,
                brand_id: None,
            },
            _ => self.identity(),
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
