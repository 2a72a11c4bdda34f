"""Every ```bash block in README.md and docs/*.md runs, in reading order, on synthetic data.

The pages are run in reading order in two chains (DOC_CHAINS), each in one sandbox folder
(later pages of a chain may use what earlier pages made, as a reader would), with the nnU-Net
folders inside the sandbox. Commands are shrunk for a 2-core CPU by the SHRINK rules below (a
GPU-sized training becomes a few CPU iterations); that is the only change made to what the docs
say. Blocks fenced as ```text or ```console are not run: use them only for commands that need
what a test machine cannot have (TotalSegmentator weights, several GPUs, a SLURM cluster) and
say so next to them.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: The pages in reading order, in two chains that run side by side, each in its own sandbox:
#: later pages of a chain may use what earlier pages of it made, as a reader would.
DOC_CHAINS = {
    "workflow": [
        "README.md",
        "docs/phantoms.md",
        "docs/data-preparation.md",
        "docs/training.md",
        "docs/inference.md",
        "docs/cohort.md",
        "docs/metrics.md",
        "docs/reproducing.md",
        "docs/benchmarks.md",
    ],
    "standalone": [
        "docs/quickstart.md",
        "docs/response.md",
        "docs/tom.md",
        "docs/domain-shift.md",
    ],
}
DOC_ORDER = [doc for chain in DOC_CHAINS.values() for doc in chain]
TINY_TRAINER = "nnUNetTrainer_LION_1ep_2it"
#: (pattern, replacement) applied to every line of a bash block, in order.
SHRINK: list[tuple[str, str]] = [
    (r"^\s*(make|pip install)\b.*$", ": skipped: installed already"),
    (r"-tr nnUNetTrainer_LION(?![\w])", f"-tr {TINY_TRAINER}"),
    (r"nnUNetTrainer_LION__", f"{TINY_TRAINER}__"),  # the results folder of that trainer
    (r"(--device|-device) cuda", r"\1 cpu"),
    (r"-f 0 1 2 3 4", "-f 0"),
    (r"^(\s*lion demo)\b(?!.*--cases)(.*)$", rf"\1 --cases 8 --trainer {TINY_TRAINER}\2"),
    (r"^(\s*lion plans install\b(?!.*--patch-size).*?)(\s*(#.*)?)$", r"\1 --patch-size 64 32 32\2"),
    (r"^(\s*nnUNetv2_train\b(?!.*-device).*?)(\s*(#.*)?)$", r"\1 -device cpu\2"),
]


def bash_blocks(text: str) -> list[str]:
    """The contents of the ```bash fenced blocks of a markdown text."""
    return re.findall(r"^```bash[ \t]*\n(.*?)^```", text, flags=re.S | re.M)


def shrink(script: str) -> str:
    """Apply SHRINK to every line (continuation lines are joined first)."""
    script = re.sub(r"\\\n\s*", " ", script)
    lines = []
    for line in script.splitlines():
        for pattern, repl in SHRINK:
            line = re.sub(pattern, repl, line)
        lines.append(line)
    return "\n".join(lines) + "\n"


def test_shrink_rules() -> None:
    assert shrink("nnUNetv2_train 501 3d_fullres 0 -p LIONPlans -tr nnUNetTrainer_LION\n") == (
        f"nnUNetv2_train 501 3d_fullres 0 -p LIONPlans -tr {TINY_TRAINER} -device cpu\n"
    )
    assert "--patch-size 64 32 32" in shrink("lion plans install --dataset 5 --tracer fdg  # x\n")
    assert shrink("make demo\n").startswith(": skipped")
    assert "-tr nnUNetTrainer_LION_noweights" in shrink("x -tr nnUNetTrainer_LION_noweights\n")


@pytest.mark.slow
@pytest.mark.parametrize(
    "chain",
    [pytest.param(name, marks=pytest.mark.xdist_group(f"docs_{name}")) for name in DOC_CHAINS],
)
def test_docs_commands_run(chain: str, tmp_path: Path) -> None:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    # the same folders README.md exports, so every page sees the same nnU-Net tree
    for var, sub in (("nnUNet_raw", "raw"), ("nnUNet_preprocessed", "preprocessed"),
                     ("nnUNet_results", "results")):  # fmt: skip
        env[var] = str(tmp_path / "nnunet" / sub)
        Path(env[var]).mkdir(parents=True)
    env.update(nnUNet_compile="false", nnUNet_n_proc_DA="2", nnUNet_def_n_proc="2")
    ran = 0
    for doc in DOC_CHAINS[chain]:
        path = ROOT / doc
        if not path.is_file():
            continue
        for i, block in enumerate(bash_blocks(path.read_text())):
            script = "set -euo pipefail\n" + shrink(block)
            started = time.perf_counter()
            proc = subprocess.run(
                ["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                stdin=subprocess.DEVNULL,
            )  # fmt: skip
            ran += 1
            took = time.perf_counter() - started
            print(f"{took:7.1f} s  {doc} block {i + 1}: {block.strip().splitlines()[0][:70]}")
            assert proc.returncode == 0, (
                f"{doc}, bash block {i + 1} failed (exit {proc.returncode}):\n{script}\n"
                f"--- output (tail) ---\n{(proc.stdout + proc.stderr)[-3000:]}"
            )
    assert ran > 0


def test_every_page_with_commands_is_in_a_chain() -> None:
    assert len(DOC_ORDER) == len(set(DOC_ORDER))
    unlisted = {p.relative_to(ROOT).as_posix() for p in (ROOT / "docs").glob("*.md")} - set(
        DOC_ORDER
    )
    assert not [d for d in unlisted if bash_blocks((ROOT / d).read_text())], (
        f"docs with bash blocks missing from DOC_CHAINS: {sorted(unlisted)}"
    )


def test_docs_name_no_file_outside_the_project() -> None:
    """A `../path` in README.md or docs/*.md (a link, or a command run from the page's folder)
    must stay inside the project and exist: users have the project, nothing beside it."""
    bad = []
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for ref in re.findall(r"(?<![.\w])\.\./[\w./-]*\w", page.read_text(encoding="utf-8")):
            target = (page.parent / ref).resolve()
            if not target.is_relative_to(ROOT) or not target.exists():
                bad.append(f"{page.relative_to(ROOT)}: {ref}")
    assert not bad, bad
