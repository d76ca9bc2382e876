from __future__ import annotations

import json
import re
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from django import forms
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import AuthenticationForm
from django.core import validators as django_validators
from django.db import models
from django.db.models import Subquery
from django.urls import reverse
from django.utils import formats, timezone
from django.utils.translation import get_language
from django.utils.translation import gettext_lazy as _

from checklist import rules, second_factor
from checklist.models import (
    SOLID_TUMOUR_CRITERIA,
    AdverseEvent,
    Biomarker,
    BoardNoteVersion,
    Case,
    Category,
    Code,
    Comorbidity,
    ImmuneAdverseEvent,
    ImmuneFinding,
    ItemStatus,
    Laterality,
    LineSetting,
    Medication,
    Membership,
    Metastasis,
    MetastasisStatus,
    MetastasisTiming,
    NoteState,
    OrganFunction,
    PerformanceStatus,
    Practice,
    ResultStatus,
    Sex,
    Situation,
    StagingRecord,
    StagingSystem,
    TherapyLine,
    Tumour,
    partial_date,
    precise_date_fields,
)

# --- text the forms accept ----------------------------------------------------------------

# Bidirectional embeddings, overrides and isolates: invisible, they make a text display in
# another order than it is stored, searched and exported.
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


class TextCharactersValidator:
    """Refuses control characters (C0, DEL, C1) and bidi overrides; a multi-line field keeps
    line breaks and tabs. NUL is refused by Django's own CharField validator as well."""

    def __init__(self, *, multiline: bool) -> None:
        self.multiline = multiline

    def __call__(self, value: Any) -> None:
        for char in str(value):
            code = ord(char)
            if char in BIDI_CONTROLS:
                message = _(
                    "This text contains an invisible direction override (U+%(code)s), which"
                    " makes it display in another order than it is saved. Remove it."
                )
            elif not (code < 0x20 or 0x7F <= code <= 0x9F) or (self.multiline and char in "\n\r\t"):
                continue
            elif char in "\n\r":
                message = _("This field takes one line: remove the line break (U+%(code)s).")
            else:
                message = _(
                    "This text contains an invisible control character (U+%(code)s). Remove it."
                )
            raise forms.ValidationError(
                message, code="forbidden_character", params={"code": f"{code:04X}"}
            )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TextCharactersValidator) and other.multiline == self.multiline

    def __hash__(self) -> int:
        return hash(self.multiline)


SINGLE_LINE_TEXT = TextCharactersValidator(multiline=False)
MULTI_LINE_TEXT = TextCharactersValidator(multiline=True)


class TextCharactersMixin(forms.BaseForm):
    """Every text field of the form refuses control characters and bidi overrides; a Textarea
    keeps line breaks and tabs. Every form of the project has this (through `Form` and
    `ModelForm` below); the validators are added when the form is cleaned, so fields an
    `__init__` adds later are covered too. Passwords are never shown, and left alone."""

    def full_clean(self) -> None:
        for field in self.fields.values():
            if not isinstance(field, forms.CharField) or isinstance(
                field.widget, forms.PasswordInput
            ):
                continue
            multiline = isinstance(field.widget, forms.Textarea)
            validator = MULTI_LINE_TEXT if multiline else SINGLE_LINE_TEXT
            if validator not in field.validators:
                field.validators.append(validator)
        super().full_clean()


class Form(TextCharactersMixin, forms.Form):
    """The base of every plain form of the project."""


class ModelForm(TextCharactersMixin, forms.ModelForm):
    """The base of every model form of the project."""


class LoginForm(TextCharactersMixin, AuthenticationForm):
    error_messages = {
        "invalid_login": _(
            "The user name or password is not correct. Both are case-sensitive; please try again."
        ),
        "inactive": _("This account is deactivated. Please ask your practice admin."),
    }


class SecondFactorCodeForm(Form):
    """A code from the authenticator app, or one of the one-time recovery codes."""

    code = forms.CharField(
        label=_("Code"),
        max_length=32,
        widget=forms.TextInput(
            attrs={"autocomplete": "one-time-code", "autofocus": True, "spellcheck": "false"}
        ),
        help_text=_("The 6-digit code from your authenticator app, or one of your recovery codes."),
    )


class ReauthForm(Form):
    """Password again, and a code when the user has a second factor."""

    password = forms.CharField(
        label=_("Your password"),
        strip=False,
        max_length=4096,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password", "autofocus": True}),
    )
    code = forms.CharField(
        label=_("Code"),
        max_length=32,
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "spellcheck": "false"}),
        help_text=_("The 6-digit code from your authenticator app, or one of your recovery codes."),
    )

    def __init__(self, *args: Any, with_code: bool, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not with_code:
            del self.fields["code"]


class PracticeSecondFactorForm(Form):
    second_factor_for_physicians = forms.BooleanField(
        label=_("Physicians need a second factor (practice admins always do)"), required=False
    )


def _title_field() -> forms.CharField:
    return forms.CharField(
        label=_("Title"),
        max_length=40,
        required=False,
        help_text=_("Shown before the name, for example “Dr.” or “Prof. Dr.”."),
    )


class AccountCreateForm(Form):
    username = forms.CharField(label=_("User name"), max_length=150)
    title = _title_field()
    first_name = forms.CharField(label=_("First name"), max_length=150, required=False)
    last_name = forms.CharField(label=_("Last name"), max_length=150, required=False)
    email = forms.EmailField(label=_("Email"), required=False)
    role = forms.ChoiceField(label=_("Role"), choices=Membership.ROLE_CHOICES)

    def clean_username(self) -> str:
        username: str = self.cleaned_data["username"].strip()
        if get_user_model().objects.filter(username__iexact=username).exists():
            raise forms.ValidationError(_("This user name is already taken."))
        return username


class MembershipForm(Form):
    title = _title_field()
    role = forms.ChoiceField(label=_("Role"), choices=Membership.ROLE_CHOICES)
    active = forms.BooleanField(label=_("Active"), required=False)


class AccountTitleForm(Form):
    """The user's own account page: the title shown with their name."""

    title = _title_field()


# --- numbers and dates as typed in the interface language ---------------------------------
#
# Decimals are text inputs parsed here, never by the browser (a number input follows the
# browser's locale and silently dropped the comma of "0,9", sending 9) and never by Django's
# `localize` (with thousands separators on, it reads an English "0,9" as 9).
#
# The rule, the same in every language: a point and a comma are both decimal separators.
# Refused, with a message that asks for the unambiguous form, never guessed:
# - both separators ("1,234.5", "1.234,5") or one separator twice ("1.234.567");
# - the interface language's thousands separator followed by exactly three digits
#   (English "1,234", German "1.234"): a thousands group as much as a decimal. "0,125" and
#   ",125" are accepted: no one writes a thousands group after a zero.
# So "12,5" and "12.5" are 12.5 in both languages, "0,9" is 0.9, English "1.234" and German
# "1,234" are 1.234. No exponents, NaN or infinity; a minus sign may lead.

NUMBER_TEXT = re.compile(r"([+\-\u2212]?)([0-9]*)(?:([.,])([0-9]*))?")


class AmbiguousNumber(ValueError):
    """A number that can be read in two ways: `reason` says why; for a thousands group,
    `readings` holds both numbers (as a thousands group, as a decimal)."""

    def __init__(self, reason: str, readings: tuple[Decimal, ...] = ()) -> None:
        super().__init__(reason)
        self.reason = reason
        self.readings = readings


def separators(language: str | None = None) -> tuple[str, str]:
    """The (decimal, thousands) separators of the language, by default the active one."""
    language = language or get_language()
    return (
        str(formats.get_format("DECIMAL_SEPARATOR", language)),
        str(formats.get_format("THOUSAND_SEPARATOR", language)),
    )


def parse_decimal(text: str, language: str | None = None) -> Decimal:
    """The number `text` means under the rule above. Raises AmbiguousNumber for a number that
    can be read in two ways and ValueError for text that is not a number."""
    text = text.strip()
    points, commas = text.count("."), text.count(",")
    if points and commas:
        raise AmbiguousNumber("both")
    if points > 1 or commas > 1:
        raise AmbiguousNumber("repeated")
    match = NUMBER_TEXT.fullmatch(text)
    if match is None:
        raise ValueError("not a number")
    sign, whole, separator, fraction = match.groups()
    if not (whole or fraction):
        raise ValueError("no digits")
    minus = "-" if sign in ("-", "\u2212") else ""
    _decimal, thousands = separators(language)
    if separator == thousands and len(fraction) == 3 and whole.strip("0"):
        readings = (Decimal(f"{minus}{whole}{fraction}"), Decimal(f"{minus}{whole}.{fraction}"))
        raise AmbiguousNumber("thousands", readings)
    return Decimal(f"{minus}{whole or '0'}.{fraction or '0'}")


def format_decimal(value: Decimal, language: str | None = None) -> str:
    """`value` with the language's decimal separator, no thousands separator and no trailing
    zeros: what a form shows and what reads back as the same number (see parse_decimal)."""
    text = f"{value:f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    if text in ("", "-0", "-"):
        text = "0"
    return text.replace(".", separators(language)[0])


class DecimalInput(forms.TextInput):
    """A text input that brings up the number keypad with the locale's decimal key on phones."""

    def __init__(self, attrs: dict[str, Any] | None = None) -> None:
        super().__init__({"inputmode": "decimal", "autocomplete": "off", **(attrs or {})})


class DecimalNumberField(forms.DecimalField):
    """A decimal typed with a point or a comma (the rule above); shown with the interface
    language's decimal separator, so what a form shows posts back as the same value."""

    widget = DecimalInput
    # Far more digits than any field stores; longer text is refused, not cut.
    max_text_length = 60

    def to_python(self, value: Any) -> Decimal | None:  # type: ignore[override]  # stubs: int
        if value in self.empty_values:
            return None
        if isinstance(value, (Decimal, int)):
            return Decimal(value)
        text = str(value).strip()
        try:
            if len(text) > self.max_text_length:
                raise ValueError("too long")
            return parse_decimal(text)
        except AmbiguousNumber as error:
            raise forms.ValidationError(
                self._ambiguous_message(error, text), code="ambiguous"
            ) from None
        except (ValueError, ArithmeticError):
            raise forms.ValidationError(
                _("Enter a number, e.g. %(example)s.") % {"example": f"0{separators()[0]}9"},
                code="invalid",
            ) from None

    @staticmethod
    def _ambiguous_message(error: AmbiguousNumber, text: str) -> str:
        example = f"1234{separators()[0]}5"
        if error.reason == "thousands":
            return _(
                "Is “%(value)s” meant as %(thousands)s or as %(decimal)s? Type the one you"
                " mean: numbers are taken without thousands separators."
            ) % {
                "value": text,
                "thousands": format_decimal(error.readings[0]),
                "decimal": format_decimal(error.readings[1]),
            }
        if error.reason == "both":
            return _(
                "“%(value)s” has both a point and a comma, so it can be read in two ways. Type"
                " the number without thousands separators, e.g. %(example)s."
            ) % {"value": text, "example": example}
        return _(
            "“%(value)s” has more than one separator. Type the number without thousands"
            " separators, e.g. %(example)s."
        ) % {"value": text, "example": example}

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, Decimal) and value.is_finite():
            return format_decimal(value)
        return value


