"""Lineage traversal: asset and partition levels, filters, declared vs observed flags, limits, impact, export."""

from __future__ import annotations

import datetime
import io
import subprocess
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest
from query_scenario import ACME, DAYS, FX_URI, RIVAL, Built, build_ops, build_tier1, day_key, uri_of

from arco.catalog.log.commit import CommitLog, CommitRequest
from arco.catalog.storage import ObjectStore, open_store
from arco.catalog.tier2.projections import LINEAGE_EDGES, conform, encode_parquet, merge, projection_domain
from arco.core.errors import InvalidInputError, NotFoundError, UnsupportedOperationError
from arco.core.scope import Scope
from arco.read.lineage.impact import impact
from arco.read.lineage.model import LineageResult, parse_target
from arco.read.lineage.render import render, to_dot, to_mermaid
from arco.read.lineage.traverse import MAX_HOPS, lineage
from arco.read.snapshot import ScopeSnapshot
from support.system import require_binary


def _edges(result: LineageResult) -> dict[tuple[str, str], str]:
    return {(e.source, e.target): e.status for e in result.edges}


def test_upstream_of_an_asset_shows_observed_and_declared_side_by_side(store: ObjectStore) -> None:
    result = lineage(store, ACME, "marketing.attribution", hops=5)
    assert _edges(result) == {
        ("asset:sales.daily_orders", "asset:marketing.attribution"): "observed_not_declared",
        ("asset:sales.revenue", "asset:marketing.attribution"): "declared_not_observed",
        ("asset:raw.orders", "asset:sales.daily_orders"): "matched",
        ("asset:sales.daily_orders", "asset:sales.revenue"): "matched",
        ("asset:raw.customers", "asset:sales.revenue"): "declared_not_observed",
        (f"dataset:{FX_URI}", "asset:sales.revenue"): "not_comparable",
    }
    assert {e.status for e in result.flagged()} == {"observed_not_declared", "declared_not_observed"}
    assert result.node(f"dataset:{FX_URI}").kind == "dataset"
    assert result.node("asset:raw.orders").hops == 2
    assert not result.truncated and result.beyond_hops == ()
    assert result.declared_known


def test_edges_carry_runs_attempts_and_partitions(store: ObjectStore, built: dict[Scope, Built]) -> None:
    result = lineage(store, ACME, "sales.revenue", hops=1)
    edge = next(e for e in result.edges if e.source == "asset:sales.daily_orders")
    assert edge.observed and edge.declared is True
    assert set(edge.runs) == set(built[ACME].runs)
    # 2 runs x 2 days; the failed attempt wrote nothing, so it produced no edge.
    assert edge.observation_count == 4
    attempts = {(o.run_id, o.output_partition, o.attempt) for o in edge.observations}
    assert (built[ACME].runs[1], day_key(DAYS[1]), 2) in attempts
    assert (built[ACME].runs[1], day_key(DAYS[1]), 1) not in attempts
    recorded = {a.attempt_id for a in built[ACME].attempts}
    assert all(o.attempt_id in recorded for o in edge.observations)
    assert [o.occurred_at for o in edge.observations] == sorted(
        (o.occurred_at for o in edge.observations), reverse=True
    )


def test_downstream_and_hop_boundary(store: ObjectStore) -> None:
    one = lineage(store, ACME, "raw.orders", direction="downstream", hops=1)
    assert {n.id for n in one.nodes} == {"asset:raw.orders", "asset:sales.daily_orders"}
    assert one.beyond_hops == ("asset:sales.daily_orders",)
    two = lineage(store, ACME, "raw.orders", direction="downstream", hops=2)
    assert {n.id for n in two.nodes} >= {"asset:sales.revenue", "asset:marketing.attribution"}


def test_partition_level_follows_exact_partitions(store: ObjectStore, built: dict[Scope, Built]) -> None:
    start = f"sales.revenue@{day_key(DAYS[1])}"
    result = lineage(store, ACME, start, hops=3)
    ids = {n.id for n in result.nodes}
    assert f"asset:sales.daily_orders@{day_key(DAYS[1])}" in ids
    assert f"asset:raw.orders@{day_key(DAYS[1])}" in ids
    assert not any(day_key(DAYS[0]) in i for i in ids)
    statuses = _edges(result)
    assert statuses[("asset:raw.customers", f"asset:{start}")] == "declared_not_observed"
    assert statuses[(f"dataset:{FX_URI}", f"asset:{start}")] == "not_comparable"


