"""The commands of docs/deployment.md's walkthrough, read from the doc so the two cannot drift.

Each command block the multi-host test runs is a ```sh fence right after a marker comment:

    <!-- walkthrough host=org name=init -->
    <!-- walkthrough host=org name=chain background -->

`host` is who runs it (`all`: a prelude for every host), `name` identifies the step to the
test, `background` marks a process that keeps running (a node, a daemon).
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "deployment.md"
# the fence may be indented (a block inside a numbered list): its lines lose that indent
_BLOCK = re.compile(
    r"<!-- walkthrough ([^>]*?) -->[ \t]*\n(?:[ \t]*\n)*([ \t]*)```sh\n(.*?)\n\2```", re.DOTALL
)


@dataclass(frozen=True)
class Step:
    """One tagged command block."""

    host: str
    name: str
    background: bool
    script: str


def read_steps(path: Path = DOC) -> list[Step]:
    """The tagged blocks of `path` in document order."""
    steps = []
    for match in _BLOCK.finditer(path.read_text()):
        words = match.group(1).split()
        tags = dict(w.split("=", 1) for w in words if "=" in w)
        if "host" not in tags or "name" not in tags:
            raise ValueError(
                f"{path}: walkthrough marker {match.group(0)[:60]!r} needs host= and name="
            )
        script = textwrap.dedent(match.group(3))
        steps.append(Step(tags["host"], tags["name"], "background" in words, script))
    names = [s.name for s in steps]
    if len(set(names)) != len(names):
        raise ValueError(f"{path}: walkthrough step names repeat: {names}")
    if not steps:
        raise ValueError(f"{path}: no walkthrough blocks found")
    return steps


def by_name(steps: list[Step]) -> dict[str, Step]:
    return {s.name: s for s in steps}
