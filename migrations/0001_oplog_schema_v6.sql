-- The operation log, in the exact layout of Backrest's oplog.sqlite at schema
-- version 6 (table, column, index names and types), so that a Backrest data
-- directory opens unchanged and Backrest can open ours.
--
-- `operation` holds the whole v1.Operation in binary protobuf; the other
-- columns are copies of some of its fields, kept for querying. The tuple
-- (instance_id, original_instance_keyid, repo_guid, repo_id, plan_id) is
-- interned in operation_groups.
--
-- Note: `STRING` is Backrest's choice; SQLite gives it NUMERIC affinity.

CREATE TABLE IF NOT EXISTS operations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ogid INTEGER NOT NULL,
    original_id INTEGER NOT NULL,
    original_flow_id INTEGER NOT NULL,
    modno INTEGER NOT NULL,
    flow_id INTEGER NOT NULL,
    start_time_ms INTEGER NOT NULL,
    status INTEGER NOT NULL,
    snapshot_id STRING NOT NULL,
    operation BLOB NOT NULL,
    FOREIGN KEY (ogid) REFERENCES operation_groups (ogid)
);
CREATE INDEX IF NOT EXISTS operation_ogid ON operations (ogid);
CREATE INDEX IF NOT EXISTS operation_snapshot_id ON operations (snapshot_id);
CREATE INDEX IF NOT EXISTS operation_flow_id ON operations (flow_id);
CREATE INDEX IF NOT EXISTS operation_start_time_ms ON operations (start_time_ms);
CREATE INDEX IF NOT EXISTS operation_original_id ON operations (ogid, original_id);
CREATE INDEX IF NOT EXISTS operation_original_flow_id ON operations (ogid, original_flow_id);
CREATE INDEX IF NOT EXISTS operation_modno ON operations (modno);

CREATE TABLE IF NOT EXISTS operation_groups (
    ogid INTEGER PRIMARY KEY AUTOINCREMENT,
    instance_id STRING NOT NULL,
    original_instance_keyid STRING NOT NULL,
    repo_guid STRING NOT NULL,
    repo_id STRING NOT NULL,
    plan_id STRING NOT NULL
);
CREATE INDEX IF NOT EXISTS group_repo_instance ON operation_groups (repo_id, instance_id);
CREATE INDEX IF NOT EXISTS group_repo_guid ON operation_groups (repo_guid);
CREATE INDEX IF NOT EXISTS group_instance ON operation_groups (instance_id);

-- Backrest's key-value table inside oplog.sqlite. Key "version" is the oplog
-- data-migration version as an 8-byte little-endian integer; a new log needs
-- no data migrations, so it starts at the current version, 6.
CREATE TABLE IF NOT EXISTS oplog_metadata (
    key TEXT PRIMARY KEY,
    value BLOB
);
CREATE INDEX IF NOT EXISTS oplog_metadata_key_idx ON oplog_metadata (key);
INSERT OR IGNORE INTO oplog_metadata (key, value) VALUES ('version', X'0600000000000000');

PRAGMA user_version = 6;
