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
the ONNX reference and check code below is copied from that script, which imports torch):
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
import copy
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
from onnx import helper, numpy_helper, TensorProto  # noqa: E402
import onnxruntime as ort  # noqa: E402

tf.config.threading.set_intra_op_parallelism_threads(1)
tf.config.threading.set_inter_op_parallelism_threads(1)

PLANES = {"lstm": ["i", "f", "g", "o", "c", "h"], "gru": ["z", "r", "n", "h"], "simple_rnn": ["h"]}
ONNX_CELL = {"LSTM": "lstm", "GRU": "gru", "RNN": "simple_rnn"}


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


# --------------------------------------------------------------------------- activations

ALPHA_USERS = {"affine": 1.0, "leakyrelu": 0.01, "thresholdedrelu": 1.0, "scaledtanh": 1.0,
               "hardsigmoid": 0.2, "elu": 1.0}
BETA_USERS = {"affine": 0.0, "scaledtanh": 1.0, "hardsigmoid": 0.5}


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def activation(name, x, alpha=None, beta=None):
    n = name.lower()
    a = ALPHA_USERS.get(n) if alpha is None else alpha
    b = BETA_USERS.get(n) if beta is None else beta
    if n == "sigmoid":
        return sigmoid(x)
    if n == "tanh":
        return np.tanh(x)
    if n == "relu":
        return np.maximum(x, 0.0)
    if n == "hardsigmoid":
        return np.clip(a * x + b, 0.0, 1.0)
    if n == "affine":
        return a * x + b
    if n == "leakyrelu":
        return np.where(x >= 0, x, a * x)
    if n == "thresholdedrelu":
        return np.where(x >= a, x, 0.0)
    if n == "scaledtanh":
        return a * np.tanh(b * x)
    if n == "elu":
        return np.where(x >= 0, x, a * (np.exp(x) - 1.0))
    if n == "softsign":
        return x / (1.0 + np.abs(x))
    if n == "softplus":
        return np.log1p(np.exp(x))
    raise ValueError(f"unknown activation {name}")


# --------------------------------------------------------------------------- ONNX reference
# (copied from scripts/make_torch_fixtures.py)

def node_attrs(node):
    out = {}
    for a in node.attribute:
        v = helper.get_attribute_value(a)
        if isinstance(v, bytes):
            v = v.decode()
        elif isinstance(v, list) and v and isinstance(v[0], bytes):
            v = [s.decode() for s in v]
        out[a.name] = v
    return out


def layer_name(node, index):
    return node.name if node.name else f"{node.op_type}_{index}"


def onnx_directions(direction):
    return {"forward": ["fwd"], "reverse": ["bwd"], "bidirectional": ["fwd", "bwd"]}[direction]


def onnx_dir_activations(op, at, nd):
    k = {"LSTM": 3, "GRU": 2, "RNN": 1}[op]
    default = {"LSTM": ["Sigmoid", "Tanh", "Tanh"], "GRU": ["Sigmoid", "Tanh"], "RNN": ["Tanh"]}[op]
    acts = list(at.get("activations", default * nd))
    if len(acts) == k and nd == 2:
        acts = acts * 2
    alphas = list(at.get("activation_alpha", []))
    betas = list(at.get("activation_beta", []))
    out = []
    for n in acts:  # alpha/beta consumed in the order of the activations that take them
        a = alphas.pop(0) if n.lower() in ALPHA_USERS and alphas else None
        b = betas.pop(0) if n.lower() in BETA_USERS and betas else None
        out.append((n, a, b))
    return [out[d * k:(d + 1) * k] for d in range(nd)]


