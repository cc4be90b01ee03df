#!/usr/bin/env python3
"""Train GateScope's bundled example model: a character-level LSTM on Python source.

What it does
    Trains a small two-layer character-level LSTM (Keras 3) to predict the next
    character of Python source code, using the Python standard library's own
    ``.py`` files as training text (PSF-licensed).  It writes the trained model
    and everything GateScope needs to replay it into ``examples/charlstm/``:

        model.keras   Keras 3 native format (zip), inference-only (no optimizer state)
        model.h5      the same weights/architecture in the legacy HDF5 format
        vocab.json    {token string: integer id}; id 0 = padding, "\\ufffd" = unknown
        heldout.txt   held-out source lines (never seen in training), one sequence per line
        README.md     description, data source, vocab convention, training figures
        training_log.json  per-epoch figures and data stats (used by --check-only)

How to run (from the repository root)
    KERAS_BACKEND=jax nice -n 10 python3 scripts/train_example.py
    options:  --epochs N       number of epochs (default 20)
              --max-minutes M  safety cap: stop early (after a whole epoch) if the next
                               epoch would push training past M minutes (default 12);
                               the default run finishes well inside it on 2 idle cores
              --out DIR        output directory (default examples/charlstm)
              --check-only     skip training; reload DIR/model.keras and re-run the
                               sanity checks (predict, greedy sample, forget-gate
                               saturation recomputed in numpy), then refresh README.md
                               from DIR/training_log.json

What it needs
    python >= 3.10, keras 3 (tested with 3.15.1), jax (CPU is fine), h5py, numpy.
    The backend is forced to JAX (TensorFlow is not required).  Training text is
    read from this interpreter's stdlib directory (sysconfig "stdlib" path); the
    file list below is fixed and sorted, and files that are missing are skipped
    with a warning, so the script still runs on other Python versions (results
    will then differ slightly).  No network access.

How long it takes
    About 1.9 MB of text -> ~18.9k training windows of 100 chars -> ~296 steps of
    batch 64 per epoch.  With JAX on 2 idle CPU cores an epoch takes ~30 s, so the
    default 20 epochs take ~10 minutes (+ ~1 minute of checks).  On busy cores an
    epoch took 50-125 s; the --max-minutes cap (12) then ends training early, after
    a whole epoch (the bundled model: 9 epochs, 10.8 min; see README.md).

Reproducibility
    Fixed seeds (keras.utils.set_random_seed), fixed file lists, deterministic
    vocabulary (sorted by code point), deterministic window offsets and shuffling.
    On CPU/JAX repeated runs give the same numbers up to float round-off.
"""

from __future__ import annotations

import argparse
import collections
import json
import math
import os
import sys
import sysconfig
import time

os.environ["KERAS_BACKEND"] = "jax"  # TensorFlow is not installed / not needed.

import numpy as np  # noqa: E402

# --------------------------------------------------------------------------- #
# Configuration
# --------------------------------------------------------------------------- #

SEED = 1234
SEQ_LEN = 100          # characters per training window (input); target is shifted by 1
BATCH = 64
DEFAULT_EPOCHS = 20
DEFAULT_MAX_MINUTES = 12.0  # safety cap on training wall-clock
LEARNING_RATE = 2e-3
MIN_COUNT = 20         # a character joins the vocab if it occurs >= MIN_COUNT times in train text
MAX_VOCAB = 100        # hard cap (most frequent kept) -- not hit with the default data
EMBED_DIM = 32
UNITS = 128
PAD_ID = 0
UNK_TOKEN = "\ufffd"   # U+FFFD REPLACEMENT CHARACTER stands for every out-of-vocab char

