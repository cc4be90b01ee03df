#!/usr/bin/env python3
"""Generate the ONNX fixture Tests/Fixtures/torch/onnx_tf2onnx_lstm (a Keras model converted by tf2onnx).

Run (from the repository root):

    nice python3 scripts/make_tf2onnx_fixture.py            # writes the case folder
    nice python3 scripts/make_tf2onnx_fixture.py --out DIR  # another parent folder

Python packages (pip): tensorflow-cpu (Keras 3 with the TensorFlow backend), tf2onnx, onnx,
onnxruntime, numpy. The versions used are written into meta.json.

Model: keras.Input((None, 3)) -> LSTM(5, return_sequences=True) -> LSTM(4) -> Dense(2), fixed seeds
(random biases, so the bias paths are exercised), converted with tf2onnx.convert.from_keras (opset 17,
dynamic batch and time axes); the inputs are x float32 [3, 6, 3] (numpy default_rng).

Same conventions as the ONNX cases of scripts/make_torch_fixtures.py (see Tests/Fixtures/torch/README.md;
the ONNX reference and check code is shared with that script through scripts/onnx_reference.py, which does
not import torch):
  * gates: float64 numpy run of every ONNX LSTM node from the graph's initializers, following the
    ONNX operator spec (W/R/B gate order i o f c), on the node's actual inputs (X, initial_h/c as
    onnxruntime computes them, exposed as extra graph outputs in a copy of the model);
  * numpy's Y / Y_h / Y_c of every node must match onnxruntime's values of that node within 1e-5, and
    every single step is re-run by onnxruntime with a one-step copy of the node started from numpy's
    state before that step (h and c after the step, 1e-5);
  * Keras side: the ONNX gates must equal the gates computed in float64 from the Keras layers' own
    weights (Keras gate order i f c o in kernel / recurrent_kernel / bias; ONNX node k = Keras LSTM k),
    that numpy run must match Keras's own layer outputs (float32, 1e-5), and onnxruntime's graph
    output must match Keras's model.predict (1e-5).
Reproducibility: weights, inputs.npz and expected.npz are byte-identical between runs, and so are the LSTM
node names, but tf2onnx 1.17's conversion is not deterministic (even for the same frozen TF graph, in one
process): which of the equal zero-state constants / Expand nodes survives its duplicate merging, and some
auxiliary node / initializer names (Unsqueeze__NN, const_axes__NN), vary from run to run; model.onnx and the
"nodes" list of meta.json can therefore differ by those names only.
The script raises on any failure. This case is not in make_torch_fixtures.py's CASES, so rebuilding the
README with that script drops its section; re-append it with this script's --readme-section output.
"""

import argparse
import collections
import io
import json
import os
import sys
import tempfile
import warnings
import zipfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import numpy as np  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DEFAULT_OUT = os.path.join(ROOT, "Tests", "Fixtures", "torch")
CASE = "onnx_tf2onnx_lstm"
TOL32 = 1e-5
TOL64 = 1e-10
SEED = 20
OPSET = 17

warnings.filterwarnings("ignore")

import tensorflow as tf  # noqa: E402
import keras  # noqa: E402
import tf2onnx  # noqa: E402
import onnx  # noqa: E402
from onnx import TensorProto  # noqa: E402
import onnxruntime as ort  # noqa: E402

tf.config.threading.set_intra_op_parallelism_threads(1)
tf.config.threading.set_inter_op_parallelism_threads(1)

# the float64 ONNX reference and its onnxruntime checks (shared with make_torch_fixtures.py)
sys.path.insert(0, HERE)
from onnx_reference import (  # noqa: E402
    PLANES, ONNX_CELL, sigmoid, node_attrs, layer_name, onnx_node_reference, ort_session,
    ort_compatible, real_inputs, onnx_values, onnx_step_probe,
)


def versions():
    import google.protobuf
    return {"tensorflow": tf.__version__, "keras": keras.__version__, "tf2onnx": tf2onnx.__version__,
            "onnx": onnx.__version__, "onnxruntime": ort.__version__, "protobuf": google.protobuf.__version__,
            "numpy": np.__version__, "python": sys.version.split()[0]}


