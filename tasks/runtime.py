"""Connecting to Ray: a local instance by default, a cluster when ``ray.address`` says so.

Under ``ray job submit`` the driver finds its cluster through ``RAY_ADDRESS``; locally a fresh
instance is started with the quiet, project-local settings below.
"""

from __future__ import annotations

import logging
import os

import ray

from videolstm.config import BenchmarkConfig

log = logging.getLogger(__name__)

#: Environment every Ray process of ours gets (also passed to workers via runtime_env).
RAY_ENV_DEFAULTS = {
    "RAY_AUTH_MODE": "disabled",  # do not write ~/.ray/auth_token for a local instance
    "RAY_USAGE_STATS_ENABLED": "0",
    # Each ray.train.report waits for the controller's poll (2 s by default); 0.2 s cuts a
    # 20-report fit from 60 s to 19 s on this class of machine (see NOTES.md).
    "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.2",
    "RAY_TRAIN_ENABLE_V2_MIGRATION_WARNINGS": "0",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "TQDM_MININTERVAL": "5",
}


def init_ray(config: BenchmarkConfig) -> None:
    """Start or join Ray once per process, as ``config.ray`` says."""
    for key, value in RAY_ENV_DEFAULTS.items():
        os.environ.setdefault(key, value)
    if ray.is_initialized():
        return
    address = config.ray.address or os.environ.get("RAY_ADDRESS")
    env_vars = {k: os.environ[k] for k in RAY_ENV_DEFAULTS}
    for key in ("AWS_ENDPOINT_URL", "MLFLOW_TRACKING_URI"):
        if key in os.environ:
            env_vars[key] = os.environ[key]
    kwargs: dict = {"runtime_env": {"env_vars": env_vars}, "log_to_driver": True}
    if address:
        log.info("connecting to the Ray cluster at %s", address)
        ray.init(address=address, **kwargs)
    else:
        # A local instance listens on loopback only. The dashboard process is kept: Ray Train
        # queries its state API (without it the controller logs "Failed to query ... state").
        ray.init(num_cpus=config.ray.num_cpus, _node_ip_address="127.0.0.1", dashboard_host="127.0.0.1", **kwargs)
    resources = ray.cluster_resources()
    log.info("Ray: %s CPUs, %s GPUs, %d node(s)", resources.get("CPU", 0), resources.get("GPU", 0), len(ray.nodes()))
