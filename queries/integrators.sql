-- name: integrators
-- description: Units whose forget gate is right-saturated (f > high) on more than a given fraction of their steps: long-memory "integrator" units.
-- param: run = latest      run id (default: the latest complete run)
-- param: layer = NULL      layer name, or name:fwd / name:bwd (default: all layers)
-- param: direction = NULL  fwd or bwd (default: both)
-- param: high = 0.9        a step counts as right-saturated when f > high
-- param: fraction = 0.5    report units with right > fraction
-- columns: run_id, layer, direction, unit, n, right, mean_f, min_f
--
-- right = fraction of the unit's recorded steps with f > high. Sorted by right, highest first.
SELECT l.run_id, l.name AS layer, l.direction, g.unit,
       count(*) AS n,
       sum(g.f > :high) * 1.0 / count(*) AS right,
       avg(g.f) AS mean_f,
       min(g.f) AS min_f
FROM gates AS g
JOIN layers AS l ON l.run_id = g.run_id AND l.layer_id = g.layer_id
WHERE g.run_id = :run
  AND (:layer IS NULL OR l.name = :layer)
  AND (:direction IS NULL OR l.direction = :direction)
GROUP BY g.layer_id, g.unit
HAVING sum(g.f > :high) * 1.0 / count(*) > :fraction
ORDER BY right DESC, g.layer_id, g.unit;
