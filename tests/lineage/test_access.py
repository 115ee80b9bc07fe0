"""Datasets per tenant: a dataset belongs to a queue; another tenant neither reads it as
an input nor publishes to it as an output (and cannot tell it from one that does not
exist) unless the owner shares it; a new name belongs to the first queue that submits a
job publishing it; a dataset no one owns is the admins' until assigned; admins use all.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from aios.client import ApiError, Client
from aios.control.auth import Principal
from aios.control.specs import PipelineSpec
from aios.data.datasets import DataStore
from aios.lineage.access import DatasetRights, Share
from tests.control.control_harness import Running
from tests.lineage.conftest import open_store

READ = 'cat "$AIOS_INPUTS"/raw/a.txt'


@dataclass
class Tenants:
    running: Running
    alpha: Client
    beta: Client


@pytest.fixture
def tenants(data_plane: Running) -> Iterator[Tenants]:
    """Queues alpha and beta with a member each; ``raw`` (added to the repository with
    the library, so no one's) assigned to alpha by the admin."""
    admin = data_plane.admin
    for queue in ("alpha", "beta"):
        admin.create_queue(queue)
    admin.assign_dataset("raw", "alpha")
    with (
        data_plane.client(admin.create_token("ada", tenant="alpha")) as alpha,
        data_plane.client(admin.create_token("bob", tenant="beta")) as beta,
    ):
        yield Tenants(data_plane, alpha, beta)


def refusal(client: Client, **spec: list[str]) -> ApiError:
    with pytest.raises(ApiError) as caught:
        client.submit("true", **spec)  # type: ignore[arg-type]
    return caught.value


def add_loose(running: Running, tmp_path: Path, name: str) -> None:
    """Adds dataset ``name`` with the library, as ``aios data add`` does: no one's."""
    source = tmp_path / name
    source.mkdir()
    (source / "x.txt").write_text("x\n")
    store = open_store(running)
    try:
        DataStore(store.repo).add(name, source, "added by hand")
    finally:
        store.repo.close()


# -- the rules, as pure functions ---------------------------------------------------------
ADA = Principal("ada", "alpha", False)
BOB = Principal("bob", "beta", False)
ADMIN = Principal("root", None, True)
OWNED = DatasetRights("d", "alpha")
SHARED_RO = DatasetRights("d", "alpha", (Share("beta", True, 0.0),))
SHARED_RW = DatasetRights("d", "alpha", (Share("beta", False, 0.0),))
UNOWNED = DatasetRights("d", None)
UNOWNED_SHARED = DatasetRights("d", None, (Share("beta", True, 0.0),))


@pytest.mark.parametrize(
    ("rights", "user", "exists", "read", "publish"),
    [
        (OWNED, ADA, True, True, True),
        (OWNED, BOB, True, False, False),
        (OWNED, ADMIN, True, True, True),
        (SHARED_RO, BOB, True, True, False),
        (SHARED_RW, BOB, True, True, True),
        (UNOWNED, ADA, True, False, False),  # in the repository, no one's: admins only
        (UNOWNED, ADMIN, True, True, True),
        (UNOWNED, ADA, False, False, True),  # a new name: the first to publish takes it
        (UNOWNED_SHARED, BOB, True, True, False),
        (UNOWNED_SHARED, ADA, True, False, False),
    ],
)
def test_who_may_read_and_publish_a_dataset(
    rights: DatasetRights, user: Principal, exists: bool, read: bool, publish: bool
) -> None:
    assert rights.may_read(user) is read
    assert rights.may_publish(user, exists) is publish


# -- inputs -------------------------------------------------------------------------------
@pytest.mark.parametrize("version", ["1", "latest", "7", "sometag"])
def test_another_tenants_input_is_refused_as_a_dataset_that_does_not_exist(
    tenants: Tenants, version: str
) -> None:
    theirs = refusal(tenants.beta, inputs=[f"raw@{version}"])
    absent = refusal(tenants.beta, inputs=[f"nosuch@{version}"])
    assert theirs.status == absent.status == 400
    assert str(theirs).replace("raw", "NAME") == str(absent).replace("nosuch", "NAME")
    assert tenants.beta.jobs() == []


def test_the_owner_reads_its_dataset(tenants: Tenants) -> None:
    job = tenants.alpha.submit(READ, inputs=["raw@1"])
    assert tenants.alpha.wait(job.id, timeout=60).state == "succeeded"
    assert "".join(tenants.alpha.logs(job.id)) == "alpha\n"


def test_a_tenant_cannot_read_another_tenants_dataset_in_a_batch_or_a_pipeline(
    tenants: Tenants,
) -> None:
    with pytest.raises(ApiError) as batch:
        tenants.beta.submit_many([{"command": "true", "inputs": ["raw@1"]}])
    assert batch.value.status == 400 and "jobs[0]: inputs: raw@1: no dataset 'raw'" in str(
        batch.value
    )
    steps = {"read": {"command": "true", "inputs": ["raw@1"]}}
    with pytest.raises(ApiError) as pipeline:
        tenants.beta.submit_pipeline(PipelineSpec.model_validate({"name": "p", "steps": steps}))
    assert "steps.read.inputs: raw@1: no dataset 'raw'" in str(pipeline.value)
    assert tenants.beta.jobs() == []


def test_a_job_after_a_producer_may_not_read_what_its_queue_may_not(tenants: Tenants) -> None:
    """An admin's job in beta's queue publishes to alpha's dataset (admins may); beta's
    job that waits for it still may not read alpha's dataset."""
    admin = tenants.running.admin
    producer = admin.submit("sleep 30", queue="beta", outputs=["raw"])
    with pytest.raises(ApiError) as caught:
        tenants.beta.submit("true", inputs=["raw@latest"], after=[producer.id])
    assert caught.value.status == 400 and "no dataset 'raw'" in str(caught.value)
    admin.cancel(producer.id)


# -- outputs ------------------------------------------------------------------------------
def test_an_output_the_queue_may_not_publish_is_refused_whoever_holds_the_name(
    tenants: Tenants, tmp_path: Path
) -> None:
    """Alpha's dataset, a dataset no one owns, and one shared read-only are refused in
    the same words."""
    add_loose(tenants.running, tmp_path, "loose")
    add_loose(tenants.running, tmp_path, "ro")
    tenants.running.admin.assign_dataset("ro", "alpha")
    tenants.alpha.share_dataset("ro", "beta", read_only=True)
    answers = {name: refusal(tenants.beta, outputs=[name]) for name in ("raw", "loose", "ro")}
    assert {a.status for a in answers.values()} == {400}
    assert len({str(a).replace(name, "NAME") for name, a in answers.items()}) == 1
    assert "outputs: raw: no dataset 'raw' that queue 'beta' may publish" in str(answers["raw"])
    assert tenants.beta.jobs() == []


def test_the_first_submission_to_publish_a_new_name_takes_it(tenants: Tenants) -> None:
    first = tenants.alpha.submit("true", outputs=["fresh"])
    assert tenants.alpha.dataset_shares("fresh").owner == "alpha"
    refused = refusal(tenants.beta, outputs=["fresh"])
    assert refused.status == 400 and "no dataset 'fresh'" in str(refused)
    assert tenants.alpha.wait(first.id, timeout=60).state == "succeeded"
    again = tenants.alpha.submit("true", outputs=["fresh"], cache=False)
    assert tenants.alpha.wait(again.id, timeout=60).state == "succeeded"


def test_a_refused_request_takes_no_name(tenants: Tenants) -> None:
    """Beta's batch publishing a new name and alpha's dataset is refused whole: the new
    name is still free for alpha."""
    with pytest.raises(ApiError) as caught:
        tenants.beta.submit_many(
            [{"command": "true", "outputs": ["fresh"]}, {"command": "true", "outputs": ["raw"]}]
        )
    assert "jobs[1]: outputs: raw: no dataset 'raw'" in str(caught.value)
    steps = {
        "a": {"command": "true", "outputs": ["fresh"]},
        "b": {"command": "true", "outputs": ["raw"]},
    }
    with pytest.raises(ApiError) as pipeline:
        tenants.beta.submit_pipeline(PipelineSpec.model_validate({"name": "p", "steps": steps}))
    assert "steps.b.outputs: raw: no dataset 'raw'" in str(pipeline.value)
    assert tenants.beta.jobs() == []
    job = tenants.alpha.submit("true", outputs=["fresh"])
    assert tenants.alpha.dataset_shares("fresh").owner == "alpha"
    assert tenants.alpha.wait(job.id, timeout=60).state == "succeeded"


def test_a_pipeline_takes_the_names_its_steps_publish(tenants: Tenants) -> None:
    steps = {
        "make": {"command": 'echo x > "$AIOS_OUTPUTS"/made/x', "outputs": ["made"]},
        "use": {
            "command": 'cat "$AIOS_INPUTS"/made/x',
            "needs": ["make"],
            "inputs": ["made@latest"],
        },
    }
    pipeline = tenants.alpha.submit_pipeline(
        PipelineSpec.model_validate({"name": "p", "steps": steps})
    )
    assert tenants.alpha.dataset_shares("made").owner == "alpha"
    assert tenants.alpha.wait_pipeline(pipeline.id, timeout=90).state == "succeeded"
    refused = refusal(tenants.beta, inputs=["made@1"])
    assert "no dataset 'made'" in str(refused)


def test_an_admins_job_publishing_a_new_dataset_makes_it_the_jobs_queues(
    tenants: Tenants,
) -> None:
    admin = tenants.running.admin
    job = admin.submit("true", queue="beta", outputs=["byadmin"])
    assert admin.dataset_shares("byadmin").owner == "beta"
    assert admin.wait(job.id, timeout=60).state == "succeeded"
    reader = tenants.beta.submit("true", inputs=["byadmin@1"])
    assert tenants.beta.wait(reader.id, timeout=60).state == "succeeded"


# -- sharing ------------------------------------------------------------------------------
def test_a_read_only_share_reads_but_does_not_publish_and_unsharing_takes_it_back(
    tenants: Tenants,
) -> None:
    view = tenants.alpha.share_dataset("raw", "beta", read_only=True)
    assert view.owner == "alpha" and [(s.queue, s.read_only) for s in view.shares] == [
        ("beta", True)
    ]
    job = tenants.beta.submit(READ, inputs=["raw@1"])
    assert tenants.beta.wait(job.id, timeout=60).state == "succeeded"
    assert "".join(tenants.beta.logs(job.id)) == "alpha\n"
    assert "no dataset 'raw'" in str(refusal(tenants.beta, outputs=["raw"]))

    tenants.alpha.share_dataset("raw", "beta")  # again, read-write this time
    writer = tenants.beta.submit('echo b > "$AIOS_OUTPUTS"/raw/b.txt', outputs=["raw"])
    assert tenants.beta.wait(writer.id, timeout=60).state == "succeeded"

    tenants.alpha.unshare_dataset("raw", "beta")
    assert tenants.alpha.dataset_shares("raw").shares == []
    theirs, absent = (
        refusal(tenants.beta, inputs=["raw@1"]),
        refusal(tenants.beta, inputs=["nosuch@1"]),
    )
    assert str(theirs).replace("raw", "N") == str(absent).replace("nosuch", "N")
    assert "no dataset 'raw'" in str(refusal(tenants.beta, outputs=["raw"]))


def test_a_dataset_no_one_owns_is_the_admins_until_assigned_or_shared(
    tenants: Tenants, tmp_path: Path
) -> None:
    add_loose(tenants.running, tmp_path, "loose")
    admin = tenants.running.admin
    assert admin.dataset_shares("loose").owner is None
    assert "no dataset 'loose'" in str(refusal(tenants.alpha, inputs=["loose@1"]))
    job = admin.submit("true", inputs=["loose@1"], queue="alpha")
    assert admin.wait(job.id, timeout=60).state == "succeeded"

    admin.share_dataset("loose", "beta", read_only=True)
    reader = tenants.beta.submit("true", inputs=["loose@1"])
    assert tenants.beta.wait(reader.id, timeout=60).state == "succeeded"
    assert "no dataset 'loose'" in str(refusal(tenants.alpha, inputs=["loose@1"]))

    assert admin.assign_dataset("loose", "alpha").owner == "alpha"
    mine = tenants.alpha.submit("true", inputs=["loose@1"])
    assert tenants.alpha.wait(mine.id, timeout=60).state == "succeeded"


@pytest.mark.parametrize(
    ("who", "call", "status"),
    [
        ("beta", lambda c: c.dataset_shares("raw"), 404),
        ("beta", lambda c: c.share_dataset("raw", "beta"), 404),
        ("beta", lambda c: c.unshare_dataset("raw", "beta"), 404),
        ("beta", lambda c: c.assign_dataset("raw", "beta"), 403),
        ("alpha", lambda c: c.assign_dataset("raw", "alpha"), 403),
        ("alpha", lambda c: c.share_dataset("raw", "nosuchqueue"), 400),
        ("alpha", lambda c: c.share_dataset("raw", "alpha"), 400),
        ("alpha", lambda c: c.unshare_dataset("raw", "beta"), 404),
        ("alpha", lambda c: c.dataset_shares("nosuch"), 404),
        ("admin", lambda c: c.share_dataset("nosuch", "beta"), 404),
        ("admin", lambda c: c.assign_dataset("nosuch", "beta"), 404),
    ],
)
def test_sharing_is_the_owners_and_the_admins(
    tenants: Tenants, who: str, call: object, status: int
) -> None:
    client = {"alpha": tenants.alpha, "beta": tenants.beta, "admin": tenants.running.admin}[who]
    with pytest.raises(ApiError) as caught:
        call(client)  # type: ignore[operator]
    assert caught.value.status == status


def test_another_tenants_dataset_answers_the_share_api_as_a_missing_one(
    tenants: Tenants,
) -> None:
    with pytest.raises(ApiError) as theirs:
        tenants.beta.dataset_shares("raw")
    with pytest.raises(ApiError) as absent:
        tenants.beta.dataset_shares("nosuch")
    assert theirs.value.status == absent.value.status == 404
    assert str(theirs.value).replace("raw", "N") == str(absent.value).replace("nosuch", "N")
    tenants.alpha.share_dataset("raw", "beta", read_only=True)
    with pytest.raises(ApiError) as reader:
        tenants.beta.share_dataset("raw", "beta")
    assert reader.value.status == 403  # it reads raw: it knows raw exists


# -- reading through the API --------------------------------------------------------------
def test_the_lineage_api_hides_another_tenants_datasets(tenants: Tenants) -> None:
    alpha, beta = tenants.alpha, tenants.beta
    prepare = alpha.submit(
        'cp "$AIOS_INPUTS"/raw/*.txt "$AIOS_OUTPUTS"/clean/', inputs=["raw@1"], outputs=["clean"]
    )
    assert alpha.wait(prepare.id, timeout=60).state == "succeeded"
    view = alpha.lineage("dataset", "clean@1")
    assert [t.node.ref for t in view.upstream.links] == [str(prepare.id)]

    for ref in ("clean@1", "clean@latest", "raw@1"):
        with pytest.raises(ApiError) as theirs:
            beta.lineage("dataset", ref)
        name = ref.partition("@")[0]
        with pytest.raises(ApiError) as absent:
            beta.lineage("dataset", ref.replace(name, "nosuch"))
        assert theirs.value.status == absent.value.status
        assert str(theirs.value).replace(name, "N") == str(absent.value).replace("nosuch", "N")

    # Shared, beta reads clean and sees it in its own job's lineage; raw, upstream of
    # clean, stays hidden, and so does alpha's job.
    alpha.share_dataset("clean", "beta", read_only=True)
    count = beta.submit("true", inputs=["clean@1"])
    assert beta.wait(count.id, timeout=60).state == "succeeded"
    mine = beta.lineage("job", str(count.id))
    assert [t.node.ref for t in mine.upstream.links] == ["clean@1"]
    assert mine.upstream.links[0].links == []
    alpha.unshare_dataset("clean", "beta")
    assert beta.lineage("job", str(count.id)).upstream.links == []
