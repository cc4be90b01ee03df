-- GateScope database schema, version 5 (PRAGMA user_version = 5): shards and exact sums.
--
-- A recording can be split into N shards (`record --shard K/N`), each written to its own
-- database and merged with `gatescope merge`. For the merge and for `stats` over several shard
-- files to equal an unsharded recording exactly, the per-unit summaries now also keep Σx and
-- Σx² exactly (order-independent: integer mantissas per binary exponent), from which mean and m2
-- are computed; shards then combine by adding, bit for bit. Runs recorded before keep their
-- Welford mean and m2 and have sums NULL.

-- The sums of unit_summaries: little-endian (UInt16 bucket, Int64 value) pairs of the nonzero
-- buckets; buckets 0-255 hold Σx as mantissas of exponent k (value = bucket * 2^(k-150)),
-- buckets 256-791 Σx² (value = bucket * 2^(k-256-300)). NULL for runs of older releases.
ALTER TABLE unit_summaries ADD COLUMN sums BLOB;

-- Which part of the input a run recorded: shard K (0-based) of N, by sequence index (contiguous
-- ranges: shard K holds sequences floor(K*total/N) ..< floor((K+1)*total/N) of `total`). NULL
-- for a whole recording. seq_id always counts in the whole input.
ALTER TABLE runs ADD COLUMN shard_index INTEGER CHECK (shard_index IS NULL OR shard_index >= 0);
ALTER TABLE runs ADD COLUMN shard_count INTEGER CHECK (shard_count IS NULL OR shard_count >= 1);
-- Sequences in the whole input (sequence_count is the run's own share).
ALTER TABLE runs ADD COLUMN input_sequences INTEGER;
