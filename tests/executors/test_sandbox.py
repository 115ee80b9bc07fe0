"""How a sandbox is built: what it hides and binds, a GPU job's device nodes, the
environment kept off the command line, and the shape without root."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

import aios.executors.sandbox as sandbox_module
from aios.errors import InvalidInput
from aios.executors.base import LaunchSpec, SandboxSpec
from aios.executors.sandbox import Sandbox, SandboxUnavailable
from tests.executors.conftest import machine_sandbox


def _spec(workdir: Path, **fields: object) -> LaunchSpec:
    fields.setdefault("sandbox", SandboxSpec())
    return LaunchSpec(
        job_id="7",
        attempt=1,
        replica=0,
        command=["true"],
        workdir=workdir,
        stdout=workdir / "stdout.log",
        stderr=workdir / "stderr.log",
        checkpoint_dir=workdir / "checkpoint",
        **fields,  # type: ignore[arg-type]
    )


def _arguments(sandbox: Sandbox, spec: LaunchSpec, env: dict[str, str] | None = None) -> list[str]:
    (blob,) = sandbox.arguments(spec, env or {})
    return blob.decode().split("\0")[:-1]


def _pairs(args: list[str], flag: str) -> list[tuple[str, str]]:
    return [(args[i + 1], args[i + 2]) for i, arg in enumerate(args) if arg == flag]


def test_a_gpu_job_sees_its_own_device_nodes_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GPU 1 (whose node is /dev/nvidia3) and the driver's control nodes are bound; the
    other GPUs' nodes are not."""
    nodes = {"/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia0", "/dev/nvidia3"}
    monkeypatch.setattr("os.path.exists", lambda path: path in nodes)
    sandbox = Sandbox(bwrap="bwrap", unshare="unshare", gpu_minors={0: 0, 1: 3}, root=False)
    args = _arguments(sandbox, _spec(tmp_path, gpus=(1,)))
    bound = {source for source, _ in _pairs(args, "--dev-bind")}
    assert bound == {"/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia3"}
    assert "/dev/nvidia0" not in args
    assert _arguments(sandbox, _spec(tmp_path)).count("--dev-bind") == 0


def test_cuda_numbers_a_sandboxs_gpus_by_uuid(tmp_path: Path) -> None:
    """Inside, CUDA counts the devices it can open from 0: the host's index 2 would be
    no device at all, so the GPUs are named by UUID where NVML gave one."""
    with_uuids = Sandbox(bwrap="b", unshare="u", gpu_uuids={2: "GPU-a", 5: "GPU-b"})
    assert with_uuids.gpu_visible((2, 5)) == "GPU-a,GPU-b"
    assert Sandbox(bwrap="b", unshare="u").gpu_visible((2, 5)) == "0,1"


