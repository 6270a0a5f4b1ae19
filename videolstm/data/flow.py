"""Dense optical flow between consecutive frames, and its uint8 storage format.

Conventions used throughout:

- A flow field is ``float32 (H, W, 2)`` in pixels: channel 0 is the x (column) displacement,
  channel 1 the y (row) displacement, and it maps frame ``t`` onto frame ``t+1``:
  ``prev[y, x] ≈ next[y + flow[y, x, 1], x + flow[y, x, 0]]`` (what :func:`warp_backward` uses).
- A video of ``T`` frames has ``T - 1`` flow fields; field ``t`` goes from frame ``t`` to frame
  ``t + 1`` (RGB and flow streams therefore differ in length by one: MMAction2 issue #577).
- Storage follows denseflow: clip to ``±bound`` and map linearly onto ``0..255`` (x and y
  separately), see :func:`quantize_flow`.

OpenCV's flow objects are built once per (process, thread, settings, frame size) and reused:
building a TV-L1 object per pair costs more than a small pair's flow, and a DIS object must not
be shared across frame sizes (see :meth:`FlowEstimator.opencv_object`). :class:`FlowEstimator` holds one;
:func:`compute_flow` keeps a small per-thread cache of them. OpenCV threads internally; use
:func:`set_threads` (1 per Ray actor) to stop actors oversubscribing the cores.
"""

from __future__ import annotations

import threading
from typing import Any

import cv2
import numpy as np

from videolstm.config import FlowConfig

__all__ = [
    "METHODS",
    "DIS_PRESETS",
    "OPENCV_TVL1_DEFAULTS",
    "FlowEstimator",
    "compute_flow",
    "quantize_flow",
    "dequantize_flow",
    "video_flow",
    "to_gray",
    "warp_backward",
    "photometric_error",
    "set_threads",
    "get_threads",
]

#: The flow methods and the keyword parameters each accepts in :func:`compute_flow`.
METHODS: dict[str, tuple[str, ...]] = {
    "tvl1": ("warps", "scales", "scale_step", "inner_iterations", "outer_iterations", "tau", "lambda_", "theta", "epsilon"),
    "tvl1_torch": ("warps", "scales", "scale_step", "inner_iterations", "outer_iterations", "tau", "lambda_", "theta", "epsilon"),
    "dis": ("preset",),
    "farneback": ("pyr_scale", "levels", "winsize", "iterations", "poly_n", "poly_sigma"),
}

DIS_PRESETS: dict[str, int] = {
    "ultrafast": cv2.DISOpticalFlow_PRESET_ULTRAFAST,
    "fast": cv2.DISOpticalFlow_PRESET_FAST,
    "medium": cv2.DISOpticalFlow_PRESET_MEDIUM,
}

#: OpenCV's own ``DualTVL1OpticalFlow_create`` defaults (5 warps, 5 scales, 0.8, 30 inner, 10 outer).
OPENCV_TVL1_DEFAULTS: dict[str, Any] = {
    "warps": 5,
    "scales": 5,
    "scale_step": 0.8,
    "inner_iterations": 30,
    "outer_iterations": 10,
}

_FARNEBACK_DEFAULTS: dict[str, Any] = {
    "pyr_scale": 0.5,
    "levels": 3,
    "winsize": 15,
    "iterations": 3,
    "poly_n": 5,
    "poly_sigma": 1.2,
}


def _default_params(method: str) -> dict[str, Any]:
    """Parameters used when :func:`compute_flow` is given none: :class:`FlowConfig`'s defaults."""
    defaults = FlowConfig()
    if method in ("tvl1", "tvl1_torch"):
        return {
            "warps": defaults.tvl1_warps,
            "scales": defaults.tvl1_scales,
            "scale_step": defaults.tvl1_scale_step,
            "inner_iterations": defaults.tvl1_inner_iterations,
            "outer_iterations": defaults.tvl1_outer_iterations,
        }
    if method == "dis":
        return {"preset": defaults.dis_preset}
    return dict(_FARNEBACK_DEFAULTS)


_DEFAULTS: dict[str, dict[str, Any]] = {}
_SHAPES_PER_ESTIMATOR = 4


def _defaults(method: str) -> dict[str, Any]:
    if method not in _DEFAULTS:
        _DEFAULTS[method] = _default_params(method)
    return _DEFAULTS[method]


