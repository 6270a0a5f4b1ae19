"""Per-frame CNNs ("ConvNet" in the paper) that turn a frame into pool5 maps and fc7 vectors.

* :class:`VGG16` — torchvision's layout exactly (``features.N``, ``classifier.N``), so a
  torchvision-format state dict (e.g. ``vgg16-397923af.pth``) loads from any URI with
  :func:`load_vgg16_weights`. pool5 is ``features``' output (512 × 7 × 7 for 224 × 224 input),
  fc7 the output of ``classifier.4`` (ReLU after the second 4096 layer).
* :class:`SmallFrameCNN` — the embedded default: VGG-style blocks of two 3 × 3 convs and a 2 × 2
  max-pool, an adaptive pool to the 7 × 7 "pool5" map, fc6/fc7 and a classifier.

For the flow stream the input is a stack of ``L`` consecutive flow fields (2L channels, x and y
interleaved per field) as in two-stream networks; when VGG-16 RGB weights are loaded for a
flow network, the first convolution's weights are averaged over the RGB channels and
replicated to 2L channels (cross-modality initialisation, Wang et al. 2016).
"""

from __future__ import annotations

import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from videolstm.config import StorageConfig
from videolstm.store import storage as st

#: torchvision's VGG-16 configuration ("M" = 2 × 2 max-pool).
VGG16_LAYERS: tuple[int | str, ...] = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")

#: ImageNet statistics used to normalise RGB input for every frame CNN.
RGB_MEAN = (0.485, 0.456, 0.406)
RGB_STD = (0.229, 0.224, 0.225)


@dataclass
class FrameFeatures:
    """Outputs of a frame CNN for a batch of N frames."""

    pool5: torch.Tensor  # (N, C, 7, 7)
    fc7: torch.Tensor  # (N, D)
    logits: torch.Tensor  # (N, K)


class VGG16(nn.Module):
    """VGG-16 with torchvision's module names; ``in_channels`` 3 (RGB) or 2L (flow stack).

    forward: x (N, in_channels, H, W) → :class:`FrameFeatures` with pool5 (N, 512, 7, 7),
    fc7 (N, 4096), logits (N, num_classes).
    """

    def __init__(self, num_classes: int, in_channels: int = 3, dropout: float = 0.5):
        super().__init__()
        layers: list[nn.Module] = []
        channels = in_channels
        for spec in VGG16_LAYERS:
            if spec == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                layers += [nn.Conv2d(channels, int(spec), kernel_size=3, padding=1), nn.ReLU(inplace=True)]
                channels = int(spec)
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(512 * 7 * 7, 4096),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(4096, 4096),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(4096, num_classes),
        )
        self.in_channels = in_channels
        self.pool5_channels = 512
        self.fc7_dim = 4096

    def forward(self, x: torch.Tensor) -> FrameFeatures:
        pool5 = self.avgpool(self.features(x))
        hidden = torch.flatten(pool5, 1)
        fc7 = self.classifier[:5](hidden)
        logits = self.classifier[5:](fc7)
        return FrameFeatures(pool5=pool5, fc7=fc7, logits=logits)


