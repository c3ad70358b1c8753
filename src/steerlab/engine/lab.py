"""The lab: one model, its SAE, its feature database and the batching engine, shared by every shell.

The server, the in-process Python client, the CLI and the agent tools all call this object, so a
variant means the same thing everywhere: one decode path (the engine's), one steering compiler
(``steering.plan``), one feature UUID rule (the SAE's identity, ``features.identity``). Loading is
explicit (``Lab.load``) so tests can build one from a tiny model.
"""

from __future__ import annotations

import uuid as uuid_lib
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import torch

from steerlab.engine.batcher import Engine
from steerlab.engine.stream import Stream, TokenEvent
from steerlab.errors import ConflictError, InvalidInputError
from steerlab.generation.sampler import SamplingParams
from steerlab.models.chat_template import stop_token_ids, token_strings
from steerlab.models.chunked import forward_chunks
from steerlab.models.hooks import edit_residual
from steerlab.models.loader import LoadedModel
from steerlab.settings import get_settings
from steerlab.steering.conversation import check_context, conversation_ids, prompt_ids
from steerlab.steering.errors import ConversationError
from steerlab.steering.variant import InferenceContext

if TYPE_CHECKING:
    import asyncio

    from transformers import PreTrainedTokenizerBase

    from steerlab.classifiers.model import Classifier
    from steerlab.engine.sequence import RowEditor
    from steerlab.features.schema import FeatureStats
    from steerlab.features.search import FeatureSearch
    from steerlab.features.specificity import CorpusStats
    from steerlab.features.store import FeatureStore
    from steerlab.sae.base import SAE
    from steerlab.steering.batch import RowSteering
    from steerlab.steering.resolve import Steering, VariantLike

T = TypeVar("T")


