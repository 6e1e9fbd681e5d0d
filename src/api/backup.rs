//! Backup: runs a plan's backup now and answers when it has finished.

use crate::connect::ConnectError;
use crate::orchestrator::{Outcome, Task, TaskKind, priority};
use crate::pb::v1;
use crate::server::AppState;

pub async fn backup(
    state: &AppState,
    req: v1::BackupRequest,
) -> Result<pbjson_types::Empty, ConnectError> {
    let cfg = state.config.get();
    let plan = cfg
        .plans
        .iter()
        .find(|p| p.id == req.value)
        .ok_or_else(|| {
            ConnectError::not_found(format!("get plan \"{}\": plan not found", req.value))
        })?;
    if !cfg.repos.iter().any(|r| r.id == plan.repo) {
        return Err(ConnectError::not_found(format!(
            "get repo \"{}\": repo not found",
            plan.repo
        )));
    }
    state
        .orchestrator
        .restic()
        .map_err(ConnectError::failed_precondition)?;
    let task = Task::oneoff(
        TaskKind::Backup {
            plan_id: plan.id.clone(),
            dry_run: req.dry_run,
        },
        &plan.repo,
    );
    let (_, done) = state
        .orchestrator
        .schedule_and_wait(task, priority::INTERACTIVE)
        .await
        .map_err(|e| {
            ConnectError::failed_precondition(format!("failed to schedule backup: {e}"))
        })?;
    // The backup keeps running if the client goes away (scripts use `curl -m 1`).
    match done.await {
        Ok(Outcome::Success) | Ok(Outcome::Warning(_)) => Ok(pbjson_types::Empty {}),
        Ok(Outcome::Failed(m)) => Err(ConnectError::unknown(m)),
        Ok(Outcome::Cancelled(m)) => Err(ConnectError::canceled(m)),
        Err(_) => Err(ConnectError::aborted(
            "the backup was dropped before it finished (the server is shutting down)",
        )),
    }
}
