//! Users, permissions and API tokens, as MLflow 3.17.2's basic-auth app defines them
//! (`mlflow/server/auth/permissions.py`), plus twinloop's scoped tokens. The credential
//! functions are here so that the server (login) and the CLI (first admin, `twinloop auth`) hash
//! and check alike.

use std::fmt;
use std::str::FromStr;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use base64::Engine as _;
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::{Error, Result};

/// What a user may do with one experiment or registered model. The order is MLflow's priority:
/// a higher level includes every capability of a lower one. `Deny` (a role's explicit veto) is
/// below everything, so no `max` can pick it over a grant; [`resolve`] checks it first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Permission {
    Deny,
    NoPermissions,
    Read,
    Use,
    Edit,
    Manage,
}

impl Permission {
    pub const ALL: [Permission; 6] = [
        Permission::Deny,
        Permission::NoPermissions,
        Permission::Read,
        Permission::Use,
        Permission::Edit,
        Permission::Manage,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Permission::Deny => "DENY",
            Permission::NoPermissions => "NO_PERMISSIONS",
            Permission::Read => "READ",
            Permission::Use => "USE",
            Permission::Edit => "EDIT",
            Permission::Manage => "MANAGE",
        }
    }

    pub fn can_read(self) -> bool {
        self >= Permission::Read
    }

    pub fn can_use(self) -> bool {
        self >= Permission::Use
    }

    pub fn can_update(self) -> bool {
        self >= Permission::Edit
    }

    /// Deleting and granting others access need MANAGE (CVE-2024-4263: EDIT once could delete).
    pub fn can_manage(self) -> bool {
        self >= Permission::Manage
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Permission {
    type Err = Error;

    fn from_str(s: &str) -> Result<Permission> {
        Permission::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| {
                Error::invalid(format!(
                    "Invalid permission '{s}'. Valid permissions are: ('READ', 'USE', 'EDIT', \
                     'MANAGE', 'NO_PERMISSIONS', 'DENY')"
                ))
            })
    }
}

/// The kinds of resource a permission is granted on (MLflow's `resource_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResourceType {
    Experiment,
    RegisteredModel,
}

impl ResourceType {
    pub fn name(self) -> &'static str {
        match self {
            ResourceType::Experiment => "experiment",
            ResourceType::RegisteredModel => "registered_model",
        }
    }
}

impl FromStr for ResourceType {
    type Err = Error;

    fn from_str(s: &str) -> Result<ResourceType> {
        match s {
            "experiment" => Ok(ResourceType::Experiment),
            "registered_model" => Ok(ResourceType::RegisteredModel),
            other => Err(Error::invalid(format!(
                "Unsupported resource_type '{other}'. Supported: 'experiment', 'registered_model'"
            ))),
        }
    }
}

/// One user's level on one resource (an experiment id or a registered model's name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub username: String,
    pub resource_type: ResourceType,
    pub resource_id: String,
    pub permission: Permission,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: i64,
    pub username: String,
    pub is_admin: bool,
}

/// The workspace every resource lives in: twinloop has no workspaces, so only roles of this
/// one grant anything (as MLflow with workspaces disabled).
pub const DEFAULT_WORKSPACE: &str = "default";

/// Role names MLflow keeps for each user's own grants (`__user_<id>__`); nobody may make one.
pub const RESERVED_ROLE_PREFIX: &str = "__user_";

/// A named set of grants, assigned to users (MLflow 3.17's RBAC role).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Role {
    pub id: i64,
    pub name: String,
    pub workspace: String,
    pub description: Option<String>,
    pub permissions: Vec<RolePermission>,
}

impl Role {
    /// Whether the role makes its members admins of its workspace (MANAGE on `workspace`/`*`).
    pub fn administers_workspace(&self) -> bool {
        self.permissions.iter().any(|p| {
            p.resource_type == "workspace"
                && p.resource_pattern == "*"
                && p.permission == Permission::Manage
        })
    }
}

