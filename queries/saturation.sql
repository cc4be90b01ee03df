-- name: saturation
-- description: Per unit and gate: n, fraction of steps left/right-saturated, mean, std, min, max (what `gatescope stats` computes, as one full scan).
-- param: run = latest      run id (default: the latest complete run)
-- param: layer = NULL      layer name, or name:fwd / name:bwd (default: all layers)
-- param: direction = NULL  fwd or bwd (default: both)
-- param: low = 0.1         gates on 0..1 (i, f, o, z, r): left = fraction of steps with value < low
-- param: high = 0.9        i, f, o, z, r: right = fraction > high; g, h, n: left = fraction < -high, right = fraction > high
-- columns: run_id, layer, direction, unit, gate, n, left, right, mean, std, min, max
--
-- One row per (layer half, unit, gate of its cell): LSTM layers i f g o c h (table gates), GRU
-- layers z r n h (gru_gates), SimpleRNN layers h (simple_rnn_gates). c has no saturation: left
-- and right are NULL. mean and std (population) are gs_mean and gs_std, the exact moments
-- gatescope registers (see README.md here). `gatescope query` answers from the per-unit
-- summaries, as `gatescope stats` does, when low and high are multiples of 0.001; --scan runs
-- this SQL, and both give the same values.
WITH lstm_list(ord, gate) AS (
    VALUES (1, 'i'), (2, 'f'), (3, 'g'), (4, 'o'), (5, 'c'), (6, 'h')
),
gru_list(ord, gate) AS (
    VALUES (1, 'z'), (2, 'r'), (3, 'n'), (4, 'h')
),
sel AS (
    SELECT run_id, layer_id, name, direction
    FROM layers
    WHERE run_id = :run
      AND (:layer IS NULL OR name = :layer)
      AND (:direction IS NULL OR direction = :direction)
),
lstm AS (
    SELECT g.layer_id, g.unit, count(*) AS cnt,
           sum(g.i < :low) AS i_l, sum(g.i > :high) AS i_r, gs_mean(g.i) AS i_m, gs_std(g.i) AS i_s, min(g.i) AS i_min, max(g.i) AS i_max,
           sum(g.f < :low) AS f_l, sum(g.f > :high) AS f_r, gs_mean(g.f) AS f_m, gs_std(g.f) AS f_s, min(g.f) AS f_min, max(g.f) AS f_max,
           sum(g.g < -:high) AS g_l, sum(g.g > :high) AS g_r, gs_mean(g.g) AS g_m, gs_std(g.g) AS g_s, min(g.g) AS g_min, max(g.g) AS g_max,
           sum(g.o < :low) AS o_l, sum(g.o > :high) AS o_r, gs_mean(g.o) AS o_m, gs_std(g.o) AS o_s, min(g.o) AS o_min, max(g.o) AS o_max,
           gs_mean(g.c) AS c_m, gs_std(g.c) AS c_s, min(g.c) AS c_min, max(g.c) AS c_max,
           sum(g.h < -:high) AS h_l, sum(g.h > :high) AS h_r, gs_mean(g.h) AS h_m, gs_std(g.h) AS h_s, min(g.h) AS h_min, max(g.h) AS h_max
    FROM gates AS g
    WHERE g.run_id = :run AND g.layer_id IN (SELECT layer_id FROM sel)
    GROUP BY g.layer_id, g.unit
),
gru AS (
    SELECT g.layer_id, g.unit, count(*) AS cnt,
           sum(g.z < :low) AS z_l, sum(g.z > :high) AS z_r, gs_mean(g.z) AS z_m, gs_std(g.z) AS z_s, min(g.z) AS z_min, max(g.z) AS z_max,
           sum(g.r < :low) AS r_l, sum(g.r > :high) AS r_r, gs_mean(g.r) AS r_m, gs_std(g.r) AS r_s, min(g.r) AS r_min, max(g.r) AS r_max,
           sum(g.n < -:high) AS n_l, sum(g.n > :high) AS n_r, gs_mean(g.n) AS n_m, gs_std(g.n) AS n_s, min(g.n) AS n_min, max(g.n) AS n_max,
           sum(g.h < -:high) AS h_l, sum(g.h > :high) AS h_r, gs_mean(g.h) AS h_m, gs_std(g.h) AS h_s, min(g.h) AS h_min, max(g.h) AS h_max
    FROM gru_gates AS g
    WHERE g.run_id = :run AND g.layer_id IN (SELECT layer_id FROM sel)
    GROUP BY g.layer_id, g.unit
),
per_gate AS (
    SELECT a.layer_id, a.unit, k.ord, k.gate, a.cnt AS n,
           CASE k.gate WHEN 'i' THEN i_l WHEN 'f' THEN f_l WHEN 'g' THEN g_l WHEN 'o' THEN o_l WHEN 'h' THEN h_l END AS nl,
           CASE k.gate WHEN 'i' THEN i_r WHEN 'f' THEN f_r WHEN 'g' THEN g_r WHEN 'o' THEN o_r WHEN 'h' THEN h_r END AS nr,
           CASE k.gate WHEN 'i' THEN i_m WHEN 'f' THEN f_m WHEN 'g' THEN g_m WHEN 'o' THEN o_m WHEN 'c' THEN c_m ELSE h_m END AS m,
           CASE k.gate WHEN 'i' THEN i_s WHEN 'f' THEN f_s WHEN 'g' THEN g_s WHEN 'o' THEN o_s WHEN 'c' THEN c_s ELSE h_s END AS s,
           CASE k.gate WHEN 'i' THEN i_min WHEN 'f' THEN f_min WHEN 'g' THEN g_min WHEN 'o' THEN o_min WHEN 'c' THEN c_min ELSE h_min END AS lo,
           CASE k.gate WHEN 'i' THEN i_max WHEN 'f' THEN f_max WHEN 'g' THEN g_max WHEN 'o' THEN o_max WHEN 'c' THEN c_max ELSE h_max END AS hi
    FROM lstm AS a
    CROSS JOIN lstm_list AS k
    UNION ALL
    SELECT a.layer_id, a.unit, k.ord, k.gate, a.cnt,
           CASE k.gate WHEN 'z' THEN z_l WHEN 'r' THEN r_l WHEN 'n' THEN n_l ELSE h_l END,
           CASE k.gate WHEN 'z' THEN z_r WHEN 'r' THEN r_r WHEN 'n' THEN n_r ELSE h_r END,
           CASE k.gate WHEN 'z' THEN z_m WHEN 'r' THEN r_m WHEN 'n' THEN n_m ELSE h_m END,
           CASE k.gate WHEN 'z' THEN z_s WHEN 'r' THEN r_s WHEN 'n' THEN n_s ELSE h_s END,
           CASE k.gate WHEN 'z' THEN z_min WHEN 'r' THEN r_min WHEN 'n' THEN n_min ELSE h_min END,
           CASE k.gate WHEN 'z' THEN z_max WHEN 'r' THEN r_max WHEN 'n' THEN n_max ELSE h_max END
    FROM gru AS a
    CROSS JOIN gru_list AS k
    UNION ALL
    SELECT g.layer_id, g.unit, 1, 'h', count(*),
           sum(g.h < -:high), sum(g.h > :high), gs_mean(g.h), gs_std(g.h), min(g.h), max(g.h)
    FROM simple_rnn_gates AS g
    WHERE g.run_id = :run AND g.layer_id IN (SELECT layer_id FROM sel)
    GROUP BY g.layer_id, g.unit
)
SELECT s.run_id, s.name AS layer, s.direction, p.unit, p.gate, p.n,
       p.nl * 1.0 / p.n AS left,
       p.nr * 1.0 / p.n AS right,
       p.m AS mean,
       p.s AS std,
       p.lo AS min,
       p.hi AS max
FROM per_gate AS p
JOIN sel AS s ON s.layer_id = p.layer_id
ORDER BY p.layer_id, p.unit, p.ord;
