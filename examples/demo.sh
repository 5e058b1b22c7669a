#!/usr/bin/env bash
# The README demo, on the built-in shapes-wan model (Wan 2.1's architecture trained on a world of
# coloured shapes; shipped weights: no download, CPU): learn the zig-zag motion of a red circle, a
# path the model never saw in training, then generate "a blue square" from fresh noise with the
# profile and without it (same seed), and measure how closely each follows the source's path.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${VMC_DEMO_OUT:-out}
mkdir -p "$out"
echo "vmc demo: learn the zig-zag motion of a red circle from one clip, then draw a blue square from fresh noise" \
     "with that profile and without it (the same seed), and measure how closely each follows the zig-zag" \
     "(under a minute on two CPU cores)."
python examples/shapes_clip.py "$out/source.mp4" --path zigzag --shape circle --colour red --frames 9 >/dev/null
# The backend's own tuning defaults (`vmc backends` lists them); VMC_DEMO_STEPS and
# VMC_DEMO_SAMPLE_STEPS shorten the run (the tests use them).
vmc tune "$out/source.mp4" --prompt "a shape is moving" --keep-prompt --backend shapes-wan --name demo-zigzag --force \
    ${VMC_DEMO_STEPS:+--steps "$VMC_DEMO_STEPS"}
for scale in 1 0; do
    vmc generate demo-zigzag --prompt "a blue square is moving" --init noise --seed 0 --motion-scale $scale \
        -o "$out/square_scale$scale.mp4" --side-by-side "$out/side_by_side_scale$scale.gif" \
        ${VMC_DEMO_SAMPLE_STEPS:+--steps "$VMC_DEMO_SAMPLE_STEPS"}
done
echo "with the profile (--motion-scale 1):"
python examples/shapes_score.py "$out/source.mp4" "$out/square_scale1.mp4"
echo "without it (--motion-scale 0, the same noise):"
python examples/shapes_score.py "$out/source.mp4" "$out/square_scale0.mp4"
vmc eval "$out/square_scale1.mp4" --source "$out/source.mp4" --no-clip --plot "$out/tracks.png" >/dev/null
echo "videos: $out/square_scale1.mp4 (profile), $out/square_scale0.mp4 (no profile); source beside each:" \
     "$out/side_by_side_scale1.gif, $out/side_by_side_scale0.gif; motion tracks (source and profile): $out/tracks.png"
echo "how well profiles carry motion, measured over held-out paths: docs/shapes_wan.md"
