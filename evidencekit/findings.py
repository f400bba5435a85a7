"""Findings: what verification found, as data (what, where, expected, found)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Finding:
    check: str  # the numbered step's name, as in docs/FORMAT.md ("seal-signature", "file-hash", ...)
    where: str  # the member or file concerned
    problem: str  # one line for people
    expected: str | None = None
    found: str | None = None
    severity: str = "error"  # "error" fails verification; "warning" does not

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Findings:
    items: list[Finding] = field(default_factory=list)

    def error(self, check: str, where: str, problem: str, expected: object = None,
              found: object = None) -> None:
        self.items.append(Finding(check, where, problem, _text(expected), _text(found)))

    def warning(self, check: str, where: str, problem: str) -> None:
        self.items.append(Finding(check, where, problem, severity="warning"))

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.items if f.severity == "error"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def first_error_said(self, bundle: str) -> str:
        """The first error in a few words, for a message about *bundle* itself: its place
        left out when it is the bundle's own path (a file not yet named is /proc/self/fd/N,
        which means nothing to people), and how many more there are."""
        errors = self.errors
        if not errors:
            return ""
        first = errors[0]
        said = first.problem if first.where == bundle else f"{first.where}: {first.problem}"
        more = len(errors) - 1
        return said + (f", and {more} other problem{'s' if more > 1 else ''}" if more else "")


def _text(value: object) -> str | None:
    return None if value is None else str(value)
