#!/usr/bin/env python3
"""Generate graph-model Keras fixtures (Functional graphs, shared layers,
seq2seq, conv/merge/shape/norm/attention/wrapper layers) for GateScope.

Run (from the repository root):

    KERAS_BACKEND=jax nice python3 scripts/make_graph_fixtures.py

    --only CASE ...   generate only these cases (default: all)
    --out DIR         output folder (default: Tests/Fixtures/graph)
    --list            print the case names and exit
    --no-bad          do not (re)write Tests/Fixtures/graph_bad/ (a full run
                      without --only writes it)
    --bad             only (re)write Tests/Fixtures/graph_bad/

Needs keras==3.15.1 + jax (Keras 3 cases, KERAS_BACKEND=jax) and
tensorflow-cpu 2.21 + tf-keras 2.21 (Keras 2 cases).  The Keras 2 cases run in
a child process of this same file (`--keras2`, TF_USE_LEGACY_KERAS=1, `import
tf_keras as keras`): Keras 3 and tf-keras are never imported into one process.

Per case folder: model.keras + model.h5 (Keras 3) or model.h5 (Keras 2),
inputs.npz, expected.npz, meta.json; see Tests/Fixtures/graph/README.md.

How the gate references are made (gate_source "keras_cell_capture"):
for every call (inbound node) of every recurrent layer, the real layer's
`call` is temporarily wrapped and a Keras sub-model from the model's inputs to
that call's outputs is run eagerly, which records exactly what Keras hands the
layer at run time (sequence, mask, initial states) and what the layer returns.
Then the layer's own cell object is stepped eagerly on that input
(`cell(x_t, states)`), with `cell.activation` / `cell.recurrent_activation`
wrapped to capture their outputs (LSTM: recurrent_activation -> i, f, o;
activation -> g, act(c).  GRU: recurrent_activation -> z, r; activation -> n.
SimpleRNN: activation -> h), masking applied as Keras's RNN loop does.  The
resulting sequence / final states are checked against (a) the real layer's
recorded output in the real graph and (b) a probe copy of the layer with
return_sequences=True, return_state=True and the same weights; the captured
gates must satisfy the cell equations and agree with an independent float64
numpy step from the cell's weights; model.predict must equal an eager call;
and Keras's load_model must read the saved files back and predict the same y
(Keras 3 .h5 files of masked graphs: clone_model + load_weights, see the
README).  Any difference > 1e-5 exits non-zero.
"""

import argparse
import inspect
import json
import math
import os
import shutil
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DEFAULT_OUT = os.path.join(ROOT, "Tests", "Fixtures", "graph")
BAD_OUT = os.path.join(ROOT, "Tests", "Fixtures", "graph_bad")
TOL = 1e-5
RNN_CLASSES = ("LSTM", "GRU", "SimpleRNN")
CELL_KIND = {"LSTM": "lstm", "GRU": "gru", "SimpleRNN": "simple_rnn"}
GATES = {"lstm": "ifgoch", "gru": "zrnh", "simple_rnn": "h"}

K = None       # the keras module (Keras 3 or tf_keras)
MAJOR = None   # 3 or 2


class CheckError(AssertionError):
    pass


# --------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------

def to_np(t):
    if t is None:
        return None
    if hasattr(t, "numpy") and MAJOR == 2:
        return t.numpy()
    return np.asarray(t)


def to_t(a):
    if MAJOR == 3:
        return K.ops.convert_to_tensor(a)
    import tensorflow as tf
    return tf.convert_to_tensor(a)


def flatten(x):
    if x is None:
        return []
    if isinstance(x, (list, tuple)):
        out = []
        for v in x:
            out += flatten(v)
        return out
    if isinstance(x, dict):
        out = []
        for k in x:
            out += flatten(x[k])
        return out
    return [x]


def maxdiff(a, b):
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    if a.shape != b.shape:
        raise CheckError(f"shape mismatch {a.shape} vs {b.shape}")
    return float(np.max(np.abs(a - b))) if a.size else 0.0


def get_mask_attr(t):
    if t is None:
        return None
    if MAJOR == 3:
        from keras.src.backend import get_keras_mask
        return get_keras_mask(t)
    return getattr(t, "_keras_mask", None)


def cls_name(layer):
    return type(layer).__name__


def is_model(layer):
    return isinstance(layer, K.Model)


def node_list(layer):
    return list(layer._inbound_nodes)


def node_first_arg_tensors(node):
    """Flattened tensors of a node's first positional call argument (the data
    input; for tf-keras RNNs called with initial_state this is [x, *states])."""
    if MAJOR == 3:
        args = node.arguments.args
        return flatten(args[0]) if args else flatten(node.arguments.kwargs.get("sequences"))
    return flatten(node.call_args[0]) if node.call_args else flatten(node.input_tensors)


def node_outputs(node):
    return flatten(node.output_tensors)


def history(t):
    h = t._keras_history
    return h[0], h[1], h[2]


def call_name(name, node_index):
    return name if node_index == 0 else f"{name}#{node_index + 1}"


# --------------------------------------------------------------------------
# recording what a layer receives / returns at run time
# --------------------------------------------------------------------------

def record_calls(layer, run):
    """Wrap layer.call, run `run()`, return [(bound arguments, outputs)]."""
    orig = layer.call
    sig = inspect.signature(orig)
    recs = []

    def wrapper(*a, **kw):
        out = orig(*a, **kw)
        b = sig.bind(*a, **kw)
        recs.append((dict(b.arguments), out))
        return out

    had = "call" in layer.__dict__
    object.__setattr__(layer, "call", wrapper)
    try:
        run()
    finally:
        if had:
            object.__setattr__(layer, "call", orig)
        else:
            object.__delattr__(layer, "call")
    return recs


class Scope:
    """A (sub-)model and the run-time values/masks of its inputs."""

    def __init__(self, model, values, masks, time_env):
        self.model = model
        self.values = values          # list of arrays, model.inputs order
        self.masks = masks            # list of arrays or None
        self.time_env = time_env      # id(input KerasTensor) -> (time_from, aligned)

    def run_to(self, tensors):
        sub = K.Model(self.model.inputs, tensors)
        vals = [to_t(v) for v in self.values]
        arg = vals[0] if len(vals) == 1 else vals
        kw = {}
        if self.masks is not None and any(m is not None for m in self.masks):
            ms = [None if m is None else to_t(m) for m in self.masks]
            kw["mask"] = ms[0] if len(ms) == 1 else ms
        return flatten(sub(arg, **kw))


# --------------------------------------------------------------------------
# time-axis bookkeeping (meta.json time_from / aligned)
# --------------------------------------------------------------------------

KEEP_TIME = {"Masking", "Embedding", "Dense", "Activation", "Dropout", "GaussianNoise",
             "GaussianDropout", "SpatialDropout1D", "LayerNormalization",
             "BatchNormalization", "TimeDistributed", "ReLU", "LeakyReLU"}
ELEMENTWISE_MERGE = {"Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum"}
SHIFT_TIME = {"ZeroPadding1D", "Cropping1D", "UpSampling1D", "MaxPooling1D",
              "AveragePooling1D"}
NEW_TIME = {"RepeatVector", "Reshape", "Permute", "Flatten", "Dot"}
NO_INFO = (None, False)


