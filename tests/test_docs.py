"""Every ```bash block in README.md and docs/*.md runs, in reading order, on synthetic data.

Each page is a test of its own, in a sandbox folder with the nnU-Net folders inside it. A page
starts either from an empty sandbox or, where it continues the README's workflow (its commands
use the dataset, model or predictions the README made), from a copy of the sandbox in which
README.md's blocks ran: that sandbox is made once per run and shared by the pytest-xdist
workers (a file lock; the first worker that needs it builds it). Pages listed together run in
one sandbox, in order (metrics.md compares the predictions inference.md made). A workflow page's
opening blocks whose commands are README.md's, in README's order (compared after SHRINK, comments
dropped: training.md recaps README's fingerprint, plans, preprocessing and fold-0 training) are
not run again: their outputs are in the copied sandbox, and running them again on README's end
state would write the same (fingerprint, plans, preprocessed data, the same fold's training);
from the first block that differs, every block runs. Commands are
shrunk for a 2-core CPU by the SHRINK rules below (a GPU-sized training becomes a few CPU
iterations); that is the only change made to what the docs say. Blocks fenced as ```text or
```console are not run: use them only for commands that need what a test machine cannot have
(TotalSegmentator weights, several GPUs, a SLURM cluster) and say so next to them.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from filelock import FileLock

ROOT = Path(__file__).resolve().parents[1]
#: The page whose sandbox the "workflow" pages continue from.
WORKFLOW = "README.md"
#: Tests in reading order: the pages each runs (in one sandbox) and where it starts: "empty" or
#: "workflow" (a copy of the sandbox after README.md ran).
DOC_TESTS: dict[str, tuple[tuple[str, ...], str]] = {
    "README": ((WORKFLOW,), "empty"),
    "phantoms": (("docs/phantoms.md",), "empty"),
    "data-preparation": (("docs/data-preparation.md",), "workflow"),
    "training": (("docs/training.md",), "workflow"),
    "inference+metrics": (("docs/inference.md", "docs/metrics.md"), "workflow"),
    "fine-tuning": (("docs/fine-tuning.md",), "workflow"),
    "interactive": (("docs/interactive.md",), "workflow"),
    "cohort": (("docs/cohort.md",), "workflow"),
    "quickstart": (("docs/quickstart.md",), "empty"),
    "response": (("docs/response.md",), "empty"),
    "tom": (("docs/tom.md",), "empty"),
    "domain-shift": (("docs/domain-shift.md",), "empty"),
}
DOC_ORDER = [doc for docs, _ in DOC_TESTS.values() for doc in docs]
TINY_TRAINER = "nnUNetTrainer_LION_1ep_2it"
#: (pattern, replacement) applied to every line of a bash block, in order.
SHRINK: list[tuple[str, str]] = [
    (r"^\s*(make|pip install)\b.*$", ": skipped: installed already"),
    (r"-tr nnUNetTrainer_LION(?![\w])", f"-tr {TINY_TRAINER}"),
    # the click trainer (its demo schedule too) -> its tiny schedule, and its results folder
    (r"-tr nnUNetTrainer_LION_Clicks(_demo)?(?![\w])", "-tr nnUNetTrainer_LION_Clicks_1ep_4it"),
    (r"nnUNetTrainer_LION_Clicks(_demo)?__", "nnUNetTrainer_LION_Clicks_1ep_4it__"),
    (r"nnUNetTrainer_LION__", f"{TINY_TRAINER}__"),  # the results folder of that trainer
    (r"(--device|-device) cuda", r"\1 cpu"),
    (r"-f 0 1 2 3 4", "-f 0"),
    (r"^(\s*lion demo)\b(?!.*--cases)(.*)$", rf"\1 --cases 8 --trainer {TINY_TRAINER}\2"),
    (r"^(\s*lion plans install\b(?!.*--patch-size).*?)(\s*(#.*)?)$", r"\1 --patch-size 64 32 32\2"),
    # the network of the demo (DemoSettings): 8 first-stage features, one block per stage
    (r"^(\s*lion plans install\b(?!.*--base-features).*?)(\s*(#.*)?)$", r"\1 --base-features 8\2"),
    (
        r"^(\s*lion plans install\b(?!.*--blocks-per-stage).*?)(\s*(#.*)?)$",
        r"\1 --blocks-per-stage 1\2",
    ),
    # nnUNetv2_preprocess starts 4 workers unless told (nnUNet_def_n_proc does not apply), and
    # nnUNetv2_plan_and_preprocess 8 fingerprint workers (-npfp): each spawned worker imports
    # torch and nnU-Net (about 5 s of CPU) for a few ms of work on the docs' phantoms
    (r"^(\s*nnUNetv2_(plan_and_)?preprocess\b.*?\s-np) \d+\b", r"\1 1"),
    (r"^(\s*nnUNetv2_(plan_and_)?preprocess\b(?!.*-np\b).*?)(\s*(#.*)?)$", r"\1 -np 1\3"),
    (r"^(\s*nnUNetv2_plan_and_preprocess\b(?!.*-npfp\b).*?)(\s*(#.*)?)$", r"\1 -npfp 1\2"),
    # (after any VAR=value prefixes of the command)
    (r"^(\s*(?:\w+=\S*\s+)*nnUNetv2_train\b(?!.*-device).*?)(\s*(#.*)?)$", r"\1 -device cpu\2"),
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
    assert shrink("LION_FINAL_VALIDATION=0 nnUNetv2_train 5 3d_fullres all -tr X\n") == (
        "LION_FINAL_VALIDATION=0 nnUNetv2_train 5 3d_fullres all -tr X -device cpu\n"
    )
    install = shrink("lion plans install --dataset 5 --tracer fdg  # x\n")
    assert "--patch-size 64 32 32 --base-features 8 --blocks-per-stage 1  # x" in install
    assert shrink("lion plans install -d 5 --base-features 4\n").count("--base-features") == 1
    assert shrink("make demo\n").startswith(": skipped")
    assert shrink("nnUNetv2_preprocess -d 5 -c 3d_fullres -np 2  # x\n") == (
        "nnUNetv2_preprocess -d 5 -c 3d_fullres -np 1  # x\n"
    )
    assert shrink("nnUNetv2_plan_and_preprocess -d 5 -c 3d_fullres -np 2\n") == (
        "nnUNetv2_plan_and_preprocess -d 5 -c 3d_fullres -np 1 -npfp 1\n"
    )
    assert "-tr nnUNetTrainer_LION_noweights" in shrink("x -tr nnUNetTrainer_LION_noweights\n")
    assert shrink("x -tr nnUNetTrainer_LION_Clicks_demo\n").startswith(
        "x -tr nnUNetTrainer_LION_Clicks_1ep_4it"
    )
    assert "/nnUNetTrainer_LION_Clicks_1ep_4it__LIONPlans" in shrink(
        "m=r/nnUNetTrainer_LION_Clicks__LIONPlans\n"
    )


def test_only_opening_blocks_that_repeat_readme_are_skipped() -> None:
    ran = ["a x", "b y", "c z", "d"]
    assert already_ran(["b y", "c z"], ran, None) == 1
    assert already_ran(["d"], ran, 3) == 3 and already_ran(["d"], ran, 2) is None
    assert already_ran(["b y", "d"], ran, None) is None  # not in README's order
    assert already_ran([], ran, None) is None
    # docs/training.md opens with README's fingerprint, plans and preprocessing, then training
    readme = workflow_commands()
    blocks = bash_blocks((ROOT / "docs/training.md").read_text())
    first = [c for c in map(_command, shrink(blocks[0]).splitlines()) if c]
    at = already_ran(first, readme, None)
    assert at is not None and first[0].startswith("nnUNetv2_extract_fingerprint")
    second = [c for c in map(_command, shrink(blocks[1]).splitlines()) if c]
    assert already_ran(second, readme, at + len(first)) is not None
    fourth = [c for c in map(_command, shrink(blocks[3]).splitlines()) if c]
    assert already_ran(fourth, readme, None) is None  # fold 1 on new splits: runs


def _environment(sandbox: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    # the same folders README.md exports, so every page sees the same nnU-Net tree
    for var, sub in (("nnUNet_raw", "raw"), ("nnUNet_preprocessed", "preprocessed"),
                     ("nnUNet_results", "results")):  # fmt: skip
        env[var] = str(sandbox / "nnunet" / sub)
        Path(env[var]).mkdir(parents=True, exist_ok=True)
    # nnUNet_compile, nnUNet_def_n_proc, nnUNet_n_proc_DA: as tests/conftest.py set them
    return env


def _command(line: str) -> str:
    """A shrunk line without its comment and spacing, for comparing commands."""
    return " ".join(line.split("  #")[0].split())


def already_ran(lines: list[str], ran: list[str], at: int | None) -> int | None:
    """Where in ``ran`` the commands ``lines`` run word for word (from index ``at`` when given,
    else anywhere); None when they do not."""
    n = len(lines)
    starts = [at] if at is not None else range(len(ran) - n + 1)
    return next((j for j in starts if n and ran[j : j + n] == lines), None)


def run_pages(docs: tuple[str, ...], sandbox: Path, ran: list[str] | None = None) -> list[str]:
    """Run every bash block of ``docs`` in ``sandbox``; the timing lines, or a failure.

    ``ran``: the command lines that made ``sandbox`` (README.md's, for a workflow page, as
    :func:`workflow_commands` lists them): the page's opening blocks whose commands are a run of
    consecutive lines of ``ran`` (after SHRINK, comments dropped) are not run again, their
    outputs being in the copied sandbox already; each such block continues where the previous one
    stopped in ``ran``; from the first block that differs, every block runs."""
    env = _environment(sandbox)
    said = []
    ran, at = list(ran or []), None
    for doc in docs:
        for i, block in enumerate(bash_blocks((ROOT / doc).read_text())):
            lines = [c for c in map(_command, shrink(block).splitlines()) if c]
            found = already_ran(lines, ran, at)
            if found is not None:
                at = found + len(lines)
                said.append(f"    0.0 s  {doc} block {i + 1}: ran by {WORKFLOW} in this sandbox")
                continue
            ran = []  # from here on, everything runs
            script = "set -euo pipefail\n" + shrink(block)
            started = time.perf_counter()
            proc = subprocess.run(
                ["bash", "-c", script], cwd=sandbox, env=env, capture_output=True, text=True,
                stdin=subprocess.DEVNULL,
            )  # fmt: skip
            took = time.perf_counter() - started
            said.append(f"{took:7.1f} s  {doc} block {i + 1}: {block.strip().splitlines()[0][:70]}")
            if proc.returncode != 0:
                pytest.fail(
                    f"{doc}, bash block {i + 1} failed (exit {proc.returncode}):\n{script}\n"
                    f"--- output (tail) ---\n{(proc.stdout + proc.stderr)[-3000:]}"
                )
    return said


@pytest.fixture(scope="session")
def workflow_sandbox(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Path:
    """The sandbox after README.md's blocks ran: built once per run, shared by xdist workers."""
    root = tmp_path_factory.getbasetemp()
    root = root if worker_id == "master" else root.parent  # the folder all workers share
    sandbox, failed = root / "docs_workflow", root / "docs_workflow.failed"
    with FileLock(str(root / "docs_workflow.lock")):
        if not (sandbox / ".built").is_file() and not failed.is_file():
            shutil.rmtree(sandbox, ignore_errors=True)
            sandbox.mkdir()
            try:
                timings = run_pages((WORKFLOW,), sandbox)
            except pytest.fail.Exception as e:
                failed.write_text(str(e))
                raise
            (sandbox / ".built").write_text("\n".join(timings) + "\n")
    if failed.is_file():
        pytest.fail(
            f"README.md's workflow failed, so this page cannot start:\n{failed.read_text()}"
        )
    return sandbox


