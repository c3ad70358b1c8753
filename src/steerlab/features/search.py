"""Finding features: semantic (label embeddings), lexical (FTS5 over distinct labels), hybrid, neighbors, rerank.

Search is exact: one matmul over the *distinct* label embeddings (features sharing a label share a
vector; 1.3k distinct labels for 9.2k latents on the default SAE) plus a partial sort: ~0.25 ms here,
~0.1 s for 1M distinct labels. An ANN index (faiss/usearch HNSW) pays off only past ~1M distinct labels
(many large SAEs in one store); below that exact search is both cheaper to keep and never wrong.
Features sharing a label are ordered by the explainer's evidence, then the label score.

Hybrid search fuses the semantic and lexical rankings by reciprocal-rank fusion (RRF, k=60): scores
of the two backends live on different scales (cosine vs bm25), ranks do not.

Labels are one kind of evidence; ``by`` picks which a search rests on: ``label`` (the label text, above),
``contexts`` (what the feature's strongest windows are about, contrasted against the corpus:
``context_vectors.py``; computed once a machine, minutes on a CPU) or ``hybrid`` (the label ranking's first
features re-scored by label cosine plus ``CONTEXT_WEIGHT`` x context cosine: labels propose, contexts decide among
them). Unsaid, it is ``hybrid`` when the context vectors are at hand and ``label`` otherwise (``default_by``).
Search by example (a pasted text run through the model) lives in ``analysis/by_example.py`` and fuses with these
by reciprocal rank (:func:`fuse`). Every hit says why it was returned (``reason``) and, for context evidence,
shows the feature's strongest window (``snippet``).
"""

from __future__ import annotations

import functools
import re
import threading
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel

from steerlab.errors import InvalidInputError
from steerlab.features.embeddings import EMBED_DIM, embed_one, embed_unique
from steerlab.features.label_format import parse_token_label
from steerlab.features.label_vector_cache import embed_labels
from steerlab.features.lexical_index import LexicalIndex
from steerlab.features.schema import Feature, Label, feature_uuid

LABEL_VECTORS = "label_embeddings"
DECODER_VECTORS = "decoder"
MAX_QUERY_CHARS = 512
MAX_TOP_K = 1000
RRF_K = 60
MAX_EXAMPLE_CHARS = 20_000
"""Longest example text accepted for search by example (a few thousand tokens; longer ones are refused)."""
BY = ("label", "contexts", "hybrid")
"""What a search rests on: the label text, the feature's contexts, or both fused."""


class SearchInputError(InvalidInputError):
    """Bad search input; ``field`` names the offending argument (the API turns it into a 400)."""


class SearchHit(BaseModel):
    index: int
    uuid: str
    label: str
    score: float
    """Higher is better: cosine (semantic, neighbors, rerank), bm25-derived (lexical), RRF (hybrid label matching,
    example evidence) or label cosine + ``CONTEXT_WEIGHT`` x context cosine (``label+contexts``)."""
    label_score: float | None = None
    """The label's quality score from its scorer, so callers can prefer trustworthy labels."""
    reason: str | None = None
    """Why it was returned: ``label``, ``contexts``, ``label+contexts`` (hybrid: its label matched and its contexts
    weighed in) or ``example``, joined by ``+`` when several rankings found it (the stronger evidence first)."""
    snippet: str | None = None
    """Evidence to read: the feature's strongest window (contexts), or the token it peaked on and how unusual
    that is (example)."""


def check_query(query: str) -> str:
    if not isinstance(query, str) or not query.strip():
        raise SearchInputError("must be a non-empty string", field="query")
    if len(query) > MAX_QUERY_CHARS:
        raise SearchInputError(f"is {len(query)} characters; at most {MAX_QUERY_CHARS} allowed", field="query")
    return query.strip()