def time_info(t, env):
    if id(t) in env:
        return env[id(t)]
    layer, ni, ti = history(t)
    c = cls_name(layer)
    if c == "InputLayer":
        return (layer.name, True)
    node = node_list(layer)[ni]
    ins = node_first_arg_tensors(node)
    infos = [time_info(x, env) for x in ins]
    cfg = layer.get_config()

    def merged():
        return infos[0] if all(i == infos[0] for i in infos) else NO_INFO

    if is_model(layer):
        inner_env = {id(a): b for a, b in zip(layer.inputs, infos)}
        return time_info(flatten(layer.outputs)[ti], inner_env)
    if c in KEEP_TIME or c in ELEMENTWISE_MERGE:
        return merged()
    if c in ("Attention", "AdditiveAttention", "MultiHeadAttention"):
        return infos[0] if ti == 0 else NO_INFO
    if c in RNN_CLASSES or c == "Bidirectional":
        rs = layer.return_sequences if c != "Bidirectional" else layer.forward_layer.return_sequences
        if ti == 0 or (c == "Bidirectional" and layer.merge_mode is None and ti == 1):
            return (infos[0][0], infos[0][1]) if rs else NO_INFO
        return NO_INFO
    if c == "Concatenate":
        ax = cfg["axis"]
        if ax in (1, -2):
            tf_ = infos[0][0] if all(i[0] == infos[0][0] for i in infos) else None
            return (tf_, False)
        return merged()
    if c == "Conv1D":
        if cfg["padding"] in ("same", "causal") and tuple(flatten(cfg["strides"])) == (1,):
            return infos[0]
        return (infos[0][0], False)
    if c in SHIFT_TIME:
        return (infos[0][0], False)
    if c in NEW_TIME:
        return NO_INFO
    raise ValueError(f"time_info: no rule for {c}")


# --------------------------------------------------------------------------
# stepping the Keras cell with its activations captured
# --------------------------------------------------------------------------

def np_act(fn):
    """numpy float64 version of a Keras activation function object."""
    n = getattr(fn, "__name__", str(fn))
    if n == "tanh":
        return np.tanh
    if n == "sigmoid":
        return lambda v: 1.0 / (1.0 + np.exp(-v))
    if n == "hard_sigmoid":
        if MAJOR == 3:
            return lambda v: np.clip(v / 6.0 + 0.5, 0.0, 1.0)
        return lambda v: np.clip(0.2 * v + 0.5, 0.0, 1.0)
    if n == "relu":
        return lambda v: np.maximum(v, 0.0)
    if n == "linear":
        return lambda v: v
    raise ValueError(f"no numpy activation for {n}")


def numpy_step(kind, cell, w, xt, states, act, ract):
    """Independent float64 step from the weights (cross-check of the captured
    values' roles: which capture is i, f, g, o / z, r, n)."""
    xt = xt.astype(np.float64)
    W, U = w[0].astype(np.float64), w[1].astype(np.float64)
    b = w[2].astype(np.float64) if len(w) > 2 else None
    u = U.shape[0]
    h = states[0].astype(np.float64)
    if kind == "lstm":
        z = xt @ W + h @ U + (0 if b is None else b)
        i, f, g, o = ract(z[:, :u]), ract(z[:, u:2 * u]), act(z[:, 2 * u:3 * u]), ract(z[:, 3 * u:])
        c = f * states[1] + i * g
        return dict(i=i, f=f, g=g, o=o, c=c, h=o * act(c))
    if kind == "gru":
        if cell.reset_after:
            bi, br = (0, 0) if b is None else (b[0], b[1])
            mx = xt @ W + bi
            mh = h @ U + br
            z = ract(mx[:, :u] + mh[:, :u])
            r = ract(mx[:, u:2 * u] + mh[:, u:2 * u])
            n = act(mx[:, 2 * u:] + r * mh[:, 2 * u:])
        else:
            bb = 0 if b is None else b
            mx = xt @ W + bb
            z = ract(mx[:, :u] + h @ U[:, :u])
            r = ract(mx[:, u:2 * u] + h @ U[:, u:2 * u])
            n = act(mx[:, 2 * u:] + (r * h) @ U[:, 2 * u:])
        return dict(z=z, r=r, n=n, h=z * h + (1 - z) * n)
    return dict(h=act(xt @ W + h @ U + (0 if b is None else b)))


def step_cell(rnn, x, mask, init):
    """Step rnn.cell (the real Keras cell object) over x [B,T,D] like the RNN
    loop. Returns gates {q: [B,T,U] at input positions, NaN when masked},
    outs [B,T,U] in processing order (what return_sequences gives), final
    states list."""
    cell = rnn.cell
    kind = CELL_KIND[cls_name(rnn)]
    B, T = x.shape[0], x.shape[1]
    U = int(cell.units)
    nstate = 2 if kind == "lstm" else 1
    if init is None:
        states = [np.zeros((B, U), np.float32) for _ in range(nstate)]
    else:
        states = [np.asarray(s, np.float32) for s in init]
        assert len(states) == nstate, (rnn.name, len(states))
    zero_out = bool(getattr(rnn, "zero_output_for_mask", False))
    go_back = bool(rnn.go_backwards)
    cap = {"act": [], "ract": []}
    orig_act = cell.activation
    orig_ract = getattr(cell, "recurrent_activation", None)

    def wa(v):
        r = orig_act(v)
        cap["act"].append(to_np(r))
        return r

    def wr(v):
        r = orig_ract(v)
        cap["ract"].append(to_np(r))
        return r

    gates = {q: np.full((B, T, U), np.nan, np.float32) for q in GATES[kind]}
    outs = np.zeros((B, T, U), np.float32)
    prev_out = np.zeros((B, U), np.float32)
    order = list(range(T))[::-1] if go_back else list(range(T))
    worst_eq = 0.0
    worst_np = 0.0
    wts = cell.get_weights()
    npa, npr = np_act(orig_act), np_act(orig_ract or orig_act)
    object.__setattr__(cell, "activation", wa)
    if orig_ract is not None:
        object.__setattr__(cell, "recurrent_activation", wr)
    try:
        for k, t in enumerate(order):
            cap["act"].clear()
            cap["ract"].clear()
            st = [to_t(s) for s in states]
            out, new = cell(to_t(x[:, t]), st)
            out = to_np(out)
            new = [to_np(s) for s in flatten(new)]
            a, r = cap["act"], cap["ract"]
            if kind == "lstm":
                assert len(r) == 3 and len(a) == 2, (len(r), len(a))
                vals = dict(i=r[0], f=r[1], o=r[2], g=a[0], c=new[1], h=out)
                worst_eq = max(worst_eq,
                               maxdiff(vals["c"], vals["f"] * states[1] + vals["i"] * vals["g"]),
                               maxdiff(out, vals["o"] * a[1]))
            elif kind == "gru":
                assert len(r) == 2 and len(a) == 1, (len(r), len(a))
                vals = dict(z=r[0], r=r[1], n=a[0], h=out)
                worst_eq = max(worst_eq, maxdiff(out, vals["z"] * states[0] + (1 - vals["z"]) * vals["n"]))
            else:
                assert len(a) == 1 and not r, (len(r), len(a))
                vals = dict(h=out)
                worst_eq = max(worst_eq, maxdiff(out, a[0]))
            worst_eq = max(worst_eq, maxdiff(new[0], out))
            ref = numpy_step(kind, cell, wts, x[:, t], states, npa, npr)
            worst_np = max([worst_np] + [maxdiff(vals[q], ref[q]) for q in GATES[kind]])
            m = mask[:, t]
            for q in GATES[kind]:
                gates[q][m, t] = vals[q][m]
            if zero_out:
                masked_out = np.zeros_like(out)
            elif MAJOR == 3:
                masked_out = states[0]     # jax rnn scan: previous h state
            else:
                masked_out = prev_out      # tf-keras: previous output (zeros at first)
            o_t = np.where(m[:, None], out, masked_out)
            states = [np.where(m[:, None], ns, s) for ns, s in zip(new, states)]
            outs[:, k] = o_t
            prev_out = o_t
    finally:
        object.__setattr__(cell, "activation", orig_act)
        if orig_ract is not None:
            object.__setattr__(cell, "recurrent_activation", orig_ract)
        assert cell.activation is orig_act
    return gates, outs, states, worst_eq, worst_np


def rnn_layer_outputs(rnn, outs, states):
    y = outs if rnn.return_sequences else outs[:, -1]
    return [y] + (list(states) if rnn.return_state else [])


def probe_check(rnn, x, mask, init, outs, states):
    """A fresh copy of the layer (same config + weights, return_sequences and
    return_state on) must give the same every-step outputs and final states."""
    cfg = rnn.get_config()
    cfg.update(return_sequences=True, return_state=True, name=rnn.name + "_probe")
    probe = type(rnn).from_config(cfg)
    probe.zero_output_for_mask = rnn.zero_output_for_mask
    xt = to_t(x)
    kw = {}
    if init is not None:
        kw["initial_state"] = [to_t(s) for s in init]
    probe(xt, **kw)
    probe.set_weights(rnn.get_weights())
    res = flatten(probe(xt, mask=to_t(mask), **kw))
    d = maxdiff(to_np(res[0]), outs)
    for a, b in zip(res[1:], states):
        d = max(d, maxdiff(to_np(a), b))
    return d


