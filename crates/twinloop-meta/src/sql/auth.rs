//! Users, grants and API tokens on SQL (`auth_users`, `auth_grants`, `auth_tokens`).

use async_trait::async_trait;
use twinloop_core::auth::{
    ApiToken, AppliedGrant, DEFAULT_WORKSPACE, Grant, Permission, RESERVED_ROLE_PREFIX,
    ResourceType, Role, RoleAssignment, RolePermission, TokenScope, User, UserCredentials,
};
use twinloop_core::time::now_ms;
use twinloop_core::{Error, ErrorKind, Result};

use super::query::{Arg, RowExt};
use super::{SqlStore, db_err};
use crate::store::AuthStore;

const USER_COLUMNS: &str = "id, username, is_admin";
const TOKEN_COLUMNS: &str =
    "t.id, u.username, t.scope, t.description, t.created_time, u.id, u.is_admin";

fn user_from_row(row: &dyn RowExt) -> Result<User> {
    Ok(User {
        id: row.int(0)?,
        username: row.text(1)?,
        is_admin: row.int(2)? != 0,
    })
}

fn token_from_row(row: &dyn RowExt) -> Result<(ApiToken, User)> {
    let token = ApiToken {
        id: row.int(0)?,
        username: row.text(1)?,
        scope: row.text(2)?.parse()?,
        description: row.text(3)?,
        created_ms: row.int(4)?,
    };
    let user = User {
        id: row.int(5)?,
        username: token.username.clone(),
        is_admin: row.int(6)? != 0,
    };
    Ok((token, user))
}

fn user_not_found(username: &str) -> Error {
    Error::not_found(format!("User with username={username} not found"))
}

/// MLflow's rule for a new user: neither name nor password empty.
fn validate_new_user(username: &str, password_hash: &str) -> Result<()> {
    if username.is_empty() || password_hash.is_empty() {
        return Err(Error::invalid("Username and password cannot be empty."));
    }
    Ok(())
}

const ROLE_COLUMNS: &str = "r.id, r.name, r.workspace, r.description";
const ROLE_PERMISSION_COLUMNS: &str = "id, role_id, resource_type, resource_pattern, permission";

fn role_permission_from_row(row: &dyn RowExt) -> Result<RolePermission> {
    Ok(RolePermission {
        id: row.int(0)?,
        role_id: row.int(1)?,
        resource_type: row.text(2)?,
        resource_pattern: row.text(3)?,
        permission: row.text(4)?.parse()?,
    })
}

fn role_not_found(id: i64) -> Error {
    Error::not_found(format!("Role with id={id} not found"))
}

fn role_permission_not_found(id: i64) -> Error {
    Error::not_found(format!("Role permission with id={id} not found"))
}

/// MLflow keeps `__user_…` for each user's own grants, so no role may take such a name.
fn check_role_name(name: &str) -> Result<()> {
    if name.starts_with(RESERVED_ROLE_PREFIX) {
        return Err(Error::invalid(format!(
            "Role name '{name}' uses the reserved '{RESERVED_ROLE_PREFIX}' prefix, which is held \
             for the per-user permission representation. Choose a different name."
        )));
    }
    Ok(())
}

impl SqlStore {
    async fn user_id(&self, username: &str) -> Result<i64> {
        Ok(AuthStore::user(self, username).await?.id)
    }

    /// Roles read by `sql` (which selects [`ROLE_COLUMNS`]), each with its permissions.
    async fn roles_of(&self, sql: &super::query::Sql) -> Result<Vec<Role>> {
        let mut roles = Vec::new();
        for row in sql.fetch_all(&self.reader).await? {
            roles.push(Role {
                id: row.int(0)?,
                name: row.text(1)?,
                workspace: row.text(2)?,
                description: row.opt_text(3)?,
                permissions: Vec::new(),
            });
        }
        if roles.is_empty() {
            return Ok(roles);
        }
        let ids: Vec<i64> = roles.iter().map(|r| r.id).collect();
        let mut sql = self.sql(&format!(
            "SELECT {ROLE_PERMISSION_COLUMNS} FROM auth_role_permissions WHERE role_id IN "
        ));
        sql.arg_list(&ids).push(" ORDER BY id");
        for row in sql.fetch_all(&self.reader).await? {
            let permission = role_permission_from_row(&row)?;
            if let Some(role) = roles.iter_mut().find(|r| r.id == permission.role_id) {
                role.permissions.push(permission);
            }
        }
        Ok(roles)
    }
}

