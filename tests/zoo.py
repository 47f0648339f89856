"""Architectures slimkit has never seen: the generality matrix (``tests/test_matrix.py``) runs
every technique on them, and ``bench/prune.py`` measures pruning on the image ones.

None of these is in slimkit's registry. Each ``build(name, ...)`` takes the data's shape
(``in_channels``, ``num_classes``, ``input_size``) so the same zoo serves 8x8 test data and
28x28 Fashion-MNIST. ``adapt(name, dataset)`` turns an image dataset of ``(x, y)`` into what
that model eats: integer token IDs, a mapping of named tensors, or two inputs.

- ``branchy``: branches concatenated (a 3x3 conv, a depthwise-separable branch, a grouped
  conv), then a residual add;
- ``se``: squeeze-and-excitation channel attention that multiplies the features;
- ``resnet_proj``: residual blocks whose shortcuts are 1x1 projections (stride 2);
- ``mixer``: an MLP-Mixer (patch embedding, LayerNorm, a token-mixing Linear applied over the
  transposed axis, a channel-mixing MLP);
- ``transformer``: an ``nn.TransformerEncoder`` classifier over integer token IDs;
- ``dict_io``: a mapping of named inputs in, a mapping with ``logits`` out;
- ``two_inputs``: two positional inputs (the image and its row means), a tuple out.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

#: Grey levels a pixel is quantized to when images become token IDs.
LEVELS = 16


def _conv_bn(cin: int, cout: int, kernel: int = 3, stride: int = 1, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU())


class Branchy(nn.Module):
    """Concatenated branches (plain, depthwise-separable, grouped), a residual, a linear head."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10, input_size: int = 28, width: int = 16) -> None:
        super().__init__()
        self.stem = _conv_bn(in_channels, width)
        self.plain = _conv_bn(width, width)
        self.separable = nn.Sequential(_conv_bn(width, width, groups=width), _conv_bn(width, width, kernel=1))
        self.grouped = _conv_bn(width, width, groups=4)
        self.merge = _conv_bn(3 * width, 2 * width, kernel=1)
        self.down = _conv_bn(2 * width, 2 * width, stride=2)
        self.block = _conv_bn(2 * width, 2 * width)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(2 * width, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.stem(x)
        x = self.merge(torch.cat([self.plain(x), self.separable(x), self.grouped(x)], dim=1))
        x = self.down(x)
        x = x + self.block(x)
        return self.head(self.pool(x).flatten(1))


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int, reduction: int = 4) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(channels, channels // reduction, 1)
        self.fc2 = nn.Conv2d(channels // reduction, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        scale = torch.sigmoid(self.fc2(torch.relu(self.fc1(x.mean((2, 3), keepdim=True)))))
        return x * scale


class SENet(nn.Module):
    """Conv stages with squeeze-and-excitation after each."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10, input_size: int = 28, width: int = 16) -> None:
        super().__init__()
        self.stage1 = nn.Sequential(_conv_bn(in_channels, width), SqueezeExcite(width))
        self.stage2 = nn.Sequential(_conv_bn(width, 2 * width, stride=2), SqueezeExcite(2 * width))
        self.stage3 = nn.Sequential(_conv_bn(2 * width, 4 * width, stride=2), SqueezeExcite(4 * width))
        self.head = nn.Linear(4 * width, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.stage3(self.stage2(self.stage1(x)))
        return self.head(x.mean((2, 3)))


class ProjectionBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = _conv_bn(cin, cout, stride=stride)
        self.conv2 = nn.Sequential(nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout))
        self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: Tensor) -> Tensor:
        return torch.relu(self.conv2(self.conv1(x)) + self.shortcut(x))


class ResNetProj(nn.Module):
    """Residual blocks with 1x1 projection shortcuts (every block changes width or stride)."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10, input_size: int = 28, width: int = 16) -> None:
        super().__init__()
        self.stem = _conv_bn(in_channels, width)
        self.layer1 = ProjectionBlock(width, 2 * width, 2)
        self.layer2 = ProjectionBlock(2 * width, 4 * width, 2)
        self.head = nn.Linear(4 * width, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.layer2(self.layer1(self.stem(x))).mean((2, 3)))


class MixerBlock(nn.Module):
    def __init__(self, tokens: int, dim: int, token_hidden: int, channel_hidden: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.token_mix = nn.Sequential(nn.Linear(tokens, token_hidden), nn.GELU(), nn.Linear(token_hidden, tokens))
        self.norm2 = nn.LayerNorm(dim)
        self.channel_mix = nn.Sequential(nn.Linear(dim, channel_hidden), nn.GELU(), nn.Linear(channel_hidden, dim))

    def forward(self, x: Tensor) -> Tensor:  # x: (N, tokens, dim)
        x = x + self.token_mix(self.norm1(x).transpose(1, 2)).transpose(1, 2)
        return x + self.channel_mix(self.norm2(x))


class Mixer(nn.Module):
    """MLP-Mixer: patches -> tokens; token mixing over the transposed axis; channel MLPs."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10, input_size: int = 28, dim: int = 32,
                 depth: int = 2, patch: int | None = None) -> None:
        super().__init__()
        patch = patch or (4 if input_size % 4 == 0 else 2)
        tokens = (input_size // patch) ** 2
        self.embed = nn.Conv2d(in_channels, dim, patch, patch)
        self.blocks = nn.Sequential(*[MixerBlock(tokens, dim, 2 * tokens, 2 * dim) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.embed(x).flatten(2).transpose(1, 2)
        return self.head(self.norm(self.blocks(x)).mean(1))


class TokenTransformer(nn.Module):
    """``nn.TransformerEncoder`` over integer token IDs (N, L): embedding + learned positions,
    a CLS token, and a linear head on it."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10, input_size: int = 28, dim: int = 32,
                 heads: int = 4, depth: int = 2, vocab: int = LEVELS) -> None:
        super().__init__()
        length = in_channels * (input_size // token_stride(input_size)) ** 2
        self.embed = nn.Embedding(vocab, dim)
        self.position = nn.Parameter(torch.zeros(1, length + 1, dim))
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        layer = nn.TransformerEncoderLayer(dim, heads, 2 * dim, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, tokens: Tensor) -> Tensor:
        x = self.embed(tokens)
        x = torch.cat([self.cls.expand(len(x), -1, -1), x], dim=1) + self.position
        return self.head(self.encoder(x)[:, 0])


class DictIO(nn.Module):
    """A mapping in (``image``, ``scale``), a mapping out (``logits`` and ``features``)."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10, input_size: int = 28, width: int = 16) -> None:
        super().__init__()
        self.body = nn.Sequential(_conv_bn(in_channels, width), _conv_bn(width, 2 * width, stride=2))
        self.head = nn.Linear(2 * width, num_classes)

    def forward(self, image: Tensor, scale: Tensor) -> dict[str, Tensor]:
        features = self.body(image * scale.view(-1, 1, 1, 1)).mean((2, 3))
        return {"logits": self.head(features), "features": features}


class TwoInputs(nn.Module):
    """Two positional inputs (the image, and its row means), a tuple out: (logits, features)."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10, input_size: int = 28, width: int = 16) -> None:
        super().__init__()
        self.body = nn.Sequential(_conv_bn(in_channels, width), _conv_bn(width, 2 * width, stride=2))
        self.rows = nn.Linear(in_channels * input_size, width)
        self.head = nn.Linear(3 * width, num_classes)

    def forward(self, image: Tensor, rows: Tensor) -> tuple[Tensor, Tensor]:
        features = torch.cat([self.body(image).mean((2, 3)), torch.relu(self.rows(rows))], dim=1)
        return self.head(features), features


def token_stride(input_size: int) -> int:
    """Pixels per token side: 28x28 images become 7x7 = 49 tokens, 8x8 ones 4x4 = 16."""
    return 4 if input_size >= 16 else 2


def tokenize(x: Tensor) -> Tensor:
    """(N, C, H, W) images, roughly standardized, to (N, C*h*w) integer token IDs: each patch's
    mean grey level quantized to :data:`LEVELS` levels."""
    stride = token_stride(x.shape[-1])
    pooled = nn.functional.avg_pool2d(x, stride)
    levels = ((pooled.clamp(-2.0, 2.0) + 2.0) / 4.0 * (LEVELS - 1)).round().long()
    return levels.flatten(1)


class Adapted(Dataset):
    """An ``(x, y)`` image dataset as a zoo model's inputs (see :func:`adapt`)."""

    def __init__(self, base: Dataset, kind: str) -> None:
        self.base, self.kind = base, kind

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> Any:
        x, y = self.base[index]
        if self.kind == "tokens":
            return tokenize(x.unsqueeze(0))[0], y
        if self.kind == "dict":
            return {"image": x, "scale": torch.tensor(1.0), "labels": y}
        return (x, x.mean(-1).flatten()), y


#: name -> (class, input kind: images, tokens, dict or pair)
ZOO: dict[str, tuple[Callable[..., nn.Module], str]] = {
    "branchy": (Branchy, "images"),
    "se": (SENet, "images"),
    "resnet_proj": (ResNetProj, "images"),
    "mixer": (Mixer, "images"),
    "transformer": (TokenTransformer, "tokens"),
    "dict_io": (DictIO, "dict"),
    "two_inputs": (TwoInputs, "pair"),
}
#: The zoo models that take plain image batches (the pruning benchmark's foreign architectures
#: are these plus the transformer on tokenized images).
IMAGE_MODELS = tuple(name for name, (_, kind) in ZOO.items() if kind == "images")


def build(name: str, *, in_channels: int = 1, num_classes: int = 10, input_size: int = 28, **knobs: Any) -> nn.Module:
    """A fresh zoo model for data of this shape."""
    cls, _ = ZOO[name]
    return cls(in_channels=in_channels, num_classes=num_classes, input_size=input_size, **knobs)


def adapt(name: str, dataset: Dataset) -> Dataset:
    """``dataset`` (image ``(x, y)`` pairs) as zoo model ``name`` takes it."""
    kind = ZOO[name][1]
    return dataset if kind == "images" else Adapted(dataset, kind)
