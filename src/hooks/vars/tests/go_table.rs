//! Hook templates against Backrest's `HookVars`, case by case. Every
//! template was written by hand (or taken from Backrest's docs and web UI);
//! every expected output and error was produced by Go's text/template
//! (Go 1.19) executing Backrest's own `hookvars.go` (including its built-in
//! `.Summary` templates) on the same variables as the fixtures in
//! `mod.rs`. `contains` cases differ only in positions inside the summary
//! template, which is our own text.

use super::{Case, Want::*};

pub const CASES: &[Case] = &[
    Case {
        name: "summary_start",
        tmpl: "{{ .Summary }}",
        data: "h_start",
        want: Out(
            "\nBackrest Notification for Snapshot Start\nTask: \"backup for plan \"daily-docs\"\" at 2026-07-13T11:37:12+05:30\nEvent: snapshot start\nRepo: local-repo \nPlan: daily-docs \nPaths: \n- /home/alice/Documents\n- /etc\n",
        ),
    },
    Case {
        name: "summary_end",
        tmpl: "{{ .Summary }}",
        data: "h_end",
        want: Out(
            "\nBackrest Snapshot Notification\nTask: backup for plan \"daily-docs\" at 2026-07-13T11:37:12+05:30\nEvent: snapshot end\nSnapshot: 4f1c2d3e5a6b7c8d\nOverview:\n- Data added: 1.049 MB\n- Total files processed: 1060\n- Total bytes processed: 5.369 GB\n\nBackup Statistics:\n- Files new: 12\n- Files changed: 3\n- Files unmodified: 1045\n- Dirs new: 2\n- Dirs changed: 5\n- Dirs unmodified: 201\n- Data blobs: 17\n- Tree blobs: 8\n- Total duration: 12.3456789s\n\n",
        ),
    },
    Case {
        name: "summary_warning",
        tmpl: "{{ .Summary }}",
        data: "h_warning",
        want: Out(
            "\nBackrest Snapshot Notification\nTask: backup for plan \"daily-docs\" at 2026-07-13T11:37:12+05:30\nEvent: snapshot warning\nSnapshot: 4f1c2d3e5a6b7c8d\nOverview:\n- Data added: 1.049 MB\n- Total files processed: 1060\n- Total bytes processed: 5.369 GB\n\nBackup Statistics:\n- Files new: 12\n- Files changed: 3\n- Files unmodified: 1045\n- Dirs new: 2\n- Dirs changed: 5\n- Dirs unmodified: 201\n- Data blobs: 17\n- Tree blobs: 8\n- Total duration: 12.3456789s\n\n",
        ),
    },
    Case {
        name: "summary_end_err",
        tmpl: "{{ .Summary }}",
        data: "h_end_err",
        want: Out(
            "\nBackrest Snapshot Notification\nTask: backup for plan \"daily-docs\" at 2026-07-13T11:37:12+05:30\nEvent: snapshot end\nSnapshot: \nError: exit status 3: some files could not be read\n",
        ),
    },
    Case {
        name: "summary_success_nostats",
        tmpl: "{{ .Summary }}",
        data: "h_success_nostats",
        want: Out(
            "\nBackrest Snapshot Notification\nTask: backup for plan \"daily-docs\" at 2026-07-13T11:37:12+05:30\nEvent: snapshot success\nSnapshot: \n\n",
        ),
    },
    Case {
        name: "summary_err",
        tmpl: "{{ .Summary }}",
        data: "h_err",
        want: Out(
            "\nBackrest Error\nTask: prune for repo \"local-repo\" at 2026-07-13T11:37:12+05:30\nEvent: error\nRepo: local-repo\nError: restic: repository is locked\n\n",
        ),
    },
    Case {
        name: "summary_snap_err",
        tmpl: "{{ .Summary }}",
        data: "h_snap_err",
        want: Out(
            "\nBackrest Error\nTask: backup for plan \"daily-docs\" at 2026-07-13T11:37:12+05:30\nEvent: snapshot error\nRepo: local-repo\nError: it's <broken> & \"bad\"\n\tsecond line\n\n",
        ),
    },
    Case {
        name: "summary_notify",
        tmpl: "{{ .Summary }}",
        data: "h_notify",
        want: Out(
            "\nBackrest Notification\nTask: prune for repo \"local-repo\" at 2026-07-13T11:37:12+05:30\nEvent: prune success\n\n",
        ),
    },
    Case {
        name: "summary_utc",
        tmpl: "{{ .Summary }}",
        data: "h_utc",
        want: Out(
            "\nBackrest Notification\nTask: backup for plan \"daily-docs\" at 2026-01-02T03:04:05Z\nEvent: check start\n\n",
        ),
    },
    Case {
        name: "summary_system",
        tmpl: "{{ .Summary }}",
        data: "h_system",
        want: Out(
            "\nBackrest Notification\nTask: backup for plan \"daily-docs\" at 2026-07-13T11:37:12+05:30\nEvent: forget start\n\n",
        ),
    },
    Case {
        name: "summary_unknown",
        tmpl: "{{ .Summary }}",
        data: "h_unknown",
        want: Out(
            "\nBackrest Notification\nTask: backup for plan \"daily-docs\" at 2026-07-13T11:37:12+05:30\nEvent: unknown\n\n",
        ),
    },
    Case {
        name: "summary_nil_repo",
        tmpl: "{{ .Summary }}",
        data: "h_nils",
        want: ErrContains("nil pointer evaluating *v1.Repo.Id"),
    },
    Case {
        name: "ui_command_start",
        tmpl: "echo {{ .ShellEscape .Summary }}",
        data: "h_start",
        want: Out(
            "echo '\nBackrest Notification for Snapshot Start\nTask: \"backup for plan \"daily-docs\"\" at 2026-07-13T11:37:12+05:30\nEvent: snapshot start\nRepo: local-repo \nPlan: daily-docs \nPaths: \n- /home/alice/Documents\n- /etc\n'",
        ),
    },
    Case {
        name: "ui_gotify_title_start",
        tmpl: "Backrest {{ .EventName .Event }} in plan {{ .Plan.Id }}",
        data: "h_start",
        want: Out("Backrest snapshot start in plan daily-docs"),
    },
    Case {
        name: "ui_command_end",
        tmpl: "echo {{ .ShellEscape .Summary }}",
        data: "h_end",
        want: Out(
            "echo '\nBackrest Snapshot Notification\nTask: backup for plan \"daily-docs\" at 2026-07-13T11:37:12+05:30\nEvent: snapshot end\nSnapshot: 4f1c2d3e5a6b7c8d\nOverview:\n- Data added: 1.049 MB\n- Total files processed: 1060\n- Total bytes processed: 5.369 GB\n\nBackup Statistics:\n- Files new: 12\n- Files changed: 3\n- Files unmodified: 1045\n- Dirs new: 2\n- Dirs changed: 5\n- Dirs unmodified: 201\n- Data blobs: 17\n- Tree blobs: 8\n- Total duration: 12.3456789s\n\n'",
        ),
    },
    Case {
        name: "ui_gotify_title_end",
        tmpl: "Backrest {{ .EventName .Event }} in plan {{ .Plan.Id }}",
        data: "h_end",
        want: Out("Backrest snapshot end in plan daily-docs"),
    },
    Case {
        name: "ui_command_err",
        tmpl: "echo {{ .ShellEscape .Summary }}",
        data: "h_err",
        want: Out(
            "echo '\nBackrest Error\nTask: prune for repo \"local-repo\" at 2026-07-13T11:37:12+05:30\nEvent: error\nRepo: local-repo\nError: restic: repository is locked\n\n'",
        ),
    },
    Case {
        name: "ui_gotify_title_err",
        tmpl: "Backrest {{ .EventName .Event }} in plan {{ .Plan.Id }}",
        data: "h_err",
        want: Out("Backrest error in plan daily-docs"),
    },
    Case {
        name: "ui_command_snap_err",
        tmpl: "echo {{ .ShellEscape .Summary }}",
        data: "h_snap_err",
        want: Out(
            "echo '\nBackrest Error\nTask: backup for plan \"daily-docs\" at 2026-07-13T11:37:12+05:30\nEvent: snapshot error\nRepo: local-repo\nError: it'\"'\"'s <broken> & \"bad\"\n\tsecond line\n\n'",
        ),
    },
    Case {
        name: "ui_gotify_title_snap_err",
        tmpl: "Backrest {{ .EventName .Event }} in plan {{ .Plan.Id }}",
        data: "h_snap_err",
        want: Out("Backrest snapshot error in plan daily-docs"),
    },
    Case {
        name: "ui_command_notify",
        tmpl: "echo {{ .ShellEscape .Summary }}",
        data: "h_notify",
        want: Out(
            "echo '\nBackrest Notification\nTask: prune for repo \"local-repo\" at 2026-07-13T11:37:12+05:30\nEvent: prune success\n\n'",
        ),
    },
    Case {
        name: "ui_gotify_title_notify",
        tmpl: "Backrest {{ .EventName .Event }} in plan {{ .Plan.Id }}",
        data: "h_notify",
        want: Out("Backrest prune success in plan daily-docs"),
    },
    Case {
        name: "doc_healthcheck_ok",
        tmpl: "#!/bin/bash\n{{ if .Error -}}\ncurl -fsS --retry 3 https://hc-ping.com/your-uuid/fail\n{{ else -}}\ncurl -fsS --retry 3 https://hc-ping.com/your-uuid\n{{ end -}}\n",
        data: "h_end",
        want: Out("#!/bin/bash\ncurl -fsS --retry 3 https://hc-ping.com/your-uuid\n"),
    },
    Case {
        name: "doc_healthcheck_fail",
        tmpl: "#!/bin/bash\n{{ if .Error -}}\ncurl -fsS --retry 3 https://hc-ping.com/your-uuid/fail\n{{ else -}}\ncurl -fsS --retry 3 https://hc-ping.com/your-uuid\n{{ end -}}\n",
        data: "h_end_err",
        want: Out("#!/bin/bash\ncurl -fsS --retry 3 https://hc-ping.com/your-uuid/fail\n"),
    },
    Case {
        name: "doc_osascript",
        tmpl: "#!/bin/bash\n{{ if .Error -}}\nosascript -e 'display notification \"{{ .ShellEscape .Task }} failed\" with title \"Backrest\"'\n{{ else -}}\nosascript -e 'display notification \"{{ .ShellEscape .Task }} succeeded\" with title \"Backrest\"'\n{{ end -}}\n",
        data: "h_end",
        want: Out(
            "#!/bin/bash\nosascript -e 'display notification \"'backup for plan \"daily-docs\"' succeeded\" with title \"Backrest\"'\n",
        ),
    },
    Case {
        name: "doc_slack_ok",
        tmpl: "{\n  \"blocks\": [\n    {\n      \"type\": \"section\",\n      \"text\": {\n        \"type\": \"mrkdwn\",\n        \"text\": \"Backup: *{{ .Plan.Id }}* ➝ *{{ .Repo.Id }}* at *{{ .FormatTime .CurTime }}*\"\n      }\n    },\n    {\n      \"type\": \"divider\"\n    },\n    {{ if .Error }}\n    {\n      \"type\": \"section\",\n      \"text\": {\n        \"type\": \"mrkdwn\",\n        \"text\": \":x: *Snapshot failed:*\\n```{{ .Error }}```\"\n      }\n    }\n    {{ else }}\n    {\n      \"type\": \"section\",\n      \"text\": {\n        \"type\": \"mrkdwn\",\n        \"text\": \":white_check_mark: *Snapshot `{{ .SnapshotId }}` created*\"\n      }\n    },\n    {\n      \"type\": \"section\",\n      \"fields\": [\n        {\n          \"type\": \"mrkdwn\",\n          \"text\": \"*Total Added:*\\n`{{ .FormatSizeBytes .SnapshotStats.DataAdded }}`\"\n        },\n        {\n          \"type\": \"mrkdwn\",\n          \"text\": \"*Files Processed:*\\n`{{ .SnapshotStats.TotalFilesProcessed }}`\"\n        },\n        {\n          \"type\": \"mrkdwn\",\n          \"text\": \"*Bytes Processed:*\\n`{{ .FormatSizeBytes .SnapshotStats.TotalBytesProcessed }}`\"\n        },\n        {\n          \"type\": \"mrkdwn\",\n          \"text\": \"*Time:*\\n`{{ .SnapshotStats.TotalDuration }}s`\"\n        }\n      ]\n    },\n    {\n      \"type\": \"section\",\n      \"text\": {\n        \"type\": \"mrkdwn\",\n        \"text\": \"*Backup Stats:*\\n• *Files:* `{{ .SnapshotStats.FilesNew }} new`, `{{ .SnapshotStats.FilesChanged }} changed`, `{{ .SnapshotStats.FilesUnmodified }} unmodified`\\n• *Dirs:* `{{ .SnapshotStats.DirsNew }} new`, `{{ .SnapshotStats.DirsChanged }} changed`, `{{ .SnapshotStats.DirsUnmodified }} unmodified`\"\n      }\n    }\n    {{ end }}\n  ]\n}\n",
        data: "h_end",
        want: Out(
            "{\n  \"blocks\": [\n    {\n      \"type\": \"section\",\n      \"text\": {\n        \"type\": \"mrkdwn\",\n        \"text\": \"Backup: *daily-docs* ➝ *local-repo* at *2026-07-13T11:37:12+05:30*\"\n      }\n    },\n    {\n      \"type\": \"divider\"\n    },\n    \n    {\n      \"type\": \"section\",\n      \"text\": {\n        \"type\": \"mrkdwn\",\n        \"text\": \":white_check_mark: *Snapshot `4f1c2d3e5a6b7c8d` created*\"\n      }\n    },\n    {\n      \"type\": \"section\",\n      \"fields\": [\n        {\n          \"type\": \"mrkdwn\",\n          \"text\": \"*Total Added:*\\n`1.049 MB`\"\n        },\n        {\n          \"type\": \"mrkdwn\",\n          \"text\": \"*Files Processed:*\\n`1060`\"\n        },\n        {\n          \"type\": \"mrkdwn\",\n          \"text\": \"*Bytes Processed:*\\n`5.369 GB`\"\n        },\n        {\n          \"type\": \"mrkdwn\",\n          \"text\": \"*Time:*\\n`12.3456789s`\"\n        }\n      ]\n    },\n    {\n      \"type\": \"section\",\n      \"text\": {\n        \"type\": \"mrkdwn\",\n        \"text\": \"*Backup Stats:*\\n• *Files:* `12 new`, `3 changed`, `1045 unmodified`\\n• *Dirs:* `2 new`, `5 changed`, `201 unmodified`\"\n      }\n    }\n    \n  ]\n}\n",
        ),
    },
    Case {
        name: "doc_slack_error",
        tmpl: "{\n  \"blocks\": [\n    {\n      \"type\": \"section\",\n      \"text\": {\n        \"type\": \"mrkdwn\",\n        \"text\": \"Backup: *{{ .Plan.Id }}* ➝ *{{ .Repo.Id }}* at *{{ .FormatTime .CurTime }}*\"\n      }\n    },\n    {\n      \"type\": \"divider\"\n    },\n    {{ if .Error }}\n    {\n      \"type\": \"section\",\n      \"text\": {\n        \"type\": \"mrkdwn\",\n        \"text\": \":x: *Snapshot failed:*\\n```{{ .Error }}```\"\n      }\n    }\n    {{ else }}\n    {\n      \"type\": \"section\",\n      \"text\": {\n        \"type\": \"mrkdwn\",\n        \"text\": \":white_check_mark: *Snapshot `{{ .SnapshotId }}` created*\"\n      }\n    },\n    {\n      \"type\": \"section\",\n      \"fields\": [\n        {\n          \"type\": \"mrkdwn\",\n          \"text\": \"*Total Added:*\\n`{{ .FormatSizeBytes .SnapshotStats.DataAdded }}`\"\n        },\n        {\n          \"type\": \"mrkdwn\",\n          \"text\": \"*Files Processed:*\\n`{{ .SnapshotStats.TotalFilesProcessed }}`\"\n        },\n        {\n          \"type\": \"mrkdwn\",\n          \"text\": \"*Bytes Processed:*\\n`{{ .FormatSizeBytes .SnapshotStats.TotalBytesProcessed }}`\"\n        },\n        {\n          \"type\": \"mrkdwn\",\n          \"text\": \"*Time:*\\n`{{ .SnapshotStats.TotalDuration }}s`\"\n        }\n      ]\n    },\n    {\n      \"type\": \"section\",\n      \"text\": {\n        \"type\": \"mrkdwn\",\n        \"text\": \"*Backup Stats:*\\n• *Files:* `{{ .SnapshotStats.FilesNew }} new`, `{{ .SnapshotStats.FilesChanged }} changed`, `{{ .SnapshotStats.FilesUnmodified }} unmodified`\\n• *Dirs:* `{{ .SnapshotStats.DirsNew }} new`, `{{ .SnapshotStats.DirsChanged }} changed`, `{{ .SnapshotStats.DirsUnmodified }} unmodified`\"\n      }\n    }\n    {{ end }}\n  ]\n}\n",
        data: "h_end_err",
        want: Out(
            "{\n  \"blocks\": [\n    {\n      \"type\": \"section\",\n      \"text\": {\n        \"type\": \"mrkdwn\",\n        \"text\": \"Backup: *daily-docs* ➝ *local-repo* at *2026-07-13T11:37:12+05:30*\"\n      }\n    },\n    {\n      \"type\": \"divider\"\n    },\n    \n    {\n      \"type\": \"section\",\n      \"text\": {\n        \"type\": \"mrkdwn\",\n        \"text\": \":x: *Snapshot failed:*\\n```exit status 3: some files could not be read```\"\n      }\n    }\n    \n  ]\n}\n",
        ),
    },
    Case {
        name: "doc_vars_table",
        tmpl: "{{ .Event }} {{ .Task }} {{ .Repo.Id }} {{ .Plan.Id }} {{ .SnapshotId }} {{ .FormatTime .CurTime }} {{ .FormatDuration .Duration }} {{ .Error }}",
        data: "h_end",
        want: Out(
            "CONDITION_SNAPSHOT_END backup for plan \"daily-docs\" local-repo daily-docs 4f1c2d3e5a6b7c8d 2026-07-13T11:37:12+05:30 1m23.456s ",
        ),
    },
    Case {
        name: "doc_helpers",
        tmpl: "{{ .FormatSizeBytes 1048576 }} {{ .ShellEscape \"my string\" }} {{ .JsonMarshal .SnapshotStats }}",
        data: "h_end",
        want: Out(
            "1.049 MB 'my string' {\"message_type\":\"summary\",\"error\":null,\"during\":\"\",\"item\":\"\",\"files_new\":12,\"files_changed\":3,\"files_unmodified\":1045,\"dirs_new\":2,\"dirs_changed\":5,\"dirs_unmodified\":201,\"data_blobs\":17,\"tree_blobs\":8,\"data_added\":1048576,\"total_files_processed\":1060,\"total_bytes_processed\":5368709120,\"total_duration\":12.3456789,\"snapshot_id\":\"4f1c2d3e5a6b7c8d\",\"percent_done\":0,\"total_files\":0,\"files_done\":0,\"total_bytes\":0,\"bytes_done\":0,\"current_files\":null,\"action\":\"\",\"exit_error\":\"\",\"message\":\"\"}",
        ),
    },
    Case {
        name: "size_small",
        tmpl: "{{ .FormatSizeBytes 0 }}|{{ .FormatSizeBytes 999 }}|{{ .FormatSizeBytes 1000 }}|{{ .FormatSizeBytes 1001 }}|{{ .FormatSizeBytes -5 }}",
        data: "h_end",
        want: Out("0.000 B|999.000 B|1000.000 B|1.001 KB|-5.000 B"),
    },
    Case {
        name: "size_units",
        tmpl: "{{ .FormatSizeBytes 1048576 }}|{{ .FormatSizeBytes 5368709120 }}|{{ .FormatSizeBytes 1500000000000 }}|{{ .FormatSizeBytes 2000000000000000 }}|{{ .FormatSizeBytes 999999999999999999 }}",
        data: "h_end",
        want: Out("1.049 MB|5.369 GB|1.500 TB|2.000 PB|1000.000 PB"),
    },
    Case {
        name: "size_non_int",
        tmpl: "{{ .FormatSizeBytes 1.5 }}|{{ .FormatSizeBytes \"12\" }}|{{ .FormatSizeBytes .Repo.PrunePolicy.MaxUnusedPercent }}|{{ .FormatSizeBytes .Event }}|{{ .FormatSizeBytes nil }}",
        data: "h_end",
        want: Out("0.000 B|0.000 B|0.000 B|0.000 B|0.000 B"),
    },
    Case {
        name: "size_fields",
        tmpl: "{{ .FormatSizeBytes .SnapshotStats.DataAdded }}|{{ .FormatSizeBytes .SnapshotStats.TotalBytesProcessed }}|{{ .FormatSizeBytes .SnapshotStats.FilesNew }}",
        data: "h_end",
        want: Out("1.049 MB|5.369 GB|12.000 B"),
    },
    Case {
        name: "size_too_large",
        tmpl: "{{ .FormatSizeBytes 9223372036854775807 }}",
        data: "h_end",
        want: Err(
            "template: template:1:3: executing \"template\" at <.FormatSizeBytes>: error calling FormatSizeBytes: runtime error: index out of range [6] with length 6",
        ),
    },
    Case {
        name: "duration",
        tmpl: "{{ .FormatDuration .Duration }}|{{ .FormatDuration 1500 }}|{{ .FormatDuration 1500000 }}|{{ .FormatDuration 999999999 }}|{{ .FormatDuration 3600000000000 }}|{{ .FormatDuration -1500000 }}|{{ .FormatDuration 90061001000000 }}|{{ .FormatDuration 0 }}",
        data: "h_end",
        want: Out("1m23.456s|0s|1ms|999ms|1h0m0s|-1ms|25h1m1.001s|0s"),
    },
    Case {
        name: "duration_zero",
        tmpl: "{{ .FormatDuration .Duration }}",
        data: "h_start",
        want: Out("0s"),
    },
    Case {
        name: "duration_wrong_type",
        tmpl: "{{ .FormatDuration .Task }}",
        data: "h_end",
        want: Err(
            "template: template:1:19: executing \"template\" at <.Task>: wrong type for value; expected time.Duration; got string",
        ),
    },
    Case {
        name: "time_offset",
        tmpl: "{{ .FormatTime .CurTime }}",
        data: "h_start",
        want: Out("2026-07-13T11:37:12+05:30"),
    },
    Case {
        name: "time_utc",
        tmpl: "{{ .FormatTime .CurTime }}",
        data: "h_utc",
        want: Out("2026-01-02T03:04:05Z"),
    },
    Case {
        name: "time_wrong_type",
        tmpl: "{{ .FormatTime .Task }}",
        data: "h_start",
        want: Err(
            "template: template:1:15: executing \"template\" at <.Task>: wrong type for value; expected time.Time; got string",
        ),
    },
    Case {
        name: "time_methods",
        tmpl: "{{ .CurTime.Unix }} {{ .CurTime.Year }} {{ .CurTime.Month }} {{ .CurTime.Day }} {{ .CurTime.Weekday }} {{ .CurTime.Hour }}",
        data: "h_start",
        want: Out("1783922832 2026 July 13 Monday 11"),
    },
    Case {
        name: "time_format_layouts",
        tmpl: "{{ .CurTime.Format \"2006-01-02 15:04:05 MST\" }}|{{ .CurTime.Format \"Jan _2 3:04PM Mon\" }}|{{ .CurTime.Format \"02/01/06 .000 Z07:00\" }}|{{ .CurTime.Format \"Monday, January 2, 2006\" }}",
        data: "h_start",
        want: Out(
            "2026-07-13 11:37:12 +0530|Jul 13 11:37AM Mon|13/07/26 .000 +05:30|Monday, July 13, 2026",
        ),
    },
    Case {
        name: "time_format_utc",
        tmpl: "{{ .CurTime.Format \"2006-01-02T15:04:05.000Z07:00 MST\" }}|{{ .CurTime.Format \"15:04:05.999999\" }}|{{ .CurTime }}|{{ .CurTime.UnixMilli }}",
        data: "h_utc",
        want: Out(
            "2026-01-02T03:04:05.600Z UTC|03:04:05.6|2026-01-02 03:04:05.6 +0000 UTC|1767323045600",
        ),
    },
    Case {
        name: "time_print",
        tmpl: "{{ .CurTime }}|{{ .CurTime.String }}",
        data: "h_start",
        want: Out("2026-07-13 11:37:12 +0530 +0530|2026-07-13 11:37:12 +0530 +0530"),
    },
    Case {
        name: "shell_escape",
        tmpl: "[{{ .ShellEscape \"\" }}] [{{ .ShellEscape \"simple-word_1.2/x:y,z@h%=+\" }}] [{{ .ShellEscape \"has space\" }}] [{{ .ShellEscape \"it's\" }}] [{{ .ShellEscape \"$HOME\" }}] [{{ .ShellEscape \"héllo\" }}] [{{ .ShellEscape \"a\\nb\" }}] [{{ .ShellEscape .Task }}]",
        data: "h_start",
        want: Out(
            "[''] [simple-word_1.2/x:y,z@h%=+] ['has space'] ['it'\"'\"'s'] ['$HOME'] ['héllo'] ['a\nb'] ['backup for plan \"daily-docs\"']",
        ),
    },
    Case {
        name: "shell_escape_wrong_type",
        tmpl: "{{ .ShellEscape .Event }}",
        data: "h_start",
        want: Err(
            "template: template:1:16: executing \"template\" at <.Event>: wrong type for value; expected string; got v1.Hook_Condition",
        ),
    },
    Case {
        name: "shell_escape_literal_int",
        tmpl: "{{ .ShellEscape 5 }}",
        data: "h_start",
        want: Err(
            "template: template:1:16: executing \"template\" at <5>: expected string; found 5",
        ),
    },
    Case {
        name: "event_names",
        tmpl: "{{ .EventName 0 }} {{ .EventName 1 }} {{ .EventName 2 }} {{ .EventName 3 }} {{ .EventName 4 }} {{ .EventName 5 }} {{ .EventName 6 }} {{ .EventName 7 }} {{ .EventName 100 }} {{ .EventName 101 }} {{ .EventName 102 }} {{ .EventName 200 }} {{ .EventName 201 }} {{ .EventName 202 }} {{ .EventName 300 }} {{ .EventName 301 }} {{ .EventName 302 }} {{ .EventName 999 }}",
        data: "h_start",
        want: Out(
            "unknown error snapshot start snapshot end snapshot error snapshot warning snapshot success snapshot skipped prune start prune error prune success check start check error check success forget start forget error forget success unknown",
        ),
    },
    Case {
        name: "event_name_field",
        tmpl: "{{ .EventName .Event }}|{{ .Event }}|{{ printf \"%d\" .Event }}",
        data: "h_unknown",
        want: Out("unknown|999|999"),
    },
    Case {
        name: "event_name_string_arg",
        tmpl: "{{ .EventName \"x\" }}",
        data: "h_start",
        want: Err(
            "template: template:1:14: executing \"template\" at <\"x\">: expected integer; found \"x\"",
        ),
    },
    Case {
        name: "is_error",
        tmpl: "{{ .IsError .Event }} {{ .IsError 1 }} {{ .IsError 4 }} {{ .IsError 3 }} {{ .IsError 101 }}",
        data: "h_err",
        want: Out("true true true false false"),
    },
    Case {
        name: "is_error_branch",
        tmpl: "{{ if .IsError .Event }}ERR{{ else }}ok{{ end }}",
        data: "h_snap_err",
        want: Out("ERR"),
    },
    Case {
        name: "event_compare",
        tmpl: "{{ eq .Event 3 }} {{ if eq .Event 3 }}end{{ end }}",
        data: "h_end",
        want: Out("true end"),
    },
    Case {
        name: "json_repo",
        tmpl: "{{ .JsonMarshal .Repo }}",
        data: "h_end",
        want: Out(
            "{\"id\":\"local-repo\",\"uri\":\"/mnt/backups/restic\",\"guid\":\"0f3c9a7e5b21\",\"password\":\"hunter2\",\"env\":[\"RESTIC_COMPRESSION=max\"],\"flags\":[\"--no-lock\"],\"prune_policy\":{\"schedule\":{\"Schedule\":{\"Cron\":\"0 0 * * 0\"},\"clock\":3},\"max_unused_percent\":25},\"auto_unlock\":true}",
        ),
    },
    Case {
        name: "json_plan",
        tmpl: "{{ .JsonMarshal .Plan }}",
        data: "h_end",
        want: Out(
            "{\"id\":\"daily-docs\",\"repo\":\"local-repo\",\"paths\":[\"/home/alice/Documents\",\"/etc\"],\"excludes\":[\"*.tmp\"],\"schedule\":{\"Schedule\":{\"MaxFrequencyDays\":1}},\"retention\":{\"Policy\":{\"PolicyTimeBucketed\":{\"daily\":7,\"weekly\":4}}},\"hooks\":[{\"conditions\":[3],\"Action\":{\"ActionCommand\":{\"command\":\"echo hi\"}}}]}",
        ),
    },
    Case {
        name: "json_stats",
        tmpl: "{{ .JsonMarshal .SnapshotStats }}",
        data: "h_end",
        want: Out(
            "{\"message_type\":\"summary\",\"error\":null,\"during\":\"\",\"item\":\"\",\"files_new\":12,\"files_changed\":3,\"files_unmodified\":1045,\"dirs_new\":2,\"dirs_changed\":5,\"dirs_unmodified\":201,\"data_blobs\":17,\"tree_blobs\":8,\"data_added\":1048576,\"total_files_processed\":1060,\"total_bytes_processed\":5368709120,\"total_duration\":12.3456789,\"snapshot_id\":\"4f1c2d3e5a6b7c8d\",\"percent_done\":0,\"total_files\":0,\"files_done\":0,\"total_bytes\":0,\"bytes_done\":0,\"current_files\":null,\"action\":\"\",\"exit_error\":\"\",\"message\":\"\"}",
        ),
    },
    Case {
        name: "json_nil_stats",
        tmpl: "{{ .JsonMarshal .SnapshotStats }}|{{ .JsonMarshal nil }}",
        data: "h_start",
        want: Out("null|null"),
    },
    Case {
        name: "json_scalars",
        tmpl: "{{ .JsonMarshal .Task }}|{{ .JsonMarshal .Event }}|{{ .JsonMarshal .Duration }}|{{ .JsonMarshal .CurTime }}|{{ .JsonMarshal .Repo.Env }}|{{ .JsonMarshal 1.5 }}|{{ .JsonMarshal .Error }}",
        data: "h_snap_err",
        want: Out(
            "\"backup for plan \\\"daily-docs\\\"\"|4|83456789000|\"2026-07-13T11:37:12+05:30\"|[\"RESTIC_COMPRESSION=max\"]|1.5|\"it's \\u003cbroken\\u003e \\u0026 \\\"bad\\\"\\n\\tsecond line\"",
        ),
    },
    Case {
        name: "json_hookvars",
        tmpl: "{{ .JsonMarshal . }}",
        data: "h_end",
        want: Out(
            "{\"Task\":\"backup for plan \\\"daily-docs\\\"\",\"Event\":3,\"Repo\":{\"id\":\"local-repo\",\"uri\":\"/mnt/backups/restic\",\"guid\":\"0f3c9a7e5b21\",\"password\":\"hunter2\",\"env\":[\"RESTIC_COMPRESSION=max\"],\"flags\":[\"--no-lock\"],\"prune_policy\":{\"schedule\":{\"Schedule\":{\"Cron\":\"0 0 * * 0\"},\"clock\":3},\"max_unused_percent\":25},\"auto_unlock\":true},\"Plan\":{\"id\":\"daily-docs\",\"repo\":\"local-repo\",\"paths\":[\"/home/alice/Documents\",\"/etc\"],\"excludes\":[\"*.tmp\"],\"schedule\":{\"Schedule\":{\"MaxFrequencyDays\":1}},\"retention\":{\"Policy\":{\"PolicyTimeBucketed\":{\"daily\":7,\"weekly\":4}}},\"hooks\":[{\"conditions\":[3],\"Action\":{\"ActionCommand\":{\"command\":\"echo hi\"}}}]},\"SnapshotId\":\"4f1c2d3e5a6b7c8d\",\"SnapshotStats\":{\"message_type\":\"summary\",\"error\":null,\"during\":\"\",\"item\":\"\",\"files_new\":12,\"files_changed\":3,\"files_unmodified\":1045,\"dirs_new\":2,\"dirs_changed\":5,\"dirs_unmodified\":201,\"data_blobs\":17,\"tree_blobs\":8,\"data_added\":1048576,\"total_files_processed\":1060,\"total_bytes_processed\":5368709120,\"total_duration\":12.3456789,\"snapshot_id\":\"4f1c2d3e5a6b7c8d\",\"percent_done\":0,\"total_files\":0,\"files_done\":0,\"total_bytes\":0,\"bytes_done\":0,\"current_files\":null,\"action\":\"\",\"exit_error\":\"\",\"message\":\"\"},\"CurTime\":\"2026-07-13T11:37:12+05:30\",\"Duration\":83456789000,\"Error\":\"\"}",
        ),
    },
    Case {
        name: "json_utc_time",
        tmpl: "{{ .JsonMarshal .CurTime }}",
        data: "h_utc",
        want: Out("\"2026-01-02T03:04:05.6Z\""),
    },
    Case {
        name: "json_system_plan",
        tmpl: "{{ .JsonMarshal .Plan }}",
        data: "h_system",
        want: Out("{\"id\":\"_system_\"}"),
    },
    Case {
        name: "repo_fields",
        tmpl: "{{ .Repo.Id }} {{ .Repo.Uri }} {{ .Repo.Guid }} {{ .Repo.Password }} {{ .Repo.Env }} {{ .Repo.Flags }} {{ .Repo.AutoUnlock }} {{ .Repo.Shared }}",
        data: "h_end",
        want: Out(
            "local-repo /mnt/backups/restic 0f3c9a7e5b21 hunter2 [RESTIC_COMPRESSION=max] [--no-lock] true false",
        ),
    },
    Case {
        name: "repo_nested",
        tmpl: "{{ .Repo.PrunePolicy.MaxUnusedPercent }} {{ .Repo.PrunePolicy.MaxUnusedBytes }} {{ .Repo.PrunePolicy.Schedule.Clock }} {{ .Repo.PrunePolicy.Schedule.GetCron }} {{ .Repo.PrunePolicy.Schedule.Schedule.Cron }}",
        data: "h_end",
        want: Out("25 0 CLOCK_LAST_RUN_TIME 0 0 * * 0 0 0 * * 0"),
    },
    Case {
        name: "repo_getters",
        tmpl: "{{ .Repo.GetId }} {{ .Repo.GetUri }} [{{ .Repo.GetCheckPolicy.GetSchedule.GetCron }}] {{ .Repo.GetPrunePolicy.GetMaxUnusedPercent }}",
        data: "h_end",
        want: Out("local-repo /mnt/backups/restic [] 25"),
    },
    Case {
        name: "repo_nil_nested",
        tmpl: "{{ .Repo.CheckPolicy.Schedule }}",
        data: "h_end",
        want: Err(
            "template: template:1:8: executing \"template\" at <.Repo.CheckPolicy.Schedule>: nil pointer evaluating *v1.CheckPolicy.Schedule",
        ),
    },
    Case {
        name: "repo_unknown_field",
        tmpl: "{{ .Repo.Nope }}",
        data: "h_end",
        want: Err(
            "template: template:1:8: executing \"template\" at <.Repo.Nope>: can't evaluate field Nope in type *v1.Repo",
        ),
    },
    Case {
        name: "repo_nil",
        tmpl: "{{ .Repo.Id }}",
        data: "h_nils",
        want: Err(
            "template: template:1:8: executing \"template\" at <.Repo.Id>: nil pointer evaluating *v1.Repo.Id",
        ),
    },
    Case {
        name: "repo_nil_getter",
        tmpl: "[{{ .Repo.GetId }}]",
        data: "h_nils",
        want: Out("[]"),
    },
    Case {
        name: "plan_fields",
        tmpl: "{{ .Plan.Paths }} {{ range .Plan.Paths }}{{ . }};{{ end }} {{ len .Plan.Hooks }} {{ .Plan.Excludes }} {{ .Plan.Iexcludes }} {{ .Plan.SkipIfUnchanged }}",
        data: "h_end",
        want: Out("[/home/alice/Documents /etc] /home/alice/Documents;/etc; 1 [*.tmp] [] false"),
    },
    Case {
        name: "plan_hooks",
        tmpl: "{{ (index .Plan.Hooks 0).Conditions }} {{ (index .Plan.Hooks 0).GetActionCommand.Command }} {{ (index .Plan.Hooks 0).OnError }} [{{ (index .Plan.Hooks 0).GetActionDiscord.GetTemplate }}]",
        data: "h_end",
        want: Out("[CONDITION_SNAPSHOT_END] echo hi ON_ERROR_IGNORE []"),
    },
    Case {
        name: "plan_oneofs",
        tmpl: "{{ .Plan.Retention.GetPolicyTimeBucketed.Daily }} {{ .Plan.Retention.GetPolicyTimeBucketed.Weekly }} {{ .Plan.Schedule.GetMaxFrequencyDays }} [{{ .Plan.Schedule.GetCron }}] {{ .Plan.Retention.GetPolicyKeepLastN }}",
        data: "h_end",
        want: Out("7 4 1 [] 0"),
    },
    Case {
        name: "plan_system_stub",
        tmpl: "{{ .Plan.Id }} {{ .Plan.Paths }} {{ len .Plan.Paths }} {{ if .Plan.Schedule }}s{{ else }}no schedule{{ end }}",
        data: "h_system",
        want: Out("_system_ [] 0 no schedule"),
    },
    Case {
        name: "plan_enum_list",
        tmpl: "{{ range (index .Plan.Hooks 0).Conditions }}{{ . }}={{ printf \"%d\" . }}{{ end }}",
        data: "h_end",
        want: Out("CONDITION_SNAPSHOT_END=3"),
    },
    Case {
        name: "stats_fields",
        tmpl: "{{ .SnapshotStats.DataAdded }} {{ .SnapshotStats.TotalDuration }} {{ .SnapshotStats.MessageType }} {{ .SnapshotStats.CurrentFiles }} {{ .SnapshotStats.PercentDone }} [{{ .SnapshotStats.Error }}] {{ .SnapshotStats.SnapshotId }}",
        data: "h_end",
        want: Out("1048576 12.3456789 summary [] 0 [<no value>] 4f1c2d3e5a6b7c8d"),
    },
    Case {
        name: "stats_nil",
        tmpl: "{{ .SnapshotStats }}|{{ if .SnapshotStats }}y{{ else }}n{{ end }}",
        data: "h_start",
        want: Out("<nil>|n"),
    },
    Case {
        name: "stats_nil_field",
        tmpl: "{{ .SnapshotStats.DataAdded }}",
        data: "h_start",
        want: Err(
            "template: template:1:17: executing \"template\" at <.SnapshotStats.DataAdded>: nil pointer evaluating *restic.BackupProgressEntry.DataAdded",
        ),
    },
    Case {
        name: "plain_fields",
        tmpl: "{{ .Task }}|{{ .SnapshotId }}|{{ .Error }}|{{ .Duration }}|{{ .Duration.Seconds }}|{{ .Duration.Milliseconds }}",
        data: "h_end",
        want: Out("backup for plan \"daily-docs\"|4f1c2d3e5a6b7c8d||1m23.456789s|83.456789|83456"),
    },
    Case {
        name: "summary_with_args",
        tmpl: "{{ .Summary 1 }}",
        data: "h_end",
        want: Err(
            "template: template:1:3: executing \"template\" at <.Summary>: wrong number of args for Summary: want 0 got 1",
        ),
    },
    Case {
        name: "unknown_var",
        tmpl: "{{ .Nope }}",
        data: "h_end",
        want: Err(
            "template: template:1:3: executing \"template\" at <.Nope>: can't evaluate field Nope in type tasks.HookVars",
        ),
    },
    Case {
        name: "error_json_escaping",
        tmpl: "{{ .JsonMarshal .Error }}|{{ js .Error }}|{{ html .Error }}|{{ printf \"%q\" .Error }}",
        data: "h_snap_err",
        want: Out(
            "\"it's \\u003cbroken\\u003e \\u0026 \\\"bad\\\"\\n\\tsecond line\"|it\\'s \\u003Cbroken\\u003E \\u0026 \\\"bad\\\"\\u000A\\u0009second line|it&#39;s &lt;broken&gt; &amp; &#34;bad&#34;\n\tsecond line|\"it's <broken> & \\\"bad\\\"\\n\\tsecond line\"",
        ),
    },
];
