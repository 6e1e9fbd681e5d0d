//! GetConfig and SetConfig.

use crate::connect::ConnectError;
use crate::pb::v1;
use crate::server::AppState;

pub async fn get_config(_state: &AppState) -> Result<v1::Config, ConnectError> {
    Err(ConnectError::unimplemented("GetConfig is being built"))
}

pub async fn set_config(_state: &AppState, _req: v1::Config) -> Result<v1::Config, ConnectError> {
    Err(ConnectError::unimplemented("SetConfig is being built"))
}
