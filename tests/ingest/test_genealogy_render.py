"""Drawing a trace with Graphviz (ingest/genealogy/render.py): identifiers that are not nice
stay text, and a graph too large to draw is refused."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ingest.genealogy.render import MAX_DRAWN, GraphTooLargeError, dot_source, render_svg
from ingest.genealogy.trace import Trace, TraceEdge


def test_quotes_and_backslashes_cannot_break_out_of_a_label() -> None:
    hostile = 'urn:x:"];evil[label="\\'
    result = Trace("lot:09506000123455/A1", forward={hostile})
    result.edges[1] = TraceEdge(
        "lot:09506000123455/A1", hostile, "ships", "e-1", datetime(2026, 1, 1, tzinfo=UTC),
        None, None, None, "ni:///sha-256;" + "0" * 64 + "?ver=CBV2.0",
    )  # fmt: skip
    source = dot_source(result)
    assert '"urn:x:\\"];evil[label=\\"\\\\"' in source
    svg = render_svg(source).decode()
    # the identifier is one node's label, as written; no node or attribute was injected
    assert ">urn:x:&quot;];evil[label=&quot;\\</text>" in svg
    assert svg.count('class="node"') == 2 and svg.count('class="edge"') == 1


def test_too_large_to_draw() -> None:
    result = Trace("lot:1/A", forward={f"lot:1/{i}" for i in range(MAX_DRAWN + 1)})
    with pytest.raises(GraphTooLargeError):
        dot_source(result)
