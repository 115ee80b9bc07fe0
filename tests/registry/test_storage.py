"""The registry's parts without a server: references, manifests, the blob store and the
scikit-learn → ONNX check."""

from __future__ import annotations

import hashlib
import io
import stat
from pathlib import Path

import numpy as np
import pytest
from sklearn.preprocessing import StandardScaler

from aios.errors import InvalidInput
from aios.registry.blobs import BlobStore
from aios.registry.convert import compare_outputs, convert_sklearn_model
from aios.registry.manifest import extract_tar, manifest_bytes, scan_directory, write_tar
from aios.registry.refs import parse_reference
from tests.registry.artifacts import iris, write_python_model, write_sklearn


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("iris", ("iris", "latest")),
        ("iris@3", ("iris", "3")),
        ("iris@production", ("iris", "production")),
        ("iris@latest", ("iris", "latest")),
        ("my.model-v2_b@rc-1", ("my.model-v2_b", "rc-1")),
    ],
)
def test_a_reference_names_a_model_and_a_version(text: str, expected: tuple[str, str]) -> None:
    assert parse_reference(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "'' is not a model name"),
        ("-x", "'-x' is not a model name"),
        ("a@", "after '@' comes"),
        ("a@0", "after '@' comes"),
        ("a@b@c", "after '@' comes"),
        ("a/b@1", "'a/b' is not a model name"),
    ],
)
def test_a_malformed_reference_is_refused_naming_it(text: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        parse_reference(text)


def test_the_same_files_give_the_same_manifest_and_archive(tmp_path: Path) -> None:
    """A directory's digest does not depend on where it lies or when it was written."""
    first = write_python_model(tmp_path / "a")
    second = write_python_model(tmp_path / "b")
    (second / "model.py").touch()

    assert manifest_bytes(scan_directory(first)) == manifest_bytes(scan_directory(second))
    archives = []
    for root in (first, second):
        out = io.BytesIO()
        write_tar(root, scan_directory(root), out)
        archives.append(out.getvalue())
    assert archives[0] == archives[1]


def test_an_archive_unpacks_to_the_files_it_was_made_of(tmp_path: Path) -> None:
    source = write_python_model(tmp_path / "src")
    out = io.BytesIO()
    write_tar(source, scan_directory(source), out)
    out.seek(0)

    extract_tar(out, tmp_path / "copy", max_bytes=1 << 20, max_files=10)

    assert scan_directory(tmp_path / "copy") == scan_directory(source)


def test_an_archive_over_its_limits_is_refused(tmp_path: Path) -> None:
    source = write_python_model(tmp_path / "src")
    out = io.BytesIO()
    write_tar(source, scan_directory(source), out)
    with pytest.raises(InvalidInput, match="more than 1 files"):
        extract_tar(io.BytesIO(out.getvalue()), tmp_path / "a", max_bytes=1 << 20, max_files=1)
    with pytest.raises(InvalidInput, match="unpacks to more than 10 bytes"):
        extract_tar(io.BytesIO(out.getvalue()), tmp_path / "b", max_bytes=10, max_files=10)


def test_a_link_in_a_directory_is_refused_naming_it(tmp_path: Path) -> None:
    source = write_python_model(tmp_path / "src")
    (source / "data" / "passwd").symlink_to("/etc/passwd")

    with pytest.raises(InvalidInput, match=r"data/passwd: not a regular file"):
        scan_directory(source)


def test_a_blob_is_stored_once_read_only_and_discarded_with_its_views(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "registry")
    digest = hashlib.sha256(b"weights").hexdigest()
    for name in ("one", "two"):
        staged = store.tmp / name
        staged.write_bytes(b"weights")
        store.add(staged, digest)

    assert [p.name for p in store.blobs.rglob("*") if p.is_file()] == [digest]
    view = store.view(digest, "w.bin", None)
    assert view.read_bytes() == b"weights"
    assert stat.S_IMODE(view.stat().st_mode) == 0o444
    assert view.samefile(store.path(digest))

    store.discard([digest])

    assert not store.has(digest)
    assert not view.exists()


def test_staging_left_by_a_crash_is_cleared_at_start(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "registry")
    with store.staging() as stage:
        (stage / "half.onnx").write_bytes(b"half")
        (store.tmp / "stage-crashed").mkdir()
    assert [p.name for p in store.tmp.iterdir()] == ["stage-crashed"]

    BlobStore(tmp_path / "registry").clear_staging()

    assert list(store.tmp.iterdir()) == []


def test_a_scikit_learn_model_converts_to_onnx_that_agrees_with_it(tmp_path: Path) -> None:
    """The check passes, and converting the same model again gives the same bytes (so
    the registry stores it once)."""
    source = write_sklearn(tmp_path / "m.pkl")

    conversion = convert_sklearn_model(source, tmp_path / "m.onnx")
    convert_sklearn_model(source, tmp_path / "again.onnx")

    assert conversion.max_difference <= conversion.tolerance
    assert conversion.rows == 256
    assert (tmp_path / "m.onnx").read_bytes() == (tmp_path / "again.onnx").read_bytes()


def test_a_transformer_converts_too(tmp_path: Path) -> None:
    features, _ = iris()
    write_sklearn(tmp_path / "scaler.pkl", StandardScaler().fit(features))

    conversion = convert_sklearn_model(tmp_path / "scaler.pkl", tmp_path / "scaler.onnx")

    assert conversion.max_difference <= conversion.tolerance


def test_what_is_not_a_fitted_model_is_refused(tmp_path: Path) -> None:
    write_sklearn(tmp_path / "dict.pkl", {"not": "a model"})
    (tmp_path / "junk.pkl").write_bytes(b"junk")

    with pytest.raises(InvalidInput, match="to_onnx: dict is not a fitted scikit-learn model"):
        convert_sklearn_model(tmp_path / "dict.pkl", tmp_path / "out.onnx")
    with pytest.raises(InvalidInput, match=r"to_onnx: cannot load junk\.pkl"):
        convert_sklearn_model(tmp_path / "junk.pkl", tmp_path / "out.onnx")
    assert not (tmp_path / "out.onnx").exists()


@pytest.mark.parametrize(
    ("expected", "got", "message"),
    [
        ([np.array([1.0, 2.0])], [np.array([1.0, 2.5])], "output 0 differs from scikit-learn's"),
        ([np.array([1.0, 2.0])], [np.array([1.0, np.nan])], "differs"),
        ([np.array([1.0, 2.0])], [np.array([1.0, 2.0, 3.0])], "output 0 has shape"),
        (
            [np.array([0, 1]), np.array([[0.9, 0.1], [0.2, 0.8]])],
            [np.array([0, 0]), np.array([[0.9, 0.1], [0.2, 0.8]])],
            "other labels than scikit-learn for 1 of 2 sample rows",
        ),
    ],
)
def test_outputs_that_disagree_refuse_the_conversion(
    expected: list[np.ndarray], got: list[np.ndarray], message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        compare_outputs(expected, got)


def test_a_label_may_differ_only_where_the_probabilities_tie() -> None:
    tie = np.array([[0.5, 0.5], [0.2, 0.8]])

    largest, _ = compare_outputs([np.array([0, 1]), tie], [np.array([1, 1]), tie])

    assert largest == 0.0


def test_the_store_keeps_other_users_out_and_its_artifacts_readable_by_sandboxes(
    tmp_path: Path,
) -> None:
    """Every directory of the store is 0700 (made so, or tightened when an earlier
    version left it open); blobs and an artifact's own view are readable by all (a
    sandboxed replica runs as its tenant's uid) and writable by none."""
    root = tmp_path / "registry"
    store = BlobStore(root)
    digest = hashlib.sha256(b"weights").hexdigest()
    (store.tmp / "w").write_bytes(b"weights")
    store.add(store.tmp / "w", digest)
    entries = scan_directory(write_python_model(tmp_path / "model"))
    for entry in entries:
        staged = store.tmp / "part"
        staged.write_bytes((tmp_path / "model" / entry.path).read_bytes())
        store.add(staged, entry.sha256)
    tree = store.view(store.add_bytes(manifest_bytes(entries)), "model", entries)
    single = store.view(digest, "w.bin", None)

    def modes() -> tuple[set[int], set[int], set[int]]:
        inside_views = {tree, *tree.rglob("*"), single}
        holders = [root, *(p for p in root.rglob("*") if p.is_dir() and p not in inside_views)]
        return (
            {stat.S_IMODE(p.stat().st_mode) for p in holders},
            {stat.S_IMODE(p.stat().st_mode) for p in root.rglob("*") if p.is_file()},
            {stat.S_IMODE(p.stat().st_mode) for p in [tree, *tree.rglob("*")] if p.is_dir()},
        )

    assert modes() == ({0o700}, {0o444}, {0o555})
    for holder in (root, root / "blobs", store.blobs, store.path(digest).parent, tree.parent):
        holder.chmod(0o755)
    BlobStore(root)
    assert modes() == ({0o700}, {0o444}, {0o555})
