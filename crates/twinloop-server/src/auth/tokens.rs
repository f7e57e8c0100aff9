//! `/api/twinloop/v1/auth/tokens`: API tokens over HTTP (create, list, revoke), the same tokens
//! `twinloop auth token` makes on the store. The route's rule ([`super::rules::Rule::Tokens`])
//! lets admins at anyone's tokens and a user at their own, signed in with a password or an
//! `admin` token, so a narrower token cannot mint a wider one. Answers are `twinloop_api::tokens`.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use twinloop_api::Empty;
use twinloop_api::tokens as api;
use twinloop_core::ErrorKind;
use twinloop_core::auth::{ApiToken, TokenScope, new_token, token_digest};

use super::users::Call;
use crate::AppState;
use crate::error::{ApiError, ApiResult};

type S = State<Arc<AppState>>;

pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/auth/tokens", get(list).post(create))
        .route("/auth/tokens/{id}", delete(revoke))
}

fn token(t: &ApiToken) -> api::Token {
    api::Token {
        created_ms: t.created_ms,
        description: t.description.clone(),
        id: t.id,
        scope: t.scope.to_string(),
        username: t.username.clone(),
    }
}

async fn create(State(s): S, req: Request) -> ApiResult<Response> {
    let call = match Call::read(&s, req).await {
        Ok(call) => call,
        Err(response) => return Ok(response),
    };
    let username = call
        .opt("username")
        .unwrap_or_else(|| call.caller.user.username.clone());
    let scope: TokenScope = call
        .opt("scope")
        .ok_or_else(|| ApiError::invalid("Missing value for required parameter 'scope'."))?
        .parse()?;
    // A token caps its user, except these two: `deploy` moves what serves whatever the user's
    // grants, `infer` predicts whatever `default_permission` says. Only admins hand those out,
    // unless the user could predict anyway.
    if !super::acts_as_admin(&call.caller) {
        let widens = match scope {
            TokenScope::Deploy => true,
            TokenScope::Infer => !call.auth.global_level(&call.caller).can_read(),
            TokenScope::Read | TokenScope::Write | TokenScope::Admin => false,
        };
        if widens {
            return Ok(super::forbidden());
        }
    }
    let secret = new_token();
    let made = call
        .store()
        .create_token(
            &username,
            &token_digest(&secret),
            scope,
            &call.opt("description").unwrap_or_default(),
        )
        .await?;
    Ok(Json(api::TokenCreated {
        token: secret,
        token_info: token(&made),
    })
    .into_response())
}

async fn list(State(s): S, req: Request) -> ApiResult<Response> {
    let call = match Call::read(&s, req).await {
        Ok(call) => call,
        Err(response) => return Ok(response),
    };
    // The rule let a user through only for their own; an admin naming nobody sees everyone's.
    let username = call.opt("username");
    let whose = match &username {
        Some(u) => Some(u.as_str()),
        None if super::acts_as_admin(&call.caller) => None,
        None => Some(call.caller.user.username.as_str()),
    };
    let tokens = call.store().list_tokens(whose).await?;
    Ok(Json(api::TokenList {
        tokens: tokens.iter().map(token).collect(),
    })
    .into_response())
}

async fn revoke(State(s): S, Path(id): Path<String>, req: Request) -> ApiResult<Response> {
    let call = match Call::read(&s, req).await {
        Ok(call) => call,
        Err(response) => return Ok(response),
    };
    let id: i64 = id
        .parse()
        .map_err(|_| ApiError::invalid(format!("Invalid token id {id:?}")))?;
    // Another user's token is as missing to a user as one that does not exist.
    if !super::acts_as_admin(&call.caller) {
        let mine = call
            .store()
            .list_tokens(Some(&call.caller.user.username))
            .await?;
        if !mine.iter().any(|t| t.id == id) {
            return Err(ApiError::of_kind(
                ErrorKind::NotFound,
                format!("Token {id} not found"),
            ));
        }
    }
    call.store().revoke_token(id).await?;
    Ok(Json(Empty {}).into_response())
}
