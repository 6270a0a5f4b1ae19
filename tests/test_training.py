"""videolstm.training: snippets and batches from real shards, losses, epochs, validation split."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tests.pipeline_helpers import one_torch_thread  # noqa: F401 (autouse fixture)
from videolstm.data.datasets.shipped import UCF101_SPLITS
from videolstm.features.inputs import FLOW_INPUT_GAIN, flow_inputs, rgb_inputs
from videolstm.models import build_model
from videolstm.store import shards
from videolstm.training import (
    EpochStats,
    batches_of,
    clip_predictions,
    evaluate_epoch,
    feature_columns,
    frame_batch,
    frame_forward,
    make_optimizer,
    sequence_forward,
    sequence_loss,
    snippet_batch,
    snippet_indices,
    split_validation,
    train_epoch,
    validation_grouping,
    video_group,
)

# ----------------------------------------------------------------------------------------
# snippets


def test_random_snippets_are_contiguous_in_bounds_and_reach_every_start():
    rng = np.random.default_rng(0)
    starts = Counter()
    for _ in range(300):
        idx = snippet_indices(10, 4, rng)
        assert idx.shape == (4,) and idx.min() >= 0 and idx.max() <= 9
        np.testing.assert_array_equal(np.diff(idx), 1)
        starts[int(idx[0])] += 1
    assert set(starts) == set(range(7))  # 0 .. T - L


def test_snippet_without_rng_is_the_centre():
    np.testing.assert_array_equal(snippet_indices(10, 4, None), [3, 4, 5, 6])
    np.testing.assert_array_equal(snippet_indices(30, 30, None), np.arange(30))


def test_short_video_snippet_repeats_the_last_frame():
    np.testing.assert_array_equal(snippet_indices(3, 5, None), [0, 1, 2, 2, 2])
    np.testing.assert_array_equal(snippet_indices(3, 5, np.random.default_rng(0)), [0, 1, 2, 2, 2])
    with pytest.raises(ValueError, match="at least one frame"):
        snippet_indices(0, 5, None)


def test_feature_columns_of_each_variant_kind():
    assert feature_columns("maps", False, "flow") == ("flow_pool5", None)
    assert feature_columns("vectors", False, "rgb") == ("rgb_fc7", None)
    assert feature_columns("maps", True, "flow") == ("rgb_pool5", "flow_pool5")  # VideoLSTM: RGB attended by flow maps
    assert feature_columns("maps", True, "rgb", flow_kind="vectors") == ("rgb_pool5", "flow_fc7")  # Motion ALSTM
    with pytest.raises(ValueError, match="unknown input kind"):
        feature_columns("pixels", False, "rgb")


# ----------------------------------------------------------------------------------------
# batches from real shards


def _feature_rows(tmp_path, lengths=(5, 8, 3)) -> list[dict]:
    rng = np.random.default_rng(0)
    rows = []
    for i, t in enumerate(lengths):
        uri = str(tmp_path / f"feat{i}.parquet")
        shards.write_shard(
            uri,
            {
                "video_id": f"v{i}",
                "label": i % 2,
                "subset": "train",
                "num_frames": t,
                "rgb_pool5": rng.standard_normal((t, 4, 7, 7)).astype(np.float16),
                "flow_pool5": rng.standard_normal((t, 6, 7, 7)).astype(np.float16),
                "rgb_fc7": rng.standard_normal((t, 16)).astype(np.float16),
            },
        )
        rows.append({"video_id": f"v{i}", "shard": uri, "label": i % 2})
    return rows


def test_snippet_batch_stacks_centre_snippets_of_every_shard(tmp_path):
    rows = _feature_rows(tmp_path)
    batch = snippet_batch(rows, "rgb_pool5", "flow_pool5", length=4, rng=None)
    assert batch["x"].shape == (3, 4, 4, 7, 7) and batch["x"].dtype == np.float32
    assert batch["flow"].shape == (3, 4, 6, 7, 7)
    np.testing.assert_array_equal(batch["label"], [0, 1, 0])
    for b, row in enumerate(rows):
        stored = shards.read_shard(row["shard"])
        idx = snippet_indices(stored["num_frames"], 4, None)
        np.testing.assert_array_equal(batch["x"][b], stored["rgb_pool5"][idx].astype(np.float32))
        np.testing.assert_array_equal(batch["flow"][b], stored["flow_pool5"][idx].astype(np.float32))
    short = shards.read_shard(rows[2]["shard"])["rgb_pool5"]  # 3 steps: the last one repeated
    np.testing.assert_array_equal(batch["x"][2][3], short[2].astype(np.float32))


def test_snippet_batch_of_vectors_has_no_flow(tmp_path):
    batch = snippet_batch(_feature_rows(tmp_path), "rgb_fc7", None, length=2, rng=np.random.default_rng(1))
    assert set(batch) == {"x", "label"} and batch["x"].shape == (3, 2, 16)


def test_snippet_batch_adds_the_given_attention_maps_of_the_snippets_steps(tmp_path):
    """The train-time oracle: ``attention_maps(video_id, frames)`` of exactly the steps read; a map that
    encodes (video, frame) in its cells shows which ones were asked for."""
    rows = _feature_rows(tmp_path, lengths=(40, 31, 12))

    def maps(video_id: str, frames: np.ndarray) -> np.ndarray:
        return np.broadcast_to((int(video_id[1:]) * 100 + frames)[:, None, None], (len(frames), 7, 7)).astype(np.float32)

    for rng in (None, np.random.default_rng(5)):
        plain = snippet_batch(rows, "rgb_pool5", None, 10, None if rng is None else np.random.default_rng(5))
        batch = snippet_batch(rows, "rgb_pool5", None, 10, rng, attention_maps=maps)
        np.testing.assert_array_equal(batch["x"], plain["x"])  # the same snippets
        assert batch["attention"].shape == (3, 10, 7, 7) and batch["attention"].dtype == np.float32
        for b, row in enumerate(rows):
            stored = shards.read_shard(row["shard"])["rgb_pool5"]
            steps = batch["attention"][b, :, 0, 0].astype(int) - 100 * b  # the frame of each step
            np.testing.assert_array_equal(batch["x"][b], stored[steps].astype(np.float32))


def test_sequence_forward_attends_with_the_batchs_attention_when_it_has_some():
    torch.manual_seed(0)
    model = build_model("convalstm", 2, input_channels=4, spatial_size=(7, 7), hidden_channels=4, fc_dim=8).eval()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 4, 7, 7)).astype(np.float32)
    maps = rng.random((2, 3, 7, 7)).astype(np.float32)
    maps /= maps.sum(axis=(2, 3), keepdims=True)
    labels = np.array([0, 1])
    loss, _ = sequence_forward(model, {"x": x, "label": labels, "attention": maps}, torch.device("cpu"))
    with torch.no_grad():
        given = model(torch.from_numpy(x), attention=torch.from_numpy(maps)).logits
        own = model(torch.from_numpy(x)).logits
    assert loss.item() == pytest.approx(sequence_loss(given, torch.from_numpy(labels)).item(), rel=1e-6)
    assert loss.item() != pytest.approx(sequence_loss(own, torch.from_numpy(labels)).item(), rel=1e-6)


def _old_snippet_batch(rows, x_column, flow_column, length, rng):
    """The pre-issue-14 reader: the whole video's column, then the snippet cut from it."""
    xs, flows = [], []
    for row in rows:
        stored = shards.read_shard(row["shard"])
        idx = snippet_indices(stored[x_column].shape[0], length, rng)
        xs.append(stored[x_column][idx])
        flows.append(stored[flow_column][idx])
    return np.stack(xs), np.stack(flows)


