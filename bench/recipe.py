"""The default recipe end to end, as the README's main command runs it, timed and checked.

    flock /tmp/slimkit-bench.lock .venv/bin/python bench/recipe.py   # full size (~7 minutes, 2 cores)
    .venv/bin/python bench/recipe.py --quick                          # digits, 60 samples, 1 epoch

Runs recipes/fashion-mnist.yaml into a fresh run folder (teacher -> distilled student -> structured
pruning -> int8 -> ONNX), then writes bench/results/recipe.{json,md}: the run's
report (measured against the fp32 teacher in PyTorch eager, alternating, median), the issue's
targets, and the wall time of every stage against the 15-minute budget.
"""

from __future__ import annotations

import json
import shutil
import time

from _common import ROOT, bench_arguments, result_dir, target, write_results

from slimkit.recipe import load_recipe, run_recipe, smoke_overrides

RECIPE = ROOT / "recipes" / "fashion-mnist.yaml"
BUDGET_SECONDS = 15 * 60


def verdicts(final: dict, seconds: float) -> list[dict]:
    """The recipe's own targets, then issue 18's for the default recipe (>= 20x smaller, >= 15x
    faster at batch 256 and 8x at batch 1, <= 0.5 points lost, within 15 minutes), all against
    the fp32 teacher in PyTorch eager."""
    rows = [target(f"recipe: {t['target']}", t["measured"], t["met"]) for t in final.get("targets", [])]
    ratios = final["ratios"]
    rows.append(target("issue 18: >= 20x smaller file", ratios["size_ratio"], ratios["size_ratio"] >= 20))
    for batch, want in (("256", 15.0), ("1", 8.0)):
        if batch in ratios["speedup"]:
            got = ratios["speedup"][batch]
            rows.append(target(f"issue 18: >= {want:g}x faster at batch {batch}", got, got >= want))
    lost = round(-ratios["accuracy_delta"], 9)  # shares of one test set: no float residue (0.5000000000000004)
    rows.append(target("issue 18: <= 0.5 points of accuracy lost", lost, lost <= 0.5))
    rows.append(target("issue 18: within 15 minutes on 2 cores (minutes)", seconds / 60, seconds <= BUDGET_SECONDS))
    return rows


def main() -> None:
    parser = bench_arguments(__doc__.splitlines()[0])
    args = parser.parse_args()
    out = ROOT / "runs" / ("bench-recipe-quick" if args.quick else "bench-recipe")
    shutil.rmtree(out, ignore_errors=True)  # timed from scratch: nothing reused
    overrides = smoke_overrides(load_recipe(RECIPE)) + ["data.name=digits"] if args.quick else []
    started = time.perf_counter()
    result = run_recipe(RECIPE, out, overrides=overrides, progress="plain")
    seconds = time.perf_counter() - started
    status = json.loads((out / "status.json").read_text())
    stages = {s["folder"]: s["seconds"] for s in status["stages"]}  # folders sort in stage order
    final = result.final
    data = {"quick": args.quick, "recipe": str(RECIPE.relative_to(ROOT)), "overrides": overrides,
            "command": "python bench/recipe.py" + (" --quick" if args.quick else ""),
            "seconds": seconds, "stage_seconds": stages, "within_15_minutes": seconds <= BUDGET_SECONDS,
            "summary": final["summary"], "final": final}
    report = (out / "report.md").read_text()
    header = [(f"Run: `{data['command']}` (a fresh `slimkit run {data['recipe']}`), "
               f"{seconds / 60:.1f} minutes wall time in all "
               f"({'within' if data['within_15_minutes'] else '**over**'} the 15-minute budget)."), "",
              "| stage | seconds |", "|---|---|", *(f"| {k} | {v:.1f} |" for k, v in stages.items()), ""]
    # the report's own title stays first; the timing goes right under it
    title, _, body = report.partition("\n")
    markdown = "\n".join([title, "", *header, body.lstrip("\n")])
    path = write_results("recipe", data, markdown, targets=verdicts(final, seconds), out_dir=result_dir(args))
    print(final["summary"])
    print(f"wrote {path} in {seconds:.0f} s")


if __name__ == "__main__":
    main()
