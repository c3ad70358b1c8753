"""The lab: one model, its SAE, its feature database and the batching engine, shared by every shell.

The server, the in-process Python client, the CLI and the agent tools all call this object, so a
variant means the same thing everywhere: one decode path (the engine's), one steering compiler
(``steering.plan``), one feature UUID rule (the SAE's identity, ``features.identity``). Loading is
explicit (``Lab.load``) so tests can build one from a tiny model.
"""

from __future__ import annotations

import logging
import uuid as uuid_lib
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import torch

from steerlab.engine.batcher import Engine
from steerlab.engine.stream import Stream, TokenEvent
from steerlab.errors import ConflictError, InvalidInputError, NotFoundError
from steerlab.generation.sampler import SamplingParams
from steerlab.models.chat_template import stop_token_ids, token_strings
from steerlab.models.chunked import forward_chunks
from steerlab.models.hooks import edit_residual
from steerlab.models.loader import LoadedModel
from steerlab.settings import get_settings
from steerlab.steering.conversation import check_context, conversation_ids, prompt_ids
from steerlab.steering.errors import ControllerError, ConversationError
from steerlab.steering.variant import InferenceContext

if TYPE_CHECKING:
    import asyncio

    from transformers import PreTrainedTokenizerBase

    from steerlab.analysis.by_example import ExampleHit
    from steerlab.analysis.contrast import ContrastResult
    from steerlab.analysis.inspect import Inspection
    from steerlab.classifiers.data import Example
    from steerlab.classifiers.model import Classifier
    from steerlab.engine.sequence import RowEditor
    from steerlab.features.schema import FeatureStats
    from steerlab.features.search import FeatureSearch, SearchHit
    from steerlab.features.specificity import CorpusStats
    from steerlab.features.store import FeatureStore
    from steerlab.features.topic import TopicVectors
    from steerlab.sae.base import SAE
    from steerlab.steering.batch import RowSteering
    from steerlab.steering.controller_json import Controller
    from steerlab.steering.probes import LinearProbe
    from steerlab.steering.resolve import Steering, VariantLike

