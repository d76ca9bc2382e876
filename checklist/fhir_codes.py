"""The code systems a FHIR bundle of ours names, shared by the import and the export.

Our own coded fields (a model field's choices) travel as codings of a code system named by the
field: `urn:oncoboard:codesystem:<model>.<field>` (e.g. `...:therapyepisode.kind`). The names
never change with a practice or a server, so an exported bundle re-imports without a mapping
question for any of our own codes.
"""

from __future__ import annotations

OWN_PREFIX = "urn:oncoboard:codesystem:"


def own_system(name: str) -> str:
    """The code system URI of our field `name` ("<model>.<field>", lower case)."""
    return OWN_PREFIX + name


def own_name(system: str) -> str | None:
    """The field name an own code system URI names, or None for anybody else's system."""
    return system[len(OWN_PREFIX) :] if system.startswith(OWN_PREFIX) else None
