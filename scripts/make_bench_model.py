#!/usr/bin/env python3
"""Makes the recorder benchmark's model and inputs (see scripts/bench_record.sh).

    KERAS_BACKEND=jax python3 scripts/make_bench_model.py OUT_DIR [--sequences N] [--time T] [--features F]

Writes OUT_DIR/model.keras: Input(None, F) -> LSTM(128, seq) -> LSTM(128, seq) -> Dense(F), fixed
seed; OUT_DIR/input.npy float32 [N, T, F] and OUT_DIR/input8.npy with 8*N sequences (same
distribution), for the memory check. Rows recorded = sequences * T * 256.
"""
import argparse
import os

os.environ.setdefault("KERAS_BACKEND", "jax")

import numpy as np  # noqa: E402
import keras  # noqa: E402


def main():
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("--sequences", type=int, default=128)
    p.add_argument("--time", type=int, default=64)
    p.add_argument("--features", type=int, default=16)
    a = p.parse_args()
    os.makedirs(a.out, exist_ok=True)

    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((None, a.features)),
        keras.layers.LSTM(128, return_sequences=True, name="lstm_1"),
        keras.layers.LSTM(128, return_sequences=True, name="lstm_2"),
        keras.layers.Dense(a.features, name="dense"),
    ], name="bench_lstm128x2")
    model.save(os.path.join(a.out, "model.keras"))

    rng = np.random.default_rng(0)
    x = rng.standard_normal((a.sequences, a.time, a.features)).astype(np.float32)
    np.save(os.path.join(a.out, "input.npy"), x)
    x8 = rng.standard_normal((8 * a.sequences, a.time, a.features)).astype(np.float32)
    np.save(os.path.join(a.out, "input8.npy"), x8)
    print(f"rows per run: {a.sequences * a.time * 256} (x{8} = {8 * a.sequences * a.time * 256})")


if __name__ == "__main__":
    main()
