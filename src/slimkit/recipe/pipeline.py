"""The stage loop behind :func:`slimkit.recipe.run_recipe`: run or restore each stage, save its
model, reload it, and measure it against the original."""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from torch import nn

from slimkit.errors import CheckpointError, ConfigError
from slimkit.fileio import atomic_write_json, json_safe
from slimkit.imports import Trust
from slimkit.recipe.context import DataState, LoaderCache, StageContext
from slimkit.recipe.evaluation import (
    latency,
    layer_table,
    merge_layers,
    predict_quality,
    static_cost,
    summary_text,
    versus,
)
from slimkit.recipe.models import (
    build_source,
    deployed_module,
    describe,
    load_stage_model,
    model_bytes,
    save_stage_model,
    tree_bytes,
)
from slimkit.recipe.progress import RunProgress
from slimkit.recipe.ranks import RankPlan
from slimkit.recipe.records import inside, read_metrics, read_original
from slimkit.recipe.schema import ModelSource, Recipe, StageConfig
from slimkit.train import Callback

METRICS = "metrics.json"


@dataclass
class Current:
    """The state handed from one stage to the next."""

    model: nn.Module
    data: DataState
    source: ModelSource
    layers: dict[str, dict[str, Any]]
    cost: dict[str, Any] | None = None
    artifact: Path | None = None


