//! The restic engine: the real restic CLI run as a child process.
//!
//! * `version` — which restic this is and what it can do (0.14 – 0.19);
//! * `process` — process groups, line streaming, SIGINT-then-SIGKILL cancel;
//! * `dump` — `restic dump` streamed as bytes (snapshot downloads);
//! * `env` — Backrest's environment/flag conventions;
//! * `output` — typed JSON output of every command we parse;
//! * `error` — failures classified, with restic's own words and a hint;
//! * `repo` — one repository's commands (init, backup, snapshots, forget, …);
//! * `sftp` — sftp repositories on restic without `-o sftp.args` (< 0.16.1).

pub mod dump;
pub mod env;
pub mod error;
pub mod output;
pub mod process;
pub mod repo;
pub mod sftp;
pub mod version;

use std::path::{Path, PathBuf};

use tokio_util::sync::CancellationToken;

pub use error::{ErrorKind, ResticError};
pub use repo::RepoClient;
pub use version::{Feature, Version};

/// A located restic binary and its version.
#[derive(Clone, Debug)]
pub struct Restic {
    pub bin: PathBuf,
    pub version: Version,
}

impl Restic {
    /// Finds restic as Backrest does: the explicit path (`-restic-cmd` /
    /// `BACKREST_RESTIC_COMMAND`), else `<data-dir>/restic`, else `restic` on
    /// PATH. We never download one: a restic from the system's packages is
    /// what we run (0.14.0 or newer).
    pub async fn discover(explicit: Option<&Path>, data_dir: &Path) -> Result<Restic, String> {
        let candidates: Vec<PathBuf> = match explicit {
            Some(p) => {
                if !p.exists() {
                    return Err(format!(
                        "no restic binary found at {} (set by -restic-cmd or BACKREST_RESTIC_COMMAND)",
                        p.display()
                    ));
                }
                vec![p.to_path_buf()]
            }
            None => {
                let mut c = vec![];
                let managed = data_dir.join("restic");
                if managed.is_file() {
                    c.push(managed);
                }
                if let Some(p) = env::find_on_path("restic") {
                    c.push(p);
                }
                c
            }
        };
        if candidates.is_empty() {
            return Err("restic was not found on PATH or in the data directory: install it (e.g. `apt-get install restic`) \
                        or pass its path with -restic-cmd"
                .into());
        }
        let mut last_err = String::new();
        for bin in candidates {
            match Self::probe(&bin).await {
                Ok(version) => {
                    if version < version::MIN_SUPPORTED {
                        last_err = format!(
                            "{} is restic {version}; backrest-rs needs restic {} or newer",
                            bin.display(),
                            version::MIN_SUPPORTED
                        );
                        continue;
                    }
                    return Ok(Restic { bin, version });
                }
                Err(e) => last_err = e,
            }
        }
        Err(last_err)
    }

    /// Runs `restic version` and parses it.
    pub async fn probe(bin: &Path) -> Result<Version, String> {
        let inv = process::Invocation {
            program: bin.to_path_buf(),
            args: vec!["version".into()],
            ..Default::default()
        };
        let (exit, out, combined) = process::run_collect(&inv, &CancellationToken::new())
            .await
            .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
        if !exit.success() {
            return Err(format!(
                "`{} version` failed: {}",
                bin.display(),
                combined.trim()
            ));
        }
        Version::parse_output(&out).ok_or_else(|| {
            format!(
                "cannot read the version of {} from {:?}",
                bin.display(),
                out.trim()
            )
        })
    }

    pub fn supports(&self, f: Feature) -> bool {
        self.version >= f.since()
    }

    /// Text for operations and errors when a feature is missing.
    pub fn lacks(&self, f: Feature, what: &str) -> String {
        format!(
            "{what} needs restic {} or newer; this server runs restic {}",
            f.since(),
            self.version
        )
    }
}
