"""``firstmotion polarity train``: train the polarity CNN and write weights + model card.

Reproducible from one command (same seed, same data, same steps -> same weights on the same
torch build)::

    firstmotion polarity train --out model_weights/polarity_v5 --seed 0 --threads 2

1. generate (or load from the cache) ``--n-train`` + ``--n-val`` labelled windows with
   :class:`workers.polarity.dataset.WindowSampler` (seed ``S`` for training, ``S + 1`` for
   validation), real noise mixed in when ``shared/data`` is present;
2. train with AdamW and a one-cycle learning-rate schedule on mini-batches whose rows are
   randomly sign-flipped (label swapped up <-> down), checkpointing every ``--checkpoint-every``
   steps to ``CACHE_DIR/NAME.ckpt`` (an interrupted run with the same arguments resumes);
3. fit the softmax temperature on the validation windows (Guo et al. 2017), minimising the
   negative log-likelihood of the flip-augmented probabilities the classifier serves;
4. write ``OUT.pt`` (state dict) and ``OUT.json`` (model card). ``firstmotion polarity eval
   --model OUT --update-card`` adds the evaluation metrics to the card.
"""

from __future__ import annotations

import argparse
import hashlib
import inspect
import io
import json
import logging
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from firstmotion import __version__
from workers.polarity.classifier import CARD_FORMAT_VERSION, PolarityClassifier
from workers.polarity.dataset import (
    DATASET_VERSION,
    SamplerConfig,
    detector_pick_errors_sha256,
    generate_dataset,
    load_real_noise,
)
from workers.polarity.model import LABELS, PolarityCNN, count_parameters
from workers.polarity.preprocess import PreprocessConfig

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="model_weights/polarity_v5", help="output stem")
    parser.add_argument("--steps", type=int, default=48000, help="optimiser steps")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--lr", type=float, default=3e-3, help="peak learning rate")
    parser.add_argument("--n-train", type=int, default=600_000)
    parser.add_argument("--n-val", type=int, default=20_000)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument(
        "--cache-dir",
        default=str(Path.home() / ".cache" / "firstmotion" / "polarity"),
        help="where generated datasets are cached",
    )
    parser.add_argument("--checkpoint-every", type=int, default=500)
    parser.add_argument(
        "--stop-after",
        type=int,
        default=None,
        help="leave after this many steps in this session (checkpointed; rerun to resume)",
    )
    parser.add_argument("--no-real-noise", action="store_true", help="synthetic noise only")
    parser.add_argument("--window-pre", type=int, default=64, help="samples before the pick")
    parser.add_argument("--window-post", type=int, default=64, help="samples from the pick")
    parser.add_argument("--highpass-hz", type=float, default=1.5)
    parser.add_argument("--model-rate", type=float, default=100.0, help="model sampling rate")
    parser.add_argument(
        "--normalisation", default="max_abs+noise_asinh", choices=("max_abs", "max_abs+noise_asinh")
    )
    parser.add_argument("--decision-threshold", type=float, default=0.5)
    parser.add_argument(
        "--sampler", default="{}", help="SamplerConfig overrides as JSON (lists for ranges)"
    )
    parser.add_argument(
        "--arch", default="{}", help="extra PolarityCNN args as JSON, e.g. '{\"hidden\": 96}'"
    )


def _dataset(args, pre: PreprocessConfig, cfg: SamplerConfig, seed: int, n: int, real_noise):
    key = json.dumps(
        {
            "pre": pre.to_dict(),
            "cfg": asdict(cfg),
            "seed": seed,
            "n": n,
            "real": bool(real_noise),
            "version": DATASET_VERSION,
            "detector_errors": detector_pick_errors_sha256(),
        },
        sort_keys=True,
    )
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    path = Path(args.cache_dir) / f"windows_{digest}.npz"
    if path.exists():
        with np.load(path) as z:
            return {k: z[k] for k in z.files}, digest
    data = generate_dataset(n, pre, cfg, seed=seed, real_noise=real_noise, progress=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **data)
    tmp.rename(path)
    return data, digest


def flip_batch(x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor):
    """Negate rows where ``mask`` and swap their labels up <-> down (unknown stays)."""
    x = torch.where(mask.view(-1, *([1] * (x.dim() - 1))), -x, x)
    swapped = torch.where(y == 0, 1, torch.where(y == 1, 0, y))
    return x, torch.where(mask, swapped, y)


