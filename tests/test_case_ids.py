"""The case-id rule: non-ASCII names kept (NFC), always a safe folder name."""

from __future__ import annotations

import unicodedata

import pytest

from lion_nnunet.case_ids import SAFE_CASE_ID, case_id_of_name, sanitize_case_id


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("PT_müller", "PT_müller"),
        (unicodedata.normalize("NFD", "PT_müller"), "PT_müller"),  # macOS spelling -> NFC
        ("Øster_李明 2019", "Øster_李明-2019"),
        ("fdg_0168f65af8_04-04-2003-NA-PET-CT Ganzkoerper  primaer mit KM-82224",
         "fdg_0168f65af8_04-04-2003-NA-PET-CT-Ganzkoerper-primaer-mit-KM-82224"),
        ("../etc/passwd", "etc-passwd"),
        ("a\\b:c\x00d\te\u200bf", "a-b-c-d-e-f"),
    ],
)  # fmt: skip
def test_sanitize_keeps_letters_of_any_script(name: str, expected: str) -> None:
    got = sanitize_case_id(name)
    assert got == expected and case_id_of_name(name) == expected
    assert unicodedata.is_normalized("NFC", got)
    assert SAFE_CASE_ID.match(got)
    assert not set(got) & {"/", "\\", ":", " ", "\x00", "\t"}