def number_formfield(db_field: models.Field[Any, Any], **kwargs: Any) -> forms.Field | None:
    """The form field of a model field, with our decimal field for decimals: a row form's
    `Meta.formfield_callback`."""
    if isinstance(db_field, (models.DecimalField, models.FloatField)):
        kwargs["form_class"] = DecimalNumberField
    return db_field.formfield(**kwargs)


DATE_PARTS = {"%d": _("DD"), "%m": _("MM"), "%Y": _("YYYY")}


def date_format_hint(language: str | None = None) -> str:
    """The date format the interface language types first, spelled out ("TT.MM.JJJJ")."""
    pattern = str(formats.get_format("DATE_INPUT_FORMATS", language or get_language())[0])
    for code, part in DATE_PARTS.items():
        pattern = pattern.replace(code, str(part))
    return pattern


class DateInput(forms.DateInput):
    """A date typed in the interface language's format, shown in it and named in the
    placeholder: German 31.12.2024, English 2024-12-31; ISO is accepted in every language
    (config/formats: DATE_INPUT_FORMATS; never a month-first format, never a two-digit year).
    Not the browser's date picker: it follows the browser's locale, not the interface
    language, so the same field read 12/31/2024 for one user and 31.12.2024 for the next."""

    def get_context(self, name: str, value: Any, attrs: dict[str, Any] | None) -> dict[str, Any]:
        context = super().get_context(name, value, attrs)
        widget_attrs = context["widget"]["attrs"]
        widget_attrs.setdefault("placeholder", date_format_hint())
        widget_attrs.setdefault("autocomplete", "off")
        return context


_PARTIAL_DATES = [
    # (pattern, order of its groups): ISO day, German day, ISO month, month/year, year.
    (re.compile(r"(\d{4})-(\d{1,2})-(\d{1,2})"), "ymd"),
    (re.compile(r"(\d{1,2})\.(\d{1,2})\.(\d{4})"), "dmy"),
    (re.compile(r"(\d{4})-(\d{1,2})"), "ym"),
    (re.compile(r"(\d{1,2})[/.](\d{4})"), "my"),
    (re.compile(r"(\d{4})"), "y"),
]


def parse_partial_date(text: str) -> rules.PartialDate | None:
    """A day, month or year as typed: 2021-02-14, 14.02.2021, 2021-02, 02/2021, 02.2021 or
    2021. Never a month-first day (02/14/2021) and never a two-digit year. None if the text
    is none of these or names no real day."""
    text = text.strip()
    for pattern, order in _PARTIAL_DATES:
        match = pattern.fullmatch(text)
        if not match:
            continue
        parts = dict(zip(order, (int(g) for g in match.groups()), strict=True))
        precision = rules.DAY if "d" in order else rules.MONTH if "m" in order else rules.YEAR
        try:
            value = date(parts["y"], parts.get("m", 1), parts.get("d", 1))
        except ValueError:
            return None
        return rules.PartialDate(value, precision) if value.year >= 1900 else None
    return None


def format_partial_date_input(value: rules.PartialDate, language: str | None = None) -> str:
    """A date with its precision as the interface language types it (German 14.02.2021 and
    02/2021, English 2021-02-14 and 2021-02), so that a form shown again reads as typed."""
    first = str(formats.get_format("DATE_INPUT_FORMATS", language or get_language())[0])
    german = first.startswith("%d")
    if value.precision == rules.YEAR:
        return f"{value.value.year:04d}"
    if value.precision == rules.MONTH:
        return value.value.strftime("%m/%Y" if german else "%Y-%m")
    return value.value.strftime("%d.%m.%Y" if german else "%Y-%m-%d")


class PartialDateInput(forms.TextInput):
    """A text input, not the browser's date picker: `type=date` cannot hold a month or year."""

    def get_context(self, name: str, value: Any, attrs: dict[str, Any] | None) -> dict[str, Any]:
        context = super().get_context(name, value, attrs)
        widget_attrs = context["widget"]["attrs"]
        widget_attrs.setdefault("placeholder", partial_date_hint())
        widget_attrs.setdefault("autocomplete", "off")
        widget_attrs.setdefault("inputmode", "numeric")
        return context


def partial_date_hint(language: str | None = None) -> str:
    """The day, month and year formats the interface language types, spelled out."""
    day = date_format_hint(language)
    month = _("MM/YYYY") if day.startswith(str(DATE_PARTS["%d"])) else _("YYYY-MM")
    return str(
        _("%(day)s, %(month)s or %(year)s") % {"day": day, "month": month, "year": DATE_PARTS["%Y"]}
    )


