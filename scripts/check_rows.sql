-- name: check-rows
-- description: Number of gate rows in the latest complete run (used by check_fresh_clone.sh).
-- columns: rows
SELECT row_count AS rows FROM runs WHERE status = 'complete' ORDER BY run_id DESC LIMIT 1;
