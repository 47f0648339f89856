"""Hostile and careless run folders and recipes (issue 15), through `slimkit run`.

None of these runs code, escapes the run folder, hangs, loses a user file or prints a
traceback: each ends in exit code 2 and one line (plus a hint). Where the claim is about the
command itself, the real `slimkit` runs in a subprocess.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from slimkit.cli import main
from slimkit.errors import CheckpointError, ConfigError
from slimkit.recipe import Recipe, load_recipe, run_recipe
from slimkit.recipe.runner import RunLock
from slimkit.train import Callback

SRC = Path(__file__).resolve().parents[2] / "src"
TINY = {
    "name": "tiny-safe",
    "data": {"name": "synthetic", "batch_size": 16,
             "options": {"num_classes": 3, "shape": [1, 8, 8], "size": 60, "test_size": 20}},
    "model": {"registry": "mlp", "knobs": {"hidden": [4]}},
    "evaluation": {"latency": False},
    "stages": [{"type": "train", "epochs": 1}],
}


def slimkit(*args: str) -> subprocess.CompletedProcess:
    """The real `slimkit` command in a fresh process, one torch thread."""
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "slimkit.cli", *args], env=env, capture_output=True, text=True,
                          timeout=600, check=False)


def assert_one_line(err: str, *needles: str) -> None:
    """``err`` is a one-line error plus at most a hint, and holds every needle."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err, err
    assert lines and lines[0].startswith("error: ") and len(lines) <= 2, err
    assert len(lines) == 1 or lines[1].startswith("hint: "), err
    for needle in needles:
        assert needle in err, (needle, err)


def refused(capsys, args: list[str], *needles: str) -> str:
    """Run `slimkit ARGS` in this process; it must exit 2 with one line holding the needles."""
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err
    assert_one_line(err, *needles)
    return err


def write_recipe(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
            and p.name != ".slimkit.lock"}


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> tuple[Path, Path]:
    """A finished tiny run and its recipe file (copy it before changing it)."""
    root = tmp_path_factory.mktemp("finished")
    recipe = write_recipe(root / "tiny.yaml", TINY)
    run_recipe(recipe, root / "run", progress=False, report=False)
    return root / "run", recipe


@pytest.fixture
def run_copy(finished, tmp_path) -> tuple[Path, Path]:
    run, recipe = finished
    shutil.copytree(run, tmp_path / "run")
    return tmp_path / "run", recipe