def _check_method(method: str) -> None:
    if method not in METHODS:
        raise ValueError(f"unknown flow method {method!r}; valid methods: {sorted(METHODS)}")


class FlowEstimator:
    """One flow method with fixed settings; builds its OpenCV object once (per frame size) and reuses it.

    Not thread-safe (OpenCV algorithm objects keep state): use one estimator per thread.

    Args:
        method: ``"tvl1"`` (``cv2.optflow.DualTVL1OpticalFlow``), ``"tvl1_torch"`` (the same
            algorithm in PyTorch, :mod:`videolstm.data.tvl1_torch`, on CUDA when available),
            ``"dis"`` (``cv2.DISOpticalFlow``) or ``"farneback"`` (``cv2.calcOpticalFlowFarneback``).
        **params: method settings (names in :data:`METHODS`); missing ones take
            :class:`FlowConfig`'s defaults (TV-L1: the fast settings, not OpenCV's).
    """

    def __init__(self, method: str = "tvl1", **params: Any) -> None:
        _check_method(method)
        unknown = sorted(set(params) - set(METHODS[method]))
        if unknown:
            raise ValueError(f"unknown parameter(s) {unknown} for flow method {method!r}; valid: {list(METHODS[method])}")
        self.method = method
        self.params = {**_defaults(method), **params}
        if method == "dis" and self.params["preset"] not in DIS_PRESETS:
            raise ValueError(f"unknown DIS preset {self.params['preset']!r}; valid presets: {sorted(DIS_PRESETS)}")
        self._by_shape: dict[tuple[int, int], Any] = {}

    def opencv_object(self, shape: tuple[int, int]) -> Any:
        """The OpenCV flow object used for ``(H, W)`` frames (None for Farneback), built on first use.

        One object per frame size: for a small frame OpenCV lowers DIS's finest scale and TV-L1's
        number of scales (e.g. 3 → 2 at 56x56 with scale step 0.5) and keeps the lowered value, so
        an object reused at a larger size gives a different flow (pixels apart) and DIS runs ~10x
        slower. A flow stage uses one size, so this costs one object per process.
        """
        impl = self._by_shape.get(shape)
        if impl is None:
            if len(self._by_shape) >= _SHAPES_PER_ESTIMATOR:
                self._by_shape.pop(next(iter(self._by_shape)))
            impl = self._by_shape[shape] = self._build()
        return impl

    @classmethod
    def from_config(cls, config: FlowConfig) -> FlowEstimator:
        """The estimator ``config.method`` with ``config``'s settings."""
        return cls(config.method, **_config_params(config))

    def _build(self) -> Any:
        p = self.params
        if self.method == "tvl1_torch":
            return self.torch_params()
        if self.method == "tvl1":
            tvl1 = cv2.optflow.DualTVL1OpticalFlow_create()  # type: ignore[attr-defined]  # contrib module, not in OpenCV's stubs
            tvl1.setWarpingsNumber(int(p["warps"]))
            tvl1.setScalesNumber(int(p["scales"]))
            tvl1.setScaleStep(float(p["scale_step"]))
            tvl1.setInnerIterations(int(p["inner_iterations"]))
            tvl1.setOuterIterations(int(p["outer_iterations"]))
            if "tau" in p:
                tvl1.setTau(float(p["tau"]))
            if "lambda_" in p:
                tvl1.setLambda(float(p["lambda_"]))
            if "theta" in p:
                tvl1.setTheta(float(p["theta"]))
            if "epsilon" in p:
                tvl1.setEpsilon(float(p["epsilon"]))
            return tvl1
        if self.method == "dis":
            return cv2.DISOpticalFlow_create(DIS_PRESETS[p["preset"]])  # type: ignore[attr-defined]  # not in OpenCV's stubs
        return None  # Farneback is a plain function

    def __call__(self, prev_gray: np.ndarray, next_gray: np.ndarray) -> np.ndarray:
        """Flow from ``prev_gray`` to ``next_gray`` (both ``uint8 (H, W)``): ``float32 (H, W, 2)`` pixels (x, y)."""
        prev_gray = _as_gray_u8(prev_gray, "prev_gray")
        next_gray = _as_gray_u8(next_gray, "next_gray")
        if prev_gray.shape != next_gray.shape:
            raise ValueError(f"frames differ in size: prev {prev_gray.shape}, next {next_gray.shape}")
        if self.method == "tvl1_torch":
            return self.pairs(prev_gray[None], next_gray[None])[0]
        if self.method == "farneback":
            p = self.params
            flow = cv2.calcOpticalFlowFarneback(  # type: ignore[call-overload]  # the stub wants an array for flow=None
                prev_gray,
                next_gray,
                None,
                float(p["pyr_scale"]),
                int(p["levels"]),
                int(p["winsize"]),
                int(p["iterations"]),
                int(p["poly_n"]),
                float(p["poly_sigma"]),
                0,
            )
        else:
            flow = self.opencv_object(prev_gray.shape).calc(prev_gray, next_gray, None)
        return np.asarray(flow, dtype=np.float32)

    def torch_params(self) -> Any:
        """``tvl1_torch``'s settings as a :class:`videolstm.data.tvl1_torch.TVL1Params` (OpenCV's defaults for tau, lambda, theta, epsilon)."""
        from videolstm.data.tvl1_torch import TVL1Params

        if self.method != "tvl1_torch":
            raise ValueError(f"torch_params is for method 'tvl1_torch', not {self.method!r}")
        settings: dict[str, Any] = {k: (float(v) if isinstance(v, float) else v) for k, v in self.params.items()}
        return TVL1Params(**settings)

    def pairs(self, prevs: np.ndarray, nexts: np.ndarray) -> np.ndarray:
        """Flow of many pairs: ``uint8 (N, H, W)`` frames ``t`` and ``t+1`` → ``float32 (N, H, W, 2)``.

        ``tvl1_torch`` computes up to :attr:`pairs_per_batch` pairs in one batch (on CUDA when
        available); the OpenCV methods loop over the pairs.
        """
        prevs, nexts = np.asarray(prevs), np.asarray(nexts)
        if prevs.shape != nexts.shape or prevs.ndim != 3 or prevs.dtype != np.uint8 or nexts.dtype != np.uint8:
            raise ValueError(f"expected two uint8 (N, H, W) stacks of equal shape, got {prevs.dtype} {prevs.shape} and {nexts.dtype} {nexts.shape}")
        if self.method != "tvl1_torch":
            return np.stack([self(a, b) for a, b in zip(prevs, nexts)]) if len(prevs) else np.zeros((0, *prevs.shape[1:], 2), np.float32)
        import torch

        from videolstm.data.tvl1_torch import tvl1_flow

        params = self.opencv_object(prevs.shape[1:])
        out = np.empty((*prevs.shape, 2), dtype=np.float32)
        for start in range(0, len(prevs), self.pairs_per_batch):
            stop = start + self.pairs_per_batch
            out[start:stop] = tvl1_flow(torch.from_numpy(prevs[start:stop]), torch.from_numpy(nexts[start:stop]), params).numpy()
        return out

    #: tvl1_torch: frame pairs per batch (bounds memory: ~60 float32 planes per pair; 16 pairs at 224² ≈ 200 MB).
    pairs_per_batch: int = 16

    def __repr__(self) -> str:
        return f"FlowEstimator({self.method!r}, {self.params})"


