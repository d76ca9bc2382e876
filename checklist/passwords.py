"""The one password rule Django does not ship: an upper bound on the length.

Hashing a very long password costs time on every attempt, and a bound stated on the form is
better than an error from a proxy; 128 characters leaves room for any passphrase.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.utils.translation import ngettext


class MaximumLengthValidator:
    def __init__(self, max_length: int = 128) -> None:
        self.max_length = max_length

    def validate(self, password: str, user: Any = None) -> None:
        if len(password) > self.max_length:
            raise ValidationError(
                ngettext(
                    "This password is too long. It must contain at most %(max_length)d character.",
                    "This password is too long. It must contain at most %(max_length)d characters.",
                    self.max_length,
                ),
                code="password_too_long",
                params={"max_length": self.max_length},
            )

    def get_help_text(self) -> str:
        return ngettext(
            "Your password can contain at most %(max_length)d character.",
            "Your password can contain at most %(max_length)d characters.",
            self.max_length,
        ) % {"max_length": self.max_length}
