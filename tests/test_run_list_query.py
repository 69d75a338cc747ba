"""The visibility query behind ``arco run list``: the caller's scope always, filters only as given, no injection."""

from __future__ import annotations

import datetime

import pytest

from arco.client import run_list_query
from arco.core.errors import InvalidInputError
from arco.core.runs import RunState
from arco.core.scope import Scope

SCOPE = Scope("acme", "prod")


def test_the_query_is_always_scoped() -> None:
    assert run_list_query(SCOPE) == (
        "WorkflowType = 'RunWorkflow' AND ArcoTenant = 'acme' AND ArcoWorkspace = 'prod'"
    )


def test_filters_are_added_to_the_scope() -> None:
    since = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    query = run_list_query(
        SCOPE, states=(RunState.FAILED, RunState.CANCELLED), asset="demo.daily_revenue", since=since
    )
    assert query == (
        "WorkflowType = 'RunWorkflow' AND ArcoTenant = 'acme' AND ArcoWorkspace = 'prod' AND "
        "ArcoRunState IN ('FAILED', 'CANCELLED') AND ArcoAssetKeys = 'demo.daily_revenue' AND "
        "StartTime >= '2026-01-01T00:00:00+00:00'"
    )


@pytest.mark.parametrize("asset", ["x' OR ArcoTenant = 'other", 'a"b', "a b", "", "a\nb"])
def test_a_value_that_could_change_the_query_is_refused(asset: str) -> None:
    with pytest.raises(InvalidInputError, match="cannot be searched for"):
        run_list_query(SCOPE, asset=asset)


def test_a_naive_since_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="has no time zone"):
        run_list_query(SCOPE, since=datetime.datetime(2026, 1, 1))
