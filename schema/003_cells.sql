-- GateScope database schema, version 3 (PRAGMA user_version = 3): GRU and SimpleRNN gates.
--
-- Each cell kind has its own table of gate rows, one row per (run, seq, layer, step, unit) with a
-- column per value that cell computes, so a user's SQL reads as naturally for a GRU as for an LSTM:
--
--   cell        table              columns (in the order the engine reports them)
--   lstm        gates              i, f, g, o, c, h    (unchanged since version 1)
--   gru         gru_gates          z, r, n, h
--   simple_rnn  simple_rnn_gates   h
--
-- The meaning of every column is written beside it below and, once, in the engine's cell
-- descriptor (Sources/GateScopeEngine/Cell.swift), from which the recorder, stats, export, plots
-- and queries derive their columns. `layers.cell` says which table holds a layer's rows; a layer's
-- rows are only ever in that one table. `runs.row_count` counts the rows of all three tables.
--
-- Saturation ranges: z, r like i, f, o (0..1: left < low, right > high); n, h like g, h
-- (-1..1: left < -high, right > high); c has none.
--
-- Version 2 databases migrate without losing anything: every existing layer is an LSTM, and
-- `unit_summaries` is copied row for row into a table whose CHECK admits the new gate names.

ALTER TABLE layers ADD COLUMN cell TEXT NOT NULL DEFAULT 'lstm' CHECK (cell IN ('lstm', 'gru', 'simple_rnn'));

