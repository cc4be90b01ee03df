#!/usr/bin/env python3
"""Generate Keras reference fixtures for GateScope's Swift tests.

Run (from the repository root):

    KERAS_BACKEND=jax nice python3 scripts/make_fixtures.py --copy-shared

    --copy-shared     also copy the 5 hand-made cases from ../shared/fixtures/keras
                      (or --shared DIR) verbatim into the output folder
    --only CASE ...   generate only these cases (default: all)
    --out DIR         output folder (default: Tests/Fixtures/keras)
    --list            print the case names and exit
    --check-shared    also run the numpy reference on the copied shared cases and
                      compare it with their expected.npz (gates, masks, y)

Python packages (pip):

    keras==3.15.1 jax jaxlib h5py numpy          # Keras 3 cases (KERAS_BACKEND=jax)
    tensorflow-cpu==2.21.0                       # for the Keras 2 cases ...
    tf-keras==2.21.0 (pip install --no-deps tf-keras==2.21.0, so that it does
                      not pull the big GPU `tensorflow` wheel next to
                      tensorflow-cpu)

The Keras 2 (tf-keras) cases are made by this same file re-run in a child
process (`--keras2`, with TF_USE_LEGACY_KERAS=1): Keras 3 and tf-keras are never
imported into one process. If tf-keras is missing the Keras 2 cases fail loudly.

What it writes, per case folder (same layout as shared/fixtures/keras):
    model.keras + model.h5 (Keras 3 cases) or model.h5 only (Keras 2 cases),
    input.npy, expected.npz, meta.json.
Expected gate values come from an independent float64 numpy LSTM (below) run on
the float32 weights from get_weights(). Every case is checked against Keras
itself: each recurrent layer's output (sub-model), a probe copy of each LSTM
(return_sequences + return_state: every h and the final c), and the whole
model's y = model.predict(x) must agree with numpy within 1e-5, or the script
exits non-zero. y stored in expected.npz is Keras's own model.predict output.

Weights and inputs come from numpy's default_rng with a fixed seed per case,
so reruns reproduce the same numbers (the .keras/.h5 containers may differ in
bytes, e.g. timestamps).
"""

import argparse
import json
import math
import os
import shutil
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DEFAULT_OUT = os.path.join(ROOT, "Tests", "Fixtures", "keras")
DEFAULT_SHARED = os.path.normpath(os.path.join(ROOT, "..", "shared", "fixtures", "keras"))
SHARED_CASES = ["lstm_single", "lstm_stacked_masked", "char_embedding",
                "bidirectional", "keras2_hard_sigmoid"]
TOL = 1e-5

# --------------------------------------------------------------------------
# numpy float64 reference
# --------------------------------------------------------------------------

_erf = np.vectorize(math.erf, otypes=[np.float64])
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


def activation(name, x, keras_major):
    """Keras activation `name` in float64, as Keras `keras_major` defines it."""
    x = np.asarray(x, dtype=np.float64)
    if name in (None, "linear"):
        return x
    if name == "tanh":
        return np.tanh(x)
    if name == "sigmoid":
        return 1.0 / (1.0 + np.exp(-x))
    if name == "hard_sigmoid":
        if keras_major >= 3:
            return np.clip(x / 6.0 + 0.5, 0.0, 1.0)
        return np.clip(0.2 * x + 0.5, 0.0, 1.0)
    if name == "relu":
        return np.maximum(x, 0.0)
    if name == "softsign":
        return x / (1.0 + np.abs(x))
    if name == "softplus":
        return np.logaddexp(x, 0.0)
    if name == "elu":
        return np.where(x > 0, x, np.expm1(np.minimum(x, 0.0)))
    if name == "selu":
        return SELU_SCALE * np.where(x > 0, x, SELU_ALPHA * np.expm1(np.minimum(x, 0.0)))
    if name == "gelu":  # keras default approximate=False: x * Phi(x)
        return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))
    if name == "softmax":
        e = np.exp(x - x.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)
    raise ValueError(f"activation {name!r} not implemented in the reference")


def act_name(a):
    """Activation name from a config value (string or serialized dict)."""
    if a is None or isinstance(a, str):
        return a or "linear"
    if isinstance(a, dict):
        return a.get("config", {}).get("name") or a.get("class_name")
    return getattr(a, "__name__", str(a))


