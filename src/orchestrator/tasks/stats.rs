//! Stats: `restic stats --json --mode=raw-data` into OperationStats.

use super::convert;
use crate::orchestrator::context::TaskContext;
use crate::orchestrator::task::TaskError;
use crate::pb::v1::{self, operation::Op};

pub async fn run(ctx: &mut TaskContext) -> Result<(), TaskError> {
    let client = ctx.client()?;
    let mut sink = ctx.sink();
    let stats = client.stats(&ctx.cancel, &mut sink).await.map_err(|e| TaskError(format!("stats: {e}")))?;
    ctx.op_mut().op = Some(Op::OperationStats(v1::OperationStats { stats: Some(convert::stats(&stats)) }));
    Ok(())
}
