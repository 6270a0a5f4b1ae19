"""TV-L1 optical flow in PyTorch, batched over frame pairs, on CUDA when available else CPU.

The algorithm is the duality-based TV-L1 of Zach, Pock and Bischof (DAGM 2007) in the form of
Sánchez, Meinhardt-Llopis and Facciolo ("TV-L1 Optical Flow Estimation", IPOL 2013), which
OpenCV's ``DualTVL1OpticalFlow`` implements. With ``u = (u1, u2)`` the flow, ``I0, I1`` the two
frames (grey levels 0..255) and ``u0`` the flow at the last warp, it minimises

    sum |grad u1| + |grad u2| + lambda * |rho(u)|,   rho(u) = I1(x + u0) + grad I1(x + u0) . (u - u0) - I0(x)

by alternating, for a fixed warp, (a) the pointwise thresholding step on the auxiliary field
``v`` (theta couples ``u`` and ``v``; ``l_t = lambda * theta``)::

    v = u + l_t * grad I1w            if rho(u) < -l_t |grad I1w|^2
    v = u - l_t * grad I1w            if rho(u) >  l_t |grad I1w|^2
    v = u - rho(u) grad I1w / |grad I1w|^2   otherwise (0 where |grad I1w|^2 <= float eps)

(b) ``u = v + theta * div p`` and (c) Chambolle's dual ROF step with ``tau / theta``::

    p = (p + tau/theta * grad u) / (1 + tau/theta * |grad u|)

Around these: a coarse-to-fine pyramid (``scales`` levels, each ``scale_step`` times the one
below, bilinear; a level under 16 pixels on a side ends the pyramid), ``warps`` re-linearisations
per level (bicubic warping of I1 and its centred gradient, zero outside the frame), up to
``outer_iterations`` rounds of a 5×5 median filter of ``u`` followed by up to
``inner_iterations`` steps (a)-(c), stopping early once the summed squared change of ``u`` in a
step is at most ``epsilon^2 * H * W``. Gradients: centred for I1 (one-sided halves at the border),
forward differences for ``u`` (0 at the last row/column), and the divergence their negative
adjoint (backward differences). The dual ``p`` restarts at 0 on each level. Defaults are
OpenCV's: tau 0.25, lambda 0.15, theta 0.3, epsilon 0.01, gamma 0 (no illumination term),
median 5, 5 scales of 0.8, 5 warps, 10 outer × 30 inner.

Each pair of a batch stops on its own criterion (a finished pair is frozen while the others
continue), so a pair's flow does not depend on the batch it was computed in. Two OpenCV details
are mirrored so that the two agree to a fraction of a pixel: ``cv2.remap`` rounds sample
positions to 1/32 pixel, and ``cv2.resize`` places pixel centres at ``(i + 0.5) / scale - 0.5``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = ["TVL1Params", "tvl1_flow", "default_device", "pyramid_sizes"]

_FLOAT_EPS = torch.finfo(torch.float32).eps  # std::numeric_limits<float>::epsilon()
_REMAP_SUBPIXELS = 32  # cv2.remap's INTER_TAB_SIZE: sample positions are rounded to 1/32 px
_MIN_LEVEL_SIDE = 16  # a pyramid level smaller than this on either side ends the pyramid


@dataclass(frozen=True)
class TVL1Params:
    """TV-L1 settings; the defaults are OpenCV's ``DualTVL1OpticalFlow_create()`` ones."""

    tau: float = 0.25
    lambda_: float = 0.15
    theta: float = 0.3
    scales: int = 5
    warps: int = 5
    epsilon: float = 0.01
    inner_iterations: int = 30
    outer_iterations: int = 10
    scale_step: float = 0.8
    median: int = 5

    def __post_init__(self) -> None:
        checks = {
            "tau": self.tau > 0,
            "lambda_": self.lambda_ > 0,
            "theta": self.theta > 0,
            "epsilon": self.epsilon > 0,
            "scales": self.scales >= 1,
            "warps": self.warps >= 1,
            "inner_iterations": self.inner_iterations >= 1,
            "outer_iterations": self.outer_iterations >= 1,
            "scale_step": 0 < self.scale_step < 1,
            "median": self.median in (0, 1, 3, 5),
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"invalid TV-L1 parameter(s) {bad}: {self}")