def lstm_reference(x, mask, kernel, recurrent_kernel, bias, act, ract,
                   go_backwards, zero_output_for_mask, keras_major):
    """One LSTM layer like Keras. x [B,T,D] float64, mask [B,T] bool.

    Returns (gates, outputs, last_output, final_c):
      gates: dict q -> [B,T,U] indexed by position in the input sequence,
             NaN at masked steps;
      outputs: [B,T,U] in Keras's return_sequences order (processing order,
             i.e. reversed for go_backwards);
      last_output: outputs[:, -1].
    """
    x = np.asarray(x, np.float64)
    B, T, _ = x.shape
    W = kernel.astype(np.float64)
    U = recurrent_kernel.astype(np.float64)
    u = U.shape[0]
    b = np.zeros(4 * u) if bias is None else bias.astype(np.float64)
    h = np.zeros((B, u))
    c = np.zeros((B, u))
    gates = {q: np.full((B, T, u), np.nan) for q in "ifgoch"}
    outputs = np.zeros((B, T, u))
    order = list(range(T))[::-1] if go_backwards else list(range(T))
    for k, t in enumerate(order):
        z = x[:, t] @ W + h @ U + b
        i = activation(ract, z[:, 0 * u:1 * u], keras_major)
        f = activation(ract, z[:, 1 * u:2 * u], keras_major)
        g = activation(act, z[:, 2 * u:3 * u], keras_major)
        o = activation(ract, z[:, 3 * u:4 * u], keras_major)
        c_new = f * c + i * g
        h_new = o * activation(act, c_new, keras_major)
        m = mask[:, t]
        mm = m[:, None]
        out = np.where(mm, h_new, 0.0 if zero_output_for_mask else h)
        h = np.where(mm, h_new, h)
        c = np.where(mm, c_new, c)
        outputs[:, k] = out
        for q, v in zip("ifgoch", (i, f, g, o, c_new, h_new)):
            gates[q][m, t] = v[m]
    return gates, outputs, outputs[:, -1], c


def lstm_cfg(layer):
    cfg = layer.get_config()
    return dict(
        units=int(cfg["units"]),
        activation=act_name(cfg.get("activation", "tanh")),
        recurrent_activation=act_name(cfg.get("recurrent_activation", "sigmoid")),
        use_bias=bool(cfg.get("use_bias", True)),
        return_sequences=bool(cfg.get("return_sequences", False)),
        go_backwards=bool(cfg.get("go_backwards", False)),
        zero_output_for_mask=bool(getattr(layer, "zero_output_for_mask", False)),
    )


def run_lstm_layer(layer, x, mask, keras_major):
    cfg = lstm_cfg(layer)
    w = layer.get_weights()
    kernel, rec = w[0], w[1]
    bias = w[2] if cfg["use_bias"] else None
    gates, outs, last, c = lstm_reference(
        x, mask, kernel, rec, bias, cfg["activation"], cfg["recurrent_activation"],
        cfg["go_backwards"], cfg["zero_output_for_mask"], keras_major)
    y = outs if cfg["return_sequences"] else last
    return cfg, gates, outs, y, c


