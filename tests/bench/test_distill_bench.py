"""The distillation benchmark's --quick run works and its JSON holds every figure the table shows."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
QUICK_ROWS = {"student", "kd", "fitnet", "dkd", "dml", "born_again", "r61_alone", "r61_init", "r61_fm"}


def bench(*args: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    subprocess.run([sys.executable, str(ROOT / "bench" / "distill.py"), *args], check=True, env=env, timeout=400,
                   capture_output=True)


@pytest.fixture(scope="module")
def quick_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("distill-bench")
    bench("--quick", "--out", str(out))
    return out


@pytest.fixture(scope="module")
def quick(quick_dir):
    return json.loads((quick_dir / "distill.json").read_text()), (quick_dir / "distill.md").read_text()


def test_quick_rows_and_accuracies(quick):
    data, _ = quick
    assert data["benchmark"] == "distill" and data["quick"] is True and not data["errors"]
    assert {"cpu", "cores", "torch", "commit"} <= set(data["machine"])
    assert data["settings"]["seeds"] == 1 and data["settings"]["epochs"] == 1
    rows = {r["name"]: r for r in data["rows"]}
    assert set(rows) == QUICK_ROWS
    for r in rows.values():
        assert len(r["test_acc"]) == r["seeds"] == 1
        assert all(0.0 <= a <= 1.0 for a in r["test_acc"] + r["val_acc"])
        assert r["mean"] == pytest.approx(sum(r["test_acc"]) / len(r["test_acc"]))
        assert r["epoch_time_ratio"] > 0
    assert rows["student"]["epoch_time_ratio"] == pytest.approx(1.0)
    assert 0.0 <= data["teachers"]["teacher"]["test_acc"] <= 1.0
    # the recipe's student runs 2x the base epochs; distilled rows report their fidelity to the teacher
    assert rows["r61_alone"]["epochs"] == rows["r61_init"]["epochs"] == 2 and rows["kd"]["epochs"] == 1
    assert 0 <= rows["r61_fm"]["agreement"] <= 1 and rows["r61_fm"]["kl"] >= 0 and "kl" not in rows["r61_alone"]
    assert rows["r61_init"]["gap_reference"] == {"student": "r61_alone", "teacher": "teacher"}


def test_quick_gap_closed_comes_from_the_row_means(quick):
    data, _ = quick
    rows = {r["name"]: r for r in data["rows"]}
    assert rows["student"]["gap_closed"] is None and rows["r61_alone"]["gap_closed"] is None
    checked = 0
    for r in rows.values():
        ref = r["gap_reference"]
        if ref is None:
            continue
        low, high = rows[ref["student"]]["mean"], data["teachers"][ref["teacher"]]["test_acc"]
        if high > low:
            assert r["gap_closed"] == pytest.approx((r["mean"] - low) / (high - low)) and not r["no_gap"]
        else:  # a teacher no better than the student alone leaves no gap to close
            assert r["gap_closed"] is None and r["no_gap"]
        checked += 1
    assert checked == len(rows) - 2  # every method row, measured against its student alone


def test_quick_timing_targets_and_markdown(quick):
    data, markdown = quick
    timing = data["timing"]
    assert {"student", "kd_cached", "kd_online", "fm_int8", "fm_eager", "r61_student", "r61_fm_int8"} <= set(timing["ratio"])
    assert timing["ratio"]["student"] == pytest.approx(1.0) and timing["ratio"]["r61_student"] == pytest.approx(1.0)
    assert all(v > 0 for v in timing["ratio"].values())
    names = [t["target"] for t in data["targets"]]
    for start in ("tiny student, 6 epochs", "DKD or logit", "recipe 61K student, 12 epochs: best method >= 0.5",
                  "recipe 61K student, 12 epochs: best method closes", "tiny 14K student", "offline KD", "online teacher"):
        assert any(n.startswith(start) for n in names), start
    assert all(set(t) == {"target", "value", "met"} and isinstance(t["met"], bool) for t in data["targets"])
    gain = next(t for t in data["targets"] if t["target"].startswith("recipe 61K student, 12 epochs: best method >= 0.5"))
    rows = {r["name"]: r for r in data["rows"]}
    best = max(rows["r61_init"]["mean"], rows["r61_fm"]["mean"])
    assert gain["value"] == pytest.approx(100 * (best - rows["r61_alone"]["mean"])) and gain["met"] == (gain["value"] >= 0.5)
    assert "QUICK" in markdown and "Gap closed" in markdown and "## Targets" in markdown and "agrees" in markdown


def test_render_rewrites_the_table_from_the_stored_figures(quick, quick_dir, tmp_path):
    data, markdown = quick
    (tmp_path / "distill.json").write_text(json.dumps(data))
    bench("--render", "--out", str(tmp_path))
    assert (tmp_path / "distill.md").read_text() == markdown  # the same figures give the same table
    assert json.loads((tmp_path / "distill.json").read_text())["machine"] == data["machine"]
    students = [r["mean"] for r in data["rows"] if r["name"] == "student"]
    data["teachers"]["teacher"]["test_acc"] = students[0] - 0.01  # now no better than the student alone
    (tmp_path / "distill.json").write_text(json.dumps(data))
    bench("--render", "--out", str(tmp_path))
    assert "— (teacher not better)" in (tmp_path / "distill.md").read_text()


def test_quick_probe_pairs_plain_training_with_kd(quick_bench):
    data, markdown = quick_bench("distill_probe")
    runs = data["runs"]
    assert len(runs) == 15 and all(0 <= r["test_acc"] <= 1 for r in runs.values())
    assert all(len(r["seeds"]) == 2 and r["test_acc"] == pytest.approx(sum(s["test_acc"] for s in r["seeds"]) / 2)
               for r in runs.values())  # the table's figure is the mean over seeds
    assert all(0 <= r["train_acc"] <= 1 for name, r in runs.items() if "function matching" not in name)
    assert runs["recipe, initialized from the teacher + KD + CE, 12 epochs"]["epochs"] == 2  # quick: 12 // 6
    assert 0 <= runs["tiny, DIST + CE, 6 epochs"]["top1_agreement"] <= 1 and "kl" not in runs["tiny, CE, 6 epochs"]
    assert [t["target"][:6] for t in data["targets"]] == ["cached", "recipe"] and all(isinstance(t["met"], bool)
                                                                                     for t in data["targets"])
    cached, online = runs["tiny, 0.9 KD (T=4) + 0.1 CE, 6 epochs"], runs["tiny, same, teacher run online (no cache)"]
    assert abs(cached["test_acc"] - online["test_acc"]) <= 0.005  # the cache holds the teacher's outputs
    assert "| tiny, CE, 6 epochs |" in markdown and "2 seed(s)" in markdown


def test_merge_puts_remeasured_rows_into_the_stored_results(quick, tmp_path, monkeypatch):
    import copy
    import importlib.util
    import statistics

    monkeypatch.syspath_prepend(str(ROOT / "bench"))
    spec = importlib.util.spec_from_file_location("bench_distill", ROOT / "bench" / "distill.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "bench_distill", module)  # dataclasses look their module up there
    spec.loader.exec_module(module)
    from distill_rows import rows

    data, _ = quick
    (tmp_path / "distill.json").write_text(json.dumps(data))
    kd = copy.deepcopy(next(r for r in data["rows"] if r["name"] == "kd"))
    kd.update(test_acc=[0.5], mean=0.5, epoch_seconds=[[2.0]], epoch_time_ratio=None)  # run without a student beside it
    new = {"rows": [kd], "teachers": {"teacher": {"description": "retrained", "test_acc": 0.99}}, "errors": {},
           "machine": {"commit": "abc"}, "wall_seconds": 1.0, "timing": None}
    dirs = {k: str(tmp_path / k) for k in ("teacher", "teacher2", "teacher20", "mlp_teacher", "students", "cache")}
    merged = module.merge(tmp_path / "distill.json", new, rows(dirs))
    assert [r["name"] for r in merged["rows"]] == [r["name"] for r in data["rows"]]  # stored order kept
    got, student = ({r["name"]: r for r in merged["rows"]}[n] for n in ("kd", "student"))
    assert got["mean"] == 0.5 and merged["teachers"]["teacher"]["test_acc"] == 0.99
    assert got["gap_closed"] == pytest.approx((0.5 - student["mean"]) / (0.99 - student["mean"]))
    plain = statistics.fmean(s for run in student["epoch_seconds"] for s in run)
    assert got["epoch_time_ratio"] == pytest.approx(2.0 / plain) and got["ratio_reference"] == "stored student row"
    assert merged["merged"] == [{"rows": ["kd"], "machine": {"commit": "abc"}, "wall_seconds": 1.0}]
    assert merged["machine"] == data["machine"]  # the stored rows' machine record stays
    assert merged["timing"] == data["timing"]  # a plain merge keeps the stored timing ...
    timing = copy.deepcopy(data["timing"])
    timing["ratio"]["kd_cached"] = 9.0
    remeasured = module.merge(tmp_path / "distill.json", {**new, "timing": timing}, rows(dirs))
    assert remeasured["timing"] == timing  # ... and --timing's replaces it, with the targets derived from it
    assert next(t for t in remeasured["targets"] if t["target"].startswith("offline KD"))["value"] == 9.0


def test_merge_puts_a_new_row_in_its_section_with_its_choice(quick, tmp_path, monkeypatch):
    import copy
    import importlib.util

    monkeypatch.syspath_prepend(str(ROOT / "bench"))
    spec = importlib.util.spec_from_file_location("bench_distill", ROOT / "bench" / "distill.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "bench_distill", module)
    spec.loader.exec_module(module)
    from distill_rows import rows

    data, _ = quick
    (tmp_path / "distill.json").write_text(json.dumps(data))
    tuned = copy.deepcopy(next(r for r in data["rows"] if r["name"] == "r61_init"))
    tuned.update(name="r61_init_tuned", chosen="T=2")
    choice = {"chosen": "T=2", "candidates": {"T=2": {"val_acc": 0.9, "test_acc": 0.8}}}
    new = {"rows": [tuned], "teachers": {}, "errors": {}, "machine": {"commit": "abc"}, "wall_seconds": 1.0,
           "timing": None, "selection": {"r61_init_tuned": choice}}
    dirs = {k: str(tmp_path / k) for k in ("teacher", "teacher2", "teacher20", "mlp_teacher", "students", "cache")}
    merged = module.merge(tmp_path / "distill.json", new, rows(dirs))
    names = [r["name"] for r in merged["rows"]]
    assert names.index("r61_init_tuned") == names.index("r61_init") + 1  # in the recipe section, not appended
    assert merged["selection"]["r61_init_tuned"] == choice and set(data["selection"]) <= set(merged["selection"])
    assert "| r61_init_tuned | T=2 | 90.00% | 80.00% | yes |" in module.markdown(merged)


def test_tuned_candidates_are_valid_configs():
    sys.path.insert(0, str(ROOT / "bench"))
    from distill_rows import TUNED

    from slimkit.distillation import DistillConfig
    from slimkit.train import TrainConfig

    for name, candidate in TUNED.items():
        DistillConfig(losses=candidate.get("losses", [{"name": "kd"}]), train=TrainConfig(**candidate.get("train", {})))
        assert set(candidate) <= {"losses", "train", "ema"}, name


def test_weight_average_leaves_the_model_with_the_averaged_weights():
    import torch

    sys.path.insert(0, str(ROOT / "bench"))
    from distill_rows import WeightAverage

    from slimkit.models import build_model
    from slimkit.train import TrainConfig, Trainer

    data = [(torch.randn(8, 1, 28, 28), torch.randint(0, 10, (8,))) for _ in range(4)]
    runs = {}
    for decay in (None, 1 - 1e-9):  # an average that barely moves keeps the starting weights
        torch.manual_seed(0)
        model = build_model("cnn", channels=[4, 8], hidden=8)
        start = {k: v.clone() for k, v in model.state_dict().items()}
        Trainer(model, TrainConfig(epochs=1, lr=0.05, progress=False),
                callbacks=[WeightAverage(decay)] if decay else []).fit(data)
        runs[decay] = max(float((v.float() - start[k].float()).abs().max()) for k, v in model.state_dict().items())
    assert runs[None] > 1e-3 and runs[1 - 1e-9] < 1e-6
