"""The BERT half of bench/transformer.py: a synthetic token task and int8 against its peers.

**The task** (``--bert-task``, one of ``TASKS``): by default :class:`TaggedTask`, 64 tokens of
filler with three copies each of markers ``A``, ``B`` and ``C``, only one of each followed by a tag;
the label says which of the tagged A and B comes first (at least ``gap`` apart) and whether the
tagged C lies between them (4 classes). Measured at 20,000 sequences x 8 epochs (1 thread): the
4-layer teacher 90.3%, the 2-layer student alone 60.3%. Without decoys (:class:`MarkerTask`) 2
layers learn it almost as well as 4 (99.55% against 99.98%), since a fixed marker's position is
one attention read away. :class:`ChainTask` needs two dependent lookups, but at 20,000 and 40,000
sequences x 8 epochs neither the 4-layer teacher nor the 2-layer student learnt to follow the
chain (both about 55%: the majority vote among the chain ends, 56.25% expected);
:class:`PointerTask` (2 hops) stayed at chance at 5,000 x 4.

**The comparison**: the trained 4-layer teacher as ONNX Runtime fp32, ONNX Runtime dynamic int8
(slimkit's ``DynamicInt8``: every Linear, int64 ``input_ids``/``attention_mask``/
``token_type_ids``, dynamic batch and sequence axes) and PyTorch's ``quantize_dynamic``, timed in
one process, alternating, at batch 1 and 32 and sequence length 64.
"""

from __future__ import annotations

import copy
import warnings
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from slimkit.distillation import DistillConfig, distill, shallow_student, transformer_losses
from slimkit.evaluate import accuracy, measure_latency, predict
from slimkit.export import OrtModule, onnx_bytes, report_of
from slimkit.models import build_model
from slimkit.quantization import DynamicInt8, quantize
from slimkit.train import TrainConfig, Trainer

FILLER, A, B, C, PAD = 4, 1, 2, 3, 0
TAG = 4  # TaggedTask's tag (its filler starts above it)
LABELS, QUERY, KEYS = 5, 9, 10  # ChainTask's tokens: 4 labels, the query, 16 keys, then filler
NAMES = ("input_ids", "attention_mask", "token_type_ids")
DISTILLED = "student distilled (teacher layers 0 and 2, KD + hidden + attention)"
ROWS = ("pytorch fp32 (eager)", "ort fp32", "ort dynamic int8 (slimkit)", "pytorch quantize_dynamic")


class MarkerTask(Dataset):
    """``n`` sequences of ``length`` tokens (see the module docstring), as named int64 inputs.

    >>> item = MarkerTask(4, length=32, gap=8)[0]
    >>> sorted(item), item["input_ids"].dtype, int(item["labels"]) in range(4)
    (['attention_mask', 'input_ids', 'labels', 'token_type_ids'], torch.int64, True)
    """

    def __init__(self, n: int, *, length: int = 64, vocab: int = 64, gap: int = 16, seed: int = 0, **_: Any) -> None:
        g = torch.Generator().manual_seed(seed)
        ids = torch.randint(FILLER, vocab, (n, length), generator=g)
        labels = torch.empty(n, dtype=torch.long)
        for i in range(n):
            while True:
                a, b, c = torch.randint(0, length, (3,), generator=g).tolist()
                if abs(a - b) >= gap and len({a, b, c}) == 3:
                    break
            ids[i, a], ids[i, b], ids[i, c] = A, B, C
            between = min(a, b) < c < max(a, b)
            labels[i] = 2 * int(b < a) + int(between)
        self.ids, self.labels = ids, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        ids = self.ids[i]
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "token_type_ids": torch.zeros_like(ids),
                "labels": self.labels[i]}


