#!/usr/bin/env bash
# The exact commands behind bench/results/cpu-llama27m-text.*: a 27M-parameter Llama on two
# CPU cores, genedge against transformers and onnxruntime-genai.
#
#   the model   bench/results/make_llama_folder.py: LlamaConfig (hidden 512, 8 layers, 8 heads,
#               4 kv heads, MLP 1376, context 1024), untrained seeded weights, a 4096-token
#               byte-level BPE trained on stdlib-docs; a Hugging Face folder
#   the bundle  `genedge export FOLDER --precision fp32,int8,int4` (weight-only int8 and int4,
#               gated on held-out perplexity)
#   the bench   `genedge bench BUNDLE`, twice, each one interleaved run (one generation per
#               configuration per round), greedy, the same prompt token ids, the same number of
#               new tokens (no EOS stop), batch 1, two threads for everyone:
#     cpu-llama27m-text        the runtime (ORT CPU) at fp32, int8 and int4 against
#                              onnxruntime-genai's builder (fp32 and int4, CPU) on the same
#                              folder; prompts of 16 and 128 tokens, 32 and 600 new tokens
#                              (16 + 600 runs from position 16 past 600: the token cost at
#                              ~600 against ~50)
#     cpu-llama27m-text-t1     the genai comparison again with one thread for everyone (a loaded
#                              2-core machine deschedules a second thread), 128 new tokens
#     cpu-llama27m-text-torch  the same runtime configurations against transformers' eager
#                              greedy generate and torch.compile with a static cache, on the
#                              short case only (eager PyTorch takes an order of magnitude longer
#                              per token than the ONNX paths: the long cases would take hours)
#   the costs   `python -m genedge.bench.decode_costs` on genedge's fp32 and int4 decoders and
#               onnxruntime-genai's (built from the same folder): one decode step split into
#               weights, attention and everything else, at cache positions 32 and 600
#     cpu-llama27m-decode-costs
#
# Usage: bash bench/results/make_text_reference.sh
# Environment (defaults in brackets):
#   ROUNDS [10]  PROMPTS [16,128]  NEW [32,600]     the genai comparison
#   TORCH_ROUNDS [3]  TORCH_PROMPTS [16]  TORCH_NEW [32]  the PyTorch comparison
#   T1_NEW [128]           new tokens of the one-thread genai comparison
#   COST_ROUNDS [24]  COST_POSITIONS [32,600]   the decode-step breakdown
#   RUNS ["genai genai-t1 torch costs"]   which of the four to run
#   WORK [runs/llama27m]   where the folder and the bundle go (kept: not in git; an existing
#                          bundle is reused: delete it after the export changes. The results
#                          in git: all three runs in one invocation, WORK=runs/llama27m-s15,
#                          a fresh export.)
#   OUT [bench/results]    where the JSON, Markdown and PNG go
#   GENEDGE [.venv/bin/genedge]
# A quick check that every case runs (a few minutes, most of it genai's builder):
#   ROUNDS=1 PROMPTS=16 NEW=16 TORCH_ROUNDS=1 TORCH_NEW=8 COST_ROUNDS=1 COST_POSITIONS=8 \
#   OUT=/tmp/text-smoke \
#     bash bench/results/make_text_reference.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
GENEDGE=${GENEDGE:-.venv/bin/genedge}
PYTHON=${PYTHON:-$(dirname "$GENEDGE")/python}
ROUNDS=${ROUNDS:-10}
PROMPTS=${PROMPTS:-16,128}
NEW=${NEW:-32,600}
TORCH_ROUNDS=${TORCH_ROUNDS:-3}
TORCH_PROMPTS=${TORCH_PROMPTS:-16}
TORCH_NEW=${TORCH_NEW:-32}
T1_NEW=${T1_NEW:-128}
COST_ROUNDS=${COST_ROUNDS:-24}
COST_POSITIONS=${COST_POSITIONS:-32,600}
RUNS=${RUNS:-genai genai-t1 torch costs}
WORK=${WORK:-runs/llama27m}
OUT=${OUT:-bench/results}
mkdir -p "$OUT" "$WORK"

# Two cores: pin the process where taskset exists, and give every framework 2 threads.
PIN=()
if command -v taskset >/dev/null 2>&1 && [ "$(nproc)" -ge 2 ]; then PIN=(taskset -c 0,1); fi

[ -d "$WORK/llama" ] || "$PYTHON" bench/results/make_llama_folder.py "$WORK/llama"
[ -f "$WORK/bundle/manifest.json" ] ||
  "$GENEDGE" export "$WORK/llama" --out "$WORK/bundle" --precision fp32,int8,int4

bench() { # NAME ROUNDS PROMPTS NEW BASELINES
  "${PIN[@]}" "$GENEDGE" bench "$WORK/bundle" --backend ort-cpu --precision fp32,int8,int4 \
    --threads "${THREADS:-2}" --rounds "$2" --prompt-tokens "$3" --new-tokens "$4" --baselines "$5" \
    --json "$OUT/$1.json" --markdown "$OUT/$1.md" --plot "$OUT/$1.png"
}
costs() { # genai's builder on the same folder (kept in WORK), then the four decoders
  for p in fp32 int4; do
    [ -f "$WORK/genai-$p/model.onnx" ] || "$PYTHON" -c 'import sys; from pathlib import Path
from genedge.bench.text_targets import build_genai as b
b(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], Path(sys.argv[4]))' \
      "$WORK/llama" "$WORK/genai-$p" "$p" "$WORK/genai-cache"
  done
  "${PIN[@]}" "$PYTHON" -m genedge.bench.decode_costs "$WORK/bundle/model.onnx" \
    "$WORK/genai-fp32/model.onnx" "$WORK/bundle/model.int4.onnx" "$WORK/genai-int4/model.onnx" \
    --labels "genedge fp32,onnxruntime-genai fp32,genedge int4,onnxruntime-genai int4" \
    --positions "$COST_POSITIONS" --rounds "$COST_ROUNDS" --threads "${THREADS:-2}" \
    --json "$OUT/cpu-llama27m-decode-costs.json" --markdown "$OUT/cpu-llama27m-decode-costs.md" \
    --plot "$OUT/cpu-llama27m-decode-costs.png"
}
for run in $RUNS; do
  case $run in
    genai) bench cpu-llama27m-text "$ROUNDS" "$PROMPTS" "$NEW" genai ;;
    genai-t1) THREADS=1 bench cpu-llama27m-text-t1 "$ROUNDS" "$PROMPTS" "$T1_NEW" genai ;;
    torch) bench cpu-llama27m-text-torch "$TORCH_ROUNDS" "$TORCH_PROMPTS" "$TORCH_NEW" \
      torch,torch-compile ;;
    costs) costs ;;
    *) echo "unknown run '$run' (genai, genai-t1, torch, costs)" >&2; exit 2 ;;
  esac
done
