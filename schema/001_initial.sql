-- GateScope database schema, version 1 (PRAGMA user_version = 1).
--
-- One database holds any number of recording runs. A run is one `gatescope record` of one model
-- over one input file; every LSTM step of every recorded layer and unit becomes one row of `gates`.
--
-- Conventions
--   * Files in schema/ are migrations: NNN_name.sql brings a database to user_version NNN. They run
--     in order, each older database is migrated in one transaction, a newer one is refused.
--   * Times are ISO 8601 UTC text, e.g. '2025-01-31T12:00:00Z'.
--   * Gate values are the engine's Float32 values stored as REAL (Double(Float32), exact).
--   * seq_id counts input sequences from 0 in input order; step is the 0-based position in the
--     input sequence (also for layers that run right to left); unit is the 0-based unit index.
--   * layer_id is the index of the recurrent layer half in the model (a plain LSTM gives one,
--     a Bidirectional two consecutive ids with the same name, 'fwd' then 'bwd'). It counts every
--     recurrent half of the model, also those not recorded with --layers, so ids are stable.
--   * A run's data is consistent at every commit: a `sequences` row is written in the same
--     transaction as all of its `gates` and `tokens` rows, so a sequence listed in `sequences`
--     is complete, and readers (WAL mode) only ever see whole sequences.

-- One row per recording run.
CREATE TABLE runs (
    run_id         INTEGER PRIMARY KEY,  -- run id, 1, 2, ... (printed by `record` as `run <id>`)
    name           TEXT,                 -- user label (--name), NULL if none
    model_path     TEXT NOT NULL,        -- model file as given on the command line
    model_sha256   TEXT NOT NULL,        -- SHA-256 (hex) of the model file; --resume checks it
    model_format   TEXT NOT NULL,        -- 'keras' (Keras 3 zip), 'h5' (legacy HDF5), ...
    keras_version  TEXT,                 -- keras_version the model file was written with, NULL if unknown
    input_path     TEXT NOT NULL,        -- input file as given on the command line
    input_sha256   TEXT NOT NULL,        -- SHA-256 (hex) of the input file; --resume checks it
    status         TEXT NOT NULL DEFAULT 'running'  -- 'running', 'complete' or 'failed':
                   CHECK (status IN ('running', 'complete', 'failed')),
                                         -- 'running' while recording, or after a kill/Ctrl-C
                                         -- (resumable with --resume); 'complete' when every
                                         -- sequence is stored; 'failed' after an error
    error          TEXT,                 -- the error message of a failed run (or why it stopped), else NULL
    created_at     TEXT NOT NULL,        -- when the run started (UTC)
    finished_at    TEXT,                 -- when it became complete or failed (UTC), else NULL
    tool_version   TEXT NOT NULL,        -- gatescope version that recorded it
    params         TEXT NOT NULL CHECK (json_valid(params)),
                                         -- JSON of the record options: name, layers, batch_size,
                                         -- vocab, unknown_id, ... (resume reuses these)
    sequence_count INTEGER,              -- number of sequences in the input (all of them, recorded or not yet)
    recorded_sequences INTEGER NOT NULL DEFAULT 0,
                                         -- sequences committed so far (= rows in `sequences` for the run)
    recorded_steps INTEGER NOT NULL DEFAULT 0,
                                         -- sum of `sequences.length` committed so far
    row_count      INTEGER NOT NULL DEFAULT 0
                                         -- `gates` rows committed so far (kept up to date in each
                                         -- commit, so `runs` need not count a 10-million-row table)
);