def _config_params(config: FlowConfig) -> dict[str, Any]:
    if config.method in ("tvl1", "tvl1_torch"):
        return {
            "warps": config.tvl1_warps,
            "scales": config.tvl1_scales,
            "scale_step": config.tvl1_scale_step,
            "inner_iterations": config.tvl1_inner_iterations,
            "outer_iterations": config.tvl1_outer_iterations,
        }
    if config.method == "dis":
        return {"preset": config.dis_preset}
    return {}


_CACHE = threading.local()
_CACHE_SIZE = 8


def _cached_estimator(method: str, params: dict[str, Any]) -> FlowEstimator:
    """The per-thread estimator for (method, params), built on first use (at most 8 kept)."""
    cache: dict | None = getattr(_CACHE, "estimators", None)
    if cache is None:
        cache = _CACHE.estimators = {}
    key = (method, tuple(sorted({**_defaults(method), **params}.items())))
    estimator = cache.get(key)
    if estimator is None:
        estimator = FlowEstimator(method, **params)
        if len(cache) >= _CACHE_SIZE:
            cache.pop(next(iter(cache)))
        cache[key] = estimator
    return estimator


def _as_gray_u8(image: np.ndarray, name: str) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 2 or image.dtype != np.uint8:
        raise ValueError(f"{name} must be a uint8 (H, W) grey image, got {image.dtype} {image.shape}; use to_gray()")
    return np.ascontiguousarray(image)  # DIS asserts continuous input


