"""The steps of the demo pipeline, each run as an AIOS job:
``python -m aios.demo.steps prepare|train MODEL|evaluate|pick``.

Everything moves as dataset versions (each step sees only its own directory, in its
sandbox): ``prepare`` reads the raw digits (a CSV of scikit-learn's bundled digits, so
nothing is downloaded) from ``$AIOS_INPUTS/digits-raw`` and publishes the split, scaled
arrays as the next version of ``digits``; ``train MODEL`` reads that version and
publishes the fitted model as ``model-MODEL``; ``evaluate`` reads every model and
publishes ``scores``; ``pick`` reads the scores and publishes ``choice``.
"""

from __future__ import annotations

import json
import os
import pickle
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["MODELS", "main", "model_dataset", "write_raw_digits"]

MODELS = ("logistic", "forest", "svm", "knn")


def model_dataset(name: str) -> str:
    """The dataset a trained model is published as."""
    return f"model-{name}"


def _input(dataset: str, name: str) -> Path:
    return Path(os.environ["AIOS_INPUTS"]) / dataset / name


def _output(dataset: str, name: str) -> Path:
    return Path(os.environ["AIOS_OUTPUTS"]) / dataset / name


def _digits() -> Path:
    """The prepared arrays, in the ``digits`` version this job reads."""
    return Path(os.environ["AIOS_INPUTS"]) / "digits" / "digits.npz"


def write_raw_digits(directory: Path) -> Path:
    """scikit-learn's bundled digits as ``digits.csv`` (64 pixels and the label a row),
    the raw dataset the demo starts from."""
    import numpy as np
    from sklearn.datasets import load_digits

    digits = load_digits()
    directory.mkdir(parents=True, exist_ok=True)
    rows = np.column_stack([digits.data, digits.target]).astype(int)
    header = ",".join([*(f"p{i}" for i in range(64)), "label"])
    np.savetxt(directory / "digits.csv", rows, fmt="%d", delimiter=",", header=header, comments="")
    return directory


def prepare() -> None:
    import numpy as np
    from sklearn.model_selection import train_test_split

    raw = np.loadtxt(
        Path(os.environ["AIOS_INPUTS"]) / "digits-raw" / "digits.csv", delimiter=",", skiprows=1
    )
    pixels, labels = raw[:, :64] / 16.0, raw[:, 64].astype(int)
    x_train, x_test, y_train, y_test = train_test_split(
        pixels, labels, test_size=0.25, random_state=0, stratify=labels
    )
    out = Path(os.environ["AIOS_OUTPUTS"]) / "digits" / "digits.npz"
    np.savez(out, x_train=x_train, x_test=x_test, y_train=y_train, y_test=y_test)
    print(f"prepared digits: {len(x_train)} training and {len(x_test)} test images")


def _estimator(name: str) -> Any:
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.svm import SVC

    return {
        "logistic": lambda: LogisticRegression(max_iter=2000),
        "forest": lambda: RandomForestClassifier(n_estimators=200, random_state=0, n_jobs=1),
        "svm": lambda: SVC(gamma=0.05, C=5),
        "knn": lambda: KNeighborsClassifier(n_neighbors=3),
    }[name]()


def train(name: str) -> None:
    import numpy as np

    data = np.load(_digits())
    started = time.perf_counter()
    model = _estimator(name).fit(data["x_train"], data["y_train"])
    with _output(model_dataset(name), f"{name}.pkl").open("wb") as out:
        pickle.dump(model, out)
    took = time.perf_counter() - started
    print(f"trained {name} in {took:.2f} s on cores {sorted(os.sched_getaffinity(0))}")


def evaluate() -> None:
    import numpy as np

    data = np.load(_digits())
    scores = {}
    for name in MODELS:
        with _input(model_dataset(name), f"{name}.pkl").open("rb") as source:
            model = pickle.load(source)
        scores[name] = float((model.predict(data["x_test"]) == data["y_test"]).mean())
        print(f"{name}: accuracy {scores[name]:.4f}")
    _output("scores", "scores.json").write_text(json.dumps(scores))


def pick() -> None:
    scores = json.loads(_input("scores", "scores.json").read_text())
    best = max(sorted(scores), key=lambda name: scores[name])
    choice = {"model": best, "accuracy": scores[best]}
    _output("choice", "best.json").write_text(json.dumps(choice))
    print(f"best model: {best} ({scores[best]:.4f})")


def main(argv: list[str]) -> int:
    if argv[:1] == ["prepare"]:
        prepare()
    elif argv[:1] == ["train"] and len(argv) == 2 and argv[1] in MODELS:
        train(argv[1])
    elif argv[:1] == ["evaluate"]:
        evaluate()
    elif argv[:1] == ["pick"]:
        pick()
    else:
        print(
            f"usage: python -m aios.demo.steps prepare|train {'|'.join(MODELS)}|evaluate|pick",
            file=sys.stderr,
        )
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