def onnx_cell_dir(op, X, W, R, Bv, P, h0, c0, lens, reverse, acts, clip, input_forget, lbr):
    """One direction of an ONNX LSTM/GRU/RNN node in float64. X [T,B,In] (layout 0)."""
    T, B, _ = X.shape
    k = {"LSTM": 4, "GRU": 3, "RNN": 1}[op]
    H = R.shape[1]
    Wb = Bv[:k * H] if Bv is not None else np.zeros(k * H)
    Rb = Bv[k * H:] if Bv is not None else np.zeros(k * H)
    cl = (lambda v: np.clip(v, -clip, clip)) if clip is not None else (lambda v: v)
    A = [lambda v, a=a: activation(a[0], v, a[1], a[2]) for a in acts]
    cell = ONNX_CELL[op]
    planes = {q: np.full((B, T, H), np.nan) for q in PLANES[cell]}
    h_in = np.full((B, T, H), np.nan)
    c_in = np.full((B, T, H), np.nan)
    y = np.zeros((T, B, H))
    h_last, c_last = np.zeros((B, H)), np.zeros((B, H))
    for b in range(B):
        L = int(lens[b])
        h = h0[b].copy()
        c = c0[b].copy()
        for t in (reversed(range(L)) if reverse else range(L)):
            h_in[b, t], c_in[b, t] = h, c
            xt = X[t, b]
            if op == "LSTM":
                z = W @ xt + Wb + R @ h + Rb
                zi, zo, zf, zc = z[:H], z[H:2 * H], z[2 * H:3 * H], z[3 * H:]
                pi, po, pf = (P[:H], P[H:2 * H], P[2 * H:]) if P is not None else (0.0, 0.0, 0.0)
                i = A[0](cl(zi + pi * c))
                f = 1.0 - i if input_forget else A[0](cl(zf + pf * c))
                g = A[1](cl(zc))
                c = f * c + i * g
                o = A[0](cl(zo + po * c))
                h = o * A[2](c)
                for q, v in zip("ifgoch", (i, f, g, o, c, h)):
                    planes[q][b, t] = v
            elif op == "GRU":
                gx = W @ xt + Wb
                zz = A[0](cl(gx[:H] + R[:H] @ h + Rb[:H]))
                r = A[0](cl(gx[H:2 * H] + R[H:2 * H] @ h + Rb[H:2 * H]))
                if lbr:
                    n = A[1](cl(gx[2 * H:] + r * (R[2 * H:] @ h + Rb[2 * H:])))
                else:
                    n = A[1](cl(gx[2 * H:] + R[2 * H:] @ (r * h) + Rb[2 * H:]))
                h = (1.0 - zz) * n + zz * h
                for q, v in zip("zrnh", (zz, r, n, h)):
                    planes[q][b, t] = v
            else:
                h = A[0](cl(W @ xt + Wb + R @ h + Rb))
                planes["h"][b, t] = h
            y[t, b] = h
        h_last[b], c_last[b] = h, c
    return {"planes": planes, "h_in": h_in, "c_in": c_in, "y": y, "h_last": h_last, "c_last": c_last,
            "state_h": planes["h"]}


def onnx_node_reference(node, vals):
    """Runs an ONNX LSTM/GRU/RNN node in float64 numpy; vals: name -> array of every input."""
    op = node.op_type
    at = node_attrs(node)
    H = at["hidden_size"]
    dirs = onnx_directions(at.get("direction", "forward"))
    nd = len(dirs)
    layout = at.get("layout", 0)

    def get(i):
        return vals[node.input[i]].astype(np.float64) if len(node.input) > i and node.input[i] else None

    X = get(0)
    if layout == 1:
        X = X.transpose(1, 0, 2)
    T, B, _ = X.shape
    W, R, Bv = get(1), get(2), get(3)
    lens = get(4)
    lens = np.full(B, T) if lens is None else lens.astype(np.int64)
    h0 = get(5)
    c0 = get(6) if op == "LSTM" else None
    P = get(7) if op == "LSTM" else None
    if layout == 1:
        h0 = None if h0 is None else h0.transpose(1, 0, 2)
        c0 = None if c0 is None else c0.transpose(1, 0, 2)
    h0 = np.zeros((nd, B, H)) if h0 is None else h0
    c0 = np.zeros((nd, B, H)) if c0 is None else c0
    acts = onnx_dir_activations(op, at, nd)
    res = collections.OrderedDict()
    for d, dn in enumerate(dirs):
        res[dn] = onnx_cell_dir(op, X, W[d], R[d], None if Bv is None else Bv[d], None if P is None else P[d],
                                h0[d], c0[d], lens, dn == "bwd", acts[d], at.get("clip"),
                                bool(at.get("input_forget", 0)), bool(at.get("linear_before_reset", 0)))
    Y = np.stack([res[dn]["y"] for dn in dirs], axis=1)          # [T, nd, B, H]
    Y_h = np.stack([res[dn]["h_last"] for dn in dirs])           # [nd, B, H]
    Y_c = np.stack([res[dn]["c_last"] for dn in dirs])
    if layout == 1:
        Y, Y_h, Y_c = Y.transpose(2, 0, 1, 3), Y_h.transpose(1, 0, 2), Y_c.transpose(1, 0, 2)
    outs = [Y, Y_h] + ([Y_c] if op == "LSTM" else [])
    mask = np.arange(T)[None, :] < lens[:, None]
    return {"dirs": res, "outs": outs, "mask": mask, "layout": layout, "nd": nd, "H": H, "T": T, "B": B}


def ort_session(model):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])


def ort_compatible(model):
    """onnxruntime's CPU LSTM/GRU/RNN kernels refuse layout=1 ("Batchwise recurrent operations (layout == 1)
    are not supported"): returns an equivalent graph whose recurrent nodes use layout 0 between Transposes,
    keeping every original tensor name. Returns (model, rewritten?)."""
    m = copy.deepcopy(model)
    nodes, changed = [], False
    for node in m.graph.node:
        if node.op_type not in ONNX_CELL or node_attrs(node).get("layout", 0) != 1:
            nodes.append(node)
            continue
        changed = True
        ins, outs, post = list(node.input), list(node.output), []
        for j in (0, 5, 6) if node.op_type == "LSTM" else (0, 5):
            if len(ins) > j and ins[j]:
                nodes.append(helper.make_node("Transpose", [ins[j]], [ins[j] + "__layout0"], perm=[1, 0, 2]))
                ins[j] += "__layout0"
        for j, perm in ((0, [2, 0, 1, 3]), (1, [1, 0, 2]), (2, [1, 0, 2])):
            if len(outs) > j and outs[j]:
                post.append(helper.make_node("Transpose", [outs[j] + "__layout0"], [outs[j]], perm=perm))
                outs[j] += "__layout0"
        n2 = helper.make_node(node.op_type, ins, outs, name=node.name)
        n2.attribute.extend(a for a in node.attribute if a.name != "layout")
        nodes.append(n2)
        nodes.extend(post)
    del m.graph.node[:]
    m.graph.node.extend(nodes)
    return m, changed