class SmallFrameCNN(nn.Module):
    """A small VGG-style frame CNN with a 7 × 7 pool5 map (the embedded default).

    forward: x (N, in_channels, H, W) → pool5 (N, channels[-1], 7, 7), fc7 (N, fc_dim),
    logits (N, num_classes). With 56 × 56 input and three blocks, the map is exactly 7 × 7 before
    the adaptive pool.
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int = 3,
        channels: Sequence[int] = (32, 64, 64),
        fc_dim: int = 256,
        dropout: float = 0.5,
    ):
        super().__init__()
        layers: list[nn.Module] = []
        previous = in_channels
        for width in channels:
            layers += [
                nn.Conv2d(previous, width, 3, padding=1),
                nn.BatchNorm2d(width),
                nn.ReLU(inplace=True),
                nn.Conv2d(width, width, 3, padding=1),
                nn.BatchNorm2d(width),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
            ]
            previous = width
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.fc = nn.Sequential(
            nn.Linear(previous * 49, fc_dim),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(fc_dim, fc_dim),
            nn.ReLU(inplace=True),
        )
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(fc_dim, num_classes))
        self.in_channels = in_channels
        self.pool5_channels = previous
        self.fc7_dim = fc_dim

    def forward(self, x: torch.Tensor) -> FrameFeatures:
        pool5 = self.avgpool(self.features(x))
        fc7 = self.fc(torch.flatten(pool5, 1))
        return FrameFeatures(pool5=pool5, fc7=fc7, logits=self.head(fc7))


def build_frame_cnn(
    arch: str,
    num_classes: int,
    in_channels: int,
    channels: Sequence[int] = (32, 64, 64),
    fc_dim: int = 256,
    dropout: float = 0.5,
) -> nn.Module:
    """Builder: ``arch`` "small" → :class:`SmallFrameCNN`, "vgg16" → :class:`VGG16`."""
    if arch == "small":
        return SmallFrameCNN(num_classes, in_channels, channels, fc_dim, dropout)
    if arch == "vgg16":
        return VGG16(num_classes, in_channels, dropout)
    raise ValueError(f"unknown frame CNN arch {arch!r}; expected 'small' or 'vgg16'")


class WeightsError(ValueError):
    """A weights file that is missing, not a state dict, or does not fit the network."""


def load_state_dict_uri(uri: str, storage: StorageConfig | None = None) -> dict[str, torch.Tensor]:
    """Load a state dict from any URI with ``torch.load(weights_only=True)``.

    Accepts a plain state dict or a checkpoint holding one under ``state_dict``/``model``.
    Raises :class:`WeightsError` naming the file when it is not a mapping of names to tensors.
    """
    try:
        with st.open_for_read(uri, storage) as fh:
            if zipfile.is_zipfile(fh):  # torch's zip format: only stored records (legacy files predate it)
                fh.seek(0)
                st.check_torch_zip(fh, uri, WeightsError)
            fh.seek(0)
            loaded = torch.load(fh, map_location="cpu", weights_only=True)
    except FileNotFoundError as exc:
        raise WeightsError(f"weights file {uri} does not exist") from exc
    except WeightsError:
        raise
    except Exception as exc:  # unpickling refused or not a torch file
        raise WeightsError(
            f"{uri} is not a loadable torch state dict ({type(exc).__name__}: {exc}); expected a file saved with torch.save(model.state_dict(), path)"
        ) from exc
    if isinstance(loaded, Mapping) and not _is_state_dict(loaded):
        for wrapper in ("state_dict", "model"):
            if isinstance(loaded.get(wrapper), Mapping):
                loaded = loaded[wrapper]
                break
    if not isinstance(loaded, Mapping) or not _is_state_dict(loaded):
        raise WeightsError(
            f"{uri} holds a {type(loaded).__name__}, not a state dict (a mapping of parameter names to "
            "tensors); save it with torch.save(model.state_dict(), path)"
        )
    return dict(loaded)


def _is_state_dict(obj: Mapping) -> bool:
    return len(obj) > 0 and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())


def load_vgg16_weights(model: VGG16, uri: str, storage: StorageConfig | None = None) -> list[str]:
    """Load torchvision-format VGG-16 weights into ``model``; returns the keys not loaded.

    The last classifier layer is skipped when its class count differs (fine-tuning); the first
    convolution is adapted to ``model.in_channels`` by averaging over the RGB channels.
    Raises :class:`WeightsError` when a tensor does not fit for any other reason.
    """
    state = load_state_dict_uri(uri, storage)
    own = model.state_dict()
    first = "features.0.weight"
    if first in state and (state[first].ndim != 4 or state[first].shape[0] != own[first].shape[0] or state[first].shape[2:] != own[first].shape[2:]):
        raise WeightsError(f"{uri}: {first} has shape {tuple(state[first].shape)}, expected {tuple(own[first].shape)}")
    if first in state and state[first].shape[1] != model.in_channels:
        mean = state[first].mean(dim=1, keepdim=True)
        state[first] = mean.repeat(1, model.in_channels, 1, 1)
    skipped = []
    for key in ("classifier.6.weight", "classifier.6.bias"):
        if key in state and state[key].shape != own[key].shape:
            skipped.append(key)
            del state[key]
    unknown = sorted(set(state) - set(own))
    if unknown:
        raise WeightsError(f"{uri}: keys {unknown[:5]} are not VGG-16 (torchvision layout) parameters")
    for key, tensor in state.items():
        if tensor.shape != own[key].shape:
            raise WeightsError(f"{uri}: {key} has shape {tuple(tensor.shape)}, expected {tuple(own[key].shape)}")
    missing = sorted(set(own) - set(state))
    try:
        model.load_state_dict(state, strict=False)
    except RuntimeError as exc:
        raise WeightsError(f"{uri}: the weights do not fit VGG-16 ({str(exc)[:300]})") from None
    return missing