T = TypeVar("T")
log = logging.getLogger("steerlab.engine")


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
    _classifiers: dict[str, tuple[tuple[str, int], Classifier]] = field(default_factory=dict, init=False, repr=False)
    """Classifiers loaded by name (``classifier``), with the folder and config time they were read from."""
    _probes: dict[str, tuple[Classifier, LinearProbe]] = field(default_factory=dict, init=False, repr=False)
    """Classifier conditions' probes, per classifier as loaded (``condition_probes``)."""

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
        plan = steering.plan(self.sae, self.sae_id, self.condition_probes(steering.controller)) if steering else None
        if plan is None:
            return steering, None
        assert steering is not None and self.sae is not None  # a plan comes from a steering, compiled against the SAE
        return steering, RowSteering(self.sae, plan, steering.abort_events)

    def read_prompt(self, editor: RowEditor | None, messages: list[dict], ids: list[int]) -> None:
        """Tell ``editor``'s classifier conditions (guards) where the prompt ``ids`` of ``messages`` holds
        what they read (``STEERLAB_GUARD_READS``: the latest user turn, or the whole conversation); they
        score once that is complete, then per reply token. An editor without guards is left alone."""
        mark = getattr(editor, "read_prompt", None)
        if mark is None or not self._reads_classifiers(editor):
            return
        from steerlab.steering.conversation import guard_span

        mark(guard_span(self.lm.tokenizer, messages, ids, get_settings().guard_reads))

    @staticmethod
    def _reads_classifiers(editor: object) -> bool:
        parts = [editor, getattr(editor, "planted", None), getattr(editor, "request", None)]
        return any(p is not None and hasattr(p, "batch") and any(pl.probes for pl in p.batch.plans) for p in parts)

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
        self.read_prompt(editor, messages, ids)
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
        self.read_prompt(editor, messages, ids)
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

    @cached_property
    def topic_vectors(self) -> TopicVectors | None:
        """The features' context and label vectors (``features.topic``), which make inspect rank by what the text
        is about (``rank_by="relevance"``); None without a database, or when the embedding model cannot load
        (inspect then ranks by specificity and says so). Never computes context vectors (minutes)."""
        if self.store is None or self.corpus_stats is None:
            return None
        assert self.sae_id is not None, "a feature database describes this lab's SAE"
        from steerlab.features.topic import load_topic_vectors

        try:
            search = self.search
            labels = None if search is None else search.vectors
            topic = load_topic_vectors(self.store, self.sae_id, labels)
        except Exception as err:  # a broken embedding install must not break inspect: specificity still works
            log.warning("topic vectors unavailable, inspect ranks by specificity (%s)", str(err).splitlines()[0])
            return None
        if not topic.sources:
            return None
        if topic.note:
            log.info("%s", topic.note)
        return topic

    # ------------------------------------------------------------------ inspect and contrast
    def inspect(
        self,
        messages: list[dict],
        variant: VariantLike = None,
        *,
        include_template: bool = False,
        exclusive: bool = False,
    ) -> Inspection:
        """``analysis.inspect.inspect`` of ``messages`` (through ``variant`` if given) with this lab's labels, SAE
        identity, feature-database statistics and topic vectors, so its default ranking is the lab's best
        (``relevance`` with topic vectors, ``specificity`` with statistics alone, else ``frequency``:
        ``Inspection.default_ranking``, docs/inspect.md). The model is held a chunk (``chunk_tokens``) at a time
        (``run_shared``: chats decode between chunks), or with ``exclusive`` throughout, in one forward
        (``run_exclusive``)."""
        from steerlab.analysis.inspect import inspect

        options: dict[str, Any] = {
            "labels": self.labels,
            "sae_id": self.sae_id,
            "corpus_stats": self.corpus_stats,
            "include_template": include_template,
            "topic": self.topic_vectors,
        }
        if exclusive:
            return self.run_exclusive(inspect, self.lm, self.sae, messages, variant, **options)
        return self.run_shared(inspect, self.lm, self.sae, messages, variant, chunk_tokens=self.chunk_tokens, **options)

    def contrast(
        self,
        dataset_1: list[list[dict]],
        dataset_2: list[list[dict]],
        *,
        top_k: int = 5,
        k_to_add: int | None = None,
        k_to_remove: int | None = None,
        rank_by: str | None = None,
        include_template: bool = False,
        exclusive: bool = False,
    ) -> ContrastResult:
        """``analysis.contrast.contrast`` of two datasets of conversations with this lab's labels, statistics and
        topic vectors (default ranking: ``relevance`` with topic vectors, ``specificity`` with statistics alone,
        else ``frequency``; ``rank_by`` names another). ``k_to_add``/``k_to_remove`` override ``top_k`` per side.
        The model is held as in ``inspect`` (``exclusive``: throughout)."""
        from steerlab.analysis.contrast import contrast

        options: dict[str, Any] = {
            "top_k": top_k,
            "k_to_add": k_to_add,
            "k_to_remove": k_to_remove,
            "labels": self.labels,
            "corpus_stats": self.corpus_stats,
            "rank_by": rank_by,
            "include_template": include_template,
            "topic": self.topic_vectors,
        }
        if exclusive:
            return self.run_exclusive(contrast, self.lm, self.sae, dataset_1, dataset_2, **options)
        return self.run_shared(
            contrast, self.lm, self.sae, dataset_1, dataset_2, chunk_tokens=self.chunk_tokens, **options
        )

    def search_by_example(self, text: str, top_k: int = 10) -> list[ExampleHit]:
        """The features ``text`` wakes more than they usually are (``analysis/by_example.py``), the model held a
        chunk at a time as in any analysis."""
        from steerlab.analysis.by_example import search_by_example
        from steerlab.features.search import check_example_text, check_top_k

        text, top_k = check_example_text(text), check_top_k(top_k)
        stats = self.corpus_stats
        if stats is None:
            raise InvalidInputError("search by example needs a feature database (its statistics)", field="db")
        return self.run_shared(search_by_example, self.lm, self.sae, text, stats, top_k, chunk_tokens=self.chunk_tokens)

    def find_features(
        self,
        query: str | None = None,
        example_text: str | None = None,
        *,
        by: str | None = None,
        mode: str = "hybrid",
        top_k: int = 10,
    ) -> list[SearchHit]:
        """Search on every kind of evidence given: the query's ranking (``by``; None: ``FeatureSearch.default_by``)
        and the example text's unusual features, fused by reciprocal rank; each hit says which found it
        (``reason``)."""
        from steerlab.features.search import MAX_TOP_K, SearchInputError, check_top_k

        top_k = check_top_k(top_k)
        if query is None and example_text is None:
            raise SearchInputError("give a query, an example text, or both", field="query")
        search = self.search
        if search is None:
            raise InvalidInputError(
                "this needs a feature database; build one with 'steerlab features build'", field="db"
            )
        if example_text is None:
            return search.search(query or "", top_k=top_k, mode=mode, by=by)
        depth = min(MAX_TOP_K, max(50, 4 * top_k))
        found = self.search_by_example(example_text, top_k=depth)
        rankings = {} if query is None else search.rankings(query, by, depth, mode)
        rankings["example"] = [(h.index, h.score) for h in found]
        evidence = {h.index: f"peaks on {h.token!r} (token {h.position}): {h.reason}" for h in found}
        hits = search.fused_hits(rankings, top_k)
        for hit in hits:
            if hit.reason and "example" in hit.reason and hit.snippet is None:
                hit.snippet = evidence.get(hit.index)
        return hits

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
    def classifier_names(self) -> list[dict]:
        """The classifiers that read this model's SAE: ``name``, ``kind``, ``pool``, ``path`` (the user's own
        under STEERLAB_HOME first, then those shipped with the SAE; a name found in both is the user's)."""
        from steerlab.classifiers.storage import list_names

        self.require_sae()
        return list_names(self)

    def classifier(self, name: str) -> Classifier:
        """The classifier ``name`` trained on this model and SAE (the user's own, else one shipped with
        the SAE), loaded once and again when its folder changes; refused when it reads another SAE."""
        from steerlab.classifiers.storage import find, load

        self.require_sae()
        folder = find(self, name)
        stamp = (str(folder), (folder / "config.json").stat().st_mtime_ns)
        cached = self._classifiers.get(name)
        if cached is None or cached[0] != stamp:  # retrained or replaced since (by another process too)
            cached = self._classifiers[name] = (stamp, load(folder, self))
        return cached[1]

    def classifier_info(self, name: str, top: int = 20) -> dict:
        """What classifier ``name`` reads: kind, pooling, threshold, hookpoint, SAE, its ``top`` largest
        ``weights`` (features with index, label and weight; n-grams for a text model) and its training
        ``report`` (every kind's figures)."""
        if top < 0:
            raise InvalidInputError(f"must be >= 0, got {top}", field="top")
        return self.classifier(name).summary(self, top=top)

    def score_texts(
        self,
        name: str,
        texts: Sequence[str | list[dict]],
        top: int = 5,
        *,
        tokens: bool = False,
        batch_tokens: int | None = None,
        admit: Callable[[int], None] | None = None,
    ) -> list[dict]:
        """Score texts (or conversations: lists of messages, read as their user turns) with classifier
        ``name``, one result per text: ``score`` (probability of the positive class), ``flagged`` (at or
        over its threshold), ``features`` (the ``top`` that moved the score: index, label, contribution to
        the logit), ``truncated``; with ``tokens``, each token's share of the logit (``tokens``) and ``bias``.
        ``batch_tokens`` bounds the padded tokens of one forward (the server passes ``chunk_tokens``, so
        chats decode between batches); ``admit(n)`` runs before each forward of ``n`` tokens."""
        if top < 0:
            raise InvalidInputError(f"must be >= 0, got {top}", field="top")
        read = classifier_texts(texts)
        clf = self.classifier(name)
        return clf.score(self, read, top=top, tokens=tokens, batch_tokens=batch_tokens, admit=admit)

    def classify(self, name: str, texts: list[str], top: int = 5) -> list[dict]:
        """``score_texts`` without per-token values (kept for the CLI and scripts)."""
        return self.score_texts(name, texts, top)

    def explain_text(self, name: str, text: str | list[dict], top: int = 10) -> dict:
        """One text's score, the ``top`` features that moved it and each token's share of the logit
        (``tokens``: token, contribution; with ``bias`` they sum to the logit under mean pooling)."""
        return self.score_texts(name, [text], top, tokens=True)[0]

    def classifier_token_count(self, name: str, texts: Sequence[str | list[dict]]) -> int:
        """Tokens the model runs to score ``texts`` with classifier ``name`` (each cut to its ``max_tokens``)."""
        from steerlab.classifiers.pooling import token_count

        return token_count(self, classifier_texts(texts), self.classifier(name).max_tokens)

    def train_classifier(
        self,
        name: str,
        pos: Sequence[str | list[dict]] | None = None,
        neg: Sequence[str | list[dict]] | None = None,
        *,
        examples: list[Example] | None = None,
        kind: str = "best",
        max_tokens: int = 256,
        max_features: int = 32,
        overwrite: bool = False,
        heldout: dict[str, list[Example]] | None = None,
        folder: Path | None = None,
        progress: Callable[[str], None] | None = None,
        extracted: Callable[[int, int], None] | None = None,
        batch_tokens: int | None = None,
        admit: Callable[[int], None] | None = None,
    ) -> Classifier:
        """Train classifier ``name`` on positive and negative texts (or conversations), or on ``examples``;
        the SAE-feature classifier, a raw residual probe and TF-IDF are fitted and compared in one run
        (``kind``: sae, raw, text, or best on validation), and the one kept is saved under STEERLAB_HOME
        (or ``folder``). A name that exists is refused unless ``overwrite``; a save is atomic, so a run
        killed midway leaves what was stored untouched. Progress: ``progress(message)``,
        ``extracted(texts done, total)``; ``batch_tokens``/``admit`` as in ``score_texts``."""
        from steerlab.classifiers.data import labelled
        from steerlab.classifiers.storage import check_name, save, user_root
        from steerlab.classifiers.train import train

        check_name(name)
        self.require_sae()
        if examples is None:
            if pos is None or neg is None:
                raise InvalidInputError("give positive and negative texts", field="pos" if pos is None else "neg")
            examples = labelled(classifier_texts(pos, "pos"), classifier_texts(neg, "neg"))
        elif pos is not None or neg is not None:
            raise InvalidInputError("give either examples or pos/neg, not both", field="examples")
        assert self.sae_id is not None
        target = folder if folder is not None else user_root(self.sae_id) / name
        if not overwrite:
            self.check_classifier_name_free(name, target)
        clf = train(
            self,
            examples,
            name,
            kind=kind,
            max_tokens=max_tokens,
            max_features=max_features,
            heldout=heldout,
            progress=progress,
            extracted=extracted,
            batch_tokens=batch_tokens,
            admit=admit,
        )
        save(clf, target, overwrite=overwrite)
        self.forget_classifier(name)
        return clf

    def check_classifier_name_free(self, name: str, folder: Path | None = None) -> None:
        """Refuse (``ConflictError`` naming ``name``) a classifier name this SAE already has, the user's or a
        shipped one, or an existing ``folder``."""
        from steerlab.classifiers.storage import check_name, find

        check_name(name)
        self.require_sae()
        found = folder if folder is not None and folder.exists() else None
        if found is None:
            try:
                found = find(self, name)
            except LookupError:
                return
        raise ConflictError(
            f"classifier {name!r} exists ({found}); pass overwrite (--overwrite) to replace it", field="name"
        )

    def forget_classifier(self, name: str) -> None:
        """Drop a loaded classifier (after it was retrained or replaced)."""
        self._classifiers.pop(name, None)

    def require_sae(self) -> None:
        """Refuse (400 naming ``sae``) what needs an SAE on a lab loaded without one."""
        if self.sae is None or self.sae_id is None:
            raise InvalidInputError("classifiers read an SAE's features; this lab has no SAE", field="sae")

    # ------------------------------------------------------------------ classifier conditions (guards)
    def condition_probes(self, controller: Controller) -> dict[str, LinearProbe]:
        """The classifiers that ``controller``'s conditions name (``{"classifier": NAME, ...}``), as linear
        probes that steering evaluates as tokens arrive (steering sits below the classifiers, so names are
        resolved here, when a variant is compiled). An unknown name, or a text-only classifier, is refused
        naming the condition's field and listing the classifiers a condition may name."""
        named = list(controller.iter_classifiers())
        probes: dict[str, LinearProbe] = {}
        for path, name in named:
            if name in probes:
                continue
            try:
                clf = self.classifier(name)
            except (NotFoundError, InvalidInputError):
                raise ControllerError(
                    f"no classifier {name!r} for this model and SAE", field=path, allowed=self._guard_names()
                ) from None
            if clf.kind == "text":
                raise ControllerError(
                    f"classifier {name!r} reads the text (TF-IDF); a condition needs one that reads the model "
                    "(kind sae or raw)",
                    field=path,
                    allowed=self._guard_names(),
                )
            cached = self._probes.get(name)
            if cached is None or cached[0] is not clf or cached[1].min_tokens != get_settings().guard_min_tokens:
                cached = self._probes[name] = (clf, self._probe_of(clf))
            probes[name] = cached[1]
        return probes

    def _guard_names(self) -> str:
        from steerlab.classifiers.storage import list_names

        names = [c["name"] for c in list_names(self) if c["kind"] != "text"] if self.sae_id else []
        return ", ".join(names) or "none yet (train one with 'steerlab classify train')"

    def _probe_of(self, clf: Classifier) -> LinearProbe:
        from steerlab.classifiers.pooling import content_start
        from steerlab.steering.probes import LinearProbe

        assert self.sae is not None  # a classifier loads only against this lab's SAE
        device = self.sae.W_dec.device
        indices = clf.linear.indices
        return LinearProbe(
            name=clf.name,
            reads="sae" if clf.kind == "sae" else "residual",
            weights=torch.as_tensor(clf.linear.weights, dtype=torch.float32).to(device),
            bias=float(clf.linear.bias),
            pool=clf.pool,
            indices=None if indices is None else torch.as_tensor(indices, dtype=torch.long).to(device),
            skip=content_start(self.lm.tokenizer),
            min_tokens=get_settings().guard_min_tokens,
            max_tokens=clf.max_tokens,
        )

    def close(self) -> None:
        self.engine.close()
        if self.store is not None and hasattr(self.store, "close"):
            self.store.close()


def classifier_texts(texts: Sequence[str | list[dict]], field: str = "texts") -> list[str]:
    """What a classifier reads of each item: a text as given, a conversation (a list of messages) as its
    user turns; each checked (a non-empty string within the length limit), errors naming ``field[i]``."""
    from steerlab.classifiers.data import check_text, conversation_text

    if isinstance(texts, str) or not isinstance(texts, Sequence):
        raise InvalidInputError("must be a list of texts or conversations", field=field)
    out: list[str] = []
    for i, item in enumerate(texts):
        where = f"{field}[{i}]"
        out.append(check_text(conversation_text(item, where) if isinstance(item, list) else item, where))
    return out


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