def merge_bi(mode, yf, yb):
    if mode == "concat":
        return [np.concatenate([yf, yb], axis=-1)]
    if mode == "sum":
        return [yf + yb]
    if mode == "ave":
        return [(yf + yb) / 2]
    if mode == "mul":
        return [yf * yb]
    if mode is None:
        return [yf, yb]
    raise ValueError(mode)


def analyse_call(scope, layer, ni, node, report):
    """Record one call of a recurrent layer; returns the list of records."""
    outs_t = node_outputs(node)
    recs = record_calls(layer, lambda: scope.run_to(outs_t))
    if not recs:
        raise CheckError(f"{layer.name}: call not observed")
    args, real_out = recs[-1]   # the last call of this layer is this node
    c = cls_name(layer)
    first = args.get("sequences", args.get("inputs"))
    init = args.get("initial_state")
    if isinstance(first, (list, tuple)):   # tf-keras: [x, *initial_states]
        fl = flatten(first)
        first = fl[0]
        if init is None and len(fl) > 1:
            init = fl[1:]
    x = to_np(first).astype(np.float32)
    mask = args.get("mask")
    if isinstance(mask, (list, tuple)):
        mask = mask[0]
    B, T = x.shape[0], x.shape[1]
    mask_np = np.ones((B, T), bool) if mask is None else to_np(mask).astype(bool)
    init_np = None if init is None else [to_np(s).astype(np.float32) for s in flatten(init)]
    real = [to_np(o) for o in flatten(real_out)]
    cname = call_name(layer.name, ni)
    halves = []
    if c == "Bidirectional":
        f_init = b_init = None
        if init_np is not None:
            h = len(init_np) // 2
            f_init, b_init = init_np[:h], init_np[h:]
        parts = [(layer.forward_layer, "fwd", f_init), (layer.backward_layer, "bwd", b_init)]
    else:
        parts = [(layer, "bwd" if layer.go_backwards else "fwd", init_np)]
    diffs = {}
    results = []
    for rnn, d, ini in parts:
        gates, outs, states, eq, npd = step_cell(rnn, x, mask_np, ini)
        diffs[f"cell_equations:{cname}/{d}"] = eq
        diffs[f"numpy_step:{cname}/{d}"] = npd
        diffs[f"probe:{cname}/{d}"] = probe_check(rnn, x, mask_np, ini, outs, states)
        results.append((rnn, d, ini, gates, outs, states))
    if c == "Bidirectional":
        (rf, _, _, _, of, sf), (rb, _, _, _, ob, sb) = results
        yf = of if rf.return_sequences else of[:, -1]
        yb = ob[:, ::-1] if rb.return_sequences else ob[:, -1]
        mine = merge_bi(layer.merge_mode, yf, yb)
        if layer.return_state:
            mine += list(sf) + list(sb)
    else:
        rnn, _, _, _, outs, states = results[0]
        mine = rnn_layer_outputs(rnn, outs, states)
    if len(mine) != len(real):
        raise CheckError(f"{cname}: {len(real)} real outputs, {len(mine)} reconstructed")
    diffs[f"real_layer_output:{cname}"] = max(maxdiff(a, b) for a, b in zip(real, mine))
    report.update(diffs)
    for rnn, d, ini, gates, outs, states in results:
        halves.append(dict(call=cname, layer=layer.name, direction=d,
                           cell=CELL_KIND[cls_name(rnn)], units=int(rnn.cell.units),
                           gates=gates, mask=mask_np, init=ini))
    return halves


def walk(scope, report, records, prefix_env):
    model = scope.model
    for layer in model.layers:
        c = cls_name(layer)
        nodes = node_list(layer)
        if c in RNN_CLASSES or c == "Bidirectional":
            for ni, node in enumerate(nodes):
                halves = analyse_call(scope, layer, ni, node, report)
                x_t = node_first_arg_tensors(node)[0]
                tinfo = time_info(x_t, scope.time_env)
                for h in halves:
                    h["time_from"], h["aligned"] = tinfo
                records += halves
        elif is_model(layer):
            if len(nodes) != 1:
                raise ValueError(f"nested model {layer.name} called {len(nodes)} times")
            node = nodes[0]
            recs = record_calls(layer, lambda: scope.run_to(node_outputs(node)))
            args, real_out = recs[-1]
            vals = [to_np(v) for v in flatten(args["inputs"])]
            masks = flatten(args.get("mask")) if args.get("mask") is not None else None
            if masks is not None:
                masks = [None if m is None else to_np(m) for m in masks]
                if len(masks) != len(vals):
                    masks = None if all(m is None for m in masks) else masks
            env = {id(a): time_info(b, scope.time_env)
                   for a, b in zip(layer.inputs, node_first_arg_tensors(node))}
            inner = Scope(layer, vals, masks, env)
            # the inner scope (sub-models of the nested model fed the recorded
            # inputs and masks) must reproduce the nested model's real output
            mine = [to_np(v) for v in inner.run_to(flatten(layer.outputs))]
            real = [to_np(v) for v in flatten(real_out)]
            report[f"nested_scope_output:{layer.name}"] = max(maxdiff(a, b) for a, b in zip(mine, real))
            walk(inner, report, records, prefix_env)


# --------------------------------------------------------------------------
# weights and inputs
# --------------------------------------------------------------------------

def wname(w):
    n = getattr(w, "path", None) or w.name
    return n.split("/")[-1].split(":")[0]


def rand_weights(model, rng, scales=None):
    """Every weight random (numpy default_rng), set with set_weights.
    Kernels ~ N(0, s*1.6/sqrt(fan_in)), recurrent ~ N(0, s*1.3/sqrt(units)),
    biases N(0, 0.5), embeddings N(0, 1), gamma U(0.6, 1.5), beta N(0, 0.4),
    moving_mean N(0, 0.5), moving_variance U(0.4, 1.8)."""
    scales = scales or {}
    for layer in model.layers:
        ws = layer.weights
        if not ws:
            continue
        s = scales.get(layer.name, 1.0)
        new = []
        for w in ws:
            n = wname(w)
            shape = tuple(int(d) for d in w.shape)
            if n == "embeddings":
                a = rng.normal(0, 1.0, shape)
            elif n == "gamma":
                a = rng.uniform(0.6, 1.5, shape)
            elif n == "beta":
                a = rng.normal(0, 0.4, shape)
            elif n == "moving_mean":
                a = rng.normal(0, 0.5, shape)
            elif n == "moving_variance":
                a = rng.uniform(0.4, 1.8, shape)
            elif n == "recurrent_kernel":
                a = rng.normal(0, s * 1.3 / math.sqrt(shape[0]), shape)
            elif len(shape) >= 2:
                fan_in = int(np.prod(shape[:-1]))
                a = rng.normal(0, s * 1.6 / math.sqrt(fan_in), shape)
            elif len(shape) == 0:
                a = np.asarray(rng.uniform(0.5, 1.5))
            else:
                a = rng.normal(0, 0.5, shape)
            new.append(np.asarray(a, np.float32))
        layer.set_weights(new)


def fseq(rng, b, t, f, lengths=None, zero_steps=()):
    x = rng.normal(0, 1, (b, t, f)).astype(np.float32)
    if lengths is not None:
        for r, n in enumerate(lengths):
            x[r, n:] = 0.0
    for r, s in zero_steps:
        x[r, s] = 0.0
    return x


def tokens(rng, b, t, vocab, lengths, zero_steps=()):
    x = rng.integers(1, vocab, (b, t)).astype(np.int32)
    for r, n in enumerate(lengths):
        x[r, n:] = 0
    for r, s in zero_steps:
        x[r, s] = 0
    return x


# --------------------------------------------------------------------------
# cases: builder(L, rng) -> (model, [input arrays in model.inputs order])
#   L = keras.layers
# --------------------------------------------------------------------------

