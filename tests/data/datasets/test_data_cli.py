"""``aios data …`` and ``aios backup …`` end to end on real repositories in a temp dir."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner, Result

from aios.cli.backup import backup_app
from aios.cli.data import data_app
from aios.cli.main import _OneLineErrors
from aios.data.backend import FsspecBackend
from tests.cli.cli_harness import one_error_line
from tests.data.datasets.conftest import PASSPHRASE

app = typer.Typer(cls=_OneLineErrors, no_args_is_help=True, add_completion=False)
app.add_typer(data_app)
app.add_typer(backup_app)


class Aios:
    """Runs the CLI with the repository and passphrase in the environment."""

    def __init__(self, home: Path, passphrase: str | None = PASSPHRASE) -> None:
        self.env = {"AIOS_DATA_REPO": str(home / "repo"), "AIOS_DATA_PASSPHRASE": passphrase}

    def __call__(self, *args: str | Path, env: dict[str, str | None] | None = None) -> Result:
        runner = CliRunner(env={**self.env, **(env or {})})
        return runner.invoke(app, [str(a) for a in args])

    def ok(self, *args: str | Path) -> str:
        result = self(*args)
        assert result.exit_code == 0, result.stderr
        return result.stdout


@pytest.fixture
def aios(tmp_path: Path) -> Aios:
    """The CLI on an unencrypted repository, so with no passphrase (one would be
    refused): most tests need no key derivation."""
    cli = Aios(tmp_path, passphrase=None)
    cli.ok("data", "init", "--unencrypted")
    return cli


@pytest.fixture
def sealed(tmp_path: Path) -> Aios:
    """The CLI on an encrypted repository."""
    cli = Aios(tmp_path)
    assert cli.ok("data", "init").startswith("initialised encrypted repository")
    return cli


def files_under(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_full_flow_from_init_to_verified_restore(sealed: Aios, tree: Path, tmp_path: Path) -> None:
    """init → add → add again → diff → get → backup create → verify → restore, encrypted."""
    aios = sealed
    assert aios.ok("data", "add", "digits", tree, "-m", "first").startswith("digits@1: 3 files")
    original = files_under(tree)
    (tree / "sub" / "notes.txt").write_text("second notes\n")
    (tree / "more.txt").write_text("more\n")
    assert aios.ok("data", "add", "digits", tree).startswith("digits@2: 4 files")

    diff = aios.ok("data", "diff", "digits@1", "digits@2").splitlines()
    assert diff == ["+ more.txt (5)", "M sub/notes.txt (12 -> 13)"]
    versions = aios.ok("data", "versions", "digits")
    assert "train.csv(id:int64, name:string, score:double)" in versions
    assert "first" in versions

    aios.ok("data", "get", "digits@1", tmp_path / "v1")
    assert files_under(tmp_path / "v1") == original

    backup = tmp_path / "backup"
    assert aios.ok("backup", "create", "--to", backup).startswith("copied 2 snapshots")
    assert aios.ok("backup", "create", "--to", backup).startswith("copied 0 snapshots")
    assert "no errors found" in aios.ok("backup", "verify", "--read-data", "--repo", backup)
    listed = aios.ok("backup", "list", "--from", backup)
    assert "digits@1" in listed and "digits@2" in listed

    aios.ok("backup", "restore", "--to", tmp_path / "restored", "--from", backup)
    assert files_under(tmp_path / "restored") == files_under(tree)


def test_tags_ls_and_gc(aios: Aios, tree: Path) -> None:
    aios.ok("data", "add", "digits", tree)
    aios.ok("data", "add", "digits", tree)

    assert aios.ok("data", "tag", "digits@1", "prod") == "digits@1 tagged prod\n"
    row = next(line for line in aios.ok("data", "ls").splitlines() if "digits" in line)
    assert row.split()[:3] == ["digits", "2", "2"]
    assert "prod" in aios.ok("data", "versions", "digits")
    assert aios.ok("data", "untag", "digits", "prod") == "digits@1 untagged prod\n"
    assert aios.ok("data", "gc").startswith("removed ")


def test_labels_import_export_and_ls(aios: Aios, tree: Path, tmp_path: Path) -> None:
    aios.ok("data", "add", "digits", tree)
    source = tmp_path / "labels.jsonl"
    source.write_text('{"file": "train.csv", "labels": ["tabular"]}\n')

    imported = aios.ok("data", "labels", "import", "digits@1", "kinds", source)
    exported = aios.ok("data", "labels", "export", "digits", "kinds@1", tmp_path / "out.jsonl")

    assert imported == "digits:kinds@1 on digits@1: 1 files, 0 boxes\n"
    assert exported.startswith("exported 1 files")
    assert (tmp_path / "out.jsonl").read_text() == (
        '{"boxes":[],"file":"train.csv","labels":["tabular"]}\n'
    )
    assert "kinds" in aios.ok("data", "labels", "ls")


def test_forget_keeps_the_last_n_per_dataset(aios: Aios, tree: Path) -> None:
    for _ in range(3):
        aios.ok("data", "add", "digits", tree)
    aios.ok("data", "add", "other", tree)

    dry = aios.ok("backup", "forget", "--keep-last", "1", "--dry-run")
    assert [line.split()[-1] for line in dry.splitlines()] == ["digits@2", "digits@1"]

    assert "forgot 2 snapshots" in aios.ok("backup", "forget", "--keep-last", "1", "--prune")
    assert [v.split()[0] for v in aios.ok("data", "versions", "digits").splitlines()[1:]] == ["3"]


def test_passphrase_is_prompted_when_not_in_the_environment(sealed: Aios, tree: Path) -> None:
    env = {k: v for k, v in sealed.env.items() if k != "AIOS_DATA_PASSPHRASE"}
    runner = CliRunner(env={**env, "AIOS_DATA_PASSPHRASE": None})

    result = runner.invoke(app, ["data", "add", "digits", str(tree)], input=f"{PASSPHRASE}\n")

    assert result.exit_code == 0, result.stderr
    assert "digits@1" in result.stdout


def test_wrong_passphrase_is_one_line_and_writes_nothing(
    sealed: Aios, tree: Path, tmp_path: Path
) -> None:
    before = files_under(tmp_path / "repo")

    result = sealed("data", "add", "digits", tree, env={"AIOS_DATA_PASSPHRASE": "wrong"})

    assert result.exit_code == 2
    assert "wrong passphrase" in one_error_line(result)
    assert files_under(tmp_path / "repo") == before


def test_a_config_edited_to_unencrypted_is_one_line_and_writes_nothing(
    sealed: Aios, tree: Path, tmp_path: Path
) -> None:
    """The passphrase in the environment says the repository is encrypted: a config
    edited to say otherwise is refused, not used to store plaintext."""
    config = json.loads((tmp_path / "repo" / "config").read_text())
    config["encrypted"] = False
    config["id_key"] = base64.b64encode(os.urandom(32)).decode()
    (tmp_path / "repo" / "config").write_text(json.dumps(config))
    before = files_under(tmp_path / "repo")

    result = sealed("data", "add", "digits", tree)

    assert result.exit_code == 2
    assert "says it is not encrypted" in one_error_line(result)
    assert files_under(tmp_path / "repo") == before


def test_symlink_pointing_out_is_one_line_and_writes_nothing(
    aios: Aios, tree: Path, tmp_path: Path
) -> None:
    (tree / "escape").symlink_to("/etc")
    before = files_under(tmp_path / "repo")

    result = aios("data", "add", "digits", tree)

    assert result.exit_code == 2
    assert "escape: symlink to '/etc' points outside" in one_error_line(result)
    assert files_under(tmp_path / "repo") == before


def test_symlink_loop_is_one_line_and_writes_nothing(
    aios: Aios, tree: Path, tmp_path: Path
) -> None:
    (tree / "loop1").symlink_to("loop2")
    (tree / "loop2").symlink_to("loop1")
    before = files_under(tmp_path / "repo")

    result = aios("data", "add", "digits", tree)

    assert result.exit_code == 2
    assert "is a symlink loop" in one_error_line(result)
    assert files_under(tmp_path / "repo") == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("data", "get", "digits@9", "{tmp}/out"), "dataset 'digits' has no version '9'"),
        (("data", "get", "nope@1", "{tmp}/out"), "no dataset 'nope'"),
        (("data", "diff", "digits@1", "other@1"), "two versions of one dataset"),
        (("data", "tag", "digits@1", "7"), "a number or 'latest'"),
        (("data", "add", "../bad", "{tmp}"), "dataset name '../bad'"),
        (("data", "add", "digits", "{tmp}/absent"), "no such file or directory"),
        (("data", "init"), "holds a repository already"),
        (("data", "labels", "import", "digits@1", "s", "{tmp}/up.jsonl"), "'..' would leave"),
        (("data", "labels", "import", "digits@1", "s", "{tmp}/up.jsonl", "-f", "xml"), "xml"),
        (("backup", "restore", "--to", "{tmp}/r", "--from", "{tmp}/none"), "no repository"),
        (("backup", "forget"), "--keep-last N or --keep-daily N"),
        (("backup", "restore", "deadbeef", "--to", "{tmp}/r"), "no snapshot 'deadbeef'"),
        (("data", "check", "--repo", "{tmp}/none"), "no repository"),
        (("data", "repair", "index", "--repo", "{tmp}/none"), "no repository"),
        (("data", "get", "digits@1", "{tmp}/up.jsonl/sub"), "up.jsonl is not a directory"),
        (("data", "get", "digits@1", "/proc/aios-x"), "/proc/aios-x: cannot be created"),
        (("data", "ls", "--repo", "{tmp}/up.jsonl"), "up.jsonl: exists and is not a directory"),
        (("data", "init", "--repo", "{tmp}/up.jsonl/r"), "up.jsonl is not a directory"),
        (("backup", "create", "--to", "{tmp}/up.jsonl"), "exists and is not a directory"),
        (("backup", "restore", "--to", "{tmp}/up.jsonl/r"), "up.jsonl is not a directory"),
        (("data", "init", "--unencrypted", "--repo", "/proc/aios-x"), "/proc/aios-x: cannot be"),
        (("backup", "create", "--to", "/proc/aios-x"), "/proc/aios-x: cannot be created"),
    ],
)
def test_bad_input_is_one_line_with_exit_code_2(
    aios: Aios, tree: Path, tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    aios.ok("data", "add", "digits", tree)
    (tmp_path / "up.jsonl").write_text('{"file": "../../etc/passwd"}\n')

    result = aios(*(a.format(tmp=tmp_path) for a in args))

    assert result.exit_code == 2, result.stdout
    assert message in one_error_line(result)
    assert not (tmp_path / "out").exists()
    assert not (tmp_path / "r").exists()


def test_verify_names_the_damaged_version_and_file(aios: Aios, tmp_path: Path) -> None:
    data = tmp_path / "blob"
    data.mkdir()
    (data / "payload.bin").write_bytes(os.urandom(64 * 1024))
    aios.ok("data", "add", "blobs", data)
    pack = max((tmp_path / "repo" / "data").rglob("*"), key=lambda p: p.stat().st_size)
    raw = bytearray(pack.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    pack.write_bytes(bytes(raw))

    result = aios("backup", "verify", "--read-data")

    assert result.exit_code == 1
    assert "damaged blobs@1" in result.stdout and "payload.bin" in result.stdout
    restored = aios("data", "get", "blobs@1", tmp_path / "out")
    assert restored.exit_code == 1
    assert "payload.bin" in one_error_line(restored)


@pytest.mark.slow
def test_backup_to_s3_and_restore_from_it(aios: Aios, tree: Path, tmp_path: Path) -> None:
    """A backup destination given as an ``s3://`` URL: a real S3 API (moto) on loopback,
    credentials and endpoint from the standard AWS environment variables."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        s3 = {
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        aios.env.update(s3)
        FsspecBackend(
            "s3://backups", key="test", secret="test", client_kwargs={"endpoint_url": endpoint}
        ).fs.mkdir("backups")
        aios.ok("data", "add", "digits", tree)

        assert aios.ok("backup", "create", "--to", "s3://backups/aios").startswith("copied 1")
        verified = aios.ok("backup", "verify", "--read-data", "--repo", "s3://backups/aios")
        assert "no errors" in verified
        aios.ok("backup", "restore", "--to", tmp_path / "back", "--from", "s3://backups/aios")
    finally:
        server.stop()

    assert files_under(tmp_path / "back") == files_under(tree)


