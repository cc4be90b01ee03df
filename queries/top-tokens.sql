-- name: top-tokens
-- description: Tokens at which one unit's gate is highest: per token, its count and the mean and max gate value, highest mean first.
-- param: unit              unit index (required)
-- param: run = latest      run id (default: the latest complete run)
-- param: layer = NULL      layer name, or name:fwd / name:bwd (default: all layers)
-- param: direction = NULL  fwd or bwd (default: both)
-- param: gate = h          [i|f|g|o|c|h] the gate to rank by
-- param: min_count = 1     ignore tokens seen fewer times than this
-- param: limit = 20        at most this many tokens per layer half
-- columns: run_id, layer, direction, unit, token, count, mean, max
--
-- Needs a run recorded from token input (the tokens table); otherwise it returns no rows.
-- token is the vocab text when known, else the token id.
WITH per_token AS (
    SELECT g.run_id, g.layer_id, g.unit,
           coalesce(t.token, CAST(t.token_id AS TEXT)) AS token,
           count(*) AS count,
           avg(CASE :gate WHEN 'i' THEN g.i WHEN 'f' THEN g.f WHEN 'g' THEN g.g
                          WHEN 'o' THEN g.o WHEN 'c' THEN g.c WHEN 'h' THEN g.h END) AS mean,
           max(CASE :gate WHEN 'i' THEN g.i WHEN 'f' THEN g.f WHEN 'g' THEN g.g
                          WHEN 'o' THEN g.o WHEN 'c' THEN g.c WHEN 'h' THEN g.h END) AS max
    FROM gates AS g
    JOIN layers AS l ON l.run_id = g.run_id AND l.layer_id = g.layer_id
    JOIN tokens AS t ON t.run_id = g.run_id AND t.seq_id = g.seq_id AND t.step = g.step
    WHERE g.run_id = :run AND g.unit = :unit
      AND (:layer IS NULL OR l.name = :layer)
      AND (:direction IS NULL OR l.direction = :direction)
    GROUP BY g.layer_id, g.unit, coalesce(t.token, CAST(t.token_id AS TEXT))
    HAVING count(*) >= :min_count
),
ranked AS (
    SELECT p.*, row_number() OVER (PARTITION BY p.layer_id ORDER BY p.mean DESC, p.count DESC, p.token) AS rank
    FROM per_token AS p
)
SELECT r.run_id, l.name AS layer, l.direction, r.unit, r.token, r.count, r.mean, r.max
FROM ranked AS r
JOIN layers AS l ON l.run_id = r.run_id AND l.layer_id = r.layer_id
WHERE r.rank <= :limit
ORDER BY r.layer_id, r.rank;
