//! The invariants every stored operation satisfies (Backrest checks the same
//! ones on every add and update).

use crate::pb::v1::Operation;

/// Restic snapshot ids are 64 hex characters; short ids mean an old restic.
pub const SNAPSHOT_ID_LEN: usize = 64;

/// Returns the first violated invariant as a message such as
/// `plan_id is required`.
pub fn validate(op: &Operation) -> Result<(), String> {
    let required = [
        (op.id == 0, "id is required"),
        (op.modno == 0, "modno is required"),
        (op.repo_guid.is_empty(), "repo_guid is required"),
        (op.flow_id == 0, "flow_id is required"),
        (op.repo_id.is_empty(), "repo_id is required"),
        (op.plan_id.is_empty(), "plan_id is required"),
        (op.instance_id.is_empty(), "instance_id is required"),
        (
            op.unix_time_start_ms == 0,
            "unix_time_start_ms must be non-zero",
        ),
    ];
    if let Some((_, message)) = required.iter().find(|(violated, _)| *violated) {
        return Err((*message).to_string());
    }
    if !op.snapshot_id.is_empty() && op.snapshot_id.chars().count() != SNAPSHOT_ID_LEN {
        return Err(format!(
            "operation.snapshot_id is invalid: snapshot ID must be {SNAPSHOT_ID_LEN} chars, got {} chars \
             (restic may be out of date)",
            op.snapshot_id.chars().count()
        ));
    }
    Ok(())
}
