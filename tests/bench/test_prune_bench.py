"""The pruning benchmark's --quick run works and writes every figure it promises."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_quick_benchmark_writes_results(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "prune.py"), "--quick", "--out", str(tmp_path)],
                          env=env, timeout=400, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    data = json.loads((tmp_path / "prune.json").read_text())
    assert data["benchmark"] == "prune" and data["quick"] is True and data["dataset"] == "digits"
    assert {"cpu", "cores", "torch", "commit"} <= set(data["machine"])
    criteria = {"slimkit l1", "slimkit l2", "slimkit bn_scale", "slimkit taylor", "slimkit activation", "slimkit random"}
    for section in ("structured", "headline", "han", "slimming", "foreign"):  # every section stamped
        assert len(data[section]["commit"]) == 40 and {"cpu", "torch"} <= set(data[section]["machine"]), section
    structured = {k: v for k, v in data["structured"].items() if k not in ("commit", "machine")}
    for model, targets in structured.items():
        assert set(targets) == {"2x", "4x"}, model
        for label, rows in targets.items():
            assert set(rows) == criteria | {"peer: Torch-Pruning L1 group"}, (model, label)
            for name, row in rows.items():
                assert len(row["accuracy"]) == 2 and all(0 <= a <= 1 for a in row["accuracy"]), name
                # Every method meets the MACs target, and the smaller model is really smaller.
                assert row["macs_ratio"] >= (2 if label == "2x" else 4) * 0.97, (model, label, name)
                assert row["bytes_ratio"] > 1 and set(row["speedup"]) == {"1", "256"}, name
    head = data["headline"]
    assert len(head["rows"]) == 6 and head["ratios"] and head["fast_ratios"] and head["criterion"] in {c.split()[1] for c in criteria}
    assert all(r["macs_ratio"] >= 1.94 for r in head["rows"].values())
    assert set(head["sensitivity"]["latency"]) == set(head["sensitivity"]["accuracy"])
    # slimkit's rows keep channel counts in multiples of round_to; the unrounded plan is timed beside them
    rounded = [r for k, r in head["rows"].items() if k.startswith("slimkit")]
    counts = [n for r in rounded for k, n in r["channels"].items() if k != "classifier.out" and n >= head["round_to"]]
    assert counts and all(n % head["round_to"] == 0 for n in counts)  # counts under round_to stay as they are
    assert set(head["unrounded"]["speedup"]) == {"1", "256"} and head["unrounded"]["channels"]
    for name, han in ((k, v) for k, v in data["han"].items() if k not in ("commit", "machine")):
        assert abs(han["weights_kept"] - 0.08) < 0.01 and han["sparse_bytes"] < han["dense_bytes"] / 4, name
    mlp = data["slimming"]["MLP 784-500-300"]
    assert all(sum(n) <= 0.25 * (500 + 300) for n in mlp["neurons"])
    # the shared schema: a list of {target, value, met}
    assert all(set(t) == {"target", "value", "met"} and isinstance(t["met"], bool) for t in data["targets"])
    foreign_names = {f"foreign {m}: slimkit {t}" for m in ("branchy", "se", "mixer", "transformer")
                     for t in ("keeps at most 0.5 of the MACs", ">= Torch-Pruning at the same MACs (accuracy points)")}
    assert {t["target"] for t in data["targets"]} == {
        f"2x_macs_{t} ({r})" for t in ("loss_at_most_0.3_points", "speedup_at_least_1.9_at_batch_256")
        for r in ("CE", "KD")} | {"lenet_300_100_8pct_within_0.3_points"} | foreign_names
    # foreign architectures: every method on every model, slimkit at the target and at Torch-Pruning's MACs
    foreign = data["foreign"]["models"]
    assert set(foreign) == {"branchy", "se", "mixer", "transformer"}
    for name, r in foreign.items():
        peer, uniform, planned = (r[k] for k in ("Torch-Pruning MetaPruner (L1 group)", "slimkit l1, one ratio for every layer",
                                                 "slimkit l1, per-layer ratios from sensitivity analysis"))
        assert all(len(x["accuracy"]) == 2 and all(0 <= a <= 1 for a in x["accuracy"]) for x in (peer, uniform, planned))
        assert uniform["macs_share"] <= 0.5 and planned["macs_share"] <= peer["macs_share"] + 1e-9, name
        assert peer["macs_share"] <= 0.5 or not r["peer_reached"], name
    assert data["section_seconds"]["foreign"] < 60  # the section's quick mode stays under a minute
    markdown = (tmp_path / "prune.md").read_text()
    assert "## Head-to-head at 2x fewer MACs" in markdown and "| peer: Torch-Pruning L1 group |" in markdown
    assert "## Foreign architectures" in markdown and "| transformer |" in markdown
    # one section re-measured alone: the others are kept, the targets re-derived
    before = json.loads((tmp_path / "prune.json").read_text())
    again = subprocess.run([sys.executable, str(ROOT / "bench" / "prune.py"), "--quick", "--out", str(tmp_path),
                            "--only", "han"], env=env, timeout=400, capture_output=True, text=True, check=False)
    assert again.returncode == 0, again.stderr[-3000:]
    after = json.loads((tmp_path / "prune.json").read_text())
    assert after["headline"] == before["headline"] and after["structured"] == before["structured"]
    assert after["foreign"] == before["foreign"]
    assert after["reruns"]["han"]["seconds"] > 0 and set(after["han"]) - {"commit", "machine"} == {"LeNet-300-100", "LeNet-5"}
    assert "section re-measured alone" in (tmp_path / "prune.md").read_text()
    bad = subprocess.run([sys.executable, str(ROOT / "bench" / "prune.py"), "--quick", "--out", str(tmp_path),
                          "--only", "han,typo"], env=env, timeout=60, capture_output=True, text=True, check=False)
    assert bad.returncode == 2 and "unknown section 'typo'" in bad.stderr
    # the teacher CNN rows re-timed alone, from the channel counts they recorded
    again = subprocess.run([sys.executable, str(ROOT / "bench" / "prune.py"), "--quick", "--out", str(tmp_path),
                            "--only", "speed"], env=env, timeout=400, capture_output=True, text=True, check=False)
    assert again.returncode == 0, again.stderr[-3000:]
    timed = json.loads((tmp_path / "prune.json").read_text())
    assert timed["speed_retimed"]["rounds"] == 3 and timed["han"] == after["han"]
    by_plan: dict = {}  # one run times every architecture once per round: equal channels, equal ratios
    for r in timed["headline"]["rows"].values():
        assert len(r["speedup_rounds"]["256"]) == 3 and r["speedup"]["256"] == sorted(r["speedup_rounds"]["256"])[1]
        assert by_plan.setdefault(tuple(sorted(r["channels"].items())), r["speedup"]) == r["speedup"]
    assert all(set(r["speedup"]) == {"1", "256"} and min(r["speedup"].values()) > 0 for r in timed["headline"]["rows"].values())
    assert "re-timed alone" in (tmp_path / "prune.md").read_text()
