//! GetOperations, ClearHistory and GetOperationEvents.

use crate::connect::{ConnectError, ServerStream};
use crate::pb::v1;
use crate::server::AppState;

pub async fn get_operations(_state: &AppState, _req: v1::GetOperationsRequest) -> Result<v1::OperationList, ConnectError> {
    Err(ConnectError::unimplemented("GetOperations is being built"))
}

pub async fn clear_history(_state: &AppState, _req: v1::ClearHistoryRequest) -> Result<pbjson_types::Empty, ConnectError> {
    Err(ConnectError::unimplemented("ClearHistory is being built"))
}

pub async fn get_operation_events(_state: &AppState) -> Result<ServerStream<v1::OperationEvent>, ConnectError> {
    Err(ConnectError::unimplemented("GetOperationEvents is being built"))
}
