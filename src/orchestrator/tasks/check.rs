//! Check: `restic check`, optionally reading a subset of the data.

use crate::hooks::engine::Extra;
use crate::orchestrator::context::TaskContext;
use crate::orchestrator::task::TaskError;
use crate::pb::v1::{self, check_policy::Mode, hook::Condition, operation::Op};

pub async fn run(ctx: &mut TaskContext) -> Result<(), TaskError> {
    let client = ctx.client()?;
    let repo = ctx.repo()?;
    let (out, logref) = super::output_log(ctx).await?;
    ctx.op_mut().op = Some(Op::OperationCheck(v1::OperationCheck {
        output: String::new(),
        output_logref: logref,
    }));
    ctx.save_op().await?;
    super::start_hooks(ctx, Condition::CheckStart, "check").await?;
    super::auto_unlock(ctx, &client).await?;
    let percent = match repo.check_policy.as_ref().and_then(|p| p.mode.as_ref()) {
        Some(Mode::ReadDataSubsetPercent(p)) if *p > 0.0 => Some(*p),
        _ => None,
    };
    let mut sink = super::tee(ctx, out.clone());
    let result = client.check(percent, &ctx.cancel, &mut sink).await;
    out.close().await;
    if let Err(e) = result {
        let err = TaskError(format!("check: {e}"));
        let events = [Condition::CheckError, Condition::AnyError];
        return Err(super::error_hooks(ctx, &events, Extra::error(&err.0), err).await);
    }
    super::end_hooks(ctx, &[Condition::CheckSuccess], Extra::default(), "check").await
}
