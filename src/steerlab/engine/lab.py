"""The lab: one model, its SAE, its feature database and the batching engine, shared by every shell.

The server, the in-process Python client, the CLI and the agent tools all call this object, so a
variant means the same thing everywhere. Loading is explicit (``Lab.load``) so tests can build one
from a tiny model.
"""

from __future__ import annotations

import uuid as uuid_lib
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TypeVar

from steerlab.engine.batcher import Engine
from steerlab.errors import ConflictError, InvalidInputError, MissingFileError
from steerlab.generation.sampler import SamplingParams
from steerlab.models.chat_template import chat_input_ids, stop_token_ids
from steerlab.models.loader import LoadedModel
from steerlab.steering.conversation import check_messages
from steerlab.steering.errors import ConversationError

T = TypeVar("T")


@dataclass
class Lab:
    lm: LoadedModel
    sae: object | None = None
    store: object | None = None
    """A ``steerlab.features.store.FeatureStore`` when a feature database is available."""
    sae_id: str | None = None
    max_batch: int = 32
    max_queue: int = 512
    engine: Engine = field(init=False)

    def __post_init__(self) -> None:
        hookpoint = self.sae.cfg.hookpoint if self.sae is not None else None
        self.engine = Engine(
            self.lm.model,
            self.lm.tokenizer,
            hookpoint,
            stop_token_ids(self.lm.tokenizer),
            max_batch=self.max_batch,
            max_queue=self.max_queue,
        )

    @classmethod
    def load(
        cls,
        model: str = "default",
        sae_path: str | Path | None = None,
        db_path: str | Path | None = None,
        dtype: str | None = None,
        device: str | None = None,
        **kw,
    ) -> Lab:
        """Model + SAE (bundled by default) + the SAE's feature database (``features.db`` next to the
        SAE unless ``db_path`` says otherwise; the lab works without one, minus labels and search).
        ``dtype`` and ``device`` default to the settings (STEERLAB_DTYPE, STEERLAB_DEVICE)."""
        from steerlab.models.loader import load_model
        from steerlab.sae.bundled import bundled_sae_path, load_sae_for

        lm = load_model(model, dtype=dtype, device=device)
        sae = load_sae_for(lm, sae_path)
        folder = Path(sae_path) if sae_path is not None else bundled_sae_path(lm.name)
        db = Path(db_path) if db_path is not None else (folder / "features.db" if folder else None)
        store, sae_id = None, None
        if db is not None and db.is_file():
            from steerlab.features.store import FeatureStore

            store = FeatureStore(db, readonly=True)
            known = store.list_saes()
            if len(known) != 1:
                raise InvalidInputError(
                    f"feature database {db} holds {len(known)} SAEs; pass one built for this SAE", field="db"
                )
            sae_id = known[0].sae_id
            check_database_matches(sae, sae_id, db)
        elif db_path is not None:
            raise MissingFileError(
                f"feature database {db_path} does not exist; build one with 'steerlab features build'", field="db"
            )
        return cls(lm, sae, store, sae_id, **kw)

    @property
    def model_name(self) -> str:
        return self.lm.name

    def prompt_ids(self, messages: list[dict], max_tokens: int | None = None) -> list[int]:
        """Token ids of a conversation in the model's chat template, ready for the reply."""
        ids = chat_input_ids(self.lm.tokenizer, check_messages(messages))
        if max_tokens is not None and len(ids) > max_tokens:
            raise ConversationError(f"messages are {len(ids)} tokens; the limit is {max_tokens}", "messages")
        return ids

    def chat(self, messages: list[dict], params: SamplingParams, editor=None, loop=None):
        """Start a reply; returns the engine stream."""
        return self.engine.submit(self.prompt_ids(messages), params, editor, loop=loop)

    def editor_for_controller(self, controller: dict | str):
        """Compile Ember controller JSON into a per-sequence editor (None when it edits nothing).

        Raises a ``SteeringError`` (a ValueError naming the field) for malformed JSON or features
        outside the SAE, before anything runs. Events (``handle_when``/``abort_when`` names) are
        reported to the client, which decides to abort (as the goodfire SDK does)."""
        from steerlab.steering.batch import RowSteering
        from steerlab.steering.resolve import Steering

        steering = Steering.of(controller if isinstance(controller, (dict, str)) else dict(controller))
        plan = steering.plan(self.sae) if steering else None
        return RowSteering(self.sae, plan) if plan is not None else None

    def exclusive(self) -> AbstractContextManager:
        """Hold the model for a forward outside the engine (inspect, attribution, logits...)."""
        return self.engine.outside()

    def run_exclusive(self, fn: Callable[..., T], *args, **kwargs) -> T:
        """``fn(*args, **kwargs)`` with the model held, in a thread that ends with it: a server's worker
        threads live on, and each that ran a parallel kernel would keep OpenMP workers that slow every
        decode step after it (``steerlab/torch_threads.py``)."""
        from steerlab.torch_threads import in_passing_thread

        with self.exclusive():
            return in_passing_thread(fn, *args, **kwargs)

    @cached_property
    def search(self):
        """Label and decoder search over the feature database (None without one)."""
        if self.store is None:
            return None
        from steerlab.features.search import FeatureSearch

        return FeatureSearch(self.store, self.sae_id, decoder=self.sae.W_dec.detach().float().cpu().numpy())

    @cached_property
    def labels(self) -> dict[int, str]:
        if self.store is None:
            return {}
        return {i: label.text for i, label in self.store.labels(self.sae_id).items()}

    @property
    def d_sae(self) -> int:
        return self.sae.cfg.d_sae

    def feature_id(self, index: int) -> str:
        """The feature's UUID on the wire (stable per SAE and index)."""
        from steerlab.features.schema import feature_uuid

        return feature_uuid(self.sae_id or self.model_name, index)

    def wire_feature(self, index: int) -> dict:
        """Ember's feature object ``{id, label, index_in_sae}``."""
        return {"id": self.feature_id(index), "label": self.labels.get(index, ""), "index_in_sae": index}

    def index_of(self, feature_id: str) -> int:
        """The index behind a feature UUID of this SAE (ValueError naming ``feature_id`` otherwise)."""
        try:
            canonical = str(uuid_lib.UUID(str(feature_id)))
        except ValueError:
            raise ConversationError(f"{feature_id!r} is not a UUID", "feature_id") from None
        index = self._index_by_uuid.get(canonical)
        if index is None:
            raise ConversationError(f"no feature {canonical} in this SAE", "feature_id")
        return index

    @cached_property
    def _index_by_uuid(self) -> dict[str, int]:
        return {self.feature_id(i): i for i in range(self.d_sae)}

    def close(self) -> None:
        self.engine.close()
        if self.store is not None and hasattr(self.store, "close"):
            self.store.close()


def check_database_matches(sae, sae_id: str, db: Path) -> None:
    """Refuse a feature database built for other weights: its labels and examples would describe
    someone else's latents (the id hashes the weights, see ``features.identity``)."""
    from steerlab.features.identity import sae_identity

    loaded = sae_identity(sae)
    if loaded != sae_id:
        raise ConflictError(
            f"feature database {db} describes SAE {sae_id}, but the loaded SAE is {loaded}; "
            f"pass the database built for this SAE (--db) or rebuild it with 'steerlab features build'"
        )