@functools.lru_cache(maxsize=4096)
def embeddable(query: str) -> bool:
    """Whether the sentence-embedding model knows any of the query's characters (not every word piece [UNK]);
    memoized, so a repeated label search pays nothing for the check."""
    from steerlab.features.query_encoder import wordpieces

    pieces = wordpieces(query)
    return not pieces or any(p != "[UNK]" for p in pieces)


def check_known_script(query: str) -> None:
    """A query none of whose characters the sentence-embedding model knows (every word piece is [UNK]) would
    match features at random by meaning; refuse it and say what works instead (hybrid searches fall back to
    their word-matching part)."""
    if not embeddable(query):
        raise SearchInputError(
            "the search model knows none of its characters (its vocabulary covers Latin, Greek, Cyrillic, CJK and "
            "other common scripts); describe the concept in English, search with mode=lexical, or search by "
            "example text",
            field="query",
        )


def check_example_text(text: str) -> str:
    """An example text for search by example: non-empty, at most MAX_EXAMPLE_CHARS, and text, not binary."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidInputError("must be a non-empty string", field="text")
    if len(text) > MAX_EXAMPLE_CHARS:
        raise InvalidInputError(f"is {len(text)} characters; at most {MAX_EXAMPLE_CHARS} allowed", field="text")
    control = sum(1 for ch in text if (ord(ch) < 32 and ch not in "\t\n\r") or ch in "\x7f\ufffd")
    if "\x00" in text or control > max(2, len(text) // 20):
        raise InvalidInputError(
            "looks binary (NUL or many control/undecodable characters); give UTF-8 text", field="text"
        )
    return text


def check_by(by: str) -> str:
    if by not in BY:
        raise SearchInputError(f"must be one of {', '.join(BY)}, got {by!r}", field="by")
    return by


WEIGHTS = {"contexts": 0.5}
"""RRF weight of each kind of evidence (1 unless named) where rankings are fused by rank: a query's ranking with an
example's (``Lab.find_features``). Context evidence counts half: chosen when ``hybrid`` was the RRF of label and
context rankings (concept check, 56 tuning concepts: top-1 25/56 at 0.5, 24/56 at 1.0); hybrid re-scores by cosine
now (``CONTEXT_WEIGHT``), so it applies to ``by="contexts"`` with an example."""


WORD_PENALTY = 0.1
"""Cosine taken off a label that says its feature fires on a word of the query (``the word "number"``,
``"source" tokens``) in label search: a concept query prefers the features whose contexts show it (``numbers``:
``digit tokens``) to the one that fires on the word naming it, and still gets the word's feature when nothing
else is close. Chosen on the concept check's 56 tuning concepts (docs/search.md)."""
CONTEXT_WEIGHT = 0.75
"""Hybrid search scores each of the label ranking's first ``HYBRID_CANDIDATES`` features by its label's cosine to
the query (with the rules below) plus this times its context vector's cosine: among features whose labels match,
the one whose strongest windows are about the query comes first. Chosen on the concept check's 56 tuning concepts
(top-1 30 -> 37 at 0.75; 0.5 and 1.0: 36; docs/search.md), the issue's held-out 20 unchanged (6)."""
HYBRID_CANDIDATES = 20
"""How many of the label ranking's first features hybrid search re-scores (the rest follow in label order, so the
first hits do not change with ``top_k``); 10 and 30 gave the same tuning top-1 within one, 50 two fewer."""
WHERE_MARGIN = 0.05
"""Cosine a description found by where its token fires gives up to a label that is that concept outright: 159 of the
shipped database's descriptions end in ``in Python code``; the label ``Python code`` comes first."""


def label_where(text: str) -> str | None:
    """Where a description says its token fires (``"cat" tokens in shell commands`` -> ``shell commands``): the
    scorer confirmed that context on held-out windows, so a search for it may find the feature by it."""
    parsed = parse_token_label(text)
    return parsed[1].strip() if parsed and parsed[1] and '"' not in parsed[0] else None