def reference_forward(model, x, keras_major):
    """Walk a linear chain of layers in numpy float64.

    Returns y, records (list of dicts per recurrent layer), layer_outputs
    (name -> numpy output, for checking against Keras sub-models).
    """
    cur = np.asarray(x)
    mask = None
    records = []
    outputs = {}
    B, T = cur.shape[0], cur.shape[1]
    for layer in model.layers:
        cls = type(layer).__name__
        cfg = layer.get_config()
        if cls == "InputLayer":
            continue
        if cls == "Masking":
            mv = float(cfg.get("mask_value", 0.0))
            mask = np.any(cur != mv, axis=-1)
            cur = cur * mask[..., None]
        elif cls == "Embedding":
            (table,) = layer.get_weights()
            ids = cur.astype(np.int64)
            cur = table.astype(np.float64)[ids]
            if cfg.get("mask_zero", False):
                mask = ids != 0
        elif cls == "LSTM":
            m = mask if mask is not None else np.ones((B, T), bool)
            lc, gates, outs, y, c = run_lstm_layer(layer, cur, m, keras_major)
            d = "bwd" if lc["go_backwards"] else "fwd"
            records.append(dict(layer=layer.name, mask=m, halves=[
                dict(direction=d, cfg=lc, gates=gates, outs=outs, c=c, sub=layer)]))
            cur = y
            if not lc["return_sequences"]:
                mask = None
        elif cls == "Bidirectional":
            m = mask if mask is not None else np.ones((B, T), bool)
            halves = []
            ys = []
            for sub in (layer.forward_layer, layer.backward_layer):
                lc, gates, outs, y, c = run_lstm_layer(sub, cur, m, keras_major)
                d = "bwd" if lc["go_backwards"] else "fwd"
                halves.append(dict(direction=d, cfg=lc, gates=gates, outs=outs, c=c, sub=sub))
                ys.append(y)
            yf, yb = ys
            rs = layer.forward_layer.return_sequences
            if rs:
                yb = yb[:, ::-1]
            mode = layer.merge_mode
            if mode == "concat":
                cur = np.concatenate([yf, yb], axis=-1)
            elif mode == "sum":
                cur = yf + yb
            elif mode == "ave":
                cur = (yf + yb) / 2.0
            elif mode == "mul":
                cur = yf * yb
            else:
                raise ValueError(f"merge_mode {mode!r} not supported")
            records.append(dict(layer=layer.name, mask=m, halves=halves))
            if not rs:
                mask = None
        elif cls == "Dense":
            w = layer.get_weights()
            cur = cur @ w[0].astype(np.float64)
            if cfg.get("use_bias", True):
                cur = cur + w[1].astype(np.float64)
            cur = activation(act_name(cfg.get("activation")), cur, keras_major)
        elif cls == "TimeDistributed":
            inner = layer.layer
            if type(inner).__name__ != "Dense":
                raise ValueError("TimeDistributed only supported around Dense")
            w = inner.get_weights()
            icfg = inner.get_config()
            cur = cur @ w[0].astype(np.float64)
            if icfg.get("use_bias", True):
                cur = cur + w[1].astype(np.float64)
            cur = activation(act_name(icfg.get("activation")), cur, keras_major)
        elif cls == "Activation":
            cur = activation(act_name(cfg.get("activation")), cur, keras_major)
        elif cls in ("Dropout", "GaussianNoise", "SpatialDropout1D", "GaussianDropout"):
            pass  # identity at inference, mask passes through
        else:
            raise ValueError(f"layer class {cls} not supported by the reference")
        outputs[layer.name] = cur
    return cur, records, outputs


# --------------------------------------------------------------------------
# cases
# --------------------------------------------------------------------------

def rand_weights(model, rng, scales=None):
    """Random weights for every layer (in model.layers order), scaled so that
    gate pre-activations have std of roughly 1.5-2 (gates are far from 0.5)."""
    scales = scales or {}
    for layer in model.layers:
        cls = type(layer).__name__
        subs = []
        if cls == "LSTM":
            subs = [layer]
        elif cls == "Bidirectional":
            subs = [layer.forward_layer, layer.backward_layer]
        elif cls == "TimeDistributed":
            subs = [layer.layer]
        elif cls in ("Dense", "Embedding"):
            subs = [layer]
        for sub in subs:
            s = scales.get(layer.name, 1.0)
            new = []
            scls = type(sub).__name__
            for j, w in enumerate(sub.get_weights()):
                if scls == "Embedding":
                    a = rng.normal(0.0, 1.0, w.shape)
                elif w.ndim == 2:
                    if scls == "LSTM" and j == 1:
                        a = rng.normal(0.0, 1.4 / math.sqrt(w.shape[0]), w.shape)
                    else:
                        a = rng.normal(0.0, 1.7 / math.sqrt(w.shape[0]), w.shape)
                    a = a * s
                else:  # bias
                    a = rng.normal(0.0, 0.6, w.shape) * s
                new.append(a.astype(np.float32))
            if new:
                sub.set_weights(new)


def float_input(rng, b, t, f, lengths=None, zero_steps=()):
    x = rng.normal(0.0, 1.0, (b, t, f)).astype(np.float32)
    if lengths is not None:
        for r, n in enumerate(lengths):
            x[r, n:] = 0.0
    for r, s in zero_steps:
        x[r, s] = 0.0
    return x


def token_input(rng, b, t, vocab, lengths):
    x = rng.integers(1, vocab, (b, t)).astype(np.int32)
    for r, n in enumerate(lengths):
        x[r, n:] = 0
    return x


def case_odd_units_relu(K, rng):
    inp = K.Input(shape=(7, 4), name="x")
    h = K.layers.LSTM(33, activation="relu", return_sequences=True, name="lstm_relu")(inp)
    y = K.layers.Dense(3, name="dense")(h)
    model = K.Model(inp, y, name="odd_units_relu")
    rand_weights(model, rng, {"lstm_relu": 0.8})
    return model, float_input(rng, 3, 7, 4)


