"""The docs against the code: each command's flags against the flags tables of its page in docs/, and
every relative link of the Markdown pages against the files and headings it points at."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from kubedns_py.cli import build_parser
from probe.config import add_probe_flags
from tests.support.paths import ROOT

DOCS = ROOT / "docs"
# The page holding each command's flags table(s).
PAGES = {
    "serve": DOCS / "serve.md",
    "cache": DOCS / "cache.md",
    "nodelocal": DOCS / "nodelocal.md",
    "up": DOCS / "development.md",
    "kubedns-probe": DOCS / "probe.md",
}
MARKDOWN = [
    ROOT / "README.md",
    ROOT / "deploy" / "README.md",
    ROOT / "tests" / "README.md",
    *sorted(DOCS.glob("*.md")),
]

CODE_SPAN = re.compile(r"`([^`\n]+)`")
# A flag inside a code span: `--dns-port`, `-localip`, `--server=/domain/ip#port`, `--allow-from CIDR`,
# `--autopath[=DOMAIN]`, `-k`; not the dashes inside a name (`kube-dns`, `a-b-c-d`).
FLAG = re.compile(r"(?<![\w/.-])(-{1,2}[A-Za-z][A-Za-z0-9_-]*)")
LINK = re.compile(r"\]\(([^)\s]+)\)")


def parsers() -> dict[str, argparse.ArgumentParser]:
    kubedns_py = build_parser()
    (commands,) = (a for a in kubedns_py._actions if isinstance(a, argparse._SubParsersAction))
    found: dict[str, argparse.ArgumentParser] = dict(commands.choices)
    probe = argparse.ArgumentParser(prog="kubedns-probe", allow_abbrev=False)
    add_probe_flags(probe)
    found["kubedns-probe"] = probe
    return found


def canonical(flag: str) -> str:
    """A flag as the commands read it (``flags.normalize_argv``): Go's single-dash long flags take two
    dashes, underscores are dashes (``-log_dir`` is ``--log-dir``); ``-k`` stays short."""
    if not flag.startswith("--") and len(flag) > 2:
        flag = "-" + flag
    return flag.replace("_", "-")


def accepted(parser: argparse.ArgumentParser) -> set[str]:
    return {
        canonical(option)
        for action in parser._actions
        for option in action.option_strings
        if option not in ("-h", "--help")
    }


def flags_in(text: str) -> set[str]:
    return {canonical(flag) for span in CODE_SPAN.findall(text) for flag in FLAG.findall(span)}


def table_flags(page: Path) -> set[str]:
    """The flags named in the first column of the page's flags tables (those whose header's first
    cell is ``flag``)."""
    found: set[str] = set()
    in_table = False
    for line in page.read_text(encoding="utf-8").splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")] if line.startswith("|") else []
        if not cells:
            in_table = False
        elif cells[0] == "flag":
            in_table = True
        elif in_table and not set(cells[0]) <= set("-: "):
            found |= flags_in(cells[0])
    return found


COMMANDS = sorted(PAGES)


def test_every_command_has_a_page() -> None:
    assert set(parsers()) == set(PAGES)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_flag_a_command_accepts_is_in_its_pages_flags_table(command: str) -> None:
    undocumented = accepted(parsers()[command]) - table_flags(PAGES[command])
    assert not undocumented, f"{command}: add {sorted(undocumented)} to {PAGES[command].relative_to(ROOT)}"


@pytest.mark.parametrize("command", COMMANDS)
def test_every_flag_in_a_pages_flags_table_exists(command: str) -> None:
    documented = table_flags(PAGES[command])
    assert documented, f"{PAGES[command].relative_to(ROOT)} has no flags table"
    unknown = documented - accepted(parsers()[command])
    assert not unknown, f"{PAGES[command].relative_to(ROOT)} documents {sorted(unknown)}: not {command}'s"


def test_a_flag_only_in_prose_or_only_on_the_page_is_caught(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    for flag in ("--dns-port", "--log_dir", "--new-flag", "-k"):
        parser.add_argument(flag)
    page = tmp_path / "page.md"
    page.write_text(
        "| flag | default | meaning |\n|---|---|---|\n"
        "| `-dns-port=53`, `-k`, `--log_dir` | `53` | a `--not-a-flag` in the meaning is not a row's flag |\n"
        "| `--gone PATH` | | |\n\n"
        "`--new-flag` in prose only.\n",
        encoding="utf-8",
    )
    assert table_flags(page) == {"--dns-port", "-k", "--log-dir", "--gone"}
    assert accepted(parser) - table_flags(page) == {"--new-flag"}
    assert table_flags(page) - accepted(parser) == {"--gone"}


def headings(page: Path) -> set[str]:
    """GitHub's anchors for the page's headings: lower case, punctuation dropped, spaces to dashes."""
    anchors: set[str] = set()
    fenced = False
    for line in page.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            anchors.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return anchors


@pytest.mark.parametrize("page", MARKDOWN, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_points_at_a_file_and_heading(page: Path) -> None:
    broken = []
    for target in LINK.findall(page.read_text(encoding="utf-8")):
        if re.match(r"[a-z]+:", target):
            continue  # https:, mailto:
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        if not linked.exists() or (linked.suffix == ".md" and anchor and anchor not in headings(linked)):
            broken.append(target)
    assert not broken, f"{page.relative_to(ROOT)}: broken links {broken}"
