"""What every feature dashboard (terminal, HTML, PNG) shows, computed once: shared display helpers."""

from __future__ import annotations

from steerlab.features.schema import Example, Feature

SPARK = "▁▂▃▄▅▆▇█"


def display_token(token: str) -> str:
    """A token made visible: newlines and tabs as symbols (the text itself is never interpreted)."""
    return token.replace("\r", "").replace("\n", "↵").replace("\t", "→")


def clip(example: Example, before: int = 24, after: int = 8) -> tuple[list[str], list[float]]:
    """Tokens and activations of the window around the example's strongest token."""
    n = len(example.tokens)
    center = min(max(example.max_position, 0), max(n - 1, 0)) if example.max_act > 0 else n // 2
    start, end = max(0, center - before), min(n, center + after + 1)
    return example.tokens[start:end], example.acts[start:end]


def strength(act: float, scale: float) -> float:
    """Activation as a 0..1 highlight strength relative to the feature's max."""
    return 0.0 if scale <= 0 or act <= 0 else min(act / scale, 1.0)


def sparkline(counts: list[int]) -> str:
    """Histogram counts as block characters; any nonzero bin shows at least the lowest block."""
    top = max(counts, default=0)
    if top <= 0:
        return ""
    return "".join(
        " " if c == 0 else SPARK[min(len(SPARK) - 1, int((len(SPARK) - 1) * c / top + 0.999))] for c in counts
    )


def summary_rows(feature: Feature) -> list[tuple[str, str]]:
    """(name, value) lines of the feature's statistics."""
    s = feature.stats
    if s is None:
        return [("stats", "not built (run 'steerlab features build')")]
    rows = [
        ("density", f"{s.density:.3%} of {s.tokens_scanned:,} tokens"),
        ("max", f"{s.max_act:.3f}"),
        ("mean (firing)", f"{s.mean_act:.3f}"),
    ]
    if s.quantiles:
        rows.append(("quantiles", "  ".join(f"q{k}={v:.3g}" for k, v in s.quantiles.items())))
    return rows


def label_line(feature: Feature) -> str:
    label = feature.label
    if label is None:
        return "(unlabeled)"
    score = ""
    if label.score is not None:
        score = f", score {label.score:.2f}" + (f" by {label.scorer}" if label.scorer else "")
    return f"{label.text}  [{label.explainer}{score}]"
