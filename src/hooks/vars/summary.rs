//! The texts of `.Summary`: three built-in templates whose output matches
//! Backrest's built-in summaries exactly (every line, blank line and
//! trailing space). Each begins with a newline, as Backrest's do.

/// For `CONDITION_SNAPSHOT_START`.
pub const SNAPSHOT_START: &str = concat!(
    "\nBackrest Notification for Snapshot Start\n",
    "Task: \"{{.Task}}\" at {{.FormatTime .CurTime}}\n",
    "Event: {{.EventName .Event}}\n",
    // Backrest's Repo and Plan lines end with a space.
    "Repo: {{.Repo.Id}} \n",
    "Plan: {{.Plan.Id}} \n",
    "Paths: \n",
    "{{range $path := .Plan.Paths}}- {{$path}}\n{{end}}",
);

/// For `CONDITION_SNAPSHOT_END`, `_WARNING` and `_SUCCESS`.
pub const SNAPSHOT_END: &str = concat!(
    "\nBackrest Snapshot Notification\n",
    "Task: {{.Task}} at {{.FormatTime .CurTime}}\n",
    "Event: {{.EventName .Event}}\n",
    "Snapshot: {{.SnapshotId}}\n",
    "{{if .Error}}Error: {{.Error}}\n",
    "{{else}}{{with $s := .SnapshotStats}}Overview:\n",
    "- Data added: {{$.FormatSizeBytes $s.DataAdded}}\n",
    "- Total files processed: {{$s.TotalFilesProcessed}}\n",
    "- Total bytes processed: {{$.FormatSizeBytes $s.TotalBytesProcessed}}\n",
    "\n",
    "Backup Statistics:\n",
    "- Files new: {{$s.FilesNew}}\n",
    "- Files changed: {{$s.FilesChanged}}\n",
    "- Files unmodified: {{$s.FilesUnmodified}}\n",
    "- Dirs new: {{$s.DirsNew}}\n",
    "- Dirs changed: {{$s.DirsChanged}}\n",
    "- Dirs unmodified: {{$s.DirsUnmodified}}\n",
    "- Data blobs: {{$s.DataBlobs}}\n",
    "- Tree blobs: {{$s.TreeBlobs}}\n",
    "- Total duration: {{$s.TotalDuration}}s\n",
    "{{end}}\n",
    "{{end}}",
);

/// For every other event.
pub const GENERIC: &str = concat!(
    "\n{{if .Error}}Backrest Error\n",
    "Task: {{.Task}} at {{.FormatTime .CurTime}}\n",
    "Event: {{.EventName .Event}}\n",
    "Repo: {{.Repo.Id}}\n",
    "Error: {{.Error}}\n",
    "{{else}}Backrest Notification\n",
    "Task: {{.Task}} at {{.FormatTime .CurTime}}\n",
    "Event: {{.EventName .Event}}\n",
    "{{end}}\n",
);