class PartialDateField(forms.Field):
    """A clinical date known to the day, the month or the year: cleans to a
    `rules.PartialDate`. Row forms put it in place of every model date field that has a
    `<name>_precision` sibling (`PartialDatesMixin`)."""

    widget = PartialDateInput
    default_error_messages = {
        "invalid": _("Enter a day (%(day)s), a month (%(month)s) or a year (%(year)s)."),
    }

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, rules.PartialDate):
            return format_partial_date_input(value)
        if isinstance(value, date):
            return format_partial_date_input(rules.PartialDate(value))
        return value

    def to_python(self, value: Any) -> rules.PartialDate | None:
        if isinstance(value, rules.PartialDate):
            return value
        if value in self.empty_values:
            return None
        parsed = parse_partial_date(str(value))
        if parsed is None:
            hint = date_format_hint()
            german = hint.startswith(str(DATE_PARTS["%d"]))
            raise forms.ValidationError(
                self.error_messages["invalid"],
                code="invalid",
                params={
                    "day": hint,
                    "month": _("MM/YYYY") if german else _("YYYY-MM"),
                    "year": DATE_PARTS["%Y"],
                },
            )
        return parsed


class PartialDatesMixin:
    """Every model date field of the form that has a `<name>_precision` sibling is entered as
    a `PartialDateField`; the instance gets the first day of the month or year and the
    precision, so that no rendering pads a month to a day."""

    partial_dates: tuple[str, ...] = ()

    def _use_partial_dates(self) -> None:
        form: Any = self
        self.partial_dates = tuple(
            n for n in precise_date_fields(form._meta.model) if n in form.fields
        )
        for name in self.partial_dates:
            old = form.fields[name]
            form.fields[name] = PartialDateField(
                required=old.required, label=old.label, help_text=old.help_text
            )
            if form.instance.pk and not form.is_bound:
                form.initial[name] = partial_date(form.instance, name)

    def _post_clean(self) -> None:
        form: Any = self
        partials = {n: form.cleaned_data[n] for n in self.partial_dates if n in form.cleaned_data}
        for name, value in partials.items():
            form.cleaned_data[name] = value.value if value else None
        super()._post_clean()  # type: ignore[misc]
        for name, value in partials.items():
            setattr(form.instance, f"{name}_precision", value.precision if value else rules.DAY)
            form.cleaned_data[name] = value


def cleaned_day(value: Any) -> date | None:
    """The first day a cleaned date may stand for (a day, or the first of a month or year)."""
    if isinstance(value, rules.PartialDate):
        return value.earliest
    return value if isinstance(value, date) else None


# --- the case record ------------------------------------------------------------------------


def _date_widgets(model: type[models.Model]) -> dict[str, forms.Widget]:
    return {
        f.name: DateInput()
        for f in model._meta.get_fields()
        if isinstance(f, models.DateField) and not isinstance(f, models.DateTimeField)
    }


def _code_choices(system: str, language: str | None = None) -> list[tuple[str, str]]:
    return [(c.code, c.label(language)) for c in Code.objects.of(system)]


class CaseFormMixin:
    """Date rules shared by every form of the case: not in the future, not before birth."""

    case: Case | None = None
    date_fields: tuple[str, ...] = ()

    def _check_dates(self, cleaned: dict[str, Any]) -> None:
        year_of_birth = cleaned.get("year_of_birth") or (self.case and self.case.year_of_birth)
        today = timezone.localdate()
        for name in self.date_fields:
            value = cleaned.get(name)
            if isinstance(value, date):
                value = rules.PartialDate(value)
            if not isinstance(value, rules.PartialDate):
                continue
            # A month or year is in the future only when all of it is: "this month" is not.
            if value.earliest > today:
                self.add_error(name, _("This date is in the future."))  # type: ignore[attr-defined]
            elif year_of_birth and value.latest.year < year_of_birth:
                self.add_error(name, _("This date is before the year of birth."))  # type: ignore[attr-defined]


