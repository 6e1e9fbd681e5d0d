//! One file per task. `run` dispatches; `prototype` builds the PENDING
//! operation a task records when queued; `next_run` computes when a
//! recurring task runs next.

pub mod backup;
pub mod check;
pub mod convert;
pub mod forget;
pub mod gc;
pub mod index;
pub mod prune;
pub mod restore;
pub mod run_command;
pub mod stats;

use chrono::{DateTime, Utc};

use super::context::TaskContext;
use super::task::{Task, TaskError, TaskKind};
use super::{Orchestrator, schedule};
use crate::hooks::engine::Extra;
use crate::pb::v1::{self, OperationStatus, hook, operation::Op};

/// Runs the hooks `events` fire. A halting hook failure is remembered in
/// `ctx.halt` (it decides how the task ends) and returned as the error.
pub async fn hooks(
    ctx: &mut TaskContext,
    events: &[hook::Condition],
    extra: Extra,
) -> Result<(), TaskError> {
    match crate::hooks::engine::execute(ctx, events, extra).await {
        Ok(()) => Ok(()),
        Err(e) => {
            ctx.halt = Some(e.halt);
            Err(TaskError(e.message))
        }
    }
}

/// Runs the hooks of a start event (`CONDITION_*_START`); on a halting
/// failure the task fails with `<what> start hook: …` after its error hooks
/// ran, as when any other step fails.
pub async fn start_hooks(
    ctx: &mut TaskContext,
    event: hook::Condition,
    what: &str,
) -> Result<(), TaskError> {
    hooks(ctx, &[event], Extra::default())
        .await
        .map_err(|e| TaskError(format!("{what} start hook: {}", e.0)))
}

/// Runs the hooks of an end event; a halting failure fails the task with
/// `<what> end hook: …` and no error hooks (Backrest's order).
pub async fn end_hooks(
    ctx: &mut TaskContext,
    events: &[hook::Condition],
    extra: Extra,
    what: &str,
) -> Result<(), TaskError> {
    hooks(ctx, events, extra).await.map_err(|e| {
        ctx.error_hooks_done = true;
        TaskError(format!("{what} end hook: {}", e.0))
    })
}

/// Runs the error hooks of a failure the task reports itself (`events` in
/// the task's order) and returns the error unchanged; their own failures
/// only show on their operations.
pub async fn error_hooks(
    ctx: &mut TaskContext,
    events: &[hook::Condition],
    extra: Extra,
    err: TaskError,
) -> TaskError {
    ctx.error_hooks_done = true;
    if !ctx.cancel.is_cancelled() {
        let halt = ctx.halt;
        let _ = crate::hooks::engine::execute(ctx, events, extra).await;
        ctx.halt = halt;
    }
    err
}

pub async fn run(ctx: &mut TaskContext) -> Result<(), TaskError> {
    match ctx.task.kind.clone() {
        TaskKind::Backup { plan_id, dry_run } => backup::run(ctx, &plan_id, dry_run).await,
        TaskKind::IndexSnapshots => index::run(ctx).await,
        TaskKind::Forget { plan_id } => forget::run_plan(ctx, &plan_id).await,
        TaskKind::RepoForget => forget::run_repo(ctx).await,
        TaskKind::ForgetSnapshot { snapshot_id, .. } => {
            forget::run_snapshot(ctx, &snapshot_id).await
        }
        TaskKind::Prune => prune::run(ctx).await,
        TaskKind::Check => check::run(ctx).await,
        TaskKind::Stats => stats::run(ctx).await,
        TaskKind::Restore {
            snapshot_id,
            path,
            target,
            ..
        } => restore::run(ctx, &snapshot_id, &path, &target).await,
        TaskKind::RunCommand { command } => run_command::run(ctx, &command).await,
        TaskKind::CollectGarbage => gc::run(ctx).await,
    }
}

/// The operation a task records when it is queued (None: it has none).
pub fn prototype(
    task: &Task,
    cfg: &v1::Config,
    run_at: DateTime<Utc>,
) -> Result<Option<v1::Operation>, TaskError> {
    let op = match &task.kind {
        TaskKind::IndexSnapshots | TaskKind::CollectGarbage => return Ok(None),
        TaskKind::Backup { dry_run, .. } => Op::OperationBackup(v1::OperationBackup {
            dry_run: *dry_run,
            ..Default::default()
        }),
        TaskKind::Forget { .. } | TaskKind::RepoForget | TaskKind::ForgetSnapshot { .. } => {
            Op::OperationForget(Default::default())
        }
        TaskKind::Prune => Op::OperationPrune(Default::default()),
        TaskKind::Check => Op::OperationCheck(Default::default()),
        TaskKind::Stats => Op::OperationStats(Default::default()),
        TaskKind::RunCommand { command } => Op::OperationRunCommand(v1::OperationRunCommand {
            command: command.clone(),
            ..Default::default()
        }),
        TaskKind::Restore { path, target, .. } => Op::OperationRestore(v1::OperationRestore {
            path: path.clone(),
            target: target.clone(),
            last_status: None,
        }),
    };
    let repo_id = task.repo_id.clone().unwrap_or_default();
    let repo = cfg
        .repos
        .iter()
        .find(|r| r.id == repo_id)
        .ok_or_else(|| TaskError(format!("repo \"{repo_id}\" not found in the config")))?;
    if repo.guid.is_empty() {
        return Err(TaskError(format!(
            "repo \"{repo_id}\" has no guid yet: it is waiting to be initialized (autoInitialize), or add it with AddRepo"
        )));
    }
    if cfg.instance.is_empty() {
        return Err(TaskError(
            "the instance ID is not set: set it in the settings (config field `instance`) before running tasks".into(),
        ));
    }
    let snapshot_id = match &task.kind {
        TaskKind::ForgetSnapshot { snapshot_id, .. } | TaskKind::Restore { snapshot_id, .. }
            if snapshot_id.len() == 64 =>
        {
            snapshot_id.clone()
        }
        _ => String::new(),
    };
    Ok(Some(v1::Operation {
        instance_id: cfg.instance.clone(),
        repo_id: repo.id.clone(),
        repo_guid: repo.guid.clone(),
        plan_id: task.kind.plan_id().to_string(),
        status: OperationStatus::StatusPending as i32,
        unix_time_start_ms: run_at.timestamp_millis(),
        flow_id: task.flow_id,
        snapshot_id,
        op: Some(op),
        ..Default::default()
    }))
}

