"""The "foreign architectures" section of bench/prune.py (``--only foreign``).

Structured pruning to half the MACs on architectures slimkit has never seen (tests/zoo.py:
concatenated branches with depthwise and grouped convs, squeeze-and-excitation, an MLP-Mixer,
and an ``nn.TransformerEncoder`` over tokenized images), against Torch-Pruning's own
MetaPruner with L1 group importance at the same MACs. Per seed: the dense model is trained with
that seed, pruned by each method, and both get the same fine-tune (``slimkit.recover``, same
data, epochs and learning rate); accuracy on the full test split, MACs as measured.

Torch-Pruning is used as its documentation shows, with what it needs to run at all: the logits
layer ignored, the heads of every ``nn.MultiheadAttention`` given (``num_heads``), the model
called on its tokens (``forward_fn``), and the MLP-Mixer's token-mixing Linears ignored (it
follows the transposed axis as if it held channels and cuts the token axis, which crashes).
Its channel ratio is searched so the MACs meet the target; where even its largest ratio cannot
(layers it cannot cut), it is scored at that ratio, with more MACs than slimkit's model.
"""

from __future__ import annotations

import copy
import sys
import time
from dataclasses import dataclass
from typing import Any

import torch
from _common import ROOT, fmt_pm, mean_std, target
from torch import nn
from torch.utils.data import DataLoader, Subset

from slimkit import modelio
from slimkit.distillation import RecoveryConfig, recover
from slimkit.evaluate import count_macs
from slimkit.export import load_model, read_spec, save_model
from slimkit.pruning import StructuredPruning, choose_ratios, prune, sensitivity
from slimkit.train import TrainConfig, Trainer, evaluate_loss_acc

sys.path.insert(0, str(ROOT / "tests"))
import zoo  # the zoo lives with the tests: architectures slimkit does not ship

MODELS = ("branchy", "se", "mixer", "transformer")
SHARE = 0.5  # MACs kept
UNIFORM = "slimkit l1, one ratio for every layer"
PLANNED = "slimkit l1, per-layer ratios from sensitivity analysis"
PEER = "Torch-Pruning MetaPruner (L1 group)"
CACHE = ROOT / "runs" / "bench-prune" / "foreign"


@dataclass(frozen=True)
class ForeignBudget:
    seeds: tuple[int, ...]  # fine-tuning seeds (data subset and order)
    train_epochs: int  # the dense model: full training split, seed 0
    finetune_samples: int | None  # fine-tune subset (None: all)
    finetune_epochs: int
    lr: float  # fine-tune learning rate (one-cycle AdamW, cross-entropy), the same for every method
    val_samples: int  # sensitivity analysis, from the validation split
    sweep: tuple[float, ...]  # the ratios sensitivity analysis tries per layer
    threads: int
    quick: bool = False


def foreign_budget(quick: bool, threads: int) -> ForeignBudget:
    if quick:
        return ForeignBudget(seeds=(0, 1), train_epochs=1, finetune_samples=256, finetune_epochs=1, lr=3e-3,
                             val_samples=100, sweep=(0.3, 0.6, 0.9, 0.95), threads=threads, quick=True)
    return ForeignBudget(seeds=(0, 1, 2), train_epochs=3, finetune_samples=10_000, finetune_epochs=1, lr=3e-3,
                         val_samples=1000, sweep=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95), threads=threads)


def _train_loader(name: str, splits: Any, n: int | None, seed: int) -> DataLoader:
    """``n`` training samples chosen and shuffled by ``seed``: a fresh loader per call, so every
    method's fine-tune sees the same batches in the same order."""
    n = len(splits.train) if n is None else min(n, len(splits.train))
    order = torch.randperm(len(splits.train), generator=torch.Generator().manual_seed(seed))[:n]
    return DataLoader(zoo.adapt(name, Subset(splits.train, order.tolist())), batch_size=64, shuffle=True,
                      generator=torch.Generator().manual_seed(seed))


def _build(name: str, splits: Any) -> nn.Module:
    channels, size = splits.input_shape[0], splits.input_shape[-1]
    return zoo.build(name, in_channels=channels, num_classes=splits.num_classes, input_size=size)


