-- GateScope database schema, version 2 (PRAGMA user_version = 2): time axes of graph models.
--
-- In a graph model a recorded layer's time axis need not be the model input's: a strided Conv1D,
-- pooling or cropping shortens it, RepeatVector makes a new one. `step` is always the index on
-- the layer's own time axis; these columns say where that axis comes from, so that joins with
-- `tokens` never claim an alignment that is false. Version 1 databases (single-chain models,
-- every layer on the input's axis) migrate with time_input NULL and aligned = 1, which is what
-- they recorded.

-- The model input whose time axis the layer walks ('' when the run does not know, as in runs
-- recorded by version 1; NULL when the axis is made inside the model, e.g. by RepeatVector).
ALTER TABLE layers ADD COLUMN time_input TEXT DEFAULT '';
-- 1 when step t of the layer is step t of that input (and so token t of `tokens`), else 0.
ALTER TABLE layers ADD COLUMN aligned INTEGER NOT NULL DEFAULT 1 CHECK (aligned IN (0, 1));

-- Gates by name: as before, but a token is attached only to steps of layers aligned with the input.
DROP VIEW gate_rows;
CREATE VIEW gate_rows AS
SELECT g.run_id, g.seq_id, s.source_id, g.layer_id, l.name AS layer, l.direction,
       g.step, t.token_id, t.token, g.unit, g.i, g.f, g.g, g.o, g.c, g.h
FROM gates AS g
JOIN layers AS l ON l.run_id = g.run_id AND l.layer_id = g.layer_id
JOIN sequences AS s ON s.run_id = g.run_id AND s.seq_id = g.seq_id
LEFT JOIN tokens AS t ON l.aligned = 1 AND t.run_id = g.run_id AND t.seq_id = g.seq_id AND t.step = g.step;