-- The recording of GRU layers: one row per unmasked step per unit (no foreign keys, as `gates`).
-- GRU (Keras): h = z*h_prev + (1-z)*n, for reset_after true (Keras 3 and CuDNN-compatible
-- Keras 2) and false (Keras 2's original GRU).
CREATE TABLE gru_gates (
    run_id   INTEGER NOT NULL,
    seq_id   INTEGER NOT NULL,
    layer_id INTEGER NOT NULL,
    step     INTEGER NOT NULL,
    unit     INTEGER NOT NULL,
    z        REAL NOT NULL,  -- update gate, recurrent_activation(z_z): high keeps the previous state
    r        REAL NOT NULL,  -- reset gate, recurrent_activation(z_r)
    n        REAL NOT NULL,  -- candidate, activation(x W_h + r * (h_prev U_h + b_rh) + b_h) with
                             -- reset_after, activation(x W_h + (r * h_prev) U_h + b_h) without
    h        REAL NOT NULL,  -- hidden state (output) after the step: z * h_prev + (1 - z) * n
    PRIMARY KEY (run_id, seq_id, layer_id, step, unit)
) WITHOUT ROWID;

-- The recording of SimpleRNN layers: h = activation(x W + h_prev U + b).
CREATE TABLE simple_rnn_gates (
    run_id   INTEGER NOT NULL,
    seq_id   INTEGER NOT NULL,
    layer_id INTEGER NOT NULL,
    step     INTEGER NOT NULL,
    unit     INTEGER NOT NULL,
    h        REAL NOT NULL,  -- hidden state (output) after the step
    PRIMARY KEY (run_id, seq_id, layer_id, step, unit)
) WITHOUT ROWID;

-- unit_summaries, as in version 1, for every cell's gates: the hist grid of z and r is that of
-- i, f, o (0..1), of n that of g and h (-1..1).
CREATE TABLE unit_summaries_v3 (
    run_id   INTEGER NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
    layer_id INTEGER NOT NULL,
    unit     INTEGER NOT NULL,
    gate     TEXT NOT NULL CHECK (gate IN ('i', 'f', 'g', 'o', 'c', 'h', 'z', 'r', 'n')),
                                -- a gate column of the layer's cell table
    n        INTEGER NOT NULL,  -- number of values (rows of this layer and unit)
    mean     REAL,              -- mean (NULL when n = 0)
    m2       REAL,              -- sum of squared deviations from the mean; population std = sqrt(m2 / n)
    min      REAL,              -- smallest value (NULL when n = 0)
    max      REAL,              -- largest value (NULL when n = 0)
    hist     BLOB,              -- as in version 1: NULL for c; lo, hi = 0, 1 for i, f, o, z, r and
                                -- -1, 1 for g, h, n
    edge_eq  TEXT,              -- as in version 1: counts of values exactly on an edge (NULL for c)
    PRIMARY KEY (run_id, layer_id, unit, gate)
) WITHOUT ROWID;
INSERT INTO unit_summaries_v3 SELECT run_id, layer_id, unit, gate, n, mean, m2, min, max, hist, edge_eq FROM unit_summaries;
DROP TABLE unit_summaries;
ALTER TABLE unit_summaries_v3 RENAME TO unit_summaries;

-- GRU gates by name, like `gate_rows` (tokens only on layers aligned with the input).
CREATE VIEW gru_gate_rows AS
SELECT g.run_id, g.seq_id, s.source_id, g.layer_id, l.name AS layer, l.direction,
       g.step, t.token_id, t.token, g.unit, g.z, g.r, g.n, g.h
FROM gru_gates AS g
JOIN layers AS l ON l.run_id = g.run_id AND l.layer_id = g.layer_id
JOIN sequences AS s ON s.run_id = g.run_id AND s.seq_id = g.seq_id
LEFT JOIN tokens AS t ON l.aligned = 1 AND t.run_id = g.run_id AND t.seq_id = g.seq_id AND t.step = g.step;

-- SimpleRNN states by name.
CREATE VIEW simple_rnn_gate_rows AS
SELECT g.run_id, g.seq_id, s.source_id, g.layer_id, l.name AS layer, l.direction,
       g.step, t.token_id, t.token, g.unit, g.h
FROM simple_rnn_gates AS g
JOIN layers AS l ON l.run_id = g.run_id AND l.layer_id = g.layer_id
JOIN sequences AS s ON s.run_id = g.run_id AND s.seq_id = g.seq_id
LEFT JOIN tokens AS t ON l.aligned = 1 AND t.run_id = g.run_id AND t.seq_id = g.seq_id AND t.step = g.step;

-- Every cell's values in long (tidy) form: one row per value, `gate` named as its column.
DROP VIEW gate_values;
CREATE VIEW gate_values AS
SELECT run_id, seq_id, layer_id, step, unit, 'i' AS gate, i AS value FROM gates
UNION ALL SELECT run_id, seq_id, layer_id, step, unit, 'f', f FROM gates
UNION ALL SELECT run_id, seq_id, layer_id, step, unit, 'g', g FROM gates
UNION ALL SELECT run_id, seq_id, layer_id, step, unit, 'o', o FROM gates
UNION ALL SELECT run_id, seq_id, layer_id, step, unit, 'c', c FROM gates
UNION ALL SELECT run_id, seq_id, layer_id, step, unit, 'h', h FROM gates
UNION ALL SELECT run_id, seq_id, layer_id, step, unit, 'z', z FROM gru_gates
UNION ALL SELECT run_id, seq_id, layer_id, step, unit, 'r', r FROM gru_gates
UNION ALL SELECT run_id, seq_id, layer_id, step, unit, 'n', n FROM gru_gates
UNION ALL SELECT run_id, seq_id, layer_id, step, unit, 'h', h FROM gru_gates
UNION ALL SELECT run_id, seq_id, layer_id, step, unit, 'h', h FROM simple_rnn_gates;

-- The hidden state h of every recorded layer, whatever its cell (dead-units, unit-correlation).
CREATE VIEW hidden_states AS
SELECT run_id, seq_id, layer_id, step, unit, h FROM gates
UNION ALL SELECT run_id, seq_id, layer_id, step, unit, h FROM gru_gates
UNION ALL SELECT run_id, seq_id, layer_id, step, unit, h FROM simple_rnn_gates;

-- The gate that holds memory when high, per cell: LSTM f, GRU z (SimpleRNN has none): what
-- integrators and memory-spans read.
CREATE VIEW memory_gates AS
SELECT run_id, seq_id, layer_id, step, unit, f AS value FROM gates
UNION ALL SELECT run_id, seq_id, layer_id, step, unit, z FROM gru_gates;
