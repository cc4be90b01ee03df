-- name: dead-units
-- description: Units whose output h never leaves (-threshold, threshold): max |h| over all recorded steps below a threshold.
-- param: run = latest      run id (default: the latest complete run)
-- param: layer = NULL      layer name, or name:fwd / name:bwd (default: all layers)
-- param: direction = NULL  fwd or bwd (default: both)
-- param: threshold = 0.1   report units with max |h| < threshold
-- columns: run_id, layer, direction, unit, n, max_abs_h, mean_h
--
-- h is the hidden state after each step for every cell (LSTM, GRU, SimpleRNN), read from the
-- hidden_states view (schema/003_cells.sql). Sorted by max_abs_h, smallest (deadest) first.
-- `gatescope query` answers from the per-unit summaries of h (any threshold); --scan runs this SQL.
SELECT l.run_id, l.name AS layer, l.direction, g.unit,
       count(*) AS n,
       max(abs(g.h)) AS max_abs_h,
       gs_mean(g.h) AS mean_h
FROM hidden_states AS g
JOIN layers AS l ON l.run_id = g.run_id AND l.layer_id = g.layer_id
WHERE g.run_id = :run
  AND (:layer IS NULL OR l.name = :layer)
  AND (:direction IS NULL OR l.direction = :direction)
GROUP BY g.layer_id, g.unit
HAVING max(abs(g.h)) < :threshold
ORDER BY max_abs_h, g.layer_id, g.unit;
