"""videolstm.store.checkpoint: names, safe loading, model rebuild."""

from __future__ import annotations

import os
import pickle

import pytest
import torch
from torch import nn

from tests.pipeline_helpers import one_torch_thread  # noqa: F401 (autouse fixture)
from videolstm.models.restore import build_from_spec, restore_model
from videolstm.store import storage as st
from videolstm.store.checkpoint import (
    FORMAT,
    CheckpointError,
    ModelSpec,
    checkpoint_name,
    checkpoint_state,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
    unwrap,
)

SEQUENCE_SPEC = ModelSpec(
    "videolstm",
    3,
    {"input_channels": 4, "flow_channels": 2, "spatial_size": (3, 3), "hidden_channels": 4, "fc_dim": 8},
)
FRAME_SPEC = ModelSpec("small", 3, {"in_channels": 4, "channels": [4, 4, 8], "fc_dim": 16}, kind="frame_cnn")


def test_checkpoint_names_are_zero_padded_so_names_sort_by_epoch():
    assert checkpoint_name(7) == "checkpoint_epoch_00007.pt"
    epochs = [10, 2, 100, 1, 9]
    assert sorted(checkpoint_name(e) for e in epochs) == [checkpoint_name(e) for e in sorted(epochs)]


def test_latest_checkpoint_picks_the_highest_epoch_and_ignores_other_files(tmp_path):
    for epoch in (9, 10, 2):
        st.write_bytes(str(tmp_path / checkpoint_name(epoch)), b"x")
    st.write_bytes(str(tmp_path / "model.pt"), b"x")
    st.write_bytes(str(tmp_path / "checkpoint_epoch_00099.pt.bak"), b"x")
    assert latest_checkpoint(str(tmp_path)) == str(tmp_path / checkpoint_name(10))


def test_latest_checkpoint_of_an_empty_or_missing_folder_is_none(tmp_path):
    assert latest_checkpoint(str(tmp_path)) is None
    assert latest_checkpoint(str(tmp_path / "missing")) is None


def test_model_spec_round_trips_through_its_dict():
    for spec in (SEQUENCE_SPEC, FRAME_SPEC):
        assert ModelSpec.from_dict(spec.to_dict()) == spec
    listed = {**SEQUENCE_SPEC.to_dict(), "overrides": {**SEQUENCE_SPEC.overrides, "spatial_size": [3, 3]}}
    assert ModelSpec.from_dict(listed).overrides["spatial_size"] == (3, 3)  # JSON turns tuples into lists
    assert ModelSpec.from_dict({"variant": "lstm", "num_classes": 2}).kind == "sequence"
    with pytest.raises(ValueError, match="unknown model kind"):
        build_from_spec(ModelSpec("lstm", 2, kind="weird"))


def _outputs(model: nn.Module, spec: ModelSpec) -> torch.Tensor:
    torch.manual_seed(123)
    model.eval()
    with torch.no_grad():
        if spec.kind == "frame_cnn":
            return model(torch.randn(2, 4, 56, 56)).logits
        return model(torch.randn(2, 4, 4, 3, 3), flow=torch.randn(2, 4, 2, 3, 3)).logits


@pytest.mark.parametrize("spec", [SEQUENCE_SPEC, FRAME_SPEC], ids=["videolstm", "small_frame_cnn"])
def test_save_load_restore_rebuilds_a_model_with_identical_outputs(tmp_path, spec):
    torch.manual_seed(0)
    model = build_from_spec(spec)
    optimizer = torch.optim.RMSprop(model.parameters(), lr=1e-3)
    expected = _outputs(model, spec)
    uri = str(tmp_path / checkpoint_name(3))
    state = checkpoint_state(3, model, spec, optimizer, metrics={"val/accuracy": 0.5}, extra={"run": 7})
    assert save_checkpoint(uri, state) == uri

    loaded = load_checkpoint(uri)
    assert loaded["format"] == FORMAT and loaded["epoch"] == 3
    assert loaded["metrics"] == {"val/accuracy": 0.5} and loaded["extra"] == {"run": "7"}
    restored, restored_spec = restore_model(loaded)
    assert restored_spec == spec
    assert not restored.training
    assert type(restored) is type(model)
    torch.testing.assert_close(_outputs(restored, spec), expected, rtol=0, atol=0)


def test_checkpoint_state_unwraps_a_wrapped_model_and_keeps_optimizer_state(tmp_path):
    torch.manual_seed(0)
    model = build_from_spec(SEQUENCE_SPEC)
    optimizer = torch.optim.RMSprop(model.parameters(), lr=1e-2)
    model(torch.randn(2, 2, 4, 3, 3), flow=torch.randn(2, 2, 2, 3, 3)).logits.sum().backward()
    optimizer.step()

    class Wrapper(nn.Module):  # what DistributedDataParallel looks like from outside
        def __init__(self, module: nn.Module):
            super().__init__()
            self.module = module

    wrapped = Wrapper(model)
    assert unwrap(wrapped) is model and unwrap(model) is model
    state = checkpoint_state(1, wrapped, SEQUENCE_SPEC, optimizer)
    assert state["model"].keys() == model.state_dict().keys()
    assert not any(k.startswith("module.") for k in state["model"])
    uri = save_checkpoint(str(tmp_path / checkpoint_name(1)), state)

    fresh = build_from_spec(SEQUENCE_SPEC)
    fresh_optimizer = torch.optim.RMSprop(fresh.parameters(), lr=1e-2)
    fresh_optimizer.load_state_dict(load_checkpoint(uri)["optimizer"])
    before = optimizer.state_dict()["state"]
    after = fresh_optimizer.state_dict()["state"]
    assert before.keys() == after.keys()
    for key in before:
        torch.testing.assert_close(after[key]["square_avg"], before[key]["square_avg"])