def case_no_bias(K, rng):
    inp = K.Input(shape=(6, 3), name="x")
    h = K.layers.LSTM(7, use_bias=False, name="lstm_nobias")(inp)
    y = K.layers.Dense(2, activation="tanh", name="dense_tanh")(h)
    model = K.Model(inp, y, name="no_bias")
    rand_weights(model, rng)
    return model, float_input(rng, 2, 6, 3)


def case_hard_sigmoid_k3(K, rng):
    inp = K.Input(shape=(8, 4), name="x")
    h = K.layers.LSTM(6, recurrent_activation="hard_sigmoid", return_sequences=True,
                      name="lstm_hs")(inp)
    y = K.layers.LSTM(4, name="lstm_last")(h)
    model = K.Model(inp, y, name="hard_sigmoid_k3")
    # larger weights: Keras 3 hard_sigmoid saturates only at |z| > 3
    rand_weights(model, rng, {"lstm_hs": 2.0, "lstm_last": 1.5})
    return model, float_input(rng, 3, 8, 4)


def case_backwards_masked(K, rng):
    inp = K.Input(shape=(9, 3), name="x")
    m = K.layers.Masking(0.0, name="masking")(inp)
    h = K.layers.LSTM(5, go_backwards=True, return_sequences=True, name="back_seq")(m)
    y = K.layers.LSTM(3, go_backwards=True, name="back_last")(h)
    model = K.Model(inp, y, name="backwards_masked")
    rand_weights(model, rng, {"back_last": 2.2})
    # row 1 has an interior all-zero step (masked by Keras like padding)
    x = float_input(rng, 4, 9, 3, lengths=[9, 6, 4, 8], zero_steps=[(1, 2), (3, 0)])
    return model, x


def _bi(K, rng, mode, masked, name):
    inp = K.Input(shape=(6, 3), name="x")
    h = inp
    if masked:
        h = K.layers.Masking(0.0, name="masking")(h)
    y = K.layers.Bidirectional(K.layers.LSTM(4, return_sequences=True, name="lstm"),
                               merge_mode=mode, name="bi")(h)
    model = K.Model(inp, y, name=name)
    rand_weights(model, rng)
    x = float_input(rng, 3, 6, 3, lengths=[6, 4, 5] if masked else None)
    return model, x


def case_bi_sum(K, rng):
    return _bi(K, rng, "sum", False, "bi_sum")


def case_bi_ave(K, rng):
    return _bi(K, rng, "ave", True, "bi_ave")


def case_bi_mul(K, rng):
    return _bi(K, rng, "mul", False, "bi_mul")


def case_bi_concat_masked(K, rng):
    inp = K.Input(shape=(8,), dtype="int32", name="tokens")
    e = K.layers.Embedding(12, 3, mask_zero=True, name="embed")(inp)
    h = K.layers.Bidirectional(K.layers.LSTM(4, return_sequences=True, name="lstm"),
                               merge_mode="concat", name="bi")(e)
    y = K.layers.TimeDistributed(K.layers.Dense(5, activation="softmax", name="dense"),
                                 name="td")(h)
    model = K.Model(inp, y, name="bi_concat_masked")
    rand_weights(model, rng)
    return model, token_input(rng, 3, 8, 12, lengths=[8, 5, 2])


def case_activations_dense(K, rng):
    inp = K.Input(shape=(5, 4), name="x")
    h = K.layers.LSTM(6, activation="softsign", recurrent_activation="sigmoid",
                      return_sequences=True, name="lstm_softsign")(inp)
    h = K.layers.Dropout(0.3, name="dropout")(h)
    h = K.layers.Dense(8, activation="elu", name="dense_elu")(h)
    h = K.layers.Activation("selu", name="act_selu")(h)
    h = K.layers.Dense(4, activation="gelu", name="dense_gelu")(h)
    y = K.layers.Dense(3, activation="softplus", name="dense_softplus")(h)
    model = K.Model(inp, y, name="activations_dense")
    rand_weights(model, rng, {"dense_elu": 1.5, "dense_gelu": 1.5})
    return model, float_input(rng, 2, 5, 4)


def case_sequential_k3(K, rng):
    model = K.Sequential([
        K.Input(shape=(7, 3), name="x"),
        K.layers.Masking(0.0, name="masking"),
        K.layers.LSTM(5, return_sequences=True, name="lstm_seq"),
        K.layers.GaussianNoise(0.1, name="noise"),
        K.layers.SpatialDropout1D(0.2, name="spatial_dropout"),
        K.layers.LSTM(4, name="lstm_last"),
        K.layers.Dense(2, activation="sigmoid", name="dense_sigmoid"),
    ], name="sequential_k3")
    rand_weights(model, rng, {"lstm_last": 2.2})
    return model, float_input(rng, 3, 7, 3, lengths=[7, 3, 5])


