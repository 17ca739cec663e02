#!/usr/bin/env bash
# One short GPU check (about 5 min on one GPU): a few bf16 training steps on CUDA, then the same
# SciFact slice scored on the GPU (bf16, FAISS on the GPU when faiss-gpu is installed) and on the CPU
# (fp32, the reference), printing the speed of each (eval seconds, encoding tokens/s) and the score difference;
# then the full SciFact eval and the headline training on the GPU, each a fresh process timed from outside,
# and the GPU memory importing BM25 leaves (bm25s starts JAX where it is installed).
#   scripts/gpu_check.sh            # from the repository root (uses .venv when there is one)
# Exits 2 with one line when torch sees no CUDA device.
set -euo pipefail
export EMBEDBENCH_DATA="${EMBEDBENCH_DATA:-../shared/data}" HF_HUB_OFFLINE=1
[ -d .venv ] && export PATH="$PWD/.venv/bin:$PATH"
python -c "import sys, torch; torch.cuda.is_available() or sys.exit('gpu_check: no CUDA device visible to torch (torch.cuda.is_available() is False); nothing to check')" || exit 2
out="$(mktemp -d)"
slice=(eval=beir eval.max_queries=100 eval.max_docs=1500 eval.cache=false "logger.tracking_uri=sqlite:///$out/mlflow.db")
embedbench train device=cuda trainer=debug trainer.max_steps=20 trainer.bf16=true model=mrl "${slice[@]}" "hydra.run.dir=$out/train"
embedbench eval device=cuda encode.precision=bf16 "${slice[@]}" "hydra.run.dir=$out/gpu"
embedbench eval device=cpu encode.precision=fp32 "${slice[@]}" "hydra.run.dir=$out/cpu"
full=(device=cuda eval=beir eval.cache=false "logger.tracking_uri=sqlite:///$out/mlflow.db")
for job in eval train; do
  [ "$job" = train ] && args=(model=mrl loss=infonce data=scifact) || args=(encode.precision=bf16)
  start=$(date +%s.%N)
  embedbench "$job" "${args[@]}" "${full[@]}" "hydra.run.dir=$out/full_$job"
  awk "BEGIN { print $(date +%s.%N) - $start }" > "$out/full_$job/wall_s"
done
python - <<'PY'
import time, torch
from embedbench.data.beir import load_beir, resolve_root, subsample
from embedbench.embedding.encoder import LayerEncoder, load_model
texts = [d["title"] + " " + d["text"] for d in subsample(load_beir("scifact", resolve_root("scifact", None), "test"), None, 1500).corpus.values()]
for device, precision, batch in (("cuda", "bf16", 128), ("cpu", "fp32", 16)):
    encoder = LayerEncoder(load_model("default", device))
    tokens = int(encoder.token_lengths(texts).sum())
    encoder.encode(texts[:256], [6], batch, precision)  # warm-up
    start = time.perf_counter()
    encoder.encode(texts, [6], batch, precision)
    print(f"encode {device} {precision}: {tokens / (time.perf_counter() - start):,.0f} tokens/s over {len(texts)} docs")
PY
python - "$out" <<'PY'
import json, sys, torch, faiss
out = sys.argv[1]
free = torch.cuda.mem_get_info()[0]
import embedbench.retrieval.lexical  # imports bm25s
print(f"GPU memory free before and after importing BM25: {free / 2**30:.1f} -> "
      f"{torch.cuda.mem_get_info()[0] / 2**30:.1f} GiB")
gpu, cpu = (json.load(open(f"{out}/{name}/results.json"))["metrics"] for name in ("gpu", "cpu"))
print(f"\ndevice: {torch.cuda.get_device_name(0)}; FAISS GPUs: {faiss.get_num_gpus() if hasattr(faiss, 'get_num_gpus') else 0}")
print(f"{'path':22s} {'scifact eval s':>15s} {'nDCG@10':>9s}")
for name, m in (("GPU bf16", gpu), ("CPU fp32", cpu)):
    print(f"{name:22s} {m['scifact/eval_s']:15.1f} {m['scifact/ndcg_at_10']:9.5f}")
print(f"GPU speed-up {cpu['scifact/eval_s'] / gpu['scifact/eval_s']:.1f}x, "
      f"nDCG@10 difference {gpu['scifact/ndcg_at_10'] - cpu['scifact/ndcg_at_10']:+.5f}")
for job in ("eval", "train"):
    m = json.load(open(f"{out}/full_{job}/results.json"))["metrics"]
    wall = float(open(f"{out}/full_{job}/wall_s").read())
    train = f", training {m['train/seconds']:.1f} s" if job == "train" else ""
    print(f"full SciFact {job} on the GPU: {wall:.1f} s wall{train}, eval {m['scifact/eval_s']:.1f} s, "
          f"nDCG@10 {m['scifact/ndcg_at_10']:.5f}, d64 {m.get('scifact/ndcg_at_10/d64', float('nan')):.5f}")
PY
