-- name: memory-spans
-- description: Per unit, the longest run of consecutive steps with the memory gate (LSTM f, GRU z) above a threshold (where and how long the unit holds its memory).
-- param: run = latest      run id (default: the latest complete run)
-- param: layer = NULL      layer name, or name:fwd / name:bwd (default: all layers)
-- param: direction = NULL  fwd or bwd (default: both)
-- param: threshold = 0.9   a step belongs to a span when the memory gate > threshold
-- param: min_length = 1    report units whose longest span has at least this many steps
-- columns: run_id, layer, direction, unit, longest, seq_id, first_step, last_step, spans
--
-- The memory gate keeps the state when high: f for LSTM layers, z for GRU layers (the
-- memory_gates view, schema/003_cells.sql); SimpleRNN layers have none and give no rows.
-- A span is a maximal run of consecutive step numbers of one sequence with gate > threshold
-- (gaps-and-islands with window functions: step - row_number() is constant along a span).
-- longest, seq_id, first_step and last_step describe the longest span (earliest one on ties);
-- spans counts all spans of the unit. Sorted by longest, longest first.
WITH hits AS (
    SELECT g.layer_id, g.unit, g.seq_id, g.step,
           g.step - row_number() OVER (PARTITION BY g.layer_id, g.unit, g.seq_id ORDER BY g.step) AS island
    FROM memory_gates AS g
    JOIN layers AS l ON l.run_id = g.run_id AND l.layer_id = g.layer_id
    WHERE g.run_id = :run AND g.value > :threshold
      AND (:layer IS NULL OR l.name = :layer)
      AND (:direction IS NULL OR l.direction = :direction)
),
spans AS (
    SELECT layer_id, unit, seq_id, min(step) AS first_step, max(step) AS last_step, count(*) AS length
    FROM hits
    GROUP BY layer_id, unit, seq_id, island
),
ranked AS (
    SELECT s.*,
           row_number() OVER (PARTITION BY layer_id, unit ORDER BY length DESC, seq_id, first_step) AS rank,
           count(*) OVER (PARTITION BY layer_id, unit) AS spans
    FROM spans AS s
)
SELECT l.run_id, l.name AS layer, l.direction, r.unit, r.length AS longest,
       r.seq_id, r.first_step, r.last_step, r.spans
FROM ranked AS r
JOIN layers AS l ON l.run_id = :run AND l.layer_id = r.layer_id
WHERE r.rank = 1 AND r.length >= :min_length
ORDER BY longest DESC, r.layer_id, r.unit;
