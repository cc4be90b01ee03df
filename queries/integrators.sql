-- name: integrators
-- description: Units whose memory gate is right-saturated (value > high) on more than a given fraction of their steps: long-memory "integrator" units.
-- param: run = latest      run id (default: the latest complete run)
-- param: layer = NULL      layer name, or name:fwd / name:bwd (default: all layers)
-- param: direction = NULL  fwd or bwd (default: both)
-- param: high = 0.9        a step counts as right-saturated when the memory gate > high
-- param: fraction = 0.5    report units with right > fraction
-- columns: run_id, layer, direction, unit, gate, n, right, mean, min
--
-- The memory gate is the one that keeps the state when high: f for LSTM layers (c = f*c_prev + i*g),
-- z for GRU layers (h = z*h_prev + (1-z)*n); `gate` names it. SimpleRNN layers have none and give
-- no rows. It is read from the memory_gates view (schema/003_cells.sql).
-- right = fraction of the unit's recorded steps with gate > high. Sorted by right, highest first.
-- mean is gs_mean, the exact mean gatescope registers (see README.md here). `gatescope query`
-- answers from the per-unit summaries when high is a multiple of 0.001; --scan runs this SQL.
SELECT l.run_id, l.name AS layer, l.direction, g.unit,
       CASE l.cell WHEN 'gru' THEN 'z' ELSE 'f' END AS gate,
       count(*) AS n,
       sum(g.value > :high) * 1.0 / count(*) AS right,
       gs_mean(g.value) AS mean,
       min(g.value) AS min
FROM memory_gates AS g
JOIN layers AS l ON l.run_id = g.run_id AND l.layer_id = g.layer_id
WHERE g.run_id = :run
  AND (:layer IS NULL OR l.name = :layer)
  AND (:direction IS NULL OR l.direction = :direction)
GROUP BY g.layer_id, g.unit
HAVING sum(g.value > :high) * 1.0 / count(*) > :fraction
ORDER BY right DESC, g.layer_id, g.unit;
