"""A trace drawn as SVG by Graphviz ``dot`` (a well-kept layout engine, run as a program).

Nodes are shaped by kind (lot: box, item: ellipse, logistic unit: 3-D box, place or party:
house, anything else: note); the traced identifier is filled. Each node links to its own trace
page, each edge's tooltip is its event's hash. Labels are escaped for the DOT language; dot
escapes them again for SVG.
"""

from __future__ import annotations

import subprocess
from urllib.parse import quote

from ingest.errors import IngestError
from ingest.genealogy.ids import node_kind
from ingest.genealogy.trace import Trace
from tracehub.errors import TooLargeError, UnavailableError

__all__ = ["MAX_DRAWN", "GraphTooLargeError", "GraphvizError", "dot_source", "render_svg"]

MAX_DRAWN = 1500
_SHAPES = {"lot": "box", "item": "ellipse", "sscc": "box3d", "gln": "house", "product": "box"}
_COLOURS = {"backward": "#dbeafe", "forward": "#fde2e2", "origin": "#facc15"}


class GraphTooLargeError(IngestError, TooLargeError):
    """More nodes than a drawing can show: narrow the trace (depth, time window)."""


class GraphvizError(IngestError, UnavailableError):
    """Graphviz is missing or failed."""


def _q(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ") + '"'


def dot_source(result: Trace, page: str = "/trace/page") -> str:
    """The DOT text of a trace."""
    if len(result.nodes) > MAX_DRAWN:
        raise GraphTooLargeError(
            f"{len(result.nodes)} nodes are more than a drawing shows ({MAX_DRAWN}):"
            " narrow the trace with depth, since or until"
        )
    side = {n: "backward" for n in result.backward} | {n: "forward" for n in result.forward}
    side[result.origin] = "origin"
    lines = [
        "digraph trace {",
        '  graph [rankdir=LR, fontname="Helvetica", fontsize=10];',
        '  node [fontname="Helvetica", fontsize=10, style=filled];',
        '  edge [fontname="Helvetica", fontsize=8];',
    ]
    for node in sorted(result.nodes):
        attrs = {
            "shape": _SHAPES.get(node_kind(node), "note"),
            "fillcolor": _COLOURS[side[node]],
            "URL": f"{page}?id={quote(node, safe='')}",
            "tooltip": node,
            "id": f"node-{node}",
        }
        lines.append(f"  {_q(node)} [{', '.join(f'{k}={_q(v)}' for k, v in attrs.items())}];")
    for edge_id, edge in sorted(result.edges.items()):
        label = edge.kind if edge.quantity is None else f"{edge.kind} {edge.quantity:g}"
        attrs = {
            "label": f"{label} {edge.uom or ''}".strip(),
            "tooltip": edge.event_hash or edge.event_id,
            "URL": edge.proof,
            "id": f"edge-{edge_id}",
        }
        if edge.valid_to is not None:
            attrs["style"] = "dashed"
        lines.append(
            f"  {_q(edge.src)} -> {_q(edge.dst)}"
            f" [{', '.join(f'{k}={_q(v)}' for k, v in attrs.items())}];"
        )
    lines.append("}")
    return "\n".join(lines) + "\n"


def render_svg(source: str, *, timeout_s: float = 20.0) -> bytes:
    """SVG of DOT ``source`` (``dot -Tsvg``)."""
    try:
        done = subprocess.run(
            ["dot", "-Tsvg"], input=source.encode(), capture_output=True, timeout=timeout_s
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise GraphvizError(f"Graphviz dot is not available: {exc}") from exc
    if done.returncode != 0:
        raise GraphvizError(f"Graphviz dot failed: {done.stderr.decode(errors='replace')[:300]}")
    return done.stdout
