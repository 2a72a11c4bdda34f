"""Every run-backed number in README.md and docs/ names its stored source and shows that value.

A number from a run is either rendered by benchmarks/make_docs.py (docs/benchmarks.md and the
generated blocks of other pages, which must equal what it renders) or written as a span that
names its source, ``<!-- n: FILE KEY.PATH [SPEC] -->shown<!-- /n -->``: FILE under
benchmarks/results/, a dotted key path (list indices as numbers, a CSV as its list of rows), and
a Python format spec. The span check here has its own parser and reader, independent of
make_docs: each span must show ``format(stored value, SPEC)`` at exactly that key.
"""

from __future__ import annotations

import csv
import json
import re
import shlex
import shutil
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
SPAN = re.compile(r"<!-- n: ([^\n]*?) -->([^\n]*?)<!-- /n -->")
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


@pytest.fixture(scope="module")
def make_docs():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import make_docs

        yield make_docs
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))


def stored(results: Path, file: str, key: str) -> object:
    """The value at ``key`` of ``results/file``; KeyError naming what is missing."""
    path = results / file
    if not path.is_file():
        raise KeyError(f"no file benchmarks/results/{file}")
    if path.suffix == ".csv":
        with path.open(newline="") as f:
            node: object = list(csv.DictReader(f))
    else:
        node = json.loads(path.read_text())
    for part in key.split("."):
        if isinstance(node, list):
            node = node[int(part)] if part.isdigit() and int(part) < len(node) else KeyError
        else:
            node = node.get(part, KeyError) if isinstance(node, dict) else KeyError
        if node is KeyError:
            raise KeyError(f"benchmarks/results/{file} has no key {key}")
    if isinstance(node, str) and path.suffix == ".csv":  # a CSV cell holds text: its number
        if re.fullmatch(r"-?\d+", node):
            return int(node)
        try:
            return float(node)
        except ValueError:
            return node
    return node


def spans(text: str) -> list[tuple[int, str, str, str, str]]:
    """(line, file, key, spec, shown) of every span in ``text``."""
    found = []
    for m in SPAN.finditer(text):
        file, key, *spec = shlex.split(m[1])
        assert len(spec) <= 1, f"span {m[0]!r}: FILE KEY [SPEC] expected"
        found.append((text.count("\n", 0, m.start()) + 1, file, key, "".join(spec), m[2]))
    return found


def span_problems(text: str, page: str, results: Path = RESULTS) -> list[str]:
    """What is wrong with the spans of a page: a missing source, or a shown number that differs."""
    problems = []
    if text.count("<!-- n:") != len(SPAN.findall(text)) or text.count("<!-- /n -->") != len(
        SPAN.findall(text)
    ):
        problems.append(f"{page}: a span is not closed on its own line")
    for line, file, key, spec, shown in spans(text):
        try:
            value = stored(results, file, key)
        except KeyError as e:
            problems.append(f"{page}:{line}: {e.args[0]}")
            continue
        try:
            right = value is not None and format(value, spec) == shown
        except (TypeError, ValueError):  # a spec that does not fit the value, e.g. .1f on text
            right = False
        if not right:
            problems.append(f"{page}:{line}: shows {shown!r}, {file} {key} is {value!r}")
    return problems


def test_every_span_shows_exactly_its_stored_value() -> None:
    problems = [p for page in PAGES for p in span_problems(page.read_text(), page.name)]
    assert problems == [], "stale or untraceable numbers (python benchmarks/make_docs.py):\n" + (
        "\n".join(problems)
    )


def test_pages_are_what_the_stored_results_render(make_docs) -> None:
    assert make_docs.pages() == PAGES
    stale = [p.name for p in PAGES if p.read_text() != make_docs.render_page(p)]
    assert stale == [], f"stale pages: {stale}; run python benchmarks/make_docs.py"
    blocks = make_docs.generated_blocks((ROOT / "docs" / "reproducing.md").read_text())
    assert len(blocks) == 2, "a generated block of reproducing.md (demo, organ_context) is gone"
    readme = make_docs.generated_blocks((ROOT / "README.md").read_text())
    assert len(readme) == 1, "README.md's generated block (readme: measured times) is gone"


