"""Float64 numpy reference for ONNX LSTM / GRU / RNN nodes and its checks against onnxruntime.

Shared by scripts/make_torch_fixtures.py and scripts/make_tf2onnx_fixture.py (imported as a sibling module;
no torch import here, so the tf2onnx script runs without torch):
  * onnx_node_reference: runs one recurrent node in float64 following the ONNX operator spec (W/R/B gate
    order i o f c for LSTM, z r h for GRU, peepholes P in order i o f; layout, sequence_lens, clip,
    input_forget, linear_before_reset, activations with alpha/beta);
  * onnx_values: every input/output value of the recurrent nodes as onnxruntime computes them (extra graph
    outputs on a copy of the model); ort_compatible rewrites layout=1 nodes, which onnxruntime refuses;
  * onnx_step_probe: re-runs every step with a one-step onnxruntime copy of the node started from numpy's
    state before that step (h and c after the step, within TOL32), recorded into a Checks-like object
    (anything with cmp(key, a, b, tol)).
"""

import collections
import copy

import numpy as np
import onnx
from onnx import helper, numpy_helper, TensorProto
import onnxruntime as ort

TOL32 = 1e-5  # same value as TOL32 in make_torch_fixtures.py / make_tf2onnx_fixture.py

PLANES = {"lstm": ["i", "f", "g", "o", "c", "h"], "gru": ["z", "r", "n", "h"], "simple_rnn": ["h"]}
ONNX_CELL = {"LSTM": "lstm", "GRU": "gru", "RNN": "simple_rnn"}


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