def case_cnn_lstm(rng):
    L = K.layers
    inp = K.Input((12, 3), name="x")
    h = L.Conv1D(4, 3, padding="valid", activation="relu", name="conv")(inp)
    h = L.MaxPooling1D(2, name="pool")(h)
    h = L.LSTM(5, name="lstm")(h)
    h = L.Dense(6, activation="relu", name="dense_relu")(h)
    h = L.Dropout(0.3, name="dropout")(h)
    y = L.Dense(2, activation="softmax", name="softmax")(h)
    m = K.Model(inp, y, name="cnn_lstm")
    rand_weights(m, rng)
    return m, [fseq(rng, 3, 12, 3)]


def case_two_input(rng):
    L = K.layers
    a = K.Input((7, 3), name="seq_a")
    b = K.Input((5, 4), name="seq_b")
    ha = L.LSTM(6, name="lstm_a")(a)
    hb = L.LSTM(4, return_sequences=True, name="lstm_b_seq")(b)
    hb = L.LSTM(3, go_backwards=True, name="lstm_b_back")(hb)
    ha = L.Dense(5, activation="tanh", name="head_a")(ha)
    hb = L.Dense(3, activation="relu", name="head_b")(hb)
    h = L.Concatenate(name="concat")([ha, hb])
    h = L.Dense(6, activation="elu", name="dense_1")(h)
    y = L.Dense(2, activation="sigmoid", name="dense_out")(h)
    m = K.Model([a, b], y, name="two_input")
    rand_weights(m, rng)
    return m, [fseq(rng, 3, 7, 3), fseq(rng, 3, 5, 4)]


def case_shared_lstm(rng):
    L = K.layers
    a = K.Input((6, 3), name="left")
    b = K.Input((6, 3), name="right")
    mb = L.Masking(0.0, name="mask_right")(b)
    shared = L.LSTM(5, return_sequences=True, name="lstm")
    ha = shared(a)
    hb = shared(mb)
    h = L.Add(name="add")([ha, hb])
    h = L.LSTM(4, name="lstm_top")(h)
    y = L.Dense(3, name="dense")(h)
    m = K.Model([a, b], y, name="shared_lstm")
    rand_weights(m, rng)
    return m, [fseq(rng, 3, 6, 3), fseq(rng, 3, 6, 3, lengths=[6, 4, 2])]


def case_seq2seq_lstm(rng):
    L = K.layers
    enc_in = K.Input((7, 3), name="encoder_in")
    dec_in = K.Input((5, 4), name="decoder_in")
    em = L.Masking(0.0, name="enc_mask")(enc_in)
    enc_out, h, c = L.LSTM(6, return_state=True, name="encoder")(em)
    dm = L.Masking(0.0, name="dec_mask")(dec_in)
    dec = L.LSTM(6, return_sequences=True, name="decoder")(dm, initial_state=[h, c])
    y = L.Dense(3, activation="softmax", name="proj")(dec)
    m = K.Model([enc_in, dec_in], [y, h, c], name="seq2seq_lstm")
    rand_weights(m, rng)
    return m, [fseq(rng, 3, 7, 3, lengths=[7, 5, 3]),
               fseq(rng, 3, 5, 4, lengths=[5, 3, 4], zero_steps=[(2, 0)])]


def case_seq2seq_gru(rng):
    L = K.layers
    enc_in = K.Input((6,), dtype="int32", name="src_tokens")
    dec_in = K.Input((4, 3), name="dec_feats")
    e = L.Embedding(9, 4, mask_zero=True, name="src_embed")(enc_in)
    enc_seq, enc_h = L.GRU(5, return_sequences=True, return_state=True, name="enc_gru")(e)
    dec = L.GRU(5, return_sequences=True, reset_after=False, name="dec_gru")(dec_in, initial_state=enc_h)
    y = L.Dense(2, name="out")(dec)
    pooled = L.GlobalAveragePooling1D(name="enc_pool")(enc_seq)
    m = K.Model([enc_in, dec_in], [y, enc_h, pooled], name="seq2seq_gru")
    rand_weights(m, rng)
    return m, [tokens(rng, 3, 6, 9, [6, 3, 5]), fseq(rng, 3, 4, 3)]


def case_gru_simple(rng):
    L = K.layers
    inp = K.Input((8, 3), name="x")
    mk = L.Masking(0.0, name="masking")(inp)
    h1 = L.GRU(5, return_sequences=True, reset_after=True, name="gru_after")(mk)
    h2 = L.GRU(4, return_sequences=True, reset_after=False, go_backwards=True,
               name="gru_before_back")(h1)
    h3 = L.SimpleRNN(4, activation="relu", return_sequences=True, name="rnn_relu")(h2)
    h4 = L.SimpleRNN(3, go_backwards=True, name="rnn_tanh_back")(h3)
    y = L.Dense(2, name="dense")(h4)
    m = K.Model(inp, y, name="gru_simple")
    rand_weights(m, rng, {"rnn_relu": 0.9})
    return m, [fseq(rng, 3, 8, 3, lengths=[8, 5, 6], zero_steps=[(2, 1)])]


def case_gru_k2(rng):
    L = K.layers
    inp = K.Input((7,), dtype="int32", name="tokens")
    e = L.Embedding(10, 4, mask_zero=True, name="embed")(inp)
    h1 = L.GRU(5, return_sequences=True, reset_after=False, recurrent_activation="hard_sigmoid",
               name="gru_v1_hs")(e)
    h2 = L.GRU(4, return_sequences=True, reset_after=True, go_backwards=True, name="gru_v2_back")(h1)
    h3 = L.SimpleRNN(3, activation="relu", return_sequences=True, name="rnn_relu")(h2)
    h4 = L.SimpleRNN(3, name="rnn_tanh")(h3)
    y = L.Dense(2, activation="softmax", name="dense")(h4)
    m = K.Model(inp, y, name="gru_k2")
    rand_weights(m, rng, {"gru_v1_hs": 1.8, "rnn_relu": 0.9})
    return m, [tokens(rng, 3, 7, 10, [7, 4, 5], zero_steps=[(0, 2)])]


def case_merges(rng):
    L = K.layers
    a = K.Input((6, 3), name="a")
    b = K.Input((6, 3), name="b")
    ma = L.Masking(0.0, name="mask_a")(a)
    mb = L.Masking(0.0, name="mask_b")(b)
    la = L.LSTM(4, return_sequences=True, name="lstm_a")(ma)
    lb = L.LSTM(4, return_sequences=True, name="lstm_b")(mb)
    lc = L.LSTM(4, return_sequences=True, name="lstm_c")(b)   # unmasked branch
    add = L.Add(name="add")([la, lb])
    sub = L.Subtract(name="subtract")([la, lc])
    mul = L.Multiply(name="multiply")([lb, lc])
    avg = L.Average(name="average")([la, lb, lc])
    mx = L.Maximum(name="maximum")([add, sub])
    mn = L.Minimum(name="minimum")([mul, avg])
    o1 = L.LSTM(3, name="after_add")(add)          # mask = mask_a AND mask_b
    o2 = L.LSTM(3, name="after_subtract")(sub)     # mask = mask_a (lc unmasked)
    o3 = L.GRU(3, name="after_max")(mx)
    o4 = L.SimpleRNN(3, name="after_min")(mn)
    h = L.Concatenate(name="concat_last")([o1, o2, o3, o4])
    y = L.Dense(2, name="dense")(h)
    m = K.Model([a, b], y, name="merges")
    rand_weights(m, rng)
    return m, [fseq(rng, 3, 6, 3, lengths=[6, 4, 5]),
               fseq(rng, 3, 6, 3, lengths=[5, 6, 3], zero_steps=[(1, 1)])]


