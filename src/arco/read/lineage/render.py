"""Export of a lineage answer: :func:`to_mermaid`, :func:`to_dot` and :func:`render` (SVG or PNG through
Graphviz ``dot`` when it is installed).
"""

from __future__ import annotations

import shutil
import subprocess
from typing import Literal

from arco.core.errors import InfrastructureError, InvalidInputError, UnsupportedOperationError
from arco.read.lineage.model import LineageResult

__all__ = ["render", "to_dot", "to_mermaid"]


def _mermaid_text(text: str) -> str:
    return text.replace('"', "#quot;").replace("<", "#lt;").replace(">", "#gt;")


def to_mermaid(result: LineageResult) -> str:
    """The answer as a Mermaid flowchart (upstream on the left).

    Dataset nodes are cylinders, the start is highlighted, declared-only edges are dotted and edges observed but
    not declared are red.
    """
    ids = {node.id: f"n{i}" for i, node in enumerate(result.nodes)}
    lines = ["flowchart LR"]
    for node in result.nodes:
        label = _mermaid_text(node.label)
        shape = f'[("{label}")]' if node.kind == "dataset" else f'["{label}"]'
        lines.append(f"  {ids[node.id]}{shape}")
    red: list[int] = []
    for number, edge in enumerate(e for e in result.edges if e.source in ids and e.target in ids):
        source, target = ids[edge.source], ids[edge.target]
        if not edge.observed:
            lines.append(f"  {source} -. declared only .-> {target}")
        else:
            runs = len(edge.runs)
            lines.append(f'  {source} -->|"{runs} run{"s" if runs != 1 else ""}"| {target}')
        if edge.status == "observed_not_declared":
            red.append(number)
    lines.append("  classDef start fill:#fde68a,stroke:#b45309")
    lines.append(f"  class {ids[result.start.id]} start")
    for number in red:
        lines.append(f"  linkStyle {number} stroke:#dc2626,stroke-width:2px")
    return "\n".join(lines) + "\n"


def _dot_text(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_dot(result: LineageResult) -> str:
    """The answer as a Graphviz DOT digraph (same conventions as :func:`to_mermaid`)."""
    lines = [
        "digraph lineage {",
        "  rankdir=LR;",
        '  node [shape=box, style="rounded,filled", fillcolor="#f8fafc", fontname="Helvetica"];',
        '  edge [fontname="Helvetica", fontsize=10];',
    ]
    for node in result.nodes:
        attrs = [f"label={_dot_text(node.label)}"]
        if node.kind == "dataset":
            attrs.append("shape=cylinder")
        if node.id == result.start.id:
            attrs.append('fillcolor="#fde68a"')
        lines.append(f"  {_dot_text(node.id)} [{', '.join(attrs)}];")
    for edge in result.edges:
        attrs = []
        if not edge.observed:
            attrs += ["style=dashed", 'color="#64748b"', 'label="declared only"']
        else:
            runs = len(edge.runs)
            attrs.append(f'label="{runs} run{"s" if runs != 1 else ""}"')
        if edge.status == "observed_not_declared":
            attrs += ['color="#dc2626"', "penwidth=2"]
        lines.append(f"  {_dot_text(edge.source)} -> {_dot_text(edge.target)} [{', '.join(attrs)}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def render(result: LineageResult, fmt: Literal["svg", "png"], *, timeout_s: float = 30.0) -> bytes:
    """Render the answer as SVG or PNG with Graphviz ``dot``.

    Raises:
        InvalidInputError: for another format.
        UnsupportedOperationError: if the ``dot`` binary is not installed.
        InfrastructureError: if ``dot`` fails.
    """
    if fmt not in ("svg", "png"):
        raise InvalidInputError(f"render format must be 'svg' or 'png', got {fmt!r}")
    binary = shutil.which("dot")
    if binary is None:
        raise UnsupportedOperationError(
            "rendering SVG/PNG needs Graphviz's `dot` binary, which is not installed; install Graphviz "
            "(Debian/Ubuntu: apt-get install graphviz, macOS: brew install graphviz) or export --format dot / "
            "mermaid instead"
        )
    try:
        done = subprocess.run(
            [binary, f"-T{fmt}"],
            input=to_dot(result).encode(),
            capture_output=True,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise InfrastructureError(f"Graphviz dot did not finish within {timeout_s:g} s") from None
    if done.returncode != 0:
        raise InfrastructureError(
            f"Graphviz dot failed with exit code {done.returncode}: {done.stderr.decode(errors='replace')[:500]}"
        )
    return done.stdout
