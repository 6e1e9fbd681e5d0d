//! Prune: `restic prune --max-unused …`, output kept in its own log.

use crate::hooks::engine::Extra;
use crate::orchestrator::context::TaskContext;
use crate::orchestrator::task::{Task, TaskError, TaskKind, priority};
use crate::pb::v1::{self, hook::Condition, operation::Op};

/// `--max-unused` from the prune policy (Backrest's rules: 25% without a policy).
pub fn max_unused(policy: Option<&v1::PrunePolicy>) -> String {
    match policy {
        None => "25%".into(),
        Some(p) if p.max_unused_bytes != 0 => format!("{}B", p.max_unused_bytes),
        Some(p) => format!("{}%", fmt_number(p.max_unused_percent)),
    }
}

pub fn fmt_number(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

pub async fn run(ctx: &mut TaskContext) -> Result<(), TaskError> {
    let client = ctx.client()?;
    let repo = ctx.repo()?;
    let (out, logref) = super::output_log(ctx).await?;
    ctx.op_mut().op = Some(Op::OperationPrune(v1::OperationPrune {
        output: String::new(),
        output_logref: logref.clone(),
    }));
    ctx.save_op().await?;
    super::start_hooks(ctx, Condition::PruneStart, "prune").await?;
    super::auto_unlock(ctx, &client).await?;
    let mut sink = super::tee(ctx, out.clone());
    let result = client
        .prune(
            Some(max_unused(repo.prune_policy.as_ref())),
            &ctx.cancel,
            &mut sink,
        )
        .await;
    out.close().await;
    if let Err(e) = result {
        let err = TaskError(format!("prune: {e}"));
        let events = [Condition::PruneError, Condition::AnyError];
        return Err(super::error_hooks(ctx, &events, Extra::error(&err.0), err).await);
    }
    if super::stats::followup_due(ctx).await? {
        let repo_id = ctx.repo_id().to_string();
        ctx.followup(Task::oneoff(TaskKind::Stats, &repo_id), priority::STATS);
    }
    super::end_hooks(ctx, &[Condition::PruneSuccess], Extra::default(), "prune").await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_unused_follows_backrest() {
        assert_eq!(max_unused(None), "25%");
        assert_eq!(
            max_unused(Some(&v1::PrunePolicy {
                max_unused_percent: 10.0,
                ..Default::default()
            })),
            "10%"
        );
        assert_eq!(
            max_unused(Some(&v1::PrunePolicy {
                max_unused_percent: 12.5,
                ..Default::default()
            })),
            "12.5%"
        );
        assert_eq!(
            max_unused(Some(&v1::PrunePolicy {
                max_unused_bytes: 1000,
                max_unused_percent: 5.0,
                ..Default::default()
            })),
            "1000B"
        );
    }
}
