//! Forget: a plan's retention, the repo's own forget policy, or one snapshot.

use super::convert;
use crate::hooks::engine::Extra;
use crate::oplog::Query;
use crate::orchestrator::context::TaskContext;
use crate::orchestrator::task::{Task, TaskError, TaskKind, priority};
use crate::pb::v1::{self, hook::Condition, operation::Op};
use crate::restic::repo::keep_flags;

/// Per-plan retention (after a backup, or the Forget RPC without a snapshot).
pub async fn run_plan(ctx: &mut TaskContext, plan_id: &str) -> Result<(), TaskError> {
    let plan = ctx.plan(plan_id)?;
    let instance = ctx.config.instance.clone();
    let tags = format!("plan:{},created-by:{instance}", plan.id);
    let Some(retention) = plan.retention else {
        return Err(TaskError(format!(
            "plan \"{plan_id}\" has no retention policy"
        )));
    };
    apply(
        ctx,
        retention,
        vec!["--tag".into(), tags, "--group-by".into(), String::new()],
    )
    .await
}

/// The repo-level forget policy (each tag set retained independently).
pub async fn run_repo(ctx: &mut TaskContext) -> Result<(), TaskError> {
    let repo = ctx.repo()?;
    let Some(retention) = repo.forget_policy.as_ref().and_then(|f| f.retention) else {
        return Err(TaskError(format!(
            "repo \"{}\" has no forget policy configured",
            repo.id
        )));
    };
    apply(ctx, retention, vec!["--group-by".into(), "tags".into()]).await?;
    if super::stats::followup_due(ctx).await? {
        let repo_id = ctx.repo_id().to_string();
        ctx.followup(Task::oneoff(TaskKind::Stats, &repo_id), priority::STATS);
    }
    Ok(())
}

async fn apply(
    ctx: &mut TaskContext,
    retention: v1::RetentionPolicy,
    per_call: Vec<String>,
) -> Result<(), TaskError> {
    let client = ctx.client()?;
    ctx.op_mut().op = Some(Op::OperationForget(v1::OperationForget {
        forget: vec![],
        policy: Some(retention),
    }));
    let flags = keep_flags(&retention).map_err(|e| TaskError(format!("forget: {e}")))?;
    if flags.is_empty() {
        // Keep-all (Backrest crashes here): nothing to forget.
        super::start_hooks(ctx, Condition::ForgetStart, "forget").await?;
        ctx.log
            .line("retention keeps every snapshot: nothing to forget");
        ctx.op_mut().display_message =
            "retention policy keeps all snapshots; nothing was forgotten".into();
        return super::end_hooks(ctx, &[Condition::ForgetSuccess], Extra::default(), "forget")
            .await;
    }
    super::auto_unlock(ctx, &client).await?;
    super::start_hooks(ctx, Condition::ForgetStart, "forget").await?;
    let mut sink = ctx.sink();
    let groups = client
        .forget(flags, per_call, &ctx.cancel, &mut sink)
        .await
        .map_err(|e| TaskError(format!("forget: {e}")))?;
    let removed: Vec<_> = groups
        .iter()
        .flat_map(|g| g.remove.clone().unwrap_or_default())
        .collect();
    ctx.op_mut().op = Some(Op::OperationForget(v1::OperationForget {
        forget: removed.iter().map(|s| convert::snapshot(s, None)).collect(),
        policy: Some(retention),
    }));
    mark_forgotten(ctx, removed.iter().map(|s| s.id.clone()).collect()).await?;
    super::end_hooks(ctx, &[Condition::ForgetSuccess], Extra::default(), "forget").await
}

/// Marks the index operations of forgotten snapshots.
async fn mark_forgotten(ctx: &TaskContext, ids: Vec<String>) -> Result<(), TaskError> {
    if ids.is_empty() {
        return Ok(());
    }
    let guid = ctx.repo()?.guid;
    let mut changed = Vec::new();
    for id in ids {
        for mut op in ctx
            .orch
            .oplog()
            .query(&Query::all().repo_guid(&guid).snapshot_id(&id))
            .await?
        {
            if let Some(Op::OperationIndexSnapshot(i)) = op.op.as_mut()
                && !i.forgot
            {
                i.forgot = true;
                changed.push(op);
            }
        }
    }
    if !changed.is_empty() {
        ctx.orch.oplog().update(changed).await?;
    }
    Ok(())
}

/// Forget one snapshot (Forget RPC with a snapshot id). The forget
/// operation records what was forgotten.
pub async fn run_snapshot(ctx: &mut TaskContext, snapshot_id: &str) -> Result<(), TaskError> {
    if snapshot_id.is_empty() {
        return Err(TaskError("a snapshot id is required".into()));
    }
    let client = ctx.client()?;
    super::auto_unlock(ctx, &client).await?;
    let mut sink = ctx.sink();
    let full = client.resolve_snapshot_id(snapshot_id, &ctx.cancel).await?;
    client
        .forget_snapshots(std::slice::from_ref(&full), &ctx.cancel, &mut sink)
        .await?;
    let op = ctx.op_mut();
    op.op = Some(Op::OperationForget(v1::OperationForget {
        forget: vec![v1::ResticSnapshot {
            id: full.clone(),
            ..Default::default()
        }],
        policy: None,
    }));
    op.display_message = format!("forgot snapshot {full}");
    mark_forgotten(ctx, vec![full]).await
}
