from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aios.errors import InvalidInput, InvalidQuantity
from aios.resources import CPU, GPU, MEMORY, Resources

GI = 1024**3


def test_of_parses_human_quantities() -> None:
    """``Resources.of`` takes cores and memory strings and stores millicores and bytes."""
    r = Resources.of(cpu=2, memory="4G", gpus=1, gpu_kind="A100", custom={"nic": 2, "lic": 1})
    assert r == Resources(2000, 4 * GI, 1, "A100", (("lic", 1), ("nic", 2)))


def test_of_accepts_millicores_and_fractions() -> None:
    """``"500m"`` and ``0.5`` are both half a core."""
    assert Resources.of(cpu="500m").cpu == 500
    assert Resources.of(cpu=0.5).cpu == 500


def test_of_treats_an_empty_gpu_kind_as_any() -> None:
    """An empty kind string means any GPU kind, the same as ``None``."""
    assert Resources.of(gpus=1, gpu_kind="").gpu_kind is None


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"gpus": -1}, "gpus"),
        ({"cpu": "-1"}, "cpu"),
        ({"cpu": "lots"}, "cpu"),
        ({"memory": "4X"}, "memory"),
        ({"memory": -1}, "memory"),
        ({"custom": {"nic": -1}}, "nic"),
        ({"custom": {"cpu": 1}}, "cpu"),
        ({"custom": {"memory": 1}}, "memory"),
        ({"custom": {"gpu": 1}}, "gpu"),
    ],
)
def test_of_rejects_bad_quantities_naming_the_field(kwargs: dict[str, object], field: str) -> None:
    """A negative or unparsable quantity, or a custom resource with a built-in name, is
    InvalidInput whose message names the field."""
    with pytest.raises(InvalidInput, match=field):
        Resources.of(**kwargs)  # type: ignore[arg-type]


def test_of_raises_invalid_quantity_for_unparsable_strings() -> None:
    """Unparsable cpu and memory strings raise the more specific InvalidQuantity."""
    with pytest.raises(InvalidQuantity):
        Resources.of(memory="lots")
    with pytest.raises(InvalidQuantity):
        Resources.of(cpu="lots")


def test_addition_adds_every_resource() -> None:
    """Sums add cpu, memory, GPUs and custom resources by name."""
    a = Resources(1000, 10, 1, None, (("nic", 1),))
    b = Resources(500, 5, 2, None, (("lic", 3), ("nic", 2)))
    assert a + b == Resources(1500, 15, 3, None, (("lic", 3), ("nic", 3)))


def test_subtraction_removes_and_drops_zero_custom() -> None:
    """Differences subtract every resource; a custom resource that reaches zero is dropped."""
    a = Resources(1500, 15, 3, None, (("lic", 3), ("nic", 3)))
    b = Resources(500, 5, 2, None, (("lic", 3), ("nic", 1)))
    assert a - b == Resources(1000, 10, 1, None, (("nic", 2),))
    assert (a - a).is_zero


@pytest.mark.parametrize(
    ("left", "right", "kind"),
    [("A100", "A100", "A100"), ("A100", "H100", None), ("A100", None, None), (None, None, None)],
)
def test_arithmetic_keeps_the_gpu_kind_only_when_both_agree(
    left: str | None, right: str | None, kind: str | None
) -> None:
    """Adding or subtracting keeps the GPU kind when both sides name the same one."""
    a = Resources(gpus=4, gpu_kind=left)
    b = Resources(gpus=1, gpu_kind=right)
    assert (a + b).gpu_kind == kind
    assert (a - b).gpu_kind == kind


def test_multiplication_scales_every_resource() -> None:
    """Multiplying by the replica count scales each amount and keeps the kind."""
    r = Resources(1500, 10, 2, "A100", (("nic", 1),))
    assert r * 3 == Resources(4500, 30, 6, "A100", (("nic", 3),))


def test_multiplying_by_zero_gives_the_zero_vector() -> None:
    """Zero times any vector is zero, custom resources included."""
    assert (Resources(1000, 10, 1) * 0).is_zero


def test_multiplying_custom_resources_by_zero_gives_the_zero_vector() -> None:
    """Zero times a vector with custom resources is zero too, as subtraction's result is."""
    r = Resources(1000, 10, 1, None, (("nic", 2),))
    assert (r * 0).is_zero
    assert r * 0 == r - r


