"""Connecting to Ray: a local instance by default, a cluster when ``ray.address`` says so.

Under ``ray job submit`` the driver finds its cluster through ``RAY_ADDRESS``; locally a fresh
instance is started with the quiet, project-local settings below.

Token authentication (``RAY_AUTH_MODE=token``, on in every cluster configuration of ``infra/``):
the token comes from the environment only — ``RAY_AUTH_TOKEN`` or a file named by
``RAY_AUTH_TOKEN_PATH`` (or Ray's default ``~/.ray/auth_token`` when ``RAY_AUTH_MODE=token`` is set).
A driver joining a cluster with a token in its environment turns token mode on by itself
(:func:`ray_auth_mode`); a local instance stays without authentication unless the environment
asks for it. The token is never put into the runtime environment (the dashboard shows it) nor
into a message.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Mapping

import ray

from tasks.console import say
from videolstm.config import BenchmarkConfig
from videolstm.store import storage as st

log = logging.getLogger(__name__)

#: Environment every Ray process of ours gets (also passed to workers via runtime_env).
RAY_ENV_DEFAULTS = {
    "RAY_AUTH_MODE": "disabled",  # do not write ~/.ray/auth_token for a local instance
    "RAY_USAGE_STATS_ENABLED": "0",
    # Each ray.train.report waits for the controller's poll (2 s by default); 0.2 s cuts a
    # 20-report fit from 60 s to 19 s on this class of machine (docs/stack-notes.md).
    "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.2",
    "RAY_TRAIN_ENABLE_V2_MIGRATION_WARNINGS": "0",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "TQDM_MININTERVAL": "5",
}


@contextlib.contextmanager
def _loopback_node() -> Iterator[None]:
    """Keep a local instance's node address at 127.0.0.1 while it starts.

    ``ray.init(_node_ip_address="127.0.0.1")`` alone is not enough: Ray replaces a loopback
    node address by the machine's outward address (so that other nodes could join), and its
    GCS, raylet, workers and agents then listen on every interface (``::``/``0.0.0.0``). Ray
    keeps the loopback address when multi-node clusters are disabled (its
    ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER`` switch, read at import); every server of a node whose
    address is loopback listens on loopback only. The switch is set for the start of this
    instance only (the processes it spawns inherit it), so joining a cluster later still works.
    """
    from ray._private import ray_constants

    name = ray_constants.ENABLE_RAY_CLUSTERS_ENV_VAR
    saved_flag, saved_env = ray_constants.ENABLE_RAY_CLUSTER, os.environ.get(name)
    ray_constants.ENABLE_RAY_CLUSTER = False
    os.environ[name] = "0"
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = saved_flag
        if saved_env is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = saved_env


def is_loopback_address(address: str) -> bool:
    """True for ``127.x.y.z:port`` / ``localhost:port`` (optionally ``ray://``), not ``auto``."""
    host = address.split("://", 1)[-1].rsplit(":", 1)[0]
    return host == "localhost" or host.startswith("127.")


#: Where a driver finds the cluster's token (Ray reads them itself; names only, never values).
RAY_TOKEN_SOURCES = ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")


def ray_auth_mode(address: str | None, environ: Mapping[str, str]) -> str:
    """The ``RAY_AUTH_MODE`` this process uses: ``"token"`` or ``"disabled"``.

    Joining a cluster (``address`` set and not ``local``) with a token in the environment
    (``RAY_AUTH_TOKEN`` or ``RAY_AUTH_TOKEN_PATH``) means token mode, whatever a blanket default
    such as the Makefile's ``RAY_AUTH_MODE=disabled`` says: the token was given to be used. Else an
    explicit ``RAY_AUTH_MODE`` is kept (``token`` with Ray's default token file), and a new local
    instance runs without authentication (it listens on loopback only).
    """
    joining = bool(address) and address != "local"
    if joining and any(environ.get(name) for name in RAY_TOKEN_SOURCES):
        return "token"
    explicit = (environ.get("RAY_AUTH_MODE") or "").strip().lower()
    return explicit if explicit in ("token", "disabled") else RAY_ENV_DEFAULTS["RAY_AUTH_MODE"]


def _use_auth_mode(mode: str) -> None:
    """Set ``RAY_AUTH_MODE`` for this process and the processes it starts.

    Ray's C++ config reads the variable once; after a change it is re-read (as Ray's own
    ``ray start`` does when it turns token mode on) and the token cache is dropped, so a token
    given in this process's environment is loaded again.
    """
    previous = os.environ.get("RAY_AUTH_MODE")
    os.environ["RAY_AUTH_MODE"] = mode
    if mode == previous or "token" not in (mode, previous):
        return  # unchanged, or unset -> disabled (Ray's C++ default already)
    from ray._raylet import AuthenticationTokenLoader, Config

    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()


def runtime_env_vars(environ: Mapping[str, str]) -> dict[str, str]:
    """What the driver passes to every Ray worker (``runtime_env.env_vars``): the quiet defaults
    and the endpoints, never a credential — the dashboard and the jobs API show a runtime
    environment to whoever can read them. Cluster nodes get their credentials from their own
    environment (a Kubernetes Secret, compose's env file, the launcher's file mounts)."""
    env_vars = {k: environ[k] for k in RAY_ENV_DEFAULTS if k in environ}
    for key in ("AWS_ENDPOINT_URL", "MLFLOW_TRACKING_URI"):
        if key in environ:
            env_vars[key] = environ[key]
    return env_vars


def init_ray(config: BenchmarkConfig) -> None:
    """Start or join Ray once per process, as ``config.ray`` says."""
    address = config.ray.address or os.environ.get("RAY_ADDRESS")
    if not ray.is_initialized():
        _use_auth_mode(ray_auth_mode(address, os.environ))
    for key, value in RAY_ENV_DEFAULTS.items():
        os.environ.setdefault(key, value)
    if ray.is_initialized():
        return
    kwargs: dict = {"runtime_env": {"env_vars": runtime_env_vars(os.environ)}, "log_to_driver": True}
    if address:
        log.info("connecting to the Ray cluster at %s", address)
        say(f"Ray: connecting to the Ray cluster at {address}")
        # Ray rewrites a loopback address to the machine's outward one unless multi-host
        # clusters are off; a cluster started on 127.0.0.1 only answers there.
        with _loopback_node() if is_loopback_address(address) else contextlib.nullcontext():
            try:
                context = ray.init(address=address, **kwargs)
            except ConnectionError as exc:
                raise ConnectionError(f"{exc}. {_auth_hint(os.environ)}") from exc
    else:
        # address="local": always a new instance, never a stale cluster recorded in /tmp/ray.
        # A local instance listens on loopback only. The dashboard process is kept: Ray Train
        # queries its state API (without it the controller logs "Failed to query ... state").
        with _loopback_node():
            context = ray.init(address="local", num_cpus=config.ray.num_cpus, _node_ip_address="127.0.0.1", dashboard_host="127.0.0.1", **kwargs)
    resources = ray.cluster_resources()
    log.info("Ray: %s CPUs, %s GPUs, %d node(s)", resources.get("CPU", 0), resources.get("GPU", 0), len(ray.nodes()))
    dashboard = f", dashboard http://{context.dashboard_url}" if getattr(context, "dashboard_url", None) else ""
    say(
        f"Ray: {'a local instance' if not address else 'connected'}, {resources.get('CPU', 0):g} CPUs, "
        f"{resources.get('GPU', 0):g} GPUs, {len(ray.nodes())} node(s){dashboard}"
    )


def worker_config(config: BenchmarkConfig) -> dict:
    """``config`` as JSON for Ray workers, a relative local ``storage.root`` made absolute.

    A worker's working folder is not the driver's (Ray Train runs each trainer in a folder under
    the Ray session): there the embedded default ``runs/embedded`` named another folder, and every
    registered model's end-to-end model was "not logged" for want of the stages it packs."""
    root = st.absolute(config.storage.root)
    if root != config.storage.root:
        config = config.model_copy(update={"storage": config.storage.model_copy(update={"root": root})})
    return config.model_dump(mode="json")


def _auth_hint(environ: Mapping[str, str]) -> str:
    """What to check when joining a cluster failed, given how this process authenticates."""
    if environ.get("RAY_AUTH_MODE") == "token":
        given = next((name for name in RAY_TOKEN_SOURCES if environ.get(name)), "~/.ray/auth_token")
        return f"This driver used token authentication with the token from {given}: check that it is the cluster's token (infra/README.md, 'Credentials')"
    return (
        "This driver sent no Ray token: a cluster with token authentication (the default of every "
        "configuration in infra/) refuses it. Set RAY_AUTH_TOKEN (or RAY_AUTH_TOKEN_PATH) to the cluster's token"
    )


def ingest_options():
    """Ray Data options for Ray Train's dataset shards: Ray Train's defaults less the deprecated field.

    ``ray.train.DataConfig`` without ``execution_options`` copies the driver's options including
    ``exclude_resources``, whose setter warns that it is deprecated (once per trainer, in every
    trainer's dataset manager); passing the same options without it avoids that.
    """
    from ray.data import DataContext, ExecutionOptions

    current = DataContext.get_current().execution_options
    return ExecutionOptions(resource_limits=current.resource_limits, preserve_order=current.preserve_order, verbose_progress=current.verbose_progress)