def edit_json(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


# ----------------------------------------------------------------------------- code execution
def test_a_recipe_naming_os_system_runs_nothing_not_even_in_a_dry_run(tmp_path):
    marker = tmp_path / "pwned"
    evil = {**TINY, "model": {"factory": "os:system", "knobs": {"command": f"touch {marker}"}}}
    recipe = write_recipe(tmp_path / "evil.yaml", evil)
    ran = slimkit("run", str(recipe), "--out", str(tmp_path / "out"), "--no-progress")
    assert_one_line(ran.stderr, "'os:system'", "runs no code that you did not name yourself", "--trust-code")
    assert ran.returncode == 2 and not marker.exists() and not (tmp_path / "out").exists()
    dry = slimkit("run", str(recipe), "--out", str(tmp_path / "out"), "--dry-run")
    assert dry.returncode == 0 and not marker.exists() and not (tmp_path / "out").exists()
    assert "code this recipe imports: os:system (NOT trusted" in " ".join(dry.stdout.split())


def test_a_distill_students_factory_is_code_too(tmp_path, capsys):
    marker = tmp_path / "pwned"
    evil = {**TINY, "stages": [*TINY["stages"], {"type": "distill", "student": {
        "factory": "os:system", "knobs": {"command": f"touch {marker}"}}}]}
    recipe = write_recipe(tmp_path / "evil.yaml", evil)
    refused(capsys, ["run", str(recipe), "--out", str(tmp_path / "out")], "'os:system'")
    assert main(["run", str(recipe), "--out", str(tmp_path / "out"), "--dry-run"]) == 0
    assert "os:system (NOT trusted" in " ".join(capsys.readouterr().out.split())
    assert not marker.exists() and not (tmp_path / "out").exists()


def test_resume_never_imports_a_factory_written_into_the_run_folder(run_copy, capsys, tmp_path):
    run, recipe = run_copy
    marker = tmp_path / "pwned"

    def evil(doc):
        doc["spec"] = {"name": None, "class": "Evil"}
        doc["metadata"]["source"] = {"factory": "os:system", "knobs": {"command": f"touch {marker}"}}

    edit_json(run / "00-source" / "model" / "model.json", evil)
    refused(capsys, ["run", str(recipe), "--out", str(run), "--resume"], "00-source/model/model.json", "'os:system'")
    # --trust-code trusts the references the recipe names (none here), never the folder's
    err = refused(capsys, ["run", str(recipe), "--out", str(run), "--resume", "--trust-code"], "'os:system'")
    assert "trusts only the references the recipe names (none)" in err
    assert not marker.exists()


def test_trust_code_runs_the_recipes_own_factory_and_nothing_else(tmp_path, capsys, monkeypatch):
    package = tmp_path / "code"
    package.mkdir()
    (package / "mynets.py").write_text(
        "from torch import nn\n"
        "def small(width=4):\n    return nn.Sequential(nn.Flatten(), nn.Linear(64, width), nn.ReLU(), nn.Linear(width, 3))\n"
        "def other(width=4):\n    raise SystemExit('other must never run')\n")
    monkeypatch.syspath_prepend(str(package))
    recipe = write_recipe(tmp_path / "mine.yaml", {**TINY, "model": {"factory": "mynets:small", "knobs": {"width": 5}}})
    out = tmp_path / "run"
    refused(capsys, ["run", str(recipe), "--out", str(out), "--no-progress"], "'mynets:small'")
    assert main(["run", str(recipe), "--out", str(out), "--dry-run", "--trust-code"]) == 0
    assert "mynets:small (trusted)" in " ".join(capsys.readouterr().out.split())
    assert main(["run", str(recipe), "--out", str(out), "--trust-code", "--no-progress", "--no-report"]) == 0
    assert (out / "final.json").is_file()
    # the stage folder now names another factory: --resume refuses it, though --trust-code is given
    edit_json(out / "01-train" / "model" / "model.json",
              lambda doc: doc["metadata"].update(source={"factory": "mynets:other", "knobs": {}}))
    edit_json(out / "01-train" / "model" / "model.json", lambda doc: doc.update(spec={"name": None, "class": "X"}))
    err = refused(capsys, ["run", str(recipe), "--out", str(out), "--resume", "--trust-code"], "'mynets:other'")
    assert "trusts only the references the recipe names (mynets:small)" in err


# ----------------------------------------------------------------------------- paths and folders
def test_an_artifact_path_outside_the_run_folder_is_refused(run_copy, capsys):
    run, recipe = run_copy
    edit_json(run / "01-train" / "metrics.json", lambda m: m.update(artifact="../../.."))
    refused(capsys, ["run", str(recipe), "--out", str(run), "--resume"], "01-train/metrics.json",
            "points outside the run folder")
    (run / "01-train" / "elsewhere").symlink_to(run.parent)  # a link inside that leads out
    edit_json(run / "01-train" / "metrics.json", lambda m: m.update(artifact="01-train/elsewhere/model.onnx"))
    refused(capsys, ["run", str(recipe), "--out", str(run), "--resume"], "points outside the run folder")
    edit_json(run / "01-train" / "metrics.json", lambda m: m.update(artifact="/etc/passwd"))
    refused(capsys, ["run", str(recipe), "--out", str(run), "--resume"], "points outside the run folder")


def test_a_users_folder_is_refused_and_left_intact(tmp_path, finished):
    _, recipe = finished
    mine = tmp_path / "mine"
    mine.mkdir()
    files = {"report.html": "<p>my report</p>", "final.json": '{"mine": true}', "recipe.resolved.yaml": "mine: 1\n",
             "original.json": '{"unrelated": [1, 2]}'}
    for name, text in files.items():
        (mine / name).write_text(text)
    ran = slimkit("run", str(recipe), "--out", str(mine), "--no-progress")
    assert ran.returncode == 2
    assert_one_line(ran.stderr, "is not a slimkit run", "--force")
    assert {p.name: p.read_text() for p in mine.iterdir()} == files  # no lock file left either


def test_train_refuses_a_finished_run_and_a_users_training_files(tmp_path, finished, capsys):
    run, _ = finished
    before = snapshot(run)
    train = ["train", "--model", "mlp:hidden=[4]", "--dataset", "digits", "--limit", "60", "--epochs", "1",
             "--no-progress", "--no-report"]
    refused(capsys, [*train, "--out", str(run)], "already holds a run", "--resume")
    assert snapshot(run) == before
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "best.pt").write_bytes(b"my weights")
    (mine / "metrics.jsonl").write_text('{"epoch": 1}\n')
    refused(capsys, [*train, "--out", str(mine)], "not a slimkit run (best.pt, metrics.jsonl)")
    assert sorted(p.name for p in mine.iterdir()) == ["best.pt", "metrics.jsonl"]
    assert (mine / "best.pt").read_bytes() == b"my weights"


