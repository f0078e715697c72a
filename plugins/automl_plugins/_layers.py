"""The modules the built-in families build: activations by name, inputs read as sequences, and
each family's own layers. Imported by the families' ``build``, so that loading the plugins (and
checking a study file) does not import torch."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.nn import functional

import automl
from automl import PAD

ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU}


def activation(name: str) -> nn.Module:
    """A fresh activation layer by its search-space name."""
    return ACTIVATIONS[name]()


class ImageRows(nn.Module):
    """Read an image ``[B, C, H, W]`` top to bottom: ``H`` steps of ``C * W`` features."""

    def forward(self, images: Tensor) -> Tensor:
        batch, channels, height, width = images.shape
        return images.permute(0, 2, 1, 3).reshape(batch, height, channels * width)


def embedding(task: automl.Task, width: int) -> nn.Embedding:
    """Token ids to vectors; the padding id maps to a zero vector that training leaves at zero."""
    if task.vocab_size is None:
        raise ValueError(f"a {task.kind!r} task has no vocab_size: only tokens tasks are embedded.")
    return nn.Embedding(task.vocab_size, width, padding_idx=PAD)


class BagOfEmbeddings(nn.Module):
    """Token ids ``[B, T]`` to the mean of their embeddings times ``sqrt(width)``, ``[B, width]``,
    padding left out. The embeddings start at zero.

    From zero, a bag classified by a linear layer is a linear model over the text's token
    frequencies that starts at the origin, so stopping early keeps its weights small as an L2
    penalty would; random N(0, 1) embeddings start every text at a random point that training
    must first undo. Adam moves each weight by about ``lr`` per step whatever its gradient: at
    the default ranges' centre (lr 1e-3, 10 epochs) a word seen in a few texts is stepped too few
    times for its embedding to move the logits, which the ``sqrt(width)`` factor makes up for (as
    a Transformer scales its embeddings, Vaswani et al. 2017). On the benchmark's movie-review
    snippets (3,101 training texts; benchmarks/real_tasks.py) a linear bag of 16-wide embeddings
    trained so reached 0.729 test accuracy (mean of 3 seeds), against 0.571 from N(0, 1) unscaled.
    """

    def __init__(self, task: automl.Task, width: int) -> None:
        super().__init__()
        self.embedding = embedding(task, width)
        nn.init.zeros_(self.embedding.weight)
        self.scale = math.sqrt(width)

    def forward(self, tokens: Tensor) -> Tensor:
        # Padding embeds to zero, so the sum is over real tokens; divide by how many there are.
        count = (tokens != PAD).sum(dim=1, keepdim=True).clamp(min=1)
        return self.embedding(tokens).sum(dim=1) * self.scale / count


def as_sequence(task: automl.Task, embedding_width: int | None = None) -> tuple[nn.Module, int, int]:
    """A module turning one batch of ``task`` inputs into ``[B, steps, features]``, and both sizes.

    Tokens are embedded, ``embedding_width`` features per step (required for them).
    """
    if task.kind == "tokens":
        if embedding_width is None:
            raise ValueError("a tokens task is read as a sequence through an embedding: give embedding_width.")
        (steps,) = task.input_shape
        return embedding(task, embedding_width), steps, embedding_width
    if task.kind == "image":
        channels, height, width = task.input_shape
        return ImageRows(), height, channels * width
    if task.kind == "sequence":
        steps, features = task.input_shape
        return nn.Identity(), steps, features
    raise ValueError(f"a {task.kind!r} task cannot be read as a sequence of feature vectors.")


# The multilayer perceptron's normalizations by their search-space names (mlp.NORMALIZATIONS).
NORMALIZATIONS: dict[str, type[nn.Module] | None] = {"none": None, "batch": nn.BatchNorm1d, "layer": nn.LayerNorm}


# The convolutional network's layers per spatial rank: convolution, batch norm, the poolings
# between blocks by name, global pooling.
Layer = Callable[..., nn.Module]
CONV_LAYERS_BY_RANK: dict[int, tuple[Layer, Layer, dict[str, Layer], Layer]] = {
    2: (nn.Conv2d, nn.BatchNorm2d, {"max": nn.MaxPool2d, "avg": nn.AvgPool2d}, nn.AdaptiveAvgPool2d),
    1: (nn.Conv1d, nn.BatchNorm1d, {"max": nn.MaxPool1d, "avg": nn.AvgPool1d}, nn.AdaptiveAvgPool1d),
}


class TimeAsLastAxis(nn.Module):
    """``[B, T, F]`` to the ``[B, F, T]`` layout that ``Conv1d`` expects."""

    def forward(self, sequences: Tensor) -> Tensor:
        return sequences.transpose(1, 2)


class Residual(nn.Module):
    """``body(x) + shortcut(x)``, then ReLU: a ResNet block (He et al., 2016) with a 1x1 convolution
    and batch norm on the shortcut when the channels change."""

    def __init__(self, body: nn.Module, shortcut: nn.Module) -> None:
        super().__init__()
        self.body, self.shortcut = body, shortcut

    def forward(self, inputs: Tensor) -> Tensor:
        return torch.relu(self.body(inputs) + self.shortcut(inputs))


# The recurrent network's cells by their search-space names (rnn.CELLS).
RECURRENT_CELLS: dict[str, Callable[..., nn.RNNBase]] = {"gru": nn.GRU, "lstm": nn.LSTM}


class RecurrentClassifier(nn.Module):
    """A recurrent layer stack whose last state (``"last"``) or mean output (``"mean"``) is classified."""

    def __init__(self, to_sequence: nn.Module, rnn: nn.RNNBase, readout: str, num_classes: int) -> None:
        super().__init__()
        self.to_sequence = to_sequence
        self.rnn = rnn
        self.readout = readout
        self.directions = 2 if rnn.bidirectional else 1
        self.head = nn.Linear(self.directions * rnn.hidden_size, num_classes)

    def forward(self, inputs: Tensor) -> Tensor:
        outputs, state = self.rnn(self.to_sequence(inputs))
        if self.readout == "mean":
            return self.head(outputs.mean(dim=1))
        hidden = state[0] if isinstance(state, tuple) else state  # an LSTM's state is (h, c)
        # The top layer's final state per direction; the backward one has read the sequence from the end.
        return self.head(torch.cat(list(hidden[-self.directions:]), dim=-1))


class PatchTokens(nn.Module):
    """Cut ``[B, C, H, W]`` into non-overlapping ``side x side`` patches, each projected to a token."""

    def __init__(self, channels: int, side: int, d_model: int) -> None:
        super().__init__()
        self.project = nn.Conv2d(channels, d_model, kernel_size=side, stride=side)

    def forward(self, images: Tensor) -> Tensor:
        return self.project(images).flatten(2).transpose(1, 2)


class TransformerClassifier(nn.Module):
    """Tokens plus learned positions through an encoder, then the mean token or [CLS] to the head."""

    def __init__(self, tokenize: nn.Module, tokens: int, d_model: int, encoder: nn.Module,
                 pooling: str, num_classes: int, token_ids: bool = False) -> None:
        super().__init__()
        self.tokenize = tokenize
        self.token_ids = token_ids  # inputs are token ids, whose padding is masked
        self.pad_id = PAD  # an attribute, not the global: TorchScript cannot read imported globals
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d_model)) if pooling == "cls" else None
        self.position = nn.Parameter(torch.empty(1, tokens + (pooling == "cls"), d_model))
        nn.init.trunc_normal_(self.position, std=0.02)
        self.encoder = encoder
        self.head = nn.Linear(d_model, num_classes)

    def forward(self, inputs: Tensor) -> Tensor:
        tokens = self.tokenize(inputs)
        padding: Tensor | None = None
        if self.token_ids:
            pads = inputs == self.pad_id
            # An empty text (all padding) attends over its padding rather than over nothing (NaN).
            padding = pads & ~pads.all(dim=1, keepdim=True)
        if self.cls_token is not None:
            # shape[0], not len(): exporters (torch.export, ONNX) keep a size symbolic, not a Python int.
            tokens = torch.cat([self.cls_token.expand(tokens.shape[0], -1, -1), tokens], dim=1)
            if padding is not None:
                padding = functional.pad(padding, (1, 0), value=False)
        encoded = self.encoder(tokens + self.position, src_key_padding_mask=padding)
        if self.cls_token is not None:
            return self.head(encoded[:, 0])
        if padding is None:
            return self.head(encoded.mean(dim=1))
        kept = (~padding).unsqueeze(-1).to(encoded.dtype)
        return self.head((encoded * kept).sum(dim=1) / kept.sum(dim=1))