def case_merges_concat_dot(rng):
    L = K.layers
    t1 = K.Input((5,), dtype="int32", name="tok_a")
    t2 = K.Input((4,), dtype="int32", name="tok_b")
    f = K.Input((5, 3), name="feats")
    e1 = L.Embedding(8, 3, mask_zero=True, name="emb_a")(t1)
    e2 = L.Embedding(8, 3, mask_zero=True, name="emb_b")(t2)
    cat_f = L.Concatenate(axis=-1, name="concat_feat")([e1, f])        # mask from e1 (f all-True)
    cat_t = L.Concatenate(axis=1, name="concat_time")([e1, e2])        # masks concatenated along time
    h1 = L.LSTM(4, return_sequences=True, name="lstm_feat")(cat_f)
    h2 = L.LSTM(4, return_sequences=True, name="lstm_time")(cat_t)
    d1 = L.Dot(axes=-1, name="dot_last")([L.LSTM(4, name="vec_a")(e1), L.LSTM(4, name="vec_b")(e2)])
    d2 = L.Dot(axes=(2, 2), normalize=True, name="dot_cos_seq")([h1, h1])   # [B,5,5]
    d3 = L.Dot(axes=1, name="dot_time")([h1, f])                           # [B,4,3]
    h3 = L.GRU(3, name="gru_on_cos")(d2)
    h4 = L.LSTM(3, name="lstm_last_time")(h2)
    y = L.Concatenate(name="concat_out")([d1, h3, h4, L.Flatten(name="flat_dot")(d3)])
    y = L.Dense(3, name="dense")(y)
    m = K.Model([t1, t2, f], y, name="merges_concat_dot")
    rand_weights(m, rng)
    return m, [tokens(rng, 3, 5, 8, [5, 3, 4]), tokens(rng, 3, 4, 8, [2, 4, 3]),
               fseq(rng, 3, 5, 3)]


def case_conv_variants(rng):
    L = K.layers
    inp = K.Input((9, 4), name="x")
    a = L.Conv1D(4, 3, padding="same", name="conv_same")(inp)
    a = L.Conv1D(4, 2, padding="causal", dilation_rate=2, activation="tanh", name="conv_causal_d2")(a)
    a = L.LSTM(4, return_sequences=True, name="lstm_causal")(a)
    b = L.Conv1D(6, 3, strides=2, padding="valid", groups=2, use_bias=False, name="conv_s2_g2_nobias")(inp)
    b = L.AveragePooling1D(2, strides=1, padding="same", name="avgpool_same")(b)
    b = L.LSTM(3, name="lstm_strided")(b)
    c = L.Conv1D(4, 2, strides=2, padding="same", name="conv_s2_same")(inp)
    c = L.AveragePooling1D(2, strides=2, padding="valid", name="avgpool_s2")(c)
    c = L.GlobalMaxPooling1D(name="gmax")(c)
    y = L.Concatenate(name="concat")([L.GlobalMaxPooling1D(name="gmax_causal")(a), b, c])
    y = L.Dense(2, name="dense")(y)
    m = K.Model(inp, y, name="conv_variants")
    rand_weights(m, rng)
    return m, [fseq(rng, 2, 9, 4)]


def case_conv_masked_pool(rng):
    L = K.layers
    inp = K.Input((8,), dtype="int32", name="tokens")
    e = L.Embedding(11, 4, mask_zero=True, name="embed")(inp)
    h = L.LSTM(5, return_sequences=True, name="lstm_seq")(e)
    g = L.GlobalAveragePooling1D(name="gavg_masked")(h)      # uses the mask
    c = L.Conv1D(4, 3, padding="causal", dilation_rate=2, name="conv_causal")(e)  # Conv drops the mask
    c = L.LSTM(3, return_sequences=True, name="lstm_after_conv")(c)
    c = L.GlobalMaxPooling1D(name="gmax")(c)
    y = L.Dense(2, name="dense")(L.Concatenate(name="concat")([g, c]))
    m = K.Model(inp, y, name="conv_masked_pool")
    rand_weights(m, rng)
    return m, [tokens(rng, 3, 8, 11, [8, 5, 2])]


def case_conv_k2(rng):
    L = K.layers
    inp = K.Input((10, 3), name="x")
    a = L.Conv1D(4, 3, padding="causal", dilation_rate=2, name="conv_causal_d2")(inp)
    a = L.Conv1D(4, 3, strides=2, padding="same", groups=2, use_bias=False, name="conv_s2_g2")(a)
    a = L.AveragePooling1D(2, strides=1, padding="same", name="avgpool")(a)
    a = L.LSTM(4, return_sequences=True, name="lstm")(a)
    a = L.GlobalAveragePooling1D(name="gavg")(a)
    b = L.Conv1D(3, 2, padding="valid", name="conv_valid")(inp)
    b = L.MaxPooling1D(2, name="maxpool")(b)
    b = L.GRU(3, name="gru")(b)
    y = L.Dense(2, name="dense")(L.Concatenate(name="concat")([a, b]))
    m = K.Model(inp, y, name="conv_k2")
    rand_weights(m, rng)
    return m, [fseq(rng, 2, 10, 3)]


def case_shape_layers(rng):
    L = K.layers
    inp = K.Input((6, 4), name="x")
    enc = L.LSTM(5, name="enc_last")(inp)
    rep = L.RepeatVector(4, name="repeat")(enc)
    dec = L.LSTM(4, return_sequences=True, name="dec_repeat")(rep)
    p = L.ZeroPadding1D((1, 2), name="zeropad")(inp)
    p = L.Cropping1D((2, 1), name="crop")(p)
    p = L.UpSampling1D(2, name="upsample")(p)
    p = L.LSTM(3, return_sequences=True, name="lstm_resampled")(p)
    q = L.Permute((2, 1), name="permute")(inp)            # [B,4,6]: time axis = features
    q = L.LSTM(3, name="lstm_permuted")(q)
    r = L.Reshape((3, 8), name="reshape")(inp)             # [B,3,8]
    r = L.SimpleRNN(3, name="rnn_reshaped")(r)
    y = L.Concatenate(name="concat")([L.Flatten(name="flatten_dec")(dec),
                                      L.Flatten(name="flatten_res")(p), q, r])
    y = L.Dense(2, name="dense")(y)
    m = K.Model(inp, y, name="shape_layers")
    rand_weights(m, rng)
    return m, [fseq(rng, 2, 6, 4)]


def case_norms(rng):
    L = K.layers
    inp = K.Input((6, 4), name="x")
    mk = L.Masking(0.0, name="masking")(inp)
    h = L.LayerNormalization(name="ln")(mk)
    h = L.LSTM(5, return_sequences=True, name="lstm_after_ln")(h)
    h = L.BatchNormalization(name="bn")(h)
    h = L.LSTM(4, return_sequences=True, name="lstm_after_bn")(h)
    h = L.LayerNormalization(center=False, scale=False, name="ln_plain")(h)
    b = L.BatchNormalization(center=False, name="bn_noncenter")(inp)
    b = L.GRU(3, name="gru_after_bn")(b)
    h = L.LSTM(3, name="lstm_top")(h)
    y = L.Dense(2, name="dense")(L.Concatenate(name="concat")([h, b]))
    m = K.Model(inp, y, name="norms")
    rand_weights(m, rng, {"gru_after_bn": 0.5})
    return m, [fseq(rng, 3, 6, 4, lengths=[6, 4, 5]) * 2.0 + 0.0]


def case_attention(rng):
    L = K.layers
    q_in = K.Input((5,), dtype="int32", name="query_tokens")
    v_in = K.Input((6,), dtype="int32", name="value_tokens")
    qe = L.Embedding(10, 4, mask_zero=True, name="q_embed")(q_in)
    ve = L.Embedding(10, 4, mask_zero=True, name="v_embed")(v_in)
    q = L.LSTM(4, return_sequences=True, name="q_lstm")(qe)
    v = L.LSTM(4, return_sequences=True, name="v_lstm")(ve)
    a1 = L.Attention(use_scale=True, name="att_scaled")([q, v])
    a2 = L.Attention(use_scale=False, score_mode="concat", name="att_concat")([q, v])
    a3 = L.AdditiveAttention(use_scale=True, name="add_att")([q, v])
    a4 = L.Attention(name="att_key")([q, v, ve])   # [query, value, key]: key != value
    a5, scores = L.Attention(name="att_scores")([q, v], return_attention_scores=True)
    s = L.Add(name="add")([a1, a2, a3, a4, a5])
    h = L.LSTM(3, name="lstm_on_att")(s)
    y = L.Dense(2, name="dense")(h)
    m = K.Model([q_in, v_in], [y, scores], name="attention")
    rand_weights(m, rng)
    return m, [tokens(rng, 3, 5, 10, [5, 3, 4]), tokens(rng, 3, 6, 10, [6, 2, 4])]


