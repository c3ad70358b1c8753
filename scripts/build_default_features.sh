#!/usr/bin/env bash
# Rebuild the feature database shipped next to the bundled SAE (src/steerlab/assets/saes/...).
# Run after scripts/build_default_sae.sh. Resumable: rerun after a kill (build checkpoints in <db>.build/,
# labeling skips labeled features).
# Input: 2 text shards (~0.5M tokens; harvest shards are shuffled across sources) + every 4th chat shard
# (~0.45M tokens of the chat corpus harvested while generated) + every 3rd shard of the everyday writing
# (~0.5M tokens of 1.5M). The 2026-11-22 build (before the writing part): 939,544 tokens, every one of the 9,216
# features fires on them; on 2 CPU cores scan 115 s (8,166 tok/s), write 40 s, offline labels 3 min 13 s.
set -euo pipefail
H="${STEERLAB_HOME:-$HOME/.cache/steerlab}"
LAYER=18
SAE=src/steerlab/assets/saes/smollm2-135m-instruct
DB="$H/features/smollm2-L$LAYER-final.db"
mkdir -p "$(dirname "$DB")"
TEXT="$H/harvests/smollm2-L$LAYER-text"
CHAT="$H/harvests/smollm2-L$LAYER-chat"
WRITING="$H/harvests/smollm2-L$LAYER-writing"
# a finished chat run only writes its sequences file (example contexts) when rerun: idempotent, seconds
steerlab corpus build-default --no-text --no-writing --capture-layer "$LAYER" --capture-out "$CHAT"
INPUTS=()
for i in 00000 00018; do INPUTS+=(--acts "$TEXT/shard_$i.safetensors"); done
for f in $(ls "$CHAT"/shard_*.safetensors | awk 'NR % 4 == 1'); do INPUTS+=(--acts "$f"); done
for f in $(ls "$WRITING"/shard_*.safetensors | awk 'NR % 3 == 1'); do INPUTS+=(--acts "$f"); done
steerlab features build --sae "$SAE" --db "$DB" "${INPUTS[@]}"
# offline labels (tokens mode: ~3 min for 9,216 features here; sentence mode is better but ~2 h)
steerlab features label --db "$DB" --sae "$SAE" --contexts tokens
# decoder directions are not stored (the server passes the SAE's W_dec); compact and ship
python -c "import sys; from steerlab.features.store import FeatureStore; FeatureStore(sys.argv[1]).compact()" "$DB"
cp "$DB" "$SAE/features.db"
