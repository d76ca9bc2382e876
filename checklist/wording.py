"""The words the tool must not write (DESIGN.md "UI rules"), and a checker.

Pure Python. Text inside an element marked `data-disclaimer` (the source's disclaimer) or
`data-physician-text` (what a physician typed, shown as their quote) is exempt.
"""

from __future__ import annotations

import re

RECOMMENDING = re.compile(
    r"""
    \b(
        recommend\w* | indicated | eligible | suggest\w* | advised | suitable | candidates?
      | (best|preferred)\s+option\w*
      | \w*empfohlen\w* | \w*empfehl\w* | \w*indiziert\w* | angezeigt\w* | \w*geeignet\w*
      | \w*sinnvoll\w*
    )\b
    """,
    re.IGNORECASE | re.VERBOSE,
)

# An exempt element: from its opening tag to the matching close of the same tag name. Exempt
# elements are kept flat (no nesting of the same tag inside) by our templates.
_EXEMPT = re.compile(
    r"<(?P<tag>[a-z0-9]+)\b[^>]*\bdata-(?:disclaimer|physician-text)\b[^>]*>.*?</(?P=tag)>",
    re.IGNORECASE | re.DOTALL,
)


def strip_exempt(html: str) -> str:
    return _EXEMPT.sub(" ", html)


def recommending_words(text: str, *, html: bool = False) -> list[str]:
    """The recommending words found in `text` (after removing exempt elements if HTML)."""
    if html:
        text = strip_exempt(text)
    return [match.group(0) for match in RECOMMENDING.finditer(text)]


def strip_exempt_markdown(text: str) -> str:
    """The plain-text note: physician text is always quoted (a "> " line or in double quotes)
    and the disclaimer follows the last "---" line."""
    head, sep, _tail = text.rpartition("\n---\n")
    body = head if sep else text
    body = "\n".join(line for line in body.splitlines() if not line.lstrip().startswith(">"))
    return re.sub(r'"[^"\n]*"', " ", body)