def test_random_snippet_reads_equal_the_whole_video_read_and_sliced_in_float16(tmp_path):
    rows = _feature_rows(tmp_path, lengths=(40, 31, 12, 30, 70))
    for seed in range(3):
        batch = snippet_batch(rows, "rgb_pool5", "flow_pool5", 30, np.random.default_rng(seed), dtype=None)
        x, flow = _old_snippet_batch(rows, "rgb_pool5", "flow_pool5", 30, np.random.default_rng(seed))
        assert batch["x"].dtype == np.float16 and batch["flow"].dtype == np.float16
        np.testing.assert_array_equal(batch["x"], x)
        np.testing.assert_array_equal(batch["flow"], flow)


def _frames_flow_row(tmp_path, frames: int = 6, label: int = 2) -> dict:
    """A frames+flow shard whose frame t is filled with the value 10·t (so a frame can be recognised)."""
    video = np.repeat(np.arange(frames, dtype=np.uint8)[:, None, None, None] * 10, 3, axis=3)
    video = np.broadcast_to(video, (frames, 8, 8, 3)).copy()
    flow = np.random.default_rng(0).integers(0, 256, (frames - 1, 8, 8, 2), dtype=np.uint8)
    uri = str(tmp_path / "ff.parquet")
    shards.write_shard(uri, {"video_id": "v", "label": label, "subset": "train", "frames": video, "flow": flow})
    return {"video_id": "v", "shard": uri, "label": label}


