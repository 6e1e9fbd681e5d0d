//! The log store for large task outputs. (Placeholder: being built.)

use std::path::Path;

pub struct LogStore {}

impl LogStore {
    pub async fn open(_dir: &Path) -> anyhow::Result<LogStore> {
        Ok(LogStore {})
    }
}
