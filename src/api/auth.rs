//! `v1.Authentication`: Login and HashPassword (both unauthenticated routes).

use crate::auth::LoginError;
use crate::auth::middleware::{login_client, set_login_retry_after};
use crate::connect::ConnectError;
use crate::pb::{types, v1};
use crate::server::AppState;

/// Username + password → a JWT valid for 7 days. Every failure answers
/// `unauthenticated` "invalid password", as Backrest does, whether the user
/// exists or not; repeated failures from one address or for one user answer
/// `resource_exhausted` with a retry hint (and `Retry-After`) until the
/// back-off ends.
pub async fn login(
    state: &AppState,
    req: v1::LoginRequest,
) -> Result<v1::LoginResponse, ConnectError> {
    match state
        .auth
        .check_password(login_client(), &req.username, &req.password)
        .await
    {
        Ok(()) => {
            let token = state
                .auth
                .issue_token(&req.username)
                .map_err(|e| ConnectError::internal(format!("cannot sign the login token: {e}")))?;
            tracing::info!(user = ?req.username, "user logged in");
            Ok(v1::LoginResponse { token })
        }
        Err(LoginError::Throttled(after)) => {
            set_login_retry_after(after);
            Err(ConnectError::resource_exhausted(LoginError::retry_message(
                after,
            )))
        }
        Err(LoginError::Invalid) => Err(ConnectError::unauthenticated("invalid password")),
    }
}

/// `base64(bcrypt(password))` at cost 10 with the `$2a$` prefix: the value
/// for `auth.users[].passwordBcrypt`.
pub async fn hash_password(
    state: &AppState,
    req: types::StringValue,
) -> Result<types::StringValue, ConnectError> {
    let value = state
        .auth
        .hash_password(req.value)
        .await
        .map_err(ConnectError::invalid_argument)?;
    Ok(types::StringValue { value })
}