/// One grant of a role: a level on every resource of a type (`*`) or on one by id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolePermission {
    pub id: i64,
    pub role_id: i64,
    /// Kept as MLflow's text: it accepts resource types twinloop has no routes for (prompts,
    /// scorers, gateways), and a client that set them reads them back.
    pub resource_type: String,
    pub resource_pattern: String,
    pub permission: Permission,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleAssignment {
    pub id: i64,
    pub user_id: i64,
    pub role_id: i64,
}

/// MLflow 3.17.2's resource types of a role permission, sorted as its messages list them, and
/// whether each takes one resource's id (the others take only `*`).
const ROLE_RESOURCE_TYPES: [(&str, bool); 18] = [
    ("assessment", false),
    ("experiment", true),
    ("gateway_endpoint", true),
    ("gateway_model_definition", true),
    ("gateway_secret", true),
    ("logged_model", false),
    ("mcp_server", true),
    ("mcp_server_version", false),
    ("prompt", true),
    ("prompt_version", false),
    ("registered_model", true),
    ("registered_model_version", false),
    ("review_queue", false),
    ("run", false),
    ("scorer", true),
    ("scorer_version", false),
    ("trace", false),
    ("workspace", false),
];

fn python_tuple(items: &[&str]) -> String {
    let quoted: Vec<String> = items.iter().map(|i| format!("'{i}'")).collect();
    format!("({})", quoted.join(", "))
}

/// The permission of a new or changed role grant, checked as MLflow's
/// `_validate_permission_for_resource_type` and `_validate_resource_pattern` do (a pattern a
/// type cannot take would be ignored silently when resolving, so it is refused here).
pub fn role_permission(
    resource_type: &str,
    resource_pattern: Option<&str>,
    permission: &str,
) -> Result<Permission> {
    let level: Permission = permission.parse()?;
    let Some((_, takes_ids)) = ROLE_RESOURCE_TYPES
        .iter()
        .find(|(t, _)| *t == resource_type)
    else {
        let names: Vec<&str> = ROLE_RESOURCE_TYPES.iter().map(|(t, _)| *t).collect();
        return Err(Error::invalid(format!(
            "Invalid resource type '{resource_type}'. Valid resource types are: {}",
            python_tuple(&names)
        )));
    };
    if resource_type == "workspace" {
        if !matches!(level, Permission::Use | Permission::Manage) {
            return Err(Error::invalid(format!(
                "Invalid permission '{permission}' for resource_type='workspace'. Workspace-wide \
                 grants accept only: ('MANAGE', 'USE')."
            )));
        }
    } else if level == Permission::NoPermissions {
        return Err(Error::invalid(format!(
            "Invalid permission '{permission}' for resource_type='{resource_type}'. \
             Resource-level grants accept only: ('DENY', 'EDIT', 'MANAGE', 'READ', 'USE')."
        )));
    }
    if let Some(pattern) = resource_pattern
        && pattern != "*"
        && !takes_ids
    {
        return Err(Error::invalid(format!(
            "Invalid resource_pattern '{pattern}' for resource_type='{resource_type}'. This \
             resource type supports only wildcard ('*') grants."
        )));
    }
    Ok(level)
}

/// A grant that applies to one resource for one user: their own, or one of their roles' (on
/// that resource, on `*`, or MANAGE on the whole workspace).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppliedGrant {
    pub workspace_admin: bool,
    pub permission: Permission,
}