#[async_trait]
impl AuthStore for SqlStore {
    async fn create_user(
        &self,
        username: &str,
        password_hash: &str,
        is_admin: bool,
    ) -> Result<User> {
        validate_new_user(username, password_hash)?;
        let mut sql = self.sql(
            "INSERT INTO auth_users (username, password_hash, is_admin, created_time) VALUES ",
        );
        sql.tuple([
            Arg::from(username),
            Arg::from(password_hash),
            Arg::from(i64::from(is_admin)),
            Arg::from(now_ms()),
        ])
        .push(&format!(" RETURNING {USER_COLUMNS}"));
        match sql.fetch_one(&self.writer).await {
            Ok(row) => user_from_row(&row),
            Err(e) if e.kind == ErrorKind::AlreadyExists => Err(Error::already_exists(format!(
                "User (username={username}) already exists."
            ))),
            Err(e) => Err(e),
        }
    }

    async fn user(&self, username: &str) -> Result<User> {
        let mut sql = self.sql(&format!(
            "SELECT {USER_COLUMNS} FROM auth_users WHERE username = "
        ));
        sql.arg(username);
        match sql.fetch_optional(&self.reader).await? {
            Some(row) => user_from_row(&row),
            None => Err(user_not_found(username)),
        }
    }

    async fn user_credentials(&self, username: &str) -> Result<Option<UserCredentials>> {
        let mut sql = self.sql(&format!(
            "SELECT {USER_COLUMNS}, password_hash FROM auth_users WHERE username = "
        ));
        sql.arg(username);
        sql.fetch_optional(&self.reader)
            .await?
            .map(|row| {
                Ok(UserCredentials {
                    user: user_from_row(&row)?,
                    password_hash: row.text(3)?,
                })
            })
            .transpose()
    }

    async fn list_users(&self) -> Result<Vec<User>> {
        let sql = self.sql(&format!(
            "SELECT {USER_COLUMNS} FROM auth_users ORDER BY id"
        ));
        sql.fetch_all(&self.reader)
            .await?
            .iter()
            .map(|r| user_from_row(r))
            .collect()
    }

    async fn has_admin(&self) -> Result<bool> {
        let sql = self.sql("SELECT id FROM auth_users WHERE is_admin <> 0 LIMIT 1");
        Ok(sql.fetch_optional(&self.reader).await?.is_some())
    }

    async fn update_password(&self, username: &str, password_hash: &str) -> Result<()> {
        if password_hash.is_empty() {
            return Err(Error::invalid("Password cannot be empty."));
        }
        let mut sql = self.sql("UPDATE auth_users SET password_hash = ");
        sql.arg(password_hash)
            .push(" WHERE username = ")
            .arg(username);
        if sql.execute(&self.writer).await? == 0 {
            return Err(user_not_found(username));
        }
        Ok(())
    }

    async fn update_admin(&self, username: &str, is_admin: bool) -> Result<()> {
        let mut sql = self.sql("UPDATE auth_users SET is_admin = ");
        sql.arg(i64::from(is_admin))
            .push(" WHERE username = ")
            .arg(username);
        if sql.execute(&self.writer).await? == 0 {
            return Err(user_not_found(username));
        }
        Ok(())
    }

