"""docs/bad-input.md and docs/security.md are written by hand; these tests keep them honest.

Every table row must name at least one test (``path.py::test_name`` or
``path.py::test_name[id]``, relative to tests/), every named test must exist (with that
parameter id), and every row of the hardening tables must be named on its page."""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import Any

import pytest

from tests.hardening import (
    config_mistakes,
    test_cli_bad_input,
    test_grpc_bad_input,
    test_security,
    test_streams,
)

DOCS = Path(__file__).parents[2] / "docs"
REF = re.compile(r"`((?:[a-z_]+/)?test_[a-z0-9_]+\.py)::(test_[a-z0-9_]+)(?:\[([^\]`]+)\])?`")
CONFIG_TEST = "hardening/test_config_errors.py::test_config_mistake_stops_start_up"


def _rows(text: str) -> list[str]:
    """Table body rows (not headers or separators)."""
    lines = [line for line in text.splitlines() if line.startswith("|")]
    return [line for i, line in enumerate(lines)
            if not set(line) <= set("|- ") and not (i + 1 < len(lines)
                                                    and set(lines[i + 1]) <= set("|- "))]


def _param_ids(fn: Any) -> set[str]:
    ids: set[str] = set()
    for mark in getattr(fn, "pytestmark", []):
        if mark.name == "parametrize":
            given = mark.kwargs.get("ids")
            ids.update(str(i) for i in (given if given is not None else mark.args[1]))
    return ids


def _references(text: str) -> list[tuple[str, str, str | None]]:
    refs = [(m[1], m[2], m[3]) for m in REF.finditer(text)]
    if CONFIG_TEST in text:  # the configuration table names its cases by id alone
        section = text.split("## Every configuration error", 1)[1]
        for row in _rows(section):
            refs.append(("hardening/test_config_errors.py", "test_config_mistake_stops_start_up",
                         row.split("`")[1]))
    return refs


@pytest.mark.parametrize("page", ["bad-input.md", "security.md"])
def test_every_row_names_a_test_that_exists(page: str) -> None:
    text = (DOCS / page).read_text()
    for row in _rows(text):
        assert REF.search(row) or (page == "security.md" and row.startswith("| `")), row
    for path, name, param in _references(text):
        module = importlib.import_module("tests." + path[:-3].replace("/", "."))
        fn = getattr(module, name, None)
        assert fn is not None, f"{path}::{name} does not exist"
        if param is not None:
            assert param in _param_ids(fn), f"{path}::{name} has no case [{param}]"


def _named(page: str) -> set[tuple[str, str | None]]:
    return {(name, param) for _, name, param in _references((DOCS / page).read_text())}


def test_bad_input_page_lists_every_row() -> None:
    named = _named("bad-input.md")
    expected: set[tuple[str, str | None]] = {
        ("test_bad_key_everywhere", row) for row in test_grpc_bad_input.BAD_KEYS}
    expected |= {("test_bad_request", row) for row in test_grpc_bad_input.ROWS}
    expected |= {("test_ds_bad_input", row) for row in test_cli_bad_input.ROWS}
    for module in (test_grpc_bad_input, test_streams, test_cli_bad_input):
        expected |= {(name, None) for name in dir(module)
                     if name.startswith("test_") and not _param_ids(getattr(module, name))}
    assert expected - named == set()


def test_security_page_lists_every_row() -> None:
    named = _named("security.md")
    expected: set[tuple[str, str | None]] = {
        ("test_config_mistake_stops_start_up", row) for row in config_mistakes.MISTAKES}
    expected |= {(name, None) for name in dir(test_security) if name.startswith("test_")}
    expected |= {("test_config_mistakes_through_real_processes", None)}
    covered = {name for name, _ in named}
    missing = {(n, p) for n, p in expected if (n, p) not in named and not
               (p is None and n in covered)}
    assert missing == set()
