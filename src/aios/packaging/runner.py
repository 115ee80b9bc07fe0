"""Runs an exported ONNX model on an input file: the ``runner.py`` of an edge bundle.

This file is copied as it is next to ``model.onnx`` by ``aios model export --edge`` and
must stay standalone: it imports only the standard library, numpy and onnxruntime, so
a device needs ``pip install onnxruntime numpy`` and nothing of aios.

    python runner.py input.npy                 # prints each output
    python runner.py input.npz --output out.npz --runs 100

A ``.npy`` file feeds the model's only input (cast to its element type); a ``.npz`` file
feeds inputs by name. ``--output`` writes every output to one ``.npz``; ``--runs N``
also times N runs and prints their median.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

DTYPES = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(float16)": np.float16,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(int16)": np.int16,
    "tensor(int8)": np.int8,
    "tensor(uint8)": np.uint8,
    "tensor(bool)": np.bool_,
}


def load_inputs(session: ort.InferenceSession, path: Path) -> dict[str, np.ndarray]:
    """The model's inputs read from ``path`` and cast to the types the model declares;
    raises ValueError naming what does not fit."""
    declared = {node.name: node.type for node in session.get_inputs()}
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    else:
        if len(declared) != 1:
            raise ValueError(
                f"the model has {len(declared)} inputs ({', '.join(declared)}): "
                "give them by name in an .npz file"
            )
        arrays = {next(iter(declared)): np.load(path, allow_pickle=False)}
    missing = sorted(set(declared) - set(arrays))
    unknown = sorted(set(arrays) - set(declared))
    if missing or unknown:
        raise ValueError(
            f"inputs missing: {missing or 'none'}; not in the model: {unknown or 'none'}"
        )
    return {
        name: arrays[name].astype(DTYPES[kind]) if kind in DTYPES else arrays[name]
        for name, kind in declared.items()
    }


def main(argv: list[str] | None = None) -> int:
    """Parses ``argv``, runs the model once (or ``--runs`` times), prints the outputs."""
    here = Path(__file__).resolve().parent
    parser = argparse.ArgumentParser(description="Run an exported ONNX model on an input file.")
    parser.add_argument("input", type=Path, help="an .npy file (one input) or .npz (by name)")
    parser.add_argument(
        "--model", type=Path, default=here / "model.onnx", help="default: model.onnx here"
    )
    parser.add_argument("--output", type=Path, help="write the outputs to this .npz file")
    parser.add_argument("--runs", type=int, default=0, help="time this many runs (median)")
    args = parser.parse_args(argv)
    options = ort.SessionOptions()
    options.log_severity_level = 3  # warnings about unused initializers are not for users
    session = ort.InferenceSession(str(args.model), options, providers=["CPUExecutionProvider"])
    try:
        feeds = load_inputs(session, args.input)
    except (OSError, ValueError) as exc:
        print(f"runner.py: error: {args.input}: {exc}", file=sys.stderr)
        return 2
    names: list[str] = [node.name for node in session.get_outputs()]
    values = session.run(names, feeds)
    outputs = {name: np.asarray(value) for name, value in zip(names, values, strict=True)}
    for name, value in outputs.items():
        print(f"{name} {value.dtype} {list(value.shape)}")
        print(np.array2string(value, threshold=20, precision=6))
    if args.output is not None:
        np.savez(args.output, allow_pickle=False, **outputs)
    if args.runs > 0:
        seconds = []
        for _ in range(args.runs):
            start = time.perf_counter()
            session.run(names, feeds)
            seconds.append(time.perf_counter() - start)
        print(f"median latency over {args.runs} runs: {statistics.median(seconds) * 1e3:.3f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