def case_same_model(K, rng):
    """Built identically by Keras 3 and tf-keras; weights depend only on rng."""
    inp = K.Input(shape=(7, 3), name="x")
    m = K.layers.Masking(0.0, name="masking")(inp)
    h = K.layers.LSTM(5, recurrent_activation="hard_sigmoid", return_sequences=True,
                      name="lstm_hs")(m)
    h = K.layers.LSTM(4, recurrent_activation="hard_sigmoid", name="lstm_hs_last")(h)
    y = K.layers.Dense(2, name="dense")(h)
    model = K.Model(inp, y, name="same_model")
    rand_weights(model, rng, {"lstm_hs": 1.8, "lstm_hs_last": 2.2})
    return model, float_input(rng, 3, 7, 3, lengths=[7, 5, 3])


def case_keras2_bidirectional(K, rng):
    inp = K.Input(shape=(7,), dtype="int32", name="tokens")
    e = K.layers.Embedding(10, 3, mask_zero=True, name="embed")(inp)
    h = K.layers.Bidirectional(K.layers.LSTM(4, return_sequences=True, name="lstm"),
                               merge_mode="concat", name="bi")(e)
    h = K.layers.LSTM(3, name="lstm_last")(h)
    y = K.layers.Dense(2, name="dense")(h)
    model = K.Model(inp, y, name="keras2_bidirectional")
    rand_weights(model, rng, {"lstm_last": 2.0})
    return model, token_input(rng, 3, 7, 10, lengths=[7, 4, 6])


# name -> (builder, seed, keras major version, description for the README)
CASES = {
    "odd_units_relu": (case_odd_units_relu, 101, 3,
                       "LSTM(33, activation=relu, seq) -> Dense(3) on the 3-D output; float input 3x7x4"),
    "no_bias": (case_no_bias, 102, 3,
                "LSTM(7, use_bias=False) -> Dense(2, tanh); float input 2x6x3"),
    "hard_sigmoid_k3": (case_hard_sigmoid_k3, 103, 3,
                        "LSTM(6, recurrent_activation=hard_sigmoid, seq) -> LSTM(4); Keras 3 hard_sigmoid clip(x/6+0.5); 3x8x4"),
    "backwards_masked": (case_backwards_masked, 104, 3,
                         "Masking(0) -> LSTM(5, go_backwards, seq) -> LSTM(3, go_backwards); lengths 9,6,4,8 plus interior all-zero steps (row 1 t=2, row 3 t=0); 4x9x3"),
    "bi_sum": (case_bi_sum, 105, 3, "Bidirectional(LSTM(4, seq), merge_mode=sum); float input 3x6x3, no mask"),
    "bi_ave": (case_bi_ave, 106, 3,
               "Masking(0) -> Bidirectional(LSTM(4, seq), merge_mode=ave); lengths 6,4,5 (zero outputs at masked steps); 3x6x3"),
    "bi_mul": (case_bi_mul, 107, 3, "Bidirectional(LSTM(4, seq), merge_mode=mul); float input 3x6x3, no mask"),
    "bi_concat_masked": (case_bi_concat_masked, 108, 3,
                         "int tokens -> Embedding(12, 3, mask_zero) -> Bidirectional(LSTM(4, seq), concat) -> TimeDistributed(Dense(5, softmax)); lengths 8,5,2"),
    "activations_dense": (case_activations_dense, 109, 3,
                          "LSTM(6, softsign/sigmoid, seq) -> Dropout -> Dense(8, elu) -> Activation(selu) -> Dense(4, gelu exact) -> Dense(3, softplus); 2x5x4"),
    "sequential_k3": (case_sequential_k3, 110, 3,
                      "Sequential: Input -> Masking -> LSTM(5, seq) -> GaussianNoise(0.1) -> SpatialDropout1D(0.2) -> LSTM(4) -> Dense(2, sigmoid); lengths 7,3,5"),
    "same_model_k3": (case_same_model, 111, 3,
                      "Masking -> LSTM(5, hard_sigmoid, seq) -> LSTM(4, hard_sigmoid) -> Dense(2), saved by Keras 3 (.keras + .h5); same weights/input as same_model_k2, expected values differ (hard_sigmoid x/6+0.5)"),
    "same_model_k2": (case_same_model, 111, 2,
                      "the same model, weights and input as same_model_k3 saved by tf-keras 2.21 (legacy .h5 only); hard_sigmoid 0.2x+0.5"),
    "keras2_bidirectional": (case_keras2_bidirectional, 112, 2,
                             "tf-keras: int tokens -> Embedding(10, 3, mask_zero) -> Bidirectional(LSTM(4, seq), concat) -> LSTM(3) -> Dense(2); legacy .h5 only; lengths 7,4,6"),
}