class Pipeline:
    """One run of a recipe into ``out`` (see :mod:`slimkit.recipe.runner` for the folder layout)."""

    def __init__(self, recipe: Recipe, out: Path, status: Any, *, callbacks: Sequence[Callback] = (),
                 progress: bool | str = True, console: Console | None = None, ranks: RankPlan | None = None,
                 trust: Trust | None = None) -> None:
        self.recipe, self.out, self.status = recipe, out, status
        self.trust = trust or Trust()
        self.ranks = ranks or RankPlan(out)
        self.callbacks = list(callbacks)
        self.cache = LoaderCache()
        self.progress = RunProgress(len(recipe.stages), enabled=progress not in (False, "off"),
                                    live=progress != "plain", console=console)
        self.original: nn.Module | None = None
        self.original_record: dict[str, Any] | None = None

    def folder(self, number: int) -> Path:
        """Stage ``number``'s folder in the run (rank 0's: what every rank reads)."""
        return self.out / self.recipe.folder(number)

    def scratch(self, number: int) -> Path:
        """Where this process writes stage ``number`` (the run folder itself on rank 0)."""
        return self.ranks.root / self.recipe.folder(number)

    # ------------------------------------------------------------------ loop
    def run(self) -> dict[str, Any]:
        with self.progress:
            current = self._source()
            wanted = self.recipe.original_number()
            if wanted == 0:
                self._set_original(0, current)
            for number, config in enumerate(self.recipe.stages, 1):
                if self.status.done(number) and (not self.ranks.main or (self.folder(number) / METRICS).is_file()):
                    current = self._restore(number)
                else:
                    current = self._run_stage(number, config, current)
                if number == wanted:
                    self._set_original(number, current)
            if not self.ranks.main:
                return {}
            final = self._final(current)
            self.progress.print(f"[bold]{final['summary']}[/] ({self.out})")
        return final

    def _source(self) -> Current:
        folder, data = self.folder(0), DataState(self.recipe.data)
        if not self.status.done(0):
            if self.ranks.main:
                model = build_source(self.recipe.model, self.cache.get(data).splits, seed=self.recipe.seed,
                                     trust=self.trust)
                save_stage_model(model, folder, self.recipe.model)
            self.status.set(0, state="done")
        model = load_stage_model(self.ranks.share_stage(folder), self.trust)
        return Current(model, data, self.recipe.model, layer_table(model))

    def _restore(self, number: int) -> Current:
        local = self.ranks.share_stage(self.folder(number))  # rank 0's stage, sent to the other ranks
        path = local / METRICS
        metrics = read_metrics(path)
        artifact = None  # only rank 0 measures, so only it needs the deployed file
        if metrics.artifact and self.ranks.main:
            artifact = inside(self.out, metrics.artifact, "artifact", path)
        try:
            data, source = DataState.from_dict(metrics.data), ModelSource.from_dict(metrics.source, source=str(path))
        except (KeyError, TypeError, ConfigError) as exc:
            raise CheckpointError(f"{path}: field 'data' or 'source' is not valid: {str(exc).splitlines()[0]}",
                                  hint="rerun the run in a new --out") from None
        return Current(load_stage_model(local, self.trust), data, source, metrics.layers, metrics.cost, artifact)

    def _run_stage(self, number: int, config: StageConfig, current: Current) -> Current:
        from slimkit.recipe.stages import STAGES
        from slimkit.train.runtime import seed_everything

        folder = self.scratch(number)
        self.status.set(number, state="running", started=time.strftime("%Y-%m-%dT%H:%M:%S"), error=None)
        self.progress.start_stage(number, config.label, config.type)
        self.cache.get(current.data)  # load data before seeding: a resumed run has no data loaded yet
        seed_everything(self.recipe.seed + number)
        ctx = StageContext(self.recipe, number, folder, current.model, self.original, current.data, current.source,
                           self.cache, artifact=current.artifact, callbacks=[*self.callbacks, self.progress.callback()],
                           trust=self.trust)
        ctx.log(f"stage {number} ({config.type}) starts: {json.dumps(config.to_dict(), default=str)}")
        started = time.perf_counter()
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("default")
                result = STAGES.get(config.type).run(ctx, config)
            for item in caught:
                ctx.log(f"warning: {item.category.__name__}: {item.message}")
            if caught:
                self.progress.print(f"  {len(caught)} warning(s) logged in {folder / 'log.txt'}")
            seconds = time.perf_counter() - started
            source = result.source or current.source
            save_stage_model(result.model, folder, source)
        except BaseException as exc:
            ctx.log(f"failed: {type(exc).__name__}: {exc}")
            self.status.set(number, state="failed", error=f"{type(exc).__name__}: {exc}")
            raise
        if not self.ranks.main:  # rank 0 saves and measures, then sends its result: go on from that
            self.status.set(number, state="done", seconds=seconds)
            return self._restore(number)
        model = load_stage_model(folder, self.trust)  # continue from disk, exactly as a resumed run would
        data = result.data or current.data
        layers = merge_layers(layer_table(model), current.layers, result.layers)
        metrics = self._measure(folder, model, result.artifact, data, current.cost)
        metrics.update(number=number, name=config.label, type=config.type, config=config.to_dict(), seconds=seconds,
                       history=result.history, info=result.info, data=data.to_dict(), source=source.to_dict(),
                       artifact=str(result.artifact.relative_to(self.out)) if result.artifact else None,
                       layers=layers, model=describe(model))
        atomic_write_json(folder / METRICS, metrics)
        ctx.log(f"done in {seconds:.1f}s: {_short(metrics)}")
        self.status.set(number, state="done", seconds=seconds)
        self.progress.end_stage(number, _short(metrics))
        if self.ranks.distributed:
            self.ranks.share_stage(folder)  # the other ranks continue from rank 0's saved result
        return Current(model, data, source, layers, metrics["cost"], result.artifact)

    # ------------------------------------------------------------------ measuring
    def eval_loader(self, data: DataState) -> Any:
        """The loader of the evaluation split (what every stage is measured on) for ``data``."""
        return getattr(self.cache.get(data), self.recipe.evaluation.split)

    def _measure(self, folder: Path, model: nn.Module, artifact: Path | None, data: DataState,
                 carried: dict[str, Any] | None) -> dict[str, Any]:
        started = time.perf_counter()
        loader = self.eval_loader(data)
        target = deployed_module(artifact, model)
        size = tree_bytes(artifact) if artifact is not None else model_bytes(folder)
        _, _, quality = predict_quality(target, loader)
        example = next(iter(loader))[0][:2]
        cost = static_cost(target, example, size, carried)
        record = self.original_record
        comparable = record is not None and tuple(record["input_shape"]) == tuple(example.shape[1:])
        models = {"original": self.original, "model": target} if comparable else {"model": target}
        lat = latency(models, example, self.recipe.evaluation)  # type: ignore[arg-type]
        current = {"quality": quality, "cost": cost, "latency": lat["model"]}
        vs = {}
        if comparable:
            vs = versus(current, {**record, "latency": lat["original"]}, same_data=record["data"] == data.to_dict())
        return {**current, "original_latency": lat.get("original"), "vs_original": vs,
                "eval_seconds": time.perf_counter() - started}

    def _set_original(self, number: int, current: Current) -> None:
        folder = self.folder(number)
        self.original = load_stage_model(folder if self.ranks.main else self.scratch(number), self.trust).eval()
        path = self.out / "original.json"
        if not self.ranks.main:  # only rank 0 measures; the others need the model alone (a teacher)
            return
        if path.is_file():
            self.original_record = read_original(path).model_dump()
            return
        loader = self.eval_loader(current.data)
        _, _, quality = predict_quality(self.original, loader)
        example = next(iter(loader))[0][:2]
        cost = static_cost(self.original, example, model_bytes(folder), None)
        record = {"number": number, "folder": folder.name, "quality": quality, "cost": cost,
                  "latency": latency({"original": self.original}, example, self.recipe.evaluation)["original"],
                  "data": current.data.to_dict(), "input_shape": list(example.shape[1:]),
                  "layers": current.layers, "model": describe(self.original),
                  "class_names": self.cache.get(current.data).splits.class_names}
        self.original_record = json_safe(record)
        atomic_write_json(path, self.original_record)

    def _final(self, current: Current) -> dict[str, Any]:
        from slimkit.recipe.final import final_comparison

        final = final_comparison(self, current)
        atomic_write_json(self.out / "final.json", final)
        return final


def _short(metrics: dict[str, Any]) -> str:
    quality, vs = metrics["quality"], metrics.get("vs_original") or {}
    text = f"accuracy {100 * quality['accuracy']:.2f}%, {metrics['cost']['bytes']:,} bytes"
    return f"{text}; vs original: {summary_text(vs)}" if vs else text
