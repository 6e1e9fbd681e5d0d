//! RPC handlers, one file per area. The service traits come from the proto
//! (see `connect::service`); every method not overridden here answers
//! Connect `unimplemented`.

pub mod config;
pub mod logs;
pub mod operations;

use crate::connect::{ConnectError, RequestContext, ServerStream};
use crate::pb::{types, v1};
use crate::server::AppState;

/// `v1.Backrest`.
#[derive(Clone)]
pub struct BackrestApi {
    pub state: AppState,
}

impl v1::Backrest for BackrestApi {
    async fn get_config(&self, _ctx: RequestContext, _req: pbjson_types::Empty) -> Result<v1::Config, ConnectError> {
        config::get_config(&self.state).await
    }

    async fn set_config(&self, _ctx: RequestContext, req: v1::Config) -> Result<v1::Config, ConnectError> {
        config::set_config(&self.state, req).await
    }

    async fn get_operations(
        &self,
        _ctx: RequestContext,
        req: v1::GetOperationsRequest,
    ) -> Result<v1::OperationList, ConnectError> {
        operations::get_operations(&self.state, req).await
    }

    async fn clear_history(
        &self,
        _ctx: RequestContext,
        req: v1::ClearHistoryRequest,
    ) -> Result<pbjson_types::Empty, ConnectError> {
        operations::clear_history(&self.state, req).await
    }

    async fn get_operation_events(
        &self,
        _ctx: RequestContext,
        _req: pbjson_types::Empty,
    ) -> Result<ServerStream<v1::OperationEvent>, ConnectError> {
        operations::get_operation_events(&self.state).await
    }

    async fn get_logs(
        &self,
        _ctx: RequestContext,
        req: v1::LogDataRequest,
    ) -> Result<ServerStream<types::BytesValue>, ConnectError> {
        logs::get_logs(&self.state, req).await
    }
}

/// `v1.Authentication`: not built yet (see the authentication issue); every
/// method answers `unimplemented`.
#[derive(Clone)]
pub struct AuthenticationApi {
    pub state: AppState,
}

impl v1::Authentication for AuthenticationApi {}

/// `v1sync.BackrestSyncStateService`: multihost sync is not built yet.
#[derive(Clone)]
pub struct SyncStateApi {
    pub state: AppState,
}

impl crate::pb::v1sync::BackrestSyncStateService for SyncStateApi {}