# --------------------------------------------------------------------------
# generation + verification (runs with Keras 3 or, with --keras2, tf-keras)
# --------------------------------------------------------------------------

def import_keras(major):
    if major == 3:
        os.environ.setdefault("KERAS_BACKEND", "jax")
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        if os.environ["KERAS_BACKEND"] != "jax":
            sys.exit("set KERAS_BACKEND=jax")
        import keras as K
        return K, K.__version__, K.backend.backend()
    import tf_keras as K
    return K, K.__version__, "tensorflow"


def maxdiff(a, b):
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    if a.shape != b.shape:
        raise AssertionError(f"shape mismatch {a.shape} vs {b.shape}")
    return float(np.max(np.abs(a - b))) if a.size else 0.0


def verify(K, model, x, y_keras, y_np, records, outputs, report):
    """Compare numpy against Keras; raise AssertionError beyond TOL."""
    diffs = {"y": maxdiff(y_keras, y_np)}
    for layer in model.layers:
        if type(layer).__name__ not in ("LSTM", "Bidirectional"):
            continue
        sub = K.Model(model.inputs, layer.output)
        out = sub.predict(x, verbose=0)
        diffs[f"out:{layer.name}"] = maxdiff(out, outputs[layer.name])
    # probe: a copy of each LSTM returning every step + final states, fed the
    # layer's input (numpy, float32) and mask: checks every h and the final c.
    for rec in records:
        inp = rec["probe_input"]
        for half in rec["halves"]:
            lay = half["sub"]
            cfg = lay.get_config()
            cfg.update(return_sequences=True, return_state=True, name=lay.name + "_probe")
            probe = type(lay).from_config(cfg)
            probe.zero_output_for_mask = lay.zero_output_for_mask
            x32 = inp.astype(np.float32)
            probe(x32)
            probe.set_weights(lay.get_weights())
            seq, _, c = probe(x32, mask=rec["mask"])
            seq = np.asarray(seq)
            c = np.asarray(c)
            key = f"{rec['layer']}/{half['direction']}"
            diffs[f"probe_seq:{key}"] = maxdiff(seq, half["outs"])
            diffs[f"probe_c:{key}"] = maxdiff(c, half["c"])
    worst = max(diffs.values())
    report["diffs"] = diffs
    report["max_abs_diff"] = worst
    bad = {k: v for k, v in diffs.items() if not v <= TOL}
    if bad:
        raise AssertionError(f"numpy reference disagrees with Keras beyond {TOL}: {bad}")


def gate_stats(records):
    s = {}
    for rec in records:
        for half in rec["halves"]:
            key = f"{rec['layer']}/{half['direction']}"
            g = half["gates"]
            vals = np.concatenate([g[q][np.isfinite(g[q])] for q in "ifo"])
            s[key] = dict(std_ifo=round(float(vals.std()), 3),
                          frac_ifo_outside_0p2_0p8=round(float(np.mean((vals < 0.2) | (vals > 0.8))), 3),
                          frac_ifo_saturated=round(float(np.mean((vals == 0) | (vals == 1))), 3),
                          max_abs_c=round(float(np.nanmax(np.abs(g["c"]))), 3))
    return s


