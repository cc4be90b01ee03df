-- name: top-tokens
-- description: Tokens at which one unit's gate is highest: per token, its count and the mean and max gate value, highest mean first.
-- param: unit:int          unit index (required)
-- param: run = latest      run id (default: the latest complete run)
-- param: layer = NULL      layer name, or name:fwd / name:bwd (default: all layers)
-- param: direction = NULL  fwd or bwd (default: both)
-- param: gate = h          [i|f|g|o|c|h|z|r|n] the gate to rank by (LSTM i f g o c h, GRU z r n h, SimpleRNN h)
-- param: min_count = 1     ignore tokens seen fewer times than this
-- param: limit = 20        at most this many tokens per layer half
-- columns: run_id, layer, direction, unit, token, count, mean, max
--
-- Needs a run recorded from token input (the tokens table); otherwise it returns no rows. Only
-- layers whose steps line up with the input's tokens (layers.aligned) and whose cell has the
-- gate give rows: h ranks every cell, f an LSTM, z a GRU (values from the gate_values view).
-- token is the vocab text when known, else the token id.
WITH per_token AS (
    SELECT g.run_id, g.layer_id, g.unit,
           coalesce(t.token, CAST(t.token_id AS TEXT)) AS token,
           count(*) AS count,
           avg(g.value) AS mean,
           max(g.value) AS max
    FROM gate_values AS g
    JOIN layers AS l ON l.run_id = g.run_id AND l.layer_id = g.layer_id
    JOIN tokens AS t ON t.run_id = g.run_id AND t.seq_id = g.seq_id AND t.step = g.step
    WHERE g.run_id = :run AND g.unit = :unit AND g.gate = :gate AND l.aligned = 1
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
