//! ListSnapshots and ListSnapshotFiles.

use tokio_util::sync::CancellationToken;

use super::repos::{client_for, restic_error};
use crate::connect::ConnectError;
use crate::oplog::Query;
use crate::orchestrator::tasks::convert;
use crate::orchestrator::{Task, TaskKind, priority};
use crate::pb::v1;
use crate::pb::v1::operation::Op;
use crate::restic::repo::discard;
use crate::server::AppState;

fn find_repo(state: &AppState, id: &str) -> Result<v1::Repo, ConnectError> {
    state
        .config
        .get()
        .repos
        .iter()
        .find(|r| r.id == id)
        .cloned()
        .ok_or_else(|| ConnectError::not_found(format!("get repo \"{id}\": repo not found")))
}

pub async fn list_snapshots(
    state: &AppState,
    req: v1::ListSnapshotsRequest,
) -> Result<v1::ResticSnapshotList, ConnectError> {
    let repo = find_repo(state, &req.repo_id)?;
    let cfg = state.config.get();
    let filter = if req.plan_id.is_empty() {
        None
    } else {
        if !cfg.plans.iter().any(|p| p.id == req.plan_id) {
            return Err(ConnectError::not_found(format!(
                "get plan \"{}\": plan not found",
                req.plan_id
            )));
        }
        Some(format!("plan:{},created-by:{}", req.plan_id, cfg.instance))
    };
    // The snapshot index answers without a restic call when it is current.
    if state.orchestrator.index_is_current(&repo.id) {
        return Ok(v1::ResticSnapshotList {
            snapshots: from_index(state, &repo, &req.plan_id, &cfg.instance).await?,
        });
    }
    let client = client_for(state, repo.clone())?;
    let snaps = client
        .snapshots(filter.as_deref(), &CancellationToken::new(), &mut discard())
        .await
        .map_err(|e| restic_error("failed to list snapshots", e))?;
    // Refresh the index in the background so the next listing is served from it.
    if !cfg.instance.is_empty() {
        let task = Task::oneoff(TaskKind::IndexSnapshots, &repo.id);
        if let Err(e) = state
            .orchestrator
            .schedule_now(task, priority::INDEX_SNAPSHOTS)
            .await
        {
            tracing::debug!("cannot queue indexing of {}: {e}", repo.id);
        }
    }
    Ok(v1::ResticSnapshotList {
        snapshots: snaps.iter().map(|s| convert::snapshot(s, None)).collect(),
    })
}

/// The repo's live snapshots from index operations, oldest first, filtered
/// like `restic snapshots --tag plan:P,created-by:I` when a plan is given.
async fn from_index(
    state: &AppState,
    repo: &v1::Repo,
    plan_id: &str,
    instance: &str,
) -> Result<Vec<v1::ResticSnapshot>, ConnectError> {
    let ops = state
        .oplog
        .query(&Query::all().repo_guid(&repo.guid))
        .await?;
    let plan_tag = format!("plan:{plan_id}");
    let instance_tag = format!("created-by:{instance}");
    let mut snaps: Vec<v1::ResticSnapshot> = ops
        .into_iter()
        .filter_map(|op| match op.op {
            Some(Op::OperationIndexSnapshot(i)) if !i.forgot => i.snapshot,
            _ => None,
        })
        .filter(|s| {
            plan_id.is_empty() || (s.tags.contains(&plan_tag) && s.tags.contains(&instance_tag))
        })
        .collect();
    snaps.sort_by_key(|s| s.unix_time_ms);
    snaps.dedup_by(|a, b| a.id == b.id);
    Ok(snaps)
}

pub async fn list_snapshot_files(
    state: &AppState,
    req: v1::ListSnapshotFilesRequest,
) -> Result<v1::ListSnapshotFilesResponse, ConnectError> {
    let repo = find_repo(state, &req.repo_id)?;
    if req.path.is_empty() {
        return Err(ConnectError::invalid_argument(
            "path must not be empty (use \"/\" for the snapshot's root)",
        ));
    }
    if req.snapshot_id.is_empty() {
        return Err(ConnectError::invalid_argument("snapshot_id is required"));
    }
    let client = client_for(state, repo)?;
    let nodes = client
        .ls(&req.snapshot_id, &req.path, &CancellationToken::new())
        .await
        .map_err(|e| restic_error("failed to list snapshot files", e))?;
    let entries = nodes
        .into_iter()
        .map(|n| v1::LsEntry {
            name: n.name,
            r#type: n.node_type,
            path: n.path,
            uid: n.uid,
            gid: n.gid,
            size: n.size,
            mode: n.mode,
            mtime: n.mtime,
            atime: n.atime,
            ctime: n.ctime,
        })
        .collect();
    Ok(v1::ListSnapshotFilesResponse {
        path: req.path,
        entries,
    })
}
