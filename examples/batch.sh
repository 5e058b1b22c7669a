#!/usr/bin/env bash
# A batch job: several prompts against one profile, results listed as JSON.
#   bash examples/batch.sh [PROFILE]     (default: demo-disc, made by examples/demo.sh)
set -euo pipefail
profile=${1:-demo-disc}
out=${VMC_BATCH_OUT:-out/batch}
prompts=$(mktemp)
trap 'rm -f "$prompts"' EXIT
cat > "$prompts" <<'PROMPTS'
a blue disc is flying in the desert
a yellow ball is flying in space
a white moon is flying over the city
PROMPTS
# One JSON document on stdout; progress goes to stderr.
vmc generate "$profile" --prompt-file "$prompts" -o "$out" --steps 25 --invert-steps 25 --json \
    | python -c 'import json, sys; [print(v["path"], "<-", v["prompt"]) for v in json.load(sys.stdin)["videos"]]'