def default_device() -> torch.device:
    """``cuda`` when a GPU is visible, else ``cpu``."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def pyramid_sizes(height: int, width: int, scales: int, scale_step: float) -> list[tuple[int, int]]:
    """``(H, W)`` of each pyramid level, finest first (``round(side * scale_step)`` per level).

    The pyramid stops before the first level with a side under 16 pixels, as OpenCV's does.
    """
    sizes = [(height, width)]
    for _ in range(1, scales):
        h, w = sizes[-1]
        nh, nw = round(h * scale_step), round(w * scale_step)
        if nh < _MIN_LEVEL_SIDE or nw < _MIN_LEVEL_SIDE:
            break
        sizes.append((nh, nw))
    return sizes


def _sample(image: torch.Tensor, x: torch.Tensor, y: torch.Tensor, mode: str, padding: str) -> torch.Tensor:
    """``image (B, 1, H, W)`` sampled at pixel coordinates ``x, y (B, h, w)`` → ``(B, 1, h, w)``."""
    height, width = image.shape[-2:]
    grid = torch.stack((x * (2.0 / max(width - 1, 1)) - 1.0, y * (2.0 / max(height - 1, 1)) - 1.0), dim=-1)
    return F.grid_sample(image, grid, mode=mode, padding_mode=padding, align_corners=True)


def _resize(image: torch.Tensor, size: tuple[int, int], inverse_scale: tuple[float, float]) -> torch.Tensor:
    """Bilinear resize ``(B, 1, H, W)`` → ``(B, 1, *size)`` with OpenCV's pixel-centre mapping.

    Output pixel ``i`` reads input position ``(i + 0.5) * inverse_scale - 0.5`` (clamped to the
    frame: border pixels replicate), as ``cv2.resize(..., INTER_LINEAR)`` does.
    """
    height, width = size
    ys = (torch.arange(height, device=image.device, dtype=image.dtype) + 0.5) * inverse_scale[0] - 0.5
    xs = (torch.arange(width, device=image.device, dtype=image.dtype) + 0.5) * inverse_scale[1] - 0.5
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    batch = image.shape[0]
    return _sample(image, grid_x.expand(batch, -1, -1), grid_y.expand(batch, -1, -1), "bilinear", "border")


def _centred_gradient(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Half the central difference, with the border replicated: ``(B, 1, H, W)`` → (d/dx, d/dy)."""
    padded = F.pad(image, (1, 1, 1, 1), mode="replicate")
    dx = 0.5 * (padded[..., 1:-1, 2:] - padded[..., 1:-1, :-2])
    dy = 0.5 * (padded[..., 2:, 1:-1] - padded[..., :-2, 1:-1])
    return dx, dy


