//! Users, grants and API tokens on SQL (`auth_users`, `auth_grants`, `auth_tokens`).

use async_trait::async_trait;
use twinloop_core::auth::{
    ApiToken, Grant, Permission, ResourceType, TokenScope, User, UserCredentials,
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

impl SqlStore {
    async fn user_id(&self, username: &str) -> Result<i64> {
        Ok(AuthStore::user(self, username).await?.id)
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
        for table in ["auth_grants", "auth_tokens"] {
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
}
