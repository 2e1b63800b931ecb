#!/usr/bin/env bash
# The exact commands behind bench/results/: three generators on two CPU cores.
#
#   cpu-digits-cgan    the digits conditional GAN, 16x16 gray (trained by `genedge train`);
#                      also at one thread (cpu-digits-cgan-1thread)
#   cpu-mnist28-cgan   a 28x28 conditional DCGAN, MNIST size (examples/byo/dcgan.py:Generator28,
#                      ngf 64, 10 classes), untrained weights
#   cpu-dcgan64-rgb    the 64x64 RGB DCGAN generator of the PyTorch tutorial
#                      (examples/byo/dcgan.py:Generator64, nc 3), untrained weights
#
# Speed does not depend on the weights' values, so the two larger models are exported untrained
# (`--weights none`); their int8 quality records are therefore not meaningful, and the README
# quotes quality from trained models only. Each model: the runtime (auto, ORT CPU, OpenVINO)
# against PyTorch eager, torch.compile, bare ONNX Runtime and standalone OpenVINO on the same
# ONNX, batch 1 and 16, effective GFLOP/s beside each p50.
#
# Usage: bash bench/results/make_reference.sh
# Environment (defaults in brackets):
#   MODELS ["digits mnist28 dcgan64"]  which models to run
#   SECONDS_PER_CASE [5]  ROUNDS [10]  COLD_RUNS [3]  FPS_SECONDS [5]  the bench budget
#   TUNE_SECONDS [8]      `genedge tune` before each bench, so auto is the tuned choice
#   GENEDGE_CACHE         where those tunings go [a fresh temporary folder]
#   WARMUP                untimed calls per case [50 digits, 20 mnist28, 10 dcgan64: a batch-16
#                         call of the 64x64 model takes a few hundred ms on two cores]
#   OUT [bench/results]   where the JSON, Markdown and PNG go (the terminal output is not kept:
#                         the .md has it)
#   RUN, BUNDLE           the digits run and bundle [runs/digits-cgan, runs/digits-cgan-bundle]
#   BUNDLE28, BUNDLE64    [runs/mnist28-cgan-bundle, runs/dcgan64-rgb-bundle]
#   GENEDGE               [.venv/bin/genedge]
# A quick check that every case runs (seconds, not minutes):
#   MODELS="mnist28 dcgan64" SECONDS_PER_CASE=0.5 ROUNDS=4 COLD_RUNS=1 FPS_SECONDS=1 WARMUP=3 \
#     OUT=/tmp/bench-smoke bash bench/results/make_reference.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
GENEDGE=${GENEDGE:-.venv/bin/genedge}
PYTHON=${PYTHON:-$(dirname "$GENEDGE")/python}
MODELS=${MODELS:-digits mnist28 dcgan64}
SECONDS_PER_CASE=${SECONDS_PER_CASE:-5}
ROUNDS=${ROUNDS:-10}
COLD_RUNS=${COLD_RUNS:-3}
FPS_SECONDS=${FPS_SECONDS:-5}
OUT=${OUT:-bench/results}
RUN=${RUN:-runs/digits-cgan}
BUNDLE=${BUNDLE:-runs/digits-cgan-bundle}
BUNDLE28=${BUNDLE28:-runs/mnist28-cgan-bundle}
BUNDLE64=${BUNDLE64:-runs/dcgan64-rgb-bundle}
DCGAN=examples/byo/dcgan.py
mkdir -p "$OUT"
# the tunings auto reads live in a cache of this run's own, not the user's
export GENEDGE_CACHE=${GENEDGE_CACHE:-$(mktemp -d)}
TUNE_SECONDS=${TUNE_SECONDS:-8}

# Two cores: pin the process where taskset exists, and give every framework 2 threads.
PIN=()
if command -v taskset >/dev/null 2>&1 && [ "$(nproc)" -ge 2 ]; then PIN=(taskset -c 0,1); fi

# The runtime's OpenVINO backend where the openvino package is installed; the standalone
# OpenVINO baseline is always asked for (without the package it is a note in the report).
BACKENDS=auto,ort-cpu
if "$PYTHON" -c "import openvino" >/dev/null 2>&1; then BACKENDS=auto,ort-cpu,openvino; fi

# bench NAME BUNDLE THREADS WARMUP [extra bench flags...]
bench() {
  local name=$1 bundle=$2 threads=$3 warmup=${WARMUP:-$4}
  shift 4
  # the committed results carry no genedge marker after a git checkout, so genedge would refuse
  # to replace them: this script owns them and removes them first
  rm -f "$OUT/$name.json" "$OUT/$name.md" "$OUT/$name.png"
  # auto as a user gets it after `genedge tune`: measured on this machine, per batch size
  "${PIN[@]}" "$GENEDGE" tune "$bundle" --batch 1,16 --threads "$threads" --seconds "$TUNE_SECONDS"
  "${PIN[@]}" "$GENEDGE" bench "$bundle" \
    --backend "$BACKENDS" --precision fp32,int8 --batch 1,16 \
    --seconds "$SECONDS_PER_CASE" --warmup "$warmup" --threads "$threads" --rounds "$ROUNDS" \
    --cold-runs "$COLD_RUNS" --baselines torch,torch-compile,ort,openvino \
    --fps 60 --fps-seconds "$FPS_SECONDS" --check-targets \
    --json "$OUT/$name.json" --markdown "$OUT/$name.md" --plot "$OUT/$name.png" "$@"
}

for MODEL in $MODELS; do
  case $MODEL in
    digits)
      if [ ! -f "$RUN/generator.safetensors" ]; then
        "$GENEDGE" train gan --data digits --conditional --out "$RUN" --minutes 4 --no-progress
      fi
      if [ ! -f "$BUNDLE/manifest.json" ]; then
        "$GENEDGE" export "$RUN/generator.safetensors" --out "$BUNDLE" --precision fp32,int8
      fi
      # Two threads (both cores) is the headline; one thread is recorded too, because with two
      # ORT threads on two cores every stray wake-up lands on a busy core and the latency turns
      # bimodal. --checkpoint: bundles exported before the manifest recorded source.path.
      bench cpu-digits-cgan "$BUNDLE" 2 50 --checkpoint "$RUN/generator.safetensors"
      bench cpu-digits-cgan-1thread "$BUNDLE" 1 50 --checkpoint "$RUN/generator.safetensors"
      ;;
    mnist28)
      ARGS28='{"num_classes": 10, "ngf": 64}'
      if [ ! -f "$BUNDLE28/manifest.json" ]; then
        "$GENEDGE" export --module "$DCGAN:Generator28" --weights none --module-args "$ARGS28" \
          --latent-dim 64 --num-classes 10 --latent-shape 64,1,1 --precision fp32,int8 \
          --out "$BUNDLE28"
      fi
      bench cpu-mnist28-cgan "$BUNDLE28" 2 20 --module "$DCGAN:Generator28" --module-args "$ARGS28"
      ;;
    dcgan64)
      ARGS64='{"nc": 3}'
      if [ ! -f "$BUNDLE64/manifest.json" ]; then
        "$GENEDGE" export --module "$DCGAN:Generator64" --weights none --module-args "$ARGS64" \
          --latent-dim 100 --latent-shape 100,1,1 --precision fp32,int8 --out "$BUNDLE64"
      fi
      bench cpu-dcgan64-rgb "$BUNDLE64" 2 10 --module "$DCGAN:Generator64" --module-args "$ARGS64"
      ;;
    *)
      echo "make_reference.sh: unknown model '$MODEL' in MODELS; expected digits, mnist28, dcgan64" >&2
      exit 2
      ;;
  esac
done