def test_frame_batch_samples_distinct_normalised_frames_with_their_label(tmp_path):
    row = _frames_flow_row(tmp_path)
    batch = frame_batch([row, row], "rgb", frames_per_video=4, flow_stack=3, rng=np.random.default_rng(0))
    assert batch["x"].shape == (8, 3, 8, 8) and batch["x"].dtype == np.float32
    np.testing.assert_array_equal(batch["label"], [2] * 8)
    references = rgb_inputs(shards.read_shard(row["shard"])["frames"])
    chosen = [int(np.argmin([np.abs(x - ref).max() for ref in references])) for x in batch["x"][:4]]
    assert len(set(chosen)) == 4 and chosen == sorted(chosen)  # without replacement, in time order
    for x, t in zip(batch["x"][:4], chosen):
        np.testing.assert_allclose(x, references[t], rtol=0, atol=1e-6)


def test_frame_batch_of_flow_stacks_covers_every_frame_of_a_short_video(tmp_path):
    row = _frames_flow_row(tmp_path, frames=3)
    batch = frame_batch([row], "flow", frames_per_video=8, flow_stack=2, rng=np.random.default_rng(0))
    assert batch["x"].shape == (3, 4, 8, 8)  # T=3 frames (not T-1 flow fields), 2L channels
    assert abs(batch["x"]).max() <= FLOW_INPUT_GAIN  # at most the quantisation bound


def test_frame_batch_of_flow_stacks_equals_the_stacks_of_the_whole_flow(tmp_path):
    """Reading only the stacks' flow fields gives what stacking the whole decoded flow gives."""
    row = _frames_flow_row(tmp_path, frames=12)
    batch = frame_batch([row], "flow", frames_per_video=5, flow_stack=3, rng=np.random.default_rng(4))
    idx = np.sort(np.random.default_rng(4).choice(12, size=5, replace=False))
    expected = flow_inputs(shards.read_shard(row["shard"])["flow"], idx, 3)
    np.testing.assert_array_equal(batch["x"], expected)


def test_batches_of_cover_every_row_once_and_shuffle_only_with_rng():
    rows = list(range(10))
    assert list(batches_of(rows, 4, None)) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    shuffled = list(batches_of(rows, 4, np.random.default_rng(0)))
    assert [len(b) for b in shuffled] == [4, 4, 2]
    assert sorted(sum(shuffled, [])) == rows and sum(shuffled, []) != rows


# ----------------------------------------------------------------------------------------
# losses and predictions


def test_sequence_loss_is_cross_entropy_summed_over_steps_and_averaged_over_clips():
    torch.manual_seed(0)
    logits, labels = torch.randn(3, 4, 5), torch.tensor([0, 4, 2])
    hand = sum(sum(F.cross_entropy(logits[b, t][None], labels[b][None]) for t in range(4)) for b in range(3)) / 3
    torch.testing.assert_close(sequence_loss(logits, labels), hand)


