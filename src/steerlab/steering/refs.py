"""Feature references: what a variant or a condition names, and how a feature looks on the wire.

On the wire (Ember controller JSON) a feature is ``{"uuid", "label", "index_in_sae",
"max_activation_strength"}``. Only ``index_in_sae`` matters for running a controller; the rest is
identity and documentation, kept verbatim so JSON round-trips byte for byte.

Like the goodfire SDK's ``Feature``, comparing a reference with ``> < >= <= == !=`` builds a
condition (``feature > 0.5``) instead of a bool, and ``a | b`` builds a group. So never use ``==``
to ask whether two references are the same feature: compare ``.index`` instead.
"""

from __future__ import annotations

import uuid as uuid_lib
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, TypeGuard, Union

from steerlab.features.schema import feature_uuid
from steerlab.steering.errors import EditError

if TYPE_CHECKING:
    from steerlab.steering.conditions import Comparison

FeatureLike = Any
"""What ``as_feature`` / ``as_group`` accept: an int index, a FeatureRef or FeatureGroup, a goodfire SDK
``Feature``, a feature-database record (``index`` + ``uuid``), or an iterable of these (duck-typed)."""
Labels = Union[Mapping[int, str], Callable[[int], "str | None"], None]
"""Labels for features given as bare indices: a dict or a callable index -> label."""


class FeatureRef:
    """One SAE latent as a variant names it. ``max_activation_strength`` is the sender's "strong"
    level: values and thresholds about this feature are divided by it (the SDK always sends 1)."""

    __slots__ = ("index", "uuid", "label", "max_activation_strength")

    def __init__(self, index: int, uuid: str, label: str = "", max_activation_strength: float | int = 1) -> None:
        if isinstance(index, bool) or not isinstance(index, int) or index < 0:
            raise EditError(f"must be a non-negative integer, got {index!r}", field="index_in_sae")
        self.index = index
        self.uuid = uuid
        self.label = label
        self.max_activation_strength = max_activation_strength

    @classmethod
    def of(cls, index: int, sae_id: str, label: str = "") -> FeatureRef:
        """Reference latent ``index`` of the SAE ``sae_id``; the UUID is the feature database's, as hex
        (the form the SDK sends for features it got from a server)."""
        return cls(index, uuid_lib.UUID(feature_uuid(sae_id, index)).hex, label)

    def json(self) -> dict[str, Any]:
        return {
            "uuid": self.uuid,
            "label": self.label,
            "index_in_sae": self.index,
            "max_activation_strength": self.max_activation_strength,
        }

    def __repr__(self) -> str:
        return f"FeatureRef({self.index}, {self.label!r})" if self.label else f"FeatureRef({self.index})"

    def __hash__(self) -> int:
        return hash((self.index, self.uuid))

    def __or__(self, other: FeatureLike) -> FeatureGroup:
        return FeatureGroup([self]) | other

    # Comparisons build conditions (see module docstring); the import is local to avoid a cycle.
    def _compare(self, other: FeatureLike, op: str) -> Comparison:
        return FeatureGroup([self])._compare(other, op)

    def __gt__(self, other: FeatureLike) -> Comparison:
        return self._compare(other, ">")

    def __lt__(self, other: FeatureLike) -> Comparison:
        return self._compare(other, "<")

    def __ge__(self, other: FeatureLike) -> Comparison:
        return self._compare(other, ">=")

    def __le__(self, other: FeatureLike) -> Comparison:
        return self._compare(other, "<=")

    def __eq__(self, other: FeatureLike) -> Comparison:  # type: ignore[override]
        return self._compare(other, "==")

    def __ne__(self, other: FeatureLike) -> Comparison:  # type: ignore[override]
        return self._compare(other, "!=")


