"""``steerlab.Client``: the goodfire SDK's ``Client`` API, in-process on your own model or over HTTP.

    import steerlab
    client = steerlab.Client()                        # in-process: bundled model + SAE, loaded lazily
    pirate = client.features.search("pirate", model="default", top_k=5)[0]
    variant = steerlab.Variant("default"); variant.set(pirate, 0.5)
    reply = client.chat.completions.create([{"role": "user", "content": "Hi"}], model=variant)
    reply.choices[0].message["content"]

    client = steerlab.Client(api_key="sk-...", base_url="http://localhost:8000")   # a steerlab server

Method names, arguments and return shapes follow the SDK (``features.search / lookup / neighbors /
rerank / inspect / activations / contrast / attribute / AutoSteer / AutoConditional /
generate_contrastive_stimulus``, ``chat.completions.create``, ``chat.logits``), so notebooks written
for Ember run unchanged. ``classifiers.list / get / score / train`` is steerlab's own
(docs/classifiers.md). Differences: ``system_prompt`` defaults to None (the model's own chat
template decides) and ``max_completion_tokens`` to 256; in-process results carry steerlab's richer
objects too (``inspector.inspection``, ``edits.result`` with AutoSteer's scores).
"""

from __future__ import annotations

from collections import OrderedDict

from steerlab.client_types import Feature, LogitsResponse
from steerlab.steering.refs import FeatureGroup, as_group


class FeatureEdits:
    """AutoSteer's answer, as the SDK's ``FeatureEdits``: ordered ``(feature, strength)`` pairs that
    ``variant.set(edits)`` accepts. In-process, ``result`` holds the full ``AutoSteerResult``."""

    def __init__(self, edits, result=None):
        self._edits: OrderedDict = OrderedDict((f, float(v)) for f, v in edits)
        self.result = result

    def __iter__(self):
        return iter(self._edits)

    def __len__(self) -> int:
        return len(self._edits)

    def __getitem__(self, i: int) -> tuple[Feature, float]:
        return list(self._edits.items())[i]

    def items(self):
        return self._edits.items()

    def as_dict(self) -> dict:
        return dict(self._edits)

    def __repr__(self) -> str:
        inner = "".join(f"\n   {i}: ({f.label or f.index}, {v})" for i, (f, v) in enumerate(self._edits.items()))
        return f"FeatureEdits([{inner}\n])"


class FeaturesAPI:
    def __init__(self, backend):
        self._backend = backend

    def search(self, query: str, model="default", top_k: int = 10, by: str | None = None) -> FeatureGroup:
        """Features matching ``query``: by their labels (``by="label"``: semantic + lexical), by what their strongest
        contexts are about (``by="contexts"``), or labels proposing and contexts deciding (``by="hybrid"``, the
        default when the database's context vectors are at hand; else label). Each member says why it was returned
        (``.reason``, ``.snippet``)."""
        return FeatureGroup(self._backend.search(query, top_k, model, by=by))

    def search_by_example(
        self, text: str, model="default", top_k: int = 10, query: str | None = None, by: str | None = None
    ) -> FeatureGroup:
        """Features ``text`` wakes more than they usually are (runs the model on it), fused with a ``query``'s
        search when one is given; each member says why it was returned (``.reason``, ``.snippet``)."""
        return FeatureGroup(self._backend.search_by_example(text, top_k, model, query=query, by=by))

    def lookup(self, indices: list[int], model="default") -> dict[int, Feature]:
        return self._backend.lookup(list(indices), model)

    def neighbors(self, features, model="default", top_k: int = 10) -> FeatureGroup:
        """Features whose decoder directions are closest to ``features``'."""
        return FeatureGroup(self._backend.neighbors(as_group(features).indices, top_k, model))

    def rerank(self, features, query: str, model="default", top_k: int = 10) -> FeatureGroup:
        return FeatureGroup(self._backend.rerank(list(as_group(features)), query, top_k, model))

    def inspect(
        self,
        messages,
        model="default",
        features=None,
        aggregate_by: str = "frequency",
        rank_by: str | None = None,
        include_template: bool = False,
    ):
        """Per-token feature activations of ``messages`` (through the variant, if ``model`` is one);
        ``.top(k)`` gives the features that show what this text is about (``rank_by="relevance"``, the default
        with a feature database, in process and over HTTP: unusual activations weighted by topic, docs/inspect.md),
        the most specific ones (``rank_by="specificity"``), or the strongest as before
        (``rank_by="frequency"``); ``aggregate_by`` (frequency, mean, max, sum) picks the value shown. The chat
        template is not scored unless ``include_template``."""
        indices = None if features is None else as_group(features).indices
        return self._backend.inspect(list(messages), model, indices, aggregate_by, rank_by, include_template)

    def activations(self, messages, model="default", features=None):
        """``[tokens, d_sae]`` activation matrix in per-feature units."""
        return self.inspect(messages, model, features).matrix()

    def contrast(
        self,
        dataset_1,
        dataset_2,
        model="default",
        top_k: int = 5,
        rank_by: str | None = None,
        include_template: bool = False,
    ) -> tuple[FeatureGroup, FeatureGroup]:
        """The features that most distinguish each dataset of conversations from the other (a robust
        specificity effect weighted by what the favoured side is about by default, ``rank_by="specificity"``
        without the weighting, ``rank_by="frequency"`` the ranking before: docs/inspect.md)."""
        side_1, side_2 = self._backend.contrast(dataset_1, dataset_2, top_k, model, rank_by, include_template)
        return FeatureGroup(side_1), FeatureGroup(side_2)

    def attribute(self, messages, index: int, model="default"):
        """Which features drive the logit of the token at ``index`` of the conversation."""
        return self._backend.attribute(list(messages), index, model)

    def AutoSteer(self, specification: str, model="default", config=None) -> FeatureEdits:  # noqa: N802 (SDK name)
        """Edits with strengths for a plain-language goal, chosen by generating and scoring."""
        got = self._backend.auto_steer(specification, model, config=config)
        if isinstance(got, list):
            return FeatureEdits(got)
        return FeatureEdits([(Feature(f.index, f.uuid, f.label), v) for f, v in got.edits], got)

    def AutoConditional(self, specification: str, model="default", config=None):  # noqa: N802 (SDK name)
        """A condition group for "when X[, do Y]"; in-process the result also has ``.variant()``."""
        return self._backend.auto_conditional(specification, model, config=config)

    def generate_contrastive_stimulus(self, specification: str) -> tuple[list, list]:
        return self._backend.contrastive_stimulus(specification)


