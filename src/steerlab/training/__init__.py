"""Fine-tuning the loaded model on chat data, with feature knobs (ablate, steer, penalize) and dials.

``data`` reads chat JSONL into token ids with assistant-only labels, ``knobs`` turns SAE features into
training-time edits of the residual stream, ``finetune`` runs the loop (checkpoints, resume, evals,
metrics) and saves the result as a plain HF folder, ``plots`` draws the curves.
"""