    async fn delete_user(&self, username: &str) -> Result<()> {
        let mut tx = self.writer.begin().await.map_err(db_err)?;
        let mut sql = self.sql("DELETE FROM auth_users WHERE username = ");
        sql.arg(username).push(" RETURNING id");
        let Some(row) = sql.fetch_optional(&mut *tx).await? else {
            return Err(user_not_found(username));
        };
        let id = row.int(0)?;
        for table in ["auth_grants", "auth_tokens", "auth_role_assignments"] {
            let mut sql = self.sql(&format!("DELETE FROM {table} WHERE user_id = "));
            sql.arg(id);
            sql.execute(&mut *tx).await?;
        }
        tx.commit().await.map_err(db_err)
    }

    async fn put_grant(&self, grant: &Grant) -> Result<()> {
        if grant.resource_id.is_empty() {
            return Err(Error::invalid("resource_id cannot be empty."));
        }
        let user_id = self.user_id(&grant.username).await?;
        let mut sql = self.sql(
            "INSERT INTO auth_grants (user_id, resource_type, resource_id, permission) VALUES ",
        );
        sql.tuple([
            Arg::from(user_id),
            Arg::from(grant.resource_type.name()),
            Arg::from(&grant.resource_id),
            Arg::from(grant.permission.name()),
        ])
        .push(
            " ON CONFLICT (user_id, resource_type, resource_id) \
             DO UPDATE SET permission = excluded.permission",
        );
        sql.execute(&self.writer).await?;
        Ok(())
    }

    async fn grant(
        &self,
        username: &str,
        resource_type: ResourceType,
        resource_id: &str,
    ) -> Result<Option<Permission>> {
        let mut sql = self.sql(
            "SELECT g.permission FROM auth_grants g JOIN auth_users u ON u.id = g.user_id \
             WHERE u.username = ",
        );
        sql.arg(username)
            .push(" AND g.resource_type = ")
            .arg(resource_type.name())
            .push(" AND g.resource_id = ")
            .arg(resource_id);
        sql.fetch_optional(&self.reader)
            .await?
            .map(|row| row.text(0)?.parse())
            .transpose()
    }

    async fn delete_grant(
        &self,
        username: &str,
        resource_type: ResourceType,
        resource_id: &str,
    ) -> Result<bool> {
        let user_id = self.user_id(username).await?;
        let mut sql = self.sql("DELETE FROM auth_grants WHERE user_id = ");
        sql.arg(user_id)
            .push(" AND resource_type = ")
            .arg(resource_type.name())
            .push(" AND resource_id = ")
            .arg(resource_id);
        Ok(sql.execute(&self.writer).await? > 0)
    }

    async fn user_grants(&self, username: &str) -> Result<Vec<Grant>> {
        let user_id = self.user_id(username).await?;
        let mut sql = self
            .sql("SELECT resource_type, resource_id, permission FROM auth_grants WHERE user_id = ");
        sql.arg(user_id)
            .push(" ORDER BY resource_type, resource_id");
        sql.fetch_all(&self.reader)
            .await?
            .iter()
            .map(|row| {
                Ok(Grant {
                    username: username.to_owned(),
                    resource_type: row.text(0)?.parse()?,
                    resource_id: row.text(1)?,
                    permission: row.text(2)?.parse()?,
                })
            })
            .collect()
    }

    async fn delete_resource_grants(
        &self,
        resource_type: ResourceType,
        resource_id: &str,
    ) -> Result<()> {
        let mut sql = self.sql("DELETE FROM auth_grants WHERE resource_type = ");
        sql.arg(resource_type.name())
            .push(" AND resource_id = ")
            .arg(resource_id);
        sql.execute(&self.writer).await?;
        Ok(())
    }

    async fn rename_resource_grants(
        &self,
        resource_type: ResourceType,
        from: &str,
        to: &str,
    ) -> Result<()> {
        let mut sql = self.sql("UPDATE auth_grants SET resource_id = ");
        sql.arg(to)
            .push(" WHERE resource_type = ")
            .arg(resource_type.name())
            .push(" AND resource_id = ")
            .arg(from);
        sql.execute(&self.writer).await?;
        Ok(())
    }

