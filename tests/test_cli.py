"""`lion`'s own parser: a bad flag is reported with the usage of the command it was given to."""

from __future__ import annotations

import pytest

from lion_nnunet.cli import get_parser, main


@pytest.mark.parametrize(
    ("argv", "usage"),
    [
        (["predict", "-i", "x", "-o", "y", "-m", "fdg", "--bogus"], "usage: lion predict "),
        (["convert", "autopet", "--input", "x", "--dataset-id", "5", "--name", "N", "--tracer",
          "fdg", "--bogus"],
         "usage: lion convert autopet "),
        (["doctor", "--bogus"], "usage: lion doctor "),
    ],
)  # fmt: skip
def test_unknown_flag_shows_the_subcommands_usage(argv: list[str], usage: str, capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(usage) and "unrecognized arguments: --bogus" in err
    assert "usage: lion [-h]" not in err


def test_unknown_flag_before_the_command_shows_lions_usage(capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--bogus", "doctor"])
    assert exit_.value.code == 2 and capsys.readouterr().err.startswith("usage: lion [-h]")


def test_log_flags_after_the_command_count_as_before_it() -> None:
    parser = get_parser()
    for argv, quiet, verbose in ((["-q", "doctor"], True, 0), (["doctor", "-q"], True, 0),
                                 (["doctor"], False, 0), (["doctor", "-vv"], False, 2),
                                 (["-v", "doctor"], False, 1)):  # fmt: skip
        args = parser.parse_args(argv)
        assert (args.quiet, args.verbose) == (quiet, verbose), argv


def test_an_os_error_is_one_sentence_naming_the_file(tmp_path, capsys) -> None:
    """A file where a folder must go (as a full disk or a read-only share would): exit 1, the
    path and the cause in one line, no traceback."""
    from lion_nnunet.cli import main

    blocker = tmp_path / "blocker"
    blocker.write_text("not a folder")
    assert main(["phantoms", "--tracer", "fdg", "--cases", "1", "--out", str(blocker / "sub")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("lion phantoms: error: ") and str(blocker / "sub") in err
    assert "Not a directory" in err and "Traceback" not in err
