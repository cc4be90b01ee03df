#!/usr/bin/env python3
"""Make the malformed and unsupported model files that GateScopeKeras's error tests load.

Run once from the repository root (the outputs are committed; tests never run Python):

    KERAS_BACKEND=jax python3 scripts/make_bad_fixtures.py

Writes Tests/Fixtures/bad/. Damaged files are derived from the reference fixtures in
Tests/Fixtures/keras (lstm_single, keras2_hard_sigmoid); unsupported models are small new models
saved by Keras 3 (jax backend) and, for the Keras 2 file, by tf-keras in a child process
(`--keras2`, TF_USE_LEGACY_KERAS=1), so Keras 3 and tf-keras never share a process.

Also writes one *valid* file, fixed_length_strings.h5: the keras2_hard_sigmoid model with its
string attributes rewritten as fixed-length byte strings, as old h5py/Keras 2 versions wrote them.

Python packages: keras==3.15.1 jax h5py numpy; tf-keras==2.21.0 + tensorflow-cpu for --keras2.
"""

import os
import random
import shutil
import subprocess
import sys
import tempfile
import zipfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
GOOD = os.path.join(ROOT, "Tests", "Fixtures", "keras")
OUT = os.path.join(ROOT, "Tests", "Fixtures", "bad")


def out(name):
    return os.path.join(OUT, name)


def truncated(src, dst, fraction):
    data = open(src, "rb").read()
    open(dst, "wb").write(data[: int(len(data) * fraction)])


def rewrite_keras(src, dst, edit_weights):
    """Copy a .keras zip, letting `edit_weights(h5py.File)` change model.weights.h5."""
    import h5py

    with tempfile.TemporaryDirectory() as tmp:
        with zipfile.ZipFile(src) as z:
            z.extractall(tmp)
        with h5py.File(os.path.join(tmp, "model.weights.h5"), "r+") as f:
            edit_weights(f)
        with zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as z:
            for name in ("metadata.json", "config.json", "model.weights.h5"):
                z.write(os.path.join(tmp, name), name)


def rewrite_h5(src, dst, edit):
    import h5py

    shutil.copyfile(src, dst)
    with h5py.File(dst, "r+") as f:
        edit(f)


def damaged_files():
    rng = np.random.default_rng(7)
    single = os.path.join(GOOD, "lstm_single")
    k2 = os.path.join(GOOD, "keras2_hard_sigmoid", "model.h5")

    truncated(os.path.join(single, "model.keras"), out("truncated.keras"), 0.6)
    truncated(os.path.join(single, "model.h5"), out("truncated.h5"), 0.5)
    open(out("random.h5"), "wb").write(rng.integers(0, 256, 2048, dtype=np.uint8).tobytes())
    open(out("empty.keras"), "wb").close()

    # A valid zip whose weights file is cut short.
    with tempfile.TemporaryDirectory() as tmp:
        with zipfile.ZipFile(os.path.join(single, "model.keras")) as z:
            z.extractall(tmp)
        w = os.path.join(tmp, "model.weights.h5")
        truncated(w, w, 0.4)
        with zipfile.ZipFile(out("corrupt_weights.keras"), "w", zipfile.ZIP_DEFLATED) as z:
            for name in ("metadata.json", "config.json", "model.weights.h5"):
                z.write(os.path.join(tmp, name), name)

    # Byte flips (found by fuzzing) that make libhdf5 1.10 itself crash (SIGSEGV in H5Aread)
    # instead of returning an error: the loader must still say one line and exit 1.
    flips = random.Random(7)
    data = open(k2, "rb").read()
    for _ in range(10):
        b = bytearray(data)
        for _ in range(flips.choice([5, 50, 500])):
            at = flips.randrange(len(b))
            b[at] = flips.randrange(256)
    open(out("libhdf5_crash.h5"), "wb").write(bytes(b))

    # A zip that is no Keras model (no config.json).
    with zipfile.ZipFile(out("no_config.keras"), "w") as z:
        z.writestr("readme.txt", "not a model")

    def wrong_kernel_h5(f):
        path = "model_weights/lstm_hs/lstm_hs/lstm_cell/kernel:0"
        del f[path]
        f.create_dataset(path, data=rng.standard_normal((4, 20)).astype("float32"))

    rewrite_h5(k2, out("wrong_kernel_shape.h5"), wrong_kernel_h5)

    def missing_bias_h5(f):
        del f["model_weights/lstm_last/lstm_last/lstm_cell/bias:0"]

    rewrite_h5(k2, out("missing_dataset.h5"), missing_bias_h5)

    def fixed_length_strings(f):
        def fixed(obj, key):
            value = obj.attrs[key]
            if isinstance(value, np.ndarray):
                items = [v.encode() if isinstance(v, str) else bytes(v) for v in value]
                if items:
                    obj.attrs[key] = np.array(items, dtype=f"S{max(len(v) for v in items)}")
            else:
                obj.attrs[key] = np.bytes_(value.encode() if isinstance(value, str) else value)

        for key in ("keras_version", "backend", "model_config"):
            fixed(f, key)
        for name in f["model_weights"]:
            fixed(f["model_weights"][name], "weight_names")

    rewrite_h5(k2, out("fixed_length_strings.h5"), fixed_length_strings)

    def wrong_kernel_keras(f):
        del f["layers/lstm/cell/vars/0"]
        f.create_dataset("layers/lstm/cell/vars/0", data=rng.standard_normal((3, 28)).astype("float32"))

    rewrite_keras(os.path.join(single, "model.keras"), out("wrong_kernel_shape.keras"), wrong_kernel_keras)

    def missing_bias_keras(f):
        del f["layers/lstm/cell/vars/2"]

    rewrite_keras(os.path.join(single, "model.keras"), out("missing_dataset.keras"), missing_bias_keras)


def keras3_models():
    os.environ.setdefault("KERAS_BACKEND", "jax")
    import keras
    from keras import layers

    def save(model, name):
        path = out(name)
        if name.endswith(".keras"):
            model.save(path)
        else:
            model.save(path)  # legacy HDF5

    # GRU, Conv1D, branching graphs and merge_mode=None are supported since the engine became a
    # graph: their cases live in Tests/Fixtures/graph (scripts/make_graph_fixtures.py). Lambda and
    # custom-class refusals come from that script too (Tests/Fixtures/graph_bad, copied here).

    x = keras.Input(batch_shape=(2, 5, 3), name="x")
    save(keras.Model(x, layers.LSTM(4, stateful=True, name="stateful_lstm")(x), name="stateful"), "stateful.keras")

    x = keras.Input((None, 3), name="x")
    y = layers.Dense(2, activation="log_sigmoid", name="odd_act")(layers.LSTM(3, name="lstm")(x))
    save(keras.Model(x, y, name="unknown_activation"), "unknown_activation.keras")

    x = keras.Input((None, 3), name="x")
    keras.Model(x, layers.LSTM(2, name="lstm")(x)).save_weights(out("weights_only.weights.h5"))


def keras2_models():
    import tf_keras as keras
    from tf_keras import layers

    pass  # the Keras 2 branching case is supported now (Tests/Fixtures/graph/*_k2)


def main():
    if "--keras2" in sys.argv:
        keras2_models()
        return
    os.makedirs(OUT, exist_ok=True)
    damaged_files()
    keras3_models()
    env = dict(os.environ, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="3")
    subprocess.run([sys.executable, os.path.abspath(__file__), "--keras2"], check=True, env=env)
    for name in sorted(os.listdir(OUT)):
        print(f"{os.path.getsize(out(name)):8d}  {name}")


if __name__ == "__main__":
    main()