    async fn create_token(
        &self,
        username: &str,
        digest: &str,
        scope: TokenScope,
        description: &str,
    ) -> Result<ApiToken> {
        let user_id = self.user_id(username).await?;
        let created_ms = now_ms();
        let mut sql = self.sql(
            "INSERT INTO auth_tokens (user_id, digest, scope, description, created_time) VALUES ",
        );
        sql.tuple([
            Arg::from(user_id),
            Arg::from(digest),
            Arg::from(scope.name()),
            Arg::from(description),
            Arg::from(created_ms),
        ])
        .push(" RETURNING id");
        let row = sql.fetch_one(&self.writer).await?;
        Ok(ApiToken {
            id: row.int(0)?,
            username: username.to_owned(),
            scope,
            description: description.to_owned(),
            created_ms,
        })
    }

    async fn token_by_digest(&self, digest: &str) -> Result<Option<(ApiToken, User)>> {
        let mut sql = self.sql(&format!(
            "SELECT {TOKEN_COLUMNS} FROM auth_tokens t JOIN auth_users u ON u.id = t.user_id \
             WHERE t.digest = "
        ));
        sql.arg(digest);
        sql.fetch_optional(&self.reader)
            .await?
            .map(|row| token_from_row(&row))
            .transpose()
    }

    async fn list_tokens(&self, username: Option<&str>) -> Result<Vec<ApiToken>> {
        let mut sql = self.sql(&format!(
            "SELECT {TOKEN_COLUMNS} FROM auth_tokens t JOIN auth_users u ON u.id = t.user_id"
        ));
        if let Some(username) = username {
            sql.push(" WHERE u.username = ").arg(username);
        }
        sql.push(" ORDER BY t.id");
        sql.fetch_all(&self.reader)
            .await?
            .iter()
            .map(|r| Ok(token_from_row(r)?.0))
            .collect()
    }

    async fn revoke_token(&self, id: i64) -> Result<()> {
        let mut sql = self.sql("DELETE FROM auth_tokens WHERE id = ");
        sql.arg(id);
        if sql.execute(&self.writer).await? == 0 {
            return Err(Error::not_found(format!(
                "API token {id} not found (hint: `twinloop auth token list` shows the ids)"
            )));
        }
        Ok(())
    }

    async fn create_role(
        &self,
        name: &str,
        workspace: &str,
        description: Option<&str>,
    ) -> Result<Role> {
        check_role_name(name)?;
        let mut sql = self.sql("INSERT INTO auth_roles (name, workspace, description) VALUES ");
        sql.tuple([
            Arg::from(name),
            Arg::from(workspace),
            Arg::from(description.map(str::to_owned)),
        ])
        .push(" RETURNING id");
        match sql.fetch_one(&self.writer).await {
            Ok(row) => AuthStore::role(self, row.int(0)?).await,
            Err(e) if e.kind == ErrorKind::AlreadyExists => Err(Error::already_exists(format!(
                "Role (name={name}, workspace={workspace}) already exists."
            ))),
            Err(e) => Err(e),
        }
    }

    async fn role(&self, id: i64) -> Result<Role> {
        let mut sql = self.sql(&format!(
            "SELECT {ROLE_COLUMNS} FROM auth_roles r WHERE r.id = "
        ));
        sql.arg(id);
        self.roles_of(&sql)
            .await?
            .pop()
            .ok_or_else(|| role_not_found(id))
    }

    async fn list_roles(&self, workspaces: Option<&[String]>) -> Result<Vec<Role>> {
        let mut sql = self.sql(&format!("SELECT {ROLE_COLUMNS} FROM auth_roles r"));
        if let Some(workspaces) = workspaces {
            if workspaces.is_empty() {
                return Ok(Vec::new());
            }
            sql.push(" WHERE r.workspace IN ").arg_list(workspaces);
        }
        sql.push(" ORDER BY r.id");
        self.roles_of(&sql).await
    }

