"""``steerlab features show``: one feature as a readable terminal page (rich renderables).

Examples are printed as text with each token's background shaded by its activation, so the
reader sees where in the context the feature fires and how strongly, without a browser.
"""

from __future__ import annotations

from rich.console import Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from steerlab.features.dashboard_common import clip, display_token, label_line, sparkline, strength, summary_rows
from steerlab.features.schema import Example, Feature


def _shade(level: float) -> str:
    """Background from none to strong orange as ``level`` goes 0..1."""
    if level <= 0:
        return ""
    red, green, blue = 255, int(235 - 135 * level), int(200 - 200 * level)
    return f"black on rgb({red},{green},{blue})"


def example_text(example: Example, scale: float) -> Text:
    tokens, acts = clip(example)
    text = Text(f"{example.max_act:7.2f}  ", style="dim")
    for token, act in zip(tokens, acts):
        text.append(display_token(token), style=_shade(strength(act, scale)))
    return text


def _examples_block(title: str, examples: list[Example], scale: float) -> Group:
    lines: list = [Text(title, style="bold")]
    lines += [example_text(e, scale) for e in examples] or [Text("  (none)", style="dim")]
    return Group(*lines)


def _effects_table(feature: Feature, top: int) -> Table:
    table = Table(show_header=True, box=None, padding=(0, 2))
    table.add_column("promotes", style="green")
    table.add_column("", justify="right", style="dim")
    table.add_column("suppresses", style="red")
    table.add_column("", justify="right", style="dim")
    promoted, suppressed = feature.promoted[:top], feature.suppressed[:top]
    for i in range(max(len(promoted), len(suppressed))):
        p = promoted[i] if i < len(promoted) else None
        s = suppressed[i] if i < len(suppressed) else None
        table.add_row(
            repr(p.token) if p else "",
            f"{p.value:+.3f}" if p else "",
            repr(s.token) if s else "",
            f"{s.value:+.3f}" if s else "",
        )
    return table


def feature_page(feature: Feature, cofiring_labels: dict[int, str], examples: int = 5) -> Panel:
    """The whole page: label, stats, histogram, examples, logit effects, co-firing features."""
    scale = feature.stats.max_act if feature.stats else max((e.max_act for e in feature.examples), default=0.0)
    parts: list = [Text(label_line(feature), style="bold cyan")]
    stats = Table(show_header=False, box=None, padding=(0, 2))
    for name, value in summary_rows(feature):
        stats.add_row(Text(name, style="dim"), value)
    parts.append(stats)
    hist = feature.stats.histogram if feature.stats else None
    if hist is not None and hist.counts:
        parts.append(
            Text.assemble(
                ("histogram ", "dim"),
                (sparkline(hist.counts), "yellow"),
                (f"  {hist.edges[0]:.2g} .. {hist.edges[-1]:.3g}", "dim"),
            )
        )
    parts.append(_examples_block("top activations", feature.examples_of("top")[:examples], scale))
    quantile = feature.examples_of("quantile")
    if quantile:
        parts.append(_examples_block("across the distribution (quantile samples)", quantile[:examples], scale))
    if feature.promoted or feature.suppressed:
        parts.append(Text("logit effects", style="bold"))
        parts.append(_effects_table(feature, 8))
    if feature.cofiring:
        table = Table(show_header=True, box=None, padding=(0, 2))
        for column in ("fires with", "share", "label"):
            table.add_column(column)
        for index, share in feature.cofiring:
            table.add_row(str(index), f"{share:.0%}", cofiring_labels.get(index, ""))
        parts.append(Text("co-firing features", style="bold"))
        parts.append(table)
    return Panel(
        Group(*parts),
        title=f"feature {feature.index}",
        subtitle=f"{feature.sae_id}  uuid {feature.uuid}",
        title_align="left",
        subtitle_align="left",
    )