# --------------------------------------------------------------------------- files
# (copied from scripts/make_torch_fixtures.py)

def write_npz(path, arrays):
    """np.savez_compressed layout, but with fixed zip timestamps (byte-reproducible)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for key, arr in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(arr), allow_pickle=False)
            zi = zipfile.ZipInfo(key + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            zi.compress_type = zipfile.ZIP_DEFLATED
            zi.external_attr = 0o644 << 16
            zf.writestr(zi, buf.getvalue())


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=1)
        f.write("\n")


class Checks:
    """Largest |difference| per named check; raises when one exceeds its tolerance."""

    def __init__(self, case):
        self.case = case
        self.items = collections.OrderedDict()

    def cmp(self, key, a, b, tol):
        a = np.asarray(a, dtype=np.float64)
        b = np.asarray(b, dtype=np.float64)
        if a.shape != b.shape:
            raise AssertionError(f"{self.case}: {key}: shape {a.shape} != {b.shape}")
        na, nb = np.isnan(a), np.isnan(b)
        if (na != nb).any():
            raise AssertionError(f"{self.case}: {key}: NaN positions differ")
        d = np.abs(a - b)[~na]
        m = float(d.max()) if d.size else 0.0
        prev = self.items.get(key)
        self.items[key] = {"check": key, "max_abs_diff": max(m, prev["max_abs_diff"]) if prev else m,
                           "tol": tol, "count": (prev["count"] if prev else 0) + int(d.size)}
        if not m <= tol:
            raise AssertionError(f"{self.case}: {key}: max |diff| {m:.3g} > tol {tol:g}")

    def report(self):
        for it in self.items.values():
            print(f"    {it['max_abs_diff']:9.3g}  (tol {it['tol']:g}, {it['count']} values)  {it['check']}")
        return [{"check": it["check"], "max_abs_diff": float(f"{it['max_abs_diff']:.3g}"),
                 "tol": it["tol"], "values": it["count"]} for it in self.items.values()]


# --------------------------------------------------------------------------- Keras side

GATESCOPE_ONNX_OPS = set(
    "LSTM GRU RNN Gather MatMul Gemm Add Sub Mul Div Transpose Reshape Squeeze Unsqueeze Concat Slice Split "
    "Shape Constant ConstantOfShape Expand Cast Identity Flatten Relu Tanh Sigmoid Softmax LogSoftmax Greater "
    "Less Clip ReduceSum Equal Where Dropout".split())

DESCRIPTION = (
    "Keras 3 model keras.Input((None, 3), name='x') -> LSTM(5, return_sequences=True) -> LSTM(4) -> Dense(2) "
    "(random biases), converted by tf2onnx.convert.from_keras (opset 17, input_signature "
    "TensorSpec((None, None, 3), name='x'): dynamic batch/time axes); float input x [batch, time, 3], "
    "output head [batch, 2]. tf2onnx rewrites each Keras LSTM into an ONNX LSTM node (time-major, between "
    "Transposes; initial_h = initial_c = zeros Expanded to the batch size).")

METHOD = (
    "Gates: float64 numpy run of every LSTM/GRU/RNN node from the ONNX initializers, following the "
    "ONNX operator spec, on the node's actual inputs (X, initial_h/c as onnxruntime computes them, "
    "exposed as extra graph outputs). Checked: numpy's Y, Y_h (and Y_c) against onnxruntime's outputs "
    "of the same node (tol 1e-5); every step re-run by onnxruntime with a one-step copy of the node "
    "(same attributes and weights) started from numpy's state before that step (h and c after the "
    "step, tol 1e-5). y__* are onnxruntime's graph outputs. Also: the ONNX gates equal the gates computed "
    "in float64 from the Keras layers' own weights (Keras gate order i f c o, tol 1e-5; ONNX LSTM node k = "
    "Keras LSTM layer k), that Keras-weights run matches the Keras layers' own float32 outputs (1e-5), and "
    "onnxruntime's graph output matches Keras's model.predict (tol 1e-5).")


def build_keras_model():
    keras.utils.set_random_seed(SEED)
    init = keras.initializers

    def lstm(units, name, k, **kw):
        return keras.layers.LSTM(units, name=name, kernel_initializer=init.GlorotUniform(seed=SEED + k),
                                 recurrent_initializer=init.Orthogonal(seed=SEED + 10 + k),
                                 bias_initializer=init.RandomUniform(-0.5, 0.5, seed=SEED + 20 + k), **kw)

    x = keras.Input((None, 3), name="x")
    a = lstm(5, "lstm_a", 0, return_sequences=True)(x)
    b = lstm(4, "lstm_b", 1)(a)
    y = keras.layers.Dense(2, name="head", kernel_initializer=init.GlorotUniform(seed=SEED + 30),
                           bias_initializer=init.RandomUniform(-0.5, 0.5, seed=SEED + 31))(b)
    return keras.Model(x, y, name="tf2onnx_lstm")


def keras_lstm_reference(x, layer):
    """Keras LSTM in float64 from its weights (kernel [In,4H], recurrent_kernel [H,4H], bias [4H]; i f c o)."""
    K, R, bvec = (np.asarray(w, dtype=np.float64) for w in layer.get_weights())
    assert layer.activation.__name__ == "tanh" and layer.recurrent_activation.__name__ == "sigmoid"
    B, T, _ = x.shape
    H = R.shape[0]
    planes = {q: np.full((B, T, H), np.nan) for q in PLANES["lstm"]}
    h, c = np.zeros((B, H)), np.zeros((B, H))
    for t in range(T):
        z = x[:, t] @ K + h @ R + bvec
        i, f, g, o = sigmoid(z[:, :H]), sigmoid(z[:, H:2 * H]), np.tanh(z[:, 2 * H:3 * H]), sigmoid(z[:, 3 * H:])
        c = f * c + i * g
        h = o * np.tanh(c)
        for q, v in zip("ifgoch", (i, f, g, o, c, h)):
            planes[q][:, t] = v
    return planes


def convert(model, tmp):
    spec = (tf.TensorSpec((None, None, 3), tf.float32, name="x"),)
    path = os.path.join(tmp, "model.onnx")
    proto, external = tf2onnx.convert.from_keras(model, input_signature=spec, opset=OPSET, output_path=path)
    assert not external, "tf2onnx wrote external tensor storage"
    return onnx.load(path)


# --------------------------------------------------------------------------- the case

def make_case(out):
    d = os.path.join(out, CASE)
    os.makedirs(d, exist_ok=True)
    for f in os.listdir(d):
        os.remove(os.path.join(d, f))
    tmp = tempfile.mkdtemp(prefix="gatescope-tf2onnx-")
    checks = Checks(CASE)

    kmodel = build_keras_model()
    x = np.random.default_rng(SEED).standard_normal((3, 6, 3)).astype(np.float32)
    k_lstms = [l for l in kmodel.layers if isinstance(l, keras.layers.LSTM)]
    k_pred = kmodel.predict(x, verbose=0)
    k_inner = keras.Model(kmodel.inputs, [l.output for l in k_lstms]).predict(x, verbose=0)
    # Keras-weights float64 reference, layer by layer (each layer fed by the previous layer's float64 h)
    k_refs, h = [], x.astype(np.float64)
    for layer, got in zip(k_lstms, k_inner):
        p = keras_lstm_reference(h, layer)
        k_refs.append(p)
        mine = p["h"] if layer.return_sequences else p["h"][:, -1]
        checks.cmp("Keras-weights numpy float64 vs Keras float32 layer outputs", mine, got, TOL32)
        h = p["h"]

    model = convert(kmodel, tmp)
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("LSTM") == len(k_lstms), f"tf2onnx did not make one LSTM node per Keras LSTM: {ops}"
    assert not {"Loop", "Scan"} & set(ops), ops

    onnx.checker.check_model(model)
    onnx.save(model, os.path.join(d, "model.onnx"))  # one self-contained file (no external data)
    model = onnx.load(os.path.join(d, "model.onnx"))
    assert not any(t.data_location == TensorProto.EXTERNAL for t in model.graph.initializer)
    inputs = real_inputs(model)
    feeds = collections.OrderedDict([("x", x)])
    assert [i.name for i in inputs] == list(feeds), (list(feeds), [i.name for i in inputs])
    write_npz(os.path.join(d, "inputs.npz"), feeds)
    ort_model, rewritten = ort_compatible(model)
    sess = ort_session(ort_model)
    out_names = [o.name for o in model.graph.output]
    y = sess.run(out_names, feeds)
    expected = collections.OrderedDict((f"y__{n}", v) for n, v in zip(out_names, y))
    assert len(y) == 1
    checks.cmp(f"onnxruntime graph output vs Keras model.predict: {out_names[0]}", y[0], k_pred, TOL32)

    rec = [(i, n) for i, n in enumerate(model.graph.node) if n.op_type in ONNX_CELL]
    vals, node_outs = onnx_values(model, feeds, rec)
    recurrent = []
    for k, ((idx, node), outs) in enumerate(zip(rec, node_outs)):
        ref = onnx_node_reference(node, vals)
        lname = layer_name(node, idx)
        for j, (mine, oname) in enumerate(zip(ref["outs"], outs)):
            label = ["Y", "Y_h", "Y_c"][j]
            checks.cmp(f"numpy float64 (ONNX spec, initializers) vs onnxruntime: {label} of every recurrent node",
                       mine, vals[oname], TOL32)
        onnx_step_probe(node, vals, ref, checks)
        at = node_attrs(node)
        cell = ONNX_CELL[node.op_type]
        assert list(ref["dirs"]) == ["fwd"]
        for q in PLANES[cell]:
            checks.cmp("ONNX gates vs gates from the Keras layers' weights (all planes)",
                       ref["dirs"]["fwd"]["planes"][q], k_refs[k][q], TOL32)
        for dn, r in ref["dirs"].items():
            for q in PLANES[cell]:
                expected[f"gates__{lname}__{dn}__{q}"] = r["planes"][q].astype(np.float32)
            entry = {"layer": lname, "direction": dn, "cell": cell, "units": ref["H"], "node_index": idx,
                     "op_type": node.op_type, "keras_layer": k_lstms[k].name}
            for key in ("layout", "clip", "input_forget", "linear_before_reset", "activations",
                        "activation_alpha", "activation_beta"):
                if key in at:
                    entry[key] = at[key]
            recurrent.append(entry)
        expected[f"mask__{lname}"] = ref["mask"]
    write_npz(os.path.join(d, "expected.npz"), expected)

    opset = [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")][0]
    meta = collections.OrderedDict(
        case=CASE, description=DESCRIPTION, kind="onnx", onnx_opset=opset, exporter="tf2onnx",
        exporter_version=tf2onnx.__version__, producer=f"{model.producer_name} {model.producer_version}",
        opset_imports={o.domain or "ai.onnx": o.version for o in model.opset_import},
        ir_version=model.ir_version,
        inputs=[{"name": i.name, "shape": list(feeds[i.name].shape), "dtype": str(feeds[i.name].dtype),
                 "graph_shape": [dd.dim_param if dd.dim_param else dd.dim_value
                                 for dd in i.type.tensor_type.shape.dim]} for i in inputs],
        outputs=out_names, recurrent=recurrent,
        op_types=sorted({n.op_type for n in model.graph.node}),
        nodes=[[n.name, n.op_type] for n in model.graph.node])
    if rewritten:
        meta["onnxruntime_note"] = ("onnxruntime refuses layout=1 recurrent nodes; every onnxruntime run used an "
                                    "equivalent graph: the node with layout=0 between Transposes")
    unsupported = [[n.name, n.op_type] for n in model.graph.node if n.op_type not in GATESCOPE_ONNX_OPS]
    meta["method"] = METHOD
    print(f"== {CASE}")
    meta["checks"] = checks.report()
    meta["versions"] = versions()
    write_json(os.path.join(d, "meta.json"), meta)
    for f in os.listdir(tmp):
        os.remove(os.path.join(tmp, f))
    os.rmdir(tmp)
    print("  nodes:", ", ".join(f"{n}:{o}" for n, o in meta["nodes"]))
    print("  ops outside GateScope's ONNX importer list:", unsupported if unsupported else "none")
    return meta


# --------------------------------------------------------------------------- README section

def fmt_size(n):
    return f"{n / 1024:.1f} KiB" if n >= 1024 else f"{n} B"


def readme_section(out, m):
    """The README section, formatted like make_torch_fixtures.py's write_readme."""
    d = os.path.join(out, m["case"])
    files = sorted(os.listdir(d))
    L = [f"### `{m['case']}` ({m['kind']}, exporter {m['exporter']} {m['exporter_version']}, opset {m['onnx_opset']})",
         "", m["description"], "",
         "Made by `scripts/make_tf2onnx_fixture.py` (not by make_torch_fixtures.py, which drops this section "
         "when it rebuilds the README; re-add it with `nice python3 scripts/make_tf2onnx_fixture.py --readme`). "
         "Versions: " + ", ".join(f"{k} {v}" for k, v in m["versions"].items()) + ".", "",
         "Files: " + ", ".join(f"`{f}` ({fmt_size(os.path.getsize(os.path.join(d, f)))})" for f in files) + ".", ""]
    layers = collections.OrderedDict()
    for r in m["recurrent"]:
        layers.setdefault((r["layer"], r["cell"], r["units"], r["keras_layer"]), []).append(r["direction"])
    L += ["Recurrent layers: " + "; ".join(f"`{k[0]}` {k[1]} {k[2]} units ({'+'.join(v)}; Keras `{k[3]}`)"
                                           for k, v in layers.items()) + ".", ""]
    L += ["Op types: " + ", ".join(m["op_types"]) + ".", ""]
    extra = [k for k in m["opset_imports"] if k != "ai.onnx"]
    if extra:
        L += ["Note: the model also imports " + ", ".join(f"`{k}` v{m['opset_imports'][k]}" for k in extra)
              + " (tf2onnx adds it; no node uses it).", ""]
    if m.get("onnxruntime_note"):
        L += ["Note: " + m["onnxruntime_note"] + ".", ""]
    L += ["How checked: " + m["method"], ""]
    L += ["| largest abs diff | tol | values | check |", "| ---: | ---: | ---: | --- |"]
    L += [f"| {c['max_abs_diff']:.3g} | {c['tol']:g} | {c['values']} | {c['check']} |" for c in m["checks"]]
    L.append("")
    return "\n".join(L) + "\n"


def update_readme(out, m):
    """Puts the section into README.md: replaces an earlier one, else inserts it before `bad/` (or appends)."""
    path = os.path.join(out, "README.md")
    if not os.path.exists(path):
        return
    with open(path) as f:
        text = f.read()
    section = readme_section(out, m)
    head = f"### `{m['case']}`"
    start = text.find(head)
    if start >= 0:
        end = text.find("\n### ", start + 1)
        text = text[:start] + section + (text[end + 1:] if end >= 0 else "")
    else:
        bad = text.find("### `bad/`")
        if bad >= 0:
            text = text[:bad] + section + text[bad:]
        else:
            text = text.rstrip("\n") + "\n\n" + section
    with open(path, "w") as f:
        f.write(text)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=DEFAULT_OUT)
    ap.add_argument("--readme", action="store_true",
                    help="only (re)write this case's README section from its meta.json")
    args = ap.parse_args()
    if args.readme:
        with open(os.path.join(args.out, CASE, "meta.json")) as f:
            meta = json.load(f)
    else:
        meta = make_case(args.out)
    update_readme(args.out, meta)
    print(f"wrote {os.path.join(args.out, CASE)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