def test_a_second_resume_while_the_first_runs_is_refused_with_its_pid(tmp_path):
    recipe = write_recipe(tmp_path / "tiny.yaml", TINY)
    out = tmp_path / "run"

    class SecondProcess(Callback):
        """While the first run trains, start a real second `slimkit run --resume` on the folder."""

        result: subprocess.CompletedProcess | None = None

        def on_fit_start(self, trainer) -> None:
            if self.result is None:
                SecondProcess.result = slimkit("run", str(recipe), "--out", str(out), "--resume", "--no-progress")

    run_recipe(recipe, out, resume=True, callbacks=[SecondProcess()], progress=False, report=False)
    second = SecondProcess.result
    assert second is not None and second.returncode == 2
    assert_one_line(second.stderr, f"is in use by process {os.getpid()}")
    assert json.loads((out / "status.json").read_text())["state"] == "done"
    assert (out / "01-train" / "log.txt").read_text().count("epoch 1:") == 1


def test_the_lock_is_released_when_its_holder_ends(tmp_path):
    first = RunLock(tmp_path).__enter__()
    with pytest.raises(ConfigError, match=f"in use by process {os.getpid()}"), RunLock(tmp_path):
        pass
    first.__exit__(None, None, None)
    with RunLock(tmp_path):  # free again
        pass