class ChainTask(Dataset):
    """``n`` sequences of ``length`` tokens: a query ``Q k0`` at the start and, among filler,
    ``chains`` chains of two key-value pairs each at random places far apart: ``k0 k1`` ... ``k1 L``
    (the queried chain) and ``d0 d1`` ... ``d1 L'`` (the others). The label is where the queried
    chain ends, ``L`` (one of 4 label tokens).

    Two lookups in sequence, each chosen by what the last one found: bind every value to the key
    before it (one layer), find the pair whose key is ``k0`` (a second), then the pair whose key
    is ``k1`` (a third). Every chain has the same shape, so nothing but the query tells the
    chains apart: a 2-layer model has one lookup too few and can only guess among the chain ends.

    >>> task = ChainTask(2, length=32)
    >>> ids, label = task.ids[0].tolist(), int(task.labels[0])
    >>> pairs = dict(zip(ids[2::2], ids[3::2]))   # key -> value (filler pairs too)
    >>> pairs[pairs[ids[1]]] - LABELS == label    # k0 -> k1 -> L
    True
    """

    def __init__(self, n: int, *, length: int = 64, vocab: int = 64, chains: int = 3, seed: int = 0,
                 **_: Any) -> None:
        g = torch.Generator().manual_seed(seed)
        ids = torch.randint(KEYS + 16, vocab, (n, length), generator=g)
        ends = torch.randint(0, 4, (n, chains), generator=g)  # chain 0 is the queried one
        slots = (length - 2) // 2  # pairs sit at even offsets after the query, so they never overlap
        for i in range(n):
            keys = (KEYS + torch.randperm(16, generator=g)[: 2 * chains]).tolist()
            pairs = []
            for c in range(chains):
                first, second = keys[2 * c], keys[2 * c + 1]
                pairs += [(first, second), (second, LABELS + int(ends[i, c]))]
            ids[i, 0], ids[i, 1] = QUERY, keys[0]
            for (key, value), slot in zip(pairs, torch.randperm(slots, generator=g).tolist(), strict=False):
                ids[i, 2 + 2 * slot], ids[i, 3 + 2 * slot] = key, value
        self.ids, self.labels = ids, ends[:, 0].clone()

    def __len__(self) -> int:
        return len(self.labels)

    __getitem__ = MarkerTask.__getitem__


class PointerTask(Dataset):
    """``n`` sequences of ``length`` pointers: every token names a position. Starting from the
    first token, follow ``hops`` pointers; the label is the last position reached, modulo 4.

    Each hop is one attention step (read the token at the position the current one names), so
    the hops must be taken in sequence: depth pays, and pointers land anywhere, so the tokens
    that decide are far apart.

    >>> task = PointerTask(2, length=8, hops=2)
    >>> ids, label = task.ids[0], int(task.labels[0])
    >>> int(ids[int(ids[int(ids[0]) - FILLER]) - FILLER] - FILLER) % 4 == label
    True
    """

    def __init__(self, n: int, *, length: int = 32, hops: int = 3, seed: int = 0, **_: Any) -> None:
        g = torch.Generator().manual_seed(seed)
        pointers = torch.randint(1, length, (n, length), generator=g)
        at = pointers[:, 0]
        for _ in range(hops):
            at = pointers[torch.arange(n), at]
        self.ids, self.labels = pointers + FILLER, at % 4

    def __len__(self) -> int:
        return len(self.labels)

    __getitem__ = MarkerTask.__getitem__


class TaggedTask(Dataset):
    """:class:`MarkerTask` with decoys: ``copies`` each of ``A``, ``B`` and ``C`` among the filler,
    and only one of each followed by the tag ``T``. The label says which of the tagged A and B
    comes first and whether the tagged C lies between them (4 classes).

    A marker must first learn whether it is tagged (read the next token), and only then can the
    classifier read where the tagged ones are: two steps in sequence before the comparison, where
    :class:`MarkerTask` needs one.

    >>> task = TaggedTask(2, length=32, gap=8)
    >>> ids, label = task.ids[0].tolist(), int(task.labels[0])
    >>> at = {m: next(i for i in range(31) if ids[i] == m and ids[i + 1] == TAG) for m in (A, B, C)}
    >>> label == 2 * int(at[B] < at[A]) + int(min(at[A], at[B]) < at[C] < max(at[A], at[B]))
    True
    """

    def __init__(self, n: int, *, length: int = 64, vocab: int = 64, gap: int = 16, copies: int = 3, seed: int = 0,
                 **_: Any) -> None:
        g = torch.Generator().manual_seed(seed)
        ids = torch.randint(TAG + 1, vocab, (n, length), generator=g)
        labels = torch.empty(n, dtype=torch.long)
        slots = length // 2  # every marker sits at an even place, its tag (or filler) right after it
        for i in range(n):
            while True:
                places = (2 * torch.randperm(slots, generator=g)[: 3 * copies]).tolist()
                a, b, c = places[0], places[copies], places[2 * copies]  # the tagged ones
                if abs(a - b) >= gap:
                    break
            for k, marker in enumerate((A, B, C)):
                for place in places[k * copies: (k + 1) * copies]:
                    ids[i, place] = marker
                ids[i, places[k * copies] + 1] = TAG
            labels[i] = 2 * int(b < a) + int(min(a, b) < c < max(a, b))
        self.ids, self.labels = ids, labels

    def __len__(self) -> int:
        return len(self.labels)

    __getitem__ = MarkerTask.__getitem__


TASKS = {"chain": ChainTask, "marker": MarkerTask, "tagged": TaggedTask}  # PointerTask needs a vocabulary above its length
TASK_KNOBS = ("length", "vocab", "gap", "chains", "copies")


def score(model: torch.nn.Module, loader: DataLoader) -> float:
    """Test accuracy of ``model`` on ``loader``."""
    return accuracy(*predict(model, loader).pair())


