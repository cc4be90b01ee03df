-- name: unit-correlation
-- description: Pairs of units of one layer half whose outputs h correlate most (Pearson r over all recorded steps), strongest |r| first.
-- param: run = latest      run id (default: the latest complete run)
-- param: layer = NULL      layer name, or name:fwd / name:bwd (default: all layers)
-- param: direction = NULL  fwd or bwd (default: both)
-- param: limit = 20        at most this many pairs
-- columns: run_id, layer, direction, unit_a, unit_b, n, r
--
-- Pairs are aligned on (sequence, step) within one layer half, unit_a < unit_b. A unit whose h
-- is constant has no correlation (r is NULL, sorted last). h is every cell's hidden state (the
-- hidden_states view: LSTM, GRU and SimpleRNN layers alike). Cost grows with units^2 x steps:
-- narrow it down with layer on big runs.
WITH pairs AS (
    SELECT a.layer_id, a.unit AS unit_a, b.unit AS unit_b, count(*) AS n,
           avg(a.h) AS ma, avg(b.h) AS mb,
           avg(a.h * a.h) AS saa, avg(b.h * b.h) AS sbb, avg(a.h * b.h) AS sab
    FROM hidden_states AS a
    JOIN layers AS l ON l.run_id = a.run_id AND l.layer_id = a.layer_id
    JOIN hidden_states AS b ON b.run_id = a.run_id AND b.seq_id = a.seq_id AND b.layer_id = a.layer_id
                   AND b.step = a.step AND b.unit > a.unit
    WHERE a.run_id = :run
      AND (:layer IS NULL OR l.name = :layer)
      AND (:direction IS NULL OR l.direction = :direction)
    GROUP BY a.layer_id, a.unit, b.unit
),
scored AS (
    SELECT p.*,
           (sab - ma * mb) / sqrt((saa - ma * ma) * (sbb - mb * mb)) AS r
    FROM pairs AS p
)
SELECT l.run_id, l.name AS layer, l.direction, s.unit_a, s.unit_b, s.n,
       max(-1.0, min(1.0, s.r)) AS r
FROM scored AS s
JOIN layers AS l ON l.run_id = :run AND l.layer_id = s.layer_id
ORDER BY s.r IS NULL, abs(s.r) DESC, s.layer_id, s.unit_a, s.unit_b
LIMIT :limit;
