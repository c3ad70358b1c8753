"""Feature edits in steering units (``sae.units``: Ember's range, 0.5-1.0 visibly steers, about 1.0
the feature's concept takes over; ``STEERLAB_STEERING_UNIT=quantile`` for the old 1.0 = a strong,
typical activation). mul values are plain factors.

Modes follow Ember: ``nudge`` adds, ``pin`` sets, ``mul`` scales. ``Variant.set(f, v)`` in the
goodfire SDK is a nudge, so that is the default here too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from steerlab.steering.errors import EditError, UnknownFeatureError

MODES = ("nudge", "pin", "mul")
__all__ = ["MODES", "EditError", "FeatureEdit", "parse_edit"]


@dataclass(frozen=True)
class FeatureEdit:
    index: int
    value: float
    mode: str = "nudge"

    def validate(self, d_sae: int) -> FeatureEdit:
        if not 0 <= self.index < d_sae:
            raise UnknownFeatureError(f"feature index must be in 0..{d_sae - 1}, got {self.index}")
        if not math.isfinite(self.value):
            raise EditError(f"value for feature {self.index} must be a finite number, got {self.value}")
        if self.mode not in MODES:
            raise EditError(f"mode for feature {self.index} must be one of {', '.join(MODES)}, got {self.mode!r}")
        return self


def parse_edit(text: str, default_mode: str = "nudge") -> FeatureEdit:
    """Parse ``IDX=VALUE`` or ``IDX=VALUE:MODE`` (e.g. ``1234=0.8``, ``77=0:pin``, ``5=2:mul``)."""
    idx, sep, rest = text.partition("=")
    value, _, mode = rest.partition(":")
    try:
        if not sep:
            raise ValueError
        edit = FeatureEdit(int(idx.strip()), float(value.strip()), (mode.strip() or default_mode))
    except ValueError:
        raise EditError(
            f"--feature {text!r}: expected IDX=VALUE or IDX=VALUE:MODE with MODE in {'/'.join(MODES)}, e.g. 1234=0.8"
        ) from None
    if edit.mode not in MODES:
        raise EditError(f"--feature {text!r}: mode must be one of {', '.join(MODES)}")
    if not math.isfinite(edit.value):
        raise EditError(f"--feature {text!r}: value must be a finite number")
    return edit
