//! Restore a snapshot path into a target directory. The item lands directly
//! under the target (`/home/u/docs` → `<target>/docs`), whatever the restic
//! version: restic < 0.16 has no `snapshot:subfolder` syntax, so we restore
//! into a scratch directory inside the target and move the item up.

use std::path::{Path, PathBuf};

use crate::orchestrator::context::TaskContext;
use crate::orchestrator::task::TaskError;
use crate::pb::v1::{self, operation::Op};
use crate::restic::Feature;
use crate::restic::output::RestoreLine;
use crate::sync_ext::LockExt;

pub async fn run(
    ctx: &mut TaskContext,
    snapshot_id: &str,
    path: &str,
    target: &str,
) -> Result<(), TaskError> {
    if snapshot_id.is_empty() || path.is_empty() || target.is_empty() {
        return Err(TaskError(
            "snapshot id, path and target are required".into(),
        ));
    }
    let client = ctx.client()?;
    let path = path.replace('\\', "/");
    let progress_supported = client.restic.supports(Feature::RestoreProgress);
    if !progress_supported {
        ctx.log.line(
            &client
                .restic
                .lacks(Feature::RestoreProgress, "restore progress"),
        );
    }
    let subfolder = client.restic.supports(Feature::RestoreSubfolder);
    let trimmed = path.trim_end_matches('/');
    let whole = trimmed.is_empty();
    let base = trimmed.rsplit('/').next().unwrap_or("").to_string();

    let restore_into: PathBuf = if subfolder || whole {
        PathBuf::from(target)
    } else {
        Path::new(target).join(format!(".backrest-rs-restore-{}", std::process::id()))
    };
    let mut sink = ctx.sink();
    let oplog = ctx.orch.oplog().clone();
    let mut op_copy = ctx.op.clone();
    let last = std::sync::Arc::new(std::sync::Mutex::new(None::<v1::RestoreProgressEntry>));
    let last2 = last.clone();
    let mut last_save = std::time::Instant::now();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<v1::RestoreProgressEntry>();
    // Progress saver: at most once a second.
    let saver = tokio::spawn(async move {
        while let Some(entry) = rx.recv().await {
            if let Some(op) = op_copy.as_mut() {
                if let Some(Op::OperationRestore(r)) = op.op.as_mut() {
                    r.last_status = Some(entry);
                }
                if let Ok(mut v) = oplog.update(vec![op.clone()]).await
                    && let Some(saved) = v.pop()
                {
                    *op = saved;
                }
            }
        }
    });
    let result = client
        .restore(
            snapshot_id,
            if subfolder { &path } else { trimmed },
            &restore_into.to_string_lossy(),
            &ctx.cancel,
            &mut sink,
            move |_, line| {
                let Ok(l) = serde_json::from_str::<RestoreLine>(line) else {
                    return;
                };
                if l.message_type != "status" && l.message_type != "summary" {
                    return;
                }
                let entry = v1::RestoreProgressEntry {
                    message_type: l.message_type.clone(),
                    seconds_elapsed: l.seconds_elapsed as f64,
                    total_bytes: l.total_bytes,
                    bytes_restored: l.bytes_restored,
                    total_files: l.total_files,
                    files_restored: l.files_restored,
                    percent_done: if l.message_type == "summary" {
                        1.0
                    } else {
                        l.percent_done
                    },
                };
                *last2.locked() = Some(entry.clone());
                if last_save.elapsed() >= std::time::Duration::from_secs(1) {
                    last_save = std::time::Instant::now();
                    let _ = tx.send(entry);
                }
            },
        )
        .await;
    let _ = saver.await;
    result.map_err(|e| TaskError(format!("restore: {e}")))?;

    if !subfolder && !whole {
        // restic < 0.16 recreated the full path under the scratch directory.
        let restored = restore_into.join(trimmed.trim_start_matches('/'));
        let dest = Path::new(target).join(&base);
        let moved = tokio::fs::rename(&restored, &dest).await;
        let cleanup = tokio::fs::remove_dir_all(&restore_into).await;
        match moved {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(TaskError(format!(
                    "restore: nothing matched {path} in snapshot {snapshot_id}"
                )));
            }
            Err(e) => {
                return Err(TaskError(format!(
                    "restore: cannot move {} to {}: {e}",
                    restored.display(),
                    dest.display()
                )));
            }
        }
        if let Err(e) = cleanup {
            ctx.log.line(&format!(
                "could not remove scratch directory {}: {e}",
                restore_into.display()
            ));
        }
    }
    let done = last.locked().take();
    let op = ctx.op_mut();
    if let Some(Op::OperationRestore(r)) = op.op.as_mut() {
        r.last_status = Some(done.unwrap_or(v1::RestoreProgressEntry {
            message_type: "summary".into(),
            percent_done: 1.0,
            ..Default::default()
        }));
    }
    if !progress_supported {
        op.display_message =
            "restored (restic before 0.16 reports no restore progress or byte counts)".into();
    }
    Ok(())
}
