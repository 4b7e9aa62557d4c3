"""Write docs/rulegraph.dot (`snakemake --rulegraph` of the default config.yaml) and render docs/rulegraph.svg.

    python docs/rulegraph.py            # needs Graphviz's `dot` for the SVG (apt-get install graphviz)

tests/test_architecture.py fails when the committed files no longer match the workflow.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
REPO = DOCS.parent


def rulegraph_dot(repo: Path = REPO) -> str:
    """The rule graph of the default config, as Snakemake prints it (nothing is run)."""
    out = subprocess.run([sys.executable, "-m", "snakemake", "--rulegraph", "--quiet", "all", "-s",
                          str(repo / "Snakefile"), "--directory", str(repo)],
                         capture_output=True, text=True, check=True).stdout
    return out[out.index("digraph"):]


def main() -> None:
    dot_text = rulegraph_dot()
    (DOCS / "rulegraph.dot").write_text(dot_text)
    if shutil.which("dot") is None:
        sys.exit("docs/rulegraph.dot written; install Graphviz (`dot`) to render docs/rulegraph.svg")
    svg = subprocess.run(["dot", "-Tsvg"], input=dot_text, capture_output=True, text=True, check=True).stdout
    (DOCS / "rulegraph.svg").write_text(svg)
    print("wrote docs/rulegraph.dot and docs/rulegraph.svg")


if __name__ == "__main__":
    main()