def dense_model(name: str, splits: Any, b: ForeignBudget, seed: int = 0) -> nn.Module:
    """The dense model trained with ``seed`` (cached under runs/ for full runs)."""
    config = TrainConfig(epochs=b.train_epochs, seed=seed, threads=b.threads, progress=False)
    folder = CACHE / f"{name}-{splits.name}-s{seed}"
    if not b.quick and (folder / "model.json").is_file() and read_spec(folder)["metadata"].get("train") == config.to_dict():
        return load_model(folder, model=_build(name, splits)).eval()
    torch.manual_seed(seed)
    model = _build(name, splits)
    Trainer(model, config).fit(_train_loader(name, splits, None, seed))
    if not b.quick:
        save_model(model, folder, metadata={"train": config.to_dict()})
    return model.eval()


def tp_peer(model: nn.Module, example: Any, share: float) -> tuple[nn.Module, bool]:
    """Torch-Pruning's MetaPruner at the channel ratio that meets ``share`` of the MACs (searched),
    and whether it could."""
    import torch_pruning as tp

    base = count_macs(model, example)

    def pruned(ratio: float) -> nn.Module:
        copied = copy.deepcopy(model).eval()
        ignored = [copied.head] + [m for n, m in copied.named_modules() if "token_mix" in n and isinstance(m, nn.Linear)]
        heads = {m: m.num_heads for m in copied.modules() if isinstance(m, nn.MultiheadAttention)}
        pruner = tp.pruner.MetaPruner(copied, example, importance=tp.importance.GroupMagnitudeImportance(p=1),
                                      pruning_ratio=ratio, ignored_layers=ignored, num_heads=heads,
                                      forward_fn=lambda m, x: modelio.call(m, x))
        pruner.step()
        return copied

    lo, hi = 0.0, 0.95
    if count_macs(pruned(hi), example) > share * base:
        return pruned(hi), False
    for _ in range(12):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if count_macs(pruned(mid), example) <= share * base else (mid, hi)
    return pruned(hi), True


def _finetune(model: nn.Module, name: str, splits: Any, b: ForeignBudget, seed: int) -> nn.Module:
    recovery = RecoveryConfig(epochs=b.finetune_epochs, lr=b.lr, schedule="onecycle", seed=seed, distill_from="none")
    tune = _train_loader(name, splits, b.finetune_samples, 1000 + seed)
    return recover(model, None, tune, recovery, threads=b.threads).eval()


def planned_ratios(name: str, dense: nn.Module, splits: Any, b: ForeignBudget, example: Any, share: float) -> dict:
    """Per-layer ratios for ``share`` of the MACs from slimkit's sensitivity analysis (each layer
    pruned alone over the sweep, scored on validation data)."""
    val = DataLoader(zoo.adapt(name, Subset(splits.val, range(min(b.val_samples, len(splits.val))))), batch_size=250)
    result = sensitivity(dense, val, ratios=b.sweep, example_inputs=example, loader=_train_loader(name, splits, 512, 7))
    return choose_ratios(result, target_macs=share, give_back=True)


def one_model(name: str, splits: Any, b: ForeignBudget) -> dict[str, Any]:
    """Every method on one architecture: pruned once (the dense model and the criteria are
    deterministic), fine-tuned and scored per seed."""
    test = DataLoader(zoo.adapt(name, splits.test), batch_size=256)
    dense = dense_model(name, splits, b)
    calibration = _train_loader(name, splits, 512, 7)
    example = modelio.example_from(calibration, 1)
    base = count_macs(dense, example)
    clock = time.perf_counter()
    theirs, reached = tp_peer(dense, example, SHARE)
    seconds = {PEER: time.perf_counter() - clock}
    peer_share = count_macs(theirs, example) / base
    clock = time.perf_counter()
    uniform = prune(copy.deepcopy(dense), StructuredPruning(target_macs=SHARE), calibration, example_inputs=example)
    seconds[UNIFORM] = time.perf_counter() - clock
    clock = time.perf_counter()  # the head-to-head: slimkit's plan for exactly Torch-Pruning's MACs
    ratios = planned_ratios(name, dense, splits, b, example, min(peer_share, 0.999))
    planned = prune(copy.deepcopy(dense), StructuredPruning(ratios=ratios), calibration, example_inputs=example)
    seconds[PLANNED] = time.perf_counter() - clock
    out: dict[str, Any] = {"dense": evaluate_loss_acc(dense, test)[1], "peer_reached": reached, "ratios": ratios}
    for label, model in ((PEER, theirs), (UNIFORM, uniform), (PLANNED, planned)):
        accs = [evaluate_loss_acc(_finetune(copy.deepcopy(model), name, splits, b, seed), test)[1] for seed in b.seeds]
        out[label] = {"accuracy": accs, "macs_share": count_macs(model, example) / base,
                      "prune_seconds": seconds[label]}
    print(f"foreign {name}: dense {100 * out['dense']:.2f}, " + ", ".join(
        f"{k} {fmt_pm(out[k]['accuracy'])} at {out[k]['macs_share']:.3f} MACs" for k in (PEER, UNIFORM, PLANNED)),
        flush=True)
    return out