# ----------------------------------------------------------------------------- malformed run files
MALFORMED = {
    "status-list": ("status.json", lambda p: p.write_text("[1, 2]"), "status.json: expected a JSON object"),
    "status-type": ("status.json", lambda p: edit_json(p, lambda d: d["stages"][0].update(state=7)),
                    "field 'stages.0.state'"),
    "status-folder": ("status.json", lambda p: edit_json(p, lambda d: d["stages"][0].update(folder="../../x")),
                      "field 'stages.0.folder'"),
    "status-missing": ("status.json", lambda p: edit_json(p, lambda d: d.pop("stages")), "field 'stages'"),
    "metrics-utf8": ("01-train/metrics.json", lambda p: p.write_bytes(b'{"name": "caf\xe9"}'), "not UTF-8"),
    "metrics-type": ("01-train/metrics.json", lambda p: edit_json(p, lambda d: d["quality"].update(accuracy="high")),
                     "field 'quality.accuracy'"),
    "metrics-cost": ("01-train/metrics.json", lambda p: edit_json(p, lambda d: d["cost"].pop("bytes")),
                     "field 'cost.bytes'"),
    "metrics-data": ("01-train/metrics.json", lambda p: edit_json(p, lambda d: d.update(data=[1])), "field 'data'"),
    "original-missing": ("original.json", lambda p: edit_json(p, lambda d: d.pop("cost")), "field 'cost'"),
    "original-deep": ("original.json", lambda p: p.write_text("[" * 5000 + "]" * 5000), "nested more than 64"),
    "resolved-utf8": ("recipe.resolved.json", lambda p: p.write_bytes(b"\xff\xfe{}"), "not UTF-8"),
    "model-list": ("01-train/model/model.json", lambda p: p.write_text("[]"), "expected a JSON object"),
    "model-history": ("01-train/model/model.json", lambda p: edit_json(p, lambda d: d.update(history=[7])),
                      "field 'history.0'"),
    "model-kind": ("01-train/model/model.json",
                   lambda p: edit_json(p, lambda d: d.update(history=[{"kind": "teleport"}])),
                   "history entry 0 ('teleport'): no such kind"),
    "model-replay": ("01-train/model/model.json",
                     lambda p: edit_json(p, lambda d: d.update(history=[{"kind": "share", "layer": "nowhere"}])),
                     "history entry 0 ('share')"),
    "model-kwargs": ("00-source/model/model.json",
                     lambda p: edit_json(p, lambda d: d["spec"]["kwargs"].update(hidden="wide")), "field 'spec.kwargs'"),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_a_malformed_run_file_is_one_line_naming_file_and_field(run_copy, capsys, case):
    run, recipe = run_copy
    name, damage, message = MALFORMED[case]
    damage(run / name)
    refused(capsys, ["run", str(recipe), "--out", str(run), "--resume", "--no-progress", "--no-report"],
            name.split("/")[-1], message)


REPORT_DAMAGE = {
    "status.json": (lambda p: edit_json(p, lambda d: d["stages"][0].update(folder="../../../etc")), "field 'stages.0.folder'"),
    "final.json": (lambda p: p.write_text("[]"), "expected a JSON object"),
    "original.json": (lambda p: edit_json(p, lambda d: d.update(quality=1)), "field 'quality'"),
    "01-train/metrics.json": (lambda p: edit_json(p, lambda d: d["cost"].update(params=-4)), "field 'cost.params'"),
}


@pytest.mark.parametrize("name", list(REPORT_DAMAGE))
def test_the_report_of_a_damaged_run_is_one_line(run_copy, capsys, name):
    run, _ = run_copy
    assert main(["report", str(run)]) == 0 and (run / "report.html").is_file()
    damage, message = REPORT_DAMAGE[name]
    damage(run / name)
    refused(capsys, ["report", str(run)], name.split("/")[-1], message)


# ----------------------------------------------------------------------------- recipes themselves
BOMB = "".join([
    'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n',
    *(f"{c}: &{c} [{','.join(['*' + p] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi")),
])


def test_a_billion_laughs_is_refused_in_under_a_second_even_in_a_dry_run(tmp_path, capsys):
    assert len(BOMB.encode()) < 350
    path = tmp_path / "bomb.yaml"
    path.write_text(BOMB)
    started = time.process_time()  # CPU time: the machine may be busy with other work
    with pytest.raises(ConfigError, match="expands to more than 100,000 values"):
        load_recipe(path)
    assert time.process_time() - started < 1.0
    refused(capsys, ["run", str(path), "--dry-run"], "bomb.yaml:", "expands to more than 100,000 values")
    ok = write_recipe(tmp_path / "ok.yaml", TINY)
    laughs = "{a: &a [" + ",".join(["1"] * 10) + "]" + "".join(
        f", {c}: &{c} [{','.join(['*' + p] * 10)}]" for p, c in zip("abc", "bcd")) + ", e: [" + ",".join(["*d"] * 20) + "]}"
    refused(capsys, ["run", str(ok), "--dry-run", "--set", f"model.knobs={laughs}"],
            "--set model.knobs:1:", "expands to more than 100,000 values")