def bert(layers: int, opts: dict[str, Any]) -> torch.nn.Module:
    return build_model("hf_bert", input_size=opts["length"], vocab_size=opts["vocab"], hidden_size=opts["hidden"],
                       layers=layers, heads=opts["heads"], intermediate_size=2 * opts["hidden"],
                       max_length=opts["length"], num_classes=4, dropout=0.0)


def train_config(epochs: int, seed: int) -> TrainConfig:
    return TrainConfig(epochs=epochs, lr=1e-3, schedule="cosine", warmup_epochs=min(1.0, epochs / 4), seed=seed,
                       progress=False)


def train(model: torch.nn.Module, loader: DataLoader, epochs: int, seed: int) -> torch.nn.Module:
    Trainer(model, train_config(epochs, seed)).fit(loader)
    return model.eval()


def text_section(opts: dict[str, Any]) -> dict[str, Any]:
    """Teacher (4 layers), student alone and distilled (2 layers), then int8 of the teacher against its peers."""
    task = {k: opts[k] for k in TASK_KNOBS if k in opts}
    make = TASKS[opts["task"]]
    train_loader = DataLoader(make(opts["train"], seed=1, **task), batch_size=64, shuffle=True)
    test_loader = DataLoader(make(opts["test"], seed=2, **task), batch_size=256)
    models, accuracies = {}, {}
    for name, layers in (("teacher", 4), ("student alone", 2)):
        torch.manual_seed(0)
        models[name] = train(bert(layers, opts), train_loader, opts["epochs"], seed=0)
        accuracies[name] = score(models[name], test_loader)
    teacher = models["teacher"]
    # The documented BERT pipeline's student: the teacher's layers 0 and 2 (DistilBERT), distilled
    # with KD, hidden states and attention maps for the same epochs.
    torch.manual_seed(0)
    distilled = shallow_student(teacher)
    losses = transformer_losses(distilled, teacher, kd=0.9, ce=0.1, hidden=0.5, attention=0.5)
    distill(distilled, DistillConfig(losses=losses, train=train_config(opts["epochs"], 0)), train_loader,
            teacher=teacher)
    accuracies[DISTILLED] = score(distilled.eval(), test_loader)
    axes = {n: {1: "sequence"} for n in NAMES}
    example = {n: t[:2] for n, t in next(iter(test_loader)).items() if n != "labels"}
    fp32 = OrtModule(onnx_bytes(teacher, example, dynamic_axes=axes))
    int8 = quantize(teacher, DynamicInt8(dynamic_axes=axes), test_loader)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from torch.ao.quantization import quantize_dynamic

        eager_int8 = quantize_dynamic(copy.deepcopy(teacher), {torch.nn.Linear}, dtype=torch.qint8)
    timed = dict(zip(ROWS, (teacher, fp32, int8, eager_int8), strict=True))
    rows = {}
    for name, model in timed.items():
        rows[name] = {"accuracy": score(model, test_loader)}
    latency = measure_latency(timed, example, batch_sizes=(1, 32), warmup=opts["warmup"], repeats=opts["repeats"],
                              threads=opts["threads"], memory=False)
    for name in timed:
        rows[name]["median_ms"] = {str(b): latency[name][b]["median_ms"] for b in (1, 32)}
    rows["ort fp32"]["bytes"] = fp32.onnx_model.numel()
    rows["ort dynamic int8 (slimkit)"]["bytes"] = int8.onnx_model.numel()
    return {"task": {"name": opts["task"], **task, "train": opts["train"], "test": opts["test"], "classes": 4},
            "accuracy": accuracies, "rows": rows, "parity": report_of(int8, "quantize").get("parity"),
            "epochs": opts["epochs"], "sequence_length": opts["length"]}


def text_targets(section: dict[str, Any]) -> list[tuple[str, float, bool]]:
    rows = section["rows"]
    ours, peer, fp32 = rows["ort dynamic int8 (slimkit)"], rows["pytorch quantize_dynamic"], rows["ort fp32"]
    out = []
    for b in ("1", "32"):
        ratio = peer["median_ms"][b] / ours["median_ms"][b]
        out.append((f"BERT: dynamic int8 (ORT) at least as fast as quantize_dynamic, batch {b} (x)", ratio, ratio >= 1.0))
    drop = 100 * (fp32["accuracy"] - ours["accuracy"])
    out.append(("BERT: dynamic int8 (ORT) at most 0.5 points below ORT fp32 (points lost)", drop, drop <= 0.5))
    gap = 100 * (section["accuracy"]["teacher"] - section["accuracy"]["student alone"])
    out.append(("BERT task: a 2-layer student alone is clearly below the teacher (points, >= 3)", gap, gap >= 3.0))
    return out