def foreign(splits: Any, b: ForeignBudget) -> dict[str, Any]:
    """The section's figures: per model, the dense accuracy and every method's accuracies and MACs."""
    started = time.perf_counter()
    models = {name: one_model(name, splits, b) for name in MODELS}
    return {"models": models, "share": SHARE, "budget": b.__dict__, "dataset": splits.name,
            "seconds": time.perf_counter() - started}


def foreign_targets(section: dict[str, Any]) -> list[dict[str, Any]]:
    """Per model: slimkit reaches the MACs target, and at Torch-Pruning's MACs (the target, or
    what it could reach where it could not) its accuracy after the same fine-tune is at least
    Torch-Pruning's (mean over seeds; the value is the difference in points)."""
    rows = []
    for name, r in section["models"].items():
        share = r[UNIFORM]["macs_share"]
        rows.append(target(f"foreign {name}: slimkit keeps at most {section['share']} of the MACs", share,
                           share <= section["share"] + 1e-9))
        ours, theirs = r[PLANNED], r[PEER]
        lead = 100 * (mean_std(ours["accuracy"])[0] - mean_std(theirs["accuracy"])[0])
        rows.append(target(f"foreign {name}: slimkit >= Torch-Pruning at the same MACs (accuracy points)", lead,
                           lead >= 0 and ours["macs_share"] <= theirs["macs_share"] + 1e-9))
    return rows


def render(section: dict[str, Any]) -> list[str]:
    """The section's Markdown."""
    b = section["budget"]
    lines = ["## Foreign architectures: half the MACs, slimkit against Torch-Pruning", "",
             (f"tests/zoo.py's models on {section['dataset']} (the transformer on tokens: patch means quantized to "
              f"16 grey levels). Each dense model is trained {b['train_epochs']} epoch(s) (seed 0) and pruned once "
              "per method (all deterministic): Torch-Pruning's MetaPruner (GroupMagnitudeImportance(p=1), its channel "
              f"ratio searched to keep at most {section['share']} of the MACs; the logits layer, and the Mixer's "
              "token-mixing Linears it cannot follow, ignored; attention heads given), slimkit at the same target "
              "with one ratio for every layer, and, for the head-to-head at the same MACs, slimkit with per-layer "
              f"ratios from sensitivity analysis (sweep {list(b['sweep'])}, {b['val_samples']} validation samples, "
              "`choose_ratios(give_back=True)`) for Torch-Pruning's MACs: the target, or what Torch-Pruning could "
              "reach where it could not. Every model then gets the same fine-tune per seed "
              f"({len(b['seeds'])} seeds: {b['finetune_epochs']} epoch over {b['finetune_samples'] or 'all'} samples, "
              f"CE, one-cycle AdamW lr {b['lr']}, `slimkit.recover`). Test accuracy %, mean ± std over seeds; MACs "
              f"kept = pruned / dense. Measured in {section['seconds']:.0f} s at commit "
              f"{str(section.get('commit', '?'))[:10]}."), "",
             "| model | dense % | method | MACs kept | test accuracy % |", "|---|---|---|---|---|"]
    for name, r in section["models"].items():
        for i, label in enumerate((PEER, UNIFORM, PLANNED)):
            note = "" if label != PEER or r["peer_reached"] else " (its best: target not reachable)"
            lines.append(f"| {name if i == 0 else ''} | {100 * r['dense']:.2f} | {label}{note} | "
                         f"{r[label]['macs_share']:.3f} | {fmt_pm(r[label]['accuracy'])} |")
    return [*lines, ""]
