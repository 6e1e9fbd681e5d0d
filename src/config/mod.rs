//! The configuration store: Backrest's config.json (proto3 JSON of `v1.Config`).
//! (Placeholder: being built.)

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::pb::v1;

pub struct ConfigStore {
    path: PathBuf,
    current: Mutex<Arc<v1::Config>>,
}

impl ConfigStore {
    pub fn open(path: &Path) -> anyhow::Result<ConfigStore> {
        Ok(ConfigStore { path: path.to_path_buf(), current: Mutex::new(Arc::new(v1::Config::default())) })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn get(&self) -> Arc<v1::Config> {
        self.current.lock().unwrap().clone()
    }
}