def case_td_wrappers(rng):
    L = K.layers
    inp = K.Input((5, 6, 3), name="frames")      # [batch, time, steps, features]
    a = L.TimeDistributed(L.Conv1D(4, 3, padding="valid", name="conv"), name="td_conv")(inp)
    a1 = L.TimeDistributed(L.Flatten(name="flat"), name="td_flatten")(a)
    a1 = L.TimeDistributed(L.Dense(5, activation="relu", name="dense"), name="td_dense")(a1)
    a1 = L.LSTM(4, name="lstm_flat")(a1)
    a2 = L.TimeDistributed(L.GlobalAveragePooling1D(name="gap"), name="td_gap")(a)
    a2 = L.GRU(3, name="gru_gap")(a2)
    y = L.Dense(2, name="dense_out")(L.Concatenate(name="concat")([a1, a2]))
    m = K.Model(inp, y, name="td_wrappers")
    rand_weights(m, rng)
    return m, [rng.normal(0, 1, (2, 5, 6, 3)).astype(np.float32)]


def case_bidirectional(rng):
    L = K.layers
    f_in = K.Input((6, 3), name="x")
    t_in = K.Input((6,), dtype="int32", name="tokens")
    bl = L.Bidirectional(L.LSTM(4, return_sequences=True, name="lstm"), merge_mode=None,
                         name="bi_lstm_none")(f_in)
    e = L.Embedding(9, 3, mask_zero=True, name="embed")(t_in)
    bg = L.Bidirectional(L.GRU(3, return_sequences=True, name="gru"), merge_mode="concat",
                         name="bi_gru_concat")(e)
    bs = L.Bidirectional(L.SimpleRNN(3, name="rnn"), merge_mode="sum", name="bi_rnn_sum")(bg)
    h = L.Add(name="add_halves")(bl)
    h = L.LSTM(3, name="lstm_top")(h)
    y = L.Dense(2, name="dense")(L.Concatenate(name="concat")([h, bs]))
    m = K.Model([f_in, t_in], [y, bl[0], bl[1]], name="bidirectional")
    rand_weights(m, rng)
    return m, [fseq(rng, 3, 6, 3), tokens(rng, 3, 6, 9, [6, 4, 2])]


def case_nested(rng):
    L = K.layers
    seq = K.Sequential([K.Input((6, 3), name="seq_in"),
                        L.Dense(4, activation="tanh", name="seq_dense"),
                        L.LSTM(5, return_sequences=True, name="seq_lstm")], name="seq_block")
    fi = K.Input((6, 5), name="fn_in")
    fh = L.GRU(4, return_sequences=True, name="fn_gru")(fi)
    fh2 = L.LayerNormalization(name="fn_ln")(fh)
    fblock = K.Model(fi, fh2, name="fn_block")
    inp = K.Input((6, 3), name="x")
    h = L.Masking(0.0, name="masking")(inp)    # the mask crosses into both sub-models
    h = seq(h)
    h = fblock(h)
    h = L.LSTM(3, name="outer_lstm")(h)
    y = L.Dense(2, name="dense")(h)
    m = K.Model(inp, y, name="nested")
    rand_weights(m, rng)
    return m, [fseq(rng, 2, 6, 3, lengths=[6, 4])]


def case_masked_functional(rng):
    L = K.layers
    inp = K.Input((7, 3), name="x")
    mk = L.Masking(0.0, name="masking")(inp)
    a = L.LSTM(4, return_sequences=True, name="branch_lstm")(mk)
    a = L.LSTM(3, name="branch_lstm_last")(a)
    b = L.Dense(4, activation="tanh", name="branch_dense")(mk)
    b = L.GRU(3, go_backwards=True, name="branch_gru_back")(b)
    y = L.Dense(2, name="dense")(L.Concatenate(name="concat")([a, b]))
    m = K.Model(inp, y, name="masked_functional")
    rand_weights(m, rng)
    return m, [fseq(rng, 3, 7, 3, lengths=[7, 4, 6], zero_steps=[(0, 3)])]


def case_sequential_masked(rng):
    L = K.layers
    m = K.Sequential([K.Input((6,), dtype="int32", name="ids"),
                      L.Embedding(8, 3, mask_zero=True, name="embed"),
                      L.Bidirectional(L.LSTM(3, return_sequences=True, name="lstm"), name="bi"),
                      L.GRU(4, name="gru"),
                      L.Dense(2, name="dense")], name="sequential_masked")
    rand_weights(m, rng)
    return m, [tokens(rng, 3, 6, 8, [6, 3, 4])]


