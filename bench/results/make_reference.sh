#!/usr/bin/env bash
# The exact commands behind bench/results/: the digits conditional GAN on two CPU cores.
# Usage: bash bench/results/make_reference.sh   (env: RUN, BUNDLE, SECONDS_PER_CASE, GENEDGE)
# Writes the JSON, Markdown and PNG of each run; the terminal output is not kept (the .md has it).
set -euo pipefail
cd "$(dirname "$0")/../.."
GENEDGE=${GENEDGE:-.venv/bin/genedge}
RUN=${RUN:-runs/digits-cgan}
BUNDLE=${BUNDLE:-runs/digits-cgan-bundle}
SECONDS_PER_CASE=${SECONDS_PER_CASE:-5}
OUT=bench/results
NAME=cpu-digits-cgan

if [ ! -f "$RUN/generator.safetensors" ]; then
  "$GENEDGE" train gan --data digits --conditional --out "$RUN" --minutes 4 --no-progress
fi
if [ ! -f "$BUNDLE/manifest.json" ]; then
  "$GENEDGE" export "$RUN/generator.safetensors" --out "$BUNDLE" --precision fp32,int8
fi

# Two cores: pin the process where taskset exists, and give every framework 2 threads.
PIN=()
if command -v taskset >/dev/null 2>&1 && [ "$(nproc)" -ge 2 ]; then PIN=(taskset -c 0,1); fi

# Two threads (both cores) is the headline; one thread is recorded too, because with two ORT
# threads on two cores every stray wake-up lands on a busy core and the latency turns bimodal.
for T in 2 1; do
  SUFFIX=$([ "$T" = 2 ] && echo "" || echo "-${T}thread")
  # the committed results carry no genedge marker after a git checkout, so genedge would refuse
  # to replace them: this script owns them and removes them first
  rm -f "$OUT/$NAME$SUFFIX.json" "$OUT/$NAME$SUFFIX.md" "$OUT/$NAME$SUFFIX.png"
  "${PIN[@]}" "$GENEDGE" bench "$BUNDLE" \
    --backend ort-cpu --precision fp32,int8 --batch 1,16 \
    --seconds "$SECONDS_PER_CASE" --warmup 50 --threads "$T" --rounds 10 --cold-runs 3 \
    --baselines torch,torch-compile,ort --checkpoint "$RUN/generator.safetensors" \
    --fps 60 --fps-seconds 5 --check-targets \
    --json "$OUT/$NAME$SUFFIX.json" --markdown "$OUT/$NAME$SUFFIX.md" --plot "$OUT/$NAME$SUFFIX.png"
done