def combine_tta(direct: np.ndarray, flipped: np.ndarray, temperature: float) -> np.ndarray:
    def softmax(z):
        z = z / temperature
        z = z - z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    a, b = softmax(direct), softmax(flipped)
    return np.stack([(a[:, 0] + b[:, 1]) / 2, (a[:, 1] + b[:, 0]) / 2, (a[:, 2] + b[:, 2]) / 2], 1)


def fit_temperature(direct: np.ndarray, flipped: np.ndarray, labels: np.ndarray) -> float:
    """Temperature minimising the NLL of the flip-augmented probabilities (grid search)."""
    grid = np.exp(np.linspace(np.log(0.3), np.log(5.0), 121))
    rows = np.arange(labels.size)
    nll = [-np.mean(np.log(combine_tta(direct, flipped, t)[rows, labels] + 1e-12)) for t in grid]
    return float(grid[int(np.argmin(nll))])


def run(args: argparse.Namespace) -> int:
    torch.set_num_threads(max(1, args.threads))
    torch.manual_seed(args.seed)
    device = torch.device(
        ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    )
    pre = PreprocessConfig(
        window_pre_samples=args.window_pre,
        window_post_samples=args.window_post,
        highpass_hz=args.highpass_hz,
        sampling_rate_hz=args.model_rate,
        normalisation=args.normalisation,
    )
    overrides = {
        k: tuple(v) if isinstance(v, list) else v for k, v in json.loads(args.sampler).items()
    }
    cfg = replace(SamplerConfig(), **overrides)
    real_noise = [] if args.no_real_noise else load_real_noise()
    log.info("real noise records: %d", len(real_noise))
    t0 = time.perf_counter()
    train, train_digest = _dataset(args, pre, cfg, args.seed, args.n_train, real_noise)
    val, _ = _dataset(args, pre, cfg, args.seed + 1, args.n_val, real_noise)
    log.info("datasets ready in %.1f s", time.perf_counter() - t0)

    # every argument explicit in the card, so later changes of the defaults cannot break it
    arch_args = {
        name: (list(p.default) if isinstance(p.default, tuple) else p.default)
        for name, p in inspect.signature(PolarityCNN).parameters.items()
    }
    arch_args.update(
        window_samples=pre.window_samples, in_channels=pre.n_channels, **json.loads(args.arch)
    )
    model = PolarityCNN(**arch_args).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=args.lr, total_steps=args.steps, pct_start=0.15
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    ckpt_path = Path(args.cache_dir) / f"{out.name}.ckpt"
    ckpt_path.parent.mkdir(parents=True, exist_ok=True)
    run_key = {
        "steps": args.steps,
        "seed": args.seed,
        "lr": args.lr,
        "batch": args.batch_size,
        "data": train_digest,
        "arch": arch_args,
    }
    step = 0
    earlier_wall_s = 0.0  # time spent by the sessions before a resume
    gen = torch.Generator().manual_seed(args.seed)
    if ckpt_path.exists():
        ck = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        if ck.get("run_key") == run_key:
            model.load_state_dict(ck["model"])
            opt.load_state_dict(ck["opt"])
            sched.load_state_dict(ck["sched"])
            gen.set_state(ck["gen"])
            torch.set_rng_state(ck["torch_rng"])
            step = ck["step"]
            earlier_wall_s = float(ck.get("wall_s", 0.0))
            log.info("resumed from %s at step %d", ckpt_path, step)
        else:
            log.warning("checkpoint %s is for another run; starting over", ckpt_path)

    x_train = torch.from_numpy(train["windows"])
    y_train = torch.from_numpy(train["labels"])
    loss_fn = nn.CrossEntropyLoss()
    from tqdm import tqdm

    bar = tqdm(total=args.steps, initial=step, desc="training", unit="step")
    model.train()
    running = 0.0
    session_end = args.steps if args.stop_after is None else min(args.steps, step + args.stop_after)
    while step < session_end:
        idx = torch.randint(0, x_train.shape[0], (args.batch_size,), generator=gen)
        flip = torch.rand(args.batch_size, generator=gen) < 0.5
        xb, yb = flip_batch(x_train[idx], y_train[idx], flip)
        xb, yb = xb.to(device), yb.to(device)
        loss = loss_fn(model(xb), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        step += 1
        running = 0.98 * running + 0.02 * loss.item() if step > 1 else loss.item()
        bar.update(1)
        if step % 50 == 0:
            bar.set_postfix(loss=f"{running:.4f}", lr=f"{sched.get_last_lr()[0]:.2e}")
        if step % args.checkpoint_every == 0 or step == session_end:
            tmp = ckpt_path.with_suffix(".ckpt.tmp")
            torch.save(
                {
                    "run_key": run_key,
                    "model": model.state_dict(),
                    "opt": opt.state_dict(),
                    "sched": sched.state_dict(),
                    "gen": gen.get_state(),
                    "torch_rng": torch.get_rng_state(),
                    "step": step,
                    "wall_s": earlier_wall_s + time.perf_counter() - t0,
                },
                tmp,
            )
            tmp.replace(ckpt_path)
    bar.close()
    if step < args.steps:
        log.info("stopped at step %d of %d; rerun the same command to resume", step, args.steps)
        return 0
    model.eval()

    # temperature on the validation set
    xv, yv = val["windows"], val["labels"]
    direct = tta_logits(model, xv, device)
    flipped = tta_logits(model, -xv, device)
    temperature = fit_temperature(direct, flipped, yv)
    probs = combine_tta(direct, flipped, temperature)
    val_acc = float(np.mean(probs.argmax(1) == yv))
    log.info("temperature %.3f, validation accuracy %.4f", temperature, val_acc)

    buf = io.BytesIO()
    torch.save(model.cpu().state_dict(), buf)
    weight_bytes = buf.getvalue()
    out.with_suffix(".pt").write_bytes(weight_bytes)
    card = {
        "format_version": CARD_FORMAT_VERSION,
        "name": out.name,
        "description": "P first-motion polarity CNN (up/down/unknown) on vertical windows",
        "min_firstmotion_version": __version__,
        "torch_version": torch.__version__,
        "architecture": {
            "class": "PolarityCNN",
            "args": arch_args,
            "n_parameters": count_parameters(model),
        },
        "preprocessing": pre.to_dict(),
        "labels": list(LABELS),
        "temperature": temperature,
        "thresholds": {"decision": args.decision_threshold},
        "weights_sha256": hashlib.sha256(weight_bytes).hexdigest(),
        "training": {
            "command": (
                f"firstmotion polarity train --out {args.out} --steps {args.steps} "
                f"--seed {args.seed} --n-train {args.n_train} --n-val {args.n_val} "
                f"--batch-size {args.batch_size} --lr {args.lr} --window-pre {args.window_pre} "
                f"--window-post {args.window_post} --highpass-hz {args.highpass_hz} "
                f"--model-rate {args.model_rate:g} --normalisation {args.normalisation} "
                f"--arch '{args.arch}' --sampler '{args.sampler}' --threads {args.threads}"
                + (" --no-real-noise" if args.no_real_noise else "")
            ),
            "seed": args.seed,
            "steps": args.steps,
            "n_train": args.n_train,
            "n_val": args.n_val,
            "data": (
                "synthetic P windows from firstmotion.synth (Brune + causal t*, 4 sensor noise "
                "profiles, drift, emergent onsets (half of them under one envelope with their "
                "later arrivals, unknown below first-lobe SNR 3), later arrivals: reflections, "
                "site reverberation, scattered coda up to 6x the first lobe; Laplacian pick errors "
                "and mispicks 0.15-0.6 s off labelled unknown, datalogger anti-alias FIRs (linear "
                "phase with precursor, or minimum phase) on half the signals, 40-500 Hz, "
                "whole-trace flips) "
                "mixed with real noise (shared/data/pr2017_noise EHZ, TexNet 2017 pre-P noise "
                "ending 5 s before each station's first P); see workers/polarity/dataset.py"
            ),
            "sampler": asdict(cfg),
            "dataset_version": DATASET_VERSION,
            "detector_pick_errors_sha256": detector_pick_errors_sha256(),
            "real_noise_records": len(real_noise),
            "device": str(device),
            "wall_s": round(earlier_wall_s + time.perf_counter() - t0, 1),
        },
        "metrics": {"validation": {"accuracy_3class": val_acc, "n": int(yv.size)}},
    }
    out.with_suffix(".json").write_text(json.dumps(card, indent=2) + "\n")
    PolarityClassifier.load(out)  # the card must load
    log.info("wrote %s.pt and %s.json", out, out)
    return 0


def tta_logits(model: nn.Module, x: np.ndarray, device) -> np.ndarray:
    parts = []
    with torch.inference_mode():
        for start in range(0, x.shape[0], 4096):
            xb = torch.from_numpy(np.ascontiguousarray(x[start : start + 4096])).to(device)
            parts.append(model(xb).float().cpu().numpy())
    return np.concatenate(parts)