# Training text: stdlib modules, paths relative to the stdlib dir.  Sorted.
TRAIN_FILES = sorted([
    "argparse.py", "ast.py", "bdb.py", "calendar.py", "codecs.py",
    "configparser.py", "contextlib.py", "copy.py", "dataclasses.py",
    "datetime.py", "difflib.py", "dis.py", "enum.py", "fractions.py",
    "functools.py", "gettext.py", "heapq.py", "inspect.py", "ipaddress.py",
    "json/decoder.py", "json/encoder.py", "locale.py", "logging/__init__.py",
    "os.py", "pathlib.py", "pickle.py", "platform.py", "pprint.py",
    "random.py", "shlex.py", "shutil.py", "socket.py", "statistics.py",
    "string.py", "subprocess.py", "tempfile.py", "textwrap.py",
    "threading.py", "tokenize.py", "traceback.py", "uuid.py",
])
# Validation text (different files, used only for the per-epoch val loss).
VAL_FILES = sorted([
    "csv.py", "fnmatch.py", "getopt.py", "glob.py", "imaplib.py",
    "queue.py", "sched.py",
])
# Held-out file for heldout.txt: in neither list above.  Contains escaping code,
# so it naturally has , " < > & characters.
HELDOUT_FILE = "xml/sax/saxutils.py"
HELDOUT_MAX_LINES = 160
HELDOUT_MAX_CHARS = 200

# The greedy-sample prompt used by the sanity check.
SAMPLE_PROMPT = "import os\n\ndef "
SAMPLE_LEN = 200
SAMPLE_TEMPERATURE = 0.8  # for the extra, seeded non-greedy sample


# --------------------------------------------------------------------------- #
# Data
# --------------------------------------------------------------------------- #

def stdlib_dir() -> str:
    return sysconfig.get_paths()["stdlib"]


def read_files(names: list[str]) -> tuple[str, list[str]]:
    """Concatenate the files that exist (newline-separated). Returns (text, used)."""
    base = stdlib_dir()
    parts, used = [], []
    for name in names:
        path = os.path.join(base, name)
        try:
            with open(path, encoding="utf-8") as fh:
                parts.append(fh.read())
            used.append(name)
        except OSError as exc:
            print(f"warning: skipping {name}: {exc}", file=sys.stderr)
    if not parts:
        sys.exit(f"error: none of the data files were found under {base}")
    return "\n".join(parts), used


def build_vocab(text: str) -> dict[str, int]:
    counts = collections.Counter(text)
    chars = [c for c, n in counts.items() if n >= MIN_COUNT]
    if len(chars) > MAX_VOCAB - 1:
        chars = [c for c, _ in sorted(((c, counts[c]) for c in chars),
                                      key=lambda cn: (-cn[1], cn[0]))[:MAX_VOCAB - 1]]
    chars.sort()  # deterministic: by code point
    vocab = {c: i + 1 for i, c in enumerate(chars)}  # ids start at 1; 0 = padding
    vocab[UNK_TOKEN] = len(chars) + 1
    return vocab


def encode(text: str, vocab: dict[str, int]) -> np.ndarray:
    unk = vocab[UNK_TOKEN]
    return np.fromiter((vocab.get(c, unk) for c in text), dtype=np.int32, count=len(text))