/// A user's level on a resource, from every grant that applies, as MLflow 3.17.2 folds them
/// (`fold_grants_for_key`, then `_get_role_permission_or_default`): a workspace admin has
/// MANAGE whatever else says; any DENY vetoes; else the highest grant, raised to
/// `default_permission` unless it is NO_PERMISSIONS; no grant at all is `default_permission`.
pub fn resolve(grants: &[AppliedGrant], default_permission: Permission) -> Permission {
    if grants.iter().any(|g| g.workspace_admin) {
        return Permission::Manage;
    }
    if grants.iter().any(|g| g.permission == Permission::Deny) {
        return Permission::Deny;
    }
    match grants.iter().map(|g| g.permission).max() {
        None => default_permission,
        Some(Permission::NoPermissions) => Permission::NoPermissions,
        Some(granted) => granted.max(default_permission),
    }
}

/// A user with the stored hash of their password, for checking a login.
#[derive(Debug, Clone)]
pub struct UserCredentials {
    pub user: User,
    pub password_hash: String,
}

/// What an API token may do, whatever its user's grants allow: the effective level is the lower
/// of the two.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenScope {
    /// Reads only.
    Read,
    /// Reads and writes (logging runs, registering models).
    Write,
    /// Writes, and moving what serves: deployments, promotion, rollback.
    Deploy,
    /// Everything the user may do, user administration included.
    Admin,
    /// Only inference (`/v2` predictions): no resource is readable through it.
    Infer,
}

impl TokenScope {
    pub const ALL: [TokenScope; 5] = [
        TokenScope::Read,
        TokenScope::Write,
        TokenScope::Deploy,
        TokenScope::Admin,
        TokenScope::Infer,
    ];

    pub fn name(self) -> &'static str {
        match self {
            TokenScope::Read => "read",
            TokenScope::Write => "write",
            TokenScope::Deploy => "deploy",
            TokenScope::Admin => "admin",
            TokenScope::Infer => "infer",
        }
    }

    /// The highest resource level a request through this token can use.
    pub fn ceiling(self) -> Permission {
        match self {
            TokenScope::Infer => Permission::NoPermissions,
            TokenScope::Read => Permission::Read,
            TokenScope::Write => Permission::Edit,
            TokenScope::Deploy | TokenScope::Admin => Permission::Manage,
        }
    }
}

impl fmt::Display for TokenScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for TokenScope {
    type Err = Error;

    fn from_str(s: &str) -> Result<TokenScope> {
        TokenScope::ALL
            .into_iter()
            .find(|t| t.name() == s)
            .ok_or_else(|| {
                Error::invalid(format!(
                    "invalid token scope {s:?} (read, write, deploy, admin or infer)"
                ))
            })
    }
}

/// An API token as stored: never the token itself, only its digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiToken {
    pub id: i64,
    pub username: String,
    pub scope: TokenScope,
    pub description: String,
    pub created_ms: i64,
}

/// Tokens start with this, so a token pasted where a password goes is recognised as one, and
/// secret scanners can find leaked ones.
pub const TOKEN_PREFIX: &str = "tlp_";