# name -> (builder, seed, keras major, description, covers)
CASES = {
    "cnn_lstm": (case_cnn_lstm, 201, 3,
                 "Input[12,3] -> Conv1D(4,3,valid,relu) -> MaxPooling1D(2) -> LSTM(5) -> Dense(6,relu) -> Dropout -> Dense(2,softmax)",
                 ["Conv1D(padding=valid)", "MaxPooling1D(2)", "LSTM(last)", "Dense", "Dropout", "softmax"]),
    "cnn_lstm_k2": (case_cnn_lstm, 201, 2, "the same model as cnn_lstm made by tf-keras (legacy .h5)",
                    ["Conv1D(padding=valid)", "MaxPooling1D(2)", "LSTM(last)", "Dense", "Dropout", "softmax", "tf-keras h5"]),
    "two_input": (case_two_input, 202, 3,
                  "inputs seq_a[7,3], seq_b[5,4]; LSTM(6) / LSTM(4,seq)->LSTM(3,go_backwards); Dense heads, Concatenate, Dense stack",
                  ["two inputs", "LSTM go_backwards", "Concatenate(axis=-1)", "Dense tanh/relu/elu/sigmoid"]),
    "two_input_k2": (case_two_input, 202, 2, "the same as two_input made by tf-keras",
                     ["two inputs", "LSTM go_backwards", "Concatenate(axis=-1)", "tf-keras h5"]),
    "shared_lstm": (case_shared_lstm, 203, 3,
                    "one LSTM(5,seq) called on two inputs (second masked: calls lstm, lstm#2), Add (mask AND), LSTM(4) -> Dense",
                    ["shared layer (2 inbound nodes)", "Masking on one branch", "Add with masks"]),
    "seq2seq_lstm": (case_seq2seq_lstm, 204, 3,
                     "Masking -> LSTM encoder(return_state) -> [h,c] initial_state of a decoder LSTM(seq) on a masked second input -> Dense; outputs y, encoder:1, encoder:2",
                     ["LSTM return_state", "initial_state", "multiple outputs", "Masking", "mask with initial_state"]),
    "seq2seq_gru": (case_seq2seq_gru, 205, 3,
                    "Embedding(mask_zero) -> GRU encoder(seq, return_state) -> h as initial_state of GRU(reset_after=False) decoder; outputs y, enc_gru:2, masked GlobalAveragePooling1D",
                    ["GRU return_state", "GRU initial_state", "GRU reset_after=False", "Embedding(mask_zero)", "GlobalAveragePooling1D(masked)"]),
    "gru_simple": (case_gru_simple, 206, 3,
                   "Masking -> GRU(reset_after=True) -> GRU(reset_after=False, go_backwards) -> SimpleRNN(relu) -> SimpleRNN(tanh, go_backwards) -> Dense",
                   ["GRU reset_after=True", "GRU reset_after=False", "go_backwards", "SimpleRNN relu/tanh", "Masking (interior zero step)"]),
    "gru_k2": (case_gru_k2, 207, 2,
               "tf-keras: Embedding(mask_zero) -> GRU(reset_after=False, hard_sigmoid) -> GRU(reset_after=True, go_backwards) -> SimpleRNN(relu) -> SimpleRNN -> Dense(softmax)",
               ["tf-keras GRU reset_after=False hard_sigmoid (0.2x+0.5)", "tf-keras GRU reset_after=True", "SimpleRNN", "Embedding(mask_zero, interior 0)"]),
    "merges": (case_merges, 208, 3,
               "two masked inputs; Add, Subtract, Multiply, Average(3), Maximum, Minimum of LSTM sequences (masked and unmasked branches) -> LSTM/GRU/SimpleRNN",
               ["Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "merged masks"]),
    "merges_concat_dot": (case_merges_concat_dot, 209, 3,
                          "Embedding(mask_zero) branches; Concatenate axis -1 (mask+unmasked) and axis 1 (time, masks concatenated); Dot axes=-1, axes=(2,2) normalize=True, axes=1",
                          ["Concatenate(axis=-1)", "Concatenate(axis=1)", "Dot(axes=-1)", "Dot(axes=(2,2),normalize=True)", "Dot(axes=1)", "Flatten"]),
    "conv_variants": (case_conv_variants, 210, 3,
                      "Conv1D same; causal dilation 2; strides 2 valid groups 2 no bias; strides 2 same; AveragePooling1D same/strides 1 and valid/strides 2; GlobalMaxPooling1D",
                      ["Conv1D(padding=same)", "Conv1D(padding=causal,dilation_rate=2)", "Conv1D(strides=2,groups=2,use_bias=False)",
                       "Conv1D(strides=2,padding=same)", "AveragePooling1D(padding=same,strides=1)", "AveragePooling1D(strides=2)", "GlobalMaxPooling1D"]),
    "conv_masked_pool": (case_conv_masked_pool, 211, 3,
                         "Embedding(mask_zero) -> LSTM(seq) -> GlobalAveragePooling1D (masked mean); causal dilated Conv1D on the embedding (mask dropped) -> LSTM -> GlobalMaxPooling1D",
                         ["GlobalAveragePooling1D(masked)", "Conv1D(padding=causal,dilation_rate=2)", "Conv1D drops mask", "GlobalMaxPooling1D"]),
    "merges_k2": (case_merges, 208, 2,
                  "the same model, weights and inputs as merges made by tf-keras: its merge layers AND the masks (Keras 3 ORs them)",
                  ["tf-keras Add/Subtract/Multiply/Average/Maximum/Minimum", "tf-keras merged masks (AND)"]),
    "seq2seq_lstm_k2": (case_seq2seq_lstm, 204, 2,
                        "the same model, weights and inputs as seq2seq_lstm made by tf-keras: here the decoder does get the Masking mask together with initial_state",
                        ["tf-keras LSTM return_state", "tf-keras initial_state", "mask with initial_state"]),
    "conv_k2": (case_conv_k2, 212, 2,
                "tf-keras: Conv1D causal dilation 2, strides 2 same groups 2 no bias, AveragePooling1D same, LSTM, GlobalAveragePooling1D; Conv1D valid -> MaxPooling1D -> GRU",
                ["tf-keras Conv1D(padding=causal,dilation_rate=2)", "Conv1D(strides=2,groups=2,use_bias=False)", "AveragePooling1D(padding=same)",
                 "MaxPooling1D", "GlobalAveragePooling1D", "tf-keras GRU(reset_after=True)"]),
    "shape_layers": (case_shape_layers, 213, 3,
                     "LSTM(last) -> RepeatVector(4) -> LSTM(seq); ZeroPadding1D -> Cropping1D -> UpSampling1D -> LSTM; Permute((2,1)) -> LSTM; Reshape((3,8)) -> SimpleRNN; Flatten",
                     ["RepeatVector", "ZeroPadding1D", "Cropping1D", "UpSampling1D", "Permute", "Reshape", "Flatten"]),
    "norms": (case_norms, 214, 3,
              "Masking -> LayerNormalization -> LSTM -> BatchNormalization -> LSTM -> LayerNormalization(center=False, scale=False) -> LSTM; BatchNormalization(center=False) -> GRU",
              ["LayerNormalization", "LayerNormalization(center=False,scale=False)", "BatchNormalization(inference)", "BatchNormalization(center=False)", "Masking"]),
    "attention": (case_attention, 215, 3,
                  "query/value LSTMs on Embedding(mask_zero) tokens; Attention(use_scale), Attention(score_mode=concat), AdditiveAttention(use_scale), Attention([q,v,key=embedding]), Attention(return_attention_scores=True) (scores = output att_scores:1); Add -> LSTM",
                  ["Attention(use_scale=True)", "Attention(score_mode=concat)", "AdditiveAttention(use_scale=True)", "Attention([query,value,key])",
                   "Attention(return_attention_scores=True)", "query/value masks"]),
    "td_wrappers": (case_td_wrappers, 216, 3,
                    "4-D input [B,5,6,3]: TimeDistributed(Conv1D) -> TimeDistributed(Flatten) -> TimeDistributed(Dense) -> LSTM; TimeDistributed(GlobalAveragePooling1D) -> GRU",
                    ["TimeDistributed(Conv1D)", "TimeDistributed(Flatten)", "TimeDistributed(Dense)", "TimeDistributed(GlobalAveragePooling1D)", "4-D input"]),
    "bidirectional": (case_bidirectional, 217, 3,
                      "Bidirectional(LSTM, merge_mode=None) (two outputs, also model outputs :1); Embedding(mask_zero) -> Bidirectional(GRU, concat) -> Bidirectional(SimpleRNN, sum)",
                      ["Bidirectional(merge_mode=None)", "Bidirectional(GRU, concat, masked)", "Bidirectional(SimpleRNN, sum)", "Add of halves"]),
    "nested": (case_nested, 218, 3,
               "Masking -> Sequential sub-model (Dense -> LSTM) -> Functional sub-model (GRU -> LayerNormalization) inside a Functional model -> LSTM -> Dense; the mask crosses both sub-model boundaries",
               ["nested Sequential", "nested Functional", "inner layer names", "mask into sub-models"]),
    "masked_functional": (case_masked_functional, 219, 3,
                          "Masking feeding two branches: LSTM(seq) -> LSTM; Dense -> GRU(go_backwards); Concatenate -> Dense",
                          ["Masking in Functional (NotEqual/Any op nodes)", "mask through Dense", "GRU go_backwards masked"]),
    "sequential_masked": (case_sequential_masked, 220, 3,
                          "Sequential: Embedding(mask_zero) -> Bidirectional(LSTM, seq, concat) -> GRU -> Dense",
                          ["Sequential", "Bidirectional(LSTM) masked", "GRU"]),
}


# --------------------------------------------------------------------------
# generation
# --------------------------------------------------------------------------

def import_keras(major):
    global K, MAJOR
    MAJOR = major
    if major == 3:
        os.environ.setdefault("KERAS_BACKEND", "jax")
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        if os.environ["KERAS_BACKEND"] != "jax":
            sys.exit("set KERAS_BACKEND=jax")
        import keras
        K = keras
        return keras.__version__, keras.backend.backend()
    import tf_keras
    K = tf_keras
    return tf_keras.__version__, "tensorflow"


def saved_input_names(model):
    cfg = model.get_config()
    if "input_layers" in cfg:
        il = cfg["input_layers"]
        if il and not isinstance(il[0], (list, tuple)):   # single input: [name, 0, 0]
            il = [il]
        return [x[0] for x in il]
    layers = cfg.get("layers", [])
    if layers and layers[0]["class_name"] == "InputLayer":
        return [layers[0]["config"]["name"]]
    return ["input"]


def output_keys(model):
    keys = []
    for t in flatten(model.outputs):
        layer, ni, ti = history(t)
        k = call_name(layer.name, ni)
        if ti >= 1:
            k += f":{ti}"
        keys.append(k)
    assert len(set(keys)) == len(keys), keys
    return keys


def predict(model, xs):
    return [np.asarray(v) for v in flatten(model.predict(xs if len(xs) > 1 else xs[0], verbose=0))]


def make_case(name, out_dir, kversion, backend):
    builder, seed, major, desc, covers = CASES[name]
    if MAJOR == 3:
        K.backend.clear_session()
    else:
        K.backend.clear_session()
    K.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    model, xs = builder(rng)
    in_names = saved_input_names(model)
    assert len(in_names) == len(xs) == len(model.inputs), (in_names, len(xs))
    okeys = output_keys(model)
    report = {"case": name}

    y = predict(model, xs)
    y_eager = [to_np(v) for v in flatten(model([to_t(x) for x in xs] if len(xs) > 1 else to_t(xs[0])))]
    report["predict_vs_eager"] = max(maxdiff(a, b) for a, b in zip(y, y_eager))

    env = {id(t): (n, True) for t, n in zip(model.inputs, in_names)}
    records = []
    diffs = {}
    walk(Scope(model, xs, None, env), diffs, records, None)
    report.update(diffs)
    bad = {k: v for k, v in report.items() if isinstance(v, float) and not v <= TOL}
    if bad:
        raise CheckError(f"{name}: checks beyond {TOL}: {bad}")
    report["max_diff"] = max(v for v in report.values() if isinstance(v, float))

    d = os.path.join(out_dir, name)
    if os.path.isdir(d):
        shutil.rmtree(d)
    os.makedirs(d)
    files = []
    if major == 3:
        model.save(os.path.join(d, "model.keras"))
        model.save(os.path.join(d, "model.h5"))
        files += ["model.keras", "model.h5"]
    else:
        model.save(os.path.join(d, "model.h5"), save_format="h5")
        files += ["model.h5"]
    np.savez_compressed(os.path.join(d, "inputs.npz"), **dict(zip(in_names, xs)))
    arrays = {}
    for k, v in zip(okeys, y):
        arrays[f"y__{k}"] = v.astype(np.float32)
    rec_meta = []
    for r in records:
        for q, g in r["gates"].items():
            arrays[f"gates__{r['call']}__{r['direction']}__{q}"] = g
        arrays[f"mask__{r['call']}"] = r["mask"]
        if r["init"] is not None:
            arrays[f"h0__{r['call']}__{r['direction']}"] = r["init"][0]
            if r["cell"] == "lstm":
                arrays[f"c0__{r['call']}__{r['direction']}"] = r["init"][1]
        rec_meta.append(dict(call=r["call"], layer=r["layer"], direction=r["direction"],
                             cell=r["cell"], units=r["units"], time_from=r["time_from"],
                             aligned=bool(r["aligned"])))
    np.savez_compressed(os.path.join(d, "expected.npz"), **arrays)
    files += ["inputs.npz", "expected.npz", "meta.json"]

    # reload: Keras's own loader must read the files back and predict the same y
    for fn in [f for f in files if f.startswith("model.")]:
        path = os.path.join(d, fn)
        try:
            m2 = K.models.load_model(path, compile=False)
            how = "load_model"
        except Exception as e:  # noqa: BLE001
            if not (MAJOR == 3 and fn.endswith(".h5")):
                raise
            report[f"load_model_failed:{fn}"] = f"{type(e).__name__}: {str(e)[:120]}"
            m2 = K.models.clone_model(model)
            m2.load_weights(path)
            how = "clone_model+load_weights"
        dd = max(maxdiff(a, b) for a, b in zip(predict(m2, xs), y))
        report[f"reload:{fn}"] = dd
        report[f"reload_how:{fn}"] = how
        if dd > TOL:
            raise CheckError(f"{name}: reloaded {fn} predicts differently ({dd})")

    meta = dict(case=name, description=desc, keras_version=kversion, backend=backend,
                files=files,
                inputs=[dict(name=n, shape=[None] + [int(s) for s in x.shape[1:]], dtype=str(x.dtype))
                        for n, x in zip(in_names, xs)],
                outputs=okeys, recurrent=rec_meta, covers=covers,
                gate_source="keras_cell_capture",
                checks=dict(tolerance=TOL, max_abs_diff=report["max_diff"],
                            reload={fn: report[f"reload_how:{fn}"] for fn in files if fn.startswith("model.")}))
    with open(os.path.join(d, "meta.json"), "w") as fh:
        json.dump(meta, fh, indent=1)
    report["bytes"] = sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d))
    return report


