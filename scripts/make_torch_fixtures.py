#!/usr/bin/env python3
"""Generate PyTorch / ONNX reference fixtures for GateScope's Swift tests.

Run (from the repository root):

    nice python3 scripts/make_torch_fixtures.py            # every case + README
    nice python3 scripts/make_torch_fixtures.py --list     # case names
    nice python3 scripts/make_torch_fixtures.py --only onnx_rnn sd_gru

    --only CASE ...   generate only these cases (the README is rebuilt from the
                      meta.json of every case folder present)
    --out DIR         output folder (default: Tests/Fixtures/torch)
    --list            print the case names and exit

Python packages (pip): torch (the CPU build), onnx, onnxruntime, onnxscript
(for torch.onnx.export(dynamo=True)), safetensors, numpy. The versions used are
written into every meta.json and into the README.

What it writes, per case folder Tests/Fixtures/torch/<case>/:
  ONNX cases:       model.onnx, inputs.npz, expected.npz, meta.json
  state-dict cases: model.pt (torch.save zip format), model.safetensors,
                    inputs.npz, expected.npz, meta.json
  bad/:             hostile or unsupported torch files (never loaded here except
                    with torch.load(weights_only=True), which must refuse them)

How the references are made and checked (the script raises on any failure):
  * Every per-step gate value comes from an independent float64 numpy
    implementation: for torch modules from the module's own weights (torch gate
    order i f g o / r z n), for ONNX from the graph's initializers following the
    ONNX operator spec (W/R/B gate order i o f c for LSTM, z r h for GRU,
    peepholes P in order i o f).
  * torch modules: the float64 numpy h/c sequences must equal the torch module
    run in float64 (module.double(); output, h_n, c_n) within 1e-10, and every
    single step is re-run by a one-layer torch module in float64 started from
    numpy's state before that step (h and c after the step within 1e-10). The
    float32 module's output/h_n/c_n (stored as y__*) must be within 1e-5.
  * ONNX: numpy's Y / Y_h / Y_c of every recurrent node must match
    onnxruntime's values of that node (exposed as extra graph outputs) within
    1e-5, and every single step is re-run by onnxruntime with a one-step copy of
    the node (same attributes and weights) started from numpy's state before
    that step. For graphs exported from torch the ONNX gates must also match
    the gates computed from the torch module's weights, and onnxruntime's graph
    outputs must match the torch module's outputs (1e-5).
Weights and inputs come from fixed seeds (torch.manual_seed / numpy
default_rng per case); .npz files are written with fixed zip timestamps.
"""

import argparse
import collections
import copy
import io
import json
import os
import pickletools
import re
import struct
import shutil
import sys
import tempfile
import warnings
import zipfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DEFAULT_OUT = os.path.join(ROOT, "Tests", "Fixtures", "torch")
TOL32 = 1e-5
TOL64 = 1e-10
PWNED = "/tmp/gatescope-pwned"

warnings.filterwarnings("ignore")

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence  # noqa: E402
import onnx  # noqa: E402
from onnx import helper, numpy_helper, TensorProto  # noqa: E402
import onnxruntime as ort  # noqa: E402
import safetensors  # noqa: E402
import safetensors.torch  # noqa: E402

torch.set_num_threads(1)

# the float64 ONNX reference and its onnxruntime checks (shared with make_tf2onnx_fixture.py)
sys.path.insert(0, HERE)
from onnx_reference import (  # noqa: E402
    PLANES, ONNX_CELL, sigmoid, node_attrs, layer_name, onnx_node_reference, ort_session,
    ort_compatible, real_inputs, onnx_values, onnx_step_probe,
)


def versions():
    import onnxscript
    return {"torch": torch.__version__, "onnx": onnx.__version__, "onnxruntime": ort.__version__,
            "onnxscript": onnxscript.__version__, "safetensors": safetensors.__version__,
            "numpy": np.__version__, "python": sys.version.split()[0]}


# --------------------------------------------------------------------------- files

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


# --------------------------------------------------------------------------- torch reference

def torch_cell_dir(cell, x, p, h0, c0, lens, reverse, nonlinearity="tanh"):
    """One direction of one torch layer in float64. x [B,T,In]; p: w_ih w_hh b_ih b_hh w_hr."""
    B, T, _ = x.shape
    k = {"lstm": 4, "gru": 3, "simple_rnn": 1}[cell]
    H = p["w_ih"].shape[0] // k
    w_hr = p.get("w_hr")
    Hr = w_hr.shape[0] if w_hr is not None else H
    b_ih = p["b_ih"] if p.get("b_ih") is not None else np.zeros(k * H)
    b_hh = p["b_hh"] if p.get("b_hh") is not None else np.zeros(k * H)
    nan = np.nan
    planes = {q: np.full((B, T, H), nan) for q in PLANES[cell]}
    state_h = np.full((B, T, Hr), nan)
    h_in = np.full((B, T, Hr), nan)
    c_in = np.full((B, T, H), nan)
    y = np.zeros((B, T, Hr))
    h_last = np.zeros((B, Hr))
    c_last = np.zeros((B, H))
    for b in range(B):
        L = int(lens[b])
        h = h0[b].copy()
        c = c0[b].copy() if cell == "lstm" else None
        for t in (reversed(range(L)) if reverse else range(L)):
            h_in[b, t] = h
            xt = x[b, t]
            if cell == "lstm":
                c_in[b, t] = c
                z = p["w_ih"] @ xt + b_ih + p["w_hh"] @ h + b_hh
                i, f, g, o = sigmoid(z[:H]), sigmoid(z[H:2 * H]), np.tanh(z[2 * H:3 * H]), sigmoid(z[3 * H:])
                c = f * c + i * g
                hh = o * np.tanh(c)
                h = w_hr @ hh if w_hr is not None else hh
                for q, v in zip("ifgoch", (i, f, g, o, c, hh)):
                    planes[q][b, t] = v
            elif cell == "gru":
                gi = p["w_ih"] @ xt + b_ih
                gh = p["w_hh"] @ h + b_hh
                r = sigmoid(gi[:H] + gh[:H])
                zz = sigmoid(gi[H:2 * H] + gh[H:2 * H])
                n = np.tanh(gi[2 * H:] + r * gh[2 * H:])
                h = (1.0 - zz) * n + zz * h
                for q, v in zip("zrnh", (zz, r, n, h)):
                    planes[q][b, t] = v
            else:
                a = p["w_ih"] @ xt + b_ih + p["w_hh"] @ h + b_hh
                h = np.tanh(a) if nonlinearity == "tanh" else np.maximum(a, 0.0)
                planes["h"][b, t] = h
            state_h[b, t] = h
            y[b, t] = h
        h_last[b] = h
        if cell == "lstm":
            c_last[b] = c
    res = {"planes": planes, "state_h": state_h, "h_in": h_in, "y": y, "h_last": h_last}
    if cell == "lstm":
        res["c_in"] = c_in
        res["c_last"] = c_last
        if w_hr is not None:
            res["proj"] = state_h
    return res


def torch_cell_kind(mod):
    if isinstance(mod, nn.LSTM):
        return "lstm"
    if isinstance(mod, nn.GRU):
        return "gru"
    if isinstance(mod, nn.RNN):
        return "simple_rnn"
    raise TypeError(type(mod))


def torch_params(mod, l, sfx):
    out = {}
    for key, n in (("w_ih", "weight_ih"), ("w_hh", "weight_hh"), ("b_ih", "bias_ih"), ("b_hh", "bias_hh"),
                   ("w_hr", "weight_hr")):
        t = getattr(mod, f"{n}_l{l}{sfx}", None)
        out[key] = None if t is None else t.detach().cpu().double().numpy()
    return out


