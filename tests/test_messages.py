"""Untrusted values in messages: bounded whatever their size or depth, URI credentials redacted."""

from __future__ import annotations

import time

import pytest

from videolstm.messages import MAX_REPR, redact, redact_uri, short_repr, shorten, userinfo

SECRET = "Sentinel-Xy7"


@pytest.mark.parametrize(
    "text, kept",
    [
        (f"https://alice:{SECRET}@mlflow.example:5000/api", "https://***@mlflow.example:5000/api"),
        (f"https://{SECRET}@github.com/org/repo.git", "https://***@github.com/org/repo.git"),  # token only
        (f"https://:{SECRET}@host/x", "https://***@host/x"),
        (f"https://alice:pass {SECRET}@host/x", "https://***@host/x"),  # a password with a space
        (f"https://alice:p@ss{SECRET}@host/x", "https://***@host/x"),  # '@' inside the password
        (
            f"s3://bucket/UCF101.rar?X-Amz-Credential=AKIA/{SECRET}&X-Amz-Signature={SECRET}&X-Amz-Expires=60",
            "s3://bucket/UCF101.rar?X-Amz-Credential=***&X-Amz-Signature=***&X-Amz-Expires=60",
        ),
        (f"https://h/f.zip?sig={SECRET}&sv=2020", "https://h/f.zip?sig=***&sv=2020"),  # Azure SAS
        (f"https://h/f?x-amz-security-token={SECRET}", "https://h/f?x-amz-security-token=***"),
    ],
)
def test_redact_removes_every_form_of_uri_credential(text, kept):
    line = f"downloading {text} failed"
    assert redact(line) == f"downloading {kept} failed"
    assert SECRET not in redact_uri(text)


def test_redact_finds_uris_inside_json_and_leaves_plain_text_alone():
    params = f'["https://a:{SECRET}@h/x", "s3://bucket/key", "user@example.com"]'
    assert SECRET not in redact(params) and '"s3://bucket/key"' in redact(params) and "user@example.com" in redact(params)
    assert redact("storage.root=runs/embedded, epochs=10") == "storage.root=runs/embedded, epochs=10"


def test_redact_uri_keeps_what_is_not_secret():
    assert redact_uri("https://host:8443/path/UCF101.rar?version=2#frag") == "https://host:8443/path/UCF101.rar?version=2#frag"
    assert redact_uri("not a uri") == "not a uri"


@pytest.mark.parametrize(
    "uri, expected",
    [
        ("https://alice:pw@host/x", "alice:pw"),
        ("https://TOKEN@host", "TOKEN"),
        ("https://a:pass word@h/", "a:pass word"),
        ("https://host/x@y", None),
        ("s3://bucket/key", None),
        ("runs/embedded", None),
        ("ray://10.0.0.1:10001", None),
    ],
)
def test_userinfo_is_found_in_any_form(uri, expected):
    assert userinfo(uri) == expected


def test_short_repr_is_bounded_for_huge_shared_and_deep_values():
    shared: list = [0]
    for _ in range(40):  # 2**40 leaves through sharing
        shared = [shared, shared]
    deep: list = []
    for _ in range(100_000):
        deep = [deep]
    started = time.process_time()
    for value in ("x" * 32_000_000, ["y" * 1000] * 32_000, shared, deep, 10**5000, {i: i for i in range(10**5)}):
        assert len(short_repr(value)) <= MAX_REPR
    assert time.process_time() - started < 5  # CPU seconds: microseconds each, generous
    assert SECRET not in short_repr({"uri": f"https://u:{SECRET}@h"})


def test_shorten_marks_the_cut():
    assert shorten("abc", 10) == "abc"
    cut = shorten("z" * 10_000, 100)
    assert len(cut) <= 100 and cut.endswith("more characters]")