def label_word(text: str) -> str | None:
    """The word a label says its feature fires on (``the word "email"``, ``"email" tokens in French text``), or
    None for a label that claims a concept (or names punctuation)."""
    parsed = parse_token_label(text)
    word = parsed[0].strip().lower() if parsed and '"' not in parsed[0] else ""
    return word if word.isalpha() else None


@functools.lru_cache(maxsize=4096)
def query_forms(query: str) -> frozenset[str]:
    """Every form of the query's words (``numbers`` -> ``number``, ``numbers``...), memoized per query."""
    from steerlab.features.explain.wordnet import word_forms

    return frozenset(f for w in re.findall(r"[a-z]+", query.lower()) if len(w) >= 3 for f in word_forms(w))


def fuse(rankings: dict[str, list[tuple[int, float]]], top_k: int) -> list[tuple[int, float, str]]:
    """Reciprocal-rank fusion of named rankings (best first) -> ``(index, score, reason)``, the reason naming
    the rankings that found the feature, the one that ranked it highest first."""
    fused: dict[int, float] = {}
    found: dict[int, list[tuple[int, str]]] = {}
    for name, ranking in rankings.items():
        weight = WEIGHTS.get(name, 1.0)
        for rank, (index, _) in enumerate(ranking):
            fused[index] = fused.get(index, 0.0) + weight / (RRF_K + rank + 1)
            found.setdefault(index, []).append((rank, name))
    best = sorted(fused.items(), key=lambda kv: -kv[1])[:top_k]
    return [(index, score, "+".join(name for _, name in sorted(found[index]))) for index, score in best]


def check_top_k(top_k: int) -> int:
    if not isinstance(top_k, int) or isinstance(top_k, bool) or not 1 <= top_k <= MAX_TOP_K:
        raise SearchInputError(f"must be an integer in [1, {MAX_TOP_K}], got {top_k!r}", field="top_k")
    return top_k


def update_label_embeddings(store, sae_id: str, changed: dict[int, Label | None] | None = None) -> np.ndarray:
    """Write ``label_embeddings`` ``[d_sae, 384]`` float16 (zero rows = unlabeled): all labels, or only ``changed``."""
    d_sae = store.get_sae(sae_id).d_sae
    current = None if changed is None else store.load_vectors(sae_id, LABEL_VECTORS)
    if current is None or tuple(current.shape) != (d_sae, EMBED_DIM):
        vectors, changed = np.zeros((d_sae, EMBED_DIM), dtype=np.float32), dict(store.labels(sae_id))
    else:
        vectors = _float_rows(current).copy()
    texts = {i: lab.text for i, lab in changed.items() if lab is not None}
    for i, lab in changed.items():
        if lab is None:
            vectors[i] = 0.0
    if texts:
        vectors[list(texts)] = embed_unique(list(texts.values()), batch_size=128)
    import torch

    store.save_vectors(sae_id, LABEL_VECTORS, torch.from_numpy(vectors).half())  # fp16 halves the shipped file
    return vectors