def _forward_gradient(u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward differences of ``(B, 1, H, W)``, 0 on the last column (d/dx) and last row (d/dy)."""
    dx = F.pad(u[..., :, 1:] - u[..., :, :-1], (0, 1, 0, 0))
    dy = F.pad(u[..., 1:, :] - u[..., :-1, :], (0, 0, 0, 1))
    return dx, dy


def _divergence(px: torch.Tensor, py: torch.Tensor) -> torch.Tensor:
    """Backward-difference divergence (the negative adjoint of :func:`_forward_gradient`), p(-1) = 0."""
    return (px - F.pad(px[..., :, :-1], (1, 0, 0, 0))) + (py - F.pad(py[..., :-1, :], (0, 0, 1, 0)))


def _merge_exchange_network(n: int) -> list[tuple[int, int]]:
    """Batcher's merge-exchange sorting network for ``n`` wires (Knuth, TAOCP 5.2.2, Algorithm M).

    Comparator ``(i, j)``, ``i < j``, puts the smaller value on wire ``i``; applying all of them
    in order sorts any input.
    """
    comparators: list[tuple[int, int]] = []
    t = max(1, math.ceil(math.log2(n)))
    p = 1 << (t - 1)
    while p > 0:
        q, r, d = 1 << (t - 1), 0, p
        while True:
            comparators.extend((i, i + d) for i in range(n - d) if i & p == r)
            if q == p:
                break
            d, q, r = q - p, q >> 1, p
        p >>= 1
    return comparators


def _selection_network(n: int, rank: int) -> list[tuple[int, int]]:
    """The comparators of :func:`_merge_exchange_network` that the wire ``rank`` depends on."""
    needed = {rank}
    kept = []
    for i, j in reversed(_merge_exchange_network(n)):
        if i in needed or j in needed:
            kept.append((i, j))
            needed |= {i, j}
    return kept[::-1]


_MEDIAN_NETWORKS: dict[int, list[tuple[int, int]]] = {}


def _median(u: torch.Tensor, size: int) -> torch.Tensor:
    """``size × size`` median filter of ``(B, 1, H, W)`` with the border replicated (``cv2.medianBlur``).

    A min/max selection network over the ``size²`` shifted copies (element-wise ops only, fast on
    both CPU and GPU, unlike ``Tensor.median`` over unfolded windows).
    """
    n = size * size
    network = _MEDIAN_NETWORKS.get(size)
    if network is None:
        network = _MEDIAN_NETWORKS[size] = _selection_network(n, n // 2)
    r = size // 2
    height, width = u.shape[-2:]
    padded = F.pad(u, (r, r, r, r), mode="replicate")
    wires = [padded[..., dy : dy + height, dx : dx + width] for dy in range(size) for dx in range(size)]
    for i, j in network:
        a, b = wires[i], wires[j]
        wires[i], wires[j] = torch.minimum(a, b), torch.maximum(a, b)
    return wires[n // 2].contiguous()


def _one_scale(i0: torch.Tensor, i1: torch.Tensor, u1: torch.Tensor, u2: torch.Tensor, p: TVL1Params) -> tuple[torch.Tensor, torch.Tensor]:
    """Refine ``u1, u2 (B, 1, H, W)`` on one pyramid level (frames ``i0, i1 (B, 1, H, W)``)."""
    batch, _, height, width = i0.shape
    scaled_epsilon = p.epsilon * p.epsilon * height * width
    l_t = p.lambda_ * p.theta
    taut = p.tau / p.theta
    i1x, i1y = _centred_gradient(i1)
    ys, xs = torch.meshgrid(torch.arange(height, device=i0.device, dtype=i0.dtype), torch.arange(width, device=i0.device, dtype=i0.dtype), indexing="ij")
    zeros = torch.zeros_like(u1)
    p11, p12, p21, p22 = zeros, zeros.clone(), zeros.clone(), zeros.clone()
    stacked = torch.cat((i1, i1x, i1y), dim=1)  # (B, 3, H, W): warped together
    for _ in range(p.warps):
        map_x = torch.round((xs + u1[:, 0]) * _REMAP_SUBPIXELS) / _REMAP_SUBPIXELS
        map_y = torch.round((ys + u2[:, 0]) * _REMAP_SUBPIXELS) / _REMAP_SUBPIXELS
        warped = _sample(stacked, map_x, map_y, "bicubic", "zeros")
        i1w, i1wx, i1wy = warped[:, 0:1], warped[:, 1:2], warped[:, 2:3]
        grad = i1wx * i1wx + i1wy * i1wy
        rho_c = i1w - i1wx * u1 - i1wy * u2 - i0
        has_grad = grad > _FLOAT_EPS
        safe_grad = torch.where(has_grad, grad, torch.ones_like(grad))
        active = torch.ones(batch, 1, 1, 1, dtype=torch.bool, device=i0.device)
        for _ in range(p.outer_iterations):
            if p.median > 1:
                u1 = torch.where(active, _median(u1, p.median), u1)
                u2 = torch.where(active, _median(u2, p.median), u2)
            for _ in range(p.inner_iterations):
                # (a) thresholding step
                rho = rho_c + i1wx * u1 + i1wy * u2
                fi = torch.where(
                    rho < -l_t * grad,
                    torch.full_like(rho, l_t),
                    torch.where(rho > l_t * grad, torch.full_like(rho, -l_t), torch.where(has_grad, -rho / safe_grad, zeros)),
                )
                v1 = u1 + fi * i1wx
                v2 = u2 + fi * i1wy
                # (b) primal step
                new_u1 = v1 + p.theta * _divergence(p11, p12)
                new_u2 = v2 + p.theta * _divergence(p21, p22)
                error = ((new_u1 - u1) ** 2 + (new_u2 - u2) ** 2).sum(dim=(1, 2, 3)).view(batch, 1, 1, 1)
                u1 = torch.where(active, new_u1, u1)
                u2 = torch.where(active, new_u2, u2)
                # (c) dual step
                u1x, u1y = _forward_gradient(u1)
                u2x, u2y = _forward_gradient(u2)
                ng1 = 1.0 + taut * torch.sqrt(u1x * u1x + u1y * u1y)
                ng2 = 1.0 + taut * torch.sqrt(u2x * u2x + u2y * u2y)
                p11 = torch.where(active, (p11 + taut * u1x) / ng1, p11)
                p12 = torch.where(active, (p12 + taut * u1y) / ng1, p12)
                p21 = torch.where(active, (p21 + taut * u2x) / ng2, p21)
                p22 = torch.where(active, (p22 + taut * u2y) / ng2, p22)
                active = active & (error > scaled_epsilon)
                if not bool(active.any()):
                    break
            if not bool(active.any()):
                break
    return u1, u2


@torch.no_grad()
def tvl1_flow(prev: torch.Tensor, next_: torch.Tensor, params: TVL1Params | None = None, device: torch.device | str | None = None) -> torch.Tensor:
    """TV-L1 flow of a batch of frame pairs.

    Args:
        prev, next_: ``(B, H, W)`` (or ``(H, W)``) grey frames ``t`` and ``t+1``, uint8 or float
            grey levels 0..255, ``H, W >= 3``.
        params: the settings (:class:`TVL1Params`; default OpenCV's).
        device: where to compute (default :func:`default_device`).

    Returns:
        ``float32 (B, H, W, 2)`` (or ``(H, W, 2)``) on the CPU: displacement (x, y) in pixels from
        frame ``t`` to ``t+1`` (``prev[y, x] ≈ next[y + flow_y, x + flow_x]``).
    """
    params = params or TVL1Params()
    if prev.shape != next_.shape:
        raise ValueError(f"frames differ in shape: prev {tuple(prev.shape)}, next {tuple(next_.shape)}")
    single = prev.dim() == 2
    if single:
        prev, next_ = prev[None], next_[None]
    if prev.dim() != 3 or prev.shape[-1] < 3 or prev.shape[-2] < 3:
        raise ValueError(f"expected (B, H, W) or (H, W) grey frames with H, W >= 3, got {tuple(prev.shape)}")
    device = torch.device(device) if device is not None else default_device()
    i0 = prev.to(device, torch.float32, non_blocking=True)[:, None]
    i1 = next_.to(device, torch.float32, non_blocking=True)[:, None]
    sizes = pyramid_sizes(i0.shape[-2], i0.shape[-1], params.scales, params.scale_step)
    levels = [(i0, i1)]
    inverse = 1.0 / params.scale_step
    for size in sizes[1:]:
        a, b = levels[-1]
        levels.append((_resize(a, size, (inverse, inverse)), _resize(b, size, (inverse, inverse))))
    u1 = torch.zeros_like(levels[-1][0])
    u2 = torch.zeros_like(levels[-1][0])
    for level in range(len(levels) - 1, -1, -1):
        a, b = levels[level]
        u1, u2 = _one_scale(a, b, u1, u2, params)
        if level == 0:
            break
        finer = sizes[level - 1]
        coarse = sizes[level]
        ratio = (coarse[0] / finer[0], coarse[1] / finer[1])
        u1 = _resize(u1, finer, ratio) * inverse
        u2 = _resize(u2, finer, ratio) * inverse
    flow = torch.stack((u1[:, 0], u2[:, 0]), dim=-1).float().cpu()
    return flow[0] if single else flow


def flops_per_pair(height: int, width: int, params: TVL1Params | None = None) -> float:
    """Upper bound on a pair's floating-point operations (every iteration run, no early stop).

    Per pixel and inner step ≈ 50 operations (thresholding ~16, primal step with divergences ~10,
    error ~5, forward gradients and dual step ~20); per outer round a 5×5 median (~25 × log2 25
    comparisons ×2 components); per warp three bicubic samples (~3 × 16 × 2) plus ~10. Used for
    the projection's GPU-flow row, not to time anything.
    """
    params = params or TVL1Params()
    median = 2 * 25 * math.log2(25) if params.median > 1 else 0.0
    per_warp = 3 * 16 * 2 + 10 + params.outer_iterations * (median + params.inner_iterations * 50)
    pixels = sum(h * w for h, w in pyramid_sizes(height, width, params.scales, params.scale_step))
    return float(pixels * params.warps * per_warp)
