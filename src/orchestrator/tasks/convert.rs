//! restic output → wire messages.

use crate::pb::v1;
use crate::restic::output::{BackupStatus, BackupSummary, Snapshot, Stats};

pub fn status_entry(s: &BackupStatus, previous_files: &[String]) -> v1::BackupProgressStatusEntry {
    v1::BackupProgressStatusEntry {
        percent_done: s.percent_done,
        total_files: s.total_files as i64,
        total_bytes: s.total_bytes as i64,
        files_done: s.files_done as i64,
        bytes_done: s.bytes_done as i64,
        // restic omits current_files between files; keep showing the last ones.
        current_file: if s.current_files.is_empty() {
            previous_files.to_vec()
        } else {
            s.current_files.clone()
        },
    }
}

pub fn summary_entry(s: &BackupSummary, snapshot_id: &str) -> v1::BackupProgressSummary {
    v1::BackupProgressSummary {
        files_new: s.files_new,
        files_changed: s.files_changed,
        files_unmodified: s.files_unmodified,
        dirs_new: s.dirs_new,
        dirs_changed: s.dirs_changed,
        dirs_unmodified: s.dirs_unmodified,
        data_blobs: s.data_blobs,
        tree_blobs: s.tree_blobs,
        data_added: s.data_added,
        total_files_processed: s.total_files_processed,
        total_bytes_processed: s.total_bytes_processed,
        total_duration: s.total_duration,
        snapshot_id: snapshot_id.to_string(),
    }
}

/// A snapshot as the API shows it. `backup_summary` fills in statistics
/// restic < 0.17 doesn't keep in the snapshot (from our own backup record).
pub fn snapshot(
    s: &Snapshot,
    backup_summary: Option<&v1::BackupProgressSummary>,
) -> v1::ResticSnapshot {
    let summary = match (&s.summary, backup_summary) {
        (Some(sum), _) => {
            let start = crate::restic::output::parse_rfc3339_ms(&sum.backup_start);
            let end = crate::restic::output::parse_rfc3339_ms(&sum.backup_end);
            Some(v1::SnapshotSummary {
                files_new: sum.files_new,
                files_changed: sum.files_changed,
                files_unmodified: sum.files_unmodified,
                dirs_new: sum.dirs_new,
                dirs_changed: sum.dirs_changed,
                dirs_unmodified: sum.dirs_unmodified,
                data_blobs: sum.data_blobs,
                tree_blobs: sum.tree_blobs,
                data_added: sum.data_added,
                total_files_processed: sum.total_files_processed,
                total_bytes_processed: sum.total_bytes_processed,
                total_duration: match (start, end) {
                    (Some(a), Some(b)) => (b - a) as f64 / 1000.0,
                    _ => 0.0,
                },
            })
        }
        (None, Some(b)) => Some(v1::SnapshotSummary {
            files_new: b.files_new,
            files_changed: b.files_changed,
            files_unmodified: b.files_unmodified,
            dirs_new: b.dirs_new,
            dirs_changed: b.dirs_changed,
            dirs_unmodified: b.dirs_unmodified,
            data_blobs: b.data_blobs,
            tree_blobs: b.tree_blobs,
            data_added: b.data_added,
            total_files_processed: b.total_files_processed,
            total_bytes_processed: b.total_bytes_processed,
            total_duration: b.total_duration,
        }),
        (None, None) => Some(v1::SnapshotSummary::default()),
    };
    v1::ResticSnapshot {
        id: s.id.clone(),
        unix_time_ms: s.unix_time_ms(),
        hostname: s.hostname.clone(),
        username: s.username.clone(),
        tree: s.tree.clone(),
        parent: s.parent.clone(),
        paths: s.paths.clone(),
        tags: s.tags.clone(),
        summary,
    }
}

pub fn stats(s: &Stats) -> v1::RepoStats {
    v1::RepoStats {
        total_size: s.total_size,
        total_uncompressed_size: s.total_uncompressed_size,
        compression_ratio: s.compression_ratio,
        total_blob_count: s.total_blob_count,
        snapshot_count: s.snapshots_count,
    }
}