def test_the_control_planes_directories_are_masked_and_python_is_bound_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Hidden directories become empty tmpfs; a runtime directory under one is bound
    again read-only (only the outermost of nested ones), and one that holds a hidden
    directory never is."""
    monkeypatch.setattr(sandbox_module, "_PRIVATE", ())  # tmp_path lies in /tmp
    home = tmp_path / "user"
    aios_home = home / ".aios"
    runtime = home / ".pyenv" / "versions" / "3.11"
    for directory in (aios_home / "jobs" / "7", runtime):
        directory.mkdir(parents=True)
    nested = (runtime, runtime / "lib", home)
    sandbox = Sandbox(bwrap="b", unshare="u", hidden=(home, aios_home), runtime=nested, root=False)
    args = _arguments(sandbox, _spec(aios_home / "jobs" / "7"))
    masked = [args[i + 1] for i, arg in enumerate(args) if arg == "--tmpfs"]
    assert str(home) in masked and str(aios_home) in masked
    assert (str(runtime), str(runtime)) in _pairs(args, "--ro-bind")
    assert str(runtime / "lib") not in args  # it comes with its parent
    assert (str(home), str(home)) not in _pairs(args, "--ro-bind")  # it holds the AIOS home
    job = str(aios_home / "jobs" / "7")
    assert (job, job) in _pairs(args, "--bind")
    assert args.index("--bind") > max(i for i, a in enumerate(args) if a == "--tmpfs")


def test_the_environment_is_passed_by_descriptor_never_on_the_command_line(
    tmp_path: Path,
) -> None:
    """Without root, bubblewrap (the tenant's) sets the environment it reads from its
    descriptor; the command line holds no value."""
    sandbox = Sandbox(bwrap="bwrap", unshare="unshare", root=False)
    spec = _spec(tmp_path)
    assert "SECRET_VALUE" not in " ".join(sandbox.prefix(spec))
    args = _arguments(sandbox, spec, {"TOKEN": "SECRET_VALUE"})
    assert args[-4:] == ["--clearenv", "--setenv", "TOKEN", "SECRET_VALUE"]


def test_as_root_the_environment_reaches_only_the_tenants_processes(tmp_path: Path) -> None:
    """As root, bubblewrap and setpriv (root, with capabilities) get an empty
    environment; the job's is a second descriptor, read by a shell that runs as the
    tenant after setpriv."""
    sandbox = Sandbox(bwrap="bwrap", unshare="unshare", root=True)
    spec = _spec(tmp_path)
    prefix = sandbox.prefix(spec)
    assert "SECRET_VALUE" not in " ".join(prefix)
    bubblewrap, variables = sandbox.arguments(spec, {"TOKEN": "it's SECRET_VALUE"})
    args = bubblewrap.decode().split("\0")[:-1]
    assert args[-1] == "--clearenv"
    assert "--setenv" not in args and b"SECRET_VALUE" not in bubblewrap
    assert variables == b"export TOKEN='it'\\''s SECRET_VALUE'\n"
    drop = prefix.index("setpriv")
    assert prefix[drop : drop + 8] == [
        "setpriv",
        f"--reuid={sandbox_module.NOBODY}",
        f"--regid={sandbox_module.NOBODY}",
        "--clear-groups",
        "--no-new-privs",
        "--inh-caps=-all",
        "--bounding-set=-all",
        "--",
    ]
    assert prefix[drop + 8 : drop + 10] == ["/bin/sh", "-c"]
    assert ". /dev/fd/5" in prefix[drop + 10]


def test_a_name_no_shell_takes_is_refused(tmp_path: Path) -> None:
    sandbox = Sandbox(bwrap="bwrap", unshare="unshare", root=True)
    with pytest.raises(InvalidInput, match="not a valid variable name"):
        sandbox.arguments(_spec(tmp_path), {"A;touch /x": "1"})


def test_a_missing_tool_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("shutil.which", lambda tool: None)
    with pytest.raises(SandboxUnavailable, match="bubblewrap"):
        Sandbox.detect()


def test_without_root_the_sandbox_is_a_user_namespace_of_the_callers_uid() -> None:
    """An executor that does not run as root: the job runs as its uid, mapped to itself,
    with no network (network none) and no further user namespaces."""
    if os.geteuid() != 0:
        pytest.skip("the test drops to another uid with setpriv, which needs root")
    machine_sandbox()
    uid = 70_123
    base = Path(tempfile.mkdtemp(prefix="aios-userns-"))  # the user must reach it
    base.chmod(0o755)
    workdir = base / "job"
    workdir.mkdir()
    os.chown(workdir, uid, uid)
    found = Sandbox.detect()
    sandbox = Sandbox(bwrap=found.bwrap, unshare=found.unshare, root=False)
    spec = _spec(workdir, sandbox=SandboxSpec(network="none"))
    script = (
        "id -u; cat /proc/net/dev | wc -l; "
        "unshare -U true 2>/dev/null && echo nested || echo no-nested; touch own"
    )
    with sandbox.argument_fds(spec, {"PATH": "/usr/bin:/bin"}) as fds:
        done = subprocess.run(
            [
                "setpriv",
                f"--reuid={uid}",
                f"--regid={uid}",
                "--clear-groups",
                "--",
                *sandbox.prefix(spec, fds),
                "sh",
                "-c",
                script,
            ],
            pass_fds=fds,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    try:
        assert done.returncode == 0, done.stderr
        assert done.stdout.split() == [str(uid), "3", "no-nested"]  # two header lines, lo
        assert (workdir / "own").stat().st_uid == uid
    finally:
        shutil.rmtree(base)


def test_in_an_image_as_root_the_environment_reaches_only_the_inner_bubblewrap(
    tmp_path: Path,
) -> None:
    """The outer bubblewrap and setpriv run as root with an empty environment; the
    job's variables are the inner bubblewrap's arguments, which it reads as the
    tenant."""
    rootfs = tmp_path / "rootfs"
    (rootfs / "bin").mkdir(parents=True)
    sandbox = Sandbox(bwrap="bwrap", unshare="unshare", root=True)
    spec = _spec(tmp_path, sandbox=SandboxSpec(rootfs=rootfs))
    outer, inner = sandbox.arguments(spec, {"LD_PRELOAD": "/job/escape.so"})
    assert b"escape.so" not in outer and b"--setenv" not in outer
    assert "--clearenv" in outer.decode().split("\0")
    assert inner.decode().split("\0")[-4:-1] == ["--setenv", "LD_PRELOAD", "/job/escape.so"]


@pytest.mark.parametrize("root", [True, False])
@pytest.mark.parametrize("image", [False, True])
def test_nothing_in_the_jobs_directory_is_bound_but_the_directory(
    tmp_path: Path, root: bool, image: bool
) -> None:
    """The sandbox is built with the control plane's rights: a bind from a path in the
    job's directory (``inputs``) would follow a link the job left there. Its dataset
    inputs are bound from its control directory, at the same path (in the home's mask)
    or at IMAGE_INPUTS in an image, and only when it has some."""
    home = tmp_path / "home"
    workdir, control = home / "jobs" / "7", home / "run" / "7"
    rootfs = tmp_path / "rootfs"
    (rootfs / "bin").mkdir(parents=True)
    sandbox = Sandbox(bwrap="bwrap", unshare="unshare", hidden=(home,), root=root)

    def binds(inputs: bool) -> list[tuple[str, str]]:
        spec = _spec(
            workdir,
            control_dir=control,
            sandbox=SandboxSpec(inputs=inputs, rootfs=rootfs if image else None),
        )
        blobs = sandbox.arguments(spec, {})[: 2 if root and image else 1]
        args = [a for blob in blobs for a in blob.decode().split("\0")[:-1]]
        return [pair for flag in ("--bind", "--ro-bind") for pair in _pairs(args, flag)]

    for inputs in (False, True):
        sources = [source for source, _ in binds(inputs)]
        assert not any(s.startswith(f"{workdir}/") for s in sources), sources
    assert not any("inputs" in f"{s} {d}" for s, d in binds(False))
    found = [(s, d) for s, d in binds(True) if d.endswith("inputs")]
    if not image:
        assert found == [(f"{control}/inputs", f"{control}/inputs")]
    elif root:  # the outer one stages it, the inner one binds it
        assert found == [
            (f"{control}/inputs", "/tmp/.aios/inputs"),
            ("/tmp/.aios/inputs", sandbox_module.IMAGE_INPUTS),
        ]
    else:
        assert found == [(f"{control}/inputs", sandbox_module.IMAGE_INPUTS)]