class FeatureSearch:
    """All search modes over one SAE in a store; loads vectors once, then answers in milliseconds."""

    def __init__(self, store, sae_id: str, decoder=None, query_cache_size: int = 1024):
        self.store, self.sae_id = store, sae_id
        self.d_sae = store.get_sae(sae_id).d_sae  # unknown SAE -> the store's UnknownSAEError
        self._decoder = None if decoder is None else _unit_rows(decoder)
        self._query_cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._query_cache_size = query_cache_size
        self._cache_lock = threading.Lock()  # one FeatureSearch serves many server threads
        self._uuids: dict[int, str] = {}
        self._contexts = None  # (contrasted [d_sae, 384], present mask, snippets), loaded on first use
        self._contexts_lock = threading.Lock()
        self._contexts_thread: threading.Thread | None = None
        self._contexts_progress = (0, 0)
        self._contexts_at_hand: bool | None = None
        self.refresh()

    def refresh(self) -> None:
        """Reload labels and label embeddings. Missing ones (the shipped database stores none), or stored ones whose
        labeled rows do not match the labels (written by another tool, or a killed run), are recomputed in memory
        (``label_vector_cache.py`` keeps them for the next process); the label runner keeps stored ones in step."""
        self.labels = self.store.labels(self.sae_id)
        stored = self.store.load_vectors(self.sae_id, LABEL_VECTORS, framework="np")
        vectors = None if stored is None else _float_rows(stored)
        labeled = np.zeros(self.d_sae, dtype=bool)
        labeled[list(self.labels)] = True
        if (
            vectors is None
            or vectors.shape != (self.d_sae, EMBED_DIM)
            or not np.array_equal(np.abs(vectors).sum(1) > 0, labeled)
        ):
            vectors = np.zeros((self.d_sae, EMBED_DIM), dtype=np.float32)
            if self.labels:
                vectors[list(self.labels)] = embed_labels([lab.text for lab in self.labels.values()])
        self.vectors = np.ascontiguousarray(vectors)
        self.labeled = labeled
        self._group_by_label()

    def _group_by_label(self) -> None:
        """Distinct label texts and their features, strongest first: many latents share a concept label
        (1.3k distinct among 9.2k on the default SAE), so searching distinct vectors is ~7x less work."""
        groups: dict[str, list[int]] = {}
        for index, label in self.labels.items():
            groups.setdefault(label.text, []).append(index)
        strength = {i: _strength(lab) for i, lab in self.labels.items()}
        self._members = [sorted(rows, key=lambda i: (-strength[i][0], -strength[i][1], i)) for rows in groups.values()]
        self._lexical = LexicalIndex(list(groups))
        where = [(group, label_where(text)) for group, text in enumerate(groups)]
        where = [(group, text) for group, text in where if text]
        self._where_groups = np.array([group for group, _ in where], dtype=np.int64)
        self._where_vectors = (
            np.ascontiguousarray(embed_labels([text for _, text in where]), dtype=np.float32)
            if where
            else np.zeros((0, EMBED_DIM), np.float32)
        )
        self._group_of = np.full(self.d_sae, -1, dtype=np.int64)  # feature -> its label's group
        for group, rows in enumerate(self._members):
            self._group_of[rows] = group
        self._word_groups: dict[str, list[int]] = {}  # form of a word -> groups whose label names that word
        from steerlab.features.explain.wordnet import word_forms

        for group, text in enumerate(groups):
            word = label_word(text)
            for form in word_forms(word) if word else ():
                self._word_groups.setdefault(form, []).append(group)
        first = [rows[0] for rows in self._members]
        self._distinct = np.ascontiguousarray(self.vectors[first]) if first else np.zeros((0, EMBED_DIM), np.float32)

    # ------------------------------------------------------------------ queries
    def warm(self) -> None:
        """Load the query encoder now (seconds; the ONNX graph is exported on a machine's first run), and the
        context vectors the default search rests on when they are at hand (never computed here), rather than inside
        the first request."""
        from steerlab.features.query_encoder import query_encoder

        if query_encoder() is None:
            embed_one(" ")
        if self.contexts_at_hand():
            self.context_vectors()

    def query_vector(self, query: str) -> np.ndarray:
        """Embedding of a (checked) query, memoized: people repeat queries, and encoding one costs a few ms
        (ONNX Runtime, ``query_encoder.py``) to ~15 ms (PyTorch) on a CPU. A query in a script the embedding
        model does not know is refused (``check_known_script``)."""
        with self._cache_lock:
            vec = self._query_cache.get(query)
            if vec is not None:
                self._query_cache.move_to_end(query)
                return vec
        check_known_script(query)
        vec = embed_one(query)
        with self._cache_lock:
            self._query_cache[query] = vec
            if len(self._query_cache) > self._query_cache_size:
                self._query_cache.popitem(last=False)
        return vec

    def forget_queries(self) -> None:
        """Empty the query-embedding cache (benchmarks measure the cold path with it)."""
        with self._cache_lock:
            self._query_cache.clear()

    def semantic(self, query: str, top_k: int = 10) -> list[SearchHit]:
        query, top_k = check_query(query), check_top_k(top_k)
        return self._hits_of(self._semantic_ranking(self.query_vector(query), top_k, query))

    # ------------------------------------------------------------------ context evidence
    def context_vectors(self, progress=None):
        """``(contrasted vectors [d_sae, 384], present mask, snippets)``: from the database or the machine's
        cache, else computed now (minutes on a CPU, once a machine: ``context_vectors.py``)."""
        if self._contexts is None:
            with self._contexts_lock:
                if self._contexts is None:
                    from steerlab.features.context_vectors import load

                    loaded = load(self.store, self.sae_id, progress)
                    self._contexts = (np.ascontiguousarray(loaded.contrasted()), loaded.present, loaded.snippets)
        return self._contexts

    def contexts_ready(self, start: bool = True) -> bool:
        """Whether context vectors are loaded; if not and ``start``, begin loading (or computing) them in a
        background thread, so a server answers "busy, retry" instead of holding a request for minutes."""
        if self._contexts is not None:
            return True
        with self._contexts_lock:
            if start and (self._contexts_thread is None or not self._contexts_thread.is_alive()):

                def run() -> None:
                    try:
                        self.context_vectors(progress=self._note_progress)
                    except Exception:  # logged; the next request starts over
                        import logging

                        logging.getLogger("steerlab.features").exception("computing context vectors failed")

                self._contexts_thread = threading.Thread(target=run, name="context-vectors", daemon=True)
                self._contexts_thread.start()
        return False

    def _note_progress(self, done: int, total: int) -> None:
        self._contexts_progress = (done, total)

    @property
    def contexts_progress(self) -> tuple[int, int]:
        """(windows embedded, windows in all) of a computation under way."""
        return self._contexts_progress

    def default_by(self) -> str:
        """What a search rests on when the caller does not say: ``hybrid`` when the features' context vectors are at
        hand (loaded, stored with the database or cached on this machine: a default search never starts their
        computation, minutes on a CPU), else ``label``."""
        return "hybrid" if self.contexts_at_hand() else "label"

    def contexts_at_hand(self) -> bool:
        """Whether the context vectors are loaded, stored with the database or cached on this machine (loading them
        takes a fraction of a second; computing them, minutes)."""
        if self._contexts is None and self._contexts_at_hand is None:
            from steerlab.features.context_vectors import available

            self._contexts_at_hand = available(self.store, self.sae_id) is not None
        return self._contexts is not None or bool(self._contexts_at_hand)

    def resolve_by(self, by: str | None) -> str:
        """``by`` checked, or :meth:`default_by` for None."""
        return self.default_by() if by is None else check_by(by)

    def contexts(self, query: str, top_k: int = 10) -> list[SearchHit]:
        """Features whose strongest windows are about the query (cosine to their contrasted context vector)."""
        query, top_k = check_query(query), check_top_k(top_k)
        return self._hits_of(self._context_ranking(self.query_vector(query), top_k), reason="contexts")

    def _context_ranking(self, vector: np.ndarray, top_k: int) -> list[tuple[int, float]]:
        vectors, present, _ = self.context_vectors()
        scores = np.where(present, vectors @ vector, -np.inf)
        return [(int(i), float(scores[i])) for i in _top(scores, top_k) if np.isfinite(scores[i])]

    def rankings(
        self, query: str, by: str | None, depth: int, mode: str = "hybrid"
    ) -> dict[str, list[tuple[int, float]]]:
        """The named ranking a search of ``query`` rests on (``label`` in ``mode``, ``contexts``, or
        ``label+contexts``), ``depth`` deep: the building block of :meth:`search` and of a search that adds example
        evidence. ``by`` None: :meth:`default_by`."""
        query, by = check_query(query), self.resolve_by(by)
        if by == "hybrid" and embeddable(query):  # unknown script: label words only
            return {"label+contexts": self._hybrid_ranking(query, depth, mode)}
        if by == "contexts":
            return {"contexts": self._context_ranking(self.query_vector(query), depth)}
        return {"label": self._label_ranking(query, depth, mode)}

    def _hybrid_ranking(self, query: str, depth: int, mode: str) -> list[tuple[int, float]]:
        """The label ranking (``mode``), its first ``HYBRID_CANDIDATES`` features re-scored by label cosine plus
        ``CONTEXT_WEIGHT`` x context cosine (a feature without a context vector: label alone); the rest after them,
        in label order."""
        vector = self.query_vector(query)
        groups = self._group_scores(vector, query)  # once: the label ranking and the re-scoring both read them
        ranking = self._label_ranking(query, max(HYBRID_CANDIDATES, depth), mode, groups)
        head, tail = ranking[:HYBRID_CANDIDATES], ranking[HYBRID_CANDIDATES:]
        if not head:
            return []
        contexts, present, _ = self.context_vectors()
        rows = np.array([index for index, _ in head], dtype=np.int64)
        label = groups[self._group_of[rows]]
        score = label + CONTEXT_WEIGHT * np.where(present[rows], contexts[rows] @ vector, 0.0)
        order = np.argsort(-score, kind="stable")
        return ([(int(rows[j]), float(score[j])) for j in order] + tail)[:depth]

    def fused_hits(self, rankings: dict[str, list[tuple[int, float]]], top_k: int) -> list[SearchHit]:
        """Hits of :func:`fuse`d rankings; each says which rankings found it (``reason``)."""
        if len(rankings) == 1:
            ((name, ranking),) = rankings.items()
            return self._hits_of(ranking[:top_k], reason=name)
        fused = fuse(rankings, top_k)
        self._prefetch_snippets([index for index, _, reason in fused if "contexts" in reason], "contexts")
        return [self._hit(index, score, reason) for index, score, reason in fused]

    def _label_ranking(
        self, query: str, depth: int, mode: str, scores: np.ndarray | None = None
    ) -> list[tuple[int, float]]:
        """``scores``: the query's ``_group_scores`` when the caller already has them."""
        if mode == "semantic":
            return self._semantic_ranking(self.query_vector(query), depth, query, scores)
        if mode == "lexical":
            return self._lexical_ranking(query, depth)
        semantic = self._semantic_ranking(self.query_vector(query), depth, query, scores) if embeddable(query) else None
        parts = {"s": semantic} if semantic is not None else {}
        parts["l"] = self._lexical_ranking(query, depth)  # after the semantic one: ties break as in hybrid()
        return [(index, score) for index, score, _ in fuse(parts, depth)]

    def semantic_by_vector(self, vector: np.ndarray, top_k: int = 10) -> list[SearchHit]:
        """Exact cosine top-k over labeled rows (a query embedded elsewhere, e.g. by a benchmark). Features
        sharing a label tie on cosine; the one with the strongest evidence for it comes first."""
        return self._hits_of(self._semantic_ranking(vector, check_top_k(top_k)))

    def lexical(self, query: str, top_k: int = 10) -> list[SearchHit]:
        """bm25 over the distinct label texts (``lexical_index.py``); a label's features strongest first, as in
        semantic search. The query is plain words: no FTS syntax gets through."""
        query, top_k = check_query(query), check_top_k(top_k)
        return self._hits_of(self._lexical_ranking(query, top_k))

    def hybrid(self, query: str, top_k: int = 10) -> list[SearchHit]:
        """Reciprocal-rank fusion of semantic and lexical rankings (each taken to depth max(50, 4*top_k))."""
        query, top_k = check_query(query), check_top_k(top_k)
        depth = min(MAX_TOP_K, max(50, 4 * top_k))
        fused: dict[int, float] = {}
        rankings = [self._lexical_ranking(query, depth)]
        if embeddable(query):  # a script the embedding model does not know: words only
            rankings.insert(0, self._semantic_ranking(self.query_vector(query), depth, query))
        for ranking in rankings:
            for rank, (index, _) in enumerate(ranking):
                fused[index] = fused.get(index, 0.0) + 1.0 / (RRF_K + rank + 1)
        return self._hits_of(sorted(fused.items(), key=lambda kv: -kv[1])[:top_k])

    def _word_labels(self, query: str | None) -> list[int]:
        """Label groups that say their features fire on a word of the query (``the word "number"`` for
        ``numbers``)."""
        if not query or not self._word_groups:
            return []
        return list({g for form in query_forms(query) for g in self._word_groups.get(form, ())})

    def _semantic_ranking(
        self, vector: np.ndarray, top_k: int, query: str | None = None, scores: np.ndarray | None = None
    ) -> list[tuple[int, float]]:
        if scores is None:
            scores = self._group_scores(vector, query)
        return self._expand_groups(((group, float(scores[group])) for group in _top(scores, top_k)), top_k)

    def _group_scores(self, vector: np.ndarray, query: str | None = None) -> np.ndarray:
        """``[distinct labels]`` cosine of each label to the query, with the two rules of docs/search.md."""
        scores = self._distinct @ vector
        if len(self._where_groups):  # '"g" tokens in shell commands' is found by "shell commands" as well
            whole = scores[self._where_groups]  # ties among the parts ("in Python code" x 35) go by the whole label
            where = self._where_vectors @ vector - WHERE_MARGIN + 1e-3 * whole
            scores[self._where_groups] = np.maximum(whole, where)
        words = self._word_labels(query)
        if words:  # a feature that fires on the query's word comes after those whose label claims the concept
            scores[words] -= WORD_PENALTY
        return scores

    def _lexical_ranking(self, query: str, top_k: int) -> list[tuple[int, float]]:
        groups = self._lexical.search(query, top_k)
        words = set(self._word_labels(query))
        if words:  # the same preference among word matches: labels naming the query's word last
            groups = [g for g in groups if g[0] not in words] + [g for g in groups if g[0] in words]
        return self._expand_groups(groups, top_k)

    def _expand_groups(self, groups, top_k: int) -> list[tuple[int, float]]:
        """(label group, score) best first -> (feature, score), each label's features strongest first. Every
        group holds >= 1 feature, so the first ``top_k`` groups are always enough."""
        ranking: list[tuple[int, float]] = []
        for group, score in groups:
            ranking += [(index, score) for index in self._members[group][: top_k - len(ranking)]]
            if len(ranking) == top_k:
                break
        return ranking

    def _hits_of(self, ranking: list[tuple[int, float]], reason: str = "label") -> list[SearchHit]:
        self._prefetch_snippets([index for index, _ in ranking], reason)
        return [self._hit(index, score, reason) for index, score in ranking]

    def _prefetch_snippets(self, indices: list[int], reason: str | None) -> None:
        """Read the hits' strongest windows in one query where they are read from the database on demand."""
        if reason is not None and "contexts" in reason and self._contexts is not None:
            prefetch = getattr(self._contexts[2], "prefetch", None)
            if prefetch is not None:
                prefetch(indices)

    def search(self, query: str, top_k: int = 10, mode: str = "hybrid", by: str | None = None) -> list[SearchHit]:
        """``mode`` (semantic, lexical, hybrid) is how labels are matched; ``by`` what the search rests on
        (label, contexts, hybrid: the label ranking re-scored with the contexts; None: :meth:`default_by`)."""
        if mode not in ("semantic", "lexical", "hybrid"):
            raise SearchInputError(f"must be semantic, lexical or hybrid, got {mode!r}", field="mode")
        by = self.resolve_by(by)
        if by == "label":
            return getattr(self, mode)(query, top_k)
        if by == "contexts":
            return self.contexts(query, top_k)
        top_k = check_top_k(top_k)
        return self.fused_hits(self.rankings(query, by, top_k, mode), top_k)

    def rerank(self, indices: Sequence[int], query: str) -> list[SearchHit]:
        """The given features ordered by label similarity to the query (unlabeled ones last, score 0)."""
        query = check_query(query)
        rows = self._check_indices(indices)
        scores = self.vectors[rows] @ self.query_vector(query)
        order = sorted(range(len(rows)), key=lambda j: (not self.labeled[rows[j]], -scores[j]))
        return [self._hit(rows[j], float(scores[j])) for j in order]

    def neighbors(self, index: int, top_k: int = 10) -> list[SearchHit]:
        """Features whose decoder directions are most cosine-similar to ``index``'s (itself excluded)."""
        (index,), top_k = self._check_indices([index]), check_top_k(top_k)
        decoder = self._decoder_rows()
        scores = decoder @ decoder[index]
        scores[index] = -np.inf
        return self._hits(_top(scores, min(top_k, self.d_sae - 1)), scores)

    def lookup(self, indices: Sequence[int], with_examples: bool = False) -> list[Feature]:
        return self.store.get_features(self.sae_id, self._check_indices(indices), with_examples=with_examples)

    # ------------------------------------------------------------------ helpers
    def _decoder_rows(self) -> np.ndarray:
        if self._decoder is None:
            stored = self.store.load_vectors(self.sae_id, DECODER_VECTORS)
            if stored is None:
                raise SearchInputError(
                    f"no decoder vectors stored for SAE {self.sae_id!r}; "
                    "pass the SAE's W_dec or rebuild the feature database",
                    field="decoder",
                )
            self._decoder = _unit_rows(stored)
        return self._decoder

    def _check_indices(self, indices: Sequence[int]) -> list[int]:
        rows = [int(i) for i in indices]
        bad = [i for i in rows if not 0 <= i < self.d_sae]
        if bad:
            raise SearchInputError(f"{bad[0]} is out of range [0, {self.d_sae - 1}]", field="indices")
        return rows

    def _hit(self, index: int, score: float, reason: str | None = None) -> SearchHit:
        """Built from values we already hold (no validation: ~20 us a hit with it, a tenth of a search)."""
        label = self.labels.get(index)
        uuid = self._uuids.get(index)
        if uuid is None:
            uuid = self._uuids[index] = feature_uuid(self.sae_id, index)
        snippet = None
        if reason is not None and "contexts" in reason and self._contexts is not None:
            snippet = self._contexts[2][index] or None
        return SearchHit.model_construct(
            index=int(index),
            uuid=uuid,
            label=label.text if label else "",
            score=float(score),
            label_score=label.score if label else None,
            reason=reason,
            snippet=snippet,
        )

    def _hits(self, rows: np.ndarray, scores: np.ndarray) -> list[SearchHit]:
        return [self._hit(int(i), float(scores[i])) for i in rows if np.isfinite(scores[i])]


def _strength(label: Label) -> tuple[float, float]:
    """Order of features sharing a label: the explainer's evidence (how strongly the feature's contexts point
    to the label; picks the right feature 16/46 vs 11/46 by score in the concept check), then the label score."""
    evidence = label.score_details.get("evidence") if label.score_details else None
    return (
        float(evidence) if isinstance(evidence, (int, float)) else float("-inf"),
        -1.0 if label.score is None else label.score,
    )


def _top(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` largest scores, best first (argpartition: O(n), not a full sort)."""
    k = min(k, len(scores))
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    part = np.argpartition(-scores, k - 1)[:k]
    return part[np.argsort(-scores[part], kind="stable")]


def _float_rows(matrix) -> np.ndarray:
    """Float32 numpy array from a numpy array or a torch tensor (any dtype, any device)."""
    if hasattr(matrix, "detach"):
        matrix = matrix.detach().float().cpu().numpy()
    return np.asarray(matrix, dtype=np.float32)


def _unit_rows(matrix) -> np.ndarray:
    """Float32 copy with unit-norm rows (accepts a torch tensor, e.g. an SAE's ``W_dec``)."""
    rows = _float_rows(matrix)
    return rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)