def changed(value: object) -> object:
    """Another stored value: a bool negated, a number (also a CSV cell's) x3 + 7, text extended."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int | float):
        return value * 3 + 7
    try:
        return str(float(value) * 3 + 7)
    except ValueError:
        return f"{value} (changed)"


def test_a_changed_stored_value_fails_the_check(tmp_path, make_docs) -> None:
    """Each span of the docs, with its stored value changed in a copy of the results: caught."""
    results = tmp_path / "results"
    shutil.copytree(RESULTS, results)
    found = [(page, s) for page in PAGES for s in spans(page.read_text())]
    assert len(found) >= 3, "the docs have run-backed numbers as spans"
    for page, (line, file, key, _spec, _shown) in found:
        path, original = results / file, (results / file).read_text()
        if path.suffix == ".csv":
            with path.open(newline="") as f:
                rows = list(csv.DictReader(f))
            row, column = key.split(".")
            rows[int(row)][column] = changed(rows[int(row)][column])
            with path.open("w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=list(rows[0]))
                writer.writeheader()
                writer.writerows(rows)
        else:
            data = json.loads(original)
            *parents, last = [int(k) if k.isdigit() else k for k in key.split(".")]
            node = data
            for k in parents:
                node = node[k]
            node[last] = changed(node[last])
            path.write_text(json.dumps(data))
        text = page.read_text()
        assert any(f"{page.name}:{line}:" in p for p in span_problems(text, page.name, results))
        assert make_docs.render_spans(text, page.name, results) != text
        path.write_text(original)
    assert all(span_problems(p.read_text(), p.name, results) == [] for p in PAGES)  # restored


PAGE = """Training took <!-- n: run/summary.json timing.minutes .1f -->12.3<!-- /n --> min, Dice
<!-- n: run/rows.csv 1.dice .2f -->0.71<!-- /n --> <!-- n: run/summary.json cases -->40<!-- /n -->
ratio <!-- n: run/summary.json "arms.two workers" .2f -->1.50<!-- /n --> on
<!-- n: run/summary.json runs.1.seed -->3<!-- /n -->.
"""


def small_results(root: Path) -> Path:
    (root / "run").mkdir(parents=True)
    summary = {"timing": {"minutes": 12.34}, "cases": 40, "arms": {"two workers": 1.5},
               "runs": [{"seed": 0}, {"seed": 3}]}  # fmt: skip
    (root / "run" / "summary.json").write_text(json.dumps(summary))
    (root / "run" / "rows.csv").write_text("model,dice\norgans,0.59\ntumor_only,0.7081\n")
    return root


def test_the_span_check_on_a_small_page(tmp_path, make_docs) -> None:
    """By hand: 12.34 at .1f is "12.3", 40 "40", row 1's 0.7081 at .2f "0.71", 1.5 "1.50", the
    second run's seed "3"; a wrong, unknown or unclosed span is named with page and line."""
    results = small_results(tmp_path)
    assert span_problems(PAGE, "p.md", results) == []
    assert make_docs.render_spans(PAGE, "p.md", results) == PAGE
    typed = PAGE.replace("-->0.71<", "-->0.72<")
    assert span_problems(typed, "p.md", results) == [
        "p.md:2: shows '0.72', run/rows.csv 1.dice is 0.7081"
    ]
    assert make_docs.render_spans(typed, "p.md", results) == PAGE  # make_docs puts it right
    unknown = PAGE.replace('"arms.two workers"', "arms.two")
    assert span_problems(unknown, "p.md", results) == [
        "p.md:3: benchmarks/results/run/summary.json has no key arms.two"
    ]
    with pytest.raises(make_docs.SourceError, match=r"p.md:3: .*has no 'two' in arms"):
        make_docs.render_spans(unknown, "p.md", results)
    gone = PAGE.replace("run/rows.csv", "run/missing.csv")
    assert span_problems(gone, "p.md", results) == [
        "p.md:2: no file benchmarks/results/run/missing.csv"
    ]
    with pytest.raises(make_docs.SourceError, match=r"p.md:2: .*run/missing.csv does not exist"):
        make_docs.render_spans(gone, "p.md", results)
    unclosed = PAGE.replace("1.50<!-- /n -->", "1.50")
    assert span_problems(unclosed, "p.md", results) != []
    with pytest.raises(make_docs.SourceError, match=r"p.md:3: a span must be"):
        make_docs.render_spans(unclosed, "p.md", results)