class FeatureGroup:
    """An ordered list of feature references (``{"features": [...]}`` on the wire).

    As the left side of a condition a group reads as its strongest member: ``group > 0.5`` holds
    when any member exceeds 0.5, ``group < 0.2`` when all members are below 0.2.
    """

    __slots__ = ("features",)

    def __init__(self, features: Iterable[FeatureRef] = ()) -> None:
        self.features: tuple[FeatureRef, ...] = tuple(features)

    def __iter__(self) -> Iterator[FeatureRef]:
        return iter(self.features)

    def __len__(self) -> int:
        return len(self.features)

    def __getitem__(self, i: int) -> FeatureRef:
        return self.features[i]

    def __repr__(self) -> str:
        return f"FeatureGroup({list(self.features)!r})"

    def __hash__(self) -> int:
        return hash(self.features)

    def json(self) -> dict[str, Any]:
        return {"features": [f.json() for f in self.features]}

    @property
    def indices(self) -> list[int]:
        return [f.index for f in self.features]

    def __or__(self, other: FeatureLike) -> FeatureGroup:
        other = other if isinstance(other, FeatureGroup) else FeatureGroup([as_feature(other)])
        return FeatureGroup(self.features + other.features)

    def _compare(self, other: FeatureLike, op: str) -> Comparison:
        from steerlab.steering.conditions import Comparison

        return Comparison(self, op, other)

    def __gt__(self, other: FeatureLike) -> Comparison:
        return self._compare(other, ">")

    def __lt__(self, other: FeatureLike) -> Comparison:
        return self._compare(other, "<")

    def __ge__(self, other: FeatureLike) -> Comparison:
        return self._compare(other, ">=")

    def __le__(self, other: FeatureLike) -> Comparison:
        return self._compare(other, "<=")

    def __eq__(self, other: FeatureLike) -> Comparison:  # type: ignore[override]
        return self._compare(other, "==")

    def __ne__(self, other: FeatureLike) -> Comparison:  # type: ignore[override]
        return self._compare(other, "!=")


def as_feature(obj: FeatureLike, sae_id: str | None = None, labels: Labels = None) -> FeatureRef:
    """Turn what a researcher holds into a FeatureRef: an int index (its UUID from ``sae_id``; without
    one, an empty UUID: that latent of whichever SAE runs it), a FeatureRef, a goodfire SDK
    ``Feature`` or a feature-database record (``index`` + ``uuid``)."""
    if isinstance(obj, FeatureRef):
        return obj
    if _is_index(obj):
        label = _label_of(labels, obj)
        return FeatureRef.of(obj, sae_id, label) if sae_id is not None else FeatureRef(obj, "", label)
    index = getattr(obj, "index_in_sae", None)
    if index is None and hasattr(obj, "uuid"):
        index = getattr(obj, "index", None)
    if index is None:
        raise EditError(
            f"expected a feature index, FeatureRef or feature record, got {type(obj).__name__}", field="feature"
        )
    raw_uuid = obj.uuid
    uuid = raw_uuid.hex if isinstance(raw_uuid, uuid_lib.UUID) else str(raw_uuid)
    if not hasattr(obj, "index_in_sae") and "-" in uuid:  # a database record: send it the way the SDK would
        uuid = uuid_lib.UUID(uuid).hex
    label = getattr(obj, "label_text", None)
    if label is None:
        label = getattr(obj, "label", "") or ""
    return FeatureRef(int(index), uuid, str(label))


def as_group(obj: FeatureLike, sae_id: str | None = None, labels: Labels = None) -> FeatureGroup:
    """A FeatureGroup from one feature-like object, a group, or an iterable of them."""
    if isinstance(obj, FeatureGroup):
        return obj
    if isinstance(obj, (int, FeatureRef)) or hasattr(obj, "uuid"):  # one feature, even if it iterates
        return FeatureGroup([as_feature(obj, sae_id, labels)])
    if hasattr(obj, "__iter__") and not isinstance(obj, (str, bytes, dict)):
        return FeatureGroup(as_feature(f, sae_id, labels) for f in obj)
    return FeatureGroup([as_feature(obj, sae_id, labels)])


def _is_index(obj: object) -> TypeGuard[int]:
    """An int that is not a bool (a TypeGuard: where it is False, ``obj`` keeps its duck type)."""
    return isinstance(obj, int) and not isinstance(obj, bool)


def _label_of(labels: Labels, index: int) -> str:
    if labels is None:
        return ""
    label = labels(index) if callable(labels) else labels.get(index)
    return label or ""
