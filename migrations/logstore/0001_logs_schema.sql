-- The log store index (tasklogs/logs.sqlite), in the layout Backrest uses.
-- A log is either still being written (data_fname names a file under
-- .inprogress/) or finished (data_gz holds the gzip-compressed bytes).

CREATE TABLE IF NOT EXISTS logs (
    id TEXT PRIMARY KEY,
    expiration_ts_unix INTEGER DEFAULT 0, -- unix seconds; 0 = never expires
    owner_opid INTEGER DEFAULT 0,         -- operation that owns the log; deleted with it
    data_fname TEXT,                      -- in-progress file, relative to .inprogress/
    data_gz BLOB                          -- gzip-compressed data of a finished log
);
CREATE INDEX IF NOT EXISTS logs_data_fname_idx ON logs (data_fname);
CREATE INDEX IF NOT EXISTS logs_expiration_ts_unix_idx ON logs (expiration_ts_unix);

CREATE TABLE IF NOT EXISTS version_info (
    version INTEGER NOT NULL
);
INSERT INTO version_info (version) SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM version_info);