def test_clip_prediction_sums_probabilities_not_logits():
    logits = torch.tensor([[[20.0, 0.0], [0.0, 1.0], [0.0, 1.0], [0.0, 1.0]]])
    assert logits.sum(dim=1).argmax().item() == 0  # one confident step would win on logits
    assert clip_predictions(logits).tolist() == [1]  # three steps for class 1 win on probabilities


# ----------------------------------------------------------------------------------------
# epochs


def _separable_batches(seed: int, batches: int = 6) -> list[dict]:
    """Vectors whose first feature is +1 (class 1) or −1 (class 0), plus noise."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(batches):
        labels = rng.integers(0, 2, 8)
        x = rng.normal(0, 0.3, (8, 3, 4)).astype(np.float32)
        x[:, :, 0] += (2 * labels - 1)[:, None]
        out.append({"x": x, "label": labels})
    return out


def test_train_epoch_learns_a_separable_problem():
    torch.manual_seed(0)
    model = build_model("lstm", 2, input_dim=4, lstm_hidden=8, fc_dim=8, dropout=0.0)
    optimizer = make_optimizer("adam", model.parameters(), lr=3e-2)
    batches = _separable_batches(0)
    first = train_epoch(model, batches, optimizer, sequence_forward)
    for _ in range(2):
        last = train_epoch(model, batches, optimizer, sequence_forward)
    assert isinstance(first, EpochStats) and first.samples == last.samples == 48
    assert last.loss < 0.3 * first.loss
    held_out = evaluate_epoch(model, _separable_batches(1), sequence_forward)
    assert held_out.accuracy == 1.0
    assert held_out.as_metrics("val") == {"val/loss": held_out.loss, "val/accuracy": 1.0}


def test_train_epoch_of_a_frame_cnn_takes_optimizer_steps():
    from videolstm.features.backbones import SmallFrameCNN

    torch.manual_seed(0)
    model = SmallFrameCNN(2, in_channels=3, channels=(4, 4, 4), fc_dim=8)
    optimizer = make_optimizer("sgd", model.parameters(), lr=1e-2)
    before = [p.detach().clone() for p in model.parameters()]
    batch = {"x": np.random.default_rng(0).standard_normal((4, 3, 56, 56)).astype(np.float32), "label": np.array([0, 1, 0, 1])}
    stats = train_epoch(model, [batch], optimizer, frame_forward)
    assert stats.samples == 4 and np.isfinite(stats.loss)
    assert any(not torch.equal(b, p) for b, p in zip(before, model.parameters()))


def test_a_non_finite_loss_raises_before_any_weight_changes():
    torch.manual_seed(0)
    model = build_model("lstm", 2, input_dim=4, lstm_hidden=8, fc_dim=8, dropout=0.0)
    optimizer = make_optimizer("rmsprop", model.parameters(), lr=1e-3)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    bad = _separable_batches(0, batches=1)[0]
    bad["x"][0, 0, 0] = np.nan
    with pytest.raises(FloatingPointError, match="training loss became nan"):
        train_epoch(model, [bad], optimizer, sequence_forward)
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_evaluate_epoch_changes_nothing_and_runs_in_eval_mode():
    torch.manual_seed(0)
    model = build_model("lstm", 2, input_dim=4, lstm_hidden=8, fc_dim=8, dropout=0.5)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    batches = _separable_batches(0, batches=2)
    a = evaluate_epoch(model, batches, sequence_forward)
    b = evaluate_epoch(model, batches, sequence_forward)
    assert a == b  # dropout off: deterministic
    assert not model.training
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_authors_rmsprop_puts_epsilon_inside_the_square_root_and_uses_the_new_mean_square():
    """sparnn/optimizers/rmsprop.py: ms ← ρ ms + (1−ρ) g²; p ← p − lr g / sqrt(ms + ε); no momentum."""
    torch.manual_seed(0)
    p = torch.nn.Parameter(torch.randn(5, dtype=torch.float64))
    opt = make_optimizer("rmsprop", [p], lr=0.01, rmsprop_decay=0.9, rmsprop_eps=1e-6)
    want, ms = p.detach().clone(), torch.zeros(5, dtype=torch.float64)
    for step in range(4):
        grad = torch.randn(5, dtype=torch.float64) * 10.0 ** (-step)  # shrinking gradients: ε matters at the end
        p.grad = grad.clone()
        opt.step()
        ms = 0.9 * ms + 0.1 * grad**2
        want = want - 0.01 * grad / torch.sqrt(ms + 1e-6)
        torch.testing.assert_close(p.detach(), want, rtol=1e-12, atol=1e-15)
    # torch's RMSprop (ε outside the root, ρ 0.99) is a different update
    q = torch.nn.Parameter(torch.ones(3))
    torch_opt, ours = torch.optim.RMSprop([q], lr=0.01), make_optimizer("rmsprop", [torch.nn.Parameter(torch.ones(3))], 0.01)
    assert not isinstance(ours, torch.optim.RMSprop) and isinstance(torch_opt, torch.optim.RMSprop)


def test_authors_rmsprop_adds_weight_decay_to_the_gradient():
    """g ← g + wd·p before the mean square and the step: p = 2, g = 0.5, wd = 0.1 → g' = 0.7,
    ms = 0.1·0.49 = 0.049, p ← 2 − 0.01·0.7/√(0.049 + 1e-6)."""
    p = torch.nn.Parameter(torch.tensor([2.0], dtype=torch.float64))
    opt = make_optimizer("rmsprop", [p], lr=0.01, weight_decay=0.1, rmsprop_decay=0.9, rmsprop_eps=1e-6)
    p.grad = torch.tensor([0.5], dtype=torch.float64)
    opt.step()
    assert p.item() == pytest.approx(2 - 0.01 * 0.7 / math.sqrt(0.049 + 1e-6), rel=1e-12)
    p.grad = torch.tensor([0.5], dtype=torch.float64)  # second step: the decayed mean square, the moved p
    p0 = p.item()
    g = 0.5 + 0.1 * p0
    ms = 0.9 * 0.049 + 0.1 * g**2
    opt.step()
    assert p.item() == pytest.approx(p0 - 0.01 * g / math.sqrt(ms + 1e-6), rel=1e-12)


def test_rmsprop_torch_is_the_previous_recipes_update_with_epsilon_outside_the_root():
    """rmsprop_torch (the recipe before the authors'): ms ← 0.99·ms + 0.01·g²; p ← p − lr·g/(√ms + 1e-8),
    the decay and epsilon of the train section notwithstanding. Tiny gradients tell ε's place apart:
    g = 1e-6 gives √ms = 1e-7, a step of lr·1e-6/(1e-7 + 1e-8), ~100× the authors' lr·1e-6/√(1e-14 + 1e-8)."""
    p = torch.nn.Parameter(torch.tensor([1.0, -1.0], dtype=torch.float64))
    opt = make_optimizer("rmsprop_torch", [p], lr=0.01, rmsprop_decay=0.9, rmsprop_eps=1e-6)
    assert isinstance(opt, torch.optim.RMSprop)
    p.grad = torch.tensor([1e-6, -2e-6], dtype=torch.float64)
    opt.step()  # √ms = √(0.01·1e-12) = 1e-7: p0 ← 1 − 0.01·1e-6/1.1e-7; p1: √ms = 2e-7, −1 + 0.01·2e-6/2.1e-7
    torch.testing.assert_close(p.detach(), torch.tensor([1 - 0.01 / 0.11, -1 + 0.02 / 0.21], dtype=torch.float64), rtol=1e-12, atol=1e-15)
    want, ms = p.detach().clone(), 0.01 * torch.tensor([1e-6, -2e-6], dtype=torch.float64) ** 2
    for grad in ([3.0, 0.5], [0.0, 1e-3]):
        g = torch.tensor(grad, dtype=torch.float64)
        p.grad = g.clone()
        opt.step()
        ms = 0.99 * ms + 0.01 * g**2
        want = want - 0.01 * g / (ms.sqrt() + 1e-8)
        torch.testing.assert_close(p.detach(), want, rtol=1e-12, atol=1e-15)
    q = torch.nn.Parameter(torch.tensor([1.0], dtype=torch.float64))
    decayed = make_optimizer("rmsprop_torch", [q], lr=0.01, weight_decay=0.1)
    q.grad = torch.tensor([0.5], dtype=torch.float64)
    decayed.step()  # g' = 0.5 + 0.1·1 = 0.6, ms = 0.01·0.36
    assert q.item() == pytest.approx(1.0 - 0.01 * 0.6 / (math.sqrt(0.0036) + 1e-8), rel=1e-12)


def test_train_epoch_does_not_clip_gradients_unless_asked():
    """A huge gradient moves RMSProp's first step by lr·g/sqrt(0.1 g² + ε) ≈ lr·√10, clipped or not;
    with SGD the unclipped step is lr·g and a clip at norm 1 caps it."""
    model = torch.nn.Linear(1, 1, bias=False)
    torch.nn.init.zeros_(model.weight)

    def forward(m, batch, device):
        loss = (m(torch.ones(1, 1)) * 1e4).sum()
        return loss, torch.zeros(1, dtype=torch.long)

    opt = make_optimizer("sgd", model.parameters(), lr=1e-6)
    train_epoch(model, [{"label": np.zeros(1)}], opt, forward)
    assert model.weight.item() == pytest.approx(-1e-6 * 1e4)  # no clip by default (momentum starts at 0)
    torch.nn.init.zeros_(model.weight)
    opt = make_optimizer("sgd", model.parameters(), lr=1e-6)
    train_epoch(model, [{"label": np.zeros(1)}], opt, forward, max_grad_norm=1.0)
    assert model.weight.item() == pytest.approx(-1e-6)


def test_make_optimizer_builds_the_named_optimizer():
    params = [torch.nn.Parameter(torch.zeros(2))]
    rms = make_optimizer("rmsprop", params, 1e-3)
    assert (rms.defaults["decay"], rms.defaults["eps"]) == (0.9, 1e-6)
    assert isinstance(make_optimizer("adam", params, 1e-3), torch.optim.Adam)
    sgd = make_optimizer("sgd", params, 1e-3, weight_decay=0.1)
    assert sgd.defaults["momentum"] == 0.9 and sgd.defaults["weight_decay"] == 0.1
    with pytest.raises(ValueError, match="unknown optimizer 'lbfgs'"):
        make_optimizer("lbfgs", params, 1e-3)


# ----------------------------------------------------------------------------------------
# validation split


def _index(per_label: dict[int, int]) -> list[dict]:
    return [{"video_id": f"c{label}/v{i:02d}", "label": label} for label, n in per_label.items() for i in range(n)]


def test_split_validation_is_stratified_and_disjoint():
    rows = _index({0: 10, 1: 4, 2: 2, 3: 1})  # ids without a group pattern: each video is its own group
    train, val = split_validation(rows, 0.25, seed=0)
    ids = lambda rs: [r["video_id"] for r in rs]  # noqa: E731
    assert sorted(ids(train) + ids(val)) == sorted(ids(rows))
    assert not set(ids(train)) & set(ids(val))
    per_label = Counter(r["label"] for r in val)
    assert per_label == {0: 2, 1: 1, 2: 1}  # round(0.25·n), at least one, never the only video
    assert Counter(r["label"] for r in train)[3] == 1


def test_split_validation_is_deterministic_whatever_the_input_order():
    rows = _index({0: 8, 1: 8})
    first = split_validation(rows, 0.5, seed=3)
    again = split_validation(list(reversed(rows)), 0.5, seed=3)
    assert first == again
    other = split_validation(rows, 0.5, seed=4)
    assert {r["video_id"] for r in other[1]} != {r["video_id"] for r in first[1]}


def test_split_validation_with_zero_fraction_keeps_everything_for_training():
    rows = _index({0: 3})
    assert split_validation(rows, 0.0, seed=0) == (rows, [])


@pytest.mark.parametrize(
    ("video_id", "group"),
    [
        ("ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01", "ApplyEyeMakeup/g08"),
        ("ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c07", "ApplyEyeMakeup/g08"),
        ("HandStandPushups/v_HandstandPushups_g25_c02", "HandStandPushups/g25"),  # the folder/file spelling quirk
        ("brush_hair/April_09_brush_hair_u_nm_np1_ba_goo_0", "brush_hair/April_09_brush_hair_u_nm_np1_ba_goo"),
        ("brush_hair/April_09_brush_hair_u_nm_np1_ba_goo_2", "brush_hair/April_09_brush_hair_u_nm_np1_ba_goo"),
        ("c0/v01", "c0/v01"),
    ],
)
def test_video_group_is_the_long_video_a_clip_was_cut_from(video_id, group):
    assert video_group(video_id) == group


def test_validation_split_of_the_real_ucf101_train_list_shares_no_group_with_training():
    """On split 1's 9,537 real train ids: stratified by class, and no gXX group on both sides."""
    from videolstm.data.datasets.ucf101 import parse_class_index

    splits = UCF101_SPLITS
    classes = parse_class_index((splits / "classInd.txt").read_text(), "classInd.txt")
    rows = []
    for line in (splits / "trainlist01.txt").read_text().splitlines():
        path = line.split()[0]
        rows.append({"video_id": path.rsplit(".", 1)[0], "label": classes.index(path.split("/")[0])})
    assert len(rows) == 9537
    train, val = split_validation(rows, 0.2, seed=0)
    train_groups = {video_group(r["video_id"]) for r in train}
    val_groups = {video_group(r["video_id"]) for r in val}
    assert not train_groups & val_groups
    assert {r["label"] for r in val} == set(range(101))  # every class validated
    assert 0.15 < len(val) / len(rows) < 0.25
    # the previous per-video split would have put clips of ~every validation group into training
    assert len(val_groups) > 101


def _previous_split(rows, fraction, seed):
    """The per-video split of the recipe before the group-disjoint one (de3df4c^ videolstm/training.py),
    copied as it was: per label, the rows sorted by id, a seeded permutation, round(fraction·n) held out."""
    rng = np.random.default_rng(seed)
    by_label = {}
    for row in sorted(rows, key=lambda r: r["video_id"]):
        by_label.setdefault(int(row["label"]), []).append(row)
    train, val = [], []
    for label in sorted(by_label):
        group = by_label[label]
        order = rng.permutation(len(group))
        n_val = min(len(group) - 1, max(1, round(fraction * len(group))))
        val += [group[i] for i in order[:n_val]]
        train += [group[i] for i in order[n_val:]]
    return train, val


def test_val_split_videos_is_the_previous_per_video_split_and_can_share_groups_with_training():
    """train.val_split: videos (a deviation): each class's *videos* (not groups) are held out, the
    previous recipe's draw exactly; clips of one group then land on both sides."""
    rows = [{"video_id": f"C{c}/v_C{c}_g{g:02d}_c{k:02d}", "label": c} for c in range(3) for g in range(1, 6) for k in range(1, 4)]
    for seed in (0, 1, 7):
        train, val = split_validation(rows, 0.2, seed, validation_grouping("videos"))
        assert (train, val) == _previous_split(rows, 0.2, seed)
        assert Counter(r["label"] for r in val) == {0: 3, 1: 3, 2: 3}  # round(0.2 · 15 videos)
    train, val = split_validation(rows, 0.2, 0, validation_grouping("videos"))
    assert {video_group(r["video_id"]) for r in train} & {video_group(r["video_id"]) for r in val}
    grouped_train, grouped_val = split_validation(rows, 0.2, 0, validation_grouping("groups"))
    assert not {video_group(r["video_id"]) for r in grouped_train} & {video_group(r["video_id"]) for r in grouped_val}
    assert Counter(r["label"] for r in grouped_val) == {0: 3, 1: 3, 2: 3}  # one of 5 groups, 3 clips each
    with pytest.raises(ValueError, match="unknown validation split 'random'"):
        validation_grouping("random")