@pytest.mark.slow
@pytest.mark.parametrize("name", list(DOC_TESTS))
def test_docs_commands_run(name: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    docs, start = DOC_TESTS[name]
    assert any(bash_blocks((ROOT / d).read_text()) for d in docs), f"{docs}: no bash block"
    if docs == (WORKFLOW,):
        print((request.getfixturevalue("workflow_sandbox") / ".built").read_text())
        return
    sandbox = tmp_path / "sandbox"
    ran = None
    if start == "workflow":
        built = request.getfixturevalue("workflow_sandbox")
        shutil.copytree(built, sandbox, symlinks=True)
        ran = workflow_commands()
    else:
        sandbox.mkdir()
    print("\n".join(run_pages(docs, sandbox, ran)))


def workflow_commands() -> list[str]:
    """README.md's command lines, shrunk, comments dropped, in order (exports included: a page's
    blocks match a run of consecutive lines)."""
    blocks = bash_blocks((ROOT / WORKFLOW).read_text())
    return [c for b in blocks for c in map(_command, shrink(b).splitlines()) if c]


def test_every_page_with_commands_is_tested() -> None:
    assert len(DOC_ORDER) == len(set(DOC_ORDER))
    unlisted = {p.relative_to(ROOT).as_posix() for p in (ROOT / "docs").glob("*.md")} - set(
        DOC_ORDER
    )
    assert not [d for d in unlisted if bash_blocks((ROOT / d).read_text())], (
        f"docs with bash blocks missing from DOC_TESTS: {sorted(unlisted)}"
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