def test_dataset_uri_start(store: ObjectStore) -> None:
    external = lineage(store, ACME, FX_URI, direction="downstream", hops=1)
    assert external.start.kind == "dataset"
    assert {e.target for e in external.edges} == {f"asset:sales.revenue@{day_key(d)}" for d in DAYS}
    owned = lineage(store, ACME, uri_of("raw.orders", DAYS[0]), direction="downstream", hops=1)
    assert owned.start.id == f"asset:raw.orders@{day_key(DAYS[0])}"


def test_run_and_partition_filters(store: ObjectStore, built: dict[Scope, Built]) -> None:
    first = built[ACME].runs[0]
    result = lineage(store, ACME, "sales.revenue", hops=2, run_id=first)
    observed = [e for e in result.edges if e.observed]
    assert observed and all(e.runs == (first,) for e in observed)
    day = day_key(DAYS[0])
    by_day = lineage(store, ACME, "sales.revenue", hops=2, partition=day)
    assert all(
        o.input_partition == day or o.output_partition == day for e in by_day.edges for o in e.observations
    )
    assert by_day.filters["partition"] == day
    # An unknown run id is an error, not the declared graph with every edge "declared_not_observed".
    with pytest.raises(NotFoundError, match="run 'no-such-run' recorded no lineage"):
        lineage(store, ACME, "sales.revenue", hops=2, run_id="no-such-run")


def test_as_of_hides_later_recordings(store: ObjectStore, built: dict[Scope, Built]) -> None:
    snapshot = ScopeSnapshot(store, ACME)
    first = snapshot.projections_log.as_of(1)
    assert first is not None
    result = lineage(store, ACME, "sales.revenue", hops=1, as_of=first.committed_at)
    observed = [e for e in result.edges if e.observed]
    assert observed and all(e.runs == (built[ACME].runs[0],) for e in observed)


def test_limits_truncate_explicitly(store: ObjectStore) -> None:
    cut = lineage(store, ACME, "marketing.attribution", hops=5, max_nodes=2)
    assert cut.truncated
    assert cut.truncations[0].limit == "max_nodes" and cut.truncations[0].value == 2
    assert cut.truncations[0].at  # where it was cut
    assert len(cut.nodes) == 2
    few = lineage(store, ACME, "marketing.attribution", hops=5, max_edges=1)
    assert few.truncated and len(few.edges) == 1 and few.truncations[0].limit == "max_edges"
    one = lineage(store, ACME, "sales.revenue", hops=1, max_observations=1)
    observed = [e for e in one.edges if e.observed]
    assert all(len(e.observations) == 1 and e.truncated for e in observed)
    assert not one.truncated and any(t.limit == "max_observations" for t in one.truncations)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"target": "sales.revenue", "hops": 0}, InvalidInputError),
        ({"target": "sales.revenue", "hops": -3}, InvalidInputError),
        ({"target": "sales.revenue", "hops": MAX_HOPS + 1}, InvalidInputError),
        ({"target": "sales.revenue", "hops": 10**9}, InvalidInputError),
        ({"target": "sales.revenue", "direction": "sideways"}, InvalidInputError),
        ({"target": "Not An Asset"}, InvalidInputError),
        ({"target": "sales.revenue@date=x:nope"}, InvalidInputError),
        ({"target": "sales.revenue", "partition": "bad"}, InvalidInputError),
        ({"target": "sales.nothing"}, NotFoundError),
        ({"target": "sales.revenue@date=d:1999-01-01"}, NotFoundError),
        ({"target": "gs://lake/nowhere.parquet"}, NotFoundError),
        ({"target": "sales.revenue", "max_nodes": 0}, InvalidInputError),
    ],
)
def test_bad_input_is_refused(store: ObjectStore, kwargs: dict[str, object], error: type[Exception]) -> None:
    target = kwargs.pop("target")
    with pytest.raises(error):
        lineage(store, ACME, target, **kwargs)  # type: ignore[arg-type]


def test_other_tenants_lineage_is_invisible_and_unnameable(store: ObjectStore) -> None:
    with pytest.raises(NotFoundError):
        lineage(store, ACME, "secret.margins")
    mine = lineage(store, RIVAL, "secret.margins", direction="downstream")
    assert mine.start.id == "asset:secret.margins"
    everything = lineage(store, ACME, "raw.orders", direction="downstream", hops=MAX_HOPS)
    assert not any("secret" in n.id for n in everything.nodes)
    with pytest.raises(NotFoundError):
        lineage(store, RIVAL, "sales.revenue")


