"""Which lines of a document are source code: fenced blocks (``` or ~~~), and lines whose shape is
code's (statements ending in ; { } or ):, assignments and calls without sentence punctuation,
keywords that open a definition or import, comment markers). Filters written for prose (stop words,
terminal punctuation, curly braces, symbol ratios) measure the prose lines only when asked to keep
code, and language identification never scores code."""

from __future__ import annotations

import re

FENCE = re.compile(r"^\s*(```|~~~)")
CODE_START = re.compile(r"^\s*(def |class |import |from \S+ import|return\b|if .*:$|for .*:$|while .*:$|elif |else:|"
                        r"try:|except\b|with .*:$|#include|#define|public |private |static |const |let |var |function\b|"
                        r"fn |impl |package |func |@[\w.]+(?:\(.*\))?\s*$|//|/\*|\*/|SELECT |CREATE |\$ |>>> )")
CODE_END = re.compile(r"[;{}]\s*$|\):\s*$|^\s*[})\]];?\s*$")
ASSIGNMENT_OR_CALL = re.compile(r"^\s*[\w.\[\]'\"]+\s*(=|\+=|-=|:=|==)\s*\S|^\s*[\w.]+\(.*\)\s*$")
SENTENCE = re.compile(r"[A-Za-z]{2,}[.!?]\s*$")


def is_code_line(line: str) -> bool:
    stripped = line.strip()
    if not stripped:
        return False
    if CODE_START.match(line) or CODE_END.search(stripped):
        return True
    return bool(ASSIGNMENT_OR_CALL.match(line)) and not SENTENCE.search(stripped)


def code_flags(lines: list[str]) -> list[bool]:
    """Per line: is it code? Fenced blocks (fences included) are code whatever they hold."""
    flags, fenced = [], False
    for line in lines:
        if FENCE.match(line):
            fenced = not fenced
            flags.append(True)
        else:
            flags.append(fenced or is_code_line(line))
    return flags


def split_code(text: str) -> tuple[list[str], list[str]]:
    """(prose lines, code lines) of a document, in order."""
    lines = text.split("\n")
    flags = code_flags(lines)
    return [ln for ln, c in zip(lines, flags) if not c], [ln for ln, c in zip(lines, flags) if c]


def mostly_code(text: str, share: float = 0.5) -> bool:
    prose, code = split_code(text)
    code_lines = sum(bool(c.strip()) for c in code)
    return code_lines >= 3 and code_lines >= share * (code_lines + sum(bool(p.strip()) for p in prose))