def run_cases(names, out_dir, major):
    kversion, backend = import_keras(major)
    failed = []
    for n in names:
        try:
            rep = make_case(n, out_dir, kversion, backend)
            print(json.dumps(rep), flush=True)
        except Exception as e:  # noqa: BLE001
            import traceback
            traceback.print_exc()
            print(f"CASE FAILED: {n}: {type(e).__name__}: {e}", flush=True)
            failed.append(n)
    return failed


def make_bad():
    """Two refusal models (Keras 3): a Lambda layer and a registered custom
    Layer subclass. They only need to load as files."""
    import_keras(3)
    os.makedirs(BAD_OUT, exist_ok=True)
    L = K.layers
    K.backend.clear_session()
    inp = K.Input((5, 3), name="x")
    h = L.LSTM(4, name="lstm")(inp)
    h = L.Lambda(lambda t: t * 2.0, name="lambda_double")(h)
    y = L.Dense(2, name="dense")(h)
    m = K.Model(inp, y, name="lambda_model")
    m.save(os.path.join(BAD_OUT, "lambda.keras"))

    @K.saving.register_keras_serializable(package="gatescope_fixture")
    class Scale(L.Layer):
        def __init__(self, factor=1.5, **kw):
            super().__init__(**kw)
            self.factor = factor

        def call(self, x):
            return x * self.factor

        def get_config(self):
            return dict(super().get_config(), factor=self.factor)

    K.backend.clear_session()
    inp = K.Input((5, 3), name="x")
    h = L.LSTM(4, return_sequences=True, name="lstm")(inp)
    h = Scale(2.0, name="custom_scale")(h)
    h = L.LSTM(3, name="lstm_2")(h)
    y = L.Dense(2, name="dense")(h)
    m = K.Model(inp, y, name="custom_model")
    m.save(os.path.join(BAD_OUT, "custom.keras"))
    # loadable as files: the custom one with its class registered, the lambda
    # one with safe_mode=False
    K.models.load_model(os.path.join(BAD_OUT, "custom.keras"), compile=False)
    K.models.load_model(os.path.join(BAD_OUT, "lambda.keras"), compile=False, safe_mode=False)
    print(f"wrote {BAD_OUT}/lambda.keras and custom.keras", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=DEFAULT_OUT)
    ap.add_argument("--only", nargs="*")
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--no-bad", action="store_true",
                    help="do not write Tests/Fixtures/graph_bad/ (written on a full run)")
    ap.add_argument("--bad", action="store_true",
                    help="only (re)write Tests/Fixtures/graph_bad/")
    ap.add_argument("--keras2", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.list:
        for n, (_, _, major, desc, _) in CASES.items():
            print(f"{n}  (Keras {major})  {desc}")
        return
    if args.bad:
        make_bad()
        return
    names = args.only if args.only is not None else list(CASES)
    unknown = [n for n in names if n not in CASES]
    if unknown:
        sys.exit(f"unknown case(s): {unknown}")
    os.makedirs(args.out, exist_ok=True)
    if args.keras2:
        failed = run_cases([n for n in names if CASES[n][2] == 2], args.out, 2)
        sys.exit(1 if failed else 0)
    failed = []
    k3 = [n for n in names if CASES[n][2] == 3]
    k2 = [n for n in names if CASES[n][2] == 2]
    if k3:
        failed += run_cases(k3, args.out, 3)
    if k2:
        env = dict(os.environ, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="2",
                   TF_ENABLE_ONEDNN_OPTS="0", CUDA_VISIBLE_DEVICES="")
        env.pop("KERAS_BACKEND", None)
        cmd = [sys.executable, os.path.abspath(__file__), "--keras2", "--out", args.out,
               "--only", *k2]
        r = subprocess.run(cmd, env=env)
        if r.returncode != 0:
            failed.append("(Keras 2 part)")
    if args.only is None and not args.no_bad:
        make_bad()
    total = 0
    for root, _, files in os.walk(args.out):
        total += sum(os.path.getsize(os.path.join(root, f)) for f in files)
    print(f"total size of {args.out}: {total} bytes")
    if failed:
        sys.exit(f"FAILED: {failed}")


if __name__ == "__main__":
    main()
