"""Conditions for conditional steering: comparisons of feature activations, joined by AND/OR.

Built with Python operators the way the goodfire SDK builds them::

    (pirate > 0.5) & (formal < 0.2)      # ConditionGroup AND
    (a > 0.5) | (b >= c)                  # compare against a number or another feature

Activations are compared in per-feature units (1.0 = a strong activation of that feature), read
from the SAE encoding of the residual *before* this controller's edits at that token. A group of
features on either side reads as its strongest member.

A classifier's score is a condition too (our extension; the goodfire SDK's JSON has none):
``classifier("jailbreak") > 0.9`` compares the probability the named classifier gives the tokens so
far, and reads ``{"classifier": "jailbreak", "operator": ">", "right_hand": 0.9}`` in JSON. The name is
resolved to a linear probe (``steering.probes``) when the controller is compiled by the Lab.

Groups nest: a group inside ``conditionals`` is itself ``{"conditionals": [...], "operator": ...}``
(the SDK emits that too, e.g. for ``c & (a | b)``). Joins are shaped exactly as the SDK shapes them,
so the same expression gives the same JSON, except where the SDK loses meaning: it flattens
``(a & b) | c`` into one OR of three; here it is OR(AND(a, b), c).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, TypeGuard

from steerlab.steering.errors import ControllerError
from steerlab.steering.refs import FeatureGroup, FeatureRef, as_group

OPERATORS = (">", "<", ">=", "<=", "==", "!=")
JOINS = ("AND", "OR")
ConditionLike = Any
"""Our Comparison / ConditionGroup, or the goodfire SDK's ``Conditional`` / ``ConditionalGroup`` (duck-typed)."""


MAX_MAGNITUDE = 1e6
"""Strengths and thresholds are in per-feature units (1.0 = strong); beyond this they would only
overflow the residual stream into inf/NaN, so they are refused rather than clipped."""


def check_number(value: object, field: str) -> float | int:
    """A finite int/float (bools are not numbers here); the type is kept so JSON round-trips."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ControllerError(f"must be a finite number, got {value!r}", field=field)
    if abs(value) > MAX_MAGNITUDE:
        raise ControllerError(
            f"must be within ±{MAX_MAGNITUDE:g} (1.0 is a strong activation), got {value!r}", field=field
        )
    return value


class _Joinable:
    """``&`` and ``|`` for the two condition classes (``as_condition(self)`` is ``self``, typed as one of them)."""

    def __and__(self, other: ConditionLike) -> ConditionGroup:
        return _join(as_condition(self), as_condition(other), "AND")

    def __or__(self, other: ConditionLike) -> ConditionGroup:
        return _join(as_condition(self), as_condition(other), "OR")

    def __bool__(self) -> bool:
        raise TypeError(
            "a steering condition has no truth value; combine conditions with & and |, "
            "not 'and'/'or' or chained comparisons"
        )


@dataclass(frozen=True, eq=False)
class Comparison(_Joinable):
    """``left op right``: left is a feature group, right a number or another feature group."""

    left: FeatureGroup
    op: str
    right: float | int | FeatureGroup

    def __post_init__(self) -> None:
        if not isinstance(self.left, FeatureGroup) or not len(self.left):
            raise ControllerError("must name at least one feature", field="left_hand")
        if self.op not in OPERATORS:
            raise ControllerError(f"must be one of {' '.join(OPERATORS)}, got {self.op!r}", field="operator")
        right = self.right
        if (
            isinstance(right, FeatureRef)
            or hasattr(right, "index_in_sae")
            or hasattr(right, "features")
            or (hasattr(right, "__iter__") and not isinstance(right, (str, bytes)))
        ):
            right = as_group(right)
            if not len(right):
                raise ControllerError("must name at least one feature", field="right_hand")
        else:
            right = check_number(right, "right_hand")
        object.__setattr__(self, "right", right)

    def json(self) -> dict:
        right = self.right.json() if isinstance(self.right, FeatureGroup) else self.right
        return {"left_hand": self.left.json(), "right_hand": right, "operator": self.op}

    def features(self) -> list[FeatureRef]:
        return list(self.left) + (list(self.right) if isinstance(self.right, FeatureGroup) else [])


@dataclass(frozen=True, eq=False)
class ClassifierRef:
    """A classifier by name, to compare its score: ``classifier("jailbreak") > 0.9`` (every operator
    of a feature condition, ``==`` and ``!=`` included, builds a condition)."""

    name: str

    def __hash__(self) -> int:
        return hash(("classifier", self.name))

    def __eq__(self, value: object) -> ScoreComparison:  # type: ignore[override]
        return self._cmp("==", value)

    def __ne__(self, value: object) -> ScoreComparison:  # type: ignore[override]
        return self._cmp("!=", value)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ControllerError(f"must name a classifier, got {self.name!r}", field="classifier")

    def _cmp(self, op: str, value: object) -> ScoreComparison:
        return ScoreComparison(self.name, op, value)  # type: ignore[arg-type]  # checked there

    def __gt__(self, value: object) -> ScoreComparison:  # type: ignore[override]
        return self._cmp(">", value)

    def __lt__(self, value: object) -> ScoreComparison:  # type: ignore[override]
        return self._cmp("<", value)

    def __ge__(self, value: object) -> ScoreComparison:  # type: ignore[override]
        return self._cmp(">=", value)

    def __le__(self, value: object) -> ScoreComparison:  # type: ignore[override]
        return self._cmp("<=", value)


def classifier(name: str) -> ClassifierRef:
    """The score (probability of the positive class) of classifier ``name``, to compare in a condition."""
    return ClassifierRef(name)


@dataclass(frozen=True, eq=False)
class ScoreComparison(_Joinable):
    """``classifier op value``: the named classifier's score on the tokens so far against a probability."""

    classifier: str
    op: str
    right: float | int

    def __post_init__(self) -> None:
        if not isinstance(self.classifier, str) or not self.classifier:
            raise ControllerError(f"must name a classifier, got {self.classifier!r}", field="classifier")
        if self.op not in OPERATORS:
            raise ControllerError(f"must be one of {' '.join(OPERATORS)}, got {self.op!r}", field="operator")
        value = check_number(self.right, "right_hand")
        if not 0 <= value <= 1:
            raise ControllerError(
                f"a classifier's score is a probability; must be in [0, 1], got {value!r}", field="right_hand"
            )

    def json(self) -> dict:
        return {"classifier": self.classifier, "operator": self.op, "right_hand": self.right}

    def features(self) -> list[FeatureRef]:
        return []