-- One row per recorded LSTM half of a run (--layers may leave some out).
CREATE TABLE layers (
    run_id               INTEGER NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
    layer_id             INTEGER NOT NULL,  -- index of the recurrent half in the model (see above)
    name                 TEXT NOT NULL,     -- Keras layer name (both halves of a Bidirectional share it)
    direction            TEXT NOT NULL CHECK (direction IN ('fwd', 'bwd')),
                                            -- 'fwd' = left to right, 'bwd' = right to left
                                            -- (go_backwards or a Bidirectional's backward half)
    units                INTEGER NOT NULL CHECK (units > 0),  -- number of units (unit = 0 ..< units)
    input_dim            INTEGER NOT NULL,  -- features per step the layer receives
    activation           TEXT NOT NULL,     -- Keras name of the cell activation (g and tanh(c)), e.g. 'tanh'
    recurrent_activation TEXT NOT NULL,     -- Keras name of the gate activation (i, f, o), e.g. 'sigmoid'
    PRIMARY KEY (run_id, layer_id)
) WITHOUT ROWID;

-- One row per input sequence committed to a run.
CREATE TABLE sequences (
    run_id    INTEGER NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
    seq_id    INTEGER NOT NULL,  -- 0-based index in input order
    length    INTEGER NOT NULL CHECK (length >= 0),
                                 -- steps of the sequence in the input (its own length, before any
                                 -- padding; steps masked by the model still count)
    source_id TEXT,              -- the id the input file gives the sequence (.npz ids, .jsonl id,
                                 -- .csv seq column), NULL if none
    PRIMARY KEY (run_id, seq_id)
) WITHOUT ROWID;

-- One row per step of token-id inputs (Embedding models); empty for float-feature inputs.
CREATE TABLE tokens (
    run_id   INTEGER NOT NULL,
    seq_id   INTEGER NOT NULL,
    step     INTEGER NOT NULL,  -- 0-based position in the sequence (every step < length, masked or not)
    token_id INTEGER NOT NULL,  -- the id fed to the Embedding
    token    TEXT,              -- the token's text from the vocabulary (--vocab), NULL if unknown
    PRIMARY KEY (run_id, seq_id, step),
    FOREIGN KEY (run_id, seq_id) REFERENCES sequences(run_id, seq_id) ON DELETE CASCADE
) WITHOUT ROWID;

-- The recording: one row per unmasked step per unit per recorded LSTM half.
-- Masked steps (Masking / Embedding(mask_zero) / past a sequence's length) have no row.
-- No foreign keys on purpose: a parent lookup per row would cost a large part of the insert
-- speed; the recorder writes `layers` and `sequences` rows in the same transactions.
CREATE TABLE gates (
    run_id   INTEGER NOT NULL,
    seq_id   INTEGER NOT NULL,
    layer_id INTEGER NOT NULL,
    step     INTEGER NOT NULL,
    unit     INTEGER NOT NULL,
    i        REAL NOT NULL,  -- input gate, recurrent_activation(z_i)
    f        REAL NOT NULL,  -- forget gate, recurrent_activation(z_f)
    g        REAL NOT NULL,  -- candidate, activation(z_c) (Keras's "c" columns of the kernel)
    o        REAL NOT NULL,  -- output gate, recurrent_activation(z_o)
    c        REAL NOT NULL,  -- cell state after the step: f * c_prev + i * g
    h        REAL NOT NULL,  -- hidden state (output) after the step: o * activation(c)
    PRIMARY KEY (run_id, seq_id, layer_id, step, unit)
) WITHOUT ROWID;

-- Per-unit, per-gate summaries of a complete run, written in the transaction that marks the run
-- 'complete' (absent for running/failed runs). `stats` answers from here in milliseconds; it
-- falls back to one full scan of `gates` for thresholds off the 0.001 grid.
CREATE TABLE unit_summaries (
    run_id   INTEGER NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
    layer_id INTEGER NOT NULL,
    unit     INTEGER NOT NULL,
    gate     TEXT NOT NULL CHECK (gate IN ('i', 'f', 'g', 'o', 'c', 'h')),  -- gate column of `gates`
    n        INTEGER NOT NULL,  -- number of values (= gates rows of this layer and unit)
    mean     REAL,              -- mean (NULL when n = 0)
    m2       REAL,              -- sum of squared deviations from the mean (Welford / Chan);
                                -- population std = sqrt(m2 / n)
    min      REAL,              -- smallest value (NULL when n = 0)
    max      REAL,              -- largest value (NULL when n = 0)
    hist     BLOB,              -- NULL for c. Little-endian Int64 counts: [underflow: v < lo],
                                -- then one per bin [e_k, e_k+1) for k = 0 ..< (hi-lo)*1000, then
                                -- [overflow: v >= hi]; lo, hi = 0, 1 for i, f, o and -1, 1 for
                                -- g, h; edge e_k = (lo*1000 + k) / 1000.0 (integer numerator
                                -- divided by 1000.0). Compared value: the stored REAL.
    edge_eq  TEXT,              -- NULL for c, else JSON object {"k": count} of values exactly equal
                                -- to edge e_k (only edges that occur), k = 0 ... (hi-lo)*1000.
                                -- count(v < m/1000) = underflow + bins below edge k;
                                -- count(v > m/1000) = n - count(v < m/1000) - edge_eq[k]
    PRIMARY KEY (run_id, layer_id, unit, gate)
) WITHOUT ROWID;

-- Gates by name: each row of `gates` with its layer name and direction, the sequence's source id
-- and, for token inputs, the token at that step.
CREATE VIEW gate_rows AS
SELECT g.run_id, g.seq_id, s.source_id, g.layer_id, l.name AS layer, l.direction,
       g.step, t.token_id, t.token, g.unit, g.i, g.f, g.g, g.o, g.c, g.h
FROM gates AS g
JOIN layers AS l ON l.run_id = g.run_id AND l.layer_id = g.layer_id
JOIN sequences AS s ON s.run_id = g.run_id AND s.seq_id = g.seq_id
LEFT JOIN tokens AS t ON t.run_id = g.run_id AND t.seq_id = g.seq_id AND t.step = g.step;

-- The same in long (tidy) form: one row per gate value, `gate` in ('i','f','g','o','c','h').
CREATE VIEW gate_values AS
SELECT run_id, seq_id, layer_id, step, unit, 'i' AS gate, i AS value FROM gates
UNION ALL SELECT run_id, seq_id, layer_id, step, unit, 'f', f FROM gates
UNION ALL SELECT run_id, seq_id, layer_id, step, unit, 'g', g FROM gates
UNION ALL SELECT run_id, seq_id, layer_id, step, unit, 'o', o FROM gates
UNION ALL SELECT run_id, seq_id, layer_id, step, unit, 'c', c FROM gates
UNION ALL SELECT run_id, seq_id, layer_id, step, unit, 'h', h FROM gates;

-- Run overview with the layer names recorded (counts come from the runs bookkeeping columns).
CREATE VIEW run_overview AS
SELECT r.run_id, r.name, r.status, r.model_path, r.model_format, r.keras_version, r.input_path,
       r.sequence_count, r.recorded_sequences, r.recorded_steps, r.row_count,
       (SELECT group_concat(name || ':' || direction, ',')
          FROM (SELECT name, direction FROM layers AS l WHERE l.run_id = r.run_id ORDER BY layer_id))
           AS recorded_layers,
       r.created_at, r.finished_at, r.tool_version, r.error
FROM runs AS r;
