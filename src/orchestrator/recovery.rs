//! Startup recovery: operations the previous process left unfinished.
//!
//! * INPROGRESS (the server was killed or crashed mid-task) → ERROR, saying so.
//! * PENDING that were due (queued work that never started) → ERROR, saying
//!   it never ran, so nothing a user asked for vanishes silently.
//! * PENDING in the future (scheduled runs) → deleted; the schedule re-creates them.
//!
//! Repos that had a task running get a `restic unlock` (stale locks only), so
//! a lock left by a killed restic doesn't block the next operation.

use std::collections::HashSet;

use chrono::Utc;

use crate::oplog::OpLog;
use crate::pb::v1::OperationStatus;

pub const INTERRUPTED: &str = "The server stopped while this operation was running (it was killed, crashed or lost power). \
                               Nothing was recorded after that point; run it again.";
pub const NEVER_STARTED: &str = "The server stopped before this operation started; it did not run. Start it again if it is still needed.";

/// Returns the repo ids that had a running operation.
pub async fn recover(oplog: &OpLog) -> anyhow::Result<HashSet<String>> {
    let now = Utc::now().timestamp_millis();
    let stale = oplog
        .query_by_status(&[
            OperationStatus::StatusInprogress,
            OperationStatus::StatusPending,
        ])
        .await?;
    let mut repos = HashSet::new();
    let mut fix = Vec::new();
    let mut drop = Vec::new();
    for mut op in stale {
        if op.status == OperationStatus::StatusInprogress as i32 {
            repos.insert(op.repo_id.clone());
            op.status = OperationStatus::StatusError as i32;
            op.unix_time_end_ms = now.max(op.unix_time_start_ms);
            op.display_message = join(INTERRUPTED, &op.display_message);
            fix.push(op);
        } else if op.unix_time_start_ms > now {
            drop.push(op.id);
        } else {
            op.status = OperationStatus::StatusError as i32;
            op.unix_time_end_ms = now;
            op.display_message = join(NEVER_STARTED, &op.display_message);
            fix.push(op);
        }
    }
    if !fix.is_empty() {
        tracing::warn!(
            "{} operations were unfinished when the server last stopped; marked as errors",
            fix.len()
        );
        oplog.update(fix).await?;
    }
    if !drop.is_empty() {
        oplog.delete(&drop).await?;
    }
    Ok(repos)
}

fn join(a: &str, b: &str) -> String {
    if b.is_empty() {
        a.to_string()
    } else {
        format!("{a}\n\n{b}")
    }
}