def torch_module_reference(mod, x_bf, lens):
    """float64 numpy run of a whole nn.LSTM/GRU/RNN; x batch-first [B,T,F]."""
    cell = torch_cell_kind(mod)
    B, T, _ = x_bf.shape
    D = 2 if mod.bidirectional else 1
    H = mod.hidden_size
    Hr = getattr(mod, "proj_size", 0) or H
    nonlin = getattr(mod, "nonlinearity", "tanh")
    inp = x_bf.astype(np.float64)
    layers, hn, cn = [], [], []
    for l in range(mod.num_layers):
        outs = []
        for d in range(D):
            p = torch_params(mod, l, "_reverse" if d else "")
            res = torch_cell_dir(cell, inp, p, np.zeros((B, Hr)), np.zeros((B, H)), lens, d == 1, nonlin)
            layers.append({"l": l, "dir": "bwd" if d else "fwd", "res": res, "input": inp, "params": p})
            outs.append(res["y"])
            hn.append(res["h_last"])
            if cell == "lstm":
                cn.append(res["c_last"])
        inp = np.concatenate(outs, axis=-1)
    out = {"output": inp, "h_n": np.stack(hn), "layers": layers, "cell": cell}
    if cell == "lstm":
        out["c_n"] = np.stack(cn)
    return out


def torch_run(mod, x_bf, lens, dtype):
    """torch's own run; returns batch-first output, h_n, c_n (numpy)."""
    m = copy.deepcopy(mod).to(dtype).eval()
    x = torch.tensor(x_bf, dtype=dtype)
    bf = m.batch_first
    if not bf:
        x = x.transpose(0, 1)
    T = x_bf.shape[1]
    with torch.no_grad():
        if lens is not None:
            packed = pack_padded_sequence(x, torch.tensor(lens, dtype=torch.int64), batch_first=bf,
                                          enforce_sorted=False)
            out, st = m(packed)
            out, _ = pad_packed_sequence(out, batch_first=bf, total_length=T)
        else:
            out, st = m(x)
    if not bf:
        out = out.transpose(0, 1)
    res = {"output": out.numpy()}
    if isinstance(st, tuple):
        res["h_n"], res["c_n"] = st[0].numpy(), st[1].numpy()
    else:
        res["h_n"] = st.numpy()
    return res


def torch_step_probe(mod, layer, checks):
    """Re-run every computed step of one layer half with a one-layer torch module in float64."""
    cell = torch_cell_kind(mod)
    p, res, inp = layer["params"], layer["res"], layer["input"]
    H = mod.hidden_size
    kw = dict(num_layers=1, bias=p["b_ih"] is not None, batch_first=True)
    if cell == "lstm":
        probe = nn.LSTM(inp.shape[2], H, proj_size=0 if p["w_hr"] is None else p["w_hr"].shape[0], **kw)
    elif cell == "gru":
        probe = nn.GRU(inp.shape[2], H, **kw)
    else:
        probe = nn.RNN(inp.shape[2], H, nonlinearity=mod.nonlinearity, **kw)
    probe = probe.double().eval()
    with torch.no_grad():
        for key, n in (("w_ih", "weight_ih"), ("w_hh", "weight_hh"), ("b_ih", "bias_ih"), ("b_hh", "bias_hh"),
                       ("w_hr", "weight_hr")):
            if p[key] is not None:
                getattr(probe, f"{n}_l0").copy_(torch.tensor(p[key]))
    T = inp.shape[1]
    tag = f"l{layer['l']}/{layer['dir']}"
    for t in range(T):
        rows = ~np.isnan(res["h_in"][:, t, 0])
        if not rows.any():
            continue
        xt = torch.tensor(inp[:, t:t + 1])
        h0 = torch.tensor(np.nan_to_num(res["h_in"][:, t]))[None]
        with torch.no_grad():
            if cell == "lstm":
                c0 = torch.tensor(np.nan_to_num(res["c_in"][:, t]))[None]
                _, (hn, cn) = probe(xt, (h0, c0))
                checks.cmp("step by step: c after each step vs one-step torch float64 LSTM (all layers)",
                           res["planes"]["c"][rows, t], cn[0].numpy()[rows], TOL64)
            else:
                _, hn = probe(xt, h0)
        checks.cmp("step by step: h after each step vs one-step torch float64 module (all layers)",
                   res["state_h"][rows, t], hn[0].numpy()[rows], TOL64)
    return tag


def check_torch_module(mod, x_bf, lens, checks):
    """All torch checks; returns (reference, torch float32 run)."""
    B, T, _ = x_bf.shape
    L = np.full(B, T, dtype=np.int64) if lens is None else np.asarray(lens, dtype=np.int64)
    ref = torch_module_reference(mod, x_bf.astype(np.float64), L)
    t64 = torch_run(mod, x_bf.astype(np.float64), lens, torch.float64)
    t32 = torch_run(mod, x_bf.astype(np.float32), lens, torch.float32)
    for k in ("output", "h_n", "c_n"):
        if k in t64:
            checks.cmp(f"numpy float64 vs torch float64 module: {k}", ref[k], t64[k], TOL64)
    for layer in ref["layers"]:
        torch_step_probe(mod, layer, checks)
    for k in ("output", "h_n", "c_n"):
        if k in t32:
            checks.cmp(f"numpy float64 vs torch float32 module: {k}", ref[k], t32[k], TOL32)
    return ref, t32


def torch_gate_arrays(prefix, ref, mask):
    arrays = collections.OrderedDict()
    name = lambda l: f"{prefix}.l{l}" if prefix else f"l{l}"
    for layer in ref["layers"]:
        for q in PLANES[ref["cell"]]:
            arrays[f"gates__{name(layer['l'])}__{layer['dir']}__{q}"] = layer["res"]["planes"][q].astype(np.float32)
        if "proj" in layer["res"]:
            arrays[f"proj__{name(layer['l'])}__{layer['dir']}"] = layer["res"]["proj"].astype(np.float32)
    for l in sorted({layer["l"] for layer in ref["layers"]}):
        arrays[f"mask__{name(l)}"] = mask.copy()
    return arrays


def lengths_mask(B, T, lens):
    L = np.full(B, T) if lens is None else np.asarray(lens)
    return np.arange(T)[None, :] < L[:, None]


# --------------------------------------------------------------------------- ONNX case writer
# (the float64 ONNX reference and its onnxruntime checks are in scripts/onnx_reference.py)