class CaseForm(CaseFormMixin, ModelForm):
    date_fields = ("last_restaging_on", "deceased_on")

    class Meta:
        model = Case
        fields = [
            "label",
            "year_of_birth",
            "sex",
            "situation",
            "last_restaging_on",
            "last_restaging_method",
            "unknown_primary",
            "deceased_on",
        ]
        widgets = _date_widgets(Case)

    def __init__(self, *args: Any, practice: Practice, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.practice = practice
        self.case = self.instance if self.instance.pk else None
        self.fields["year_of_birth"].widget.attrs.update({"min": 1900, "max": timezone.now().year})

    def clean_year_of_birth(self) -> int:
        year: int = self.cleaned_data["year_of_birth"]
        if not 1900 <= year <= timezone.now().year:
            raise forms.ValidationError(_("Give a year between 1900 and this year."))
        return year

    def clean_label(self) -> str:
        label: str = self.cleaned_data["label"].strip()
        taken = Case.objects.for_practice(self.practice).filter(label=label)
        if self.instance.pk:
            taken = taken.exclude(pk=self.instance.pk)
        if taken.exists():
            raise forms.ValidationError(_("This label is already used in the practice."))
        return label

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        self._check_dates(cleaned)
        if cleaned.get("last_restaging_on") and not cleaned.get("last_restaging_method"):
            self.add_error("last_restaging_method", _("Say how the restaging was done."))
        return cleaned


class MetastasisStatusForm(CaseFormMixin, ModelForm):
    date_fields = ("metastasis_assessed_on",)

    class Meta:
        model = Case
        fields = ["metastasis_status", "metastasis_assessed_on", "metastasis_assessment_method"]
        widgets = {
            "metastasis_status": forms.RadioSelect,
            "metastasis_assessed_on": DateInput(),
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.case = self.instance
        self.fields["metastasis_status"].required = True
        self.fields["metastasis_status"].choices = MetastasisStatus.choices  # type: ignore[attr-defined]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        self._check_dates(cleaned)
        if cleaned.get("metastasis_status") == MetastasisStatus.NONE_KNOWN:
            if not cleaned.get("metastasis_assessed_on"):
                self.add_error(
                    "metastasis_assessed_on",
                    _("“No metastases known” needs the date of the assessment."),
                )
            if not cleaned.get("metastasis_assessment_method"):
                self.add_error(
                    "metastasis_assessment_method",
                    _("“No metastases known” needs the staging method."),
                )
        else:
            cleaned["metastasis_assessed_on"] = cleaned.get("metastasis_assessed_on")
        return cleaned


CONFIRM_FIELD = "confirm_values"


class RowForm(PartialDatesMixin, CaseFormMixin, ModelForm):
    """A form for one row of a case; `case` gives the date rules their year of birth.

    `warnings` are shown after saving. `numbers` (field -> name and unit) are named with their
    stored values in the message after saving ("Lymphocytes 0.9 × 10⁹/L saved"); a form that
    calls `_ask_about_tenfold_changes` also asks to confirm a value that changed tenfold.
    """

    warnings: list[Any]
    numbers: dict[str, tuple[Any, Any]] = {}

    def __init__(self, *args: Any, case: Case, language: str | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.case = case
        self.language = language
        self.warnings = []
        self._use_partial_dates()
        self.confirmed = self.is_bound and bool(
            forms.CheckboxInput().value_from_datadict(
                self.data, self.files, self.add_prefix(CONFIRM_FIELD)
            )
        )
        if self.confirmed:
            self._add_confirm_field()

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        self._check_dates(cleaned)
        return cleaned

    def saved_values(self) -> list[str]:
        """The numbers of the saved row as stored, each with its name and unit."""
        return [
            f"{name} {format_decimal(Decimal(value))} {unit}".rstrip()
            for field, (name, unit) in self.numbers.items()
            if (value := getattr(self.instance, field)) is not None
        ]

    def _add_confirm_field(self) -> None:
        self.fields[CONFIRM_FIELD] = forms.BooleanField(
            label=_("The values marked above are correct: save them as entered"), required=False
        )

    def _ask_about_tenfold_changes(self, cleaned: dict[str, Any]) -> None:
        """A number ten times or more, or a tenth or less, of the same field in the case's
        newest earlier row of this kind (dated on or before this one, by `date_fields[0]`) is
        a soft warning: the form comes back with the change named at the field and a box to
        tick; ticked, it saves. Only values above zero are compared (a ratio to zero says
        nothing). Two queries, whatever the number of rows."""
        date_field = self.date_fields[0]
        day = cleaned_day(cleaned.get(date_field))
        values = {
            name: Decimal(cleaned[name])
            for name in self.numbers
            if isinstance(cleaned.get(name), (int, Decimal)) and cleaned[name] > 0
        }
        if self.confirmed or not isinstance(day, date) or not values or self.case is None:
            return
        model = self._meta.model
        earlier = model.objects.filter(case=self.case, **{f"{date_field}__lte": day})
        if self.instance.pk:
            earlier = earlier.exclude(pk=self.instance.pk)
        newest = {
            f"newest_{name}": Subquery(
                earlier.filter(**{f"{name}__isnull": False})
                .order_by(f"-{date_field}", "-pk")
                .values("pk")[:1]
            )
            for name in values
        }
        found = Case.objects.filter(pk=self.case.pk).values(**newest).first() or {}
        rows = model.objects.in_bulk([pk for pk in found.values() if pk is not None])
        changed = False
        for name, value in values.items():
            row = rows.get(found.get(f"newest_{name}"))
            previous = getattr(row, name, None)
            if not previous or previous <= 0:
                continue
            if value >= previous * 10:
                message = _(
                    "%(value)s %(unit)s is ten times or more the previous value"
                    " (%(previous)s %(unit)s on %(date)s)."
                )
            elif value * 10 <= previous:
                message = _(
                    "%(value)s %(unit)s is a tenth or less of the previous value"
                    " (%(previous)s %(unit)s on %(date)s)."
                )
            else:
                continue
            unit = self.numbers[name][1]
            self.add_error(
                name,
                message
                % {
                    "value": format_decimal(value),
                    "previous": format_decimal(Decimal(previous)),
                    "unit": unit,
                    "date": formats.date_format(getattr(row, date_field), "SHORT_DATE_FORMAT"),
                },
            )
            changed = True
        if changed:
            self._add_confirm_field()
            self.add_error(
                None,
                _(
                    "A value differs tenfold or more from the case's previous one (marked"
                    " below). If it is correct, tick the box at the end of the form and save"
                    " again."
                ),
            )


def resolve_oncotree(text: str) -> Code:
    """Finds the OncoTree node for "Name (CODE)" (what the type-ahead fills in) or a code."""
    text = (text or "").strip()
    match = re.search(r"\(([A-Z0-9_]+)\)\s*$", text)
    code = match.group(1) if match else text.upper()
    node = Code.objects.filter(system="oncotree", code=code).first()
    if node is None:
        by_name = list(Code.objects.filter(system="oncotree", display__iexact=text)[:2])
        node = by_name[0] if len(by_name) == 1 else None
    if node is None:
        raise forms.ValidationError(
            _(
                "“%(text)s” is not an OncoTree tumour type. Type part of a name or code and pick"
                " from the list."
            )
            % {"text": text}
        )
    if not node.selectable:
        raise forms.ValidationError(
            _("“%(name)s” is a tissue, not a diagnosis. Pick a tumour type within it.")
            % {"name": node.display}
        )
    return node


class TumourForm(RowForm):
    date_fields = ("diagnosed_on",)
    oncotree = forms.CharField(
        label=_("Tumour type (OncoTree)"),
        max_length=340,
        help_text=_("Type part of a name or code, e.g. “ductal” or “LUAD”."),
    )

    class Meta:
        model = Tumour
        fields = [
            "icd10_text",
            "laterality",
            "diagnosed_on",
            "diagnosis_basis",
            "histology",
            "grade",
        ]
        widgets = _date_widgets(Tumour)

    field_order = ["oncotree"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk and not self.is_bound:
            self.initial["oncotree"] = (
                f"{self.instance.oncotree_name} ({self.instance.oncotree_code})"
            )
        self.fields["oncotree"].widget.attrs.update(
            {
                "autocomplete": "off",
                "role": "combobox",
                "aria-autocomplete": "list",
                "aria-controls": "oncotree-results",
                # app.js sets it to "true" while the list of tumour types is open.
                "aria-expanded": "false",
                "data-hx-get": reverse("oncotree_search"),
                "data-hx-trigger": "input changed delay:150ms, focus",
                "data-hx-target": "#oncotree-results",
                "data-hx-swap": "innerHTML",
            }
        )

    def clean_oncotree(self) -> Code:
        return resolve_oncotree(self.cleaned_data["oncotree"])

    def save(self, commit: bool = True) -> Tumour:
        tumour: Tumour = super().save(commit=False)
        node: Code = self.cleaned_data["oncotree"]
        tumour.oncotree_code = node.code
        tumour.oncotree_name = node.display
        tumour.oncotree_release = node.release
        tumour.oncotree_tissue = node.extra.get("tissue") or ""
        tumour.oncotree_main_type = node.extra.get("mainType") or ""
        return tumour


TNM_LISTS = {"t": "obds:tnm_t", "n": "obds:tnm_n", "m": "obds:tnm_m"}


class TnmCategoryField(forms.ChoiceField):
    """A T, N or M category from the oBDS list. The prefix (c/p/u) has its own field, so a
    category that carries one ("pT2") is refused as having two prefixes; a bare letter ("T2")
    is accepted as the category it names."""

    def __init__(self, *, letter: str, **kwargs: Any) -> None:
        self.letter = letter
        super().__init__(**kwargs)

    def to_python(self, value: Any) -> str:
        text = str(super().to_python(value)).strip()
        codes = {str(choice[0]) for choice in self.choices}  # type: ignore[union-attr,index]
        if text[:1].upper() == self.letter.upper() and text[1:] in codes:
            return text[1:]
        return text

    def validate(self, value: Any) -> None:
        if value and re.match(rf"^[cpuyra]+{self.letter}", value, re.IGNORECASE):
            raise forms.ValidationError(
                _("Give the prefix in its own field: %(value)s has one in the category.")
                % {"value": value}
            )
        super().validate(value)


STAGE_VALUES = {
    StagingSystem.BINET: ["A", "B", "C"],
    StagingSystem.RAI: ["0", "I", "II", "III", "IV"],
    StagingSystem.ISS: ["I", "II", "III", "R-I", "R-II", "R-III"],
}


class StagingForm(RowForm):
    date_fields = ("staged_on",)

    class Meta:
        model = StagingRecord
        fields = [
            "tumour",
            "staged_on",
            "kind",
            "system",
            "tnm_edition",
            "y_symbol",
            "r_symbol",
            "a_symbol",
            "m_symbol",
            "t_prefix",
            "t_category",
            "n_prefix",
            "n_category",
            "m_prefix",
            "m_category",
            "l_category",
            "v_category",
            "pn_category",
            "r_classification",
            "uicc_stage",
            "other_system_name",
            "stage_text",
        ]
        widgets = _date_widgets(StagingRecord)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        tumour_field = self.fields["tumour"]
        tumour_field.queryset = Tumour.objects.filter(case=self.case)  # type: ignore[attr-defined]
        tumour_field.empty_label = _("(the case)")  # type: ignore[attr-defined]
        blank = [("", "—")]
        for letter, system in TNM_LISTS.items():
            self.fields[f"{letter}_category"] = TnmCategoryField(
                letter=letter,
                label=letter.upper(),
                required=False,
                choices=blank + [(c, f"{letter.upper()}{c}") for c, _l in _code_choices(system)],
            )
        for name, system in [
            ("l_category", "obds:tnm_l"),
            ("v_category", "obds:tnm_v"),
            ("pn_category", "obds:tnm_pn"),
        ]:
            self.fields[name] = forms.ChoiceField(
                label=self.fields[name].label,
                required=False,
                choices=blank + _code_choices(system),
            )
        self.fields["uicc_stage"] = forms.ChoiceField(
            label=_("UICC stage (chosen by the physician)"),
            required=False,
            choices=blank + _code_choices("obds:tnm_uicc"),
        )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        system = cleaned.get("system")
        if system == StagingSystem.UICC_TNM:
            if not cleaned.get("tnm_edition"):
                self.add_error("tnm_edition", _("Give the TNM edition (7, 8 or 9)."))
            if not any(cleaned.get(f"{x}_category") for x in "tnm"):
                self.add_error("t_category", _("Give at least one of T, N and M."))
            for letter in "tnm":
                if cleaned.get(f"{letter}_category") and not cleaned.get(f"{letter}_prefix"):
                    self.add_error(
                        f"{letter}_prefix",
                        _("Give the prefix (c or p) for %(cat)s.") % {"cat": letter.upper()},
                    )
            if cleaned.get("m_category") == "X":
                self.warnings.append(
                    _("MX was abolished with TNM 7; consider cM0 or cM1 if the M status is known.")
                )
        elif system in (StagingSystem.NOT_APPLICABLE,):
            pass
        else:
            tnm_given = [
                n
                for n in self.Meta.fields
                if n.endswith(("_category", "_prefix")) and cleaned.get(n)
            ]
            if tnm_given:
                self.add_error(None, _("TNM values belong to the UICC TNM system only."))
            allowed = STAGE_VALUES.get(system)  # type: ignore[arg-type]
            stage = (cleaned.get("stage_text") or "").strip()
            if not stage:
                self.add_error("stage_text", _("Give the stage in this system."))
            elif allowed and stage not in allowed:
                self.add_error(
                    "stage_text",
                    _("Use one of: %(values)s.") % {"values": ", ".join(allowed)},
                )
            if system == StagingSystem.OTHER and not cleaned.get("other_system_name"):
                self.add_error("other_system_name", _("Name the staging system."))
        return cleaned


class BiomarkerForm(RowForm):
    date_fields = ("sampled_on",)

    class Meta:
        model = Biomarker
        fields = [
            "name",
            "kind",
            "status",
            "specimen",
            "sampled_on",
            "assay",
            "scoring",
            "value",
            "unit",
            "categorical_result",
        ]
        widgets = {**_date_widgets(Biomarker), "name": forms.TextInput(attrs={"list": "markers"})}
        formfield_callback = number_formfield

    def saved_values(self) -> list[str]:
        row = self.instance
        if row.value is None:
            return []
        return [f"{row.name} {format_decimal(row.value)} {row.unit}".rstrip()]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        has_value = cleaned.get("value") is not None or cleaned.get("categorical_result")
        status = cleaned.get("status")
        if status == ResultStatus.RESULT and not has_value:
            self.add_error("value", _("A result needs a value or a categorical result."))
        if status and status != ResultStatus.RESULT and has_value:
            self.add_error(
                "status", _("A result that is pending, failed or not tested has no value.")
            )
        if cleaned.get("value") is not None and not cleaned.get("unit"):
            self.add_error("unit", _("Give the unit of the value."))
        return cleaned


class MetastasisForm(RowForm):
    date_fields = ("detected_on",)

    class Meta:
        model = Metastasis
        fields = ["site", "lesions", "detected_on", "timing", "established_by"]
        widgets = _date_widgets(Metastasis)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["site"] = forms.ChoiceField(
            label=_("Site"),
            choices=[("", "—")] + _code_choices("obds:fm_lokalisation", self.language),
        )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if self.case and self.case.metastasis_status in (
            MetastasisStatus.NONE_KNOWN,
            MetastasisStatus.NOT_APPLICABLE,
        ):
            self.add_error(
                None,
                _("The metastasis status says “%(status)s”; change it before adding rows.")
                % {"status": self.case.get_metastasis_status_display()},
            )
        return cleaned


class TherapyLineForm(RowForm):
    date_fields = ("started_on", "ended_on")

    class Meta:
        model = TherapyLine
        fields = [
            "number",
            "types",
            "regimen",
            "intent",
            "setting",
            "palliative_line",
            "started_on",
            "ended_on",
            "ongoing",
            "cycles",
            "dose_reductions",
            "response",
            "response_criteria",
            "end_reason",
            "category",
        ]
        widgets = _date_widgets(TherapyLine)

    def __init__(self, *args: Any, categories: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["types"] = forms.MultipleChoiceField(
            label=_("Therapy types"),
            choices=_code_choices("mii:therapie-typ", self.language),
            widget=forms.CheckboxSelectMultiple,
        )
        self.fields["intent"] = forms.ChoiceField(
            label=_("Intent"),
            required=False,
            choices=[("", "—")] + _code_choices("mii:intention", self.language),
        )
        self.fields["end_reason"] = forms.ChoiceField(
            label=_("End reason"),
            required=False,
            choices=[("", "—")] + _code_choices("mii:therapie-ende-grund", self.language),
        )
        criteria = self.fields["response_criteria"]
        if self.case and self.case.is_haematological:
            criteria.choices = [  # type: ignore[attr-defined]
                c
                for c in criteria.choices  # type: ignore[attr-defined]
                if c[0] not in SOLID_TUMOUR_CRITERIA
            ]
        category = self.fields["category"]
        offered = categories if categories is not None else Category.objects.none()
        if self.instance.pk and self.instance.category_id:
            # A line linked under an older catalogue version keeps its link when edited.
            offered = offered | Category.objects.filter(pk=self.instance.category_id)
        category.queryset = offered  # type: ignore[attr-defined]
        category.empty_label = _("no catalogue category")  # type: ignore[attr-defined]
        category.label_from_instance = lambda c: c.name(self.language)  # type: ignore[attr-defined]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        start, end = cleaned.get("started_on"), cleaned.get("ended_on")
        if cleaned.get("ongoing"):
            if end:
                self.add_error("ended_on", _("An ongoing line has no end date."))
            if cleaned.get("end_reason"):
                self.add_error("end_reason", _("An ongoing line has no end reason."))
        if start and end and end.certainly_before(start):
            self.add_error("ended_on", _("The end is before the start."))
        if cleaned.get("setting") == LineSetting.PALLIATIVE and not cleaned.get("palliative_line"):
            self.add_error("palliative_line", _("Give the number of the palliative line."))
        criteria = cleaned.get("response_criteria")
        if criteria in SOLID_TUMOUR_CRITERIA and self.case and self.case.is_haematological:
            self.add_error("response_criteria", _("RECIST applies to solid tumours only."))
        return cleaned


class AdverseEventForm(RowForm):
    date_fields = ("onset_on",)

    class Meta:
        model = AdverseEvent
        fields = [
            "line",
            "term",
            "ctcae_version",
            "grade",
            "attributed_agent",
            "led_to_stop",
            "dose_reduced",
            "resolved",
            "onset_on",
        ]
        widgets = _date_widgets(AdverseEvent)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        line = self.fields["line"]
        line.queryset = TherapyLine.objects.filter(case=self.case).order_by("number")  # type: ignore[attr-defined]
        line.label_from_instance = lambda l: (  # type: ignore[attr-defined]  # noqa: E741
            _("line %(n)s: %(regimen)s") % {"n": l.number, "regimen": l.regimen or "—"}
        )

    def clean_grade(self) -> int:
        grade = self.cleaned_data["grade"]
        if grade == 5 and not (self.case and self.case.deceased_on):
            raise forms.ValidationError(
                _("Grade 5 means death: record the date of death on the case first.")
            )
        return int(grade)


class PerformanceStatusForm(RowForm):
    date_fields = ("assessed_on",)

    class Meta:
        model = PerformanceStatus
        fields = ["assessed_on", "ecog", "karnofsky"]
        widgets = _date_widgets(PerformanceStatus)

    numbers = {"ecog": ("ECOG", ""), "karnofsky": ("Karnofsky", "%")}

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if cleaned.get("ecog") is None and cleaned.get("karnofsky") is None:
            self.add_error("ecog", _("Give ECOG, Karnofsky or both."))
        return cleaned


COUNT_UNITS = [
    ("1e9/L", "10⁹/L"),
    ("Gpt/L", "Gpt/L"),
    ("/uL", "/µL"),
    ("%", _("% of leukocytes")),
]
LIMITS = {
    "neutrophils": (Decimal(100), _("Neutrophils above 100 × 10⁹/L are not plausible.")),
    "lymphocytes": (Decimal(500), _("Lymphocytes above 500 × 10⁹/L are not plausible.")),
}


def to_billion_per_litre(value: Decimal, unit: str, leukocytes: Decimal | None) -> Decimal:
    """A cell count in the unit the lab reported, as 10⁹/L (Gpt/L is the same unit)."""
    if unit in ("1e9/L", "Gpt/L"):
        return value
    if unit == "/uL":
        return value / Decimal(1000)
    if unit == "%":
        if leukocytes is None:
            raise ValueError("a percentage needs the leukocyte count")
        return value * leukocytes / Decimal(100)
    raise ValueError(f"unknown unit {unit}")


class ImmuneFindingForm(RowForm):
    date_fields = ("assessed_on", "steroid_since")
    neutrophils_unit = forms.ChoiceField(
        label=_("Unit of the neutrophil count"), choices=COUNT_UNITS, required=False
    )
    lymphocytes_unit = forms.ChoiceField(
        label=_("Unit of the lymphocyte count"), choices=COUNT_UNITS, required=False
    )

    class Meta:
        model = ImmuneFinding
        fields = [
            "assessed_on",
            "leukocytes",
            "neutrophils",
            "neutrophils_not_tested",
            "lymphocytes",
            "lymphocytes_not_tested",
            "count_context",
            "cd4",
            "cd4_not_tested",
            "igg",
            "igg_not_tested",
            "iga",
            "igm",
            "steroid_mg_per_day",
            "steroid_since",
            "hiv",
            "hbsag",
            "anti_hbc",
            "transplant_gvhd",
            "asplenia",
            "autoimmune_disease",
            "infections_12m",
            "infections_hospitalised",
            "vaccinations",
            "comment",
        ]
        widgets = {**_date_widgets(ImmuneFinding), "comment": forms.Textarea(attrs={"rows": 3})}
        labels = {"neutrophils": _("Neutrophils"), "lymphocytes": _("Lymphocytes")}
        formfield_callback = number_formfield

    numbers = {
        "leukocytes": (_("Leukocytes"), "× 10⁹/L"),
        "neutrophils": (_("Neutrophils"), "× 10⁹/L"),
        "lymphocytes": (_("Lymphocytes"), "× 10⁹/L"),
        "cd4": ("CD4", "/µL"),
        "igg": ("IgG", "g/L"),
        "iga": ("IgA", "g/L"),
        "igm": ("IgM", "g/L"),
        "steroid_mg_per_day": (_("Systemic steroid"), _("mg/day prednisolone equivalent")),
    }

    field_order = [
        "assessed_on",
        "leukocytes",
        "neutrophils",
        "neutrophils_unit",
        "neutrophils_not_tested",
        "lymphocytes",
        "lymphocytes_unit",
        "lymphocytes_not_tested",
    ]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name in ("neutrophils", "lymphocytes"):
            self.fields[name].max_digits = None  # type: ignore[attr-defined]  # checked below
            self.fields[name].validators = []

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        leukocytes = cleaned.get("leukocytes")
        for name in ("neutrophils", "lymphocytes"):
            value = cleaned.get(name)
            if value is None:
                continue
            if cleaned.get(f"{name}_not_tested"):
                self.add_error(name, _("A value and “not tested” exclude each other."))
                continue
            unit = cleaned.get(f"{name}_unit") or "1e9/L"
            try:
                converted = to_billion_per_litre(value, unit, leukocytes)
            except ValueError:
                self.add_error(
                    "leukocytes", _("A percentage needs the leukocyte count to convert it.")
                )
                continue
            limit, message = LIMITS[name]
            if converted > limit:
                self.add_error(name, message)
                continue
            if (
                unit in ("1e9/L", "Gpt/L")
                and 20 <= value <= 100
                and (leukocytes is None or value > leukocytes)
            ):
                self.warnings.append(
                    _("%(name)s %(value)s × 10⁹/L looks like a percentage; please check the unit.")
                    % {"name": self.fields[name].label, "value": value}
                )
            cleaned[name] = converted.quantize(Decimal("0.001"))
        limits: list[tuple[str, int, Any]] = [
            ("cd4", 5000, _("CD4 above 5000/µL is not plausible.")),
            ("igg", 50, _("IgG above 50 g/L is not plausible.")),
            ("steroid_mg_per_day", 2000, _("A steroid dose above 2000 mg/day is not plausible.")),
        ]
        for name, ceiling, message in limits:
            value = cleaned.get(name)
            if value is not None and value > ceiling:
                self.add_error(name, message)
        for name in ("cd4", "igg"):
            if cleaned.get(name) is not None and cleaned.get(f"{name}_not_tested"):
                self.add_error(name, _("A value and “not tested” exclude each other."))
        if cleaned.get("steroid_since") and cleaned.get("steroid_mg_per_day") is None:
            self.add_error("steroid_mg_per_day", _("Give the dose that started on this date."))
        hospitalised, infections = (
            cleaned.get("infections_hospitalised"),
            cleaned.get("infections_12m"),
        )
        if hospitalised is not None and (infections is None or hospitalised > infections):
            self.add_error(
                "infections_hospitalised", _("More hospitalised infections than infections.")
            )
        self._ask_about_tenfold_changes(cleaned)
        return cleaned


class ImmuneAdverseEventForm(RowForm):
    date_fields = ("occurred_on",)

    class Meta:
        model = ImmuneAdverseEvent
        fields = ["organ", "grade", "treatment", "resolved", "rechallenged", "occurred_on"]
        widgets = _date_widgets(ImmuneAdverseEvent)


class ComorbidityForm(RowForm):
    date_fields = ("since",)

    class Meta:
        model = Comorbidity
        fields = ["name", "since", "note"]
        widgets = _date_widgets(Comorbidity)


class OrganFunctionForm(RowForm):
    date_fields = ("measured_on",)

    class Meta:
        model = OrganFunction
        fields = ["measured_on", "egfr", "bilirubin", "alt", "ast", "lvef"]
        widgets = _date_widgets(OrganFunction)
        formfield_callback = number_formfield

    numbers = {
        "egfr": ("eGFR", "mL/min/1.73 m²"),
        "bilirubin": (_("Bilirubin"), "mg/dL"),
        "alt": ("ALT", "U/L"),
        "ast": ("AST", "U/L"),
        "lvef": ("LVEF", "%"),
    }

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        self._ask_about_tenfold_changes(cleaned)
        return cleaned

    def clean_lvef(self) -> int | None:
        value = self.cleaned_data.get("lvef")
        if value is not None and value > 100:
            raise forms.ValidationError(_("LVEF is a percentage (0-100)."))
        return value


class MedicationForm(RowForm):
    class Meta:
        model = Medication
        fields = ["name", "kind", "dose"]


class PriorTherapyForm(Form):
    no_prior_therapy = forms.BooleanField(
        label=_("No prior tumour-specific therapy"), required=False
    )


class CategoryForm(ModelForm):
    class Meta:
        model = Category
        fields = [
            "code",
            "name_en",
            "name_de",
            "group_en",
            "group_de",
            "description_en",
            "description_de",
            "source_section",
            "source_quote",
        ]
        widgets = {
            "description_en": forms.Textarea(attrs={"rows": 3}),
            "description_de": forms.Textarea(attrs={"rows": 3}),
            "source_quote": forms.Textarea(attrs={"rows": 2}),
        }
        help_texts = {
            "source_quote": _("The sentence of the practice's source this category is drawn from."),
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # A category may carry labels only (the MII therapy-type template has no description).
        self.fields["description_en"].required = False
        self.fields["description_de"].required = False

    def clean_code(self) -> str:
        code: str = self.cleaned_data["code"].strip()
        if self.instance.pk and code == self.instance.code:
            return code  # a template's own code (e.g. "CH") stays as it was
        if not re.fullmatch(r"[a-z0-9_]+", code):
            raise forms.ValidationError(_("Use lower-case letters, digits and underscores."))
        return code


class TemplateMergeForm(Form):
    """The template's categories an admin adds to the practice's own draft."""

    codes = forms.MultipleChoiceField(
        label=_("Categories to add"), widget=forms.CheckboxSelectMultiple
    )

    def __init__(self, *args: Any, choices: list[tuple[str, str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["codes"].choices = choices  # type: ignore[attr-defined]


class PublishForm(Form):
    change_note = forms.CharField(
        label=_("Change note"), widget=forms.Textarea(attrs={"rows": 2}), max_length=2000
    )


class NoteForm(ModelForm):
    class Meta:
        model = BoardNoteVersion
        fields = BoardNoteVersion.REGISTRATION_FIELDS
        widgets = {
            "board_date": DateInput(),
            **{
                name: forms.Textarea(attrs={"rows": 2})
                for name in [
                    "question",
                    "question_radiology",
                    "question_pathology",
                    "question_radiotherapy",
                    "question_surgery",
                    "patient_goals",
                    "trial_screening",
                    "history_summary",
                    "open_questions",
                ]
            },
        }

    def __init__(self, *args: Any, language: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["board_type"] = forms.ChoiceField(
            label=_("Board type"), choices=_code_choices("mii:therapieplanung-typ", language)
        )
        self.fields["question"].required = True

    def clean_board_date(self) -> date | None:
        value: date | None = self.cleaned_data.get("board_date")
        if value and value < timezone.localdate() - timedelta(days=365):
            raise forms.ValidationError(_("This board date is more than a year in the past."))
        return value


class AmendForm(Form):
    reason = forms.CharField(
        label=_("Reason for the amendment"),
        widget=forms.Textarea(attrs={"rows": 2}),
        max_length=2000,
    )


MEASURE_ROWS = 6


class OutcomeForm(Form):
    held_on = forms.DateField(label=_("Board held on"), widget=DateInput())
    attendees = forms.CharField(label=_("Attendees"), widget=forms.Textarea(attrs={"rows": 2}))
    reason = forms.CharField(
        label=_("Reason for the new version"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
    )

    def __init__(self, *args: Any, language: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        deviations = [("", "—")] + _code_choices("mii:therapieabweichung", language)
        for index in range(1, MEASURE_ROWS + 1):
            self.fields[f"measure_{index}"] = forms.CharField(
                label=_("Measure %(n)s (as documented by the board)") % {"n": index},
                required=False,
                max_length=1000,
            )
            self.fields[f"deviation_{index}"] = forms.ChoiceField(
                label=_("Deviation at the patient's wish (measure %(n)s)") % {"n": index},
                required=False,
                choices=deviations,
            )

    def clean_held_on(self) -> date:
        value: date = self.cleaned_data["held_on"]
        if value > timezone.localdate():
            raise forms.ValidationError(_("This date is in the future."))
        return value

    def measures(self) -> list[dict[str, str]]:
        return [
            {
                "text": self.cleaned_data[f"measure_{i}"].strip(),
                "deviation": self.cleaned_data[f"deviation_{i}"],
            }
            for i in range(1, MEASURE_ROWS + 1)
            if self.cleaned_data.get(f"measure_{i}", "").strip()
        ]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if not any((cleaned.get(f"measure_{i}") or "").strip() for i in range(1, MEASURE_ROWS + 1)):
            self.add_error(
                "measure_1", _("Record at least one measure as the board documented it.")
            )
        return cleaned


# --- query strings and small POSTs: every parameter a view reads goes through one of these, so
# odd input (NUL, control characters, impossible dates, huge numbers) is a form error and the
# view answers 400, never 500. CharField refuses NUL itself (Django's null-character validator).

MAX_ID = 2**31 - 1  # PostgreSQL integer ids
MAX_SEQ = 2**62  # bigint audit sequence numbers


class CaseListQuery(Form):
    q = forms.CharField(required=False, max_length=200)
    situation = forms.ChoiceField(required=False, choices=[("", ""), *Situation.choices])
    tumour = forms.CharField(required=False, max_length=64)
    complete = forms.ChoiceField(required=False, choices=[("", ""), ("yes", ""), ("no", "")])
    sort = forms.ChoiceField(
        required=False, choices=[("label", ""), ("-updated", ""), ("-created", "")]
    )
    # The keyset cursor "<last sort value>|<last id>"; its parts are read by the view.
    after = forms.CharField(required=False, max_length=400)


class OncotreeQuery(Form):
    q = forms.CharField(required=False, max_length=200)
    oncotree = forms.CharField(required=False, max_length=200)
    # The FHIR import preview has one type-ahead per code question: the name of the input
    # that asks (its value is the query) and whose id the picked option fills.
    target = forms.RegexField(regex=r"^oq_[0-9a-f]{12}$", required=False)


class AuditQuery(Form):
    user = forms.IntegerField(required=False, min_value=1, max_value=MAX_ID)
    case = forms.CharField(required=False, max_length=100)
    kind = forms.ChoiceField(
        required=False, choices=[("", ""), ("change", ""), ("access", ""), ("login", "")]
    )
    table = forms.CharField(required=False, max_length=63)
    date_from = forms.DateField(required=False)
    date_to = forms.DateField(required=False)
    before = forms.IntegerField(required=False, min_value=0, max_value=MAX_SEQ)


class HistoryQuery(Form):
    before = forms.IntegerField(required=False, min_value=0, max_value=MAX_SEQ)
    # "Case viewed" events are left out unless asked for, so the changes come first.
    views = forms.BooleanField(required=False)


class ReportQuery(Form):
    days = forms.IntegerField(required=False, min_value=0, max_value=3650)
    date_from = forms.DateField(required=False)
    date_to = forms.DateField(required=False)


class NoteListQuery(Form):
    state = forms.ChoiceField(
        required=False,
        choices=[("", ""), *NoteState.choices, ("outcome_pending", "")],
    )


class NoteVersionQuery(Form):
    v = forms.IntegerField(required=False, min_value=1, max_value=32767)


class CatalogueDiffQuery(Form):
    a = forms.IntegerField(min_value=1, max_value=32767)
    b = forms.IntegerField(min_value=1, max_value=32767)


class IdForm(Form):
    """One posted id (practice to switch to, catalogue version to move to)."""

    id = forms.IntegerField(min_value=1, max_value=MAX_ID)


class ChecklistItemForm(Form):
    status = forms.ChoiceField(
        choices=ItemStatus.choices,
        error_messages={"required": _("Choose one of the statuses.")},
    )
    note = forms.CharField(required=False, max_length=4000, widget=forms.Textarea)
    # The item's revision as the form showed it (0: no item yet); missing counts as stale.
    revision = forms.IntegerField(required=False, min_value=0, max_value=MAX_ID)


class SignForm(Form):
    """The confirmation step of signing: the physician's password again, and the note's
    revision and the case version the summary was shown with (a changed note or record is
    refused by the service)."""

    password = forms.CharField(
        label=_("Your password"),
        strip=False,
        max_length=4096,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password", "autofocus": True}),
    )
    revision = forms.IntegerField(min_value=0, max_value=MAX_ID, widget=forms.HiddenInput)
    case_version = forms.IntegerField(min_value=0, max_value=MAX_ID, widget=forms.HiddenInput)
    code = forms.CharField(
        label=_("Code"),
        max_length=32,
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "spellcheck": "false"}),
        help_text=_("The 6-digit code from your authenticator app, or one of your recovery codes."),
    )

    def __init__(
        self, *args: Any, user: Any, request: Any = None, with_code: bool = False, **kwargs: Any
    ) -> None:
        """`with_code`: the user has a second factor and entered no code within
        `second_factor.REAUTH_SECONDS`; the view checks the code once the password is right.
        `request`: for the lockout's count of wrong passwords."""
        super().__init__(*args, **kwargs)
        self.user = user
        self.request = request
        if not with_code:
            del self.fields["code"]

    def clean_password(self) -> str:
        password: str = self.cleaned_data["password"]
        if not second_factor.password_is_right(self.request, self.user, password):
            raise forms.ValidationError(
                _("The password is not correct. Nothing was signed."), code="wrong_password"
            )
        return password


class NoteExportQuery(Form):
    """The language of a print view, PDF or Markdown export; the reader's own if not given."""

    lang = forms.ChoiceField(required=False, choices=[("", ""), *settings.LANGUAGES])


# --- FHIR import ----------------------------------------------------------------------------


class FhirUploadForm(Form):
    bundle_file = forms.FileField(label=_("FHIR Bundle (JSON file)"), required=False)
    bundle_text = forms.CharField(
        label=_("or paste the Bundle"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 8, "spellcheck": "false"}),
    )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if not cleaned.get("bundle_file") and not (cleaned.get("bundle_text") or "").strip():
            raise forms.ValidationError(_("Choose a file or paste a Bundle."))
        return cleaned


ONCOTREE_ANSWER = re.compile(r"\(([A-Z0-9_]+)\)\s*$")


class FhirPreviewForm(Form):
    """What the physician completes in an import preview: the case header, one answer per code
    without a mapping, each primary's laterality and each metastasis's timing (and date when
    the bundle gives none)."""

    label = forms.CharField(
        label=_("Pseudonymous label"),
        max_length=64,
        help_text=_("A pseudonym unique in the practice; never the patient's name."),
    )
    year_of_birth = forms.IntegerField(label=_("Year of birth"), min_value=1900)
    sex = forms.ChoiceField(label=_("Sex"), choices=Sex.choices)
    situation = forms.ChoiceField(
        label=_("Tumour situation"),
        choices=[("", "—"), *Situation.choices],
    )

    def __init__(
        self, *args: Any, preview: dict[str, Any], questions: list[dict[str, Any]], **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.fields["year_of_birth"].validators.append(
            django_validators.MaxValueValidator(timezone.localdate().year)
        )
        self.preview = preview
        self.questions = questions
        sites: list[tuple[str, str]] | None = None
        for question in questions:
            name = f"oq_{question['key']}"
            if question["learned"]:
                continue  # the practice's code map answers it: shown, not asked
            if question["target"] == "oncotree":
                field: forms.Field = forms.CharField(
                    label=_("OncoTree tumour type for “%(text)s”")
                    % {"text": question["display"] or question["code"]},
                    max_length=340,
                )
                field.widget.attrs.update(
                    {
                        "autocomplete": "off",
                        "role": "combobox",
                        "aria-autocomplete": "list",
                        "aria-controls": f"oncotree-results-{question['key']}",
                        "aria-expanded": "false",
                        "data-hx-get": reverse("oncotree_search"),
                        "data-hx-vals": json.dumps({"target": name}),
                        "data-hx-trigger": "input changed delay:150ms, focus",
                        "data-hx-target": f"#oncotree-results-{question['key']}",
                        "data-hx-swap": "innerHTML",
                    }
                )
                if question.get("answer_text"):
                    self.initial[name] = question["answer_text"]
            else:
                if sites is None:
                    sites = _code_choices("obds:fm_lokalisation", get_language())
                field = forms.ChoiceField(
                    label=_("Metastasis site for “%(text)s”")
                    % {"text": question["display"] or question["code"]},
                    choices=[("", "—"), *sites],
                )
                self.initial[name] = question.get("answer") or ""
            self.fields[name] = field
        for tumour in preview["tumours"]:
            name = f"laterality_{tumour['key']}"
            self.fields[name] = forms.ChoiceField(
                label=_("Laterality of “%(text)s”") % {"text": tumour["text"]},
                choices=Laterality.choices,
            )
            self.initial[name] = tumour["laterality"]
        for metastasis in preview["metastases"]:
            name = f"timing_{metastasis['key']}"
            self.fields[name] = forms.ChoiceField(
                label=_("Timing of “%(text)s”") % {"text": metastasis["text"]},
                choices=[("", "—"), *MetastasisTiming.choices],
            )
            if not metastasis["detected_on"]:
                self.fields[f"detected_{metastasis['key']}"] = PartialDateField(
                    label=_("Detected on (“%(text)s”)") % {"text": metastasis["text"]}
                )
        self.initial.setdefault("year_of_birth", preview["patient"]["year_of_birth"])
        self.initial.setdefault("sex", preview["patient"]["sex"])

    def clean(self) -> dict[str, Any]:
        """Every OncoTree answer and direct OncoTree code found in one query."""
        cleaned = super().clean() or {}
        wanted: dict[str, str] = {}
        for question in self.questions:
            name = f"oq_{question['key']}"
            if question["target"] == "oncotree" and cleaned.get(name):
                text = cleaned[name].strip()
                match = ONCOTREE_ANSWER.search(text)
                wanted[name] = match.group(1) if match else text.upper()
        direct = {t["oncotree_node"] for t in self.preview["tumours"] if t.get("oncotree_node")}
        direct |= {
            q["answer"] for q in self.questions if q["learned"] and q["target"] == "oncotree"
        }
        nodes = {
            c.code: c
            for c in Code.objects.filter(system="oncotree", code__in={*wanted.values(), *direct})
        }
        for name, code in wanted.items():
            node = nodes.get(code)
            if node is None:
                self.add_error(
                    name,
                    _(
                        "“%(text)s” is not an OncoTree tumour type. Type part of a name or code"
                        " and pick from the list."
                    )
                    % {"text": cleaned[name]},
                )
            elif not node.selectable:
                self.add_error(
                    name,
                    _("“%(name)s” is a tissue, not a diagnosis. Pick a tumour type within it.")
                    % {"name": node.display},
                )
            else:
                cleaned[name] = node
        for question in self.questions:
            node = nodes.get(question["answer"])
            if (
                question["learned"]
                and question["target"] == "oncotree"
                and not (node is not None and node.selectable)
            ):
                self.add_error(
                    None,
                    _(
                        "The practice's code map answers “%(text)s” with %(code)s, which is not"
                        " an OncoTree tumour type (any more). Change it on the code map page."
                    )
                    % {"text": question["display"], "code": question["answer"]},
                )
        self.nodes = nodes
        self._check_imported_dates(cleaned)
        return cleaned

    def _check_imported_dates(self, cleaned: dict[str, Any]) -> None:
        """The dates the bundle gives obey the rules of hand entry: none in the future, none
        before the year of birth. They cannot be edited here, so the message names the source;
        the physician corrects the bundle (or enters the case by hand)."""
        today = timezone.localdate()
        year_of_birth = cleaned.get("year_of_birth")
        found = []
        for group, name in (
            ("tumours", "diagnosed_on"),
            ("staging", "staged_on"),
            ("metastases", "detected_on"),
            ("performance", "assessed_on"),
            ("comorbidities", "since"),
        ):
            for row in self.preview[group]:
                if not row.get(name):
                    continue
                value = rules.PartialDate(
                    date.fromisoformat(row[name]), row.get(f"{name}_precision", rules.DAY)
                )
                source = row.get("source") or ", ".join(row.get("sources", []))
                shown = row[name][: {rules.YEAR: 4, rules.MONTH: 7}.get(value.precision, 10)]
                if value.earliest > today:
                    found.append(
                        _("%(source)s: the date %(date)s is in the future.")
                        % {"source": source, "date": shown}
                    )
                elif year_of_birth and value.latest.year < year_of_birth:
                    found.append(
                        _("%(source)s: the date %(date)s is before the year of birth.")
                        % {"source": source, "date": shown}
                    )
        for message in found:
            self.add_error(None, message)


class CodeMappingForm(Form):
    target_code = forms.ChoiceField(label=_("Our code"))

    def __init__(self, *args: Any, choices: list[tuple[str, str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["target_code"].choices = choices  # type: ignore[attr-defined]
