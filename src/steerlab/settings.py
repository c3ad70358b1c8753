"""Every ``STEERLAB_*`` setting in one object, so CLI, server, client and the layers beneath them agree.

``steerlab`` reads the environment once at start-up (:func:`get_settings`): a variable that looks like
ours but is not one is warned about with the closest known name, and a value that does not parse stops
the program with one line naming the variable. Command-line flags go on top through
:func:`load_settings`, which keeps the environment's value for every flag that was not given.
``docs/settings.md`` lists the variables; ``scripts/write_settings_doc.py`` writes its table from here.
"""

from __future__ import annotations

import difflib
import logging
import os
import threading
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from steerlab.errors import InvalidInputError

log = logging.getLogger("steerlab.settings")

ENV_PREFIX = "STEERLAB_"
OUTSIDE_THE_RUNTIME = {
    "STEERLAB_TORCH": "install.sh only: the pip requirement for PyTorch (default torch==2.13.0, the CPU wheel; "
    "set e.g. STEERLAB_TORCH=torch on a CUDA machine).",
    "STEERLAB_SCREENSHOTS": "tests/e2e only: the folder the web UI tests save screenshots in.",
}
"""Variables read by the installer or the tests, never by steerlab itself: known, so never warned about."""


class SettingsError(InvalidInputError):
    """A STEERLAB_* variable (or the flag standing for it) whose value does not parse; ``field`` names it."""


