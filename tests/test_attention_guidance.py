"""videolstm.attention_guidance: the train-time oracle's maps and the motion prior (issue 20), by hand."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from tests.pipeline_helpers import one_torch_thread  # noqa: F401 (autouse fixture)
from videolstm.attention_guidance import (
    attention_kl,
    box_targets,
    dump_box_targets,
    motion_prior_maps,
    oracle_lookup,
    oracle_maps,
    parse_box_targets,
)


def test_oracle_maps_render_the_box_as_cell_coverage_and_steps_without_a_box_as_uniform():
    """A 2×2 grid over the unit frame. Frame 1: box x∈[0, 0.5), y∈[0, 1) covers the left cells
    fully → (0.5, 0; 0.5, 0). Frame 2: x∈[0, 0.25), y∈[0, 0.5) covers half of the top-left cell
    only → (1, 0; 0, 0). Frame 0 (before the tube) and frame 3 (after it): uniform 1/4."""
    tube = {"frames": np.array([1, 2]), "boxes": np.array([[0.0, 0.0, 0.5, 1.0], [0.0, 0.0, 0.25, 0.5]])}
    maps = oracle_maps(np.array([0, 1, 2, 3]), [tube], (2, 2))
    assert maps.dtype == np.float32 and maps.shape == (4, 2, 2)
    np.testing.assert_allclose(maps[0], np.full((2, 2), 0.25))
    np.testing.assert_allclose(maps[1], [[0.5, 0.0], [0.5, 0.0]])
    np.testing.assert_allclose(maps[2], [[1.0, 0.0], [0.0, 0.0]])
    np.testing.assert_allclose(maps[3], np.full((2, 2), 0.25))


def test_oracle_maps_of_two_actors_sum_their_coverage_and_a_video_without_targets_is_uniform():
    """Two tubes at frame 0: the top-left cell (area 1/4 of the frame) and the whole right half
    (2 cells): coverage 1 + 1 + 1 = 3 cells → 1/3 each."""
    a = {"frames": [0], "boxes": [[0.0, 0.0, 0.5, 0.5]]}
    b = {"frames": [0], "boxes": [[0.5, 0.0, 1.0, 1.0]]}
    np.testing.assert_allclose(oracle_maps(np.array([0]), [a, b], (2, 2))[0], [[1 / 3, 1 / 3], [0.0, 1 / 3]], rtol=1e-6)
    lookup = oracle_lookup({"C/v1": [a]}, (2, 2))
    np.testing.assert_allclose(lookup("C/v1", np.array([0]))[0], [[1.0, 0.0], [0.0, 0.0]])
    np.testing.assert_allclose(lookup("C/unannotated", np.array([0, 5])), np.full((2, 2, 2), 0.25))


def test_box_targets_keep_every_tube_in_fractions_of_the_frame_and_round_trip():
    tubes = [
        SimpleNamespace(frames=np.array([3, 4]), boxes=np.array([[10, 20, 30, 40], [12, 20, 32, 40]])),
        SimpleNamespace(frames=np.array([0]), boxes=np.array([[0, 0, 160, 120]])),
    ]
    targets = box_targets({"C/v": tubes, "C/no-size": tubes, "C/empty": []}, {"C/v": (120, 160), "C/empty": (120, 160)})
    assert set(targets) == {"C/v"}
    assert targets["C/v"][0]["frames"] == [3, 4]  # (x1, y1, x2, y2) / (W, H, W, H), W = 160, H = 120
    np.testing.assert_allclose(targets["C/v"][0]["boxes"], [[0.0625, 1 / 6, 0.1875, 1 / 3], [0.075, 1 / 6, 0.2, 1 / 3]], atol=1e-6)
    assert targets["C/v"][1]["boxes"] == [[0.0, 0.0, 1.0, 1.0]]
    back = parse_box_targets(dump_box_targets(targets))
    np.testing.assert_array_equal(back["C/v"][0]["frames"], [3, 4])
    assert back["C/v"][0]["boxes"].shape == (2, 4)
    with pytest.raises(ValueError, match="bad.json is not an oracle box-target file"):
        parse_box_targets('{"C/v": [{"frames": [1, 2], "boxes": [[0, 0, 1, 1]]}]}', "bad.json")


# --------------------------------------------------------------------------------------------
# the motion prior


def test_motion_prior_maps_are_the_normalised_channel_energy_and_uniform_without_motion():
    """P_{t,ij} = Σ_c M² / Σ_{ij} Σ_c M²: channels (1, 2) at cell (0, 0) and (2, 0) at (1, 1) → energies 5 and 4."""
    m = torch.zeros(1, 2, 2, 2, 2)
    m[0, 0, :, 0, 0] = torch.tensor([1.0, 2.0])
    m[0, 0, :, 1, 1] = torch.tensor([2.0, 0.0])
    prior = motion_prior_maps(m)
    torch.testing.assert_close(prior[0, 0], torch.tensor([[5 / 9, 0.0], [0.0, 4 / 9]]))
    torch.testing.assert_close(prior[0, 1], torch.full((2, 2), 0.25))  # all-zero step: uniform
    from videolstm.evaluation.calibration import motion_energy_attention  # the calibration row's definition

    np.testing.assert_allclose(prior[0].numpy(), motion_energy_attention(m[0].numpy()), rtol=1e-6)


def test_attention_kl_is_the_sum_over_steps_of_kl_prior_to_attention_averaged_over_the_batch():
    """P = (½, ½, 0, 0), A uniform: KL = ½ ln(½/¼)·2 = ln 2 per step; P = A: 0. Clip 0 has two steps
    of ln 2, clip 1 one step of ln 2 and one of 0 → (2 ln 2 + ln 2)/2."""
    p_half = torch.tensor([[0.5, 0.5], [0.0, 0.0]])
    uniform = torch.full((2, 2), 0.25)
    prior = torch.stack([torch.stack([p_half, p_half]), torch.stack([p_half, uniform])])
    attention = torch.stack([torch.stack([uniform, uniform]), torch.stack([uniform, uniform])])
    assert attention_kl(prior, attention).item() == pytest.approx(1.5 * math.log(2), rel=1e-6)
    assert attention_kl(attention, attention).item() == pytest.approx(0.0, abs=1e-7)
    with pytest.raises(ValueError, match="differ in shape"):
        attention_kl(prior[:, :1], attention)


@pytest.mark.parametrize("variant", ["convalstm", "videolstm"])
def test_a_training_step_with_the_motion_prior_moves_the_attention_toward_it(variant):
    """One SGD step on the loss with weight 5 leaves KL(P ‖ A) lower than the same step with weight 0."""
    from videolstm.models import build_model
    from videolstm.training import motion_prior_forward, sequence_forward

    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 3, 4, 5, 5)).astype(np.float32)
    flow = rng.standard_normal((4, 3, 2, 5, 5)).astype(np.float32)
    flow[:, :, :, :2, :2] *= 6  # the motion sits in the top-left corner
    batch = {"x": x, "label": np.array([0, 1, 0, 1]), "prior": flow}
    if variant == "videolstm":
        batch["flow"] = flow

    def kl_after(weight: float) -> float:
        torch.manual_seed(0)
        overrides = {
            "input_channels": 4,
            "spatial_size": (5, 5),
            "hidden_channels": 4,
            "fc_dim": 8,
            "dropout": 0.0,
            **({"flow_channels": 2} if variant == "videolstm" else {}),
        }
        model = build_model(variant, 2, **overrides)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
        forward = motion_prior_forward(weight) if weight > 0 else sequence_forward
        loss, _ = forward(model, batch, torch.device("cpu"))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            out = model(torch.from_numpy(x), flow=torch.from_numpy(flow) if variant == "videolstm" else None)
            return attention_kl(motion_prior_maps(torch.from_numpy(flow)), out.attention).item()

    assert kl_after(5.0) < kl_after(0.0) - 1e-4


def test_the_motion_prior_loss_is_the_cross_entropy_plus_weight_times_the_kl():
    """motion_prior_forward(w): sequence loss + w · Σ_t KL(P_t ‖ A_t) with P from the batch's prior maps."""
    from videolstm.models import build_model
    from videolstm.models.functional import sequence_loss
    from videolstm.training import motion_prior_forward

    torch.manual_seed(0)
    model = build_model("convalstm", 2, input_channels=4, spatial_size=(5, 5), hidden_channels=4, fc_dim=8).eval()
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 4, 5, 5)).astype(np.float32)
    prior = rng.standard_normal((2, 3, 6, 5, 5)).astype(np.float32)
    labels = np.array([1, 0])
    loss, _ = motion_prior_forward(0.25)(model, {"x": x, "label": labels, "prior": prior}, torch.device("cpu"))
    with torch.no_grad():
        out = model(torch.from_numpy(x))
        energy = (prior.astype(np.float64) ** 2).sum(axis=2)
        p = energy / energy.sum(axis=(2, 3), keepdims=True)
        a = out.attention.double().numpy()
        kl = (p * (np.log(p) - np.log(a))).sum(axis=(1, 2, 3)).mean()  # every p > 0 here
        want = sequence_loss(out.logits, torch.from_numpy(labels)).item() + 0.25 * kl
    assert loss.item() == pytest.approx(want, rel=1e-5)
