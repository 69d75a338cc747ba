"""The capped-queue table a plan summary carries so batched runs can hold per-queue caps across batches."""

from __future__ import annotations

from arco.core.runs import PlanSummary, capped_queue_table


def test_only_capped_queues_are_listed_and_tasks_point_at_them() -> None:
    capped, queue_of = capped_queue_table(["gpu", "default", "gpu", "io"], {"io": 2, "gpu": 1, "unused": 5})
    assert capped == ["gpu", "io"]
    assert queue_of == [0, -1, 0, 1]


def test_no_caps_means_an_empty_table() -> None:
    assert capped_queue_table(["a", "b"], {}) == ([], [])
    assert capped_queue_table(["a", "b"], {"c": 1}) == ([], [])


def test_summaries_from_before_the_table_still_load() -> None:
    old = {
        "runId": "r",
        "fingerprint": "f",
        "planKey": "k",
        "taskKeys": ["a"],
        "upstream": [[]],
        "assetKeys": ["a"],
        "assetCount": 1,
        "partitionKeys": [""],
        "partitionCount": 1,
    }
    summary = PlanSummary.model_validate(old)
    assert summary.capped_queues == [] and summary.queue_of == []
