"""A reader of the Dockerfiles the packaging tests check: enough of the syntax
(comments, ``\\`` continuations, JSON exec form) to see the instructions and their
arguments as Docker's parser does for these files."""

from __future__ import annotations

import json
from dataclasses import dataclass


@dataclass(frozen=True)
class Instruction:
    """One instruction: its keyword upper-cased and the rest of its (joined) line."""

    keyword: str
    arguments: str

    def exec_form(self) -> list[str]:
        """The arguments as a JSON array (``CMD ["aios", …]``); fails on shell form."""
        words = json.loads(self.arguments)
        assert isinstance(words, list) and all(isinstance(word, str) for word in words)
        return words


def parse_dockerfile(text: str) -> list[Instruction]:
    """The instructions of ``text``, in order."""
    instructions: list[Instruction] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            pending += line[:-1].strip() + " "
            continue
        full = pending + line
        pending = ""
        keyword, _, arguments = full.partition(" ")
        instructions.append(Instruction(keyword.upper(), arguments.strip()))
    assert not pending, "the Dockerfile ends inside a continued line"
    return instructions
