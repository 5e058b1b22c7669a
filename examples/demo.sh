#!/usr/bin/env bash
# The README demo: learn the motion of a synthetic clip with the built-in tiny
# backend (no download, CPU), then generate that motion with a new prompt.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${VMC_DEMO_OUT:-out}
mkdir -p "$out"
python examples/make_clip.py "$out/disc.mp4" --frames 16 >/dev/null
vmc tune "$out/disc.mp4" --prompt "a red disc is flying over the sea" --backend tiny \
    --name demo-disc --steps "${VMC_DEMO_STEPS:-40}" --force
vmc generate demo-disc --prompt "a blue disc is flying in the desert" \
    --steps 25 --invert-steps 25 -o "$out/demo.mp4"
echo "video: $out/demo.mp4"
