"""One feature as a file to look at: a self-contained HTML page or a PNG (histogram + top examples).

Every string that came from data (tokens, labels) is escaped before it reaches HTML, and drawn
with math-text parsing off in matplotlib, so a token like ``<script>`` or ``$x$`` shows as itself.
"""

from __future__ import annotations

import html
import os
import tempfile
from pathlib import Path

from steerlab.errors import InvalidInputError
from steerlab.features.dashboard_common import clip, display_token, label_line, strength, summary_rows
from steerlab.features.schema import Example, Feature

_CSS = """body{font-family:system-ui,sans-serif;margin:2em;max-width:60em;color:#222}
h1{font-size:1.3em}.label{color:#036;font-weight:600}table{border-collapse:collapse}
td{padding:2px 12px 2px 0;vertical-align:top}.dim{color:#777}.ex{font-family:monospace;white-space:pre-wrap;
margin:4px 0;padding:4px;border-bottom:1px solid #eee}.ex span{border-radius:2px}
.cols{display:flex;gap:3em}"""


def _e(text) -> str:
    return html.escape(str(text), quote=True)


def _example_html(example: Example, scale: float) -> str:
    tokens, acts = clip(example)
    spans = []
    for token, act in zip(tokens, acts):
        level = strength(act, scale)
        style = f' style="background:rgba(255,120,0,{level:.2f})"' if level > 0 else ""
        spans.append(f'<span title="{act:.3f}"{style}>{_e(display_token(token))}</span>')
    return f'<div class="ex"><span class="dim">{example.max_act:.2f} </span>{"".join(spans)}</div>'


def _histogram_svg(feature: Feature, width: int = 480, height: int = 120) -> str:
    hist = feature.stats.histogram if feature.stats else None
    if hist is None or not hist.counts or max(hist.counts) == 0:
        return '<p class="dim">no activations recorded</p>'
    top, n = max(hist.counts), len(hist.counts)
    bar = width / n
    bars = "".join(
        f'<rect x="{i * bar:.1f}" y="{height - height * c / top:.1f}" width="{max(bar - 1, 1):.1f}" '
        f'height="{height * c / top:.1f}" fill="#f80"><title>{hist.edges[i]:.3g}..{hist.edges[i + 1]:.3g}: '
        f"{c}</title></rect>"
        for i, c in enumerate(hist.counts)
    )
    return (
        f'<svg width="{width}" height="{height + 16}" role="img" aria-label="activation histogram">{bars}'
        f'<text x="0" y="{height + 14}" font-size="11">{hist.edges[0]:.3g}</text>'
        f'<text x="{width}" y="{height + 14}" font-size="11" text-anchor="end">{hist.edges[-1]:.3g}</text></svg>'
    )


def feature_html(feature: Feature, cofiring_labels: dict[int, str] | None = None, examples: int = 10) -> str:
    """A standalone page (no scripts, no external resources)."""
    cofiring_labels = cofiring_labels or {}
    scale = feature.stats.max_act if feature.stats else 0.0
    stats = "".join(f'<tr><td class="dim">{_e(k)}</td><td>{_e(v)}</td></tr>' for k, v in summary_rows(feature))
    tops = "".join(_example_html(e, scale) for e in feature.examples_of("top")[:examples])
    quantiles = "".join(_example_html(e, scale) for e in feature.examples_of("quantile")[:examples])
    effects = "".join(
        f"<tr><td>{_e(repr(p.token))}</td><td class=dim>{p.value:+.3f}</td></tr>" for p in feature.promoted
    )
    suppressed = "".join(
        f"<tr><td>{_e(repr(s.token))}</td><td class=dim>{s.value:+.3f}</td></tr>" for s in feature.suppressed
    )
    cofiring = "".join(
        f"<tr><td>{i}</td><td>{share:.0%}</td><td>{_e(cofiring_labels.get(i, ''))}</td></tr>"
        for i, share in feature.cofiring
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>feature {feature.index}</title><style>{_CSS}</style></head>
<body><h1>Feature {feature.index} <span class="dim">{_e(feature.sae_id)}</span></h1>
<p class="label">{_e(label_line(feature))}</p><p class="dim">uuid {_e(feature.uuid)}</p>
<table>{stats}</table><h2>Activation histogram</h2>{_histogram_svg(feature)}
<h2>Top activations</h2>{tops or '<p class="dim">none</p>'}
<h2>Across the distribution</h2>{quantiles or '<p class="dim">none</p>'}
<div class="cols"><div><h2>Promotes</h2><table>{effects}</table></div>
<div><h2>Suppresses</h2><table>{suppressed}</table></div>
<div><h2>Fires with</h2><table>{cofiring}</table></div></div></body></html>
"""


def feature_png(feature: Feature, path: str | Path, examples: int = 8) -> None:
    """Histogram on top, the top examples below with tokens shaded by activation."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.font_manager import FontProperties

    shown = feature.examples_of("top")[:examples]
    fig, (hist_ax, text_ax) = plt.subplots(
        2,
        1,
        figsize=(11, 3 + 0.42 * max(len(shown), 1)),
        gridspec_kw={"height_ratios": [2.2, 0.42 * max(len(shown), 1)]},
    )
    fig.suptitle(f"feature {feature.index}: {label_line(feature)}", fontsize=11, x=0.01, ha="left", parse_math=False)
    hist = feature.stats.histogram if feature.stats else None
    if hist is not None and hist.counts:
        hist_ax.bar(
            hist.edges[:-1],
            hist.counts,
            width=[b - a for a, b in zip(hist.edges, hist.edges[1:])],
            align="edge",
            color="#f80",
        )
    hist_ax.set_xlabel("activation (firing tokens)")
    hist_ax.set_ylabel("tokens")
    text_ax.axis("off")
    scale = feature.stats.max_act if feature.stats else 0.0
    fig.tight_layout()  # before measuring: it resizes the axes that token positions are relative to
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    box = text_ax.get_window_extent(renderer)
    font = FontProperties(family="monospace", size=9)
    for row, example in enumerate(shown):
        y = 1 - (row + 0.5) / max(len(shown), 1)
        tokens, acts = clip(example, before=16, after=6)
        line = ""
        for token, act in zip(tokens, acts):
            # place each token where the whole line so far ends (per-token extents add side bearings)
            x = renderer.get_text_width_height_descent(line, font, ismath=False)[0] / box.width if line else 0.0
            if x > 0.97:
                break
            shown_token = display_token(token)
            text_ax.text(
                x,
                y,
                shown_token,
                fontproperties=font,
                va="center",
                parse_math=False,
                transform=text_ax.transAxes,
                bbox={"facecolor": (1, 0.47, 0, strength(act, scale)), "edgecolor": "none", "pad": 0.5},
            )
            line += shown_token
    _save_atomic(fig, Path(path))
    plt.close(fig)


def _save_atomic(fig, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=110)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def write_dashboard(feature: Feature, path: str | Path, cofiring_labels: dict[int, str] | None = None) -> Path:
    """``.html`` or ``.png`` by the file's suffix, written atomically."""
    path = Path(path)
    if path.suffix.lower() == ".png":
        feature_png(feature, path)
    elif path.suffix.lower() in (".html", ".htm"):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        tmp.write_text(feature_html(feature, cofiring_labels), encoding="utf-8")
        os.replace(tmp, path)
    else:
        raise InvalidInputError(f"must end in .html or .png, got {path.name!r}", field="--out")
    return path