def test_load_refuses_a_file_that_is_not_a_videolstm_checkpoint(tmp_path):
    uri = str(tmp_path / "weights.pt")
    torch.save({"layer.weight": torch.zeros(2)}, uri)  # a plain state dict
    with pytest.raises(CheckpointError, match=r"weights\.pt is not a videolstm-checkpoint-v1 file"):
        load_checkpoint(uri)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"this is not a torch file at all")
    with pytest.raises(CheckpointError, match="garbage.pt could not be loaded safely"):
        load_checkpoint(str(garbage))


def test_load_of_a_missing_checkpoint_names_it(tmp_path):
    with pytest.raises(CheckpointError, match=r"nope\.pt does not exist"):
        load_checkpoint(str(tmp_path / "nope.pt"))


class _Exploit:
    """Unpickling this runs ``os.system(command)``."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def test_a_malicious_torch_file_is_refused_and_nothing_executes(tmp_path):
    marker = tmp_path / "pwned"
    uri = tmp_path / checkpoint_name(1)
    torch.save({"format": FORMAT, "epoch": _Exploit(f"touch {marker}")}, str(uri))
    assert b"system" in uri.read_bytes()  # the GLOBAL really is in the file
    with pytest.raises(CheckpointError, match="could not be loaded safely"):
        load_checkpoint(str(uri))
    assert not marker.exists()


def test_a_malicious_legacy_pickle_is_refused_and_nothing_executes(tmp_path):
    marker = tmp_path / "pwned"
    uri = tmp_path / "evil.pt"
    uri.write_bytes(pickle.dumps(_Exploit(f"touch {marker}"), protocol=2))
    assert b"system" in uri.read_bytes()
    with pytest.raises(CheckpointError):
        load_checkpoint(str(uri))
    assert not marker.exists()


def test_a_failed_save_leaves_no_checkpoint(tmp_path):
    uri = tmp_path / checkpoint_name(2)
    with pytest.raises(TypeError):
        save_checkpoint(str(uri), {"format": FORMAT, "bad": (x for x in ())})  # generators do not pickle
    assert not uri.exists() and list(tmp_path.iterdir()) == []


@pytest.mark.integration
def test_checkpoints_on_s3_save_list_and_restore(moto_s3):
    storage, bucket = moto_s3
    folder = f"s3://{bucket}/train/abc/videolstm-rgb"
    torch.manual_seed(0)
    model = build_from_spec(SEQUENCE_SPEC)
    for epoch in (1, 2, 11):
        save_checkpoint(st.join(folder, checkpoint_name(epoch)), checkpoint_state(epoch, model, SEQUENCE_SPEC), storage)
    latest = latest_checkpoint(folder, storage)
    assert latest == f"{folder}/{checkpoint_name(11)}"
    restored, _ = restore_model(load_checkpoint(latest, storage))
    torch.testing.assert_close(_outputs(restored, SEQUENCE_SPEC), _outputs(model, SEQUENCE_SPEC), rtol=0, atol=0)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(f"{folder}/{checkpoint_name(99)}", storage)


# --------------------------------------------------------------------------------------------
# sizes bound by the weights the file holds, not by what its spec claims (issue 15)


@pytest.mark.parametrize(
    "change, words",
    [
        ({"num_classes": 4_000_000}, "num_classes 4000000"),
        ({"num_classes": 10**12}, "num_classes 1000000000000"),
        ({"overrides": {**SEQUENCE_SPEC.overrides, "hidden_channels": 100_000}}, "shape"),
        ({"variant": "convlstm"}, "does not match the weights"),
        ({"overrides": {"no_such_size": 1}}, "does not build a model"),
    ],
)
def test_a_spec_that_disagrees_with_the_weights_is_refused_without_allocating(change, words):
    import resource

    torch.manual_seed(0)
    state = checkpoint_state(1, build_from_spec(SEQUENCE_SPEC), SEQUENCE_SPEC)
    state["model_spec"] = {**state["model_spec"], **change}
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(CheckpointError, match="model_spec") as refused:
        restore_model(state)
    assert words in str(refused.value) and len(str(refused.value)) < 2000
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200 * 1024  # KiB: nothing big was allocated


def test_restore_checks_the_configured_class_count_and_the_spec_itself():
    state = checkpoint_state(1, build_from_spec(SEQUENCE_SPEC), SEQUENCE_SPEC)
    assert restore_model(state, num_classes=SEQUENCE_SPEC.num_classes)[1] == SEQUENCE_SPEC
    with pytest.raises(CheckpointError, match=rf"num_classes {SEQUENCE_SPEC.num_classes}, the configured dataset 101"):
        restore_model(state, num_classes=101)
    for broken in ({"num_classes": 3}, "spec", None):
        with pytest.raises(CheckpointError, match="not a videolstm model spec"):
            restore_model({**state, "model_spec": broken})
    with pytest.raises(CheckpointError, match="not a state dict"):
        restore_model({**state, "model": {"w": [1, 2]}})


def test_a_checkpoint_with_compressed_records_is_refused(tmp_path):
    import io
    import zipfile

    buffer = io.BytesIO()
    torch.save(checkpoint_state(1, build_from_spec(SEQUENCE_SPEC), SEQUENCE_SPEC), buffer)
    source = zipfile.ZipFile(io.BytesIO(buffer.getvalue()))
    path = tmp_path / "deflated.pt"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for info in source.infolist():
            zf.writestr(info.filename, source.read(info))
    with pytest.raises(CheckpointError, match="could not be loaded safely: it holds compressed records"):
        load_checkpoint(str(path))