class Settings(BaseSettings):
    """Each field ``name`` is read from ``STEERLAB_NAME`` (any case); flags of ``steerlab serve`` and
    friends override the fields they stand for."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid")

    # -- where things live, what runs the model
    home: Path = Field(
        default=Path.home() / ".cache" / "steerlab",
        description="Where converted models, corpora, activation shards, checkpoints and caches live.",
    )
    device: str = Field(default="cpu", description="Torch device of the model: cpu, cuda or cuda:N (flag --device).")
    dtype: Literal["float32", "bfloat16", "float16"] = Field(
        default="float32", description="Model dtype (flag --dtype); bfloat16 is slower on CPUs without bf16 units."
    )
    fast_decode: bool = Field(
        default=True,
        description="Decode Llama-architecture models on the CPU in our own loop (engine/fast_decode.py); "
        "0 uses the model's own forward.",
    )
    packed_weights: bool = Field(
        default=True,
        description="Build and use our CPU kernels (models/cpu_kernels.py) for packed linear layers and "
        "RMSNorm; 0 keeps PyTorch's own ops.",
    )

    # -- feature search
    query_encoder: Literal["int8", "fp32", "torch"] = Field(
        default="int8",
        description="How search queries are embedded: int8 or fp32 ONNX Runtime graph, or eager PyTorch; "
        "onnx means int8, an unknown value is warned about and int8 used.",
    )
    query_encoder_threads: int | None = Field(
        default=None,
        description="Threads of the ONNX query encoder (at least 1); unset: up to two of this machine's cores.",
    )

    # -- feature labeling through any OpenAI-compatible chat endpoint (steerlab features label --backend openai)
    explainer_base_url: str | None = Field(
        default=None, description="OpenAI-compatible endpoint root incl. version, e.g. https://api.openai.com/v1."
    )
    explainer_model: str = Field(default="gpt-4o-mini", description="Chat model that writes and scores labels.")
    explainer_api_key: SecretStr | None = Field(default=None, description="Bearer key for the endpoint, if any.")
    explainer_timeout_s: float = Field(default=30.0, gt=0, description="Per-request timeout in seconds.")
    explainer_max_retries: int = Field(default=3, ge=0, description="Retries per request (exponential backoff).")
    explainer_concurrency: int = Field(default=8, ge=1, description="Requests in flight at once.")

    # -- the investigator (steerlab investigate): any OpenAI-compatible chat model that supports tool calls
    investigator_base_url: str | None = Field(
        default=None,
        description="OpenAI-compatible endpoint root incl. version for steerlab investigate, e.g. "
        "https://api.openai.com/v1 (flag --base-url).",
    )
    investigator_model: str = Field(
        default="gpt-4o-mini", description="Chat model that runs the investigation; it must support tool calls."
    )
    investigator_api_key: SecretStr | None = Field(
        default=None, description="Bearer key for the investigator's endpoint, if any (flag --api-key)."
    )
    investigator_timeout_s: float = Field(default=120.0, gt=0, description="Per chat request timeout in seconds.")
    investigator_max_steps: int = Field(
        default=12, ge=1, le=1000, description="Chat completions that may call tools per investigation (--max-steps)."
    )
    investigator_max_tokens: int = Field(
        default=60_000,
        ge=1,
        description="Prompt + completion tokens one investigation may spend, as the endpoint reports them "
        "(--max-tokens); then the model is asked for its report.",
    )

    # -- steerlab serve
    host: str = Field(default="127.0.0.1", description="Interface to listen on, 0.0.0.0 for everyone (flag --host).")
    port: int = Field(default=8000, ge=1, le=65535, description="Port to listen on (flag --port).")
    open_mode: bool = Field(
        default=False,
        description="No API keys needed: only for a machine you alone use; logged loudly at start (flag --open).",
    )
    db_path: Path | None = Field(
        default=None,
        description="Server database (API keys, saved variants); unset: STEERLAB_HOME/server.db (flag --server-db).",
    )
    classifiers_dir: Path | None = Field(
        default=None,
        description="Where trained classifiers are saved (a folder per SAE, then per name); unset: "
        "STEERLAB_HOME/classifiers. Those shipped with a bundled SAE are found after these.",
    )
    finetune_dir: Path | None = Field(
        default=None,
        description="Where the web UI and GET /v1/finetune/runs look for fine-tuning runs (each a folder "
        "written by `steerlab finetune --out DIR/NAME`); nothing outside it is read. Unset: STEERLAB_HOME/finetune.",
    )
    header_timeout_s: float = Field(
        default=10.0,
        gt=0,
        le=3600,
        description="Seconds a client has to send a whole request head (line and headers) once it connects "
        "or starts its next request; slower connections are closed (a slowloris holds none for long).",
    )
    max_connections: int = Field(
        default=1000,
        ge=1,
        description="Open connections (and requests in flight) at once; past it new requests get 503.",
    )
    public_metrics: bool = Field(
        default=False,
        description="Serve /metrics without an API key (flag --public-metrics); off: it needs a key like "
        "every other route (open mode needs none).",
    )
    cors_origins: list[str] = Field(
        default_factory=list, description='Origins allowed by CORS, as JSON (["https://a.example"]); empty: none.'
    )
    requests_per_minute: int = Field(default=600, ge=1, description="Requests per minute per API key.")
    tokens_per_minute: int = Field(
        default=200_000, ge=1, description="Prompt + completion tokens per minute per API key."
    )
    max_body_bytes: int = Field(default=2_000_000, ge=1024, description="Largest request body accepted.")
    max_messages: int = Field(default=256, ge=1, description="Most messages in one conversation.")
    max_prompt_tokens: int = Field(default=4096, ge=1, description="Most prompt tokens in one request.")
    max_completion_tokens: int = Field(default=1024, ge=1, description="Most tokens one request may generate.")
    max_dataset_conversations: int = Field(
        default=512, ge=1, description="Most conversations in one dataset request (contrast, AutoSteer)."
    )
    max_analysis_tokens: int = Field(
        default=4096,
        ge=1,
        description="Most tokens one analysis request runs through the model: inspect, compute-features and "
        "compute-logits count the conversation, contrast both datasets together (more: 413). Charged to the "
        "key's tokens/min; ~4 ms a token on 2 CPU cores, shared with decoding (STEERLAB_ANALYSIS_SHARE).",
    )
    max_attribution_tokens: int = Field(
        default=256,
        ge=1,
        description="Most tokens before the target of one logit attribution (more: 413). Its backward pass "
        "needs the whole forward at once, so it holds the model in one piece: this bounds that hold "
        "(~1 s at 256 tokens on 2 CPU cores).",
    )
    max_classifier_train_tokens: int = Field(
        default=1_000_000,
        ge=1,
        description="Most tokens one classifier training job (POST /v1/classifiers) reads through the model, "
        "positive and negative texts together (more: 413). The job runs in the background, a batch of "
        "STEERLAB_ANALYSIS_CHUNK_TOKENS at a time, each charged to the key's tokens/min as it goes (it waits "
        "for room rather than failing).",
    )
    classifier_jobs: int = Field(
        default=1,
        ge=1,
        description="Classifier training jobs that may run at once on a server; one more is answered 429 + "
        "Retry-After.",
    )
    analysis_chunk_tokens: int = Field(
        default=64,
        ge=1,
        description="Tokens per forward of a chunked analysis (inspect, contrast, logits): the longest piece "
        "that holds the model (~0.2-0.4 s on 2 CPU cores); decode steps run between pieces. Results do not "
        "depend on it.",
    )
    steering_unit: Literal["calibrated", "quantile"] = Field(
        default="calibrated",
        description="What a nudge or pin value of 1.0 means. calibrated (Ember's range): nudge 1.0 moves the "
        "residual by the SAE's calibrated share of its norm, about where the feature's concept takes over; "
        "0.5-1.0 visibly changes a reply. quantile: the pre-calibration unit, 1.0 = the feature's typical "
        "strong activation (its 0.99 quantile; 3-8x weaker). Readings and conditions are in quantile units "
        "either way (docs/steering.md).",
    )
    massive_factor: float = Field(
        default=10.0,
        ge=0,
        description="Residual-stream tokens whose norm is over this many times their batch's median are attention "
        "sinks (massive activations), not text: the SAE trainer leaves them out of its loss, input scale and "
        "training-time FVU, sae eval out of FVU, L0 and dead counts, the feature database builder gives them no "
        "activations, and harvest manifests count them (massive_tokens); harvest shards keep them. 0 keeps every "
        "token (the behaviour before; activations/massive.py).",
    )
    analysis_share: float = Field(
        default=0.5,
        gt=0,
        le=1,
        description="Share of the model's time analyses get while chats are decoding: after an analysis held "
        "the model for t seconds, the engine decodes for t * (1 - share) / share before the next analysis "
        "piece. 1: one decode step between pieces.",
    )
    guard_min_tokens: int = Field(
        default=16,
        ge=1,
        description="A classifier condition (a guard) run on bare token ids, whose prompt is unknown, holds only "
        "once the classifier has pooled at least this many tokens (the chat template's fixed prefix not counted): "
        "the mean of a handful of tokens is noise, and a sticky condition that fired on it would stay on. Chats "
        "read the complete user turn instead (STEERLAB_GUARD_READS).",
    )
    guard_reads: Literal["turn", "prompt", "conversation"] = Field(
        default="turn",
        description="What a classifier condition (a guard) reads of a chat: turn, the latest user message (as the "
        "classifier was trained: one user turn), scored once it is complete (at the prompt's last token) and then "
        "after every reply token, the reply joining the pool; prompt, the latest user message only, one score at "
        "the prompt's end (the reply is never read); conversation, every message of the conversation instead "
        "(then one flagged turn keeps later turns flagged until the chat is cleared).",
    )
    max_variants_per_key: int = Field(
        default=1000, ge=1, description="Most saved variants one API key may keep; one more is answered 429."
    )
    max_variant_bytes_per_key: int = Field(
        default=10_000_000,
        ge=1024,
        description="Most bytes of saved controller JSON one API key may keep; over it a save is answered 429.",
    )
    max_batch: int = Field(default=32, ge=1, description="Sequences decoded together by the engine (flag --max-batch).")
    max_queue: int = Field(default=512, ge=1, description="Waiting requests before 503 + Retry-After.")
    replicas: int = Field(
        default=0,
        ge=0,
        le=1024,
        description="Engine replicas as Ray actors behind one server (flag --replicas; 0: decode in the server "
        "process). Without ray_address they run on a private local Ray cluster.",
    )
    ray_address: str | None = Field(
        default=None,
        description="HOST:PORT of a Ray cluster's head (or 'auto') for serve's replicas (flag --ray; docs/cluster.md).",
    )
    worker_threads: int = Field(
        default=256,
        ge=8,
        le=4096,
        description="Threads for synchronous routes. Requests that need the model (inspect, attribution) wait "
        "for it on these threads; with fewer threads than such waiters, a millisecond search waits behind them.",
    )
    autosteer_concurrency: int = Field(
        default=1, ge=1, description="AutoSteer/AutoConditional searches run at once; one more gets 503 + Retry-After."
    )
    max_autosteer_tokens: int = Field(
        default=20_000,
        ge=1,
        description="Most tokens one AutoSteer-family request (auto-edits, auto-conditional, contrastive "
        "dataset, /v1/autosteer) may run through the model, as estimated from its search (quick: ~3,300, "
        "thorough: ~8,800; more: 413). Reserved from the key's tokens/min before it starts.",
    )
    autosteer_effort: Literal["quick", "thorough"] = Field(
        default="quick",
        description="quick fits the goodfire SDK's 60 s timeout on a CPU; thorough tries twice the edits.",
    )

    @field_validator("query_encoder", mode="before")
    @classmethod
    def _known_precision(cls, value: object) -> object:
        """A speed knob: a wrong value costs speed, not the search, so it is warned about, not refused."""
        if not isinstance(value, str):
            return value
        value = value.strip().lower()
        if value == "onnx":
            return "int8"
        if value not in ("int8", "fp32", "torch"):
            log.warning("%sQUERY_ENCODER=%r is not one of int8, fp32, torch; using int8", ENV_PREFIX, value)
            return "int8"
        return value

    @field_validator("query_encoder_threads", mode="before")
    @classmethod
    def _thread_count(cls, value: object) -> object:
        """At least one thread; a value that is not a whole number is warned about and the default used."""
        if value is None or value == "":
            return None
        try:
            return max(1, int(value))
        except (TypeError, ValueError):
            log.warning("%sQUERY_ENCODER_THREADS=%r is not a whole number; using the default", ENV_PREFIX, value)
            return None

    @property
    def models_dir(self) -> Path:
        return self.home / "models"

    def resolved_finetune_dir(self) -> Path:
        """The folder of fine-tuning runs the server shows: ``finetune_dir``, else ``finetune`` under ``home``."""
        return self.finetune_dir or self.home / "finetune"

    def resolved_db_path(self) -> Path:
        """The server database: ``db_path``, else ``server.db`` under ``home``."""
        return self.db_path or self.home / "server.db"


def variable_name(field: str) -> str:
    return f"{ENV_PREFIX}{field.upper()}"


def known_variables() -> list[str]:
    return [variable_name(field) for field in Settings.model_fields] + list(OUTSIDE_THE_RUNTIME)


def load_settings(**flags: object) -> Settings:
    """The environment's settings with the given flags on top; a flag that is None was not given, so the
    environment's value (or the default) stays. Raises :class:`SettingsError` naming the variable."""
    given = {field: value for field, value in flags.items() if value is not None}
    try:
        return Settings(**given)
    except ValidationError as err:
        problems = []
        for error in err.errors():
            field = str(error["loc"][0])
            source = f"--{field.replace('_', '-')}" if field in given else variable_name(field)
            problems.append((source, f"{error.get('input')!r} is not valid: {error['msg']}"))
        if len(problems) == 1:
            raise SettingsError(problems[0][1], field=problems[0][0]) from None
        raise SettingsError("; ".join(f"{source}={message}" for source, message in problems)) from None


