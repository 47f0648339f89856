"""Kill `slimkit train` mid-epoch, resume it, and check the result equals an uninterrupted run.

    python bench/resume.py          # the default student on full Fashion-MNIST, 3 epochs
    python bench/resume.py --quick  # digits, small limit
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from _common import ROOT, bench_arguments, result_dir, stamp, target, write_results

SLIMKIT = [sys.executable, "-m", "slimkit.cli"]


def train_command(out: Path, quick: bool, threads: int) -> list[str]:
    data = ["--dataset", "digits", "--batch-size", "8"] if quick else ["--dataset", "fashion-mnist"]
    return [*SLIMKIT, "train", "--model", "cnn:channels=[8,16],hidden=16", *data, "--epochs", "3",
            "--out", str(out), "--no-progress", "--no-report", "--threads", str(threads), "--seed", "1",
            "--set", "evaluation.repeats=3", "--set", "evaluation.final_repeats=3"]


#: Where a `slimkit train` run keeps its epoch log and its trained weights.
EPOCH_LOG = Path("01-train") / "train" / "metrics.jsonl"
WEIGHTS = Path("01-train") / "model" / "model.safetensors"


def kill_mid_epoch(command: list[str], out: Path) -> float:
    """Start training, SIGKILL it once epoch 1 is logged and epoch 2 is under way. Returns the kill time."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    log = out / EPOCH_LOG
    start = time.monotonic()
    while proc.poll() is None and not (log.is_file() and log.read_text().count("\n") >= 1):
        time.sleep(0.01)
    epoch_seconds = json.loads(log.read_text().splitlines()[0])["seconds"]
    time.sleep(epoch_seconds * 0.5)  # about half-way through epoch 2
    if proc.poll() is not None:
        raise SystemExit("training ended before it could be killed; use a bigger run")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return time.monotonic() - start


def run(command: list[str]) -> None:
    subprocess.run(command, check=True, env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
                   stdout=subprocess.DEVNULL)


def main() -> None:
    args = bench_arguments(__doc__).parse_args()
    scratch = ROOT / "runs" / ("bench-resume-quick" if args.quick else "bench-resume")
    straight, killed = scratch / "straight", scratch / "killed"
    for folder in (straight, killed):
        subprocess.run(["rm", "-rf", str(folder)], check=True)
    run(train_command(straight, args.quick, args.threads))
    killed_at = kill_mid_epoch(train_command(killed, args.quick, args.threads), killed)
    epochs_done = len((killed / EPOCH_LOG).read_text().splitlines())
    run([*train_command(killed, args.quick, args.threads), "--resume"])
    keys = ("accuracy", "f1", "roc_auc", "ece")
    a, b = ({k: json.loads((f / "final.json").read_text())["final"]["quality"][k] for k in keys}
            for f in (straight, killed))
    same_weights = (straight / WEIGHTS).read_bytes() == (killed / WEIGHTS).read_bytes()
    data = {"quick": args.quick, "killed_after_s": round(killed_at, 2), "epochs_logged_at_kill": epochs_done,
            "test_straight": a, "test_resumed": b, "identical_test_metrics": a == b,
            "identical_weights": same_weights, "command": " ".join(train_command(straight, args.quick, args.threads)[2:])}
    markdown = (
        "# Kill mid-epoch, then resume\n\n"
        f"`{data['command']}` run straight, and run again but SIGKILLed {killed_at:.1f} s in "
        f"(epoch {epochs_done + 1} under way), then `--resume`d.\n\n"
        "| run | test accuracy | macro-F1 | ROC-AUC | ECE |\n|---|---|---|---|---|\n"
        + "".join(f"| {n} | {t['accuracy']:.4f} | {t['f1']:.4f} | {t['roc_auc']:.4f} | {t['ece']:.4f} |\n"
                  for n, t in (("uninterrupted", a), ("killed + resumed", b)))
        + f"\nIdentical test metrics: **{data['identical_test_metrics']}**; byte-identical weights: "
        f"**{same_weights}**.\n"
    )
    targets = [target("resumed run has byte-identical weights", float(same_weights), same_weights),
               target("resumed run has identical test metrics", float(a == b), a == b)]
    path = write_results("resume", {"resume": stamp(data)}, markdown, targets=targets, out_dir=result_dir(args))
    print(markdown)
    if not (data["identical_test_metrics"] and same_weights):
        raise SystemExit(f"resume is not exact; see {path}")


if __name__ == "__main__":
    main()