def onnx_case(ctx, model, feeds, description, exporter, extra_meta=None, torch_side=None):
    """Writes model.onnx, inputs.npz, expected.npz, meta.json for one ONNX case."""
    onnx.checker.check_model(model)
    onnx.save(model, os.path.join(ctx.dir, "model.onnx"))  # one self-contained file (no external data)
    model = onnx.load(os.path.join(ctx.dir, "model.onnx"))
    assert not any(t.data_location == TensorProto.EXTERNAL for t in model.graph.initializer)
    inputs = real_inputs(model)
    assert [i.name for i in inputs] == list(feeds), (list(feeds), [i.name for i in inputs])
    write_npz(os.path.join(ctx.dir, "inputs.npz"), feeds)
    ort_model, rewritten = ort_compatible(model)
    sess = ort_session(ort_model)
    out_names = [o.name for o in model.graph.output]
    y = sess.run(out_names, feeds)
    expected = collections.OrderedDict((f"y__{n}", v) for n, v in zip(out_names, y))
    rec = [(i, n) for i, n in enumerate(model.graph.node) if n.op_type in ONNX_CELL]
    vals, node_outs = onnx_values(model, feeds, rec)
    recurrent = []
    refs = []
    for (idx, node), outs in zip(rec, node_outs):
        ref = onnx_node_reference(node, vals)
        refs.append((idx, node, ref))
        lname = layer_name(node, idx)
        for j, (mine, oname) in enumerate(zip(ref["outs"], outs)):
            label = ["Y", "Y_h", "Y_c"][j]
            checks_key = f"numpy float64 (ONNX spec, initializers) vs onnxruntime: {label} of every recurrent node"
            ctx.checks.cmp(checks_key, mine, vals[oname], TOL32)
        onnx_step_probe(node, vals, ref, ctx.checks)
        at = node_attrs(node)
        cell = ONNX_CELL[node.op_type]
        for dn, r in ref["dirs"].items():
            for q in PLANES[cell]:
                expected[f"gates__{lname}__{dn}__{q}"] = r["planes"][q].astype(np.float32)
            entry = {"layer": lname, "direction": dn, "cell": cell, "units": ref["H"], "node_index": idx,
                     "op_type": node.op_type}
            for key in ("layout", "clip", "input_forget", "linear_before_reset", "activations",
                        "activation_alpha", "activation_beta"):
                if key in at:
                    entry[key] = at[key]
            recurrent.append(entry)
        expected[f"mask__{lname}"] = ref["mask"]
    if torch_side is not None:
        torch_side(expected, refs, vals)
    write_npz(os.path.join(ctx.dir, "expected.npz"), expected)
    opset = [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")][0]
    meta = collections.OrderedDict(
        case=ctx.name, description=description, kind="onnx", torch_version=torch.__version__,
        onnx_opset=opset, exporter=exporter, ir_version=model.ir_version,
        inputs=[{"name": i.name, "shape": list(feeds[i.name].shape), "dtype": str(feeds[i.name].dtype),
                 "graph_shape": [d.dim_param if d.dim_param else d.dim_value
                                 for d in i.type.tensor_type.shape.dim]} for i in inputs],
        outputs=out_names, recurrent=recurrent,
        op_types=sorted({n.op_type for n in model.graph.node}),
        nodes=[[n.name, n.op_type] for n in model.graph.node])
    if rewritten:
        meta["onnxruntime_note"] = ("onnxruntime refuses layout=1 recurrent nodes; every onnxruntime run used an "
                                    "equivalent graph: the node with layout=0 between Transposes")
    if extra_meta:
        meta.update(extra_meta)
    ctx.meta = meta
    return expected


# --------------------------------------------------------------------------- case registry

CASES = collections.OrderedDict()


def case(name):
    def deco(fn):
        CASES[name] = fn
        return fn
    return deco


class Ctx:
    def __init__(self, name, out):
        self.name = name
        self.dir = os.path.join(out, name)
        os.makedirs(self.dir, exist_ok=True)
        for f in os.listdir(self.dir):
            os.remove(os.path.join(self.dir, f))
        self.tmp = tempfile.mkdtemp(prefix="gatescope-torch-fixtures-")  # exporters write here first
        self.checks = Checks(name)
        self.meta = None
        self.method = ""


def export_ts(mod, args, path, input_names, output_names, dynamic_axes, opset=17):
    torch.onnx.export(mod, args, path, dynamo=False, opset_version=opset, input_names=input_names,
                      output_names=output_names, dynamic_axes=dynamic_axes)
    return onnx.load(path)


ONNX_METHOD = (
    "Gates: float64 numpy run of every LSTM/GRU/RNN node from the ONNX initializers, following the "
    "ONNX operator spec, on the node's actual inputs (X, initial_h/c as onnxruntime computes them, "
    "exposed as extra graph outputs). Checked: numpy's Y, Y_h (and Y_c) against onnxruntime's outputs "
    "of the same node (tol 1e-5); every step re-run by onnxruntime with a one-step copy of the node "
    "(same attributes and weights) started from numpy's state before that step (h and c after the "
    "step, tol 1e-5). y__* are onnxruntime's graph outputs.")
TORCH_ONNX_METHOD = ONNX_METHOD + (
    " Also: the ONNX gates equal the gates computed from the torch module's own weights "
    "(torch gate order, float64, tol 1e-5; layer k of the torch module = the k-th recurrent node), "
    "the torch-side reference is checked against the module run in float64 (1e-10, step by step too), "
    "and onnxruntime's graph outputs match the torch module's outputs (tol 1e-5).")
SD_METHOD = (
    "Gates: float64 numpy run of the module from its state-dict weights (torch gate order). Checked: "
    "numpy's output / h_n / c_n against the torch module run in float64 (module.double(), "
    "pack_padded_sequence(enforce_sorted=False) when there are lengths) within 1e-10; every computed "
    "step of every layer half re-run by a one-layer torch module in float64 started from numpy's state "
    "before that step (h, proj and c after the step, 1e-10); and against the float32 module (1e-5). "
    "y__* are the float32 torch module's own output (batch-first, zeros at padded steps), h_n, c_n.")


def torch_onnx_side(mod_rnn, rnn_input_fn, torch_outputs, ctx):
    """Adds the torch-side checks for graphs exported from torch."""
    def side(expected, refs, vals):
        x_rnn, lens = rnn_input_fn()
        tref, _ = check_torch_module(mod_rnn, x_rnn, lens, ctx.checks)
        by_layer = collections.defaultdict(dict)
        for layer in tref["layers"]:
            by_layer[layer["l"]][layer["dir"]] = layer["res"]
        assert len(refs) == mod_rnn.num_layers, (len(refs), mod_rnn.num_layers)
        for k, (idx, node, ref) in enumerate(refs):
            for dn, r in ref["dirs"].items():
                for q in r["planes"]:
                    ctx.checks.cmp("ONNX gates vs gates from the torch module's weights (all planes)",
                                   r["planes"][q], by_layer[k][dn]["planes"][q], TOL32)
        for name, want in torch_outputs.items():
            ctx.checks.cmp(f"onnxruntime graph output vs torch module: {name}", expected[f"y__{name}"], want, TOL32)
    return side


# --------------------------------------------------------------------------- ONNX cases from torch

class EmbLSTM(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(20, 8)
        self.lstm = nn.LSTM(8, 6, num_layers=2, bidirectional=True, batch_first=True)
        self.head = nn.Linear(12, 3)

    def forward(self, tokens):
        y, _ = self.lstm(self.emb(tokens))
        return self.head(y[:, -1, :])


def emb_lstm_case(ctx, dynamo):
    torch.manual_seed(101)
    mod = EmbLSTM().eval()
    rng = np.random.default_rng(101)
    tokens = rng.integers(0, 20, size=(3, 6)).astype(np.int64)
    path = os.path.join(ctx.tmp, "model.onnx")
    if dynamo:
        Dim = torch.export.Dim
        torch.onnx.export(mod, (torch.tensor(tokens),), path, dynamo=True, input_names=["tokens"],
                          output_names=["logits"], verbose=False,
                          dynamic_shapes={"tokens": {0: Dim("batch"), 1: Dim("time")}})
        model = onnx.load(path)
        exporter = "dynamo"
    else:
        model = export_ts(mod, (torch.tensor(tokens),), path, ["tokens"], ["logits"],
                          {"tokens": {0: "batch", 1: "time"}, "logits": {0: "batch"}})
        exporter = "torchscript"
    with torch.no_grad():
        logits = mod(torch.tensor(tokens)).numpy()
        emb = mod.emb(torch.tensor(tokens)).double().numpy()
    desc = ("nn.Embedding(20, 8) -> nn.LSTM(8, 6, num_layers=2, bidirectional=True, batch_first=True) -> "
            f"nn.Linear(12, 3) on the last step; int64 tokens [batch, time] with dynamic batch/time axes; "
            f"torch.onnx.export(dynamo={dynamo}).")
    ctx.method = TORCH_ONNX_METHOD
    onnx_case(ctx, model, {"tokens": tokens}, desc, exporter,
              torch_side=torch_onnx_side(mod.lstm, lambda: (emb, None), {"logits": logits}, ctx))


@case("onnx_lstm_bi2_ts")
def c_onnx_lstm_bi2_ts(ctx):
    emb_lstm_case(ctx, dynamo=False)


@case("onnx_lstm_bi2_dynamo")
def c_onnx_lstm_bi2_dynamo(ctx):
    emb_lstm_case(ctx, dynamo=True)


class GRUNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.gru = nn.GRU(4, 5, batch_first=True, bidirectional=True)
        self.head = nn.Linear(10, 2)

    def forward(self, x):
        y, h = self.gru(x)
        return self.head(y), h


@case("onnx_gru_ts")
def c_onnx_gru_ts(ctx):
    torch.manual_seed(103)
    mod = GRUNet().eval()
    rng = np.random.default_rng(103)
    x = rng.normal(size=(3, 7, 4)).astype(np.float32)
    model = export_ts(mod, (torch.tensor(x),), os.path.join(ctx.tmp, "model.onnx"), ["x"], ["y", "h_n"],
                      {"x": {0: "batch", 1: "time"}, "y": {0: "batch", 1: "time"}, "h_n": {1: "batch"}})
    with torch.no_grad():
        y, h = mod(torch.tensor(x))
    desc = ("float input x [batch, time, 4] -> nn.GRU(4, 5, batch_first=True, bidirectional=True) -> "
            "nn.Linear(10, 2) on every step; outputs y [batch, time, 2] and the GRU's h_n [2, batch, 5]; "
            "TorchScript exporter, opset 17 (GRU op with linear_before_reset=1).")
    ctx.method = TORCH_ONNX_METHOD
    onnx_case(ctx, model, {"x": x}, desc, "torchscript",
              torch_side=torch_onnx_side(mod.gru, lambda: (x.astype(np.float64), None),
                                         {"y": y.numpy(), "h_n": h.numpy()}, ctx))


class AroundOps(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(12, 4)
        self.lstm = nn.LSTM(4, 5)
        self.proj = nn.Linear(5, 5)
        self.head = nn.Linear(5, 3)
        self.mix = nn.Linear(10, 3)

    def forward(self, tokens):
        B, T = tokens.shape[0], tokens.shape[1]
        e = self.emb(tokens).transpose(0, 1)                   # Gather, Transpose
        h0 = torch.zeros(1, B, 5)                              # ConstantOfShape
        c0 = torch.ones(1, 1, 5).expand(1, B, 5) * 0.1         # Expand, Mul
        y, (h, c) = self.lstm(e, (h0, c0))
        y = y.transpose(0, 1).reshape(B, T, -1)                # Squeeze, Transpose, Shape->Gather->Concat->Reshape
        p = torch.relu(self.proj(y))                           # MatMul + Add, Relu
        a = torch.softmax(p, dim=-1)                           # Softmax
        q = (torch.sigmoid(y) * torch.tanh(p) - a) / 2.0       # Sigmoid Tanh Mul Sub Div
        first, _ = torch.split(q, [2, 3], dim=2)               # Split
        mask = (tokens > 0).float().unsqueeze(-1)              # Greater, Cast, Unsqueeze
        pooled = (q * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        logp = torch.log_softmax(self.head(y[:, -1, :]), dim=-1)  # Gather, Gemm, LogSoftmax
        f = torch.flatten(torch.cat([h.squeeze(0), pooled], dim=1), 1)  # Squeeze, Concat, Flatten
        return logp, a, self.mix(f), first[:, 1:3]             # Gemm, Slice


@case("onnx_around_ops")
def c_onnx_around_ops(ctx):
    torch.manual_seed(109)
    mod = AroundOps().eval()
    rng = np.random.default_rng(109)
    tokens = rng.integers(0, 12, size=(3, 6)).astype(np.int64)
    tokens[1, 4:] = 0
    tokens[2, 2:] = 0
    path = os.path.join(ctx.tmp, "model.onnx")
    model = export_ts(mod, (torch.tensor(tokens),), path, ["tokens"], ["logp", "attn", "mix_pre", "part"],
                      {"tokens": {0: "batch", 1: "time"}})
    # hand-built tail: Identity (named) and an unnamed Cast/Sub/Mul chain on the exported outputs
    g = model.graph
    g.node.append(helper.make_node("Identity", ["mix_pre"], ["mix"], name="tail/Identity"))
    g.node.append(helper.make_node("Constant", [], ["tail_two"],
                                   value=numpy_helper.from_array(np.array(2, dtype=np.int64), "tail_two")))
    g.node.append(helper.make_node("Cast", ["tail_two"], ["tail_two_f"], to=TensorProto.FLOAT))
    g.node.append(helper.make_node("Mul", ["logp", "tail_two_f"], ["tail_scaled"]))
    g.node.append(helper.make_node("Sub", ["tail_scaled", "logp"], ["logp_again"], name="tail/Sub"))
    outs = list(g.output)
    del g.output[:]
    for o in outs:
        if o.name == "mix_pre":
            g.output.append(helper.make_tensor_value_info("mix", TensorProto.FLOAT, ["batch", 3]))
        else:
            g.output.append(o)
    g.output.append(helper.make_tensor_value_info("logp_again", TensorProto.FLOAT, ["batch", 3]))
    with torch.no_grad():
        logp, a, mix, part = [t.numpy() for t in mod(torch.tensor(tokens))]
        emb = mod.emb(torch.tensor(tokens)).double().numpy()
    desc = ("TorchScript export (opset 17) of a module whose forward uses the ops exporters emit around an "
            "LSTM (embedding Gather, transpose, zeros/expand initial states, reshape with x.shape, Linear on 3-D "
            "input = MatMul+Add, relu/sigmoid/tanh, softmax, log_softmax, split, masking with Greater/Cast, "
            "sum/clamp, flatten, slicing), plus a hand-built tail appended with onnx.helper (Identity named "
            "'tail/Identity', unnamed Constant/Cast/Mul, Sub 'tail/Sub' producing 'logp_again' = logp). "
            "The LSTM has initial_h = zeros and initial_c = 0.1 computed in the graph.")
    ctx.method = TORCH_ONNX_METHOD + " The extra output logp_again must equal logp."

    def side(expected, refs, vals):
        # torch-side: the LSTM runs from (0, 0.1) initial states, time-major input
        lstm = mod.lstm
        B, T = tokens.shape
        ref = torch_cell_dir("lstm", emb, torch_params(lstm, 0, ""), np.zeros((B, 5)), np.full((B, 5), 0.1),
                             np.full(B, T), False)
        with torch.no_grad():
            l64 = copy.deepcopy(lstm).double()
            out, (hn, cn) = l64(torch.tensor(emb).transpose(0, 1),
                                (torch.zeros(1, B, 5, dtype=torch.float64),
                                 torch.full((1, B, 5), 0.1, dtype=torch.float64)))
        ctx.checks.cmp("numpy float64 vs torch float64 module: output", ref["y"], out.transpose(0, 1).numpy(), TOL64)
        ctx.checks.cmp("numpy float64 vs torch float64 module: c_n", ref["c_last"], cn[0].numpy(), TOL64)
        torch_step_probe(lstm, {"params": torch_params(lstm, 0, ""), "res": ref, "input": emb, "l": 0,
                                "dir": "fwd"}, ctx.checks)
        (idx, node, oref), = refs
        for q in PLANES["lstm"]:
            ctx.checks.cmp("ONNX gates vs gates from the torch module's weights (all planes)",
                           oref["dirs"]["fwd"]["planes"][q], ref["planes"][q], TOL32)
        for name, want in (("logp", logp), ("attn", a), ("mix", mix), ("part", part)):
            ctx.checks.cmp(f"onnxruntime graph output vs torch module: {name}", expected[f"y__{name}"], want, TOL32)
        ctx.checks.cmp("onnxruntime: logp_again vs logp", expected["y__logp_again"], expected["y__logp"], 1e-6)

    onnx_case(ctx, model, {"tokens": tokens}, desc, "torchscript", torch_side=side,
              extra_meta={"hand_built_tail": ["tail/Identity", "Constant_" + str(len(model.graph.node) - 4),
                                              "Cast_" + str(len(model.graph.node) - 3),
                                              "Mul_" + str(len(model.graph.node) - 2), "tail/Sub"]})


# --------------------------------------------------------------------------- hand-built ONNX cases

def f32(a):
    return np.asarray(a, dtype=np.float32)


def hand_model(nodes, inputs, outputs, inits, opset=17):
    g = helper.make_graph(nodes, "gatescope_fixture", inputs, outputs, inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], producer_name="make_torch_fixtures")
    m.ir_version = 8
    return m


def vi(name, dtype, shape):
    return helper.make_tensor_value_info(name, dtype, shape)


def rnn_weights(rng, op, nd, In, H, scale=0.5):
    k = {"LSTM": 4, "GRU": 3, "RNN": 1}[op]
    W = f32(rng.normal(scale=scale, size=(nd, k * H, In)))
    R = f32(rng.normal(scale=scale, size=(nd, k * H, H)))
    B = f32(rng.normal(scale=scale * 0.5, size=(nd, 2 * k * H)))
    return W, R, B


@case("onnx_lstm_seqlens")
def c_onnx_lstm_seqlens(ctx):
    rng = np.random.default_rng(104)
    T, B, In, H, nd = 5, 3, 3, 4, 2
    W, R, Bb = rnn_weights(rng, "LSTM", nd, In, H)
    X = f32(rng.normal(size=(T, B, In)))
    lens = np.array([5, 3, 1], dtype=np.int32)
    h0 = f32(rng.normal(scale=0.3, size=(nd, B, H)))
    c0 = f32(rng.normal(scale=0.3, size=(nd, B, H)))
    inits = [numpy_helper.from_array(W, "W"), numpy_helper.from_array(R, "R"), numpy_helper.from_array(Bb, "B"),
             numpy_helper.from_array(c0, "initial_c")]
    node = helper.make_node("LSTM", ["X", "W", "R", "B", "sequence_lens", "initial_h", "initial_c"],
                            ["Y", "Y_h", "Y_c"], name="lstm_seqlens", hidden_size=H, direction="bidirectional",
                            layout=0)
    model = hand_model([node], [vi("X", TensorProto.FLOAT, [T, B, In]), vi("sequence_lens", TensorProto.INT32, [B]),
                                vi("initial_h", TensorProto.FLOAT, [nd, B, H])],
                       [vi("Y", TensorProto.FLOAT, [T, nd, B, H]), vi("Y_h", TensorProto.FLOAT, [nd, B, H]),
                        vi("Y_c", TensorProto.FLOAT, [nd, B, H])], inits)
    desc = ("Hand-built LSTM op, direction=bidirectional, layout=0, hidden 4: graph inputs X [5,3,3], "
            "sequence_lens int32 [5,3,1], initial_h [2,3,4]; initial_c is an initializer; W, R, B initializers. "
            "Steps past a sequence's length are not computed (NaN gates, Y = 0 there); the backward half "
            "starts at each sequence's last real step.")
    ctx.method = ONNX_METHOD
    onnx_case(ctx, model, {"X": X, "sequence_lens": lens, "initial_h": h0}, desc, "manual")


@case("onnx_lstm_peephole_clip")
def c_onnx_lstm_peephole_clip(ctx):
    rng = np.random.default_rng(105)
    T, B, In, H, nd = 6, 3, 3, 4, 1
    W, R, _ = rnn_weights(rng, "LSTM", nd, In, H, scale=0.9)
    P = f32(rng.normal(scale=0.8, size=(nd, 3 * H)))
    X = f32(rng.normal(size=(T, B, In)))
    inits = [numpy_helper.from_array(W, "W"), numpy_helper.from_array(R, "R"), numpy_helper.from_array(P, "P")]
    node = helper.make_node("LSTM", ["X", "W", "R", "", "", "", "", "P"], ["Y", "Y_h", "Y_c"],
                            name="lstm_peep", hidden_size=H, direction="reverse", clip=0.5, input_forget=1)
    model = hand_model([node], [vi("X", TensorProto.FLOAT, [T, B, In])],
                       [vi("Y", TensorProto.FLOAT, [T, nd, B, H]), vi("Y_h", TensorProto.FLOAT, [nd, B, H]),
                        vi("Y_c", TensorProto.FLOAT, [nd, B, H])], inits)
    desc = ("Hand-built LSTM op, direction=reverse (only a bwd half), peepholes P [1,12] (order i o f), clip=0.5 "
            "(applied to every gate pre-activation incl. peephole and bias; with input_forget=1 |c| <= tanh(clip) < clip, so "
            "clipping c before h() could not show), input_forget=1 "
            "(f = 1 - i, onnxruntime's semantics), no B (empty input name), no sequence_lens/initial states.")
    ctx.method = ONNX_METHOD
    onnx_case(ctx, model, {"X": X}, desc, "manual")


@case("onnx_lstm_layout1_acts")
def c_onnx_lstm_layout1_acts(ctx):
    rng = np.random.default_rng(106)
    T, B, In, H, nd = 5, 3, 4, 3, 2
    W, R, Bb = rnn_weights(rng, "LSTM", nd, In, H, scale=0.8)
    X = f32(rng.normal(size=(B, T, In)))
    h0 = f32(rng.normal(scale=0.3, size=(B, nd, H)))
    c0 = f32(rng.normal(scale=0.3, size=(B, nd, H)))
    inits = [numpy_helper.from_array(W, "W"), numpy_helper.from_array(R, "R"), numpy_helper.from_array(Bb, "B")]
    acts = ["HardSigmoid", "Tanh", "Tanh", "Sigmoid", "Tanh", "Relu"]
    node = helper.make_node("LSTM", ["X", "W", "R", "B", "", "initial_h", "initial_c"], ["Y", "Y_h", "Y_c"],
                            name="lstm_layout1", hidden_size=H, direction="bidirectional", layout=1,
                            activations=acts, activation_alpha=[0.25], activation_beta=[0.45])
    model = hand_model([node], [vi("X", TensorProto.FLOAT, [B, T, In]), vi("initial_h", TensorProto.FLOAT, [B, nd, H]),
                                vi("initial_c", TensorProto.FLOAT, [B, nd, H])],
                       [vi("Y", TensorProto.FLOAT, [B, T, nd, H]), vi("Y_h", TensorProto.FLOAT, [B, nd, H]),
                        vi("Y_c", TensorProto.FLOAT, [B, nd, H])], inits)
    desc = ("Hand-built LSTM op, layout=1 (X [batch,time,in], initial_h/c and Y_h/Y_c [batch,num_dir,hidden], "
            "Y [batch,time,num_dir,hidden]), bidirectional, activations fwd (f,g,h) = HardSigmoid, Tanh, Tanh and "
            "bwd = Sigmoid, Tanh, Relu; activation_alpha=[0.25], activation_beta=[0.45] (used by HardSigmoid, "
            "the only activation taking alpha/beta; deliberately not the 0.2/0.5 defaults).")
    ctx.method = ONNX_METHOD
    onnx_case(ctx, model, {"X": X, "initial_h": h0, "initial_c": c0}, desc, "manual")


@case("onnx_gru_lbr0")
def c_onnx_gru_lbr0(ctx):
    rng = np.random.default_rng(107)
    T, B, In, H, nd = 6, 3, 3, 5, 2
    W, R, Bb = rnn_weights(rng, "GRU", nd, In, H, scale=0.7)
    X = f32(rng.normal(size=(T, B, In)))
    lens = np.array([6, 2, 4], dtype=np.int32)
    inits = [numpy_helper.from_array(W, "W"), numpy_helper.from_array(R, "R"), numpy_helper.from_array(Bb, "B")]
    node = helper.make_node("GRU", ["X", "W", "R", "B", "sequence_lens"], ["Y", "Y_h"], name="gru_lbr0",
                            hidden_size=H, direction="bidirectional", linear_before_reset=0)
    model = hand_model([node], [vi("X", TensorProto.FLOAT, [T, B, In]), vi("sequence_lens", TensorProto.INT32, [B])],
                       [vi("Y", TensorProto.FLOAT, [T, nd, B, H]), vi("Y_h", TensorProto.FLOAT, [nd, B, H])], inits)
    desc = ("Hand-built GRU op, linear_before_reset=0 (n = g(Wh x + Rh (r*h) + Rbh + Wbh)), bidirectional, "
            "sequence_lens int32 [6,2,4], W/R/B gate order z r h.")
    ctx.method = ONNX_METHOD
    onnx_case(ctx, model, {"X": X, "sequence_lens": lens}, desc, "manual")


@case("onnx_rnn")
def c_onnx_rnn(ctx):
    rng = np.random.default_rng(108)
    T, B, In, H, nd = 5, 3, 3, 4, 2
    W, R, Bb = rnn_weights(rng, "RNN", nd, In, H, scale=0.7)
    X = f32(rng.normal(size=(T, B, In)))
    inits = [numpy_helper.from_array(W, "W"), numpy_helper.from_array(R, "R"), numpy_helper.from_array(Bb, "B")]
    nodes = [helper.make_node("Identity", ["X"], ["X_id"], name="x_identity"),
             helper.make_node("RNN", ["X_id", "W", "R", "B"], ["Y", "Y_h"], hidden_size=H,
                              direction="bidirectional", activations=["Tanh", "Tanh"])]
    model = hand_model(nodes, [vi("X", TensorProto.FLOAT, [T, B, In])],
                       [vi("Y", TensorProto.FLOAT, [T, nd, B, H]), vi("Y_h", TensorProto.FLOAT, [nd, B, H])], inits)
    desc = ("Hand-built RNN op (Tanh), bidirectional, hidden 4, after an Identity node. The RNN node has an EMPTY "
            "name, so its layer is named RNN_1 (<OpType>_<index in graph.node>).")
    ctx.method = ONNX_METHOD
    onnx_case(ctx, model, {"X": X}, desc, "manual")


@case("onnx_bad_op")
def c_onnx_bad_op(ctx):
    rng = np.random.default_rng(110)
    T, B, In, H = 5, 3, 3, 4
    W, R, Bb = rnn_weights(rng, "LSTM", 1, In, H)
    M = f32(rng.normal(size=(H, 2)))
    X = f32(rng.normal(size=(T, B, In)))
    inits = [numpy_helper.from_array(W, "W"), numpy_helper.from_array(R, "R"), numpy_helper.from_array(Bb, "B"),
             numpy_helper.from_array(M, "M")]
    nodes = [helper.make_node("LSTM", ["X", "W", "R", "B"], ["Y", "Y_h"], name="lstm", hidden_size=H),
             helper.make_node("Einsum", ["Y_h", "M"], ["out"], name="mix_einsum", equation="dbh,hk->dbk")]
    model = hand_model(nodes, [vi("X", TensorProto.FLOAT, [T, B, In])], [vi("out", TensorProto.FLOAT, [1, B, 2])], inits)
    onnx.checker.check_model(model)
    onnx.save(model, os.path.join(ctx.dir, "model.onnx"))
    write_npz(os.path.join(ctx.dir, "inputs.npz"), {"X": X})
    out = ort_session(model).run(None, {"X": X})[0]  # onnxruntime itself runs it
    assert out.shape == (1, B, 2)
    ctx.method = "Refusal test only: no expected.npz. onnxruntime runs the graph (so it is valid ONNX)."
    ctx.meta = collections.OrderedDict(
        case=ctx.name, description="LSTM followed by an Einsum node (unsupported by GateScope): the importer "
        "must refuse the graph naming node 'mix_einsum' (op Einsum).", kind="onnx",
        torch_version=torch.__version__, onnx_opset=17, exporter="manual", ir_version=model.ir_version,
        inputs=[{"name": "X", "shape": list(X.shape), "dtype": "float32"}], outputs=["out"],
        unsupported=[{"node": "mix_einsum", "op_type": "Einsum", "node_index": 1}],
        op_types=["Einsum", "LSTM"], nodes=[[n.name, n.op_type] for n in model.graph.node])


# --------------------------------------------------------------------------- state-dict cases

def save_state_dict(ctx, sd):
    torch.save(sd, os.path.join(ctx.dir, "model.pt"))
    safetensors.torch.save_file({k: v.contiguous() for k, v in sd.items()}, os.path.join(ctx.dir, "model.safetensors"))
    # the saved files round-trip to the same tensors
    back = torch.load(os.path.join(ctx.dir, "model.pt"), weights_only=True)
    back2 = safetensors.torch.load_file(os.path.join(ctx.dir, "model.safetensors"))
    for k, v in sd.items():
        assert torch.equal(back[k], v) and torch.equal(back2[k], v) and back[k].dtype == v.dtype, k


def sd_case(ctx, sd, rnn, prefix, x, lens, description, extra=None):
    """rnn: the nn.LSTM/GRU/RNN whose keys in sd start with prefix + '.' (or no prefix)."""
    save_state_dict(ctx, sd)
    B, T, _ = x.shape
    ref, t32 = check_torch_module(rnn, x, lens, ctx.checks)
    feeds = collections.OrderedDict(x=x.astype(np.float32))
    if lens is not None:
        feeds["lengths"] = np.asarray(lens, dtype=np.int64)
    write_npz(os.path.join(ctx.dir, "inputs.npz"), feeds)
    expected = collections.OrderedDict()
    expected["y__output"] = t32["output"].astype(np.float32)
    expected["y__h_n"] = t32["h_n"].astype(np.float32)
    if "c_n" in t32:
        expected["y__c_n"] = t32["c_n"].astype(np.float32)
    expected.update(torch_gate_arrays(prefix, ref, lengths_mask(B, T, lens)))
    write_npz(os.path.join(ctx.dir, "expected.npz"), expected)
    cell = ref["cell"]
    proj = getattr(rnn, "proj_size", 0)
    lname = lambda l: f"{prefix}.l{l}" if prefix else f"l{l}"
    recurrent = []
    for layer in ref["layers"]:
        e = {"layer": lname(layer["l"]), "direction": layer["dir"], "cell": cell, "units": rnn.hidden_size}
        if proj:
            e["proj_size"] = proj
        recurrent.append(e)
    dtypes = sorted({str(v.dtype).replace("torch.", "") for k, v in sd.items()})
    meta = collections.OrderedDict(
        case=ctx.name, description=description, kind="state_dict", torch_version=torch.__version__,
        files=["model.pt", "model.safetensors"],
        inputs=[{"name": k, "shape": list(v.shape), "dtype": str(v.dtype)} for k, v in feeds.items()],
        outputs=["output", "h_n"] + (["c_n"] if cell == "lstm" else []), recurrent=recurrent,
        module=prefix, cell=cell, num_layers=rnn.num_layers, bidirectional=rnn.bidirectional,
        batch_first=rnn.batch_first, proj_size=proj, bias=rnn.bias, input_size=rnn.input_size,
        hidden_size=rnn.hidden_size, weight_dtypes=dtypes, keys=list(sd.keys()))
    if cell == "simple_rnn":
        meta["nonlinearity"] = rnn.nonlinearity
    if extra:
        meta.update(extra)
    ctx.meta = meta
    ctx.method = SD_METHOD


class EncoderHead(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = nn.LSTM(5, 6, num_layers=2, bidirectional=True, batch_first=True)
        self.head = nn.Linear(12, 2)


@case("sd_lstm_bi2")
def c_sd_lstm_bi2(ctx):
    torch.manual_seed(111)
    m = EncoderHead().eval()
    x = np.random.default_rng(111).normal(size=(3, 7, 5)).astype(np.float32)
    lens = [7, 4, 2]
    sd_case(ctx, m.state_dict(), m.encoder, "encoder", x, lens,
            "Module with self.encoder = nn.LSTM(5, 6, num_layers=2, bidirectional=True, batch_first=True) and "
            "self.head = nn.Linear(12, 2) (the file has head.* keys too); inputs with lengths [7, 4, 2] "
            "(pack_padded_sequence(enforce_sorted=False): padded steps not computed, the backward half starts at "
            "each sequence's last real step). Expected is for the encoder LSTM only.")


@case("sd_lstm_proj")
def c_sd_lstm_proj(ctx):
    torch.manual_seed(112)
    m = nn.LSTM(4, 8, proj_size=3, num_layers=2, batch_first=False).eval()
    x = np.random.default_rng(112).normal(size=(3, 6, 4)).astype(np.float32)
    sd_case(ctx, m.state_dict(), m, "", x, None,
            "Bare nn.LSTM(4, 8, proj_size=3, num_layers=2, batch_first=False) saved directly (keys without prefix: "
            "weight_ih_l0, weight_hh_l0, bias_ih_l0, bias_hh_l0, weight_hr_l0, ...); full-length sequences. x in "
            "inputs.npz is batch-first as always (the module itself is time-major). gates h = o*tanh(c) [.., 8] "
            "before the projection; proj__l<k>__fwd = h_r = W_hr h [.., 3] (the recurrent state and the layer "
            "output); y__output [3, 6, 3], y__h_n [2, 3, 3], y__c_n [2, 3, 8].")


class RNNHolder(nn.Module):
    def __init__(self, rnn):
        super().__init__()
        self.rnn = rnn


@case("sd_gru")
def c_sd_gru(ctx):
    torch.manual_seed(113)
    m = RNNHolder(nn.GRU(4, 5, num_layers=2, batch_first=True)).eval()
    x = np.random.default_rng(113).normal(size=(3, 6, 4)).astype(np.float32)
    sd_case(ctx, m.state_dict(), m.rnn, "rnn", x, [6, 3, 5],
            "self.rnn = nn.GRU(4, 5, num_layers=2, batch_first=True), lengths [6, 3, 5]. Planes z r n h "
            "(torch weight order r z n; n = tanh(W_in x + b_in + r*(W_hn h + b_hn)), h = (1-z)*n + z*h_prev).")


@case("sd_gru_nobias")
def c_sd_gru_nobias(ctx):
    torch.manual_seed(114)
    m = RNNHolder(nn.GRU(4, 5, num_layers=2, batch_first=True, bias=False)).eval()
    x = np.random.default_rng(114).normal(size=(3, 6, 4)).astype(np.float32)
    sd_case(ctx, m.state_dict(), m.rnn, "rnn", x, [2, 6, 4],
            "Same as sd_gru but bias=False (no bias_* keys), lengths [2, 6, 4].")


@case("sd_rnn")
def c_sd_rnn(ctx):
    torch.manual_seed(117)
    m = RNNHolder(nn.RNN(3, 4, num_layers=1, bidirectional=True, batch_first=True)).eval()
    x = np.random.default_rng(117).normal(size=(3, 5, 3)).astype(np.float32)
    sd_case(ctx, m.state_dict(), m.rnn, "rnn", x, [5, 1, 3],
            "self.rnn = nn.RNN(3, 4, bidirectional=True, batch_first=True) (nonlinearity tanh, the default; a state "
            "dict does not record it), lengths [5, 1, 3]. Plane h only.")


class TwoModules(nn.Module):
    def __init__(self):
        super().__init__()
        self.enc = nn.LSTM(4, 5, num_layers=2, bidirectional=True, batch_first=True)
        self.dec = nn.LSTM(3, 4, num_layers=1, batch_first=True)


@case("sd_two_modules")
def c_sd_two_modules(ctx):
    torch.manual_seed(115)
    m = TwoModules().eval()
    x = np.random.default_rng(115).normal(size=(3, 5, 3)).astype(np.float32)
    sd_case(ctx, m.state_dict(), m.dec, "dec", x, None,
            "Two LSTMs in one file: enc = nn.LSTM(4, 5, num_layers=2, bidirectional=True) and dec = nn.LSTM(3, 4) "
            "(batch_first=True). inputs/expected are for module 'dec' only (select it with --module dec); "
            "meta.modules lists both prefixes.", extra={"modules": ["enc", "dec"]})


@case("sd_lstm_f16")
def c_sd_lstm_f16(ctx):
    torch.manual_seed(116)
    m = RNNHolder(nn.LSTM(3, 4, num_layers=1, bidirectional=True, batch_first=True)).eval().half()
    x = np.random.default_rng(116).normal(size=(3, 5, 3)).astype(np.float32)
    sd = m.state_dict()
    assert all(v.dtype == torch.float16 for v in sd.values())
    rnn32 = copy.deepcopy(m.rnn).float()  # the float16 weights converted to float32 (exactly)
    sd_case(ctx, sd, rnn32, "rnn", x, [5, 5, 3],
            "self.rnn = nn.LSTM(3, 4, bidirectional=True, batch_first=True) saved with .half() weights (float16 "
            "in model.pt and model.safetensors); lengths [5, 5, 3]. References use the float16 weights converted "
            "to float32/float64 exactly.")


# --------------------------------------------------------------------------- hostile files

def evil_pickle(mod, name, arg):
    """A torch.save-like data.pkl (OrderedDict with one tensor) whose 'bias' entry calls mod.name(arg)."""
    out = bytearray(b"\x80\x02")

    def glob(m, n):
        out.extend(b"c" + m.encode() + b"\n" + n.encode() + b"\n")

    def ustr(s):
        b = s.encode()
        out.extend(b"X" + struct.pack("<I", len(b)) + b)

    glob("collections", "OrderedDict")
    out.extend(b")R(")                        # EMPTY_TUPLE REDUCE MARK
    ustr("weight")
    glob("torch._utils", "_rebuild_tensor_v2")
    out.extend(b"((")                         # MARK (args) MARK (persistent id)
    ustr("storage")
    glob("torch", "FloatStorage")
    ustr("0")
    ustr("cpu")
    out.extend(b"K\x04tQ")                    # 4, TUPLE, BINPERSID
    out.extend(b"K\x00K\x04\x85K\x01\x85\x89")  # offset 0, size (4,), stride (1,), requires_grad False
    glob("collections", "OrderedDict")
    out.extend(b")RtR")                       # backward hooks, TUPLE, REDUCE
    ustr("bias")
    glob(mod, name)
    ustr(arg)
    out.extend(b"\x85R")                      # TUPLE1 REDUCE  <- the call
    out.extend(b"u.")                         # SETITEMS STOP
    return bytes(out)


def torch_like_zip(path, data_pkl):
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        def put(name, data):
            zi = zipfile.ZipInfo("archive/" + name, date_time=(1980, 1, 1, 0, 0, 0))
            zf.writestr(zi, data)
        put("data.pkl", data_pkl)
        put(".format_version", b"1")
        put(".storage_alignment", b"64")
        put("byteorder", b"little")
        put("data/0", np.arange(4, dtype=np.float32).tobytes())
        put("version", b"3\n")


@case("bad")
def c_bad(ctx):
    d = ctx.dir
    if os.path.exists(PWNED):
        raise RuntimeError(f"{PWNED} exists before the run; remove it first")
    made = collections.OrderedDict()
    for fname, (mod, name, arg) in (("os_system.pt", ("os", "system", f"touch {PWNED}")),
                                    ("eval_global.pt", ("builtins", "eval",
                                                        f"__import__('os').system('touch {PWNED}')"))):
        pkl = evil_pickle(mod, name, arg)
        globals_seen = [a for op, a, _ in pickletools.genops(pkl) if op.name == "GLOBAL"]  # parse only, no run
        assert f"{mod} {name}" in globals_seen, globals_seen
        torch_like_zip(os.path.join(d, fname), pkl)
        try:
            torch.load(os.path.join(d, fname), weights_only=True)
        except Exception as e:  # noqa: BLE001
            lines = [re.sub(r"\x1b\[[0-9;]*m", "", x).strip() for x in str(e).splitlines()]
            why = [x for x in lines if "GLOBAL" in x or "global" in x.lower()] or lines[:1]
            made[fname] = f"torch.load(weights_only=True) refuses it ({type(e).__name__}): \"{why[0][:200]}\""
        else:
            raise AssertionError(f"torch.load(weights_only=True) accepted {fname}")
        assert not os.path.exists(PWNED), "the payload ran!"
        ctx.checks.cmp(f"{fname}: payload did not run ({PWNED} absent)", 0.0, 0.0, 0.0)
    torch.manual_seed(118)
    lstm = nn.LSTM(3, 4)
    # The legacy format names storages by their memory address; to keep the file byte-reproducible all
    # tensors are views of one flat storage and that one key is renamed to "0" afterwards.
    sd0 = lstm.state_dict()
    flat = torch.cat([v.flatten() for v in sd0.values()])
    sd, off = collections.OrderedDict(), 0
    for k, v in sd0.items():
        sd[k] = flat[off:off + v.numel()].view(v.shape)
        off += v.numel()
    buf = io.BytesIO()
    torch.save(sd, buf, _use_new_zipfile_serialization=False)
    key = str(flat.untyped_storage()._cdata).encode()
    raw = buf.getvalue()
    old_s = b"X" + struct.pack("<I", len(key)) + key
    assert raw.count(old_s) == len(sd) + 1, raw.count(old_s)  # each tensor's persistent id + the key list
    with open(os.path.join(d, "legacy.pt"), "wb") as f:
        f.write(raw.replace(old_s, b"X" + struct.pack("<I", 1) + b"0"))
    assert not zipfile.is_zipfile(os.path.join(d, "legacy.pt"))
    back = torch.load(os.path.join(d, "legacy.pt"), weights_only=True)
    assert list(back) == list(sd0) and all(torch.equal(back[k], v) for k, v in sd0.items())
    made["legacy.pt"] = ("torch.save(nn.LSTM(3, 4).state_dict(), _use_new_zipfile_serialization=False): the legacy "
                         "non-zip pickle format (magic-number pickle, protocol, sys_info, data pickle, storage key "
                         "list, raw storage); torch itself still loads it (weights_only=True works). All tensors "
                         "are views of one storage, key renamed to '0' for reproducible bytes. GateScope should "
                         "refuse it and ask for the zip format or safetensors.")
    rng = np.random.default_rng(119)
    with open(os.path.join(d, "not_torch.pt"), "wb") as f:
        f.write(rng.integers(0, 256, size=512, dtype=np.uint8).tobytes())
    made["not_torch.pt"] = "512 random bytes (numpy default_rng(119)): neither a zip nor a pickle."
    made["os_system.pt"] = ("zip laid out like torch.save (archive/data.pkl, byteorder, data/0, version); data.pkl "
                            f"is an OrderedDict whose 'bias' entry is REDUCE(os.system, ('touch {PWNED}',)) "
                            "(pickle GLOBAL 'os system'). " + made["os_system.pt"])
    made["eval_global.pt"] = ("same layout; 'bias' is REDUCE(builtins.eval, (\"__import__('os').system('touch "
                              f"{PWNED}')\",)) (GLOBAL 'builtins eval'). " + made["eval_global.pt"])
    with open(os.path.join(d, "README.md"), "w") as f:
        f.write("# Hostile or unsupported torch files (must be refused)\n\n"
                "Made by `scripts/make_torch_fixtures.py --only bad`. Never load them with a full unpickler.\n\n")
        for k in ("os_system.pt", "eval_global.pt", "legacy.pt", "not_torch.pt"):
            f.write(f"- `{k}`: {made[k]}\n")
    ctx.meta = None  # no meta.json here: bad/ is not a fixture case; bad/README.md lists the files


# --------------------------------------------------------------------------- README

def fmt_size(n):
    return f"{n / 1024:.1f} KiB" if n >= 1024 else f"{n} B"


def write_readme(out, ver, skipped):
    metas = []
    for name in CASES:
        p = os.path.join(out, name, "meta.json")
        if os.path.exists(p):
            with open(p) as f:
                metas.append(json.load(f))
    total = sum(os.path.getsize(os.path.join(dp, f)) for dp, _, fs in os.walk(out) for f in fs)
    L = ["# PyTorch and ONNX reference fixtures", "",
         "Made by `scripts/make_torch_fixtures.py` (fixed seeds; `--list`, `--only CASE`):", "",
         "    nice python3 scripts/make_torch_fixtures.py", "",
         "Versions: " + ", ".join(f"{k} {v}" for k, v in ver.items()) + ".", "",
         "## Conventions", "",
         "- `inputs.npz`: ONNX cases: one array per real graph input (not initializers), keyed by its name. "
         "State-dict cases: `x` float32 `[batch, time, features]`, always batch-first whatever the module's "
         "batch_first, and optional `lengths` int64 `[batch]` (pack_padded_sequence(enforce_sorted=False) "
         "semantics).",
         "- `expected.npz`: `y__<name>` every ONNX graph output (onnxruntime, float32); for state dicts "
         "`y__output` batch-first `[batch, time, D*H_out]` (zeros at padded steps), `y__h_n`, `y__c_n` "
         "`[D*num_layers, batch, H_out]`. `gates__<layer>__<fwd|bwd>__<plane>` float32 `[batch, time, units]`, "
         "t = position in the input sequence (also for bwd); planes LSTM `i f g o c h` (g = candidate, "
         "c = cell after the step, h = o*h_act(c) before any projection), GRU `z r n h`, RNN `h`; NaN at steps "
         "not computed. `mask__<layer>` bool `[batch, time]`. LSTM with proj_size: `proj__<layer>__<dir>` "
         "`[batch, time, proj_size]` (h_r after each step).",
         "- Layer names: ONNX: the node's `name`, or `<OpType>_<index in graph.node>` when empty (torch "
         "exports contain slashes, e.g. `gates__/lstm/LSTM__fwd__i`). State dicts: `<prefix>.l<k>` or `l<k>`.",
         "- `meta.json`: case, description, kind, torch_version, onnx_opset/exporter, inputs, outputs, "
         "recurrent (layer, direction, cell, units, proj_size), for state dicts module, num_layers, "
         "bidirectional, batch_first, proj_size, bias; ONNX metas also list `op_types` and `nodes` "
         "([name, op_type] in graph order); `checks` holds the largest differences below.", ""]
    if skipped:
        L += ["## Skipped", ""] + [f"- `{k}`: {v}" for k, v in skipped.items()] + [""]
    L += ["## Cases", "", f"All fixtures together: {fmt_size(total)}.", ""]
    for m in metas:
        name = m["case"]
        d = os.path.join(out, name)
        files = sorted(os.listdir(d))
        L += [f"### `{name}`" + (f" ({m['kind']}, exporter {m['exporter']}, opset {m['onnx_opset']})"
                                  if m.get("exporter") else f" ({m['kind']})"), "",
              m["description"], "",
              "Files: " + ", ".join(f"`{f}` ({fmt_size(os.path.getsize(os.path.join(d, f)))})" for f in files) + ".",
              ""]
        if m.get("recurrent"):
            layers = collections.OrderedDict()
            for r in m["recurrent"]:
                layers.setdefault((r["layer"], r["cell"], r["units"]), []).append(r["direction"])
            L += ["Recurrent layers: " + "; ".join(f"`{k[0]}` {k[1]} {k[2]} units ({'+'.join(v)})"
                                                   for k, v in layers.items()) + ".", ""]
        if m.get("op_types"):
            L += ["Op types: " + ", ".join(m["op_types"]) + ".", ""]
        if m.get("onnxruntime_note"):
            L += ["Note: " + m["onnxruntime_note"] + ".", ""]
        L += ["How checked: " + m.get("method", ""), ""]
        if m.get("checks"):
            L += ["| largest abs diff | tol | values | check |", "| ---: | ---: | ---: | --- |"]
            L += [f"| {c['max_abs_diff']:.3g} | {c['tol']:g} | {c['values']} | {c['check']} |" for c in m["checks"]]
            L.append("")
    bad = os.path.join(out, "bad", "README.md")
    if os.path.exists(bad):
        d = os.path.join(out, "bad")
        L += ["### `bad/` (hostile or unsupported files, must be refused; no expected values)", "",
              "Files: " + ", ".join(f"`{f}` ({fmt_size(os.path.getsize(os.path.join(d, f)))})"
                                    for f in sorted(os.listdir(d))) + ".", ""]
        with open(bad) as f:
            L += [line.rstrip("\n") for line in f if line.startswith("- ")]
        L.append("")
    with open(os.path.join(out, "README.md"), "w") as f:
        f.write("\n".join(L))


# --------------------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", nargs="+", metavar="CASE")
    ap.add_argument("--out", default=DEFAULT_OUT)
    ap.add_argument("--list", action="store_true")
    args = ap.parse_args()
    if args.list:
        print("\n".join(CASES))
        return 0
    names = args.only or list(CASES)
    unknown = [n for n in names if n not in CASES]
    if unknown:
        ap.error(f"unknown case(s): {', '.join(unknown)} (see --list)")
    os.makedirs(args.out, exist_ok=True)
    ver = versions()
    skipped = {}
    for name in names:
        print(f"== {name}")
        ctx = Ctx(name, args.out)
        try:
            CASES[name](ctx)
        except Exception as e:
            if name == "onnx_lstm_bi2_dynamo" and "export" in type(e).__module__ + str(type(e)):
                skipped[name] = f"torch.onnx.export(dynamo=True) failed: {type(e).__name__}: {e}"
                print("  SKIPPED:", skipped[name])
                os.rmdir(ctx.dir) if not os.listdir(ctx.dir) else None
                continue
            raise
        shutil.rmtree(ctx.tmp, ignore_errors=True)
        report = ctx.checks.report()
        if ctx.meta is None:
            continue
        ctx.meta["method"] = ctx.method
        ctx.meta["checks"] = report
        ctx.meta["versions"] = ver
        write_json(os.path.join(ctx.dir, "meta.json"), ctx.meta)
    write_readme(args.out, ver, skipped)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
