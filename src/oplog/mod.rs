//! The operation log (SQLite via sqlx). (Placeholder: being built.)

use std::path::Path;

pub struct OpLog {}

impl OpLog {
    pub async fn open(_path: &Path) -> anyhow::Result<OpLog> {
        Ok(OpLog {})
    }
}