def real_inputs(model):
    inits = {i.name for i in model.graph.initializer}
    return [i for i in model.graph.input if i.name not in inits]


def value_types(model):
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:
        inferred = model
    types = {}
    for vi in list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output):
        if vi.type.tensor_type.elem_type:
            types[vi.name] = vi.type.tensor_type.elem_type
    return types


def onnx_values(model, feeds, rec_nodes):
    """Every input and output value of the recurrent nodes, as onnxruntime computes them."""
    probe = copy.deepcopy(model)
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    for idx, _ in rec_nodes:
        node = probe.graph.node[idx]
        want = 3 if node.op_type == "LSTM" else 2
        while len(node.output) < want:
            node.output.append("")
        for j in range(want):
            if not node.output[j]:
                node.output[j] = f"__probe_{idx}_out{j}"
    types = value_types(probe)
    have = {o.name for o in probe.graph.output}
    names = []
    for idx, _ in rec_nodes:
        node = probe.graph.node[idx]
        for n in list(node.input) + list(node.output):
            if n and n not in inits and n not in feeds and n not in names:
                names.append(n)
    for n in names:
        if n not in have:
            probe.graph.output.append(helper.make_tensor_value_info(n, types.get(n, TensorProto.FLOAT), None))
    sess = ort_session(ort_compatible(probe)[0])
    outs = sess.run(names, feeds)
    vals = dict(inits)
    vals.update(feeds)
    vals.update(zip(names, outs))
    return vals, [list(probe.graph.node[idx].output) for idx, _ in rec_nodes]


def onnx_step_probe(node, vals, ref, checks):
    """Re-runs each step with onnxruntime: a one-step copy of the node from numpy's state."""
    op = node.op_type
    layout, nd, H, T, B = ref["layout"], ref["nd"], ref["H"], ref["T"], ref["B"]
    X = vals[node.input[0]]
    In = X.shape[2]
    inits, ins = [], []
    names = ["X"]
    for j, nm in ((1, "W"), (2, "R"), (3, "B")):
        if len(node.input) > j and node.input[j]:
            inits.append(numpy_helper.from_array(vals[node.input[j]].astype(np.float32), nm))
            names.append(nm)
        else:
            names.append("")
    names += ["", "H0"]
    st_shape = [nd, B, H]  # the probe always uses layout 0 (onnxruntime has no layout=1 kernels)
    x_shape = [1, B, In]
    ins.append(helper.make_tensor_value_info("X", TensorProto.FLOAT, x_shape))
    ins.append(helper.make_tensor_value_info("H0", TensorProto.FLOAT, st_shape))
    outs = ["Y", "Y_h"]
    if op == "LSTM":
        names.append("C0")
        ins.append(helper.make_tensor_value_info("C0", TensorProto.FLOAT, st_shape))
        if len(node.input) > 7 and node.input[7]:
            inits.append(numpy_helper.from_array(vals[node.input[7]].astype(np.float32), "P"))
            names.append("P")
        outs.append("Y_c")
    pnode = helper.make_node(op, names, outs, name="probe")
    pnode.attribute.extend(a for a in node.attribute if a.name != "layout")
    g = helper.make_graph([pnode], "step_probe", ins,
                          [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outs], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    sess = ort_session(m)
    dirs = list(ref["dirs"])
    for t in range(T):
        def st(key):
            return np.stack([np.nan_to_num(ref["dirs"][d][key][:, t]) for d in dirs]).astype(np.float32)
        feeds = {"X": X[:, t:t + 1].transpose(1, 0, 2) if layout == 1 else X[t:t + 1], "H0": st("h_in")}
        if op == "LSTM":
            feeds["C0"] = st("c_in")
        got = sess.run(outs, feeds)
        for d, dn in enumerate(dirs):
            r = ref["dirs"][dn]
            rows = ~np.isnan(r["h_in"][:, t, 0])
            if not rows.any():
                continue
            pick = lambda a: a[d]  # noqa: E731
            checks.cmp("step by step: h after each step vs one-step onnxruntime node",
                       r["planes"]["h"][rows, t], pick(got[1])[rows], TOL32)
            if op == "LSTM":
                checks.cmp("step by step: c after each step vs one-step onnxruntime node",
                           r["planes"]["c"][rows, t], pick(got[2])[rows], TOL32)


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
