//! restic versions and the features that depend on them.

use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version(pub u32, pub u32, pub u32);

impl Version {
    /// Parses `restic 0.14.0 compiled with go1.19.8 on linux/amd64` (or the
    /// JSON of `restic version --json` from 0.17 on).
    pub fn parse_output(out: &str) -> Option<Version> {
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(out.trim())
            && let Some(s) = v.get("version").and_then(|v| v.as_str())
        {
            return Version::parse(s);
        }
        let mut words = out.split_whitespace();
        while let Some(w) = words.next() {
            if w == "restic"
                && let Some(v) = words.next().and_then(Version::parse)
            {
                return Some(v);
            }
        }
        None
    }

    /// Parses `0.14.0`, `v0.19.1`, `0.17.3-dev`.
    pub fn parse(s: &str) -> Option<Version> {
        let s = s.trim().trim_start_matches('v');
        let core = s.split(['-', '+', ' ']).next()?;
        let mut parts = core.split('.').map(|p| p.parse::<u32>());
        let v = Version(
            parts.next()?.ok()?,
            parts.next()?.ok()?,
            parts.next().unwrap_or(Ok(0)).ok()?,
        );
        Some(v)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

/// Behaviour that changed across the restic versions we support (0.14 – 0.19).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Feature {
    /// `dump --archive tar|zip` (0.12.0); before, `dump` of a folder wrote tar only.
    DumpArchive,
    /// `backup --json` summary carries the full 64-character snapshot id (0.15.0).
    FullSnapshotIdInSummary,
    /// `init --json` prints JSON with the repository id (0.15.0).
    InitJson,
    /// `restore --json` prints progress and a summary (0.16.0).
    RestoreProgress,
    /// `restore SNAPSHOT:subdir` syntax (0.16.0).
    RestoreSubfolder,
    /// `--retry-lock` global flag (0.16.0).
    RetryLock,
    /// `-o sftp.args=...` extended option (0.16.1).
    SftpArgs,
    /// `backup --skip-if-unchanged` (0.17.0).
    SkipIfUnchanged,
    /// Exit codes 10 (no repository) and 11 (locked) (0.17.0); 12 wrong password (0.17.1).
    SpecificExitCodes,
    /// `snapshots --json` includes the backup summary (0.17.0).
    SnapshotSummary,
    /// `restore --dry-run`, `--delete`, `--overwrite` (0.17.0).
    RestoreOverwrite,
    /// SIGTERM makes restic clean up its lock (0.17.0); before, only SIGINT does.
    CleanSigterm,
    /// `backup` JSON error lines carry a message (0.17.1).
    BackupErrorMessages,
    /// `check --json` (0.18.0).
    CheckJson,
}

impl Feature {
    pub fn since(self) -> Version {
        match self {
            Feature::DumpArchive => Version(0, 12, 0),
            Feature::FullSnapshotIdInSummary | Feature::InitJson => Version(0, 15, 0),
            Feature::RestoreProgress | Feature::RestoreSubfolder | Feature::RetryLock => {
                Version(0, 16, 0)
            }
            Feature::SftpArgs => Version(0, 16, 1),
            Feature::SkipIfUnchanged
            | Feature::SpecificExitCodes
            | Feature::SnapshotSummary
            | Feature::RestoreOverwrite
            | Feature::CleanSigterm => Version(0, 17, 0),
            Feature::BackupErrorMessages => Version(0, 17, 1),
            Feature::CheckJson => Version(0, 18, 0),
        }
    }
}

/// The oldest restic we drive.
pub const MIN_SUPPORTED: Version = Version(0, 14, 0);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_known_form() {
        assert_eq!(
            Version::parse_output("restic 0.14.0 compiled with go1.19.8 on linux/amd64\n"),
            Some(Version(0, 14, 0))
        );
        assert_eq!(
            Version::parse_output(
                r#"{"message_type":"version","version":"0.19.1","go_version":"go1.25"}"#
            ),
            Some(Version(0, 19, 1))
        );
        assert_eq!(Version::parse("v0.17.3-dev"), Some(Version(0, 17, 3)));
        assert_eq!(Version::parse_output("bash: restic: not found"), None);
        assert!(Version(0, 14, 0) < Feature::SkipIfUnchanged.since());
        assert!(Version(0, 19, 1) >= Feature::CheckJson.since());
    }
}
