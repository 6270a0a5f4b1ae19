"""Ray runtime helpers: which addresses are joined on loopback."""

from __future__ import annotations

import pytest

from tasks.runtime import is_loopback_address


@pytest.mark.parametrize("address", ["127.0.0.1:6379", "127.0.1.1:1234", "localhost:6379", "ray://127.0.0.1:10001"])
def test_loopback_addresses_are_recognised(address):
    assert is_loopback_address(address)


@pytest.mark.parametrize("address", ["auto", "10.0.0.5:6379", "head.cluster.local:6379", "ray://10.1.2.3:10001"])
def test_other_addresses_are_joined_as_given(address):
    assert not is_loopback_address(address)


# ----------------------------------------------------------------------------- token authentication (issue 27)

from tasks.runtime import RAY_ENV_DEFAULTS, _auth_hint, ray_auth_mode  # noqa: E402


@pytest.mark.parametrize("address", ["auto", "10.0.0.5:6379", "127.0.0.1:6379", "ray://10.1.2.3:10001"])
@pytest.mark.parametrize("source", ["RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"])
def test_joining_a_cluster_with_a_token_in_the_environment_uses_token_mode(address, source):
    assert ray_auth_mode(address, {source: "x" * 32}) == "token"
    # a blanket default (the Makefile exports RAY_AUTH_MODE=disabled) does not discard a given token
    assert ray_auth_mode(address, {source: "x" * 32, "RAY_AUTH_MODE": "disabled"}) == "token"


def test_without_a_token_the_explicit_mode_or_no_authentication_is_kept():
    assert ray_auth_mode("auto", {}) == "disabled"
    assert ray_auth_mode("auto", {"RAY_AUTH_MODE": "token"}) == "token"  # Ray's default ~/.ray/auth_token
    assert ray_auth_mode("auto", {"RAY_AUTH_TOKEN": ""}) == "disabled"  # an empty value is no token
    assert ray_auth_mode("auto", {"RAY_AUTH_MODE": "bogus"}) == "disabled"


@pytest.mark.parametrize("address", [None, "", "local"])
def test_a_new_local_instance_stays_credential_free(address):
    # the embedded default: a local instance on loopback, no token file written to ~/.ray
    assert RAY_ENV_DEFAULTS["RAY_AUTH_MODE"] == "disabled"
    assert ray_auth_mode(address, {"RAY_AUTH_TOKEN": "x" * 32}) == "disabled"
    assert ray_auth_mode(address, {"RAY_AUTH_MODE": "token"}) == "token"  # unless asked for


def test_the_connection_hint_names_the_token_source_but_never_its_value():
    token = "tok-" + "7" * 28
    hint = _auth_hint({"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token})
    assert "RAY_AUTH_TOKEN" in hint and token not in hint
    assert "~/.ray/auth_token" in _auth_hint({"RAY_AUTH_MODE": "token"})
    assert "sent no Ray token" in _auth_hint({"RAY_AUTH_MODE": "disabled"})


def test_the_runtime_environment_never_carries_a_credential():
    # runtime_env env_vars are shown by the dashboard and the jobs API
    from tasks.runtime import runtime_env_vars
    from videolstm.messages import SECRET_ENV_NAME

    environ = {
        **RAY_ENV_DEFAULTS,
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": "t" * 32,
        "MLFLOW_TRACKING_USERNAME": "u",
        "MLFLOW_TRACKING_PASSWORD": "p" * 12,
        "MLFLOW_TRACKING_URI": "http://mlflow:5000",
        "AWS_SECRET_ACCESS_KEY": "s" * 40,
        "PREFECT_API_AUTH_STRING": "a:b" * 5,
    }
    env_vars = runtime_env_vars(environ)
    assert env_vars["RAY_AUTH_MODE"] == "token" and env_vars["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    assert not [k for k in env_vars if SECRET_ENV_NAME.fullmatch(k)]
    assert not {"t" * 32, "p" * 12, "s" * 40} & set(env_vars.values())


def test_workers_get_the_storage_root_absolute_and_everything_else_as_is(tmp_path, monkeypatch):
    from tasks.runtime import worker_config
    from videolstm.config import load_config

    monkeypatch.chdir(tmp_path)
    config = load_config(None, **{"storage.root": "runs/embedded", "train.epochs": 3})
    shipped = worker_config(config)
    assert shipped["storage"]["root"] == str(tmp_path / "runs" / "embedded")
    assert {k: v for k, v in shipped.items() if k != "storage"} == {k: v for k, v in config.model_dump(mode="json").items() if k != "storage"}
    for root in (str(tmp_path / "abs"), "s3://bucket/root"):
        assert worker_config(config.model_copy(update={"storage": config.storage.model_copy(update={"root": root})}))["storage"]["root"] == root
