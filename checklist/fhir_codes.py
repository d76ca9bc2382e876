"""The code systems a FHIR bundle of ours names, shared by the import and the export.

Our own coded fields (a model field's choices) travel as codings of a code system named by the
field: `urn:oncoboard:codesystem:<model>.<field>` (e.g. `...:therapyepisode.kind`). The names
never change with a practice or a server, so an exported bundle re-imports without a mapping
question for any of our own codes. Where FHIR has no element for a field, the value travels in
an extension of ours named the same way (`urn:oncoboard:extension:<model>.<field>`), and the kind
of case row a resource holds is a coding of `ROW_SYSTEM` (code: the model's name).
"""

from __future__ import annotations

OWN_PREFIX = "urn:oncoboard:codesystem:"
ROW_SYSTEM = OWN_PREFIX + "row"


def own_system(name: str) -> str:
    """The code system URI of our field `name` ("<model>.<field>", lower case)."""
    return OWN_PREFIX + name


def own_name(system: str) -> str | None:
    """The field name an own code system URI names, or None for anybody else's system."""
    return system[len(OWN_PREFIX) :] if system.startswith(OWN_PREFIX) else None


EXTENSION_PREFIX = "urn:oncoboard:extension:"


def own_extension(name: str) -> str:
    """The URL of our extension that holds field `name` ("<model>.<field>") where FHIR has no
    element for it (the value is a coding of `own_system(name)` for a coded field)."""
    return EXTENSION_PREFIX + name


def own_extension_name(url: str) -> str | None:
    """The field name an extension URL of ours names, or None for anybody else's extension."""
    return url[len(EXTENSION_PREFIX) :] if url.startswith(EXTENSION_PREFIX) else None
