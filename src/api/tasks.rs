//! DoRepoTask, Forget, Restore, RunCommand and Cancel.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::repos::{client_for, restic_error};
use crate::connect::ConnectError;
use crate::orchestrator::{Outcome, Task, TaskError, TaskKind, priority};
use crate::pb::v1::{self, do_repo_task_request::Task as RepoTask};
use crate::server::AppState;

fn repo_of(state: &AppState, id: &str) -> Result<v1::Repo, ConnectError> {
    state
        .config
        .get()
        .repos
        .iter()
        .find(|r| r.id == id)
        .cloned()
        .ok_or_else(|| ConnectError::not_found(format!("get repo \"{id}\": repo not found")))
}

fn schedule_error(e: TaskError) -> ConnectError {
    ConnectError::failed_precondition(format!("failed to schedule task: {e}"))
}

pub async fn do_repo_task(
    state: &AppState,
    req: v1::DoRepoTaskRequest,
) -> Result<v1::ScheduleTaskResponse, ConnectError> {
    let repo = repo_of(state, &req.repo_id)?;
    state
        .orchestrator
        .restic()
        .map_err(ConnectError::failed_precondition)?;
    let task = RepoTask::try_from(req.task).unwrap_or(RepoTask::None);
    let (kind, prio) = match task {
        RepoTask::IndexSnapshots => (
            TaskKind::IndexSnapshots,
            priority::INTERACTIVE | priority::INDEX_SNAPSHOTS,
        ),
        RepoTask::Prune => (TaskKind::Prune, priority::INTERACTIVE | priority::PRUNE),
        RepoTask::Check => (TaskKind::Check, priority::INTERACTIVE),
        RepoTask::Stats => (TaskKind::Stats, priority::INTERACTIVE | priority::STATS),
        RepoTask::Forget => {
            if repo
                .forget_policy
                .as_ref()
                .and_then(|f| f.retention.as_ref())
                .is_none()
            {
                return Err(ConnectError::failed_precondition(format!(
                    "repo \"{}\" has no forget policy configured",
                    repo.id
                )));
            }
            (
                TaskKind::RepoForget,
                priority::INTERACTIVE | priority::FORGET,
            )
        }
        RepoTask::Unlock => {
            // Runs right away; unlike Backrest, restic's errors are reported.
            let client = client_for(state, repo)?;
            client
                .unlock(
                    &CancellationToken::new(),
                    &mut crate::restic::repo::discard(),
                )
                .await
                .map_err(|e| restic_error("unlock", e))?;
            return Ok(v1::ScheduleTaskResponse { operation_id: 0 });
        }
        RepoTask::None => {
            return Err(ConnectError::invalid_argument(format!(
                "unknown task {}: use one of TASK_INDEX_SNAPSHOTS, TASK_PRUNE, TASK_CHECK, TASK_STATS, TASK_UNLOCK, TASK_FORGET",
                req.task
            )));
        }
    };
    let id = state
        .orchestrator
        .schedule_now(Task::oneoff(kind, &repo.id), prio)
        .await
        .map_err(schedule_error)?;
    Ok(v1::ScheduleTaskResponse { operation_id: id })
}

pub async fn forget(
    state: &AppState,
    req: v1::ForgetRequest,
) -> Result<v1::ScheduleTaskResponse, ConnectError> {
    let repo = repo_of(state, &req.repo_id)?;
    if req.plan_id.is_empty() {
        return Err(ConnectError::invalid_argument(
            "must specify repoId and planId and (optionally) snapshotId",
        ));
    }
    state
        .orchestrator
        .restic()
        .map_err(ConnectError::failed_precondition)?;
    let kind = if req.snapshot_id.is_empty() {
        let cfg = state.config.get();
        if !cfg.plans.iter().any(|p| p.id == req.plan_id) {
            return Err(ConnectError::not_found(format!(
                "get plan \"{}\": plan not found",
                req.plan_id
            )));
        }
        TaskKind::Forget {
            plan_id: req.plan_id,
        }
    } else {
        TaskKind::ForgetSnapshot {
            plan_id: req.plan_id,
            snapshot_id: req.snapshot_id,
        }
    };
    let id = state
        .orchestrator
        .schedule_now(
            Task::oneoff(kind, &repo.id),
            priority::INTERACTIVE | priority::FORGET,
        )
        .await
        .map_err(schedule_error)?;
    Ok(v1::ScheduleTaskResponse { operation_id: id })
}

