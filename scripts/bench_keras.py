#!/usr/bin/env python3
"""Keras's own LSTM inference throughput, for comparison with GateScope.

Benchmark model: Input(100, 64) -> LSTM(256, return_sequences) ->
LSTM(256, return_sequences), weights from numpy's default_rng(0) (the same
numbers on every backend), input float32 [64, 100, 64] from default_rng(1).

Run (from the repository root):

    nice python3 scripts/bench_keras.py                       # jax and tensorflow
    nice python3 scripts/bench_keras.py --backend jax --repeats 7
    nice python3 scripts/bench_keras.py --backend jax \\
        --save bench_model.keras --save-input bench_x.npy     # for timing Swift

Each backend runs in its own subprocess (KERAS_BACKEND set there). Timed:
  * `model.predict(x, batch_size=B, verbose=0)`, the ordinary Keras way
    (headline line: "keras-<backend> batch=B: median ... s, N steps*seqs/s");
  * direct paths, labelled: `model(x, training=False)` (eager call),
    `model.predict_on_batch(x)` (Keras's compiled predict step), and a
    compiled forward (`jax.jit` of `model.stateless_call` on jax,
    `tf.function` of `model(x)` on tensorflow, also with jit_compile=True).
Every timed call includes getting the result back as a numpy array (so
asynchronous dispatch is not mistaken for speed). Before timing, each path is
called on the same input once and its output checked against `model.predict`,
then warmed up. The fastest path per batch size is printed at the end as
"fastest honest Keras path".
batch=64: one call = 64 sequences x 100 steps (6400 steps*seqs).
batch=1:  one call = 1 sequence x 100 steps (100 steps*seqs); repeated.

Python packages (pip): keras==3.15.1, jax, jaxlib, numpy, h5py (for --save);
tensorflow-cpu==2.21.0 for --backend tensorflow. The machine has 2 cores; other
load (e.g. a compiler) makes the numbers worse: the load average is printed.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

T, F, UNITS, BATCH = 100, 64, 256, 64


def make_weights():
    rng = np.random.default_rng(0)
    ws = []
    for din in (F, UNITS):
        ws.append((rng.normal(0, 1.0 / np.sqrt(din), (din, 4 * UNITS))).astype(np.float32))
        ws.append((rng.normal(0, 1.0 / np.sqrt(UNITS), (UNITS, 4 * UNITS))).astype(np.float32))
        b = np.zeros(4 * UNITS, np.float32)
        b[UNITS:2 * UNITS] = 1.0  # unit_forget_bias, like Keras's default init
        ws.append(b)
    return ws


def make_input():
    return np.random.default_rng(1).normal(0, 1, (BATCH, T, F)).astype(np.float32)


def build_model(keras):
    inp = keras.Input(shape=(T, F), name="x")
    h = keras.layers.LSTM(UNITS, return_sequences=True, name="lstm_1")(inp)
    h = keras.layers.LSTM(UNITS, return_sequences=True, name="lstm_2")(h)
    model = keras.Model(inp, h, name="bench_lstm2x256")
    model.set_weights(make_weights())
    return model


def numpy_forward(x):
    """float64 numpy forward of the benchmark model (sanity check of Keras)."""
    ws = [w.astype(np.float64) for w in make_weights()]
    h_seq = x.astype(np.float64)
    for k in range(2):
        W, U, bias = ws[3 * k:3 * k + 3]
        h = np.zeros((x.shape[0], UNITS))
        c = np.zeros_like(h)
        outs = []
        for t in range(x.shape[1]):
            z = h_seq[:, t] @ W + h @ U + bias
            sig = lambda v: 1.0 / (1.0 + np.exp(-v))  # noqa: E731
            i, f = sig(z[:, :UNITS]), sig(z[:, UNITS:2 * UNITS])
            g, o = np.tanh(z[:, 2 * UNITS:3 * UNITS]), sig(z[:, 3 * UNITS:])
            c = f * c + i * g
            h = o * np.tanh(c)
            outs.append(h)
        h_seq = np.stack(outs, axis=1)
    return h_seq


def timeit(fn, repeats, warmup):
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts), min(ts)


def worker(args):
    backend = os.environ["KERAS_BACKEND"]
    import keras

    assert keras.backend.backend() == backend
    model = build_model(keras)
    x = make_input()
    if args.save:
        model.save(args.save)
        print(f"# saved model to {args.save}", flush=True)
    if args.save_input:
        np.save(args.save_input, x)
        print(f"# saved input float32 {list(x.shape)} to {args.save_input}", flush=True)

    results = []
    for b in (BATCH, 1):
        xb = x[:b]
        ref = model.predict(xb, batch_size=b, verbose=0)
        err = float(np.max(np.abs(ref[:2] - numpy_forward(xb[:2]))))
        if err > 1e-4:
            raise AssertionError(f"keras-{backend}: predict differs from numpy by {err:g}")
        paths = [("predict", lambda xb=xb, b=b: model.predict(xb, batch_size=b, verbose=0))]
        paths.append(("model(x)", lambda xb=xb: np.asarray(model(xb, training=False))))
        paths.append(("predict_on_batch", lambda xb=xb: np.asarray(model.predict_on_batch(xb))))
        if backend == "jax":
            import jax

            # copies: Keras's own compiled predict step donates the variable
            # buffers, which would delete arrays captured here
            tv = [jax.numpy.array(v.value, copy=True) for v in model.trainable_variables]
            ntv = [jax.numpy.array(v.value, copy=True) for v in model.non_trainable_variables]

            @jax.jit
            def fwd(tv, ntv, xx):
                y, _ = model.stateless_call(tv, ntv, xx, training=False)
                return y

            xj = jax.numpy.asarray(xb)
            paths.append(("jax.jit(stateless_call)",
                          lambda xj=xj: np.asarray(fwd(tv, ntv, xj))))
        elif backend == "tensorflow":
            import tensorflow as tf

            f1 = tf.function(lambda xx: model(xx, training=False), reduce_retracing=True)
            f2 = tf.function(lambda xx: model(xx, training=False), jit_compile=True)
            xt = tf.constant(xb)
            paths.append(("tf.function(model)", lambda xt=xt: f1(xt).numpy()))
            paths.append(("tf.function(model, jit_compile=True)", lambda xt=xt: f2(xt).numpy()))
        for label, fn in paths:
            try:
                out = fn()  # first call also compiles/traces
                err = float(np.max(np.abs(np.asarray(out) - ref)))
                if err > 1e-4:
                    raise AssertionError(f"output differs from predict by {err:g}")
                # batch 1 calls are short: more repeats (same median statistic)
                reps = args.repeats if b == BATCH else max(args.repeats, 5 * args.repeats)
                med, best = timeit(fn, reps, args.warmup)
            except Exception as e:  # noqa: BLE001
                results.append(dict(backend=backend, batch=b, path=label,
                                    error=f"{type(e).__name__}: {str(e)[:200]}"))
                print(f"keras-{backend} batch={b} [{label}]: FAILED {type(e).__name__}: "
                      f"{str(e)[:200]}", flush=True)
                continue
            rate = b * T / med
            r = dict(backend=backend, batch=b, path=label, median_s=med, min_s=best,
                     repeats=reps, steps_seqs_per_s=rate)
            results.append(r)
            if label == "predict":
                print(f"keras-{backend} batch={b}: median {med:.4f} s, {rate:.0f} steps*seqs/s"
                      f"  (min {best:.4f} s, n={reps})", flush=True)
            else:
                print(f"keras-{backend} batch={b} [{label}]: median {med:.4f} s, "
                      f"{rate:.0f} steps*seqs/s  (min {best:.4f} s, n={reps})", flush=True)
    print("#RESULTS " + json.dumps(results), flush=True)


def main():
    ap = argparse.ArgumentParser(description="Keras LSTM(256)x2 inference benchmark")
    ap.add_argument("--backend", choices=["jax", "tensorflow", "all"], default="all")
    ap.add_argument("--repeats", type=int, default=7, help="timed calls (median reported)")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--save", metavar="MODEL.keras", help="write the benchmark model")
    ap.add_argument("--save-input", metavar="X.npy", help="write the input float32 [64,100,64]")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args)
        return

    backends = ["jax", "tensorflow"] if args.backend == "all" else [args.backend]
    print(f"# model: Input({T},{F}) -> LSTM({UNITS}, seq) -> LSTM({UNITS}, seq); "
          f"input float32 [{BATCH},{T},{F}]; {os.cpu_count()} CPUs; "
          f"load average {os.getloadavg()[0]:.2f}", flush=True)
    all_results = []
    ok = True
    for i, be in enumerate(backends):
        env = dict(os.environ, KERAS_BACKEND=be, TF_CPP_MIN_LOG_LEVEL="2",
                   CUDA_VISIBLE_DEVICES="")
        cmd = [sys.executable, os.path.abspath(__file__), "--worker",
               "--repeats", str(args.repeats), "--warmup", str(args.warmup)]
        if i == 0 and args.save:
            cmd += ["--save", args.save]
        if i == 0 and args.save_input:
            cmd += ["--save-input", args.save_input]
        p = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, text=True)
        for line in p.stdout.splitlines():
            if line.startswith("#RESULTS "):
                all_results += json.loads(line[len("#RESULTS "):])
            else:
                print(line, flush=True)
        if p.returncode != 0:
            ok = False
            print(f"keras-{be}: worker failed (exit {p.returncode})", flush=True)
    for b in (BATCH, 1):
        good = [r for r in all_results if r["batch"] == b and "median_s" in r]
        if good:
            best = min(good, key=lambda r: r["median_s"])
            print(f"fastest honest Keras path batch={b}: keras-{best['backend']} [{best['path']}] "
                  f"median {best['median_s']:.4f} s, {best['steps_seqs_per_s']:.0f} steps*seqs/s")
    print(f"# load average at end {os.getloadavg()[0]:.2f}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
