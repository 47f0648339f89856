"""ONNX Runtime's int4 ``MatMulNBits`` against an int8 QDQ MatMul on one 1024 x 1024 layer, 1 thread:
every block size (32, 64, 128), with and without zero points, at ``accuracy_level`` 0 (float
compute) and 4 (int8 compute), at M = 1 and M = 256 rows. Evidence for bench/quantize.py's int4
section: whether any int4 setting keeps up with int8 at large batches on this CPU.

    flock /tmp/slimkit-bench.lock .venv/bin/python bench/int4_blocks.py   # about a minute, run alone

Random weights and inputs (speed does not depend on their values); medians of 12 rounds of 3
calls after 3 warm-up rounds, process CPU time, the sessions alternating.
"""

import time

import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

K = N = 1024
rng = np.random.default_rng(0)


def graph(nodes, inits, opsets):
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("A", TensorProto.FLOAT, ["M", K])],
                          [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["M", N])], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid(d, v) for d, v in opsets]).SerializeToString()


def int4(block: int, zero_points: bool, level: int) -> bytes:
    blocks = K // block
    inits = [numpy_helper.from_array(rng.integers(0, 255, size=(N, blocks, block // 2), dtype=np.uint8), "B"),
             numpy_helper.from_array((rng.random(N * blocks) * 0.01 + 0.001).astype(np.float32), "S")]
    if zero_points:
        inits.append(numpy_helper.from_array(rng.integers(0, 255, size=N * ((blocks + 1) // 2), dtype=np.uint8), "Z"))
    node = helper.make_node("MatMulNBits", ["A", "B", "S"] + (["Z"] if zero_points else []),
                            ["Y"], domain="com.microsoft", K=K, N=N, bits=4, block_size=block, accuracy_level=level)
    return graph([node], inits, [("", 17), ("com.microsoft", 1)])


def int8() -> bytes:
    inits = [numpy_helper.from_array(rng.integers(-127, 127, size=(K, N), dtype=np.int8), "W"),
             numpy_helper.from_array(np.array(0.01, np.float32), "ws"), numpy_helper.from_array(np.array(0, np.int8), "wz"),
             numpy_helper.from_array(np.array(0.02, np.float32), "as"), numpy_helper.from_array(np.array(128, np.uint8), "az")]
    nodes = [helper.make_node("QuantizeLinear", ["A", "as", "az"], ["Aq"]),
             helper.make_node("DequantizeLinear", ["Aq", "as", "az"], ["Ad"]),
             helper.make_node("DequantizeLinear", ["W", "ws", "wz"], ["Wd"]), helper.make_node("MatMul", ["Ad", "Wd"], ["Y"])]
    return graph(nodes, inits, [("", 17)])


def main() -> None:
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    models = {"int8 QDQ MatMul": int8()}
    for block in (32, 64, 128):
        for zero_points in (False, True):
            for level in (0, 4):
                models[f"MatMulNBits block {block}, zero points {'yes' if zero_points else 'no'}, level {level}"] = \
                    int4(block, zero_points, level)
    sessions = {k: ort.InferenceSession(m, options, providers=["CPUExecutionProvider"]) for k, m in models.items()}
    print("| model | M | ms | int8 ms / this |\n|---|---|---|---|")
    for m in (1, 256):
        a = rng.standard_normal((m, K)).astype(np.float32)
        times: dict[str, list[float]] = {k: [] for k in sessions}
        for r in range(15):
            for k, s in sessions.items():
                s.run(None, {"A": a})  # settles; not timed
                start = time.process_time()
                for _ in range(3):
                    s.run(None, {"A": a})
                if r >= 3:
                    times[k].append((time.process_time() - start) / 3)
        base = float(np.median(times["int8 QDQ MatMul"]))
        for k in sessions:
            ms = float(np.median(times[k]))
            print(f"| {k} | {m} | {1e3 * ms:.3f} | {base / ms:.2f}x |")


if __name__ == "__main__":
    main()
