//! `GetDownloadURL`: a link to the files of a finished restore, or to a file
//! or folder inside a snapshot (an index-snapshot operation, as the snapshot
//! browser's "Download" asks; served by `restic dump`, see
//! `download::snapshot`).
//!
//! The answer has Backrest's shape, the relative URL `./download/<token>/`
//! (the UI opens it against the page's address); the token carries the
//! operation and the path (see `download::token`). Differences from Backrest,
//! each refusing what could not be served anyway, with a clear error up front
//! rather than a broken link: the restore must have finished successfully,
//! its path must be relative and exist inside the target; a snapshot path
//! must be absolute (no NUL, no `..`), the snapshot must not have been
//! forgotten, and the restic in use must know `dump --archive`.

use crate::connect::ConnectError;
use crate::download::resolve::{ResolveError, relative_path, resolve_inside};
use crate::download::snapshot::check_snapshot_path;
use crate::download::{LinkPayload, handler::PREFIX};
use crate::pb::v1::operation::Op;
use crate::pb::{types, v1};
use crate::restic::Feature;
use crate::server::AppState;

pub async fn get_download_url(
    state: &AppState,
    req: v1::GetDownloadUrlRequest,
) -> Result<types::StringValue, ConnectError> {
    let id = req.op_id;
    let op = state
        .oplog
        .get(id)
        .await
        .map_err(|e| ConnectError::internal(format!("cannot read the operation log: {e}")))?
        .ok_or_else(|| {
            ConnectError::not_found(format!(
                "failed to get operation {id}: operation does not exist"
            ))
        })?;
    let restore = match &op.op {
        Some(Op::OperationRestore(r)) => r,
        Some(Op::OperationIndexSnapshot(index)) => {
            return snapshot_link(state, id, index, &req.file_path);
        }
        _ => {
            return Err(ConnectError::invalid_argument(format!(
                "operation {id} is not a restore or snapshot operation"
            )));
        }
    };
    let status = op.status();
    if !matches!(
        status,
        v1::OperationStatus::StatusSuccess | v1::OperationStatus::StatusWarning
    ) {
        return Err(ConnectError::failed_precondition(format!(
            "restore operation {id} has not finished successfully (status {})",
            status.as_str_name()
        )));
    }
    if restore.target.is_empty() {
        return Err(ConnectError::failed_precondition(format!(
            "restore operation {id} has no target directory"
        )));
    }
    let rel = relative_path(&req.file_path).map_err(|e| {
        ConnectError::invalid_argument(format!("file path {:?}: {e}", req.file_path))
    })?;
    let target = std::path::PathBuf::from(&restore.target);
    let checked = {
        let rel = rel.clone();
        let target = target.clone();
        tokio::task::spawn_blocking(move || resolve_inside(&target, &rel))
            .await
            .map_err(|e| ConnectError::internal(format!("path check failed: {e}")))?
    };
    match checked {
        Ok(_) => {}
        Err(ResolveError::TargetGone) => {
            return Err(ConnectError::failed_precondition(format!(
                "the restore target {} no longer exists",
                target.display()
            )));
        }
        Err(ResolveError::NotFound) => {
            return Err(ConnectError::not_found(format!(
                "{:?} does not exist in the restore target {}",
                req.file_path,
                target.display()
            )));
        }
        Err(ResolveError::Outside) => {
            return Err(ConnectError::invalid_argument(format!(
                "{:?} leads outside the restore target {} (through a symbolic link)",
                req.file_path,
                target.display()
            )));
        }
        Err(ResolveError::Io(e)) => {
            return Err(ConnectError::unknown(format!(
                "cannot read {}: {e}",
                target.join(&rel).display()
            )));
        }
    }
    sign(state, id, "restore", rel.to_string_lossy().into_owned())
}

/// A `"snapshot"` link to `file_path` inside the snapshot of index operation `id`.
fn snapshot_link(
    state: &AppState,
    id: i64,
    index: &v1::OperationIndexSnapshot,
    file_path: &str,
) -> Result<types::StringValue, ConnectError> {
    check_snapshot_path(file_path)
        .map_err(|e| ConnectError::invalid_argument(format!("file path {file_path:?}: {e}")))?;
    if index.snapshot.as_ref().is_none_or(|s| s.id.is_empty()) {
        return Err(ConnectError::failed_precondition(format!(
            "operation {id} names no snapshot"
        )));
    }
    if index.forgot {
        return Err(ConnectError::failed_precondition(format!(
            "the snapshot of operation {id} has been forgotten (removed from the repository)"
        )));
    }
    // Only when restic is known: without one, the link's own answer says so.
    if let Ok(restic) = state.orchestrator.restic()
        && !restic.supports(Feature::DumpArchive)
    {
        return Err(ConnectError::failed_precondition(restic.lacks(
            Feature::DumpArchive,
            "downloading from a snapshot (`restic dump --archive`)",
        )));
    }
    sign(state, id, "snapshot", file_path.to_string())
}

fn sign(
    state: &AppState,
    op_id: i64,
    kind: &str,
    file_path: String,
) -> Result<types::StringValue, ConnectError> {
    let token = state
        .download_links
        .sign(&LinkPayload {
            op_id,
            kind: kind.into(),
            file_path,
        })
        .map_err(|e| ConnectError::internal(format!("cannot sign the download link: {e}")))?;
    Ok(types::StringValue {
        value: format!(".{PREFIX}{token}/"),
    })
}
