"""The Ember controller: what a variant means, as plain data, and its exact JSON.

``Controller.json()`` returns the same dict (same keys, same order, same number types) that the
goodfire 0.3.5 SDK's ``variant.controller.json()`` returns for the same variant, so
``json.dumps`` of either gives the same bytes, and ``Controller.from_json(s).to_json() == s`` for
any controller the SDK writes. Parsing is hand-written rather than pydantic because byte-exact
output needs ints kept as ints and key order kept; every error names the JSON path it found.

Fields the public protocol leaves undefined get these meanings here (both are never rejected):

* ``nonzero_strength_threshold`` (per-feature units): conditions of this controller's scopes treat
  an activation at or below it as 0, so faint firing does not trigger a scope. null = 0. A nested
  controller without one inherits its parent's.
* ``min_nudge_entropy`` / ``max_nudge_entropy`` (nats): bounds on the entropy of the steered
  next-token distribution (temperature 1). After each token whose distribution fell outside the
  bounds, nudges pause for the next token and resume once it is back inside; pins and muls always
  apply. Read from the top-level controller; null = unbounded.
* ``is_active: true`` on a scope means it starts already on (its edits apply from the first token;
  an event scope that starts on never reports).

Two extensions of ours (the SDK writes neither, so its controllers parse and print as before):

* a condition may compare a classifier's score, ``{"classifier": NAME, "operator": ">", "right_hand":
  0.9}`` (see ``conditions.ScoreComparison``);
* ``"abort": true`` on a scope stops decoding on the server the moment its condition holds (the finish
  reason is ``stop``; its event, ``event_name`` or else ``"abort"``, is reported). Written only when true.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from steerlab.steering.conditions import Comparison, Condition, ConditionGroup, ScoreComparison, check_number
from steerlab.steering.errors import ControllerError, SteeringError
from steerlab.steering.refs import FeatureGroup, FeatureRef

MODES = ("nudge", "pin", "mul")
T = TypeVar("T")

MAX_NESTING = 32
"""Most controllers and condition groups nested in one another (the top controller counts one)."""
MAX_FEATURES = 512
"""Most feature references in one controller, interventions and conditions together."""
MAX_JSON_DEPTH = 4 * MAX_NESTING
"""Most JSON containers nested in one another anywhere in the controller, unknown fields included
(a controller at ``MAX_NESTING`` needs at most three per level)."""


@dataclass(eq=False)
class Intervention:
    """Apply ``mode`` with ``value`` (steering units, ``sae.units``; a plain factor for mul) to each feature."""

    mode: str
    features: FeatureGroup
    value: float | int

    def json(self) -> dict:
        return {"mode": self.mode, "features": self.features.json(), "value": self.value}


@dataclass(eq=False)
class Scope:
    """Once ``condition`` holds at a token, ``controller`` applies from that token on (sticky)."""

    condition: ConditionGroup
    controller: Controller
    is_active: bool = False
    event_name: str | None = None
    abort: bool = False
    """Our extension: stop decoding once the condition holds (written to JSON only when true)."""

    def json(self) -> dict:
        out = {
            "conditionals": self.condition.json(),
            "controller": self.controller.json(),
            "is_active": self.is_active,
            "event_name": self.event_name,
        }
        if self.abort:
            out["abort"] = True
        return out


@dataclass(eq=False)
class Controller:
    interventions: list[Intervention] = field(default_factory=list)
    scopes: list[Scope] = field(default_factory=list)
    name: str = ""
    """Informational. Empty = derived from the content, so the same variant gives the same JSON."""
    nonzero_strength_threshold: float | int | None = None
    min_nudge_entropy: float | int | None = None
    max_nudge_entropy: float | int | None = None

    def json(self) -> dict:
        # each part once: building the parts again for the name doubled the work at every level of nesting
        body = {"interventions": [i.json() for i in self.interventions], "scopes": [s.json() for s in self.scopes]}
        return {
            **body,
            "name": self.name or _content_name(body),
            "nonzero_strength_threshold": self.nonzero_strength_threshold,
            "min_nudge_entropy": self.min_nudge_entropy,
            "max_nudge_entropy": self.max_nudge_entropy,
        }

    def to_json(self) -> str:
        return json.dumps(self.json())

    def content_name(self) -> str:
        return _content_name(
            {"interventions": [i.json() for i in self.interventions], "scopes": [s.json() for s in self.scopes]}
        )

    def is_empty(self) -> bool:
        return not self.interventions and not self.scopes

    def iter_features(self, path: str = "") -> Iterator[tuple[str, FeatureRef]]:
        """Every feature named anywhere, with its JSON path (for precise errors)."""
        for i, iv in enumerate(self.interventions):
            for j, f in enumerate(iv.features):
                yield f"{path}interventions[{i}].features.features[{j}]", f
        for i, scope in enumerate(self.scopes):
            yield from _condition_features(scope.condition, f"{path}scopes[{i}].conditionals")
            yield from scope.controller.iter_features(f"{path}scopes[{i}].controller.")

    def iter_classifiers(self, path: str = "") -> Iterator[tuple[str, str]]:
        """Every classifier a condition names, with the JSON path of its ``classifier`` field."""
        for i, scope in enumerate(self.scopes):
            yield from _condition_classifiers(scope.condition, f"{path}scopes[{i}].conditionals")
            yield from scope.controller.iter_classifiers(f"{path}scopes[{i}].controller.")

    @classmethod
    def from_json(cls, data: str | bytes | dict, path: str = "") -> Controller:
        """Parse controller JSON (text or a decoded dict); a ControllerError names the bad field."""
        if isinstance(data, (str, bytes)):
            try:
                data = json.loads(data)
            except RecursionError:
                raise ControllerError(
                    f"nested too deeply; at most {MAX_JSON_DEPTH} levels of JSON", field="controller"
                ) from None
            except ValueError as err:
                raise ControllerError(f"not valid JSON ({err})", field="controller") from None
        if not path:
            check_size(data)
        data = _expect(data, dict, path.rstrip(".") or "controller", "an object")
        return cls(
            interventions=[
                _intervention(x, f"{path}interventions[{i}]") for i, x in enumerate(_list(data, "interventions", path))
            ],
            scopes=[_scope(x, f"{path}scopes[{i}]") for i, x in enumerate(_list(data, "scopes", path))],
            name=_optional(data, "name", str, path) or "",
            nonzero_strength_threshold=_setting(data, "nonzero_strength_threshold", path),
            min_nudge_entropy=_setting(data, "min_nudge_entropy", path),
            max_nudge_entropy=_setting(data, "max_nudge_entropy", path),
        )


def _content_name(body: dict) -> str:
    return "controller__" + hashlib.sha256(json.dumps(body).encode()).hexdigest()[:8]


def check_size(data: object) -> None:
    """Refuse, before parsing (which recurses), a controller nested deeper than ``MAX_NESTING`` levels
    of controllers and condition groups (or ``MAX_JSON_DEPTH`` levels of JSON), naming more than
    ``MAX_FEATURES`` features, or holding text that is not valid Unicode (NULs, unpaired surrogates:
    no response could echo it back). Walks iteratively, so any depth is refused, never a RecursionError."""
    features = 0
    stack: list[tuple[object, str, int, int]] = [(data, "", 1, 0)]
    while stack:
        value, path, depth, level = stack.pop()
        here = path or "controller"
        if depth > MAX_JSON_DEPTH:
            raise ControllerError(f"nested more than {MAX_JSON_DEPTH} levels of JSON deep", field=here)
        if isinstance(value, str):
            _check_text(value, here)
        elif isinstance(value, dict):
            if "scopes" in value or isinstance(value.get("conditionals"), list):
                level += 1
                if level > MAX_NESTING:
                    raise ControllerError(
                        f"nested more than {MAX_NESTING} levels of scopes and condition groups deep", field=here
                    )
            if "index_in_sae" in value:
                features += 1
                if features > MAX_FEATURES:
                    raise ControllerError(f"names more than {MAX_FEATURES} features", field="controller")
            for key, item in value.items():
                _check_text(str(key), here)
                stack.append((item, _join(path, str(key)), depth + 1, level))
        elif isinstance(value, list):
            stack.extend((item, f"{path}[{i}]", depth + 1, level) for i, item in enumerate(value))


def _check_text(text: str, path: str) -> None:
    if "\x00" in text:
        raise ControllerError("must not contain NUL characters (\\u0000)", field=path)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        raise ControllerError(f"holds an unpaired UTF-16 surrogate at character {err.start}", field=path) from None


def _condition_features(cond: ConditionGroup, path: str) -> Iterator[tuple[str, FeatureRef]]:
    for i, item in enumerate(cond.items):
        here = f"{path}.conditionals[{i}]"
        if isinstance(item, ConditionGroup):
            yield from _condition_features(item, here)
            continue
        if isinstance(item, ScoreComparison):
            continue
        for j, f in enumerate(item.left):
            yield f"{here}.left_hand.features[{j}]", f
        if isinstance(item.right, FeatureGroup):
            for j, f in enumerate(item.right):
                yield f"{here}.right_hand.features[{j}]", f


def _condition_classifiers(cond: ConditionGroup, path: str) -> Iterator[tuple[str, str]]:
    for i, item in enumerate(cond.items):
        here = f"{path}.conditionals[{i}]"
        if isinstance(item, ConditionGroup):
            yield from _condition_classifiers(item, here)
        elif isinstance(item, ScoreComparison):
            yield f"{here}.classifier", item.classifier


# ------------------------------------------------------------------------------------- parsing
def _expect(value: object, kind: type[T] | tuple[type[T], ...], path: str, what: str) -> T:
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise ControllerError(f"must be {what}, got {json.dumps(value)[:60]}", field=path)
    return value


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path and not path.endswith(".") else f"{path}{key}"


def _require(data: dict, key: str, path: str) -> Any:
    if key not in data:
        raise ControllerError("is required", field=_join(path, key))
    return data[key]


def _list(data: dict, key: str, path: str) -> list:
    value = data.get(key)
    return [] if value is None else _expect(value, list, _join(path, key), "a list")


def _optional(data: dict, key: str, kind: type[T], path: str) -> T | None:
    value = data.get(key)
    return None if value is None else _expect(value, kind, _join(path, key), kind.__name__)


def _setting(data: dict, key: str, path: str) -> float | int | None:
    value = data.get(key)
    if value is None or isinstance(value, (int, float)) and not isinstance(value, bool) and math.isnan(value):
        return None
    return _expect(value, (int, float), _join(path, key), "a number or null")


def _feature(data: Any, path: str) -> FeatureRef:
    _expect(data, dict, path, "a feature object")
    index = _expect(_require(data, "index_in_sae", path), int, f"{path}.index_in_sae", "a non-negative integer")
    if index < 0:
        raise ControllerError(f"must be a non-negative integer, got {index}", field=f"{path}.index_in_sae")
    strength = data.get("max_activation_strength", 1)
    _expect(strength, (int, float), f"{path}.max_activation_strength", "a positive number")
    if not (math.isfinite(strength) and 1e-6 <= strength <= 1e6):
        raise ControllerError(
            f"must be a positive number in [1e-6, 1e6], got {strength}", field=f"{path}.max_activation_strength"
        )
    uuid = data.get("uuid", "")
    return FeatureRef(index, str(uuid), _optional(data, "label", str, path) or "", strength)


def _features(data: Any, path: str) -> FeatureGroup:
    """``{"features": [...]}``, or a bare feature object (the SDK's parser accepts both)."""
    _expect(data, dict, path, "a features object")
    if "features" not in data:
        return FeatureGroup([_feature(data, path)])
    items = _expect(data["features"], list, f"{path}.features", "a list")
    if not items:
        raise ControllerError("must name at least one feature", field=f"{path}.features")
    return FeatureGroup(_feature(x, f"{path}.features[{i}]") for i, x in enumerate(items))


def _intervention(data: Any, path: str) -> Intervention:
    _expect(data, dict, path, "an object")
    mode = _require(data, "mode", path)
    if mode not in MODES:
        raise ControllerError(f"must be one of {', '.join(MODES)}, got {json.dumps(mode)}", field=f"{path}.mode")
    features = _features(_require(data, "features", path), f"{path}.features")
    value = _at(f"{path}.value", check_number, _require(data, "value", path), "")
    return Intervention(mode, features, value)


def _condition(data: Any, path: str) -> Condition:
    _expect(data, dict, path, "a condition object")
    if "left_hand" not in data and "conditionals" in data:
        return _group(data, path)
    if "left_hand" not in data and "classifier" in data:  # our extension: a classifier's score
        name = _expect(data["classifier"], str, f"{path}.classifier", "a classifier name")
        return _at(path, ScoreComparison, name, _require(data, "operator", path), _require(data, "right_hand", path))
    left = _features(_require(data, "left_hand", path), f"{path}.left_hand")
    right = _require(data, "right_hand", path)
    if isinstance(right, dict):
        right = _features(right, f"{path}.right_hand")
    return _at(path, Comparison, left, _require(data, "operator", path), right)


def _group(data: Any, path: str) -> ConditionGroup:
    _expect(data, dict, path, "an object")
    items = _expect(_require(data, "conditionals", path), list, f"{path}.conditionals", "a list")
    conds = tuple(_condition(x, f"{path}.conditionals[{i}]") for i, x in enumerate(items))
    return _at(path, ConditionGroup, conds, _require(data, "operator", path))


def _scope(data: Any, path: str) -> Scope:
    _expect(data, dict, path, "an object")
    condition = _group(_require(data, "conditionals", path), f"{path}.conditionals")
    controller = Controller.from_json(_require(data, "controller", path), f"{path}.controller.")
    is_active = _expect(data.get("is_active", False), bool, f"{path}.is_active", "true or false")
    abort = _expect(data.get("abort", False), bool, f"{path}.abort", "true or false")
    return Scope(condition, controller, is_active, _optional(data, "event_name", str, path), abort)


def _at(path: str, fn: Callable[..., T], *args: Any) -> T:
    """Call ``fn``; re-raise its SteeringError with the field placed under ``path``."""
    try:
        return fn(*args)
    except SteeringError as err:
        raise ControllerError(err.message, field=_join(path, err.field or "") if err.field else path) from None