@pytest.mark.parametrize(("text", "message"), [
    ("stages: " + "[" * 5000 + "]" * 5000, "nested more than 50 levels deep"),
    ("stages:\n" + "".join("  " * i + "- \n" for i in range(200)), "nested more than 50 levels deep"),
    ("name: !!python/object/apply:os.system [ls]\n", "the YAML tag"),
    ("seed: 1\n? [a, b]\n: 1\n", "a mapping key must be a plain name"),
    ("seed: " + "9" * 5000 + "\n", "a value cannot be read"),
    ("seed: 2001-02-03\n", "the YAML tag 'tag:yaml.org,2002:timestamp'"),
    ("a: &x 1\nb: *y\n", "not valid YAML"),
])
def test_recipes_beyond_the_limits_are_one_line_errors(tmp_path, capsys, text, message):
    path = tmp_path / "r.yaml"
    path.write_text(text)
    refused(capsys, ["run", str(path), "--dry-run"], "r.yaml", message)
    started = time.process_time()  # CPU time: the machine may be busy with other work
    with pytest.raises(ConfigError, match=message):
        load_recipe(path)
    assert time.process_time() - started < 1.0


def test_a_non_utf8_or_huge_recipe_is_one_line_naming_the_file(tmp_path, capsys):
    latin = tmp_path / "latin.yaml"
    latin.write_bytes("name: café\n".encode("latin-1"))
    refused(capsys, ["run", str(latin), "--dry-run"], "latin.yaml: not UTF-8 text (byte 9")
    big = tmp_path / "big.yaml"
    big.write_text("# padding\n" * 200_000)
    refused(capsys, ["run", str(big), "--dry-run"], "big.yaml", "too large for a recipe")


def test_seed_beyond_what_numpy_accepts_fails_at_validation(tmp_path, capsys):
    recipe = write_recipe(tmp_path / "r.yaml", {**TINY, "seed": 2**70})
    refused(capsys, ["run", str(recipe), "--dry-run"], "r.yaml:", "seed", "less than or equal to 4294967295")
    ok = write_recipe(tmp_path / "ok.yaml", {**TINY, "stages": [{"type": "prune", "structured": {"ratio": 0.5}}]})
    refused(capsys, ["run", str(ok), "--dry-run", "--set", "stages.1.structured.seed=-1"],
            "--set stages.1.structured.seed=-1", "greater than or equal to 0")


def _seeded_configs() -> list:
    import slimkit.recipe.stages  # noqa: F401  (imports every technique's configs)
    from slimkit.config import CONFIG_TYPES
    from slimkit.train import TrainConfig

    found = [cls for name, cls in sorted(CONFIG_TYPES.items()) if "seed" in cls.model_fields]
    assert TrainConfig in found
    return found


@pytest.mark.parametrize("cls", _seeded_configs(), ids=lambda cls: cls.__name__)
def test_every_seed_field_is_range_checked(cls):
    from slimkit.config import MAX_SEED

    for bad in (2**70, -1, MAX_SEED + 1):
        with pytest.raises(ConfigError) as refused_:
            cls(seed=bad)
        assert "field 'seed'" in str(refused_.value)


def test_a_duplicate_model_knob_in_a_recipe_is_refused(tmp_path, capsys):
    path = tmp_path / "r.yaml"
    path.write_text("model: {registry: mlp, knobs: {hidden: [4], hidden: [8]}}\nstages: [{type: train}]\n")
    refused(capsys, ["run", str(path), "--dry-run"], "r.yaml:1: model.knobs.hidden", "appears twice")
    refused(capsys, ["train", "--model", "mlp:hidden=[4],hidden=[8]", "--dry-run"], "given twice")


def test_force_writes_beside_the_users_files(tmp_path, finished):
    _, recipe = finished
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not a slimkit run"):
        run_recipe(recipe, mine, progress=False, report=False)
    run_recipe(Recipe.from_dict(TINY), mine, progress=False, report=False, force=True)
    assert (mine / "notes.txt").read_text() == "mine" and (mine / "final.json").is_file()
    with pytest.raises(CheckpointError, match="different recipe"):
        run_recipe(Recipe.from_dict({**TINY, "seed": 3}), mine, progress=False, report=False, resume=True)