@pytest.mark.parametrize(
    ("request_", "capacity", "fits"),
    [
        (Resources(1000, 10, 1), Resources(1000, 10, 1), True),
        (Resources(1001, 10, 1), Resources(1000, 10, 1), False),
        (Resources(1000, 11, 1), Resources(1000, 10, 1), False),
        (Resources(1000, 10, 2), Resources(1000, 10, 1), False),
        (Resources(gpus=1, gpu_kind="A100"), Resources(gpus=8, gpu_kind="A100"), True),
        (Resources(gpus=1, gpu_kind="A100"), Resources(gpus=8, gpu_kind="H100"), False),
        (Resources(gpus=1, gpu_kind="A100"), Resources(gpus=8, gpu_kind=None), False),
        (Resources(gpus=1, gpu_kind=None), Resources(gpus=8, gpu_kind="H100"), True),
        (Resources(gpus=0, gpu_kind="A100"), Resources(gpus=0, gpu_kind=None), True),
        (Resources(custom=(("nic", 1),)), Resources(custom=(("nic", 1),)), True),
        (Resources(custom=(("nic", 2),)), Resources(custom=(("nic", 1),)), False),
        (Resources(custom=(("nic", 1),)), Resources(1000, 10, 1), False),
        (Resources(), Resources(), True),
    ],
)
def test_fits_compares_every_resource_and_the_gpu_kind(
    request_: Resources, capacity: Resources, fits: bool
) -> None:
    """A request fits when no amount exceeds the capacity's and, if it asks for GPUs of a
    named kind, the capacity offers that kind."""
    assert request_.fits(capacity) is fits


def test_dominant_share_is_the_largest_fraction() -> None:
    """The dominant share is the largest fraction of any one resource of the capacity."""
    capacity = Resources(8000, 100, 4, None, (("nic", 10),))
    assert Resources(2000, 10, 0).dominant_share(capacity) == pytest.approx(0.25)
    assert Resources(1000, 50, 1).dominant_share(capacity) == pytest.approx(0.5)
    assert Resources(0, 0, 0, None, (("nic", 9),)).dominant_share(capacity) == pytest.approx(0.9)


def test_dominant_share_ignores_resources_the_capacity_lacks() -> None:
    """A resource the capacity does not have adds nothing; an empty capacity gives 0."""
    assert Resources(1000, 10, 2).dominant_share(Resources(4000, 0, 0)) == pytest.approx(0.25)
    assert Resources(1000, 10, 2).dominant_share(Resources()) == 0.0


def test_as_dict_names_every_non_zero_resource() -> None:
    """``as_dict`` maps cpu, memory, gpu and custom names to non-zero amounts only."""
    r = Resources(2000, 0, 1, "A100", (("nic", 1),))
    assert r.as_dict() == {CPU: 2000, GPU: 1, "nic": 1}
    assert Resources().as_dict() == {}
    assert Resources(0, 5).as_dict() == {MEMORY: 5}


def test_get_reads_builtin_and_custom_resources() -> None:
    """``get`` returns any resource by name and 0 for one the vector lacks."""
    r = Resources(2000, 7, 1, None, (("nic", 3),))
    assert (r.get(CPU), r.get(MEMORY), r.get(GPU), r.get("nic"), r.get("lic")) == (2000, 7, 1, 3, 0)


def test_str_is_human_readable() -> None:
    """The string form shows cores, binary memory, GPUs with their kind and custom names."""
    r = Resources.of(cpu=1.5, memory="4G", gpus=2, gpu_kind="A100", custom={"nic": 1})
    assert str(r) == "cpu=1.5 mem=4.0Gi gpu=2(A100) nic=1"


amounts = st.integers(min_value=0, max_value=10**6)
vectors = st.builds(
    Resources,
    cpu=amounts,
    memory=amounts,
    gpus=st.integers(min_value=0, max_value=16),
    custom=st.dictionaries(st.sampled_from(["nic", "lic"]), st.integers(1, 10)).map(
        lambda d: tuple(sorted(d.items()))
    ),
)


@settings(deadline=None, max_examples=50)
@given(vectors, vectors)
def test_adding_then_subtracting_gives_back_the_vector(a: Resources, b: Resources) -> None:
    """``(a + b) - b == a`` for kind-less vectors, and ``a`` always fits ``a + b``."""
    assert (a + b) - b == a
    assert a.fits(a + b)