def test_logging_filter_redacts_formatted_records(caplog):
    import logging

    from videolstm.messages import RedactingFilter

    logger = logging.getLogger("videolstm.test.redact")
    caplog.handler.addFilter(RedactingFilter())
    with caplog.at_level(logging.INFO, logger=logger.name):
        logger.info("fetching %s", f"https://h/x.rar?X-Amz-Signature={SECRET}")
        logger.info("plain %d", 3)
    assert SECRET not in caplog.text and "X-Amz-Signature=***" in caplog.text and "plain 3" in caplog.text


# --------------------------------------------------------------------------------------------
# Credentials given through the environment (issue 27: Ray token, MLflow and Prefect passwords)


@pytest.mark.parametrize(
    "name",
    [
        "RAY_AUTH_TOKEN",
        "MLFLOW_TRACKING_PASSWORD",
        "MLFLOW_TRACKING_TOKEN",
        "MLFLOW_AUTH_ADMIN_PASSWORD",
        "PREFECT_API_AUTH_STRING",
        "PREFECT_SERVER_API_AUTH_STRING",
        "PREFECT_API_KEY",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "MINIO_ROOT_PASSWORD",
    ],
)
def test_a_credential_given_through_the_environment_is_redacted_anywhere_in_a_text(monkeypatch, name):
    value = f"user:{SECRET}-9f3a"
    monkeypatch.setenv(name, value)
    line = f"connecting with {value} (repr {value!r}) as {{'{name.lower()}': '{value}'}}"
    assert value not in redact(line) and SECRET not in redact(line)
    assert redact(line) == "connecting with *** (repr '***') as {'" + name.lower() + "': '***'}"
    assert SECRET not in short_repr({"env": value}) and SECRET not in redact_uri(f"https://h/x?y={value}")


def test_only_credential_variables_count_and_not_once_unset(monkeypatch):
    from videolstm.messages import secret_env_values

    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", "/home/app/.ray/auth_token")  # where a token is, not a token
    monkeypatch.setenv("VIDEOLSTM_RUN_NAME", f"run-{SECRET}")
    monkeypatch.setenv("RAY_AUTH_TOKEN", "abc")  # too short to look for: it would match ordinary words
    text = f"token file /home/app/.ray/auth_token, run run-{SECRET}, abc"
    assert redact(text) == text
    assert "abc" not in secret_env_values() and "/home/app/.ray/auth_token" not in secret_env_values()
    monkeypatch.setenv("RAY_AUTH_TOKEN", SECRET)
    assert redact(text) == "token file /home/app/.ray/auth_token, run run-***, abc"
    monkeypatch.delenv("RAY_AUTH_TOKEN")
    assert redact(text) == text
    assert secret_env_values({"A_PASSWORD": "short", "B_TOKEN": "a-longer-one", "C": "x" * 40}) == ["a-longer-one", "short"]


@pytest.mark.parametrize(
    "text, kept",
    [
        (f"Authorization: Bearer {SECRET}; retrying", "Authorization: Bearer ***; retrying"),
        (f"{{'Authorization': 'Basic {SECRET}=='}}", "{'Authorization': 'Basic ***'}"),
        (f'headers={{"x-ray-authorization": "Bearer {SECRET}"}}', 'headers={"x-ray-authorization": "Bearer ***"}'),
        (f"authorization={SECRET}", "authorization=***"),
    ],
)
def test_authorization_headers_lose_their_credential(text, kept):
    assert redact(text) == kept


def test_logging_filter_redacts_an_environment_credential(caplog, monkeypatch):
    import logging

    from videolstm.messages import RedactingFilter

    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", SECRET)
    logger = logging.getLogger("videolstm.test.redact.env")
    caplog.handler.addFilter(RedactingFilter())
    with caplog.at_level(logging.INFO, logger=logger.name):
        logger.info("login failed for %s with %s", "pipeline", SECRET)
    assert SECRET not in caplog.text and "login failed for pipeline with ***" in caplog.text
