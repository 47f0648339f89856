"""The transformer benchmark's --quick run works and writes every figure it promises."""

from pathlib import Path

import pytest

pytest.importorskip("transformers")

ROOT = Path(__file__).resolve().parents[2]


def test_quick_benchmark_writes_results(quick_bench, monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "bench"))
    import transformer
    import transformer_text

    data, markdown = quick_bench("transformer", "--threads", "1", timeout=600)
    assert data["benchmark"] == "transformer" and data["quick"] is True and data["dataset"] == "digits"
    vit, pruning = data["vit"], data["vit_prune"]
    assert all({"cpu", "commit"} <= set(data[k]["machine"]) for k in ("vit", "vit_prune", "bert"))
    assert set(vit["students"]) == set(transformer.METHODS)
    assert all(0.0 <= a <= 1.0 for s in vit["students"].values() for a in s["accuracy"])
    assert set(pruning["cuts"]) == set(transformer.CUTS)
    assert all(c["macs"][1] <= 0.5 * c["macs"][0] for c in pruning["cuts"].values())
    assert pruning["cuts"]["1 layer + heads + FFN, equal shares"]["depth"] == [4, 3]
    assert pruning["cuts"]["heads + FFN, fastest mix"]["mix"] and not pruning["cuts"]["heads + FFN, equal shares"]["mix"]
    chosen = pruning["cuts"]["heads + FFN, least changed at 1.5x"]
    assert set(chosen["mixes_kl"]) == set(chosen["mixes_speedup"]) and chosen["mix"] in chosen["mixes_kl"]
    rows = pruning["deployed"]
    assert {"teacher fp32 (PyTorch eager)", *map(transformer.cut_row, transformer.CUTS),
            f"teacher pruned ({transformer.INT8_CUT}), int8 (ORT)", "recipe pipeline int8 (ORT)"} <= set(rows)
    assert all(set(r["median_ms"]) == {"1", "32"} and r["bytes"] > 0 for r in rows.values())
    assert rows["recipe pipeline int8 (ORT)"]["bytes"] < rows["teacher fp32 (PyTorch eager)"]["bytes"]
    bert = data["bert"]["rows"]
    assert set(bert) == {"pytorch fp32 (eager)", "ort fp32", "ort dynamic int8 (slimkit)", "pytorch quantize_dynamic"}
    assert data["bert"]["parity"]["passed"] and data["bert"]["sequence_length"] == 64
    assert data["bert"]["task"]["name"] == "tagged" and set(data["bert"]["accuracy"]) == {"teacher", "student alone",
                                                                              transformer_text.DISTILLED}
    assert bert["ort fp32"]["accuracy"] == pytest.approx(bert["pytorch fp32 (eager)"]["accuracy"], abs=0.01)
    names = {t["target"] for t in data["targets"]}
    assert any(n.startswith("ViT: best distilled student") for n in names)
    assert any(n.startswith("BERT: dynamic int8 (ORT) at least as fast as quantize_dynamic, batch 32") for n in names)
    assert "## Targets" in markdown and "| recipe pipeline int8 (ORT) |" in markdown

    # A part run re-measures its own section and keeps the others as stored, stamps included;
    # vit-prune starts from the cached teacher and first-seed student (the same models: same accuracy).
    again, markdown = quick_bench("transformer", "--threads", "1", "--part", "vit-prune", timeout=600)
    assert again["vit"] == data["vit"] and again["bert"] == data["bert"]
    assert again["merged"][-1]["sections"] == ["vit_prune"] and again["vit_prune"]["command"].endswith("vit-prune")
    student = f"student: {data['vit_prune']['recipe_student']} (eager)"
    assert again["vit_prune"]["deployed"][student]["accuracy"] == rows[student]["accuracy"]
    assert [t["target"] for t in again["targets"]] == [t["target"] for t in data["targets"]]
    assert "## ViT students" in markdown and "## BERT" in markdown

    # --methods re-measures some students and keeps the others, each saying which run measured it.
    third, markdown = quick_bench("transformer", "--threads", "1", "--part", "vit-students", "--methods", "alone",
                                  timeout=600)
    students = third["vit"]["students"]
    assert set(students) == set(vit["students"]) and third["vit_prune"] == again["vit_prune"]
    assert students["alone"]["measured"]["command"].endswith("--methods 'alone'")
    assert students["KD"]["accuracy"] == vit["students"]["KD"]["accuracy"]
    assert students["KD"]["measured"] == {"commit": vit["commit"], "command": vit["command"]}


def test_chain_task_needs_the_query_and_old_results_split_into_parts(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "bench"))
    import transformer
    import transformer_text

    task = transformer_text.ChainTask(64, length=64, chains=3)
    for ids, label in zip(task.ids.tolist(), task.labels.tolist(), strict=True):
        pairs = dict(zip(ids[2::2], ids[3::2], strict=True))
        assert pairs[pairs[ids[1]]] - transformer_text.LABELS == label  # query -> k1 -> the label token
        assert sum(transformer_text.LABELS <= t < transformer_text.LABELS + 4 for t in ids) == 3  # one end per chain

    stamp = {"commit": "old", "machine": {"cpu": "x"}}
    legacy = {"command": "python bench/transformer.py", "threads": 2, "options": {"seeds": [0]},
              "vit": {"students": {}, "deployed": {}, "pruned_teacher": {}, "recipe_student": "KD", **stamp},
              "bert": {"rows": {}, **stamp}}
    split = transformer.upgrade(legacy)
    assert set(split["vit"]) == {"students", "command", "options", *stamp}
    assert split["vit_prune"]["recipe_student"] == "KD" and split["vit_prune"]["commit"] == "old"
    assert split["bert"]["options"]["threads"] == 2 and "options" not in split
