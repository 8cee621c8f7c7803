"""deploy/Dockerfile read as its stages: what each ``--target`` image runs, as whom, and how it was made."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.paths import DEPLOY

DOCKERFILE = DEPLOY / "Dockerfile"


@dataclass
class Stage:
    name: str  # the stage's AS name ("" for an unnamed stage)
    base: str  # what it is FROM: an image or an earlier stage
    instructions: list[tuple[str, str]] = field(default_factory=list)  # (OP, arguments)
    user: str = ""  # as inherited from its base stage
    entrypoint: list[str] = field(default_factory=list)


def instructions(path: Path = DOCKERFILE) -> list[tuple[str, str]]:
    """(OP, arguments) for every instruction, continuation lines joined, comments dropped."""
    logical = re.sub(r"\\\n", " ", path.read_text())
    lines = [line.strip() for line in logical.splitlines() if line.strip() and not line.startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def stages(path: Path = DOCKERFILE) -> list[Stage]:
    """Each stage with the USER and ENTRYPOINT it ends with, inheriting from an earlier stage it is
    built FROM."""
    found: list[Stage] = []
    for op, args in instructions(path):
        if op == "FROM":
            base, _, name = args.partition(" AS ")
            parent = next((s for s in found if s.name == base), None)
            stage = Stage(name.strip(), base.strip())
            if parent is not None:
                stage.user, stage.entrypoint = parent.user, list(parent.entrypoint)
            found.append(stage)
            continue
        stage = found[-1]
        stage.instructions.append((op, args))
        if op == "USER":
            stage.user = args
        elif op == "ENTRYPOINT":
            stage.entrypoint = json.loads(args)
    return found


def target(name: str, path: Path = DOCKERFILE) -> Stage:
    (stage,) = [s for s in stages(path) if s.name == name]
    return stage
