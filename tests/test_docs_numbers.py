"""Every number the docs report from a run appears in a result stored in benchmarks/results/.

docs/benchmarks.md and the generated blocks of docs/reproducing.md must equal what
benchmarks/make_docs.py renders from the stored results, and every number on them (a date, a
count, a rounded ratio) must be found in a stored summary.json or raw CSV, allowing the rounding
the page shows. The matcher here is independent of make_docs: it reads the files itself.
"""

from __future__ import annotations

import csv
import json
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
#: identifiers that contain digits (x86_64, cc3d, nnUNetv2_predict, fold_0): not numbers
IDENTIFIER = re.compile(r"\b[A-Za-z_][A-Za-z0-9_]*")
NUMBER = re.compile(r"\d+(?:\.\d+)?")
FLOAT = re.compile(r"[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?|[-+]?(nan|inf)", re.I)


@pytest.fixture(scope="module")
def make_docs():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import make_docs

        yield make_docs
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))


def numbers_in(text: str) -> list[str]:
    """The numbers of a text as written (links' targets and identifiers left out)."""
    text = re.sub(r"\]\([^)]*\)", "]", text)  # link targets are paths, not reported numbers
    text = re.sub(r"<!--.*?-->", "", text, flags=re.S)
    return NUMBER.findall(IDENTIFIER.sub(" ", text))


def stored_values() -> list[float]:
    """Every number in every stored result: JSON values and keys, CSV cells, digits in strings."""
    values: list[float] = []

    def add_text(text: str) -> None:
        if FLOAT.fullmatch(text.strip()):
            values.append(float(text))
        # also the digits as a page shows them (a commit such as 733e061 reads as 733 and 061)
        values.extend(float(n) for n in numbers_in(text))

    def walk(node: object) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                add_text(str(key))
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)
        elif isinstance(node, bool) or node is None:
            return
        elif isinstance(node, int | float):
            values.append(float(node))
        else:
            add_text(str(node))

    for path in sorted(RESULTS.rglob("*.json")):
        walk(json.loads(path.read_text()))
    for path in sorted(RESULTS.rglob("*.csv")):
        with path.open(newline="") as f:
            for row in csv.reader(f):
                for cell in row:
                    add_text(cell)
    return [v for v in values if v == v]  # NaN matches nothing


def is_stored(number: str, values: list[float]) -> bool:
    """``number`` as written equals a stored value rounded to its decimals (sign aside)."""
    decimals = len(number.split(".")[1]) if "." in number else 0
    shown = float(number)
    half = 0.5 * 10**-decimals + 1e-9
    return any(abs(abs(v) - shown) <= half for v in values)


def generated_text(make_docs) -> str:
    blocks = make_docs.generated_blocks((ROOT / "docs" / "reproducing.md").read_text())
    assert len(blocks) == len(make_docs.BLOCKS), "a generated block of reproducing.md is missing"
    return (ROOT / "docs" / "benchmarks.md").read_text() + "\n".join(blocks)


def test_pages_are_what_the_stored_results_render(make_docs) -> None:
    assert (ROOT / "docs" / "benchmarks.md").read_text() == make_docs.render_benchmarks(), (
        "docs/benchmarks.md is stale: python benchmarks/make_docs.py"
    )
    text = (ROOT / "docs" / "reproducing.md").read_text()
    assert text == make_docs.render_reproducing(text), (
        "docs/reproducing.md's generated blocks are stale: python benchmarks/make_docs.py"
    )


def test_every_number_in_the_generated_docs_is_in_a_stored_result(make_docs) -> None:
    values = stored_values()
    numbers = numbers_in(generated_text(make_docs))
    assert len(values) > 100 and len(numbers) > 50  # results are stored and the pages show them
    missing = sorted({n for n in numbers if not is_stored(n, values)})
    assert missing == [], f"numbers on the pages that no stored result holds: {missing}"


def test_the_check_catches_a_typed_number() -> None:
    """The matcher by itself: a stored value is found at the page's rounding, a typed one is not."""
    values = [0.58812, 13.0, 2026.0]
    assert numbers_in("median Dice 0.588 on 13 cases of x86_64 cc3d, see [a](runs/7.csv)") == [
        "0.588",
        "13",
    ]
    assert is_stored("0.588", values) and is_stored("0.59", values) and is_stored("13", values)
    assert not is_stored("0.587", values) and not is_stored("0.61", values)
    assert not is_stored("101.6", values)
