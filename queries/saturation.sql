-- name: saturation
-- description: Per unit and gate: n, fraction of steps left/right-saturated, mean, std, min, max (what `gatescope stats` computes, as one full scan).
-- param: run = latest      run id (default: the latest complete run)
-- param: layer = NULL      layer name, or name:fwd / name:bwd (default: all layers)
-- param: direction = NULL  fwd or bwd (default: both)
-- param: low = 0.1         i, f, o: left = fraction of steps with value < low
-- param: high = 0.9        i, f, o: right = fraction > high; g, h: left = fraction < -high, right = fraction > high
-- columns: run_id, layer, direction, unit, gate, n, left, right, mean, std, min, max
--
-- One row per (layer half, unit, gate i f g o c h). c has no saturation: left and right are NULL.
-- std is the population standard deviation sqrt(E[x^2] - E[x]^2). `gatescope stats` answers the
-- same question from the per-unit summaries in milliseconds; its counts equal this query's.
WITH gate_list(ord, gate) AS (
    VALUES (1, 'i'), (2, 'f'), (3, 'g'), (4, 'o'), (5, 'c'), (6, 'h')
),
sel AS (
    SELECT run_id, layer_id, name, direction
    FROM layers
    WHERE run_id = :run
      AND (:layer IS NULL OR name = :layer)
      AND (:direction IS NULL OR direction = :direction)
),
agg AS (
    SELECT g.layer_id, g.unit, count(*) AS n,
           sum(g.i < :low) AS i_l, sum(g.i > :high) AS i_r, avg(g.i) AS i_m, avg(g.i * g.i) AS i_s, min(g.i) AS i_min, max(g.i) AS i_max,
           sum(g.f < :low) AS f_l, sum(g.f > :high) AS f_r, avg(g.f) AS f_m, avg(g.f * g.f) AS f_s, min(g.f) AS f_min, max(g.f) AS f_max,
           sum(g.g < -:high) AS g_l, sum(g.g > :high) AS g_r, avg(g.g) AS g_m, avg(g.g * g.g) AS g_s, min(g.g) AS g_min, max(g.g) AS g_max,
           sum(g.o < :low) AS o_l, sum(g.o > :high) AS o_r, avg(g.o) AS o_m, avg(g.o * g.o) AS o_s, min(g.o) AS o_min, max(g.o) AS o_max,
           avg(g.c) AS c_m, avg(g.c * g.c) AS c_s, min(g.c) AS c_min, max(g.c) AS c_max,
           sum(g.h < -:high) AS h_l, sum(g.h > :high) AS h_r, avg(g.h) AS h_m, avg(g.h * g.h) AS h_s, min(g.h) AS h_min, max(g.h) AS h_max
    FROM gates AS g
    WHERE g.run_id = :run AND g.layer_id IN (SELECT layer_id FROM sel)
    GROUP BY g.layer_id, g.unit
),
per_gate AS (
    SELECT a.layer_id, a.unit, k.ord, k.gate, a.n,
           CASE k.gate WHEN 'i' THEN i_l WHEN 'f' THEN f_l WHEN 'g' THEN g_l WHEN 'o' THEN o_l WHEN 'h' THEN h_l END AS nl,
           CASE k.gate WHEN 'i' THEN i_r WHEN 'f' THEN f_r WHEN 'g' THEN g_r WHEN 'o' THEN o_r WHEN 'h' THEN h_r END AS nr,
           CASE k.gate WHEN 'i' THEN i_m WHEN 'f' THEN f_m WHEN 'g' THEN g_m WHEN 'o' THEN o_m WHEN 'c' THEN c_m ELSE h_m END AS m,
           CASE k.gate WHEN 'i' THEN i_s WHEN 'f' THEN f_s WHEN 'g' THEN g_s WHEN 'o' THEN o_s WHEN 'c' THEN c_s ELSE h_s END AS s,
           CASE k.gate WHEN 'i' THEN i_min WHEN 'f' THEN f_min WHEN 'g' THEN g_min WHEN 'o' THEN o_min WHEN 'c' THEN c_min ELSE h_min END AS lo,
           CASE k.gate WHEN 'i' THEN i_max WHEN 'f' THEN f_max WHEN 'g' THEN g_max WHEN 'o' THEN o_max WHEN 'c' THEN c_max ELSE h_max END AS hi
    FROM agg AS a
    CROSS JOIN gate_list AS k
)
SELECT s.run_id, s.name AS layer, s.direction, p.unit, p.gate, p.n,
       p.nl * 1.0 / p.n AS left,
       p.nr * 1.0 / p.n AS right,
       p.m AS mean,
       sqrt(max(0.0, p.s - p.m * p.m)) AS std,
       p.lo AS min,
       p.hi AS max
FROM per_gate AS p
JOIN sel AS s ON s.layer_id = p.layer_id
ORDER BY p.layer_id, p.unit, p.ord;