class ChatCompletions:
    def __init__(self, backend):
        self._backend = backend

    def create(
        self,
        messages,
        model="default",
        stream: bool = False,
        max_completion_tokens: int | None = 256,
        top_p: float = 0.9,
        temperature: float = 0.6,
        stop: str | list[str] | None = None,
        seed: int | None = 42,
        system_prompt: str | None = None,
    ):
        """A chat completion (``stream=True``: an iterator of chunks). ``model``: a name or a Variant."""
        messages = list(messages)
        if system_prompt:
            messages.insert(0, {"role": "system", "content": system_prompt})
        sampling = {
            "max_completion_tokens": 256 if max_completion_tokens is None else max_completion_tokens,
            "top_p": top_p,
            "temperature": temperature,
            "stop": stop,
            "seed": seed,
        }
        if stream:
            return self._backend.stream(messages, model, **sampling)
        return self._backend.complete(messages, model, **sampling)


class ChatAPI:
    def __init__(self, backend):
        self._backend = backend
        self.completions = ChatCompletions(backend)

    def logits(
        self, messages, model="default", top_k: int | None = 10, filter_vocabulary: list[str] | None = None
    ) -> LogitsResponse:
        """Logits of the next token, highest first."""
        return LogitsResponse(logits=self._backend.logits(list(messages), model, top_k, filter_vocabulary))


class ClassifiersAPI:
    """Interpretable classifiers on SAE features (steerlab's own; the goodfire SDK has none). Same dicts
    in-process and over HTTP (``/v1/classifiers``)."""

    def __init__(self, backend):
        self._backend = backend

    def list(self) -> list[dict]:
        """Classifiers that read this SAE: ``name``, ``kind``, ``pool``, ``shipped``."""
        return self._backend.classifier_list()

    def get(self, name: str, top: int = 20) -> dict:
        """One classifier: kind, pooling, threshold, hookpoint, SAE, its ``top`` largest ``weights`` (index,
        label, weight) and its training ``report``."""
        return self._backend.classifier_get(name, top)

    def score(self, name: str, texts, top: int = 5, tokens: bool = False) -> list[dict]:
        """Score texts (or conversations: lists of messages, read as their user turns): one dict per text
        with ``score``, ``flagged``, ``features`` (index, label, contribution), ``truncated``; with
        ``tokens``, each token's share of the logit (``tokens``) and ``bias``."""
        if isinstance(texts, str):
            texts = [texts]
        return self._backend.classifier_score(name, list(texts), top, tokens)

    def train(
        self,
        name: str,
        pos,
        neg,
        kind: str = "best",
        max_tokens: int = 256,
        max_features: int = 32,
        overwrite: bool = False,
        wait: bool = True,
        timeout: float | None = None,
    ) -> dict:
        """Train ``name`` on positive and negative texts; returns ``{name, kind, pool, report}``. Over HTTP
        it runs as a server job, followed until done (``wait=False``: the job as started, to follow with
        ``job(id)``); in-process it runs in this call."""
        body = {
            "name": name,
            "pos": list(pos),
            "neg": list(neg),
            "kind": kind,
            "max_tokens": max_tokens,
            "max_features": max_features,
            "overwrite": overwrite,
        }
        return self._backend.classifier_train(body, wait, timeout=timeout)

    def job(self, job_id: str) -> dict:
        """A training job started with ``wait=False`` (HTTP only): state, progress, result or error."""
        return self._backend.classifier_job(job_id)


class Client:
    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        *,
        model: str = "default",
        sae_path=None,
        db_path=None,
        device: str | None = None,
        dtype: str | None = None,
        lm=None,
        sae=None,
        store=None,
        sae_id: str | None = None,
        http_client=None,
    ):
        """In-process (no ``base_url``): ``model``/``sae_path``/``db_path`` pick what to load (default:
        the bundled model, its SAE and the database next to it), or pass loaded ``lm``/``sae``/``store``.
        Over HTTP: ``base_url`` of a steerlab server and an ``api_key`` (``http_client``: an httpx
        client to use, e.g. a test client)."""
        if base_url is not None:
            from steerlab.client_http import HTTPBackend

            self._backend = HTTPBackend(base_url, api_key, http_client=http_client)
        else:
            from steerlab.client_local import LocalBackend

            self._backend = LocalBackend(
                model,
                sae_path=sae_path,
                db_path=db_path,
                device=device,
                dtype=dtype,
                lm=lm,
                sae=sae,
                store=store,
                sae_id=sae_id,
            )
        self.features = FeaturesAPI(self._backend)
        self.chat = ChatAPI(self._backend)
        self.classifiers = ClassifiersAPI(self._backend)

    def variant(self, base_model: str = "default"):
        """A Variant whose bare feature indices get this client's SAE identity (in-process)."""
        from steerlab.steering.variant import Variant

        sae_id = getattr(self._backend, "sae_id", None)
        return Variant(base_model, sae_id=sae_id, labels=getattr(self._backend, "labels", None))
