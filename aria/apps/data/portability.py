"""A scanner for SQL that CockroachDB 22.1 would refuse or treat differently from PostgreSQL 15.

It reads every ``*.sql`` file and every Python string literal that opens with a SQL keyword in
capitals, and reports
triggers, functions, procedures, LISTEN/NOTIFY, SKIP LOCKED, SERIAL columns and advisory locks.
PostgreSQL-only fast paths that sit beside a portable fallback are listed in :data:`ALLOWED`, each
with the reason.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

CONSTRUCTS: dict[str, re.Pattern[str]] = {
    "trigger": re.compile(r"\bCREATE\s+(OR\s+REPLACE\s+)?(CONSTRAINT\s+)?TRIGGER\b", re.IGNORECASE),
    "function": re.compile(r"\bCREATE\s+(OR\s+REPLACE\s+)?FUNCTION\b", re.IGNORECASE),
    "procedure": re.compile(r"\bCREATE\s+(OR\s+REPLACE\s+)?PROCEDURE\b", re.IGNORECASE),
    "listen": re.compile(r"^[ \t]*(UN)?LISTEN\s+\w+", re.IGNORECASE | re.MULTILINE),
    "notify": re.compile(r"(^[ \t]*NOTIFY\s+\w+|\bpg_notify\s*\()", re.IGNORECASE | re.MULTILINE),
    "skip locked": re.compile(r"\bSKIP\s+LOCKED\b", re.IGNORECASE),
    "serial": re.compile(r"\b(SMALL|BIG)?SERIAL\d?\b", re.IGNORECASE),
    "advisory lock": re.compile(r"\bpg_(try_)?advisory_(xact_)?(un)?lock", re.IGNORECASE),
}

# A Python string is taken for SQL when it opens with a statement keyword in capitals, the
# project's convention for SQL in code (prose such as "Listen on the socket" is not).
_LOOKS_LIKE_SQL = re.compile(
    r"^\s*(SELECT|INSERT|UPDATE|DELETE|CREATE|ALTER|DROP|WITH|LISTEN|UNLISTEN|NOTIFY|UPSERT)\b"
)

# (path relative to the project root, construct) -> why it is acceptable.
ALLOWED: dict[tuple[str, str], str] = {
    ("aria/apps/queue/store.py", "skip locked"): (
        "the claim's PostgreSQL fast path; CLAIM_PORTABLE beside it is used on CockroachDB (queue.claim)"
    ),
}


@dataclass(frozen=True)
class Finding:
    path: str
    line: int
    construct: str
    text: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.construct}: {self.text.strip()[:100]}"


_COMMENTS = re.compile(r"--[^\n]*|/\*.*?\*/", re.DOTALL)


def _without_comments(text: str) -> str:
    """SQL with its comments blanked out, line numbers kept (a comment may name what it avoids)."""
    return _COMMENTS.sub(lambda m: re.sub(r"[^\n]", " ", m.group()), text)


def _scan_text(relative: str, text: str, first_line: int) -> list[Finding]:
    findings = []
    code = _without_comments(text)
    for construct, pattern in CONSTRUCTS.items():
        for match in pattern.finditer(code):
            line = first_line + text.count("\n", 0, match.start())
            findings.append(Finding(relative, line, construct, text.splitlines()[line - first_line]))
    return findings


def scan_file(path: Path, root: Path) -> list[Finding]:
    relative = str(path.relative_to(root))
    source = path.read_text()
    if path.suffix == ".sql":
        return _scan_text(relative, source, 1)
    findings = []
    for node in ast.walk(ast.parse(source, filename=relative)):
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and _LOOKS_LIKE_SQL.search(node.value)
        ):
            findings.extend(_scan_text(relative, node.value, node.lineno))
    return findings


def scan(root: Path, directories: tuple[str, ...] = ("aria",)) -> list[Finding]:
    """Every non-portable construct under ``root``'s ``directories`` that is not allow-listed."""
    own = Path(__file__).resolve()
    findings: list[Finding] = []
    for directory in directories:
        for path in sorted((root / directory).rglob("*")):
            if path.suffix not in (".sql", ".py") or path.resolve() == own:
                continue
            findings.extend(f for f in scan_file(path, root) if (f.path, f.construct) not in ALLOWED)
    return findings
