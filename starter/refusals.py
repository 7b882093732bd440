"""How a refused request is said: each problem once, with how often it occurs, so a file of
10,000 bad lines reads as one line and not 10,000."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from pydantic import ValidationError


def counted(problems: Iterable[str]) -> list[str]:
    """The problems in the order they first occur, each once; one that occurs more than once
    says how often ("… (9,999 times)")."""
    seen = Counter(problems)
    return [problem if n == 1 else f"{problem} ({n:,} times)" for problem, n in seen.items()]


def validation_problems(error: ValidationError, whole: str = "request") -> list[str]:
    """Each problem pydantic found, by field. The same problem at many positions of a list
    (`lines.0.tax_exempt`, `lines.1.tax_exempt`, …) is one problem at `lines.*.tax_exempt`,
    named by its position when it occurs once."""
    where: dict[tuple[str, str], list[str]] = {}
    for problem in error.errors(include_url=False):
        loc = [str(part) for part in problem["loc"]]
        shape = ".".join("*" if isinstance(part, int) else str(part) for part in problem["loc"]) or whole
        where.setdefault((shape, problem["msg"]), []).append(".".join(loc) or whole)
    said = []
    for (shape, message), places in where.items():
        if len(places) == 1:
            said.append(f"{places[0]}: {message}")
        else:
            said.append(f"{shape}: {message} ({len(places):,} times)")
    return said
