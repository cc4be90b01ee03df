-- GateScope database schema, version 6 (PRAGMA user_version = 6): what recording knows about
-- pairs of units and memory spans, so that `query unit-correlation` and `query memory-spans`
-- read a few thousand rows instead of scanning every gate row (issue 12).
--
-- Both are written when a run completes (and rebuilt from the stored rows by `record --resume`,
-- added up by `gatescope merge`). Runs recorded before have none of them; the queries then scan.

-- Per recorded layer half: which of these tables hold its rows. NULL for runs recorded before
-- schema 6; 0 when the layer keeps none (pairs: h leaves [-1, 1], as a ReLU SimpleRNN's may, or
-- more than 2048 units; spans: a SimpleRNN has no memory gate).
ALTER TABLE layers ADD COLUMN pairs_stored INTEGER CHECK (pairs_stored IN (0, 1));
ALTER TABLE layers ADD COLUMN spans_stored INTEGER CHECK (spans_stored IN (0, 1));

-- Quantized moments of h: q(h) = round(h * 2^40) (exact for |h| >= 2^-16), summed exactly in
-- 128-bit integers, so that the correlations do not depend on the order the steps were added in
-- (recording, resume, shards and a full scan give identical r).
-- 16-byte blobs are little-endian two's-complement Int128.
CREATE TABLE unit_h_moments (
    run_id   INTEGER NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
    layer_id INTEGER NOT NULL,
    unit     INTEGER NOT NULL,
    n        INTEGER NOT NULL,  -- steps
    sum      BLOB NOT NULL,     -- Σ q(h)
    sum_sq   BLOB NOT NULL,     -- Σ q(h)^2
    PRIMARY KEY (run_id, layer_id, unit)
) WITHOUT ROWID;

-- One row per pair of units of a layer half, unit_a < unit_b.
CREATE TABLE unit_pairs (
    run_id   INTEGER NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
    layer_id INTEGER NOT NULL,
    unit_a   INTEGER NOT NULL,  -- the pair's first unit
    unit_b   INTEGER NOT NULL CHECK (unit_b > unit_a),  -- and its second
    r        REAL,              -- Pearson r of h over all recorded steps; NULL when a unit's h is constant
    sum_ab   BLOB NOT NULL,     -- Σ q(h_a) q(h_b)
    PRIMARY KEY (run_id, layer_id, unit_a, unit_b)
) WITHOUT ROWID;

-- Per unit of a layer with a memory gate (LSTM f, GRU z) and threshold t = k/100 (k = 0..100):
-- the longest run of consecutive computed steps of one sequence with the gate > t, and the
-- number of such runs. No row when the unit has no span at t.
CREATE TABLE unit_spans (
    run_id     INTEGER NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
    layer_id   INTEGER NOT NULL,
    unit       INTEGER NOT NULL,
    k          INTEGER NOT NULL CHECK (k BETWEEN 0 AND 100),  -- threshold = k / 100.0
    longest    INTEGER NOT NULL,  -- steps of the longest span (the earliest on ties)
    seq_id     INTEGER NOT NULL,  -- where it is
    first_step INTEGER NOT NULL,  -- (the span is first_step .. first_step + longest - 1)
    spans      INTEGER NOT NULL,  -- spans of the unit at this threshold, all sequences
    PRIMARY KEY (run_id, layer_id, unit, k)
) WITHOUT ROWID;