def test_parse_target() -> None:
    assert parse_target("sales.orders").kind == "asset"
    assert parse_target("sales/orders").asset == "sales.orders"
    partitioned = parse_target("sales.orders", "date=d:2024-01-01")
    assert partitioned.kind == "asset_partition" and partitioned.label == "sales.orders@date=d:2024-01-01"
    assert parse_target("file:///data/x.parquet").kind == "dataset"
    with pytest.raises(InvalidInputError):
        parse_target("s3://b/k", "date=d:2024-01-01")
    with pytest.raises(InvalidInputError):
        parse_target("   ")


def test_impact_of_a_changed_partition(store: ObjectStore) -> None:
    day = day_key(DAYS[0])
    report = impact(store, ACME, "raw.orders", day)
    impacted = {i.asset: i for i in report.impacted}
    assert set(impacted) == {"sales.daily_orders", "sales.revenue", "marketing.attribution"}
    assert impacted["sales.daily_orders"].hops == 1 and impacted["sales.daily_orders"].partitions == (day,)
    assert all(i.via == "observed" for i in report.impacted)
    # raw.customers -> sales.revenue is declared but never ran: its impact comes from the declared graph.
    declared = impact(store, ACME, "raw.customers", None)
    assert {i.asset for i in declared.impacted} >= {"sales.revenue"}


def test_impact_lists_declared_only_downstream(store: ObjectStore) -> None:
    report = impact(store, ACME, "sales.revenue", day_key(DAYS[0]))
    impacted = {i.asset: i for i in report.impacted}
    # sales.revenue's output was never read by recorded executions, but attribution declares it.
    assert impacted["marketing.attribution"].via == "declared"
    assert impacted["marketing.attribution"].partitions == ()


def test_mermaid_and_dot_export(store: ObjectStore) -> None:
    result = lineage(store, ACME, "marketing.attribution", hops=5)
    mermaid = to_mermaid(result)
    assert mermaid.startswith("flowchart LR\n")
    assert mermaid.count("-->") == sum(1 for e in result.edges if e.observed)
    assert mermaid.count("declared only") == sum(1 for e in result.edges if not e.observed)
    assert '[("s3://ext/fx/rates.csv")]' in mermaid and "linkStyle" in mermaid
    dot = to_dot(result)
    assert dot.startswith("digraph lineage {") and dot.rstrip().endswith("}")
    assert dot.count(" -> ") == len(result.edges)
    assert "style=dashed" in dot and "shape=cylinder" in dot


