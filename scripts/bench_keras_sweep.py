#!/usr/bin/env python3
"""Keras's LSTM inference throughput over a sweep of sizes, for scripts/bench_engine.sh.

For each configuration UNITS:LAYERS:BATCH it builds Input(TIME, FEATURES) -> LAYERS x
LSTM(UNITS, return_sequences=True) with seeded random weights and times Keras's fast honest
paths on one batch of BATCH sequences:
  * jax: `model.predict_on_batch(x)` and `jax.jit` of `model.stateless_call`;
  * tensorflow: `model.predict_on_batch(x)`, `tf.function(model)` and the same with
    `jit_compile=True`.
(`model.predict` is slower than predict_on_batch on one batch, by its data-adapter overhead.)
Every timed call returns a numpy array, so asynchronous dispatch is not mistaken for speed. Each
path's output is first checked against predict_on_batch (max abs difference <= 1e-4), then
warmed up, then called until at least MIN_SECONDS are timed (at least 3 calls); the median is
reported. One JSON object per configuration and path goes to stdout:
  {"backend", "units", "layers", "batch", "path", "median_s", "calls", "steps_seqs_per_s"}

    KERAS_BACKEND=jax python3 scripts/bench_keras_sweep.py --configs 256:2:64,256:2:1

With --serve it reads one configuration a line from stdin instead and prints "end" after each
one's rows, so that bench_engine.sh can time Keras seconds apart from GateScope on every size; a
configuration seen before reuses its model and compiled functions (warmed up again, not rebuilt).
"""

import argparse
import json
import os
import statistics
import sys
import time

import numpy as np


def build(keras, units, layers, steps, features):
    inp = keras.Input(shape=(steps, features))
    h = inp
    for k in range(layers):
        h = keras.layers.LSTM(units, return_sequences=True, name=f"lstm_{k}")(h)
    model = keras.Model(inp, h)
    rng = np.random.default_rng(units * 10 + layers)
    model.set_weights([rng.normal(0, 1 / np.sqrt(w.shape[0]), w.shape).astype(np.float32) for w in model.get_weights()])
    return model


def timed(fn, min_seconds):
    ts = []
    while len(ts) < 3 or sum(ts) < min_seconds:
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts), len(ts)


def prepare(keras, backend, units, layers, batch, steps, features):
    """The model of one configuration and its timed paths, each (label, call)."""
    model = build(keras, units, layers, steps, features)
    x = np.random.default_rng(1).normal(0, 1, (batch, steps, features)).astype(np.float32)
    paths = [("predict_on_batch", lambda: np.asarray(model.predict_on_batch(x)))]
    if backend == "jax":
        import jax

        tv = [jax.numpy.array(v.value, copy=True) for v in model.trainable_variables]
        ntv = [jax.numpy.array(v.value, copy=True) for v in model.non_trainable_variables]
        fwd = jax.jit(lambda tv, ntv, xx: model.stateless_call(tv, ntv, xx, training=False)[0])
        xj = jax.numpy.asarray(x)
        paths.append(("jax.jit(stateless_call)", lambda: np.asarray(fwd(tv, ntv, xj))))
    elif backend == "tensorflow":
        import tensorflow as tf

        f1 = tf.function(lambda xx: model(xx, training=False), reduce_retracing=True)
        f2 = tf.function(lambda xx: model(xx, training=False), jit_compile=True)
        xt = tf.constant(x)
        paths.append(("tf.function", lambda: f1(xt).numpy()))
        paths.append(("tf.function(jit_compile)", lambda: f2(xt).numpy()))
    return model, paths


def run(keras, backend, prepared, spec, args):
    units, layers, batch = (int(v) for v in spec.split(":"))
    if spec not in prepared:
        prepared[spec] = prepare(keras, backend, units, layers, batch, args.time, args.features)
    _, paths = prepared[spec]
    ref = paths[0][1]()
    for label, fn in paths:
        row = dict(backend=backend, units=units, layers=layers, batch=batch, path=label)
        try:
            err = float(np.max(np.abs(fn() - ref)))  # the first call also compiles
            if err > 1e-4:
                raise AssertionError(f"output differs from predict_on_batch by {err:g}")
            fn()
            med, calls = timed(fn, args.min_seconds)
            row.update(median_s=med, calls=calls, steps_seqs_per_s=batch * args.time / med)
        except Exception as e:  # noqa: BLE001
            row.update(error=f"{type(e).__name__}: {str(e)[:160]}")
        print(json.dumps(row), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--configs", help="UNITS:LAYERS:BATCH,...")
    ap.add_argument("--serve", action="store_true", help="configurations from stdin, one a line")
    ap.add_argument("--time", type=int, default=50)
    ap.add_argument("--features", type=int, default=64)
    ap.add_argument("--min-seconds", type=float, default=0.5)
    args = ap.parse_args()
    if not args.serve and not args.configs:
        ap.error("give --configs UNITS:LAYERS:BATCH,... or --serve")
    import keras

    backend = keras.backend.backend()
    prepared = {}
    if args.serve:
        print("ready", flush=True)
        for line in sys.stdin:
            if line.strip():
                run(keras, backend, prepared, line.strip(), args)
            print("end", flush=True)
        return 0
    for spec in args.configs.split(","):
        run(keras, backend, prepared, spec, args)
        del prepared[spec]
    return 0


if __name__ == "__main__":
    sys.exit(main())
