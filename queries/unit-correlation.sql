-- name: unit-correlation
-- description: Pairs of units of one layer half whose outputs h correlate most (Pearson r over all recorded steps), strongest |r| first.
-- param: run = latest      run id (default: the latest complete run)
-- param: layer = NULL      layer name, or name:fwd / name:bwd (default: all layers)
-- param: direction = NULL  fwd or bwd (default: both)
-- param: limit = 20        at most this many pairs
-- columns: run_id, layer, direction, unit_a, unit_b, n, r
--
-- Pairs are aligned on (sequence, step) within one layer half, unit_a < unit_b. A unit whose h
-- is constant has no correlation (r is NULL, sorted last). h is every cell's hidden state (LSTM,
-- GRU and SimpleRNN layers alike, each from its cell's table). r is gs_corr, which gatescope
-- registers: Pearson r from exact integer sums of h quantized to 2^-40 (see README.md here).
-- `gatescope query` answers from unit_pairs (written by record); this SQL, run with --scan or on
-- runs without unit_pairs, costs units^2 x steps: narrow it down with layer on big runs.
WITH sel AS (
    SELECT layer_id FROM layers
    WHERE run_id = :run
      AND (:layer IS NULL OR name = :layer)
      AND (:direction IS NULL OR direction = :direction)
),
-- One self-join per cell table (not over the hidden_states view, whose two copies SQLite would
-- materialize and join by scanning): each a row finds its step's other units by primary key.
pairs AS (
    SELECT a.layer_id, a.unit AS unit_a, b.unit AS unit_b, count(*) AS n, gs_corr(a.h, b.h) AS r
    FROM gates AS a
    JOIN gates AS b ON b.run_id = a.run_id AND b.seq_id = a.seq_id AND b.layer_id = a.layer_id
                   AND b.step = a.step AND b.unit > a.unit
    WHERE a.run_id = :run AND a.layer_id IN (SELECT layer_id FROM sel)
    GROUP BY a.layer_id, a.unit, b.unit
    UNION ALL
    SELECT a.layer_id, a.unit AS unit_a, b.unit AS unit_b, count(*) AS n, gs_corr(a.h, b.h) AS r
    FROM gru_gates AS a
    JOIN gru_gates AS b ON b.run_id = a.run_id AND b.seq_id = a.seq_id AND b.layer_id = a.layer_id
                   AND b.step = a.step AND b.unit > a.unit
    WHERE a.run_id = :run AND a.layer_id IN (SELECT layer_id FROM sel)
    GROUP BY a.layer_id, a.unit, b.unit
    UNION ALL
    SELECT a.layer_id, a.unit AS unit_a, b.unit AS unit_b, count(*) AS n, gs_corr(a.h, b.h) AS r
    FROM simple_rnn_gates AS a
    JOIN simple_rnn_gates AS b ON b.run_id = a.run_id AND b.seq_id = a.seq_id AND b.layer_id = a.layer_id
                   AND b.step = a.step AND b.unit > a.unit
    WHERE a.run_id = :run AND a.layer_id IN (SELECT layer_id FROM sel)
    GROUP BY a.layer_id, a.unit, b.unit
)
SELECT l.run_id, l.name AS layer, l.direction, s.unit_a, s.unit_b, s.n, s.r
FROM pairs AS s
JOIN layers AS l ON l.run_id = :run AND l.layer_id = s.layer_id
ORDER BY s.r IS NULL, abs(s.r) DESC, s.layer_id, s.unit_a, s.unit_b
LIMIT :limit;