def make_case(name, out_dir, K, kversion, backend, major):
    builder, seed, cmajor, _ = CASES[name]
    assert cmajor == major
    rng = np.random.default_rng(seed)
    model, x = builder(K, rng)
    y_np, records, outputs = reference_forward(model, x, major)
    # inputs to each recurrent layer (for the probe check)
    cur_inputs = {}
    prev = np.asarray(x)
    for layer in model.layers:
        if type(layer).__name__ == "InputLayer":
            continue
        cur_inputs[layer.name] = prev
        prev = outputs[layer.name]
    for rec in records:
        rec["probe_input"] = cur_inputs[rec["layer"]]
    y_keras = model.predict(x, verbose=0)
    report = {"case": name}
    verify(K, model, x, y_keras, y_np, records, outputs, report)
    report["gate_stats"] = gate_stats(records)

    d = os.path.join(out_dir, name)
    if os.path.isdir(d):
        shutil.rmtree(d)
    os.makedirs(d)
    if major == 3:
        model.save(os.path.join(d, "model.keras"))
        model.save(os.path.join(d, "model.h5"))
    else:
        model.save(os.path.join(d, "model.h5"), save_format="h5")
    np.save(os.path.join(d, "input.npy"), x)
    arrays = {"x": x, "y": np.asarray(y_keras, np.float32)}
    layers_meta = []
    for rec in records:
        for half in rec["halves"]:
            for q in "ifgoch":
                arrays[f"gates__{rec['layer']}__{half['direction']}__{q}"] = \
                    half["gates"][q].astype(np.float32)
            cfg = half["cfg"]
            layers_meta.append(dict(layer=rec["layer"], direction=half["direction"],
                                    units=cfg["units"], activation=cfg["activation"],
                                    recurrent_activation=cfg["recurrent_activation"],
                                    go_backwards=cfg["go_backwards"]))
        arrays[f"mask__{rec['layer']}"] = rec["mask"].astype(bool)
    np.savez_compressed(os.path.join(d, "expected.npz"), **arrays)
    meta = dict(case=name, keras_version=kversion, backend=backend,
                input_shape=list(x.shape), input_dtype=str(x.dtype), layers=layers_meta)
    with open(os.path.join(d, "meta.json"), "w") as fh:
        json.dump(meta, fh, indent=1)
    # reload check: the saved files give the same predictions
    for fn in (["model.keras", "model.h5"] if major == 3 else ["model.h5"]):
        path = os.path.join(d, fn)
        try:
            m2 = K.models.load_model(path, compile=False)
        except Exception as e:  # noqa: BLE001
            # Keras 3.15 writes masked functional models to legacy .h5 with
            # op layers (NotEqual, Any) that its own loader does not know.
            # The file is kept (the Swift loader reads it); check its weights.
            report[f"load_model_failed:{fn}"] = f"{type(e).__name__}: {str(e)[:80]}"
            m2 = K.models.clone_model(model)
            m2.load_weights(path)
        report[f"reload:{fn}"] = maxdiff(m2.predict(x, verbose=0), y_keras)
        if report[f"reload:{fn}"] > TOL:
            raise AssertionError(f"{name}: reloaded {fn} predicts differently")
    report["bytes"] = sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d))
    return report


def run_cases(names, out_dir, major):
    K, kversion, backend = import_keras(major)
    reports = []
    for name in names:
        K.utils.set_random_seed(CASES[name][1])
        rep = make_case(name, out_dir, K, kversion, backend, major)
        print(json.dumps(rep), flush=True)
        reports.append(rep)
    return reports


def h5_weights(path):
    """Datasets under model_weights/, keyed by (top layer, basename w/o ':0')."""
    import h5py
    out = {}
    with h5py.File(path, "r") as f:
        g = f["model_weights"]
        for lname in g:
            def visit(n, obj, lname=lname):
                if isinstance(obj, h5py.Dataset):
                    parts = n.split("/")
                    # Bidirectional: keep forward/backward in the key
                    tag = "bwd" if any("backward" in p for p in parts) else "fwd"
                    out[(lname, tag, parts[-1].split(":")[0])] = obj[()]
            g[lname].visititems(visit)
    return out


def check_same_model(out_dir):
    a = os.path.join(out_dir, "same_model_k2")
    b = os.path.join(out_dir, "same_model_k3")
    if not (os.path.isdir(a) and os.path.isdir(b)):
        return None
    xa, xb = np.load(os.path.join(a, "input.npy")), np.load(os.path.join(b, "input.npy"))
    assert np.array_equal(xa, xb), "same_model: inputs differ"
    wa, wb = h5_weights(os.path.join(a, "model.h5")), h5_weights(os.path.join(b, "model.h5"))
    assert sorted(wa) == sorted(wb), f"same_model: weight names differ {sorted(wa)} {sorted(wb)}"
    for k in wa:
        assert np.array_equal(wa[k], wb[k]), f"same_model: weight {k} differs"
    ya = np.load(os.path.join(a, "expected.npz"))["y"]
    yb = np.load(os.path.join(b, "expected.npz"))["y"]
    d = float(np.max(np.abs(ya - yb)))
    assert d > 1e-3, "same_model: Keras 2 and Keras 3 outputs should differ (hard_sigmoid)"
    return d


