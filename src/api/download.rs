//! `GetDownloadURL`: a link to the files of a finished restore.
//!
//! The answer has Backrest's shape, the relative URL `./download/<token>/`
//! (the UI opens it against the page's address); the token carries the
//! operation and the path (see `download::token`). Differences from Backrest,
//! each refusing what could not be served anyway, with a clear error up front
//! rather than a broken link: the restore must have finished successfully,
//! the path must be relative and exist inside the target, and an index
//! (snapshot) operation — whose files Backrest streams with `restic dump` —
//! answers `unimplemented` until that is built.

use crate::connect::ConnectError;
use crate::download::resolve::{ResolveError, relative_path, resolve_inside};
use crate::download::{LinkPayload, handler::PREFIX};
use crate::pb::v1::operation::Op;
use crate::pb::{types, v1};
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
        Some(Op::OperationIndexSnapshot(_)) => {
            return Err(ConnectError::unimplemented(
                "downloading files straight from a snapshot is not built yet; \
                 restore the snapshot, then download from the restore operation",
            ));
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
    let token = state
        .download_links
        .sign(&LinkPayload {
            op_id: id,
            kind: "restore".into(),
            file_path: rel.to_string_lossy().into_owned(),
        })
        .map_err(|e| ConnectError::internal(format!("cannot sign the download link: {e}")))?;
    Ok(types::StringValue {
        value: format!(".{PREFIX}{token}/"),
    })
}