pub async fn restore(
    state: &AppState,
    req: v1::RestoreSnapshotRequest,
) -> Result<v1::ScheduleTaskResponse, ConnectError> {
    let mut target = req.target.trim().to_string();
    let mut path = req.path.trim().to_string();
    if target.is_empty() {
        let home = std::env::var("HOME").unwrap_or_else(|_| "/tmp".into());
        target = format!(
            "{home}/Downloads/restic-restore-{}",
            chrono::Local::now().format("%Y-%m-%dT%H-%M-%S")
        );
    }
    if path.is_empty() {
        path = "/".into();
    }
    if !std::path::Path::new(&target).is_absolute() {
        return Err(ConnectError::invalid_argument(format!(
            "target {target:?} must be an absolute path"
        )));
    }
    if tokio::fs::symlink_metadata(&target).await.is_ok() {
        return Err(ConnectError::failed_precondition(format!(
            "target directory \"{target}\" already exists"
        )));
    }
    let repo = repo_of(state, &req.repo_id)?;
    if req.snapshot_id.is_empty() {
        return Err(ConnectError::invalid_argument("snapshot_id is required"));
    }
    state
        .orchestrator
        .restic()
        .map_err(ConnectError::failed_precondition)?;
    let plan_id = if req.plan_id.is_empty() {
        crate::orchestrator::task::SYSTEM_PLAN.to_string()
    } else {
        req.plan_id
    };
    let kind = TaskKind::Restore {
        plan_id,
        snapshot_id: req.snapshot_id,
        path,
        target,
    };
    let id = state
        .orchestrator
        .schedule_now(
            Task::oneoff(kind, &repo.id),
            priority::INTERACTIVE | priority::DEFAULT,
        )
        .await
        .map_err(schedule_error)?;
    Ok(v1::ScheduleTaskResponse { operation_id: id })
}

pub async fn run_command(
    state: &AppState,
    req: v1::RunCommandRequest,
) -> Result<v1::RunCommandResponse, ConnectError> {
    let cfg = state.config.get();
    let repo = cfg
        .repos
        .iter()
        .find(|r| r.id == req.repo_id)
        .ok_or_else(|| ConnectError::not_found(format!("repo \"{}\" not found", req.repo_id)))?;
    state
        .orchestrator
        .restic()
        .map_err(ConnectError::failed_precondition)?;
    // Commands within 30 minutes share a flow, so the UI groups a session.
    let recent = state
        .orchestrator
        .recent_ops(
            &repo.guid,
            crate::orchestrator::task::SYSTEM_PLAN,
            &cfg.instance,
            256,
        )
        .await
        .map_err(schedule_error)?;
    let cutoff =
        chrono::Utc::now().timestamp_millis() - Duration::from_secs(30 * 60).as_millis() as i64;
    let flow = recent
        .iter()
        .filter(|o| {
            matches!(o.op, Some(v1::operation::Op::OperationRunCommand(_)))
                && o.unix_time_start_ms > cutoff
        })
        .map(|o| o.flow_id)
        .next_back()
        .unwrap_or(0);
    let task = Task::oneoff(
        TaskKind::RunCommand {
            command: req.command.clone(),
        },
        &repo.id,
    )
    .in_flow(flow);
    let (id, outcome) = state
        .orchestrator
        .run_now(task)
        .await
        .map_err(schedule_error)?;
    match outcome {
        Outcome::Success | Outcome::Warning(_) => Ok(v1::RunCommandResponse { operation_id: id }),
        Outcome::Failed(m) => Err(ConnectError::unknown(format!("failed to run command: {m}"))),
        Outcome::Cancelled(m) => Err(ConnectError::canceled(m)),
    }
}

pub async fn cancel(
    state: &AppState,
    req: v1::CancelOperationRequest,
) -> Result<pbjson_types::Empty, ConnectError> {
    state
        .orchestrator
        .cancel(req.operation_id)
        .await
        .map_err(|e| {
            ConnectError::unknown(format!("cancel operation {}: {e}", req.operation_id))
        })?;
    Ok(pbjson_types::Empty {})
}
