"""What travels to a Ray node with a launch: paths under a shipped root that the
command names, packed once per node, unpacked whole, the command rewritten."""

from __future__ import annotations

from pathlib import Path

from aios.cluster.shipping import Shipping, unpack
from aios.executors.base import LaunchSpec


def _spec(tmp_path: Path, command: list[str], node: str = "n1") -> LaunchSpec:
    return LaunchSpec(
        job_id="1",
        attempt=1,
        replica=0,
        command=command,
        workdir=tmp_path,
        stdout=tmp_path / "out",
        stderr=tmp_path / "err",
        checkpoint_dir=tmp_path / "ckpt",
        node=node,
    )


def test_a_named_file_and_directory_travel_once_per_node(tmp_path: Path) -> None:
    root = tmp_path / "registry"
    (root / "m" / "dir").mkdir(parents=True)
    (root / "m" / "model.onnx").write_bytes(b"weights")
    (root / "m" / "dir" / "code.py").write_text("x = 1\n")
    shipping = Shipping([str(root)])
    command = ["serve", f"--model=a:1=onnx:{root}/m/model.onnx", f"--model=b:1=python:{root}/m/dir"]
    spec, bundles = shipping.prepare(_spec(tmp_path, command), str(tmp_path / "node"))
    assert len(bundles) == 2
    assert spec.command[0] == "serve" and str(root) not in " ".join(spec.command)
    for dest, archive in bundles.items():
        unpack(archive, Path(dest))
    file_copy = Path(spec.command[1].rsplit(":", 1)[1])
    dir_copy = Path(spec.command[2].rsplit(":", 1)[1])
    assert file_copy.read_bytes() == b"weights"
    assert (dir_copy / "code.py").read_text() == "x = 1\n"
    shipping.delivered("n1", bundles)
    again, more = shipping.prepare(_spec(tmp_path, command), str(tmp_path / "node"))
    assert more == {} and again.command == spec.command  # the node has them
    _, other = shipping.prepare(_spec(tmp_path, command, node="n2"), str(tmp_path / "node"))
    assert len(other) == 2  # another node is sent its own copy


def test_paths_outside_the_roots_are_left_alone(tmp_path: Path) -> None:
    shipping = Shipping([str(tmp_path / "registry")])
    command = ["python", "/usr/lib/x.py", f"{tmp_path}/registry-other/y"]
    spec, bundles = shipping.prepare(_spec(tmp_path, command), str(tmp_path / "node"))
    assert (spec.command, bundles) == (command, {})
