-- GateScope database schema, version 7 (PRAGMA user_version = 7): the optional access paths that
-- `gatescope index DB` builds (issue 12). Recording never writes them, so it keeps its speed; a
-- database without them answers every question by scanning, as before.
--
-- 1. Unit-major reads (`export --units`, `plot unit`, `query top-tokens`, and users' SQL with
--    `WHERE run_id = ? AND layer_id = ? AND unit = ?`): an index on (run_id, layer_id, unit) of
--    each cell table, created by `gatescope index` (not here, so that databases that never need it
--    do not pay for it), with ANALYZE statistics so that SQLite's planner chooses it. Once it
--    exists, later recordings keep it up to date (which costs them time; see README.md).
-- 2. Exact statistics at any threshold: each unit's values of each gate with a histogram grid,
--    sorted, in chunks of 960 (a row within one page). With the histograms of unit_summaries, the values below any
--    threshold are counted by reading the one or two chunks that hold its histogram bin.

-- When `gatescope index` sorted the run's values (NULL: never).
ALTER TABLE runs ADD COLUMN values_sorted_at TEXT;

CREATE TABLE unit_values (
    run_id   INTEGER NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
    layer_id INTEGER NOT NULL,
    unit     INTEGER NOT NULL,
    gate     TEXT NOT NULL,     -- the gate's column name (those with a histogram grid: not c)
    chunk    INTEGER NOT NULL,  -- values chunk*960 ..< (chunk+1)*960 of the sorted list
    vals     BLOB NOT NULL,     -- little-endian Float32, ascending
    PRIMARY KEY (run_id, layer_id, unit, gate, chunk)
) WITHOUT ROWID;
