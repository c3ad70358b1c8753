#!/usr/bin/env bash
# Rebuild the bundled default SAE from scratch. Every step is resumable: rerun the script after a kill.
# On 2 CPU cores (fp32) the whole run is many hours (chat replies ~100-250 tok/s, harvest ~650 tok/s);
# state lives under $STEERLAB_HOME (default ~/.cache/steerlab), not in the work tree.
set -euo pipefail
H="${STEERLAB_HOME:-$HOME/.cache/steerlab}"
LAYER=18   # chosen by benchmarks/layer_choice.py (docs/layer_choice_run.json)

# 1. plain text (minutes), then harvest the residual stream after block 18 over it
steerlab corpus build-default --no-chat
steerlab harvest --default-corpus text --layer "$LAYER" --out "$H/harvests/smollm2-L$LAYER-text"
# 2. chat transcripts written by the model itself (hours), harvested while they are generated
#    (the same as 'steerlab harvest --default-corpus chat' afterwards, without a second pass)
steerlab corpus build-default --no-text --capture-layer "$LAYER" --capture-out "$H/harvests/smollm2-L$LAYER-chat"
# 3. train TopK, 16x width (9216 latents), k=64, one epoch over everything harvested
steerlab sae train --acts "$H/harvests/smollm2-L$LAYER-text" --acts "$H/harvests/smollm2-L$LAYER-chat" \
  --out "$H/runs/smollm2-L$LAYER-topk-16x" --expansion 16 --k 64 --save-dtype bfloat16
# 4. evaluate on held-out text and chat that were never harvested
steerlab sae eval --sae "$H/runs/smollm2-L$LAYER-topk-16x/sae" --text-file "$H/corpora/default/heldout/text.jsonl" --json
steerlab sae eval --sae "$H/runs/smollm2-L$LAYER-topk-16x/sae" --text-file "$H/corpora/default/heldout/chat.jsonl" --json
# 5. ship it
rm -rf src/steerlab/assets/saes/smollm2-135m-instruct
cp -r "$H/runs/smollm2-L$LAYER-topk-16x/sae" src/steerlab/assets/saes/smollm2-135m-instruct