def to_gray(frame: np.ndarray) -> np.ndarray:
    """``uint8 (H, W, 3)`` RGB (or an already grey ``(H, W)``) → ``uint8 (H, W)`` luma."""
    frame = np.asarray(frame)
    if frame.dtype != np.uint8:
        raise ValueError(f"expected a uint8 frame, got {frame.dtype}")
    if frame.ndim == 2:
        return frame
    if frame.ndim == 3 and frame.shape[2] == 3:
        return cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
    raise ValueError(f"expected an (H, W, 3) RGB or (H, W) grey frame, got shape {frame.shape}")


def compute_flow(prev_gray: np.ndarray, next_gray: np.ndarray, method: str = "tvl1", **params: Any) -> np.ndarray:
    """Dense flow from ``prev_gray`` to ``next_gray``.

    Args:
        prev_gray, next_gray: ``uint8 (H, W)`` grey frames ``t`` and ``t+1``.
        method: ``"tvl1"``, ``"tvl1_torch"``, ``"dis"`` or ``"farneback"``.
        **params: the method's settings (see :data:`METHODS`): TV-L1 (both) ``warps, scales,
            scale_step, inner_iterations, outer_iterations`` (defaults: :class:`FlowConfig`'s
            fast settings; OpenCV's own are :data:`OPENCV_TVL1_DEFAULTS`) and optionally ``tau,
            lambda_, theta, epsilon`` (OpenCV's defaults when absent), DIS ``preset``
            (``"ultrafast" | "fast" | "medium"``), Farneback ``pyr_scale, levels, winsize,
            iterations, poly_n, poly_sigma``.

    Returns:
        ``float32 (H, W, 2)``: per-pixel displacement (x, y) in pixels.

    Raises:
        ValueError: unknown method (the message lists the valid ones) or parameter, or frames
            that are not equal-sized ``uint8`` grey images.
    """
    _check_method(method)
    return _cached_estimator(method, params)(prev_gray, next_gray)


def quantize_flow(flow: np.ndarray, bound: float = 20.0) -> np.ndarray:
    """denseflow's storage format: ``float (H, W, 2)`` pixels → ``uint8 (H, W, 2)``.

    Each component (x and y separately) is clipped to ``[-bound, bound]`` and mapped linearly::

        q = round((clip(f, -bound, bound) + bound) * 255 / (2 * bound))

    so ``-bound → 0``, ``0 → 127.5 → 128`` (round half to even gives 128), ``+bound → 255``.
    """
    if bound <= 0:
        raise ValueError(f"bound must be > 0, got {bound}")
    flow = np.asarray(flow, dtype=np.float32)
    scaled = (np.clip(flow, -bound, bound) + bound) * (255.0 / (2.0 * bound))
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def dequantize_flow(quantized: np.ndarray, bound: float = 20.0) -> np.ndarray:
    """Inverse of :func:`quantize_flow`: ``uint8 (..., 2)`` → ``float32`` pixels.

    ``f = q * (2 * bound) / 255 - bound``. For flow within ``±bound`` the round-trip error is
    at most half a step, ``bound * 2 / 255 / 2`` (0.0784 px for ``bound = 20``); beyond it the
    value saturates at ``±bound``.
    """
    if bound <= 0:
        raise ValueError(f"bound must be > 0, got {bound}")
    quantized = np.asarray(quantized)
    if quantized.dtype != np.uint8:
        raise ValueError(f"expected uint8 quantized flow, got {quantized.dtype}")
    return (quantized.astype(np.float32) * np.float32(2.0 * bound / 255.0) - np.float32(bound)).astype(np.float32)