/// A new API token: 256 random bits, shown to its owner once.
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!(
        "{TOKEN_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// What is stored of a token. A token has 256 bits of entropy, so a fast hash is enough: nobody
/// can guess a preimage, and a lookup by digest costs no key stretching per request.
pub fn token_digest(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Hashes a password with Argon2id (memory-hard, salted; the PHC string keeps its parameters).
pub fn hash_password(password: &str) -> Result<String> {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    // argon2's error type is not a std::error::Error without its `std` feature, hence the text.
    let salt = SaltString::encode_b64(&salt)
        .map_err(|e| Error::internal(format!("cannot encode a password salt: {e}")))?;
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| Error::internal(format!("cannot hash a password: {e}")))
}

/// Whether `password` matches a hash made by [`hash_password`]; an unreadable hash matches
/// nothing.
pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| {
        argon2::Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permissions_order_as_mlflow_and_parse_their_names() {
        assert!(Permission::Manage.can_manage() && !Permission::Edit.can_manage());
        assert!(Permission::Edit.can_update() && !Permission::Use.can_update());
        assert!(Permission::Use.can_use() && !Permission::Read.can_use());
        assert!(Permission::Read.can_read() && !Permission::NoPermissions.can_read());
        for p in Permission::ALL {
            assert_eq!(p.name().parse::<Permission>().unwrap(), p);
        }
        assert!("read".parse::<Permission>().is_err());
    }

    #[test]
    fn a_password_verifies_against_its_hash_only() {
        let hash = hash_password("s3cret").unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password("s3cret", &hash));
        assert!(!verify_password("s3cret ", &hash));
        assert!(!verify_password("s3cret", "not a hash"));
        assert_ne!(hash, hash_password("s3cret").unwrap(), "salted");
    }

    #[test]
    fn tokens_are_random_and_stored_as_digests() {
        let (a, b) = (new_token(), new_token());
        assert_ne!(a, b);
        assert!(a.starts_with(TOKEN_PREFIX) && a.len() == TOKEN_PREFIX.len() + 43);
        assert_eq!(token_digest(&a), token_digest(&a));
        assert_eq!(token_digest(&a).len(), 64);
        assert_ne!(token_digest(&a), token_digest(&b));
    }

    #[test]
    fn scopes_cap_levels() {
        assert_eq!(TokenScope::Read.ceiling(), Permission::Read);
        assert_eq!(TokenScope::Infer.ceiling(), Permission::NoPermissions);
        assert_eq!(TokenScope::Write.ceiling(), Permission::Edit);
        assert_eq!(TokenScope::Deploy.ceiling(), Permission::Manage);
        for s in TokenScope::ALL {
            assert_eq!(s.name().parse::<TokenScope>().unwrap(), s);
        }
    }

    #[test]
    fn grants_fold_as_mlflow_deny_first_then_the_highest_then_the_default() {
        let g = |permission| AppliedGrant {
            workspace_admin: false,
            permission,
        };
        use Permission::*;
        assert_eq!(resolve(&[], Read), Read);
        assert_eq!(resolve(&[], NoPermissions), NoPermissions);
        assert_eq!(resolve(&[g(Edit), g(Read)], Read), Edit);
        assert_eq!(
            resolve(&[g(Use)], Edit),
            Edit,
            "a grant is raised to the default"
        );
        assert_eq!(resolve(&[g(NoPermissions)], Read), NoPermissions);
        assert_eq!(resolve(&[g(NoPermissions), g(Read)], NoPermissions), Read);
        assert_eq!(
            resolve(&[g(Manage), g(Deny)], Read),
            Deny,
            "a veto beats any grant"
        );
        let admin = AppliedGrant {
            workspace_admin: true,
            permission: Manage,
        };
        assert_eq!(resolve(&[g(Deny), admin], Read), Manage);
        assert!(!Deny.can_read() && Deny < NoPermissions);
    }

    #[test]
    fn role_permissions_are_checked_as_mlflow() {
        assert_eq!(
            role_permission("experiment", Some("1"), "DENY").unwrap(),
            Permission::Deny
        );
        assert_eq!(
            role_permission("workspace", Some("*"), "MANAGE").unwrap(),
            Permission::Manage
        );
        let e = role_permission("workspace", Some("*"), "READ").unwrap_err();
        assert!(e.message.contains("accept only: ('MANAGE', 'USE')"), "{e}");
        let e = role_permission("run", Some("abc"), "READ").unwrap_err();
        assert!(e.message.contains("supports only wildcard"), "{e}");
        let e = role_permission("model", Some("*"), "READ").unwrap_err();
        assert!(e.message.starts_with("Invalid resource type 'model'. Valid resource types are: ('assessment', 'experiment',"), "{e}");
        let e = role_permission("experiment", Some("1"), "NO_PERMISSIONS").unwrap_err();
        assert!(
            e.message
                .contains("('DENY', 'EDIT', 'MANAGE', 'READ', 'USE')"),
            "{e}"
        );
        assert!(role_permission("experiment", Some("1"), "OWNER").is_err());
    }
}
