"""Configuration files: safe YAML without aliases, bounded size and messages, no credential in a URI."""

from __future__ import annotations

from pathlib import Path

import pytest

from videolstm.config import MAX_CONFIG_BYTES, MAX_CONFIG_MESSAGE, ConfigError, InputLimits, load_config
from videolstm.store.lineage import lineages

SECRET = "Tok-Sentinel-31"


def test_yaml_anchors_parse_but_aliases_are_refused_naming_the_file(tmp_path: Path):
    plain = tmp_path / "anchor.yaml"
    plain.write_text("train: &t\n  epochs: 3\n")
    assert load_config(plain).train.epochs == 3
    alias = tmp_path / "alias.yaml"
    alias.write_text("train: &t\n  epochs: 3\nframe_cnn: *t\n")
    with pytest.raises(ConfigError, match=rf"{alias}.*alias \*t; aliases are not allowed"):
        load_config(alias)


def test_python_tags_stay_refused(tmp_path: Path):
    path = tmp_path / "tag.yaml"
    path.write_text("name: !!python/object/apply:os.system ['true']\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(path)


def test_a_file_over_the_size_limit_is_refused_before_it_is_parsed(tmp_path: Path):
    path = tmp_path / "big.yaml"
    path.write_bytes(b"name: x\n" + b"#" * MAX_CONFIG_BYTES)
    with pytest.raises(ConfigError, match=rf"{path} is larger than {MAX_CONFIG_BYTES} bytes"):
        load_config(path)


def test_error_messages_are_bounded_and_name_every_bad_key():
    with pytest.raises(ConfigError) as error:
        load_config({"name": ["n" * 10_000_000], "flow": {"bound": "b" * 10_000_000}, "train": {"epochs": "e" * 10**6}})
    message = str(error.value)
    assert len(message) <= MAX_CONFIG_MESSAGE
    assert all(key in message for key in ("name", "flow.bound", "train.epochs"))


@pytest.mark.parametrize(
    "uri",
    [
        f"https://alice:{SECRET}@mlflow.example",
        f"https://{SECRET}@mlflow.example/api",
        f"https://:{SECRET}@host",
        f"https://alice:pass {SECRET}@host",
        f"http://u:{SECRET}@127.0.0.1:9000",
    ],
)
def test_any_credential_in_a_uri_is_refused_and_never_echoed(uri):
    for config in (
        {"mlflow": {"tracking_uri": uri}},
        {"dataset": {"kind": "ucf101", "download": {"urls": ["https://ok/x.rar", uri]}}},
        {"dataset": {"kind": "ucf101"}, "storage": {"endpoint_url": uri}},
    ):
        with pytest.raises(ConfigError) as error:
            load_config(config)
        assert "holds credentials in a URI" in str(error.value) and SECRET not in str(error.value)


def test_presigned_download_urls_are_accepted():
    url = f"https://bucket.s3.amazonaws.com/UCF101.rar?X-Amz-Signature={SECRET}"
    assert load_config({"dataset": {"kind": "ucf101", "download": {"urls": [url]}}}).dataset.download.urls == [url]


def test_input_limits_are_configuration_and_do_not_move_stage_folders():
    config = load_config({"dataset": {"limits": {"archive_ratio": 500, "split_file_lines": 10}}})
    assert config.dataset.limits.archive_ratio == 500 and config.dataset.limits.archive_total_bytes == InputLimits().archive_total_bytes
    assert lineages(config) == lineages(load_config())  # a limit refuses input, it changes no result
    with pytest.raises(ConfigError, match="dataset.limits.archive_depth"):
        load_config({"dataset": {"limits": {"archive_depth": 9}}})
