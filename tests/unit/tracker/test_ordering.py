"""Batches for a FHIR server that checks references: what every planned batch guarantees."""

from __future__ import annotations

import random
from typing import Any

import pytest

from ehiconnect.tracker.sinks.ordering import (
    Batch,
    ReferenceIndex,
    references_in,
    strongly_connected,
)


def resource(kind: str, rid: str, *refs: str, **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": kind,
        "id": rid,
        "related": [{"reference": ref} for ref in refs],
        **extra,
    }


def plan_of(lines: list[dict[str, Any]], max_count: int, max_bytes: int = 10**9) -> list[Batch]:
    index = ReferenceIndex()
    for line in lines:
        index.add(line, 100)
    return index.plan(max_count, max_bytes)


def keys(lines: list[dict[str, Any]], batch: Batch) -> list[str]:
    return [f"{lines[p]['resourceType']}/{lines[p]['id']}" for p in batch.positions]


def assert_sendable(lines: list[dict[str, Any]], plan: list[Batch]) -> None:
    """What a referential-integrity server needs, and what a streaming reader needs."""
    batch_of: dict[str, int] = {}
    for number, batch in enumerate(plan):
        for key in keys(lines, batch):
            batch_of.setdefault(key, number)
    positions = [p for batch in plan for p in batch.positions]
    assert sorted(positions) == list(range(len(lines)))  # each line exactly once
    for number, batch in enumerate(plan):
        for position in batch.positions:
            assert position <= batch.ready_at  # sendable once ready_at has been read
            for ref in references_in(lines[position]):
                if ref in batch_of:  # in the file: same batch or an earlier one
                    assert batch_of[ref] <= number, (ref, number)
    readies = [batch.ready_at for batch in plan]
    assert readies == sorted(readies)  # the order a single forward read can feed


def test_a_reference_cycle_travels_in_one_batch_even_past_the_size_limit() -> None:
    lines = [
        resource("Patient", "p"),
        resource("Encounter", "e1", "Patient/p", "Condition/c1"),
        resource("Observation", "o1", "Patient/p", "Encounter/e1"),
        resource("Condition", "c1", "Patient/p", "Encounter/e1"),
    ]
    plan = plan_of(lines, max_count=1)
    assert [keys(lines, b) for b in plan] == [
        ["Patient/p"],
        ["Encounter/e1", "Condition/c1"],
        ["Observation/o1"],
    ]
    assert [b.ready_at for b in plan] == [0, 3, 3]
    assert_sendable(lines, plan)


def test_a_patient_listed_last_goes_first_and_waits_for_its_line() -> None:
    lines = [resource("Observation", f"o{i}", "Patient/p") for i in range(5)]
    lines.append(resource("Patient", "p", "Organization/elsewhere"))  # not in the file
    plan = plan_of(lines, max_count=4)
    assert keys(lines, plan[0])[0] == "Patient/p"
    assert all(b.ready_at == 5 for b in plan)
    assert_sendable(lines, plan)


def test_file_order_is_kept_when_references_point_backwards() -> None:
    lines = [resource("Patient", "p")]
    lines += [resource("Observation", f"o{i}", "Patient/p") for i in range(9)]
    plan = plan_of(lines, max_count=4)
    assert [b.positions for b in plan] == [(0, 1, 2, 3), (4, 5, 6, 7), (8, 9)]
    assert [b.ready_at for b in plan] == [3, 7, 9]  # each sent as soon as its last line is read


def test_byte_budget_cuts_batches_and_a_large_resource_goes_alone() -> None:
    index = ReferenceIndex()
    sizes = [10, 10, 500, 10, 10]
    for number, size in enumerate(sizes):
        index.add(resource("Binary", f"b{number}"), size)
    plan = index.plan(max_count=100, max_bytes=100)
    assert [b.positions for b in plan] == [(0, 1), (2,), (3, 4)]
    assert [b.size_bytes for b in plan] == [20, 500, 20]


def test_attachment_urls_history_versions_and_repeated_lines() -> None:
    lines = [
        resource("DocumentReference", "d", content=[{"attachment": {"url": "Binary/b"}}]),
        resource("Observation", "o", "Patient/p/_history/3"),
        resource("Binary", "b"),
        resource("Patient", "p"),
        resource("Patient", "p"),  # the same resource again: written after the first copy
    ]
    assert list(references_in(lines[1])) == ["Patient/p"]
    plan = plan_of(lines, max_count=1)
    order = [keys(lines, b)[0] for b in plan]
    assert order.index("Binary/b") < order.index("DocumentReference/d")
    assert order.index("Patient/p") < order.index("Observation/o")
    first, second = (p for b in plan for p in b.positions if p in (3, 4))
    assert (first, second) == (3, 4)
    assert_sendable(lines, plan)


@pytest.mark.parametrize("seed", range(40))
def test_random_reference_graphs_plan_into_sendable_batches(seed: int) -> None:
    rng = random.Random(seed)
    count = rng.randint(1, 120)
    names = [f"Observation/x{i}" for i in range(count)]
    lines = []
    for number in range(count):
        refs = rng.sample(names, k=min(count, rng.randint(0, 4)))
        refs += ["Practitioner/outside"] * rng.randint(0, 1)
        lines.append(resource("Observation", f"x{number}", *refs))
    max_count = rng.randint(1, 30)
    plan = plan_of(lines, max_count)
    assert_sendable(lines, plan)
    # A batch over the limit is one reference cycle: taking any member out would break it.
    components = strongly_connected(
        [[int(ref.split("/x")[1]) for ref in references_in(line) if "/x" in ref] for line in lines]
    )
    largest = max(len(c) for c in components)
    assert all(len(b.positions) <= max(max_count, largest) for b in plan)


def test_strongly_connected_survives_a_long_chain() -> None:
    chain = [[i + 1] for i in range(50_000)] + [[0]]  # one 50,001-member cycle, no recursion
    assert [len(c) for c in strongly_connected(chain)] == [50_001]
    dag = [[i + 1] for i in range(50_000)] + [[]]
    components = strongly_connected(dag)
    assert components[0] == [50_000]  # what everything depends on comes first
