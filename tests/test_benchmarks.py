"""Every rule records its job's cost: a `benchmark:` file under benchmarks/{rule}/, which
bench/rule_times.py sums per rule (jobs, wall time, CPU time, largest peak RSS)."""
from __future__ import annotations

import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
import rule_times  # noqa: E402


def _rules():
    """(file, rule name, its indentation, the rule's text) for every rule of workflow/rules/*.smk."""
    for smk in sorted((REPO / "workflow" / "rules").glob("*.smk")):
        text = smk.read_text()
        # rules inside an `if` block are indented: their directives sit one level deeper
        starts = [(m.start(), m.group(1), m.group(2)) for m in re.finditer(r"^( *)rule (\w+):", text, flags=re.M)]
        for (start, indent, name), (end, _, _) in zip(starts, starts[1:] + [(len(text), "", "")]):
            yield smk.name, name, indent, text[start:end]


def test_every_rule_has_a_benchmark_file_of_its_own():
    rules = list(_rules())
    assert len(rules) >= 40
    missing = [f"{f}: {name}" for f, name, indent, body in rules
               if not re.search(rf'^{indent}    benchmark:\n{indent}        "benchmarks/{name}/[^"]+\.tsv",', body,
                                flags=re.M)]
    assert not missing, f"rules without benchmarks/<rule>/...tsv: {missing}"


def test_rule_times_sums_each_rule(tmp_path):
    head = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
    for rule, job, s, rss, cpu in [("train", "a", 2.5, 300.0, 4.0), ("train", "b", 1.5, 500.0, 2.0),
                                   ("plot", "x", 0.5, "NA", 0.4)]:
        path = tmp_path / "benchmarks" / rule / f"{job}.tsv"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(head + f"{s}\t0:00:0{s}\t{rss}\t1\t1\t1\t0\t0\t50\t{cpu}\n")
    rows = rule_times.table(rule_times.read_benchmarks(tmp_path))
    assert rows[0] == ("train", 2, 4.0, 6.0, 500.0)
    assert rows[1] == ("plot", 1, 0.5, 0.4, 0.0)
    assert rows[-1] == ("total", 3, 4.5, 6.4, 500.0)
    assert "| train | 2 | 4.0 | 6.0 | 500 |" in rule_times.render(rows, markdown=True)
