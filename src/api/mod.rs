//! RPC handlers, one file per area. The service traits come from the proto
//! (see `connect::service`); every method not overridden here answers
//! Connect `unimplemented`.

pub mod auth;
pub mod backup;
pub mod config;
pub mod dashboard;
pub mod download;
pub mod logs;
pub mod operation_list;
pub mod operations;
pub mod paths;
pub mod repos;
pub mod sftp;
pub mod snapshots;
pub mod tasks;

use crate::connect::{ConnectError, RequestContext, ServerStream};
use crate::pb::{types, v1};
use crate::server::AppState;

/// `v1.Backrest`.
#[derive(Clone)]
pub struct BackrestApi {
    pub state: AppState,
}

// The service trait lets a unary method answer with anything that encodes as
// its response message (`UnaryReply`); these methods name the concrete type.
#[allow(refining_impl_trait)]
impl v1::Backrest for BackrestApi {
    async fn get_config(
        &self,
        _ctx: RequestContext,
        _req: pbjson_types::Empty,
    ) -> Result<v1::Config, ConnectError> {
        config::get_config(&self.state).await
    }

    async fn set_config(
        &self,
        _ctx: RequestContext,
        req: v1::Config,
    ) -> Result<v1::Config, ConnectError> {
        config::set_config(&self.state, req).await
    }

    async fn add_repo(
        &self,
        _ctx: RequestContext,
        req: v1::AddRepoRequest,
    ) -> Result<v1::Config, ConnectError> {
        repos::add_repo(&self.state, req).await
    }

    async fn remove_repo(
        &self,
        _ctx: RequestContext,
        req: v1::RemoveRepoRequest,
    ) -> Result<v1::Config, ConnectError> {
        repos::remove_repo(&self.state, req).await
    }

    async fn check_repo_exists(
        &self,
        _ctx: RequestContext,
        req: v1::CheckRepoExistsRequest,
    ) -> Result<v1::CheckRepoExistsResponse, ConnectError> {
        repos::check_repo_exists(&self.state, req).await
    }

    async fn setup_sftp(
        &self,
        _ctx: RequestContext,
        req: v1::SetupSftpRequest,
    ) -> Result<v1::SetupSftpResponse, ConnectError> {
        sftp::setup_sftp(&self.state, req).await
    }

    async fn backup(
        &self,
        _ctx: RequestContext,
        req: v1::BackupRequest,
    ) -> Result<pbjson_types::Empty, ConnectError> {
        backup::backup(&self.state, req).await
    }

    async fn list_snapshots(
        &self,
        _ctx: RequestContext,
        req: v1::ListSnapshotsRequest,
    ) -> Result<v1::ResticSnapshotList, ConnectError> {
        snapshots::list_snapshots(&self.state, req).await
    }

    async fn list_snapshot_files(
        &self,
        _ctx: RequestContext,
        req: v1::ListSnapshotFilesRequest,
    ) -> Result<v1::ListSnapshotFilesResponse, ConnectError> {
        snapshots::list_snapshot_files(&self.state, req).await
    }

    async fn do_repo_task(
        &self,
        _ctx: RequestContext,
        req: v1::DoRepoTaskRequest,
    ) -> Result<v1::ScheduleTaskResponse, ConnectError> {
        tasks::do_repo_task(&self.state, req).await
    }

    async fn forget(
        &self,
        _ctx: RequestContext,
        req: v1::ForgetRequest,
    ) -> Result<v1::ScheduleTaskResponse, ConnectError> {
        tasks::forget(&self.state, req).await
    }

    async fn restore(
        &self,
        _ctx: RequestContext,
        req: v1::RestoreSnapshotRequest,
    ) -> Result<v1::ScheduleTaskResponse, ConnectError> {
        tasks::restore(&self.state, req).await
    }

    async fn run_command(
        &self,
        _ctx: RequestContext,
        req: v1::RunCommandRequest,
    ) -> Result<v1::RunCommandResponse, ConnectError> {
        tasks::run_command(&self.state, req).await
    }

    async fn cancel(
        &self,
        _ctx: RequestContext,
        req: v1::CancelOperationRequest,
    ) -> Result<pbjson_types::Empty, ConnectError> {
        tasks::cancel(&self.state, req).await
    }

    async fn get_operations(
        &self,
        _ctx: RequestContext,
        req: v1::GetOperationsRequest,
    ) -> Result<operation_list::StoredOperationList, ConnectError> {
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

    async fn get_download_url(
        &self,
        _ctx: RequestContext,
        req: v1::GetDownloadUrlRequest,
    ) -> Result<types::StringValue, ConnectError> {
        download::get_download_url(&self.state, req).await
    }

    async fn path_autocomplete(
        &self,
        _ctx: RequestContext,
        req: types::StringValue,
    ) -> Result<types::StringList, ConnectError> {
        paths::path_autocomplete(req).await
    }

    async fn get_summary_dashboard(
        &self,
        _ctx: RequestContext,
        _req: pbjson_types::Empty,
    ) -> Result<v1::SummaryDashboardResponse, ConnectError> {
        dashboard::get_summary_dashboard(&self.state).await
    }
}

/// `v1.Authentication`: Login and HashPassword (public routes).
#[derive(Clone)]
pub struct AuthenticationApi {
    pub state: AppState,
}

// The service trait lets a unary method answer with anything that encodes as
// its response message (`UnaryReply`); these methods name the concrete type.
#[allow(refining_impl_trait)]
impl v1::Authentication for AuthenticationApi {
    async fn login(
        &self,
        _ctx: RequestContext,
        req: v1::LoginRequest,
    ) -> Result<v1::LoginResponse, ConnectError> {
        auth::login(&self.state, req).await
    }

    async fn hash_password(
        &self,
        _ctx: RequestContext,
        req: types::StringValue,
    ) -> Result<types::StringValue, ConnectError> {
        auth::hash_password(&self.state, req).await
    }
}

/// `v1sync.BackrestSyncStateService`: multihost sync is not built yet.
#[derive(Clone)]
pub struct SyncStateApi {
    pub state: AppState,
}

impl crate::pb::v1sync::BackrestSyncStateService for SyncStateApi {}