def windows(ids: np.ndarray, offset: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Non-overlapping windows of SEQ_LEN+1 starting at `offset`; returns (x, y)."""
    ids = ids[offset:]
    n = (len(ids) - 1) // SEQ_LEN
    x = ids[: n * SEQ_LEN].reshape(n, SEQ_LEN)
    y = ids[1: n * SEQ_LEN + 1].reshape(n, SEQ_LEN)
    return x, y


def heldout_lines() -> list[str]:
    path = os.path.join(stdlib_dir(), HELDOUT_FILE)
    with open(path, encoding="utf-8") as fh:
        lines = [ln.rstrip() for ln in fh.read().splitlines()]
    lines = [ln[:HELDOUT_MAX_CHARS] for ln in lines if ln.strip()]
    return lines[:HELDOUT_MAX_LINES]


def unigram_entropy(train_ids: np.ndarray, eval_ids: np.ndarray, size: int) -> tuple[float, float]:
    """(entropy of train unigram distribution, cross-entropy of it on eval), in nats/char."""
    p = np.bincount(train_ids, minlength=size).astype(np.float64)
    p /= p.sum()
    h_train = float(-(p[p > 0] * np.log(p[p > 0])).sum())
    q = np.maximum(p, 1e-12)
    h_eval = float(-np.log(q[eval_ids]).mean())
    return h_train, h_eval


# --------------------------------------------------------------------------- #
# Model
# --------------------------------------------------------------------------- #

def build_model(vocab_size: int):
    # Sequential rather than Functional on purpose: in Keras 3.15 a Functional model
    # with mask_zero=True records the mask as an extra `NotEqual` op node in its
    # config, and the legacy .h5 loader cannot deserialize that op.  The Sequential
    # config is just the four layers below, in both model.keras and model.h5.
    import keras
    return keras.Sequential([
        keras.Input(shape=(None,), dtype="int32", name="chars"),
        keras.layers.Embedding(vocab_size, EMBED_DIM, mask_zero=True, name="embed"),
        keras.layers.LSTM(UNITS, return_sequences=True, name="lstm1"),
        keras.layers.LSTM(UNITS, return_sequences=True, name="lstm2"),
        keras.layers.Dense(vocab_size, activation="softmax", name="next_char"),
    ], name="charlstm")


# --------------------------------------------------------------------------- #
# Sanity checks (also usable on an existing model via --check-only)
# --------------------------------------------------------------------------- #

def pad_batch(seqs: list[np.ndarray]) -> np.ndarray:
    width = max(len(s) for s in seqs)
    out = np.full((len(seqs), width), PAD_ID, dtype=np.int32)
    for i, s in enumerate(seqs):
        out[i, : len(s)] = s
    return out


def greedy_sample(model, vocab: dict[str, int], prompt: str, n: int,
                  temperature: float | None = None, seed: int = SEED) -> str:
    """Continue `prompt` by n chars: argmax (temperature None) or seeded sampling."""
    rng = np.random.default_rng(seed)
    inv = {i: c for c, i in vocab.items()}
    ids = list(encode(prompt, vocab))
    width = len(ids) + n
    buf = np.zeros((1, width), dtype=np.int32)  # right-padding: the LSTM is causal
    buf[0, : len(ids)] = ids
    out = []
    for t in range(len(ids), width):
        probs = model.predict(buf, verbose=0)[0, t - 1]
        probs[PAD_ID] = 0.0  # never emit padding
        if temperature is None:
            nxt = int(np.argmax(probs))
        else:
            logits = np.log(np.maximum(probs.astype(np.float64), 1e-12)) / temperature
            q = np.exp(logits - logits.max())
            nxt = int(rng.choice(len(q), p=q / q.sum()))
        buf[0, t] = nxt
        out.append(inv.get(nxt, UNK_TOKEN))
    return "".join(out)


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def numpy_lstm(x: np.ndarray, kernel, recurrent, bias):
    """Keras LSTM forward pass (gate order i, f, c, o). x: [T, in] -> (h [T,u], f [T,u])."""
    u = recurrent.shape[0]
    h = np.zeros(u, dtype=np.float64)
    c = np.zeros(u, dtype=np.float64)
    hs, fs = [], []
    xw = x @ kernel + bias
    for t in range(x.shape[0]):
        z = xw[t] + h @ recurrent
        i = sigmoid(z[:u])
        f = sigmoid(z[u:2 * u])
        g = np.tanh(z[2 * u:3 * u])
        o = sigmoid(z[3 * u:])
        c = f * c + i * g
        h = o * np.tanh(c)
        hs.append(h)
        fs.append(f)
    return np.array(hs), np.array(fs)


def run_checks(out_dir: str) -> dict:
    import keras
    model = keras.models.load_model(os.path.join(out_dir, "model.keras"))
    with open(os.path.join(out_dir, "vocab.json"), encoding="utf-8") as fh:
        vocab = json.load(fh)
    with open(os.path.join(out_dir, "heldout.txt"), encoding="utf-8") as fh:
        lines = fh.read().splitlines()
    enc = [encode(ln, vocab) for ln in lines]
    unk = vocab[UNK_TOKEN]
    print(f"\n== checks on {out_dir}: {len(lines)} held-out lines, "
          f"{sum(int((e == unk).sum()) for e in enc)} unknown chars")

    # 1. predict on 3 held-out lines, zero-padded; per-line next-char loss/accuracy.
    picks = [0, len(lines) // 2, len(lines) - 1]
    batch = pad_batch([enc[i] for i in picks])
    probs = model.predict(batch, verbose=0)
    print(f"predict on 3 padded lines: input {batch.shape} -> output {probs.shape}")
    h5_model = keras.models.load_model(os.path.join(out_dir, "model.h5"))
    h5_diff = float(np.abs(h5_model.predict(batch, verbose=0) - probs).max())
    print(f"model.h5 reloads too; max |h5 - keras| on these lines: {h5_diff:.2e}")
    for row, i in enumerate(picks):
        e = enc[i]
        if len(e) < 2:
            continue
        p = probs[row, : len(e) - 1][np.arange(len(e) - 1), e[1:]]
        acc = (probs[row, : len(e) - 1].argmax(-1) == e[1:]).mean()
        print(f"  line {i:3d} ({len(e):3d} chars) nll {-np.log(p).mean():.3f} nats/char "
              f"acc {acc:.2f}: {lines[i][:70]!r}")

    # 2. held-out loss over all lines (each line its own sequence, no shared state).
    # One padded batch: a single compiled shape (JAX recompiles per input shape).
    tot_nll, tot_n = 0.0, 0
    all_probs = model.predict(pad_batch(enc), batch_size=len(enc), verbose=0)
    for k, e in enumerate(enc):
        if len(e) < 2:
            continue
        p = all_probs[k, : len(e) - 1]
        tot_nll += float(-np.log(p[np.arange(len(e) - 1), e[1:]]).sum())
        tot_n += len(e) - 1
    heldout_loss = tot_nll / tot_n
    print(f"held-out next-char loss (per line, from a fresh state): {heldout_loss:.3f} nats/char")

    # 3. greedy sample.
    sample = greedy_sample(model, vocab, SAMPLE_PROMPT, SAMPLE_LEN)
    print(f"greedy sample, prompt {SAMPLE_PROMPT!r}:\n-----\n{SAMPLE_PROMPT}{sample}\n-----")
    sample_t = greedy_sample(model, vocab, SAMPLE_PROMPT, SAMPLE_LEN, SAMPLE_TEMPERATURE)
    print(f"sample at temperature {SAMPLE_TEMPERATURE} (seed {SEED}):\n-----\n"
          f"{SAMPLE_PROMPT}{sample_t}\n-----")

    # 4. forget-gate saturation, recomputed in numpy from the weights.
    emb = model.get_layer("embed").get_weights()[0].astype(np.float64)
    w1 = [w.astype(np.float64) for w in model.get_layer("lstm1").get_weights()]
    w2 = [w.astype(np.float64) for w in model.get_layer("lstm2").get_weights()]
    f1_all, f2_all, max_err = [], [], 0.0
    probe = keras.Model(model.inputs, [model.get_layer("lstm1").output,
                                       model.get_layer("lstm2").output])
    k1, k2 = probe.predict(batch, verbose=0)  # the 3 padded lines from step 1
    for k, e in enumerate(enc):
        h1, f1 = numpy_lstm(emb[e], *w1)
        h2, f2 = numpy_lstm(h1, *w2)
        f1_all.append(f1)
        f2_all.append(f2)
        if k in picks:  # cross-check the numpy recomputation against Keras
            row = picks.index(k)
            max_err = max(max_err, float(np.abs(k1[row, : len(e)] - h1).max()),
                          float(np.abs(k2[row, : len(e)] - h2).max()))
    f1_all = np.concatenate(f1_all)
    f2_all = np.concatenate(f2_all)
    sat = {}
    for name, f in (("lstm1", f1_all), ("lstm2", f2_all)):
        frac = (f > 0.9).mean(axis=0)        # per unit: fraction of steps with f > 0.9
        frac_low = (f < 0.1).mean(axis=0)
        sat[name] = {
            "units": int(f.shape[1]),
            "steps": int(f.shape[0]),
            "units_f_gt_0.9_over_50pct": int((frac > 0.5).sum()),
            "units_f_lt_0.1_over_50pct": int((frac_low > 0.5).sum()),
            "mean_f": float(f.mean()),
        }
        print(f"{name}: {sat[name]['units_f_gt_0.9_over_50pct']}/{f.shape[1]} units have "
              f"f > 0.9 on > 50% of {f.shape[0]} steps "
              f"({sat[name]['units_f_lt_0.1_over_50pct']} have f < 0.1 on > 50%); "
              f"mean f {f.mean():.3f}")
    print(f"numpy vs keras hidden-state max abs diff: {max_err:.2e}")
    return {"heldout_loss": heldout_loss, "sample": sample, "sample_t": sample_t,
            "saturation": sat,
            "numpy_max_abs_diff": max_err}


# --------------------------------------------------------------------------- #
# README
# --------------------------------------------------------------------------- #

def write_readme(out_dir, info):
    v = info["vocab"]
    shown = "".join(c for c in sorted(v) if c not in ("\n", "\t", UNK_TOKEN))
    rows = "\n".join(
        f"| {e['epoch']} | {e['loss']:.3f} | {e['val_loss']:.3f} | {e['acc']:.3f} | "
        f"{e['val_acc']:.3f} | {e['seconds']:.0f} |" for e in info["history"])
    last = info["history"][-1]
    stopped_note = ("" if info["epochs"] == info["requested_epochs"] else
                    f" (stopped early by the --max-minutes cap, {info['requested_epochs']} were "
                    f"requested; the cap depends on machine load, so to repeat this run exactly "
                    f"use `--epochs {info['epochs']} --max-minutes 1000`)")
    tab_note = ", `\\t`" if "\t" in v else ""
    chk = info["checks"]
    sat = chk["saturation"]
    text = f"""# charlstm — bundled example model

A small character-level language model trained with real Keras
({info['keras_version']}, JAX backend) on real text: Python source code from the
Python {info['python_version']} standard library. GateScope uses it as the
ready-made model whose LSTM gate values it records.

Produced by `scripts/train_example.py`; do not edit the artefacts by hand.

## Files

| file | what |
|---|---|
| `model.keras` | Keras 3 native format (zip). Inference-only: saved without optimizer state. |
| `model.h5` | Same model in the legacy HDF5 format (`model.save("model.h5")`). |
| `vocab.json` | JSON object `{{token: id}}` (see below). |
| `heldout.txt` | {info['heldout_lines']} lines of held-out Python source, one sequence per line. |
| `training_log.json` | Per-epoch figures and data statistics; `--check-only` rebuilds this README from it. |

## Model

```
Sequential, name "charlstm":
Input(shape=(None,), dtype=int32, name="chars")         # character ids, 0 = padding
-> Embedding({info['vocab_size']}, {EMBED_DIM}, mask_zero=True, name="embed")
-> LSTM({UNITS}, return_sequences=True, name="lstm1")
-> LSTM({UNITS}, return_sequences=True, name="lstm2")
-> Dense({info['vocab_size']}, activation="softmax", name="next_char")
```

{info['params']:,} parameters. Keras default LSTM settings (tanh / sigmoid,
`unit_forget_bias=True`); kernel columns are ordered i, f, c, o
(`kernel` is [in, 4*{UNITS}], `recurrent_kernel` is [{UNITS}, 4*{UNITS}], `bias` is [4*{UNITS}]).
Output at position t is the distribution of the character at position t+1.

## Vocabulary convention

* id **0** is padding (`mask_zero=True`); it is not a character and is absent from `vocab.json`.
* ids **1..{v[UNK_TOKEN] - 1}** are the characters that occur at least {MIN_COUNT} times in the
  training text, in code-point order (`"\\n"` is id {v.get(chr(10), 'n/a')}, `" "` is id {v.get(' ', 'n/a')}).
* id **{v[UNK_TOKEN]}** is the unknown token, the key `"\\ufffd"` (U+FFFD REPLACEMENT CHARACTER)
  in `vocab.json`. Every character not in the vocabulary maps to it.
* Output layer size {info['vocab_size']} = padding + {v[UNK_TOKEN] - 1} characters + unknown.

Characters in the vocabulary (besides `\\n`{tab_note}):

```
{shown}
```

## Data and license

Training and validation text are `.py` files of the CPython {info['python_version']} standard
library (Python Software Foundation License). Files are read from the local
interpreter's stdlib directory and concatenated (newline-separated):

* training ({info['train_chars']:,} chars): {', '.join(info['train_files'])}
* validation ({info['val_chars']:,} chars, different files): {', '.join(info['val_files'])}
* `heldout.txt`: the first {info['heldout_lines']} non-blank lines of `{HELDOUT_FILE}`
  (in neither set above), trailing whitespace stripped, lines trimmed to {HELDOUT_MAX_CHARS}
  chars. It exercises `,` `"` `<` `>` `&` naturally.

## Training

Next-character prediction on non-overlapping windows of {SEQ_LEN} characters (window
start offset shifted each epoch), shuffled, batch {BATCH}, Adam (lr {LEARNING_RATE},
clipnorm 1.0), sparse categorical cross-entropy, seed {SEED}, {info['epochs']} epochs{stopped_note},
{info['train_seconds'] / 60:.1f} min on 2 shared CPU cores.

| epoch | train loss | val loss | train acc | val acc | s |
|---|---|---|---|---|---|
{rows}

Losses are in nats per character. Baseline: the unigram (character frequency)
entropy of the training text is {info['unigram_train']:.3f} nats/char and its
cross-entropy on the validation text is {info['unigram_val']:.3f}; the final
validation loss {last['val_loss']:.3f} is well below that. On `heldout.txt`
(each line from a fresh zero state) the loss is {chk['heldout_loss']:.3f} nats/char.

Greedy (argmax) continuation of the prompt `{SAMPLE_PROMPT!r}`, {SAMPLE_LEN} chars. Like most
small char models decoded greedily it falls into a loop: once it has emitted a newline
and some indentation, "another space" stays the single most likely character, so the
tail is a long run of spaces:

```
{SAMPLE_PROMPT}{chk['sample']}
```

The same prompt sampled at temperature {SAMPLE_TEMPERATURE} (seed {SEED}):

```
{SAMPLE_PROMPT}{chk['sample_t']}
```

Forget-gate saturation on `heldout.txt` ({sat['lstm1']['steps']} steps), recomputed in
numpy from the weights: {sat['lstm1']['units_f_gt_0.9_over_50pct']}/{UNITS} units of `lstm1`
and {sat['lstm2']['units_f_gt_0.9_over_50pct']}/{UNITS} units of `lstm2` have f > 0.9 on more
than half of the steps (mean f: {sat['lstm1']['mean_f']:.2f} / {sat['lstm2']['mean_f']:.2f}).

## Retrain

```
KERAS_BACKEND=jax nice -n 10 python3 scripts/train_example.py            # full run
KERAS_BACKEND=jax python3 scripts/train_example.py --check-only          # re-run checks only
```

Needs keras 3, jax, h5py, numpy; no network. With a different Python version the
stdlib text differs, so numbers will differ slightly.
"""
    with open(os.path.join(out_dir, "README.md"), "w", encoding="utf-8") as fh:
        fh.write(text)


# --------------------------------------------------------------------------- #
# Main
# --------------------------------------------------------------------------- #

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--epochs", type=int, default=DEFAULT_EPOCHS)
    ap.add_argument("--out", default=os.path.join(
        os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples", "charlstm"))
    ap.add_argument("--max-minutes", type=float, default=DEFAULT_MAX_MINUTES,
                    help="stop after the epoch that would push training past this budget")
    ap.add_argument("--check-only", action="store_true")
    args = ap.parse_args()

    import keras
    if args.check_only:
        checks = run_checks(args.out)
        log_path = os.path.join(args.out, "training_log.json")
        if os.path.exists(log_path):  # refresh README.md with the new check results
            with open(log_path, encoding="utf-8") as fh:
                info = json.load(fh)
            with open(os.path.join(args.out, "vocab.json"), encoding="utf-8") as fh:
                info["vocab"] = json.load(fh)
            info["checks"] = checks
            write_readme(args.out, info)
            print(f"refreshed {args.out}/README.md")
        return

    keras.utils.set_random_seed(SEED)
    os.makedirs(args.out, exist_ok=True)

    train_text, train_used = read_files(TRAIN_FILES)
    val_text, val_used = read_files(VAL_FILES)
    held = heldout_lines()
    vocab = build_vocab(train_text)
    vocab_size = len(vocab) + 1  # + padding id 0
    train_ids = encode(train_text, vocab)
    val_ids = encode(val_text, vocab)
    h_train, h_val = unigram_entropy(train_ids, val_ids, vocab_size)
    print(f"train {len(train_text):,} chars from {len(train_used)} files; "
          f"val {len(val_text):,} chars from {len(val_used)} files")
    print(f"vocab: {len(vocab) - 1} chars + unknown -> output size {vocab_size}; "
          f"unknown share train {np.mean(train_ids == vocab[UNK_TOKEN]):.2e}")
    print(f"unigram entropy train {h_train:.3f} nats/char, unigram cross-entropy val {h_val:.3f}")

    with open(os.path.join(args.out, "vocab.json"), "w", encoding="utf-8") as fh:
        json.dump(vocab, fh, ensure_ascii=True, indent=1, sort_keys=False)
    with open(os.path.join(args.out, "heldout.txt"), "w", encoding="utf-8") as fh:
        fh.write("\n".join(held) + "\n")

    model = build_model(vocab_size)
    model.compile(optimizer=keras.optimizers.Adam(LEARNING_RATE, clipnorm=1.0),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.summary()
    xv, yv = windows(val_ids)

    rng = np.random.default_rng(SEED)
    history = []
    t_start = time.time()
    for epoch in range(args.epochs):
        # Shift the window grid every epoch so the model sees new boundaries.
        offset = (epoch * 37) % SEQ_LEN
        x, y = windows(train_ids, offset)
        perm = rng.permutation(len(x))
        t0 = time.time()
        h = model.fit(x[perm], y[perm], batch_size=BATCH, epochs=1, shuffle=False,
                      validation_data=(xv, yv), validation_batch_size=256, verbose=0)
        dt = time.time() - t0
        e = {"epoch": epoch + 1, "loss": h.history["loss"][-1],
             "val_loss": h.history["val_loss"][-1], "acc": h.history["accuracy"][-1],
             "val_acc": h.history["val_accuracy"][-1], "seconds": dt}
        history.append(e)
        print(f"epoch {e['epoch']:2d}/{args.epochs}: loss {e['loss']:.4f} "
              f"val_loss {e['val_loss']:.4f} acc {e['acc']:.3f} val_acc {e['val_acc']:.3f} "
              f"({dt:.0f} s, {len(x)} windows)", flush=True)
        elapsed = time.time() - t_start
        if epoch + 1 < args.epochs and elapsed + dt > args.max_minutes * 60:
            print(f"stopping after epoch {epoch + 1}: another epoch would exceed "
                  f"--max-minutes {args.max_minutes}", flush=True)
            break
    train_seconds = time.time() - t_start
    print(f"training took {train_seconds:.0f} s")

    # Save an inference-only copy (no optimizer state -> about a third of the size).
    export = build_model(vocab_size)
    export.set_weights(model.get_weights())
    export.save(os.path.join(args.out, "model.keras"))
    export.save(os.path.join(args.out, "model.h5"))

    info = {
        "keras_version": keras.__version__,
        "python_version": ".".join(map(str, sys.version_info[:3])),
        "vocab": vocab, "vocab_size": vocab_size, "params": model.count_params(),
        "train_files": train_used, "val_files": val_used,
        "train_chars": len(train_text), "val_chars": len(val_text),
        "heldout_lines": len(held), "epochs": len(history), "requested_epochs": args.epochs,
        "history": history, "train_seconds": train_seconds,
        "unigram_train": h_train, "unigram_val": h_val,
    }
    with open(os.path.join(args.out, "training_log.json"), "w", encoding="utf-8") as fh:
        json.dump({k: v for k, v in info.items() if k != "vocab"}, fh, indent=1)
    info["checks"] = run_checks(args.out)
    write_readme(args.out, info)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
