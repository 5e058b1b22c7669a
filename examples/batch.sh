#!/usr/bin/env bash
# A batch job: several prompts against one profile, results listed as JSON.
#   bash examples/batch.sh [PROFILE]     (default: demo-zigzag, made by examples/demo.sh)
set -euo pipefail
profile=${1:-demo-zigzag}
out=${VMC_BATCH_OUT:-out/batch}
prompts=$(mktemp)
trap 'rm -f "$prompts"' EXIT
cat > "$prompts" <<'PROMPTS'
a blue circle is moving
a green square is moving
a white triangle is moving
PROMPTS
# One JSON document on stdout; progress goes to stderr.
# VMC_BATCH_STEPS shortens sampling (the tests use it).
vmc generate "$profile" --prompt-file "$prompts" -o "$out" --json ${VMC_BATCH_STEPS:+--steps "$VMC_BATCH_STEPS"} \
    | python -c 'import json, sys; [print(v["path"], "<-", v["prompt"]) for v in json.load(sys.stdin)["videos"]]'