    async fn update_role(
        &self,
        id: i64,
        name: Option<&str>,
        description: Option<&str>,
    ) -> Result<Role> {
        let role = AuthStore::role(self, id).await?;
        if let Some(name) = name {
            check_role_name(name)?;
            let mut sql = self.sql("UPDATE auth_roles SET name = ");
            sql.arg(name).push(" WHERE id = ").arg(id);
            match sql.execute(&self.writer).await {
                Ok(_) => {}
                Err(e) if e.kind == ErrorKind::AlreadyExists => {
                    return Err(Error::already_exists(format!(
                        "Role with name={name} already exists in workspace={}",
                        role.workspace
                    )));
                }
                Err(e) => return Err(e),
            }
        }
        if let Some(description) = description {
            let mut sql = self.sql("UPDATE auth_roles SET description = ");
            sql.arg(description).push(" WHERE id = ").arg(id);
            sql.execute(&self.writer).await?;
        }
        AuthStore::role(self, id).await
    }

    async fn delete_role(&self, id: i64) -> Result<()> {
        let mut tx = self.writer.begin().await.map_err(db_err)?;
        let mut sql = self.sql("DELETE FROM auth_roles WHERE id = ");
        sql.arg(id);
        if sql.execute(&mut *tx).await? == 0 {
            return Err(role_not_found(id));
        }
        for table in ["auth_role_permissions", "auth_role_assignments"] {
            let mut sql = self.sql(&format!("DELETE FROM {table} WHERE role_id = "));
            sql.arg(id);
            sql.execute(&mut *tx).await?;
        }
        tx.commit().await.map_err(db_err)
    }

    async fn add_role_permission(
        &self,
        role_id: i64,
        resource_type: &str,
        resource_pattern: &str,
        permission: Permission,
    ) -> Result<RolePermission> {
        AuthStore::role(self, role_id).await?;
        let mut sql = self.sql(
            "INSERT INTO auth_role_permissions (role_id, resource_type, resource_pattern, \
             permission) VALUES ",
        );
        sql.tuple([
            Arg::from(role_id),
            Arg::from(resource_type),
            Arg::from(resource_pattern),
            Arg::from(permission.name()),
        ])
        .push(&format!(" RETURNING {ROLE_PERMISSION_COLUMNS}"));
        match sql.fetch_one(&self.writer).await {
            Ok(row) => role_permission_from_row(&row),
            Err(e) if e.kind == ErrorKind::AlreadyExists => Err(Error::already_exists(format!(
                "Role permission (role_id={role_id}, resource_type={resource_type}, \
                 resource_pattern={resource_pattern}) already exists."
            ))),
            Err(e) => Err(e),
        }
    }

    async fn role_permission(&self, id: i64) -> Result<RolePermission> {
        let mut sql = self.sql(&format!(
            "SELECT {ROLE_PERMISSION_COLUMNS} FROM auth_role_permissions WHERE id = "
        ));
        sql.arg(id);
        match sql.fetch_optional(&self.reader).await? {
            Some(row) => role_permission_from_row(&row),
            None => Err(role_permission_not_found(id)),
        }
    }

    async fn update_role_permission(
        &self,
        id: i64,
        permission: Permission,
    ) -> Result<RolePermission> {
        let mut sql = self.sql("UPDATE auth_role_permissions SET permission = ");
        sql.arg(permission.name())
            .push(" WHERE id = ")
            .arg(id)
            .push(&format!(" RETURNING {ROLE_PERMISSION_COLUMNS}"));
        match sql.fetch_optional(&self.writer).await? {
            Some(row) => role_permission_from_row(&row),
            None => Err(role_permission_not_found(id)),
        }
    }

    async fn remove_role_permission(&self, id: i64) -> Result<()> {
        let mut sql = self.sql("DELETE FROM auth_role_permissions WHERE id = ");
        sql.arg(id);
        if sql.execute(&self.writer).await? == 0 {
            return Err(role_permission_not_found(id));
        }
        Ok(())
    }

