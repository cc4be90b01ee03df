#!/usr/bin/env python3
"""Makes the recorder benchmark's model and inputs (see scripts/bench_record.sh).

    KERAS_BACKEND=jax python3 scripts/make_bench_model.py OUT_DIR [--sequences N] [--time T] [--features F]
        [--cell lstm|gru] [--units U] [--head H]

Writes OUT_DIR/model.keras: Input(None, F) -> LSTM(U, seq) -> LSTM(U, seq) -> Dense(H) (U = 128, H = F:
--head 5000 stands for a language model's vocabulary head over every step), fixed
seed (--cell gru: the same with GRU(128), Keras 3's default reset_after=True); OUT_DIR/input.npy
float32 [N, T, F] and OUT_DIR/input8.npy with 8*N sequences (same distribution), for the memory
check. Rows recorded = sequences * T * 256.
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
    p.add_argument("--cell", choices=["lstm", "gru"], default="lstm")
    p.add_argument("--units", type=int, default=128)
    p.add_argument("--head", type=int, default=0, help="units of the Dense head (default: --features)")
    a = p.parse_args()
    os.makedirs(a.out, exist_ok=True)

    keras.utils.set_random_seed(0)
    rnn = {"lstm": keras.layers.LSTM, "gru": keras.layers.GRU}[a.cell]
    model = keras.Sequential([
        keras.Input((None, a.features)),
        rnn(a.units, return_sequences=True, name=f"{a.cell}_1"),
        rnn(a.units, return_sequences=True, name=f"{a.cell}_2"),
        keras.layers.Dense(a.head or a.features, name="dense"),
    ], name=f"bench_{a.cell}{a.units}x2")
    model.save(os.path.join(a.out, "model.keras"))

    rng = np.random.default_rng(0)
    x = rng.standard_normal((a.sequences, a.time, a.features)).astype(np.float32)
    np.save(os.path.join(a.out, "input.npy"), x)
    x8 = rng.standard_normal((8 * a.sequences, a.time, a.features)).astype(np.float32)
    np.save(os.path.join(a.out, "input8.npy"), x8)
    rows = a.sequences * a.time * 2 * a.units
    print(f"rows per run: {rows} (x8 = {8 * rows})")


if __name__ == "__main__":
    main()