def video_flow(frames: np.ndarray, config: FlowConfig, estimator: FlowEstimator | None = None) -> np.ndarray:
    """Quantized flow of a whole video, in denseflow's uint8 format.

    Args:
        frames: ``uint8 (T, H, W, 3)`` RGB, ``T >= 2``. Frames whose size is not
            ``(config.height, config.width)`` are resized to it first (``INTER_AREA``), so flow is
            in pixels of the resized frames. (``config.max_frames`` is a decoding setting: pass it
            to :func:`videolstm.data.video.decode_video`; it is not applied here.)
        config: method, settings and ``bound``.
        estimator: reuse this estimator instead of the per-thread cached one for ``config``.

    Returns:
        ``uint8 (T - 1, config.height, config.width, 2)``: field ``t`` is the flow from frame ``t``
        to frame ``t + 1`` (x then y), quantized with :func:`quantize_flow` at ``config.bound``.
        A video of ``T`` frames has ``T - 1`` flow fields.
    """
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be uint8 (T, H, W, 3) RGB, got {frames.dtype} {frames.shape}")
    if frames.shape[0] < 2:
        raise ValueError(f"optical flow needs at least 2 frames, got {frames.shape[0]}")
    if estimator is None:
        estimator = _cached_estimator(config.method, _config_params(config))
    height, width = config.height, config.width
    grays = []
    for frame in frames:
        gray = to_gray(frame)
        if gray.shape != (height, width):
            gray = cv2.resize(gray, (width, height), interpolation=cv2.INTER_AREA)
        grays.append(gray)
    if estimator.method == "tvl1_torch":  # all pairs of the video in batches
        stack = np.stack(grays)
        return quantize_flow(estimator.pairs(stack[:-1], stack[1:]), config.bound)
    out = np.empty((len(grays) - 1, height, width, 2), dtype=np.uint8)
    for t in range(len(grays) - 1):
        out[t] = quantize_flow(estimator(grays[t], grays[t + 1]), config.bound)
    return out


def warp_backward(next_frame: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Warp frame ``t+1`` back onto frame ``t``: ``out[y, x] = next[y + flow_y, x + flow_x]``.

    Bilinear sampling (``cv2.remap``); samples outside the frame replicate the border.

    Args:
        next_frame: ``(H, W)`` or ``(H, W, C)``, uint8 or float32.
        flow: ``float32 (H, W, 2)`` pixels (x, y), from frame ``t`` to ``t+1``.

    Returns:
        An array of ``next_frame``'s shape and dtype, approximately frame ``t``.
    """
    flow = np.asarray(flow, dtype=np.float32)
    next_frame = np.asarray(next_frame)
    if flow.ndim != 3 or flow.shape[2] != 2 or flow.shape[:2] != next_frame.shape[:2]:
        raise ValueError(f"flow must be (H, W, 2) matching the frame {next_frame.shape[:2]}, got {flow.shape}")
    height, width = flow.shape[:2]
    grid_x, grid_y = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    return cv2.remap(next_frame, grid_x + flow[..., 0], grid_y + flow[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def photometric_error(prev: np.ndarray, next_frame: np.ndarray, flow: np.ndarray) -> float:
    """Mean absolute difference between frame ``t`` and frame ``t+1`` warped back by ``flow``.

    Args:
        prev, next_frame: frames ``t`` and ``t+1``, ``(H, W)`` or ``(H, W, C)``, same shape.
        flow: ``float32 (H, W, 2)`` from ``t`` to ``t+1``. With ``np.zeros`` it gives the
            zero-flow baseline (plain frame difference).

    Returns:
        The mean over pixels whose sample point ``(x + u, y + v)`` lies inside the frame (so
        border replication does not count) and over channels, in the frames' intensity units.
    """
    prev = np.asarray(prev)
    next_frame = np.asarray(next_frame)
    if prev.shape != next_frame.shape:
        raise ValueError(f"frames differ in shape: prev {prev.shape}, next {next_frame.shape}")
    flow = np.asarray(flow, dtype=np.float32)
    warped = warp_backward(next_frame.astype(np.float32), flow)
    diff = np.abs(prev.astype(np.float32) - warped)
    if diff.ndim == 3:
        diff = diff.mean(axis=2)
    height, width = flow.shape[:2]
    grid_x, grid_y = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    sx, sy = grid_x + flow[..., 0], grid_y + flow[..., 1]
    inside = (sx >= 0) & (sx <= width - 1) & (sy >= 0) & (sy <= height - 1)
    if not inside.any():
        raise ValueError("the flow moves every pixel outside the frame; no photometric error can be measured")
    return float(diff[inside].mean())


def set_threads(n: int) -> int:
    """Set OpenCV's worker-thread count (``cv2.setNumThreads``); returns the previous count.

    ``n = 1`` runs OpenCV's parallel loops on one thread (one thread per Ray actor); ``n = 0``
    disables OpenCV's threading altogether; a negative ``n`` restores OpenCV's default.
    """
    previous = cv2.getNumThreads()
    cv2.setNumThreads(int(n))
    return previous


def get_threads() -> int:
    """OpenCV's current worker-thread count (``cv2.getNumThreads``)."""
    return cv2.getNumThreads()
