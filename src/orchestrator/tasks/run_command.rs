//! RunCommand: a user's restic command against a repo, its output kept in
//! the operation's output log (at most 2,000,000 bytes, as Backrest).

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use crate::orchestrator::context::TaskContext;
use crate::orchestrator::task::TaskError;
use crate::pb::v1::{self, operation::Op};
use crate::restic::env;

pub const OUTPUT_LIMIT: i64 = 2_000_000;

pub async fn run(ctx: &mut TaskContext, command: &str) -> Result<(), TaskError> {
    let client = ctx.client()?;
    let args =
        env::shell_split(command).map_err(|e| TaskError(format!("command {command:?}: {e}")))?;
    if args.is_empty() {
        return Err(TaskError(
            "the command is empty: give restic arguments such as `snapshots`".into(),
        ));
    }
    let (out, logref) = super::output_log(ctx).await?;
    ctx.op_mut().op = Some(Op::OperationRunCommand(v1::OperationRunCommand {
        command: command.into(),
        output_logref: logref.clone(),
        output_size_bytes: 0,
    }));
    ctx.save_op().await?;
    let written = Arc::new(AtomicI64::new(0));
    let w2 = written.clone();
    let log = ctx.log.clone();
    let out2 = out.clone();
    let mut sink = move |line: &str| {
        log.line(line);
        let text = line.strip_prefix("[restic] ").unwrap_or(line);
        let before = w2.fetch_add(text.len() as i64 + 1, Ordering::SeqCst);
        if before < OUTPUT_LIMIT {
            out2.raw(text);
        } else if before - (text.len() as i64 + 1) < OUTPUT_LIMIT {
            out2.raw("... output truncated at 2,000,000 bytes ...");
        }
    };
    let result = client.run_command(&args, &ctx.cancel, &mut sink).await;
    out.close().await;
    let size = written.load(Ordering::SeqCst).min(OUTPUT_LIMIT);
    if let Some(Op::OperationRunCommand(r)) = ctx.op_mut().op.as_mut() {
        r.output_size_bytes = size;
    }
    result.map_err(|e| TaskError(format!("command {command:?}: {e}")))
}