def _truncate_largest_pack(repo: Path) -> None:
    pack = max((repo / "data").rglob("*"), key=lambda p: p.stat().st_size)
    pack.write_bytes(pack.read_bytes()[: pack.stat().st_size // 2])


@pytest.mark.parametrize("encrypted", [True, False], ids=["encrypted", "unencrypted"])
def test_a_truncated_pack_is_named_damage_not_a_traceback(tmp_path: Path, encrypted: bool) -> None:
    """verify, get and backup restore over a pack cut in half: exit 1, one stderr line
    per damaged file, every other file restored, no temporary file left."""
    cli = Aios(tmp_path, passphrase=PASSPHRASE if encrypted else None)
    cli.ok("data", "init", *([] if encrypted else ["--unencrypted"]))
    src = tmp_path / "src"
    src.mkdir()
    for i in range(43):
        (src / f"f{i:02}.bin").write_bytes(os.urandom(20_000 + 3_000 * i))
    cli.ok("data", "add", "ds", src)
    _truncate_largest_pack(tmp_path / "repo")

    verified = cli("backup", "verify", "--read-data")
    assert verified.exit_code == 1 and verified.exception is not None
    assert isinstance(verified.exception, SystemExit)
    assert "damaged ds@1" in verified.stdout

    for args, out in (
        (("data", "get", "ds@1", tmp_path / "got"), tmp_path / "got"),
        (("backup", "restore", "--to", tmp_path / "restored"), tmp_path / "restored"),
    ):
        result = cli(*args)
        assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
        damaged = [
            line.removeprefix("aios: error: damaged, not restored: ")
            for line in result.stderr.splitlines()
        ]
        assert damaged and all(name.startswith("f") for name in damaged), result.stderr
        assert damaged == [name for name in damaged if name in verified.stdout]
        written = files_under(out)
        assert sorted(written) == sorted(set(files_under(src)) - set(damaged))
        assert all(written[name] == (src / name).read_bytes() for name in written)
        assert not [p for p in out.rglob("*") if ".aios-restore-" in p.name]


def test_check_passes_a_healthy_repository_and_says_what_it_checked(aios: Aios, tree: Path) -> None:
    aios.ok("data", "add", "digits", tree)

    for args in (("data", "check"), ("data", "check", "--read-data")):
        out = aios.ok(*args)
        assert out.startswith("checked 1 snapshots, ")
        assert "no errors found" in out


def test_check_names_each_file_a_truncated_pack_damaged(aios: Aios, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for i in range(20):
        (src / f"f{i:02}.bin").write_bytes(os.urandom(20_000 + 3_000 * i))
    aios.ok("data", "add", "ds", src)
    _truncate_largest_pack(tmp_path / "repo")

    checked = aios("data", "check")

    assert checked.exit_code == 1 and isinstance(checked.exception, SystemExit)
    assert "truncated" in checked.stdout
    damaged = [line for line in checked.stdout.splitlines() if line.startswith("damaged ds@1")]
    got = aios("data", "get", "ds@1", tmp_path / "out")
    assert len(damaged) == len(got.stderr.splitlines()) > 0
    assert "index is damaged" not in checked.stdout
    assert one_error_line(checked) == "check found 1 damaged snapshot(s), 1 damaged pack(s), " + (
        f"{len(damaged)} damaged blob(s)"
    )


@pytest.mark.parametrize("encrypted", [True, False], ids=["encrypted", "unencrypted"])
def test_a_flipped_index_is_named_read_around_and_repaired(
    tmp_path: Path, tree: Path, encrypted: bool
) -> None:
    """One flipped bit in the index: check and verify say the index is damaged (and no
    file), get restores every file, add refuses, repair index fixes it."""
    cli = Aios(tmp_path, passphrase=PASSPHRASE if encrypted else None)
    cli.ok("data", "init", *([] if encrypted else ["--unencrypted"]))
    cli.ok("data", "add", "digits", tree)
    (index_file,) = (tmp_path / "repo" / "index").iterdir()
    raw = bytearray(index_file.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    index_file.write_bytes(bytes(raw))

    for args in (("data", "check", "--read-data"), ("backup", "verify", "--read-data")):
        result = cli(*args)
        assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
        report = result.stdout + result.stderr
        assert "index is damaged" in report and "aios data repair index" in report
        assert "damaged digits@1" not in report

    got = cli("data", "get", "digits@1", tmp_path / "out")
    assert got.exit_code == 0, got.stderr
    assert files_under(tmp_path / "out") == files_under(tree)
    assert "aios data repair index" in got.stderr

    refused = cli("data", "add", "digits", tree)
    assert refused.exit_code == 1
    assert "aios data repair index" in one_error_line(refused)

    assert cli.ok("data", "repair", "index").startswith("rebuilt the index")
    assert "no errors found" in cli.ok("data", "check", "--read-data")
    assert cli.ok("data", "add", "digits", tree).endswith(", 0 new\n")