def test_render_without_graphviz_says_how_to_install_it(
    store: ObjectStore, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: no `dot` on the PATH
    result = lineage(store, ACME, "sales.revenue", hops=1)
    with pytest.raises(UnsupportedOperationError, match="apt-get install graphviz"):
        render(result, "svg")


def test_render_svg_and_png_with_graphviz(store: ObjectStore) -> None:
    dot_binary = require_binary("dot")  # skips on a clone without Graphviz, fails under CI
    result = lineage(store, ACME, "sales.revenue", hops=1)
    svg = render(result, "svg")
    assert b"<svg" in svg and b"sales.revenue" in svg
    png = render(result, "png")
    assert png.startswith(b"\x89PNG")
    subprocess.run([dot_binary, "-V"], check=True, capture_output=True)
    with pytest.raises(InvalidInputError):
        render(result, "gif")  # type: ignore[arg-type]


def _shape(result: LineageResult) -> list[tuple[str, str, str, int]]:
    return sorted((e.source, e.target, e.status, e.observation_count) for e in result.edges)


def test_single_file_snapshots_give_the_same_answers(store: ObjectStore) -> None:
    # The scenario leaves base + delta files (merged reads); compacted into one file per partition, the
    # column-pruned fast path must give the same graph.
    merged = open_store("memory://")
    build_tier1(merged, ACME)
    build_ops(merged, ACME, deltas=False)
    snapshot = ScopeSnapshot(merged, ACME)
    assert all(f.kind == "base" for f in snapshot.files("lineage.edges"))
    for target, direction in [
        ("marketing.attribution", "upstream"),
        ("raw.orders", "downstream"),
        ("sales.revenue", "upstream"),
    ]:
        fast = lineage(merged, ACME, target, direction=direction, hops=5)  # type: ignore[arg-type]
        slow = lineage(store, ACME, target, direction=direction, hops=5)  # type: ignore[arg-type]
        assert _shape(fast) == _shape(slow)
        assert [n.id for n in fast.nodes] == [n.id for n in slow.nodes]
        assert all(len(e.observations) == e.observation_count for e in fast.edges if e.observed)


def _recorded_edges() -> pl.DataFrame:
    """Lineage rows of 6 runs over two months: raw.a -> mid.b -> top.c, raw.x -> top.c, a dataset -> mid.b and
    one observation with no input; several observations of an edge share a time (ties)."""
    runs = [
        (f"0{month}{n:024d}", datetime.datetime(2024, month, 1 + n, tzinfo=datetime.UTC))
        for month in (1, 2)
        for n in range(3)
    ]
    pairs = [
        ("raw.a", "mid.b"),
        ("mid.b", "top.c"),
        ("raw.x", "top.c"),
        ("gs://ext/feed.csv", "mid.b"),
        (None, "raw.a"),
    ]
    records = []
    for number, (run_id, day) in enumerate(runs):
        for src, dst in pairs:
            for part in ("p=s:1", "p=s:2"):
                at = datetime.datetime(2024, 3, 1, tzinfo=datetime.UTC) if number % 2 else day
                records.append(
                    {
                        "idempotencyKey": f"LineageObserved:{run_id}:{dst}:{part}",
                        "eventId": f"{run_id[:20]}{number:06d}",
                        "occurredAt": at,
                        "runId": run_id,
                        "taskKey": f"{dst}|{part}",
                        "attempt": 1,
                        "attemptId": f"att_{run_id}_{dst}_{part}",
                        "inputUri": None
                        if src is None
                        else (src if "://" in src else f"gs://lake/{src}/{part}"),
                        "inputAsset": None if src is None or "://" in src else src,
                        "inputPartition": None if src is None else ("" if "://" in src else part),
                        "outputUri": f"gs://lake/{dst}/{part}",
                        "outputAsset": dst,
                        "outputPartition": part,
                    }
                )
    return conform(LINEAGE_EDGES, pl.DataFrame(records, infer_schema_length=None))


def _publish_lineage(files: list[tuple[str, bytes, int]], kinds: tuple[str, ...] = ()) -> ObjectStore:
    """A store whose projections hold exactly these ``lineage_edges`` files: (partition, bytes, rows), of the
    given kinds (default: all ``base``)."""
    target = open_store("memory://")
    log = CommitLog(target, ACME, projection_domain())
    written = [
        log.write_data_file(
            LINEAGE_EDGES.name,
            data,
            rows=rows,
            kind=kinds[n] if kinds else "base",
            stats={"partition": label},
        )
        for n, (label, data, rows) in enumerate(files)
    ]
    log.commit(lambda parent: CommitRequest("test_load", add=written))
    return target


def _plain_parquet(frame: pl.DataFrame) -> bytes:
    sink = io.BytesIO()
    pq.write_table(frame.to_arrow().cast(LINEAGE_EDGES.schema), sink)
    return sink.getvalue()


def test_every_file_layout_gives_the_same_answers() -> None:
    # Indexed files (what the compactor writes), one or several partitions; files grouped by edge without an
    # index; and time-ordered files without an index (written before the index existed): same answers.
    rows = _recorded_edges()
    merged = merge(LINEAGE_EDGES, rows)
    by_month = [
        (f"m=2024-0{m}", merge(LINEAGE_EDGES, rows.filter(pl.col("runId").str.starts_with(f"0{m}"))))
        for m in (1, 2)
    ]
    # Base + delta: the last run's facts arrive late (a delta of the same partition), or a base fact arrives
    # again as an earlier copy (fresh event id, same key), which the merge rule prefers over the base's.
    last_run = pl.col("runId") == rows.get_column("runId").max()
    late_base, late_delta = (
        merge(LINEAGE_EDGES, rows.filter(~last_run)),
        merge(LINEAGE_EDGES, rows.filter(last_run)),
    )
    first_fact = merged.get_column("idempotencyKey").min()
    copy = merged.filter(pl.col("idempotencyKey") == first_fact).with_columns(
        pl.lit("0" * 26).alias("eventId"), pl.lit("copy").alias("taskKey")
    )
    with_copy = merge(LINEAGE_EDGES, pl.concat([merged, copy]))
    assert with_copy.filter(pl.col("taskKey") == "copy").height == copy.height
    layouts = {
        "base + delta": _publish_lineage(
            [
                ("m=2024-01", encode_parquet(LINEAGE_EDGES, late_base), late_base.height),
                ("m=2024-01", encode_parquet(LINEAGE_EDGES, late_delta), late_delta.height),
            ],
            ("base", "delta"),
        ),
        "indexed": _publish_lineage([("m=2024-01", encode_parquet(LINEAGE_EDGES, merged), merged.height)]),
        "indexed, two partitions": _publish_lineage(
            [(label, encode_parquet(LINEAGE_EDGES, part), part.height) for label, part in by_month]
        ),
        "grouped, no index": _publish_lineage([("m=2024-01", _plain_parquet(merged), merged.height)]),
        "time-ordered": _publish_lineage(
            [("m=2024-01", _plain_parquet(merged.sort("occurredAt", "eventId", "taskKey")), merged.height)]
        ),
    }
    asks = [
        ("top.c", "upstream", 10),
        ("top.c", "upstream", 2),
        ("raw.a", "downstream", 3),
        ("mid.b", "upstream", 0),
    ]
    for target, direction, most in asks:
        answers = {}
        for name, source in layouts.items():
            result = lineage(source, ACME, target, direction=direction, hops=3, max_observations=most)  # type: ignore[arg-type]
            answer = result.to_json()
            answer.pop("snapshot")
            answers[name] = answer
        copied = {}
        for name, source in {
            "base + copy in a delta": _publish_lineage(
                [
                    ("m=2024-01", encode_parquet(LINEAGE_EDGES, merged), merged.height),
                    ("m=2024-01", encode_parquet(LINEAGE_EDGES, copy), copy.height),
                ],
                ("base", "delta"),
            ),
            "with the copy, time-ordered": _publish_lineage(
                [("m=2024-01", _plain_parquet(with_copy.sort("occurredAt", "eventId")), with_copy.height)]
            ),
        }.items():
            answer = lineage(
                source, ACME, target, direction=direction, hops=3, max_observations=most
            ).to_json()  # type: ignore[arg-type]
            answer.pop("snapshot")
            copied[name] = answer
        assert copied["base + copy in a delta"] == copied["with the copy, time-ordered"]
        reference = answers.pop("time-ordered")
        assert reference["edges"], "the scenario must have observed edges"
        for name, answer in answers.items():
            assert answer == reference, f"{name} differs for {target} {direction} max_observations={most}"
    top = lineage(layouts["indexed, two partitions"], ACME, "top.c", max_observations=2)
    edge = next(e for e in top.edges if e.source == "asset:mid.b")
    assert edge.observation_count == 12 and len(edge.runs) == 6 and edge.truncated
    # Newest first; the tie at 2024-03-01 (three runs) is broken by run id, greatest first.
    assert [o.run_id for o in edge.observations] == [edge.runs[-1]] * 2


def test_impact_of_a_whole_asset_tells_declared_only_from_observed(store: ObjectStore) -> None:
    # raw.customers -> sales.revenue is declared but no recorded execution read raw.customers.
    report = impact(store, ACME, "raw.customers", None)
    assert {i.asset: i.via for i in report.impacted} == {
        "sales.revenue": "declared",
        "marketing.attribution": "declared",
    }
    observed = {i.asset: i.via for i in impact(store, ACME, "raw.orders", None).impacted}
    assert observed["sales.daily_orders"] == "observed" and observed["sales.revenue"] == "observed"
    # Attribution is observed reading daily_orders, so it was built from raw.orders through executions.
    assert observed["marketing.attribution"] == "observed"


@pytest.mark.parametrize("start", ["marketing.attribution", f"sales.revenue@{day_key(DAYS[1])}"])
def test_a_node_limit_leaves_no_edge_to_a_node_outside_the_answer(store: ObjectStore, start: str) -> None:
    cut = lineage(store, ACME, start, hops=5, max_nodes=2)
    assert cut.truncated and cut.truncations[0].limit == "max_nodes"
    ids = {n.id for n in cut.nodes}
    assert len(ids) == 2 and cut.edges
    assert all(e.source in ids and e.target in ids for e in cut.edges)
