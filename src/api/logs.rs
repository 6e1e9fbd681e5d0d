//! GetLogs.

use crate::connect::{ConnectError, ServerStream};
use crate::pb::{types, v1};
use crate::server::AppState;

pub async fn get_logs(_state: &AppState, _req: v1::LogDataRequest) -> Result<ServerStream<types::BytesValue>, ConnectError> {
    Err(ConnectError::unimplemented("GetLogs is being built"))
}