def check_shared(out_dir, major):
    """Run the numpy reference on the copied shared cases of Keras `major`
    and compare with their expected.npz (gates, masks, y)."""
    K, _, _ = import_keras(major)
    for c in SHARED_CASES:
        d = os.path.join(out_dir, c)
        if not os.path.isdir(d):
            continue
        with open(os.path.join(d, "meta.json")) as fh:
            meta = json.load(fh)
        if int(meta["keras_version"].split(".")[0]) != major:
            continue
        fn = "model.keras" if os.path.exists(os.path.join(d, "model.keras")) else "model.h5"
        model = K.models.load_model(os.path.join(d, fn), compile=False)
        z = np.load(os.path.join(d, "expected.npz"))
        y, records, _ = reference_forward(model, z["x"], major)
        worst = maxdiff(y, z["y"])
        for rec in records:
            assert np.array_equal(rec["mask"], z[f"mask__{rec['layer']}"]), (c, rec["layer"])
            for half in rec["halves"]:
                for q in "ifgoch":
                    a = half["gates"][q]
                    b = z[f"gates__{rec['layer']}__{half['direction']}__{q}"]
                    assert np.array_equal(np.isnan(a), np.isnan(b)), (c, rec["layer"], q)
                    worst = max(worst, float(np.nanmax(np.abs(a - b))))
        print(f"check-shared {c}: max |numpy reference - shared expected| = {worst:.2e}")
        if worst > TOL:
            raise AssertionError(f"{c}: reference disagrees with the shared fixture")


def copy_shared(shared_dir, out_dir):
    for c in SHARED_CASES:
        src = os.path.join(shared_dir, c)
        dst = os.path.join(out_dir, c)
        if os.path.isdir(dst):
            shutil.rmtree(dst)
        shutil.copytree(src, dst)
        for f in os.listdir(dst):  # shared/ is read-only; make the copies writable
            os.chmod(os.path.join(dst, f), 0o644)
        os.chmod(dst, 0o755)
        print(f"copied {src} -> {dst}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=DEFAULT_OUT)
    ap.add_argument("--only", nargs="*")
    ap.add_argument("--copy-shared", action="store_true")
    ap.add_argument("--shared", default=DEFAULT_SHARED)
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--check-shared", action="store_true",
                    help="also run the numpy reference on the copied shared cases "
                         "and compare with their expected.npz")
    ap.add_argument("--keras2", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.list:
        for n, (_, _, major, desc) in CASES.items():
            print(f"{n}  (Keras {major})  {desc}")
        return
    names = args.only if args.only is not None else list(CASES)
    unknown = [n for n in names if n not in CASES]
    if unknown:
        sys.exit(f"unknown case(s): {unknown}")
    os.makedirs(args.out, exist_ok=True)

    if args.keras2:  # child process: tf-keras only
        run_cases([n for n in names if CASES[n][2] == 2], args.out, 2)
        if args.check_shared:
            check_shared(args.out, 2)
        return

    if args.copy_shared:
        copy_shared(args.shared, args.out)
    k3 = [n for n in names if CASES[n][2] == 3]
    k2 = [n for n in names if CASES[n][2] == 2]
    if k3:
        run_cases(k3, args.out, 3)
    if args.check_shared:
        check_shared(args.out, 3)
    if k2 or args.check_shared:
        env = dict(os.environ, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="2",
                   TF_ENABLE_ONEDNN_OPTS="0", CUDA_VISIBLE_DEVICES="")
        env.pop("KERAS_BACKEND", None)
        cmd = [sys.executable, os.path.abspath(__file__), "--keras2", "--out", args.out]
        if args.check_shared:
            cmd.append("--check-shared")
        if k2:
            cmd += ["--only", *k2]
        else:
            cmd += ["--only"]  # no Keras 2 case to make, only the check
        r = subprocess.run(cmd, env=env)
        if r.returncode != 0:
            sys.exit(f"Keras 2 (tf-keras) part failed with exit code {r.returncode}")
    d = check_same_model(args.out)
    if d is not None:
        print(f"same_model_k2 vs same_model_k3: identical weights and input, "
              f"max |y_k2 - y_k3| = {d:.4f} (hard_sigmoid definitions differ)")
    total = 0
    for root, _, files in os.walk(args.out):
        total += sum(os.path.getsize(os.path.join(root, f)) for f in files)
    print(f"total size of {args.out}: {total} bytes")


if __name__ == "__main__":
    main()
