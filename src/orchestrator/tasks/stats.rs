//! Stats: `restic stats --json --mode=raw-data` into OperationStats.

use super::convert;
use crate::orchestrator::context::TaskContext;
use crate::orchestrator::task::TaskError;
use crate::pb::v1::{self, operation::Op};

pub async fn run(ctx: &mut TaskContext) -> Result<(), TaskError> {
    let client = ctx.client()?;
    let mut sink = ctx.sink();
    let stats = client
        .stats(&ctx.cancel, &mut sink)
        .await
        .map_err(|e| TaskError(format!("stats: {e}")))?;
    ctx.op_mut().op = Some(Op::OperationStats(v1::OperationStats {
        stats: Some(convert::stats(&stats)),
    }));
    Ok(())
}

/// Whether a follow-up stats run is due: not when one finished in the last
/// 24 hours (Backrest's rule; DoRepoTask TASK_STATS always runs).
pub async fn followup_due(ctx: &TaskContext) -> Result<bool, TaskError> {
    let repo = ctx.repo()?;
    let recent = ctx
        .orch
        .recent_ops(
            &repo.guid,
            crate::orchestrator::task::SYSTEM_PLAN,
            &ctx.config.instance,
            500,
        )
        .await?;
    let day_ago = chrono::Utc::now().timestamp_millis() - 24 * 3600 * 1000;
    let fresh = recent.iter().any(|o| {
        matches!(o.op, Some(Op::OperationStats(_)))
            && o.unix_time_end_ms > day_ago
            && o.status != v1::OperationStatus::StatusPending as i32
            && o.status != v1::OperationStatus::StatusSystemCancelled as i32
    });
    Ok(!fresh)
}