    async fn assign_role(&self, username: &str, role_id: i64) -> Result<RoleAssignment> {
        let user_id = self.user_id(username).await?;
        AuthStore::role(self, role_id).await?;
        let mut sql = self.sql("INSERT INTO auth_role_assignments (user_id, role_id) VALUES ");
        sql.tuple([Arg::from(user_id), Arg::from(role_id)])
            .push(" RETURNING id");
        match sql.fetch_one(&self.writer).await {
            Ok(row) => Ok(RoleAssignment {
                id: row.int(0)?,
                user_id,
                role_id,
            }),
            Err(e) if e.kind == ErrorKind::AlreadyExists => Err(Error::already_exists(format!(
                "User role assignment (user_id={user_id}, role_id={role_id}) already exists"
            ))),
            Err(e) => Err(e),
        }
    }

    async fn unassign_role(&self, username: &str, role_id: i64) -> Result<()> {
        let user_id = self.user_id(username).await?;
        let mut sql = self.sql("DELETE FROM auth_role_assignments WHERE user_id = ");
        sql.arg(user_id).push(" AND role_id = ").arg(role_id);
        if sql.execute(&self.writer).await? == 0 {
            return Err(Error::not_found(format!(
                "User role assignment (user_id={user_id}, role_id={role_id}) not found"
            )));
        }
        Ok(())
    }

    async fn user_roles(&self, username: &str) -> Result<Vec<Role>> {
        let user_id = self.user_id(username).await?;
        let mut sql = self.sql(&format!(
            "SELECT {ROLE_COLUMNS} FROM auth_roles r JOIN auth_role_assignments a \
             ON a.role_id = r.id WHERE a.user_id = "
        ));
        sql.arg(user_id).push(" ORDER BY r.id");
        self.roles_of(&sql).await
    }

    async fn role_users(&self, role_id: i64) -> Result<Vec<RoleAssignment>> {
        AuthStore::role(self, role_id).await?;
        let mut sql =
            self.sql("SELECT id, user_id, role_id FROM auth_role_assignments WHERE role_id = ");
        sql.arg(role_id).push(" ORDER BY id");
        sql.fetch_all(&self.reader)
            .await?
            .iter()
            .map(|row| {
                Ok(RoleAssignment {
                    id: row.int(0)?,
                    user_id: row.int(1)?,
                    role_id: row.int(2)?,
                })
            })
            .collect()
    }

    async fn applied_grants(
        &self,
        username: &str,
        resource_type: ResourceType,
        resource_id: &str,
    ) -> Result<Vec<AppliedGrant>> {
        let mut sql = self.sql(
            "SELECT g.resource_type, g.permission FROM auth_grants g \
             JOIN auth_users u ON u.id = g.user_id WHERE u.username = ",
        );
        sql.arg(username)
            .push(" AND g.resource_type = ")
            .arg(resource_type.name())
            .push(" AND g.resource_id = ")
            .arg(resource_id)
            .push(
                " UNION ALL SELECT p.resource_type, p.permission FROM auth_role_assignments a \
                 JOIN auth_users u ON u.id = a.user_id JOIN auth_roles r ON r.id = a.role_id \
                 JOIN auth_role_permissions p ON p.role_id = r.id WHERE u.username = ",
            )
            .arg(username)
            .push(" AND r.workspace = ")
            .arg(DEFAULT_WORKSPACE)
            .push(" AND ((p.resource_type = ")
            .arg(resource_type.name())
            .push(" AND (p.resource_pattern = ")
            .arg(resource_id)
            .push(
                " OR p.resource_pattern = '*')) OR (p.resource_type = 'workspace' \
                 AND p.permission = 'MANAGE'))",
            );
        sql.fetch_all(&self.reader)
            .await?
            .iter()
            .map(|row| {
                Ok(AppliedGrant {
                    workspace_admin: row.text(0)? == "workspace",
                    permission: row.text(1)?.parse()?,
                })
            })
            .collect()
    }
}
