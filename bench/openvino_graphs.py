"""Why slimkit's int8 ties NNCF's on OpenVINO at batch 256: what each compiles to, node by node.

The teacher CNN quantized by slimkit (the QDQ ONNX file that ``StaticInt8()``'s ``openvino`` route
runs) and by NNCF (``nncf.quantize``, bench/quantize.py's peer), each compiled by OpenVINO's CPU
plugin for one batch size at 1 thread. The table lists every executed node of both runtime graphs
with its type, kernel (whose name carries the precision) and time from OpenVINO's per-node
profile (medians over the timed calls); the two models are timed alternating (process CPU time).

    flock /tmp/slimkit-bench.lock .venv/bin/python bench/openvino_graphs.py   # about a minute, run alone
    .venv/bin/python bench/openvino_graphs.py --quick                          # an untrained small CNN
"""

from __future__ import annotations

import statistics
import time

import torch
from _common import bench_arguments, default_pair, result_dir, target, write_results
from quantize import nncf_peer, subset  # bench/quantize.py's NNCF peer and calibration set

from slimkit.export.openvino import OpenVINOModule, _config, _core
from slimkit.models import build_model
from slimkit.quantization import StaticInt8, quantize

OURS, PEER = "slimkit int8 (QDQ ONNX)", "NNCF int8 (IR)"


def compiled(module: OpenVINOModule, shape: tuple[int, ...], threads: int):
    """An infer request for ``module`` compiled for inputs of ``shape``, with per-node profiling on."""
    model = module.read().clone()
    model.reshape({module.input_names[0]: list(shape)})
    return _core().compile_model(model, "CPU", {**_config(threads), "PERF_COUNT": True}).create_infer_request()


def executed(request) -> list[tuple[str, str, str, float]]:
    """(node, type, kernel, microseconds) of every node the last call executed."""
    return [(p.node_name, p.node_type, p.exec_type, p.real_time.total_seconds() * 1e6)
            for p in request.profiling_info if p.status.name == "EXECUTED" and p.real_time.total_seconds() > 0]


def main() -> None:
    parser = bench_arguments(__doc__.splitlines()[0])
    parser.set_defaults(threads=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    batch, rounds = (32, 5) if args.quick else (256, 40)
    if args.quick:
        model = build_model("cnn", channels=[8, 16], hidden=32).eval()
        gen = torch.Generator().manual_seed(0)
        calib = [(torch.randn(64, 1, 28, 28, generator=gen), torch.zeros(64, dtype=torch.long)) for _ in range(2)]
    else:
        teacher, _, loaders = default_pair()
        model, calib = teacher.eval(), list(subset(loaders, 512, seed=1234, shuffle=False))
    ours = OpenVINOModule(quantize(model, StaticInt8(backend="onnxruntime", calibration_batches=len(calib)),
                                   calib).onnx_bytes())
    peer = nncf_peer(model, calib)
    x = torch.cat([b[0] for b in calib])[:batch].numpy()
    requests = {OURS: compiled(ours, x.shape, args.threads), PEER: compiled(peer, x.shape, args.threads)}
    times: dict[str, list[float]] = {k: [] for k in requests}
    nodes: dict[str, list[list[tuple]]] = {k: [] for k in requests}
    for i in range(5 + rounds):
        for name, request in requests.items():
            request.infer([x])  # settles the other model's threads; not timed
            start = time.process_time()
            request.infer([x])
            if i >= 5:
                times[name].append(time.process_time() - start)
                nodes[name].append(executed(request))
    median = {k: 1e3 * statistics.median(v) for k, v in times.items()}
    graphs = {k: [(n, t, e, statistics.median(run[j][3] for run in nodes[k])) for j, (n, t, e, _) in enumerate(nodes[k][0])]
              for k in requests}
    same = [(t, e) for _, t, e, _ in graphs[OURS]] == [(t, e) for _, t, e, _ in graphs[PEER]]
    ratio = median[PEER] / median[OURS]
    targets = [target(f"{'cnn' if args.quick else 'teacher cnn'}: slimkit int8 at least as fast as NNCF int8 on OpenVINO, "
                      f"batch {batch} (NNCF ms / slimkit ms)", ratio, ratio >= 1.0)]
    data = {"quick": args.quick, "batch": batch, "threads": args.threads, "rounds": rounds, "median_ms": median,
            "same_graph": same, "graphs": {k: [dict(zip(("node", "type", "kernel", "us"), g)) for g in v]
                                           for k, v in graphs.items()}}
    lines = [f"# slimkit's int8 and NNCF's on OpenVINO{' (QUICK: not a result)' if args.quick else ''}", "",
             (f"`python bench/openvino_graphs.py`: batch {batch}, {args.threads} thread(s), {rounds} alternating calls "
             f"each (process CPU time, medians). Whole model: {OURS} {median[OURS]:.2f} ms, {PEER} {median[PEER]:.2f} ms "
             f"(NNCF ms / slimkit ms = {ratio:.4f}). The compiled graphs are "
             f"{'the same: every executed node has the same type and kernel, in the same order' if same else 'DIFFERENT'}."),
             "", f"| # | type | kernel ({OURS}) | µs | kernel ({PEER}) | µs |", "|---|---|---|---|---|---|"]
    for j in range(max(len(g) for g in graphs.values())):
        a, b = (graphs[k][j] if j < len(graphs[k]) else ("", "", "", float("nan")) for k in (OURS, PEER))
        lines.append(f"| {j} | {a[1] or b[1]} | {a[2]} | {a[3]:.0f} | {b[2]} | {b[3]:.0f} |")
    lines += ["", "## Targets", "", "| target | value | met |", "|---|---|---|",
              *(f"| {t['target']} | {t['value']:.4f} | {'yes' if t['met'] else 'NO'} |" for t in targets)]
    write_results("openvino_graphs", data, "\n".join(lines), targets=targets, out_dir=result_dir(args))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
