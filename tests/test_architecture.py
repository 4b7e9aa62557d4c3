"""docs/ARCHITECTURE.md's rule graph is the workflow's: docs/rulegraph.dot equals what
`snakemake --rulegraph` prints for the default config now, docs/rulegraph.svg was rendered from it,
and every rule file and stage module it names exists. Regenerate with `python docs/rulegraph.py`."""
from __future__ import annotations

import html
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "docs"))
from rulegraph import rulegraph_dot  # noqa: E402

STALE = "stale: run `python docs/rulegraph.py` and commit docs/rulegraph.dot and docs/rulegraph.svg"


def _graph(dot_text: str) -> tuple[set[str], set[tuple[str, str]]]:
    """(rule names, edges by rule name) of a Snakemake rule graph in DOT."""
    labels = dict(re.findall(r"^\s*(\d+)\[label = \"(\w+)\"", dot_text, flags=re.M))
    edges = {(labels[a], labels[b]) for a, b in re.findall(r"^\s*(\d+) -> (\d+)", dot_text, flags=re.M)}
    return set(labels.values()), edges


def test_committed_rulegraph_is_current():
    committed = (REPO / "docs" / "rulegraph.dot").read_text()
    rules, edges = _graph(rulegraph_dot())
    assert rules and edges
    assert _graph(committed) == (rules, edges), STALE


def test_svg_was_rendered_from_the_dot():
    rules, edges = _graph((REPO / "docs" / "rulegraph.dot").read_text())
    svg = html.unescape((REPO / "docs" / "rulegraph.svg").read_text())
    node_text = set(re.findall(r"<text[^>]*>(\w+)</text>", svg))
    assert node_text == rules, STALE
    assert len(re.findall(r'<g id="edge\d+" class="edge">', svg)) == len(edges), STALE


def test_architecture_names_real_files():
    text = (REPO / "docs" / "ARCHITECTURE.md").read_text()
    named = set(re.findall(r"`((?:workflow/rules|src/gisweep)/[\w/]+\.(?:smk|py))`", text))
    assert len(named) >= 15, named
    missing = sorted(p for p in named if not (REPO / p).is_file())
    assert not missing, f"docs/ARCHITECTURE.md names files that do not exist: {missing}"
    smk = {f"workflow/rules/{p.name}" for p in (REPO / "workflow" / "rules").glob("*.smk")}
    assert smk <= named, f"rule files without a paragraph: {sorted(smk - named)}"
