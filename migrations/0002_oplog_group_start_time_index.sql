-- One index beyond Backrest's schema 6, for "the latest N operations of a
-- plan / repo / instance" (GetOperations with lastN, the UI's main view).
--
-- With only Backrest's indexes SQLite answers that by walking
-- operation_start_time_ms from the newest operation backwards and reading
-- each table row to test its group, i.e. most of the log for one plan's
-- history. With (ogid, start_time_ms) — the rowid `id` is the implicit last
-- column of every index — it reads only that group's index entries, already
-- in (start_time_ms, id) order, and then only the rows it returns.
--
-- Why this is safe for Backrest sharing the file:
-- * PRAGMA user_version stays 6 (this file doesn't touch it), so Backrest
--   sees its own schema version and runs no schema migration;
-- * Backrest never creates, drops or names this index, and an index changes
--   no query result: its reads and writes behave exactly as before (each of
--   its inserts just updates one more index);
-- * should Backrest ever rebuild the schema (a version above 6), it drops the
--   `operations` table, which drops this index with it.

CREATE INDEX IF NOT EXISTS backrest_rs_operation_group_start_time
    ON operations (ogid, start_time_ms);