fn op_kind_matches(op: &v1::Operation, kind: &TaskKind) -> bool {
    matches!(
        (&op.op, kind),
        (Some(Op::OperationBackup(b)), TaskKind::Backup { .. }) if !b.dry_run
    ) || matches!(
        (&op.op, kind),
        (Some(Op::OperationPrune(_)), TaskKind::Prune)
            | (Some(Op::OperationCheck(_)), TaskKind::Check)
            | (Some(Op::OperationForget(_)), TaskKind::RepoForget)
    )
}

/// When a recurring task runs next (None: never).
/// `after_run`: the task has just run (rather than being planned afresh).
pub async fn next_run(
    orch: &Orchestrator,
    task: &Task,
    cfg: &v1::Config,
    now: DateTime<Utc>,
    after_run: bool,
) -> Result<Option<DateTime<Utc>>, TaskError> {
    if task.kind == TaskKind::CollectGarbage {
        // A second after every (re)plan, then daily.
        let delay = if after_run {
            chrono::Duration::hours(24)
        } else {
            chrono::Duration::seconds(1)
        };
        return Ok(Some(now + delay));
    }
    let repo_id = task.repo_id.clone().unwrap_or_default();
    let Some(repo) = cfg.repos.iter().find(|r| r.id == repo_id) else {
        return Err(TaskError(format!(
            "repo \"{repo_id}\" not found in the config"
        )));
    };
    let schedule = match &task.kind {
        TaskKind::Backup { plan_id, .. } => cfg
            .plans
            .iter()
            .find(|p| &p.id == plan_id)
            .and_then(|p| p.schedule.clone()),
        TaskKind::Prune => repo.prune_policy.as_ref().and_then(|p| p.schedule.clone()),
        TaskKind::Check => repo.check_policy.as_ref().and_then(|p| p.schedule.clone()),
        TaskKind::RepoForget => repo.forget_policy.as_ref().and_then(|p| p.schedule.clone()),
        _ => None,
    };
    let Some(schedule) = schedule else {
        return Ok(None);
    };
    if schedule.schedule.is_none() {
        return Ok(None);
    }
    // When this task last finished.
    let plan_id = task.kind.plan_id();
    let recent = orch
        .recent_ops(&repo.guid, plan_id, &cfg.instance, 200)
        .await?;
    let last_run = recent
        .iter()
        .filter(|o| op_kind_matches(o, &task.kind))
        .filter(|o| o.unix_time_end_ms != 0)
        .filter(|o| {
            o.status != OperationStatus::StatusPending as i32
                && o.status != OperationStatus::StatusSystemCancelled as i32
        })
        .map(|o| o.unix_time_end_ms)
        .max()
        .and_then(DateTime::from_timestamp_millis);
    schedule::next_run(&schedule, last_run, now, &chrono::Local).map_err(TaskError)
}

/// Runs `restic unlock` first when the repo asks for it.
pub async fn auto_unlock(
    ctx: &TaskContext,
    client: &crate::restic::RepoClient,
) -> Result<(), TaskError> {
    if client.repo.auto_unlock {
        let mut sink = ctx.sink();
        client
            .unlock(&ctx.cancel, &mut sink)
            .await
            .map_err(|e| TaskError(format!("auto unlock repo \"{}\": {e}", client.repo.id)))?;
    }
    Ok(())
}

/// A command-output log (`c-<uuid>`, owned by the task's operation, kept
/// until the operation is deleted) for prune/check output.
pub async fn output_log(
    ctx: &TaskContext,
) -> Result<(crate::orchestrator::context::TaskLog, String), TaskError> {
    let id = format!("c-{}", uuid::Uuid::new_v4().simple());
    let owner = ctx.op.as_ref().map(|o| o.id).unwrap_or(0);
    let w = ctx
        .orch
        .logs()
        .create(&id, owner, None)
        .await
        .map_err(|e| TaskError(format!("cannot create the output log: {e}")))?;
    Ok((crate::orchestrator::context::TaskLog::new(w), id))
}

/// A sink writing restic output to the task log and, unprefixed, to `out`.
pub fn tee(
    ctx: &TaskContext,
    out: crate::orchestrator::context::TaskLog,
) -> impl FnMut(&str) + Send + 'static {
    let log = ctx.log.clone();
    move |line: &str| {
        log.line(line);
        if let Some(text) = line.strip_prefix("[restic] ") {
            out.raw(text);
        }
    }
}