@dataclass
class Lab:
    lm: LoadedModel
    sae: SAE | None = None
    """None: plain chat only (no steering, features or analyses)."""
    store: FeatureStore | None = None
    """The SAE's feature database, when one is available."""
    sae_id: str | None = None
    """The SAE's identity (``features.identity.sae_identity``; the database's id when there is one)."""
    max_batch: int = 32
    max_queue: int = 512
    analysis_share: float = field(default_factory=lambda: get_settings().analysis_share)
    """Share of the model's time analyses get while the engine has sequences to decode (``Engine.outside``)."""
    chunk_tokens: int = field(default_factory=lambda: get_settings().analysis_chunk_tokens)
    """Tokens per forward of a chunked analysis (``run_shared``): the longest it holds the model at once."""
    engine: Engine = field(init=False)
    _classifiers: dict[str, Classifier] = field(default_factory=dict, init=False, repr=False)
    """Classifiers loaded by name (``classifier``)."""

    def __post_init__(self) -> None:
        if self.sae_id is None and self.sae is not None:
            from steerlab.features.identity import sae_identity

            self.sae_id = sae_identity(self.sae)
        hookpoint = self.sae.cfg.hookpoint if self.sae is not None else None
        self.engine = Engine(
            self.lm.model,
            self.lm.tokenizer,
            hookpoint,
            stop_token_ids(self.lm.tokenizer),
            max_batch=self.max_batch,
            max_queue=self.max_queue,
            outsider_share=self.analysis_share,
        )

    @classmethod
    def load(
        cls,
        model: str = "default",
        sae_path: str | Path | None = None,
        db_path: str | Path | None = None,
        dtype: str | None = None,
        device: str | None = None,
        **kw: int,
    ) -> Lab:
        """Model + SAE (bundled by default) + the SAE's feature database (``features.db`` next to the
        SAE unless ``db_path`` says otherwise; the lab works without one, minus labels and search).
        ``dtype`` and ``device`` default to the settings (STEERLAB_DTYPE, STEERLAB_DEVICE)."""
        from steerlab.features.identity import open_feature_database
        from steerlab.models.loader import load_model
        from steerlab.sae.bundled import load_sae_for

        lm = load_model(model, dtype=dtype, device=device)
        sae = load_sae_for(lm, sae_path)
        return cls.with_database(lm, sae, open_feature_database(lm.name, sae_path, db_path), **kw)

    @classmethod
    def with_database(cls, lm: LoadedModel, sae: SAE, store: FeatureStore | None, **kw: int) -> Lab:
        """A lab on ``store`` (or None), which must describe ``sae``'s weights."""
        sae_id = None
        if store is not None:
            from steerlab.features.identity import database_sae_id

            sae_id = database_sae_id(store)
            check_database_matches(sae, sae_id, store.path)
        return cls(lm, sae, store, sae_id, **kw)

    @property
    def model_name(self) -> str:
        return self.lm.name

    # ------------------------------------------------------------------ generation
    def prompt_ids(self, messages: list[dict]) -> list[int]:
        """Token ids that a reply continues (the assistant's turn opened, or its last message
        continued), refused when longer than the model's context."""
        ids = prompt_ids(self.lm.tokenizer, messages)
        check_context(self.lm.model, len(ids))
        return ids

    def steering_for(self, variant: VariantLike) -> tuple[Steering | None, RowSteering | None]:
        """``(Steering, per-sequence editor)`` for any variant form (``resolve.Steering.of``); both None
        for a plain model name. Compiled against this SAE and its identity: malformed JSON, features
        outside the SAE and feature UUIDs of another SAE are refused (a ``SteeringError`` naming the
        field) before anything runs."""
        from steerlab.steering.batch import RowSteering
        from steerlab.steering.resolve import Steering

        steering = Steering.of(variant)
        plan = steering.plan(self.sae, self.sae_id) if steering else None
        if plan is None:
            return steering, None
        assert steering is not None and self.sae is not None  # a plan comes from a steering, compiled against the SAE
        return steering, RowSteering(self.sae, plan, steering.abort_events)

    def editor_for_controller(self, controller: dict | str) -> RowSteering | None:
        """Compile Ember controller JSON into a per-sequence editor (None when it edits nothing).
        Events (``handle_when``/``abort_when`` names) are reported to the client, which decides to
        abort (as the goodfire SDK does)."""
        return self.steering_for(controller if isinstance(controller, (dict, str)) else dict(controller))[1]

    def chat(
        self,
        messages: list[dict],
        params: SamplingParams,
        editor: RowEditor | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> Stream:
        """Start a reply on the engine; ``max_new_tokens`` shrinks to what the context has room for."""
        ids = self.prompt_ids(messages)
        room = self.engine.max_positions - len(ids)
        if room < 1:
            raise ConversationError(
                f"leaves no room to generate in the model's context of {self.engine.max_positions}", "messages"
            )
        if params.max_new_tokens > room:
            params = replace(params, max_new_tokens=room)
        return self.engine.submit(ids, params, editor, loop=loop)

    def generate(
        self, messages: list[dict], params: SamplingParams, variant: VariantLike = None
    ) -> Iterator[TokenEvent]:
        """A reply's tokens as the engine samples them, for in-process callers (client, CLI). A
        Variant's handlers run as its events fire, before that token is yielded, so ``abort_when``
        stops generation before the token is shown; leaving the loop early cancels the stream."""
        steering, editor = self.steering_for(variant)
        handlers = steering.handlers if steering else {}
        stream = self.chat(messages, params, editor)
        shown = ""
        try:
            for event in stream:
                if event.error:
                    raise RuntimeError(event.error)
                for name in event.events:
                    if name in handlers:
                        handlers[name](InferenceContext(list(messages), shown))
                shown += event.text
                yield event
        finally:
            stream.cancel()

    # ------------------------------------------------------------------ one forward
    def logits(
        self,
        messages: list[dict],
        variant: VariantLike = None,
        *,
        top_k: int | None = 10,
        filter_vocabulary: list[str] | None = None,
    ) -> dict[str, float]:
        """Logits of the token that would come next (the assistant's first, or the continuation of a
        final assistant message), highest first: the top ``top_k``, optionally only among
        ``filter_vocabulary`` (strings that must each be one token)."""
        if top_k is not None and top_k < 1:
            raise ConversationError(f"must be >= 1, got {top_k}", field="top_k")
        ids = self.prompt_ids(messages)
        if filter_vocabulary is not None and not filter_vocabulary:
            raise ConversationError("must list at least one token (or be omitted)", field="filter_vocabulary")
        tokenizer = self.lm.tokenizer
        allowed = _single_token_ids(tokenizer, filter_vocabulary) if filter_vocabulary is not None else None
        _, editor = self.steering_for(variant)
        logits = self.run_shared(self._next_logits, ids, editor)
        candidates = torch.tensor(allowed) if allowed is not None else torch.arange(logits.shape[0])
        values = logits[candidates]
        k = len(candidates) if top_k is None else min(top_k, len(candidates))
        top = values.topk(k)
        out: dict[str, float] = {}
        for value, i in zip(top.values.tolist(), candidates[top.indices].tolist()):
            out.setdefault(str(tokenizer.decode([i])), value)  # one id decodes to one string
        return out

    def _next_logits(
        self, ids: list[int], editor: RowSteering | None, hold: Callable[[], AbstractContextManager] = nullcontext
    ) -> torch.Tensor:
        """The next token's logits, the prompt run ``chunk_tokens`` at a time, each chunk inside ``hold()``."""
        steering: AbstractContextManager[None] = nullcontext()
        if editor:
            assert self.sae is not None  # an editor is compiled against the SAE (steering_for)
            steering = edit_residual(self.lm.model, self.sae.cfg.hookpoint, editor)
        with steering:
            *_, last = forward_chunks(
                self.lm.model, torch.tensor([ids], device=self.lm.device), self.chunk_tokens, None, hold
            )
        return last[0].float().cpu()

    def tokenize(self, messages: list[dict]) -> list[str]:
        """The conversation's tokens as text, exactly as inspect and attribution index them."""
        return token_strings(self.lm.tokenizer, conversation_ids(self.lm.tokenizer, messages))

    def exclusive(self) -> AbstractContextManager[None]:
        """Hold the model for a forward outside the engine (inspect, attribution, logits...)."""
        return self.engine.outside()

    def run_exclusive(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``fn(*args, **kwargs)`` with the model held, in a thread that ends with it: a server's worker
        threads live on, and each that ran a parallel kernel would keep OpenMP workers that slow every
        decode step after it (``steerlab/torch_threads.py``)."""
        from steerlab.torch_threads import in_passing_thread

        with self.exclusive():
            return in_passing_thread(fn, *args, **kwargs)

    def run_shared(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``fn(*args, hold=self.exclusive, **kwargs)`` in a passing thread, the model not held: ``fn`` holds
        it only around its heavy pieces (``with hold(): ...``, e.g. one chunk of a long forward), so the
        engine's decode steps run between them (``Engine.outside`` shares the time)."""
        from steerlab.torch_threads import in_passing_thread

        return in_passing_thread(fn, *args, hold=self.exclusive, **kwargs)

    # ------------------------------------------------------------------ features
    @cached_property
    def search(self) -> FeatureSearch | None:
        """Label and decoder search over the feature database (None without one)."""
        if self.store is None:
            return None
        assert self.sae is not None and self.sae_id is not None, "a feature database describes this lab's SAE"
        from steerlab.features.search import FeatureSearch

        return FeatureSearch(self.store, self.sae_id, decoder=self.sae.W_dec.detach().float().cpu().numpy())

    @cached_property
    def labels(self) -> dict[int, str]:
        if self.store is None:
            return {}
        assert self.sae_id is not None, "a feature database describes this lab's SAE"
        return {i: label.text for i, label in self.store.labels(self.sae_id).items()}

    @cached_property
    def corpus_stats(self) -> CorpusStats | None:
        """Every feature's corpus distribution from the database (density, quantiles), which inspect and
        contrast rank by (``features.specificity``); None without a database or without statistics."""
        if self.store is None or self.sae is None:
            return None
        assert self.sae_id is not None, "a feature database describes this lab's SAE"
        from steerlab.features.specificity import CorpusStats

        records: list[FeatureStats | None] = [None] * self.sae.cfg.d_sae
        for index, stats in self.store.stats(self.sae_id).items():
            if 0 <= index < len(records):
                records[index] = stats
        if all(r is None for r in records):
            return None
        return CorpusStats.from_records(records)

    @property
    def d_sae(self) -> int:
        assert self.sae is not None, "this lab has no SAE"
        return self.sae.cfg.d_sae

    def feature_id(self, index: int) -> str:
        """The feature's UUID on the wire (stable per SAE identity and index)."""
        from steerlab.features.schema import feature_uuid

        assert self.sae_id is not None, "this lab has no SAE"
        return feature_uuid(self.sae_id, index)

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

    # ------------------------------------------------------------------ classifiers
    def classifier(self, name: str) -> Classifier:
        """The classifier ``name`` trained on this model and SAE (the user's own, else one shipped with
        the SAE), loaded once; refused when it reads another SAE."""
        from steerlab.classifiers.storage import find, load

        if name not in self._classifiers:
            self._classifiers[name] = load(find(self, name), self)
        return self._classifiers[name]

    def classify(self, name: str, texts: list[str], top: int = 5) -> list[dict]:
        """Score texts with classifier ``name``: ``score`` (probability of the positive class), ``flagged``,
        ``features`` (the ones that moved the score: index, label, contribution) and ``truncated``."""
        return self.classifier(name).score(self, texts, top=top)

    def forget_classifier(self, name: str) -> None:
        """Drop a loaded classifier (after it was retrained or replaced)."""
        self._classifiers.pop(name, None)

    def close(self) -> None:
        self.engine.close()
        if self.store is not None and hasattr(self.store, "close"):
            self.store.close()


def check_database_matches(sae: SAE, sae_id: str, db: Path) -> None:
    """Refuse a feature database built for other weights: its labels and examples would describe
    someone else's latents (the id hashes the weights, see ``features.identity``)."""
    from steerlab.features.identity import sae_identity

    loaded = sae_identity(sae)
    if loaded != sae_id:
        raise ConflictError(
            f"feature database {db} describes SAE {sae_id}, but the loaded SAE is {loaded}; "
            f"pass the database built for this SAE (--db) or rebuild it with 'steerlab features build'"
        )


def sampling_params(
    max_completion_tokens: int = 128,
    temperature: float = 0.6,
    top_p: float = 0.9,
    stop: str | list[str] | None = None,
    seed: int | None = None,
) -> SamplingParams:
    """``SamplingParams`` from the chat API's arguments; errors name the API's fields."""
    stops = [stop] if isinstance(stop, str) else list(stop or [])
    if not all(isinstance(s, str) for s in stops):
        raise ConversationError("must be a string or a list of strings", field="stop")
    try:
        return SamplingParams(max_completion_tokens, temperature, top_p, seed, stops).validate()
    except InvalidInputError as err:
        field = "max_completion_tokens" if err.field == "max_new_tokens" else err.field
        raise ConversationError(err.message, field=field, allowed=err.allowed) from None


def _single_token_ids(tokenizer: PreTrainedTokenizerBase, vocabulary: list[str]) -> list[int]:
    ids: list[int] = []
    for i, text in enumerate(vocabulary):
        encoded = tokenizer.encode(text, add_special_tokens=False) if isinstance(text, str) else []
        if len(encoded) != 1:
            raise ConversationError(
                f"{text!r} is {len(encoded)} tokens for this model; each entry must be one token",
                field=f"filter_vocabulary[{i}]",
            )
        ids.append(encoded[0])
    return ids
