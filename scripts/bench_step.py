#!/usr/bin/env python
"""Training-step time of each view objective against a plain InfoNCE step, same batches, one run.

    python scripts/bench_step.py --steps 5 --batch 32

Each step is forward + backward + optimizer update on SciFact train pairs with MiniLM, exactly the
objective the trainer would call. Objectives take turns step by step, so machine noise hits all alike.
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.setdefault("EMBEDBENCH_DATA", str(REPO.parent / "shared" / "data")))


def main() -> None:
    import torch

    from embedbench.cli import compose_config
    from embedbench.composition import load
    from embedbench.data.pairs import training_pairs
    from embedbench.embedding.encoder import LayerEncoder, load_model
    from embedbench.embedding.views import build_views
    from embedbench.losses import build_objective

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--models", nargs="+", default=["minilm", "mrl", "starbucks", "2dmse"])
    args = parser.parse_args()

    model = load_model("default", "cpu")
    encoder = LayerEncoder(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-7)  # tiny: the weights barely move between turns
    objectives = {}
    for name in args.models:
        cfg = load(compose_config("train", [f"model={name}"]))
        views = build_views(cfg.model.views, encoder.n_layers, encoder.hidden_size)
        objectives[name] = build_objective(cfg.loss, encoder, views, cfg.model.objective, cfg.seed)
    pairs = training_pairs(cfg.data, None, cfg.seed, cfg.encode, None)
    batches = [pairs[i * args.batch:(i + 1) * args.batch] for i in range(args.steps + 1)]
    seconds = {name: 0.0 for name in objectives}
    model.train()
    for step, batch in enumerate(batches):
        features = [model.preprocess(batch["anchor"]), model.preprocess(batch["positive"])]
        for name, objective in objectives.items():
            start = time.perf_counter()
            optimizer.zero_grad()
            objective(features).backward()
            optimizer.step()
            if step:  # the first round warms up
                seconds[name] += time.perf_counter() - start
    base = seconds["minilm"] / args.steps
    print(f"\nMiniLM training step, batch {args.batch}, {args.steps} timed steps each, "
          f"CPU threads {torch.get_num_threads()}")
    print(f"{'objective':12s} {'s/step':>8s} {'x infonce':>10s}")
    for name, total in seconds.items():
        print(f"{name:12s} {total / args.steps:8.2f} {total / args.steps / base:10.2f}")


if __name__ == "__main__":
    main()
