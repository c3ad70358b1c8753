"""Joining a Ray cluster: ``--ray ADDRESS`` on the CLI.

``ADDRESS`` is ``HOST:PORT`` of a running head (``ray start --head``), ``auto`` (the cluster this
machine belongs to), or ``local[:N]``: start a private cluster in this process with N worker CPUs
(default 2), gone when the command ends. An address that does not answer fails in seconds with one
line naming ``--ray``, never Ray's own minute-long retry loop.
"""

from __future__ import annotations

import logging
import os
import socket
import sys

from steerlab.errors import InvalidInputError

CONNECT_TIMEOUT_S = 3.0


def parse_address(address: str) -> tuple[str, int | None]:
    """``("local", N)`` for a private cluster, ``("auto", None)``, or ``(HOST:PORT, None)``."""
    text = address.strip()
    if text == "local" or text.startswith("local:"):
        count = text.partition(":")[2] or "2"
        if not count.isdigit() or int(count) < 1:
            raise InvalidInputError(f"local:N needs N >= 1 worker CPUs, got {address!r}", field="--ray")
        return "local", int(count)
    if text == "auto":
        return "auto", None
    host, _, port = text.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise InvalidInputError(
            f"expected HOST:PORT of a Ray head, 'auto' or 'local[:N]', got {address!r}", field="--ray"
        )
    return f"{host}:{port}", None


def check_answers(address: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """Raise a one-line InvalidInputError unless something accepts TCP connections at ``HOST:PORT``."""
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except OSError as err:
        raise InvalidInputError(
            f"no Ray cluster answers at {address} ({err.strerror or type(err).__name__}); "
            "start one with 'ray start --head' or pass --ray local",
            field="--ray",
        ) from None


def check_address(address: str) -> None:
    """Before any slow work: a malformed address, or a head that does not answer, is a one-line error."""
    target, _ = parse_address(address)
    if target not in ("local", "auto"):
        check_answers(target)


def connect(address: str) -> None:
    """Join (or with ``local[:N]`` start) the cluster; a second call in the same process is a no-op."""
    target, cpus = parse_address(address)
    if target == "local":
        # Ray 2.60 turns token authentication on for a new local cluster and warns that it did unless the
        # mode was chosen explicitly: choose it (the same secure default) so a clean run prints nothing.
        # Ray reads the mode when it is imported (set after that, driver and cluster would disagree).
        if "ray" not in sys.modules:
            os.environ.setdefault("RAY_AUTH_MODE", "token")
    import ray

    if ray.is_initialized():
        return
    quiet = {"logging_level": logging.WARNING, "log_to_driver": False, "configure_logging": True}
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if target == "local":
        ray.init(num_cpus=cpus, include_dashboard=False, **quiet)
        return
    if target != "auto":
        check_answers(target)
    try:
        ray.init(address=target, **quiet)
    except (ConnectionError, RuntimeError, ValueError) as err:
        raise InvalidInputError(
            f"cannot join the Ray cluster at {address}: {str(err).splitlines()[0]}", field="--ray"
        ) from None


def disconnect() -> None:
    import ray

    if ray.is_initialized():
        ray.shutdown()