@dataclass(frozen=True, eq=False)
class ConditionGroup(_Joinable):
    """Comparisons (or nested groups) joined by one operator, AND or OR."""

    items: tuple[Comparison | ScoreComparison | ConditionGroup, ...]
    op: str = "AND"

    def __post_init__(self) -> None:
        if self.op not in JOINS:
            raise ControllerError(f"must be AND or OR, got {self.op!r}", field="operator")
        if not self.items:
            raise ControllerError("must hold at least one condition", field="conditionals")
        object.__setattr__(self, "items", tuple(self.items))

    def json(self) -> dict:
        return {"conditionals": [c.json() for c in self.items], "operator": self.op}

    def features(self) -> list[FeatureRef]:
        return [f for item in self.items for f in item.features()]

    def classifiers(self) -> list[str]:
        """Names of the classifiers whose scores this condition reads (in order, repeats kept)."""
        out: list[str] = []
        for item in self.items:
            if isinstance(item, ConditionGroup):
                out += item.classifiers()
            elif isinstance(item, ScoreComparison):
                out.append(item.classifier)
        return out


Condition = Comparison | ScoreComparison | ConditionGroup


def _join(left: Condition, right: Condition, op: str) -> ConditionGroup:
    """``left op right`` shaped exactly as the SDK shapes it wherever the SDK keeps the meaning.

    A comparison joined with anything makes a new two-item group (the SDK does the same). A group
    absorbs the other side's items when the operators agree (or a side has one item); where the SDK
    would flatten groups of different operators and change the meaning, the group nests instead.
    """

    def absorbs(c: Condition) -> TypeGuard[ConditionGroup]:
        return isinstance(c, ConditionGroup) and (c.op == op or len(c.items) == 1)

    if not isinstance(left, ConditionGroup) or not absorbs(left):
        return ConditionGroup((left, right), op)
    return ConditionGroup(left.items + (right.items if absorbs(right) else (right,)), op)


def as_condition(obj: ConditionLike) -> Condition:
    """Accept our conditions or the goodfire SDK's ``Conditional`` / ``ConditionalGroup`` objects."""
    if isinstance(obj, (Comparison, ScoreComparison, ConditionGroup)):
        return obj
    if all(hasattr(obj, a) for a in ("left_hand", "right_hand", "operator")):  # SDK Conditional
        return Comparison(as_group(obj.left_hand), obj.operator, obj.right_hand)
    if hasattr(obj, "conditionals") and hasattr(obj, "operator"):  # SDK ConditionalGroup
        return ConditionGroup(tuple(as_condition(c) for c in obj.conditionals), obj.operator)
    raise ControllerError(f"expected a condition such as feature > 0.5, got {type(obj).__name__}", field="condition")


def as_condition_group(obj: ConditionLike) -> ConditionGroup:
    """Scopes hold a group; a lone comparison becomes a one-item AND group (as in the SDK)."""
    cond = as_condition(obj)
    return cond if isinstance(cond, ConditionGroup) else ConditionGroup((cond,), "AND")