def test_make_docs_check_names_a_missing_source(tmp_path, make_docs, monkeypatch, capsys) -> None:
    """`make_docs.py --check` on a page whose span names a missing key: exit 1, page and line."""
    page = tmp_path / "docs" / "x.md"
    page.parent.mkdir()
    page.write_text("a\nb <!-- n: demo/summary.json no_such_key .1f -->7.4<!-- /n -->\n")
    monkeypatch.setattr(make_docs, "pages", lambda: [page])
    monkeypatch.setattr(make_docs, "ROOT", tmp_path)
    assert make_docs.main(["--check"]) == 1
    err = capsys.readouterr().err
    assert "docs/x.md:2:" in err and "demo/summary.json has no 'no_such_key'" in err


def test_a_block_whose_stored_result_lacks_a_key_names_page_and_line(make_docs, monkeypatch):
    summary = json.loads((RESULTS / "demo" / "summary.json").read_text())
    del summary["trainer"]
    real = make_docs.load
    monkeypatch.setattr(make_docs, "load", lambda name: summary if name == "demo" else real(name))
    page = ROOT / "docs" / "reproducing.md"
    line = page.read_text().splitlines().index(make_docs.BEGIN.format(name="demo")) + 1
    with pytest.raises(make_docs.SourceError) as e:
        make_docs.render_page(page)
    assert str(e.value) == (
        f"docs/reproducing.md:{line}: generated block 'demo': the stored result has no 'trainer'"
    )


def test_the_demo_verdict_is_the_stored_scores_verdict() -> None:
    """reproducing.md's demo verdict says "not decided" exactly where the stored per-case scores'
    paired bootstrap CI contains 0 (a CI computed here, by hand from the CSVs)."""
    import numpy as np

    text = (ROOT / "docs" / "reproducing.md").read_text()
    block = text.split("generated by benchmarks/make_docs.py: demo", 1)[1].split("end generated")[0]
    scores = RESULTS / "demo"
    if (scores / "scores.csv").is_file():
        table = pd.read_csv(scores / "scores.csv")
        seed = json.loads((scores / "summary.json").read_text())["settings"]["seed"]
        table = table[table["seed"].astype(str) == str(seed)]
        o, t = (table[table["model"] == m].set_index("case_id") for m in ("organs", "tumor_only"))
    else:
        o, t = (pd.read_csv(scores / f"scores_{m}.csv").set_index("case_id")
                for m in ("organs", "tumor_only"))  # fmt: skip
    t = t.loc[o.index]
    tumor = o["has_tumor"].astype(str) == "True"
    fp = "fp_at_hot_organ_ml"
    for measure, d in (
        ("Dice", o.loc[tumor, "dice"] - t.loc[tumor, "dice"]),
        ("FP at hot organs", o[fp] - t[fp]),
    ):
        d = d.to_numpy()
        d = d[np.isfinite(d)]
        rng = np.random.default_rng(0)  # the rule's resampling: 5000 medians of resampled cases
        boots = np.median(d[rng.integers(0, len(d), (5000, len(d)))], axis=1)
        low, high = np.percentile(boots, [2.5, 97.5])
        line = next(ln for ln in block.splitlines() if ln.strip().startswith(measure))
        assert ("not decided" in line) == (low <= 0 <= high), (measure, low, high, line)
        assert f"CI {low:+.2f} to {high:+.2f}" in line
