//! Typed views of restic's JSON output, tolerant of every version from 0.14
//! to 0.19: fields added later are optional, renamed fields accept both names.

use serde::Deserialize;

/// `restic cat config`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct RepoConfig {
    #[serde(default)]
    pub version: u32,
    pub id: String,
    #[serde(default)]
    pub chunker_polynomial: String,
}

/// One line of `restic backup --json`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(tag = "message_type", rename_all = "snake_case")]
pub enum BackupEvent {
    Status(BackupStatus),
    Summary(BackupSummary),
    Error(BackupErrorLine),
    VerboseStatus(serde_json::Value),
    ExitError(ExitError),
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct BackupStatus {
    pub seconds_elapsed: u64,
    pub seconds_remaining: u64,
    pub percent_done: f64,
    pub total_files: u64,
    pub files_done: u64,
    pub total_bytes: u64,
    pub bytes_done: u64,
    pub error_count: u64,
    pub current_files: Vec<String>,
    /// restic 0.14 prints `scan_finished` with message_type "status"; such
    /// lines have an `action` and are not progress.
    pub action: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct BackupSummary {
    pub files_new: i64,
    pub files_changed: i64,
    pub files_unmodified: i64,
    pub dirs_new: i64,
    pub dirs_changed: i64,
    pub dirs_unmodified: i64,
    pub data_blobs: i64,
    pub tree_blobs: i64,
    pub data_added: i64,
    pub data_added_packed: i64,
    pub total_files_processed: i64,
    pub total_bytes_processed: i64,
    pub total_duration: f64,
    /// 8 characters before restic 0.15, 64 after; absent when a snapshot was skipped.
    pub snapshot_id: Option<String>,
    pub dry_run: bool,
    pub backup_start: Option<String>,
    pub backup_end: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct BackupErrorLine {
    /// `{"message": "..."}` from 0.17.1; before, the raw Go error struct
    /// (`{}` or `{"Op":"open","Path":"...","Err":13}`).
    pub error: serde_json::Value,
    pub during: String,
    pub item: String,
}

impl BackupErrorLine {
    /// A readable message even where restic gives none (0.14–0.17.0).
    pub fn message(&self) -> String {
        if let Some(m) = self.error.get("message").and_then(|m| m.as_str()) {
            return m.to_string();
        }
        let op = self.error.get("Op").and_then(|v| v.as_str());
        let errno = self.error.get("Err").and_then(|v| v.as_i64());
        match (op, errno) {
            (Some(op), Some(n)) => {
                let text = std::io::Error::from_raw_os_error(n as i32).to_string();
                let text = text
                    .split(" (os error")
                    .next()
                    .unwrap_or(&text)
                    .to_lowercase();
                format!("{op} {}: {text}", self.item)
            }
            _ => format!(
                "could not read {} during {}",
                self.item,
                if self.during.is_empty() {
                    "backup"
                } else {
                    &self.during
                }
            ),
        }
    }
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct ExitError {
    pub code: i32,
    pub message: String,
}

/// An element of `restic snapshots --json`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct Snapshot {
    pub id: String,
    pub short_id: String,
    pub time: String,
    pub parent: String,
    pub tree: String,
    pub paths: Vec<String>,
    pub hostname: String,
    pub username: String,
    pub tags: Vec<String>,
    pub program_version: String,
    /// Only from restic 0.17 on, and only for snapshots that version made.
    pub summary: Option<SnapshotSummary>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct SnapshotSummary {
    pub backup_start: String,
    pub backup_end: String,
    pub files_new: i64,
    pub files_changed: i64,
    pub files_unmodified: i64,
    pub dirs_new: i64,
    pub dirs_changed: i64,
    pub dirs_unmodified: i64,
    pub data_blobs: i64,
    pub tree_blobs: i64,
    pub data_added: i64,
    pub data_added_packed: i64,
    pub total_files_processed: i64,
    pub total_bytes_processed: i64,
}

impl Snapshot {
    /// Milliseconds since the epoch of the RFC 3339 `time`, 0 when unparsable.
    pub fn unix_time_ms(&self) -> i64 {
        parse_rfc3339_ms(&self.time).unwrap_or(0)
    }

    /// Value of the first tag with this prefix (`plan:`, `created-by:`).
    pub fn tag_value(&self, prefix: &str) -> Option<&str> {
        self.tags.iter().find_map(|t| t.strip_prefix(prefix))
    }
}

pub fn parse_rfc3339_ms(s: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.timestamp_millis())
}

/// A group of `restic forget --json`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct ForgetGroup {
    pub tags: Option<Vec<String>>,
    pub host: String,
    pub paths: Option<Vec<String>>,
    pub keep: Option<Vec<Snapshot>>,
    pub remove: Option<Vec<Snapshot>>,
}

/// `restic stats --json` (compression fields from 0.15 on).
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct Stats {
    pub total_size: i64,
    pub total_uncompressed_size: i64,
    pub compression_ratio: f64,
    pub total_file_count: i64,
    pub total_blob_count: i64,
    pub snapshots_count: i64,
}

/// A line of `restic ls --json`: the snapshot, then nodes. 0.14 marks them
/// with `struct_type`; 0.17 adds `message_type`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct LsLine {
    pub struct_type: String,
    pub message_type: String,
    pub name: String,
    #[serde(rename = "type")]
    pub node_type: String,
    pub path: String,
    pub uid: i64,
    pub gid: i64,
    pub size: i64,
    pub mode: i64,
    pub mtime: String,
    pub atime: String,
    pub ctime: String,
}

impl LsLine {
    pub fn is_node(&self) -> bool {
        self.struct_type == "node" || self.message_type == "node"
    }
}

/// A line of `restic restore --json` (0.16+).
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct RestoreLine {
    pub message_type: String,
    pub seconds_elapsed: i64,
    pub percent_done: f64,
    pub total_files: i64,
    pub files_restored: i64,
    pub files_skipped: i64,
    pub total_bytes: i64,
    pub bytes_restored: i64,
    pub bytes_skipped: i64,
    pub message: String,
}

/// Parses a command's stdout as one JSON value, skipping leading lines that
/// are not JSON (restic sometimes prints warnings first).
pub fn parse_json_output<T: serde::de::DeserializeOwned>(stdout: &str) -> Result<T, String> {
    let mut rest = stdout.trim_start();
    loop {
        match serde_json::from_str::<T>(rest.trim_end()) {
            Ok(v) => return Ok(v),
            Err(e) => match rest.find('\n') {
                Some(i) => rest = rest[i + 1..].trim_start(),
                None => return Err(format!("command output is not valid JSON: {e}")),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backup_lines_from_restic_0_14() {
        let status: BackupEvent = serde_json::from_str(
            r#"{"message_type":"status","percent_done":0.014,"total_files":300,"files_done":2,"total_bytes":3978012,"bytes_done":56538,"current_files":["/a","/b"]}"#,
        )
        .unwrap();
        let BackupEvent::Status(s) = status else {
            panic!()
        };
        assert_eq!(s.files_done, 2);
        assert_eq!(s.current_files, vec!["/a", "/b"]);
        let summary: BackupEvent = serde_json::from_str(
            r#"{"message_type":"summary","files_new":300,"files_changed":0,"files_unmodified":0,"dirs_new":103,"dirs_changed":0,"dirs_unmodified":0,"data_blobs":300,"tree_blobs":104,"data_added":4120365,"total_files_processed":300,"total_bytes_processed":3978012,"total_duration":0.445744714,"snapshot_id":"3569f76b"}"#,
        )
        .unwrap();
        let BackupEvent::Summary(s) = summary else {
            panic!()
        };
        assert_eq!(s.snapshot_id.as_deref(), Some("3569f76b"));
        assert_eq!(s.data_added, 4120365);
        let err: BackupEvent = serde_json::from_str(
            r#"{"message_type":"error","error":{"Op":"open","Path":"/t/u.txt","Err":13},"during":"archival","item":"/t/u.txt"}"#,
        )
        .unwrap();
        let BackupEvent::Error(e) = err else { panic!() };
        assert_eq!(e.message(), "open /t/u.txt: permission denied");
        let e2: BackupErrorLine =
            serde_json::from_str(r#"{"error":{},"during":"scan","item":"/t/d"}"#).unwrap();
        assert_eq!(e2.message(), "could not read /t/d during scan");
        let e3: BackupErrorLine =
            serde_json::from_str(r#"{"error":{"message":"boom"},"item":"/x"}"#).unwrap();
        assert_eq!(e3.message(), "boom");
        // 0.14's scan_finished line claims to be a status.
        let sf: BackupEvent = serde_json::from_str(
            r#"{"message_type":"status","action":"scan_finished","item":"","duration":0.2}"#,
        )
        .unwrap();
        let BackupEvent::Status(sf) = sf else {
            panic!()
        };
        assert_eq!(sf.action.as_deref(), Some("scan_finished"));
    }

    #[test]
    fn snapshots_forget_and_stats() {
        let snaps: Vec<Snapshot> = parse_json_output(
            "warning: something\n[{\"time\":\"2026-11-28T16:04:14.483219568Z\",\"tree\":\"89\",\"paths\":[\"/s\"],\"hostname\":\"vm\",\"username\":\"root\",\"tags\":[\"plan:x\",\"created-by:me\"],\"id\":\"3569f76baa5d6bea02efe175566c795ea85c7425c23a802863a118ff15bd17a9\",\"short_id\":\"3569f76b\"},{\"time\":\"2026-11-28T16:04:27Z\",\"tree\":\"a2\",\"paths\":[\"/s\"],\"hostname\":\"vm\",\"username\":\"root\",\"id\":\"de40\",\"short_id\":\"de40\"}]\n",
        )
        .unwrap();
        assert_eq!(snaps.len(), 2);
        assert_eq!(snaps[0].unix_time_ms(), 1795881854483);
        assert_eq!(snaps[0].tag_value("plan:"), Some("x"));
        assert_eq!(snaps[0].tag_value("created-by:"), Some("me"));
        assert!(snaps[1].tags.is_empty());
        assert!(snaps[0].summary.is_none());
        let groups: Vec<ForgetGroup> = parse_json_output(r#"[{"tags":null,"host":"vm","paths":["/s"],"keep":[{"id":"a"}],"remove":null,"reasons":[]}]"#).unwrap();
        assert!(groups[0].remove.is_none());
        let stats: Stats = parse_json_output(
            r#"{"total_size":10,"total_file_count":2,"total_blob_count":3,"snapshots_count":1}"#,
        )
        .unwrap();
        assert_eq!(stats.total_blob_count, 3);
        assert!(parse_json_output::<Stats>("not json\nstill not").is_err());
    }

    #[test]
    fn ls_lines_old_and_new() {
        let old: LsLine = serde_json::from_str(
            r#"{"name":"f","type":"file","path":"/s/f","size":5,"struct_type":"node"}"#,
        )
        .unwrap();
        let new: LsLine = serde_json::from_str(
            r#"{"name":"f","type":"file","path":"/s/f","size":5,"message_type":"node"}"#,
        )
        .unwrap();
        let snap: LsLine =
            serde_json::from_str(r#"{"time":"x","struct_type":"snapshot","id":"abc"}"#).unwrap();
        assert!(old.is_node() && new.is_node() && !snap.is_node());
    }
}
