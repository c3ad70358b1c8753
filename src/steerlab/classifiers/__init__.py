"""Interpretable classifiers on a model's features (issue 16).

A classifier reads one text (a user turn in the model's chat format), pools the SAE's codes at its
hookpoint over the text's tokens (max or mean) and scores it with a sparse logistic regression, so a
decision rests on a few named features. Two baselines train in the same run: a linear probe on the
raw residual stream at the same layer (same pooling) and TF-IDF + logistic regression on the text.

One concept per file:
- ``data``: labelled texts from files, limits and their errors;
- ``tasks``: built-in tasks from offline data (jailbreak vs ordinary request, harmful vs benign);
- ``pooling``: per-text pooled SAE codes and residuals through the Lab;
- ``fit``: the sparse (L1, then top-k) and dense logistic regressions, TF-IDF;
- ``metrics``: AUROC, F1 at a threshold, calibration (ECE, Brier);
- ``model``: a trained classifier, its scores and explanations;
- ``train``: the three kinds trained and compared in one run;
- ``storage``: a classifier as a folder (config JSON + safetensors), tied to model, layer and SAE.
"""