_warned: set[str] = set()


def warn_unknown_variables(environment: dict[str, str]) -> None:
    """Warn once per process about each STEERLAB_* variable that steerlab does not read (a typo is otherwise
    silent), naming the closest known one."""
    known = known_variables()
    unknown = sorted(
        name for name in (n.upper() for n in environment) if name.startswith(ENV_PREFIX) and name not in known
    )
    for name in unknown:
        if name in _warned:
            continue
        _warned.add(name)
        # Compared without the prefix every name shares, which would make any two look alike.
        suffixes = {known_name.removeprefix(ENV_PREFIX): known_name for known_name in known}
        close = difflib.get_close_matches(name.removeprefix(ENV_PREFIX), suffixes, n=1, cutoff=0.6)
        hint = f"; did you mean {suffixes[close[0]]}?" if close else "; see docs/settings.md for the known ones"
        log.warning("unknown environment variable %s is ignored%s", name, hint)


_lock = threading.Lock()
_current: tuple[tuple[tuple[str, str], ...], Settings] | None = None


def _our_environment() -> tuple[tuple[str, str], ...]:
    return tuple(sorted((k, v) for k, v in os.environ.items() if k.upper().startswith(ENV_PREFIX)))


def get_settings() -> Settings:
    """The process-wide settings, read from the environment on first use and kept; read again only after a
    STEERLAB_* variable changed (as tests change them). What :func:`use_settings` installed wins until then."""
    global _current
    environment = _our_environment()
    with _lock:
        if _current is None or _current[0] != environment:
            warn_unknown_variables(dict(environment))
            _current = (environment, load_settings())
        return _current[1]


def use_settings(settings: Settings) -> Settings:
    """Make ``settings`` (the environment plus a command's flags) the object every layer reads."""
    global _current
    with _lock:
        _current = (_our_environment(), settings)
    return settings
