from __future__ import annotations

import json
import re
from datetime import date
from decimal import Decimal
from typing import Any

from django import forms
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import AuthenticationForm
from django.core import validators as django_validators
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q, Subquery
from django.urls import reverse
from django.utils import formats, timezone
from django.utils.translation import get_language
from django.utils.translation import gettext_lazy as _

from checklist import genes, hgvs, rules, second_factor
from checklist.models import (
    AE_NUMERIC_GRADES,
    FIRST_DEGREE_RELATIONS,
    REGULAR_END_REASONS,
    SOLID_TUMOUR_CRITERIA,
    AdverseEvent,
    AeCourse,
    AeGrade,
    AgendaItem,
    AgendaStatus,
    AlcoholUse,
    Biomarker,
    Board,
    BoardMeeting,
    BoardNoteVersion,
    Case,
    Category,
    Code,
    Comorbidity,
    Discipline,
    EpisodeKind,
    EstablishedBy,
    FamilyHistory,
    GenomicResultKind,
    GenomicVariant,
    ImmuneFinding,
    ItemStatus,
    Laterality,
    Lifestyle,
    LinePosition,
    Medication,
    Membership,
    Metastasis,
    MetastasisStatus,
    MetastasisTiming,
    MrdStatus,
    NoteState,
    OrganFunction,
    PerformanceStatus,
    Practice,
    Prophylaxis,
    Relation,
    RelativeDegree,
    Response,
    ResultStatus,
    Sex,
    Situation,
    SmokingStatus,
    StagingRecord,
    StagingSystem,
    TherapyLine,
    Tumour,
    Vaccination,
    VariantType,
    YesNoRecorded,
    YesNoUnknown,
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


def partial_date_formats(language: str | None = None) -> dict[str, Any]:
    """The day, month and year formats the interface language types, spelled out: German
    TT.MM.JJJJ, MM/JJJJ, JJJJ; English YYYY-MM-DD, YYYY-MM, YYYY."""
    day = date_format_hint(language)
    month = _("MM/YYYY") if day.startswith(str(DATE_PARTS["%d"])) else _("YYYY-MM")
    return {"day": day, "month": month, "year": DATE_PARTS["%Y"]}


def partial_date_hint(language: str | None = None) -> str:
    return str(_("%(day)s, %(month)s or %(year)s") % partial_date_formats(language))


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
            raise forms.ValidationError(
                self.error_messages["invalid"], code="invalid", params=partial_date_formats()
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
# The project's own M codes (TNM 9 lung: M1c1, M1c2), in no oBDS or MII list.
PROJECT_TNM_M = "project:tnm_m"


def tnm_choices(letter: str) -> list[tuple[str, str]]:
    """A T, N or M list in clinical order (the order of the code list); the project's own M
    codes follow the oBDS code they refine (M1c), marked as project codes."""
    choices = [(c, f"{letter.upper()}{c}") for c, _label in _code_choices(TNM_LISTS[letter])]
    if letter != "m":
        return choices
    project = [
        (c, _("M%(code)s (project code, TNM 9 lung)") % {"code": c})
        for c, _label in _code_choices(PROJECT_TNM_M)
    ]
    codes = [c for c, _label in choices]
    at = codes.index("1c") + 1 if "1c" in codes else len(choices)
    return choices[:at] + project + choices[at:]


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
        for letter in TNM_LISTS:
            self.fields[f"{letter}_category"] = TnmCategoryField(
                letter=letter,
                label=letter.upper(),
                required=False,
                choices=blank + tnm_choices(letter),
            )
        for name, system in [
            ("l_category", "obds:tnm_l"),
            ("v_category", "obds:tnm_v"),
            ("pn_category", "obds:tnm_pn"),
        ]:
            self.fields[name] = forms.ChoiceField(
                label=self.fields[name].label,
                required=False,
                choices=blank
                + [(c, f"{c}: {label}") for c, label in _code_choices(system, self.language)],
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
            project = set(Code.objects.of(PROJECT_TNM_M).values_list("code", flat=True))
            if cleaned.get("m_category") in project and cleaned.get("tnm_edition") != "9":
                self.add_error(
                    "m_category",
                    _("M%(code)s is a subcategory of TNM 9 (lung): give TNM edition 9.")
                    % {"code": cleaned["m_category"]},
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
            "specimen_type",
            "specimen",
            "sampled_on",
            "method",
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
        fields = [
            "site",
            "side",
            "level",
            "largest_size_mm",
            "lesions",
            "detected_on",
            "timing",
            "established_by",
        ]
        widgets = _date_widgets(Metastasis)
        formfield_callback = number_formfield

    numbers = {"largest_size_mm": (_("Largest size"), "mm")}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["site"] = forms.ChoiceField(
            label=_("Site"),
            choices=[("", "—")] + _code_choices("obds:fm_lokalisation", self.language),
        )
        # "Imaging, method not recorded" is what older rows say; a new entry names the method.
        if self.instance.established_by != EstablishedBy.IMAGING_UNSPECIFIED:
            method = self.fields["established_by"]
            method.choices = [  # type: ignore[attr-defined]
                c
                for c in method.choices  # type: ignore[attr-defined]
                if c[0] != EstablishedBy.IMAGING_UNSPECIFIED
            ]

    def clean_largest_size_mm(self) -> Decimal | None:
        value = self.cleaned_data.get("largest_size_mm")
        if value is not None and value <= 0:
            raise forms.ValidationError(_("A size is above 0 mm."))
        return value

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


class LinesField(forms.CharField):
    """Several short entries, one per line of a text area (an episode's agents): cleans to a
    list without empty lines."""

    widget = forms.Textarea(attrs={"rows": 2})

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, (list, tuple)):
            return "\n".join(value)
        return value

    def to_python(self, value: Any) -> list[str]:  # type: ignore[override]
        if isinstance(value, (list, tuple)):
            return [str(v).strip() for v in value if str(v).strip()]
        text = super().to_python(value) or ""
        return [part.strip() for part in text.splitlines() if part.strip()]

    def validate(self, value: Any) -> None:
        if self.required and not value:
            raise forms.ValidationError(self.error_messages["required"], code="required")
        for part in value:
            if len(part) > 200:
                raise forms.ValidationError(_("Each entry has at most 200 characters."))

    def run_validators(self, value: Any) -> None:
        for part in value:
            super().run_validators(part)


class TherapyLineForm(RowForm):
    """A therapy episode. Contradictions the physician may know to be right (an ongoing
    episode with an end date, a regular end although an adverse event led to stopping, two
    systemic lines with the same number) come back as warnings with a box to tick; ticked,
    the episode saves as entered."""

    date_fields = ("started_on", "ended_on")

    class Meta:
        model = TherapyLine
        fields = [
            "kind",
            "number",
            "position",
            "types",
            "regimen",
            "agents",
            "intent",
            "started_on",
            "ended_on",
            "ongoing",
            "cycles",
            "dose_reductions",
            "response",
            "response_criteria",
            "mrd",
            "mrd_sensitivity",
            "mrd_specimen",
            "end_reason",
            "category",
        ]
        widgets = _date_widgets(TherapyLine)

    def __init__(self, *args: Any, categories: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["kind"].required = False  # not given: a systemic line
        self.fields["number"].help_text = _(
            "Systemic lines only, counted as you count them (e.g. IMWG); other episodes have"
            " no number."
        )
        self.fields["types"] = forms.MultipleChoiceField(
            label=_("Therapy types"),
            required=False,
            choices=_code_choices("mii:therapie-typ", self.language),
            widget=forms.CheckboxSelectMultiple,
        )
        self.fields["agents"] = LinesField(
            label=_("Agents"), required=False, help_text=_("One per line.")
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

    def clean_kind(self) -> str:
        return self.cleaned_data.get("kind") or EpisodeKind.SYSTEMIC

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        start, end = cleaned.get("started_on"), cleaned.get("ended_on")
        systemic = cleaned.get("kind") == EpisodeKind.SYSTEMIC
        number = cleaned.get("number")
        if systemic and number is None:
            self.add_error("number", _("A systemic line needs its line number."))
        if not systemic and number is not None:
            self.add_error(
                "number", _("Only systemic lines carry a line number; leave it empty here.")
            )
        if systemic and not cleaned.get("types"):
            self.add_error("types", _("Give the therapy types of the systemic line."))
        if cleaned.get("ongoing") and cleaned.get("end_reason"):
            self.add_error("end_reason", _("An ongoing episode has no end reason."))
        if start and end and end.certainly_before(start):
            self.add_error("ended_on", _("The end is before the start."))
        criteria = cleaned.get("response_criteria")
        if criteria in SOLID_TUMOUR_CRITERIA and self.case and self.case.is_haematological:
            self.add_error("response_criteria", _("RECIST applies to solid tumours only."))
        mrd = cleaned.get("mrd")
        measured = mrd in (MrdStatus.NEGATIVE, MrdStatus.POSITIVE)
        for name in ("mrd_sensitivity", "mrd_specimen"):
            if cleaned.get(name) not in (None, "") and not measured:
                self.add_error(name, _("Sensitivity and specimen belong to an MRD result."))
        if not self.errors:
            self._ask_about_contradictions(cleaned, systemic, number)
        return cleaned

    def _ask_about_contradictions(
        self, cleaned: dict[str, Any], systemic: bool, number: int | None
    ) -> None:
        if self.confirmed or self.case is None:
            return
        asked = False
        if cleaned.get("ongoing") and cleaned.get("ended_on"):
            self.add_error("ended_on", _("The episode is marked ongoing but has an end date."))
            asked = True
        if cleaned.get("end_reason") in REGULAR_END_REASONS and self.instance.pk:
            stopped = [e.term for e in self.instance.events.all() if e.led_to_stop]
            if stopped:
                self.add_error(
                    "end_reason",
                    _(
                        "The end reason says “regular end”, but an adverse event of this"
                        " episode is marked “led to stopping the therapy” (%(terms)s)."
                    )
                    % {"terms": ", ".join(stopped)},
                )
                asked = True
        if systemic and number is not None:
            same = TherapyLine.objects.filter(
                case=self.case, kind=EpisodeKind.SYSTEMIC, number=number
            ).exclude(pk=self.instance.pk)
            if same.exists():
                self.add_error(
                    "number",
                    _("Another systemic line of this case has number %(n)s.") % {"n": number},
                )
                asked = True
        if asked:
            self._add_confirm_field()
            self.add_error(
                None,
                _(
                    "The values marked below contradict each other or the record. If they are"
                    " correct, tick the box at the end of the form and save again."
                ),
            )


class AdverseEventForm(RowForm):
    date_fields = ("onset_on", "steroid_started_on")

    class Meta:
        model = AdverseEvent
        fields = [
            "line",
            "attributed_agent",
            "term",
            "grade",
            "ctcae_version",
            "onset_on",
            "immune_related",
            "steroids",
            "steroid_dose",
            "steroid_started_on",
            "other_immunosuppressants",
            "treatment",
            "course",
            "improved_to_grade",
            "led_to_stop",
            "dose_reduced",
            "rechallenged",
        ]
        widgets = _date_widgets(AdverseEvent)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        line = self.fields["line"]
        line.queryset = TherapyLine.objects.filter(case=self.case).order_by(  # type: ignore[attr-defined]
            "started_on", "pk"
        )
        line.empty_label = _("no episode (the case)")  # type: ignore[attr-defined]
        line.label_from_instance = lambda episode: (  # type: ignore[attr-defined]
            f"{episode.label(self.language)}: {episode.regimen or ', '.join(episode.agents) or '—'}"
        )
        self.fields["steroids"].label = _("Systemic steroids given")
        self.fields["rechallenged"].label = _("Rechallenged")
        self.fields["course"].required = False  # not given: "course not recorded"

    def clean_course(self) -> str:
        return self.cleaned_data.get("course") or AeCourse.NOT_RECORDED

    def clean_grade(self) -> str:
        grade: str = self.cleaned_data["grade"]
        if grade == AeGrade.G5 and not (self.case and self.case.deceased_on):
            raise forms.ValidationError(
                _("Grade 5 means death: record the date of death on the case first.")
            )
        return grade

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        course, improved = cleaned.get("course"), cleaned.get("improved_to_grade")
        grade = cleaned.get("grade")
        if course == AeCourse.IMPROVED and improved is None:
            self.add_error("improved_to_grade", _("Give the grade it improved to."))
        if course != AeCourse.IMPROVED and improved is not None:
            self.add_error(
                "improved_to_grade", _("A grade it improved to belongs to the course “improved”.")
            )
        if improved is not None and grade in AE_NUMERIC_GRADES and improved >= int(grade):
            self.add_error("improved_to_grade", _("An improvement is to a lower grade."))
        steroid_details = cleaned.get("steroid_dose") or cleaned.get("steroid_started_on")
        if steroid_details and cleaned.get("steroids") != YesNoRecorded.YES:
            self.add_error("steroids", _("A steroid dose or start needs “steroids given: yes”."))
        line = cleaned.get("line")
        if (
            not self.errors
            and not self.confirmed
            and line is not None
            and cleaned.get("led_to_stop")
            and line.end_reason in REGULAR_END_REASONS
        ):
            self.add_error(
                "led_to_stop",
                _(
                    "This event is marked “led to stopping the therapy”, but the episode's end"
                    " reason says “regular end”."
                ),
            )
            self._add_confirm_field()
            self.add_error(
                None,
                _(
                    "The values marked below contradict each other or the record. If they are"
                    " correct, tick the box at the end of the form and save again."
                ),
            )
        return cleaned


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


COUNT_UNITS: list[tuple[str, Any]] = [
    ("1e9/L", "10⁹/L"),
    ("Gpt/L", "Gpt/L"),
    ("/uL", "/µL"),
    ("%", _("% of leukocytes")),
]
HAEMOGLOBIN_UNITS: list[tuple[str, Any]] = [("g/dL", "g/dL"), ("g/L", "g/L"), ("mmol/L", "mmol/L")]
# The values entered with a unit, converted on entry to the unit the finding stores (the
# first of its units); the laboratory's value and unit are kept in `<name>_lab_value` and
# `<name>_lab_unit`. A percentage is offered only for the differential counts.
CONVERTED: dict[str, list[tuple[str, Any]]] = {
    "leukocytes": COUNT_UNITS[:3],
    "neutrophils": COUNT_UNITS,
    "lymphocytes": COUNT_UNITS,
    "platelets": COUNT_UNITS[:3],
    "haemoglobin": HAEMOGLOBIN_UNITS,
}
LIMITS = {
    "leukocytes": (Decimal(1000), _("Leukocytes above 1000 × 10⁹/L are not plausible.")),
    "neutrophils": (Decimal(100), _("Neutrophils above 100 × 10⁹/L are not plausible.")),
    "lymphocytes": (Decimal(500), _("Lymphocytes above 500 × 10⁹/L are not plausible.")),
    "platelets": (Decimal(5000), _("Platelets above 5000 × 10⁹/L are not plausible.")),
    "haemoglobin": (Decimal(30), _("Haemoglobin above 30 g/dL is not plausible.")),
}
# Haemoglobin in mmol/L (of the haem monomer, as German laboratories report it) to g/dL.
HAEMOGLOBIN_G_PER_DL_PER_MMOL = Decimal("1.6114")


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


def to_gram_per_decilitre(value: Decimal, unit: str) -> Decimal:
    """Haemoglobin in the unit the lab reported, as g/dL."""
    if unit == "g/dL":
        return value
    if unit == "g/L":
        return value / Decimal(10)
    if unit == "mmol/L":
        return value * HAEMOGLOBIN_G_PER_DL_PER_MMOL
    raise ValueError(f"unknown unit {unit}")


def lab_text(row: Any, name: str) -> str:
    """The laboratory's value and unit of a converted value ("150000 /µL"), or "" when the
    lab reported it in the stored unit (nothing to add) or nothing was kept."""
    unit = getattr(row, f"{name}_lab_unit", "")
    value = getattr(row, f"{name}_lab_value", None)
    if not unit or value is None or unit == CONVERTED[name][0][0]:
        return ""
    return f"{format_decimal(value)} {dict(COUNT_UNITS + HAEMOGLOBIN_UNITS)[unit]}"


class ImmuneFindingForm(RowForm):
    date_fields = ("assessed_on", "steroid_since", "active_infection_on")

    class Meta:
        model = ImmuneFinding
        fields = [
            "assessed_on",
            "leukocytes",
            "neutrophils",
            "neutrophils_not_tested",
            "lymphocytes",
            "lymphocytes_not_tested",
            "platelets",
            "haemoglobin",
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
            "anti_hbs",
            "hbv_dna_qualifier",
            "hbv_dna",
            "hcv",
            "active_infection",
            "active_infection_type",
            "active_infection_on",
            "transplant_gvhd",
            "asplenia",
            "autoimmune_disease",
            "infections_12m",
            "infections_hospitalised",
            "comment",
        ]
        widgets = {**_date_widgets(ImmuneFinding), "comment": forms.Textarea(attrs={"rows": 3})}
        labels = {
            "leukocytes": _("Leukocytes"),
            "neutrophils": _("Neutrophils"),
            "lymphocytes": _("Lymphocytes"),
            "platelets": _("Platelets"),
            "haemoglobin": _("Haemoglobin"),
        }
        formfield_callback = number_formfield

    numbers = {
        "leukocytes": (_("Leukocytes"), "× 10⁹/L"),
        "neutrophils": (_("Neutrophils"), "× 10⁹/L"),
        "lymphocytes": (_("Lymphocytes"), "× 10⁹/L"),
        "platelets": (_("Platelets"), "× 10⁹/L"),
        "haemoglobin": (_("Haemoglobin"), "g/dL"),
        "cd4": ("CD4", "/µL"),
        "igg": ("IgG", "g/L"),
        "iga": ("IgA", "g/L"),
        "igm": ("IgM", "g/L"),
        "steroid_mg_per_day": (_("Systemic steroid"), _("mg/day prednisolone equivalent")),
    }

    field_order = [
        "assessed_on",
        "leukocytes",
        "leukocytes_unit",
        "neutrophils",
        "neutrophils_unit",
        "neutrophils_not_tested",
        "lymphocytes",
        "lymphocytes_unit",
        "lymphocytes_not_tested",
        "platelets",
        "platelets_unit",
        "haemoglobin",
        "haemoglobin_unit",
    ]

    UNIT_LABELS = {
        "leukocytes": _("Unit of the leukocyte count"),
        "neutrophils": _("Unit of the neutrophil count"),
        "lymphocytes": _("Unit of the lymphocyte count"),
        "platelets": _("Unit of the platelet count"),
        "haemoglobin": _("Unit of the haemoglobin"),
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name, units in CONVERTED.items():
            self.fields[name].max_digits = None  # type: ignore[attr-defined]  # checked below
            self.fields[name].decimal_places = None  # type: ignore[attr-defined]
            self.fields[name].validators = []
            self.fields[f"{name}_unit"] = forms.ChoiceField(
                label=self.UNIT_LABELS[name], choices=units, required=False
            )
            # An edit shows what the laboratory reported, in its unit.
            row = self.instance
            if row.pk and not self.is_bound and getattr(row, f"{name}_lab_unit"):
                self.initial[name] = getattr(row, f"{name}_lab_value")
                self.initial[f"{name}_unit"] = getattr(row, f"{name}_lab_unit")
        self.order_fields(self.field_order)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        self._convert(cleaned)
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
        if cleaned.get("hbv_dna_qualifier") and cleaned.get("hbv_dna") is None:
            self.add_error("hbv_dna", _("Give the limit the HBV DNA is below or above."))
        if cleaned.get("hbv_dna") is not None and cleaned["hbv_dna"] < 0:
            self.add_error("hbv_dna", _("HBV DNA is not negative."))
        infection_details = cleaned.get("active_infection_type") or cleaned.get(
            "active_infection_on"
        )
        if infection_details and cleaned.get("active_infection") != YesNoUnknown.YES:
            self.add_error(
                "active_infection",
                _("The type and date of an infection go with “active infection: yes”."),
            )
        hospitalised, infections = (
            cleaned.get("infections_hospitalised"),
            cleaned.get("infections_12m"),
        )
        if hospitalised is not None and (infections is None or hospitalised > infections):
            self.add_error(
                "infections_hospitalised", _("More hospitalised infections than infections.")
            )
        self._ask_about_counts_above_leukocytes(cleaned)
        self._ask_about_tenfold_changes(cleaned)
        return cleaned

    def _convert(self, cleaned: dict[str, Any]) -> None:
        """Each value entered with a unit becomes the stored unit; the lab's value and unit
        are kept on the instance. Leukocytes first: a percentage is of them."""
        self.lab: dict[str, tuple[Decimal | None, str]] = {}
        for name, units in CONVERTED.items():
            value = cleaned.get(name)
            if value is None:
                self.lab[name] = (None, "")
                continue
            if cleaned.get(f"{name}_not_tested"):
                self.add_error(name, _("A value and “not tested” exclude each other."))
                continue
            unit = cleaned.get(f"{name}_unit") or units[0][0]
            try:
                if name == "haemoglobin":
                    converted = to_gram_per_decilitre(value, unit)
                else:
                    converted = to_billion_per_litre(value, unit, cleaned.get("leukocytes"))
            except ValueError:
                self.add_error(
                    "leukocytes", _("A percentage needs the leukocyte count to convert it.")
                )
                continue
            limit, message = LIMITS[name]
            if converted > limit:
                self.add_error(name, message)
                continue
            leukocytes = cleaned.get("leukocytes")
            if (
                name in ("neutrophils", "lymphocytes")
                and unit in ("1e9/L", "Gpt/L")
                and 20 <= value <= 100
                and (leukocytes is None or value > leukocytes)
            ):
                self.warnings.append(
                    _("%(name)s %(value)s × 10⁹/L looks like a percentage; please check the unit.")
                    % {"name": self.fields[name].label, "value": value}
                )
            places = Decimal("0.01") if name == "haemoglobin" else Decimal("0.001")
            cleaned[name] = converted.quantize(places)
            self.lab[name] = (value, unit)

    def _ask_about_counts_above_leukocytes(self, cleaned: dict[str, Any]) -> None:
        """An absolute neutrophil or lymphocyte count above the leukocyte count of the same
        date (this finding's, or another finding's of the same day) cannot be: a soft warning
        with the box to confirm, as for a tenfold change. One query when this finding gives
        no leukocyte count."""
        if self.confirmed or self.case is None:
            return
        counts = {
            name: cleaned[name]
            for name in ("neutrophils", "lymphocytes")
            if isinstance(cleaned.get(name), Decimal) and name not in self.errors
        }
        if not counts:
            return
        leukocytes, day = cleaned.get("leukocytes"), cleaned.get("assessed_on")
        if leukocytes is None:
            if not isinstance(day, rules.PartialDate) or day.precision != rules.DAY:
                return
            same_day = ImmuneFinding.objects.filter(
                case=self.case,
                assessed_on=day.value,
                assessed_on_precision=rules.DAY,
                leukocytes__isnull=False,
            )
            if self.instance.pk:
                same_day = same_day.exclude(pk=self.instance.pk)
            leukocytes = same_day.order_by("-pk").values_list("leukocytes", flat=True).first()
        if leukocytes is None:
            return
        above = False
        for name, value in counts.items():
            if value > leukocytes:
                self.add_error(
                    name,
                    _(
                        "%(value)s × 10⁹/L is more than the leukocyte count of the same date"
                        " (%(leukocytes)s × 10⁹/L)."
                    )
                    % {"value": format_decimal(value), "leukocytes": format_decimal(leukocytes)},
                )
                above = True
        if above:
            self._add_confirm_field()
            self.add_error(
                None,
                _(
                    "An absolute count is above the leukocyte count of the same date (marked"
                    " below). If the values are correct, tick the box at the end of the form"
                    " and save again."
                ),
            )

    def save(self, commit: bool = True) -> ImmuneFinding:
        finding: ImmuneFinding = super().save(commit=False)
        for name, (value, unit) in getattr(self, "lab", {}).items():
            setattr(finding, f"{name}_lab_value", value)
            setattr(finding, f"{name}_lab_unit", unit)
        if commit:
            finding.save()
        return finding


class ProphylaxisForm(RowForm):
    date_fields = ("since", "until")

    class Meta:
        model = Prophylaxis
        fields = ["agent", "kind", "since", "until"]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        since, until = cleaned.get("since"), cleaned.get("until")
        if since and until and until.certainly_before(since):
            self.add_error("until", _("The end is before the start."))
        return cleaned


class VaccinationForm(RowForm):
    date_fields = ("given_on",)

    class Meta:
        model = Vaccination
        fields = ["vaccine", "given_on", "note"]
        widgets = {"note": forms.Textarea(attrs={"rows": 2})}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Optional in the table only for the text findings held before vaccinations were rows.
        self.fields["vaccine"].required = True
        self.fields["given_on"].required = True


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


# --- lifestyle, family history, genomic findings ------------------------------------------


class LifestyleForm(RowForm):
    date_fields = ("recorded_on", "quit_on")

    class Meta:
        model = Lifestyle
        fields = [
            "recorded_on",
            "smoking",
            "pack_years",
            "quit_on",
            "alcohol",
            "alcohol_units_per_week",
            "comment",
        ]
        widgets = {**_date_widgets(Lifestyle), "comment": forms.Textarea(attrs={"rows": 2})}
        formfield_callback = number_formfield

    numbers = {
        "pack_years": (_("Pack-years"), ""),
        "alcohol_units_per_week": (_("Alcohol"), _("units/week")),
    }

    def clean_pack_years(self) -> Decimal | None:
        value: Decimal | None = self.cleaned_data.get("pack_years")
        if value is not None and not 0 <= value <= 300:
            raise forms.ValidationError(_("Pack-years are between 0 and 300."))
        return value

    def clean_alcohol_units_per_week(self) -> Decimal | None:
        value: Decimal | None = self.cleaned_data.get("alcohol_units_per_week")
        if value is not None and not 0 <= value <= 500:
            raise forms.ValidationError(_("Units per week are between 0 and 500."))
        return value

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        smoking = cleaned.get("smoking")
        if smoking == SmokingStatus.NEVER and cleaned.get("pack_years"):
            self.add_error("pack_years", _("Someone who never smoked has no pack-years."))
        quit_on = cleaned.get("quit_on")
        if quit_on and smoking != SmokingStatus.FORMER:
            self.add_error("quit_on", _("A date of stopping belongs to a former smoker."))
        stated = cleaned.get("recorded_on")
        # At their precisions: only a date of stopping certainly after the statement is wrong.
        if (
            isinstance(quit_on, rules.PartialDate)
            and isinstance(stated, rules.PartialDate)
            and stated.certainly_before(quit_on)
        ):
            self.add_error("quit_on", _("This date is after the date of the statement."))
        units = cleaned.get("alcohol_units_per_week")
        if units is not None and cleaned.get("alcohol") not in (
            AlcoholUse.OCCASIONAL,
            AlcoholUse.REGULAR,
        ):
            self.add_error(
                "alcohol_units_per_week",
                _("Units per week belong to occasional or regular drinking."),
            )
        return cleaned


def _oncotree_typeahead(field: Any, results_id: str) -> None:
    """The OncoTree type-ahead on a text input (see `oncotree_search`): `results_id` is the
    element its list of tumour types is shown in."""
    field.widget.attrs.update(
        {
            "autocomplete": "off",
            "role": "combobox",
            "aria-autocomplete": "list",
            "aria-controls": results_id,
            # app.js sets it to "true" while the list of tumour types is open.
            "aria-expanded": "false",
            "data-hx-trigger": "input changed delay:150ms, focus",
            "data-hx-target": f"#{results_id}",
            "data-hx-swap": "innerHTML",
        }
    )


def oncotree_or_text(text: str) -> tuple[str, str]:
    """(OncoTree code, name) for "Name (CODE)" as the type-ahead fills it in, or for the exact
    name of one selectable OncoTree type; otherwise ("", the text as typed)."""
    text = (text or "").strip()
    match = re.search(r"\(([A-Z0-9_]+)\)\s*$", text)
    node = None
    if match:
        node = Code.objects.filter(system="oncotree", code=match.group(1), selectable=True).first()
    else:
        by_name = list(
            Code.objects.filter(system="oncotree", display__iexact=text, selectable=True)[:2]
        )
        node = by_name[0] if len(by_name) == 1 else None
    if node is None:
        return "", text
    return node.code, node.display


class FamilyHistoryForm(RowForm):
    RESULTS_ID = "family-oncotree-results"

    oncotree = forms.CharField(
        label=_("Cancer type (OncoTree or free text)"),
        max_length=300,
        help_text=_(
            "Type part of a name or code and pick from the list, or write the cancer type as"
            " the family knows it (e.g. “breast cancer”)."
        ),
    )

    class Meta:
        model = FamilyHistory
        fields = [
            "degree",
            "relation",
            "side",
            "age_at_diagnosis",
            "hereditary_syndrome",
            "germline_testing",
            "germline_result",
            "comment",
        ]
        widgets = {"comment": forms.Textarea(attrs={"rows": 2})}

    field_order = ["degree", "relation", "side", "oncotree"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk and not self.is_bound:
            row = self.instance
            self.initial["oncotree"] = (
                f"{row.cancer_type} ({row.oncotree_code})" if row.oncotree_code else row.cancer_type
            )
        field = self.fields["oncotree"]
        _oncotree_typeahead(field, self.RESULTS_ID)
        # The list fills this input: the search is told its id.
        target = self["oncotree"].auto_id or "id_oncotree"
        field.widget.attrs["data-hx-get"] = f"{reverse('oncotree_search')}?target={target}"

    def clean_age_at_diagnosis(self) -> int | None:
        value: int | None = self.cleaned_data.get("age_at_diagnosis")
        if value is not None and value > 120:
            raise forms.ValidationError(_("Give an age between 0 and 120."))
        return value

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        degree, relation = cleaned.get("degree"), cleaned.get("relation")
        if degree and relation:
            first = relation in FIRST_DEGREE_RELATIONS
            if first != (degree == RelativeDegree.FIRST):
                self.add_error(
                    "relation",
                    _("“%(relation)s” is a %(degree)s relation.")
                    % {
                        "relation": Relation(relation).label,
                        "degree": (RelativeDegree.FIRST if first else RelativeDegree.SECOND).label,
                    },
                )
        if cleaned.get("side") and degree == RelativeDegree.FIRST:
            self.add_error("side", _("The side of the family applies to second-degree relatives."))
        if cleaned.get("germline_result") and cleaned.get("germline_testing") != "done":
            self.add_error(
                "germline_result", _("A result belongs to germline testing that was done.")
            )
        return cleaned

    def save(self, commit: bool = True) -> FamilyHistory:
        row: FamilyHistory = super().save(commit=False)
        row.oncotree_code, row.cancer_type = oncotree_or_text(self.cleaned_data["oncotree"])
        return row


HGVS_MESSAGES = {
    hgvs.NO_PREFIX_C: _("A coding DNA change starts with “c.”, e.g. c.2573T>G."),
    hgvs.NO_PREFIX_P: _("A protein change starts with “p.”, e.g. p.Leu858Arg or p.L858R."),
    hgvs.PROTEIN_IN_CODING: _("This is a protein change (p.): it goes into the field below."),
    hgvs.CODING_IN_PROTEIN: _("This is a coding DNA change (c.): it goes into the field above."),
    hgvs.SPACES: _("HGVS notation has no spaces."),
    hgvs.SAME_BASE: _("A substitution changes the nucleotide; an unchanged one is written c.76=."),
    hgvs.RANGE_ORDER: _("The end of a range comes after its start, e.g. c.2235_2249del."),
    hgvs.MIXED_CODES: _(
        "Use three-letter (p.Leu858Arg) or one-letter amino-acid codes (p.L858R), not both."
    ),
}
HGVS_SYNTAX_MESSAGES = {
    "hgvs_c": _(
        "This is not HGVS syntax for a coding DNA change. Examples: c.2573T>G, c.2235_2249del,"
        " c.3028+1G>T, c.2300_2308dup, c.76_77insTTG. Several changes or uncertain positions"
        " go into the comment."
    ),
    "hgvs_p": _(
        "This is not HGVS syntax for a protein change. Examples: p.Leu858Arg, p.(L858R),"
        " p.Glu746_Ala750del, p.Arg97Ter, p.Arg97ProfsTer23."
    ),
}
REFERENCE_SEQUENCE = re.compile(
    r"(?:N[MRCG]|X[MR])_[0-9]+(?:\.[0-9]+)?|ENST[0-9]{11}(?:\.[0-9]+)?|LRG_[0-9]+(?:t[0-9]+)?"
)
# What a variant finding is: the fields a result that is pending, failed or not tested leaves
# empty, like a biomarker's value.
VARIANT_FINDINGS = ("hgvs_c", "hgvs_p", "variant_type", "partner_gene", "exons", "vaf")
SIGNATURE_FINDINGS = ("tmb", "msi")


class GenomicVariantForm(RowForm):
    date_fields = ("reported_on",)

    class Meta:
        model = GenomicVariant
        fields = [
            "result_kind",
            "status",
            "gene",
            "transcript",
            "hgvs_c",
            "hgvs_p",
            "variant_type",
            "partner_gene",
            "exons",
            "origin",
            "vaf",
            "tmb",
            "msi",
            "specimen",
            "assay_method",
            "assay",
            "laboratory",
            "reported_on",
            "comment",
        ]
        widgets = {
            **_date_widgets(GenomicVariant),
            "comment": forms.Textarea(attrs={"rows": 2}),
            "gene": forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
            "partner_gene": forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
            "hgvs_c": forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
            "hgvs_p": forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
        }
        help_texts = {
            "gene": _("HGNC symbol, e.g. EGFR; a name not in the HGNC list is saved as typed."),
            "transcript": _("e.g. NM_005228.5"),
            "exons": _("e.g. 19, or 13/20 for a fusion's breakpoints"),
            "assay": _("e.g. the NGS panel's name"),
        }
        formfield_callback = number_formfield

    numbers = {"vaf": (_("VAF"), "%"), "tmb": ("TMB", _("mutations/Mb"))}

    def _gene(self, name: str) -> str:
        text: str = (self.cleaned_data.get(name) or "").strip()
        if not text:
            return ""
        found = genes.lookup(text)
        if found.state == genes.APPROVED:
            return found.symbol
        label = self.fields[name].label
        if found.state == genes.ALIAS:
            self.warnings.append(
                _(
                    "%(field)s: HGNC lists “%(name)s” as a previous or alias symbol of"
                    " %(symbol)s. Saved as typed."
                )
                % {"field": label, "name": text, "symbol": found.symbol}
            )
        else:
            self.warnings.append(
                _(
                    "%(field)s: “%(name)s” is not in the HGNC list of approved gene symbols"
                    " shipped with this tool. Saved as typed; please check the spelling."
                )
                % {"field": label, "name": text}
            )
        return text

    def clean_gene(self) -> str:
        return self._gene("gene")

    def clean_partner_gene(self) -> str:
        return self._gene("partner_gene")

    def clean_transcript(self) -> str:
        text: str = self.cleaned_data.get("transcript", "").strip()
        if text and not REFERENCE_SEQUENCE.fullmatch(text):
            raise forms.ValidationError(
                _("Give a reference sequence such as NM_005228.5 or ENST00000275493.")
            )
        return text

    def _hgvs(self, name: str, check: Any) -> str:
        text: str = self.cleaned_data.get(name, "").strip()
        if text and (problem := check(text)) is not None:
            raise forms.ValidationError(
                HGVS_MESSAGES.get(problem, HGVS_SYNTAX_MESSAGES[name]), code="hgvs"
            )
        return text

    def clean_hgvs_c(self) -> str:
        return self._hgvs("hgvs_c", hgvs.check_coding)

    def clean_hgvs_p(self) -> str:
        return self._hgvs("hgvs_p", hgvs.check_protein)

    def clean_vaf(self) -> Decimal | None:
        value: Decimal | None = self.cleaned_data.get("vaf")
        if value is not None and not 0 <= value <= 100:
            raise forms.ValidationError(_("The allele frequency is a percentage (0-100)."))
        return value

    def clean_tmb(self) -> Decimal | None:
        value: Decimal | None = self.cleaned_data.get("tmb")
        if value is not None and not 0 <= value <= 1000:
            raise forms.ValidationError(_("Give a TMB between 0 and 1000 mutations/Mb."))
        return value

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        kind, status = cleaned.get("result_kind"), cleaned.get("status")

        def given(name: str) -> bool:
            return cleaned.get(name) not in (None, "")

        if kind in (GenomicResultKind.TMB, GenomicResultKind.MSI):
            for name in ("gene", "transcript", "origin", *VARIANT_FINDINGS):
                if given(name):
                    self.add_error(name, _("A TMB or MSI result has no gene or variant."))
        others: dict[str, tuple[str, ...]] = {
            GenomicResultKind.VARIANT: SIGNATURE_FINDINGS,
            GenomicResultKind.TMB: ("msi",),
            GenomicResultKind.MSI: ("tmb",),
        }
        other = others.get(str(kind), ())
        for name in other:
            if given(name):
                self.add_error(name, _("This value belongs to another kind of result."))
        if status and status != ResultStatus.RESULT:
            findings = [n for n in (*VARIANT_FINDINGS, *SIGNATURE_FINDINGS) if given(n)]
            if findings:
                self.add_error(
                    "status",
                    _("A result that is pending, failed or not tested has no finding."),
                )
        elif status == ResultStatus.RESULT:
            if kind == GenomicResultKind.VARIANT:
                if not given("gene"):
                    self.add_error("gene", _("Give the gene."))
                if not given("variant_type"):
                    self.add_error("variant_type", _("Give the variant type."))
            elif kind == GenomicResultKind.TMB and not given("tmb"):
                self.add_error("tmb", _("Give the TMB."))
            elif kind == GenomicResultKind.MSI and not given("msi"):
                self.add_error("msi", _("Give the microsatellite status."))
        if given("partner_gene") and cleaned.get("variant_type") != VariantType.FUSION:
            self.add_error("partner_gene", _("A partner gene belongs to a fusion."))
        return cleaned


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

    def __init__(
        self,
        *args: Any,
        language: str | None = None,
        practice: Practice | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.fields["board_type"] = forms.ChoiceField(
            label=_("Board type"), choices=_code_choices("mii:therapieplanung-typ", language)
        )
        self.fields["question"].required = True
        # Only the practice's active boards (and the one the note names already).
        boards = Board.objects.for_practice(practice) if practice else Board.objects.none()
        current = self.instance.board_id if self.instance else None
        board_field: Any = self.fields["board"]
        board_field.queryset = boards.filter(Q(active=True) | Q(pk=current)).order_by("name")
        board_field.label = _("Board of the practice")
        board_field.help_text = _("With a board date, the case goes on the agenda of that meeting.")
        self.fields["target_board"].required = False
        self.fields["target_board"].help_text = _(
            "A board that is not one of the practice's; with a board chosen above, its name."
        )
        self.fields["board_date_retrospective"].label = _(
            "The board has taken place already: I am entering its date after the fact"
        )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        board = cleaned.get("board")
        if board is not None:
            cleaned["target_board"] = board.name
        elif not cleaned.get("target_board"):
            self.add_error("target_board", _("Choose a board or name one."))
        value: date | None = cleaned.get("board_date")
        earlier = self.instance.board_date if self.instance and self.instance.pk else None
        if value is None or value >= timezone.localdate():
            cleaned["board_date_retrospective"] = False
        elif not cleaned.get("board_date_retrospective") and value != earlier:
            # A past date never goes in silently: it is confirmed, and the note says so.
            self.add_error(
                "board_date",
                _(
                    "This board date is in the past. If the board took place already, confirm"
                    " below that you are entering it after the fact."
                ),
            )
        return cleaned


class AmendForm(Form):
    reason = forms.CharField(
        label=_("Reason for the amendment"),
        widget=forms.Textarea(attrs={"rows": 2}),
        max_length=2000,
    )


MEASURE_ROWS = 6


class MeasureFieldsMixin:
    """The measures of a board decision: each as typed, with the deviation at the patient's
    wish; shared by the outcome form and meeting mode's decision draft."""

    fields: dict[str, Any]
    cleaned_data: dict[str, Any]

    def _add_measure_fields(self, language: str | None) -> None:
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

    def measures(self) -> list[dict[str, str]]:
        return [
            {
                "text": self.cleaned_data[f"measure_{i}"].strip(),
                "deviation": self.cleaned_data[f"deviation_{i}"],
            }
            for i in range(1, MEASURE_ROWS + 1)
            if self.cleaned_data.get(f"measure_{i}", "").strip()
        ]


class OutcomeForm(MeasureFieldsMixin, Form):
    held_on = forms.DateField(label=_("Board held on"), widget=DateInput())
    attendees = forms.CharField(label=_("Attendees"), widget=forms.Textarea(attrs={"rows": 2}))
    follow_up_on = forms.DateField(label=_("Follow-up date"), required=False, widget=DateInput())
    reason = forms.CharField(
        label=_("Reason for the new version"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
    )

    def __init__(self, *args: Any, language: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._add_measure_fields(language)

    def clean_held_on(self) -> date:
        value: date = self.cleaned_data["held_on"]
        if value > timezone.localdate():
            raise forms.ValidationError(_("This date is in the future."))
        return value

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
    # The id of the input a picked type fills (the family history's cancer type, an import
    # question's; by default the tumour form's), and the name of the parameter the typed text
    # comes in when the input is not named `oncotree` (the FHIR preview's `oq_<hex>` questions).
    target = forms.RegexField(required=False, max_length=60, regex=r"^[A-Za-z][A-Za-z0-9_-]*$")
    source = forms.RegexField(required=False, max_length=60, regex=r"^[A-Za-z][A-Za-z0-9_-]*$")


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


# --- tumour-board meetings -------------------------------------------------------------------


class BoardForm(ModelForm):
    class Meta:
        model = Board
        fields = ["name", "weekday", "starts_at", "minutes_per_case", "disciplines", "active"]
        widgets = {"starts_at": forms.TimeInput(attrs={"type": "time"})}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["disciplines"] = forms.MultipleChoiceField(
            label=_("Disciplines expected"),
            choices=Discipline.choices,
            required=False,
            widget=forms.CheckboxSelectMultiple,
            initial=self.instance.disciplines if self.instance and self.instance.pk else [],
        )
        self.fields["minutes_per_case"].validators.append(MinValueValidator(1))
        self.fields["minutes_per_case"].validators.append(MaxValueValidator(240))


class MeetingCreateForm(Form):
    """A meeting on demand (a date), or the next meetings on the board's weekday (none)."""

    date = forms.DateField(label=_("Date of the meeting"), required=False, widget=DateInput())


class AgendaShiftForm(Form):
    item = forms.IntegerField(min_value=1, max_value=MAX_ID)
    direction = forms.ChoiceField(choices=[("up", "up"), ("down", "down")])


class AgendaMoveForm(Form):
    meeting = forms.ModelChoiceField(
        label=_("Move to the meeting"), queryset=BoardMeeting.objects.none()
    )
    reason = forms.CharField(
        label=_("Reason for the move (the registering physician sees it)"),
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 2}),
    )

    def __init__(self, *args: Any, item: AgendaItem, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field: Any = self.fields["meeting"]
        field.queryset = (
            BoardMeeting.objects.for_practice(item.practice_id)
            .filter(date__gte=timezone.localdate())
            .exclude(pk=item.meeting_id)
            .select_related("board")
            .order_by("date", "board__name")
        )
        field.label_from_instance = lambda m: f"{m.board.name}, {formats.date_format(m.date)}"


class RegistrationForm(Form):
    closed = forms.BooleanField(required=False)


class AttendanceForm(Form):
    name = forms.CharField(label=_("Name"), max_length=200)
    discipline = forms.ChoiceField(label=_("Discipline"), choices=Discipline.choices)


class OutcomeDraftForm(MeasureFieldsMixin, Form):
    """Meeting mode's decision as typed so far: measures and follow-up date go together (one
    save path); `revision` is the draft's as the form showed it (0: no draft yet)."""

    follow_up_on = forms.DateField(label=_("Follow-up date"), required=False, widget=DateInput())
    revision = forms.IntegerField(required=False, min_value=0, max_value=MAX_ID)

    def __init__(self, *args: Any, language: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._add_measure_fields(language)
        for name, field in self.fields.items():
            css = "form-select form-select-sm" if name.startswith("deviation") else ""
            field.widget.attrs.setdefault("class", css or "form-control form-control-sm")
        self.fields["measure_1"].widget.attrs["autofocus"] = True

    def measure_pairs(self) -> list[tuple[Any, Any]]:
        return [(self[f"measure_{i}"], self[f"deviation_{i}"]) for i in range(1, MEASURE_ROWS + 1)]


class AgendaStatusForm(Form):
    status = forms.ChoiceField(
        choices=[
            (AgendaStatus.DEFERRED, ""),
            (AgendaStatus.NOT_DISCUSSED, ""),
            (AgendaStatus.PENDING, ""),
        ]
    )


class MeetingModeQuery(Form):
    item = forms.IntegerField(required=False, min_value=1, max_value=MAX_ID)


class AgendaPdfQuery(Form):
    notes = forms.ChoiceField(required=False, choices=[("", ""), ("1", "")])
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


NEAR_EPISODES = 5  # the systemic episodes offered on either side of a resource's own


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
                        "data-hx-vals": json.dumps({"target": f"id_{name}", "source": name}),
                        "data-hx-trigger": "input changed delay:150ms, focus",
                        "data-hx-target": f"#oncotree-results-{question['key']}",
                        "data-hx-swap": "innerHTML",
                    }
                )
                if question.get("answer_text"):
                    self.initial[name] = question["answer_text"]
            elif question["target"] == "mii:therapie-typ":
                field = forms.ChoiceField(
                    label=_("Therapy type of “%(text)s”")
                    % {"text": question["display"] or question["code"]},
                    choices=[("", "—"), *_code_choices("mii:therapie-typ", get_language())],
                )
            elif question["target"] == "therapyline.response":
                field = forms.ChoiceField(
                    label=_("Best response for “%(text)s”")
                    % {"text": question["display"] or question["code"]},
                    choices=[("", "—"), *Response.choices],
                )
            elif question["target"] == "adverseevent.term":
                field = forms.CharField(
                    label=_("Adverse-event term for the code “%(code)s”")
                    % {"code": question["code"]},
                    max_length=40,
                    help_text=_("As the term reads in the record, e.g. “diarrhoea”."),
                )
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
        self._add_therapy_fields(preview)
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
            self.initial[name] = metastasis.get("timing") or ""
            if not metastasis["detected_on"]:
                self.fields[f"detected_{metastasis['key']}"] = PartialDateField(
                    label=_("Detected on (“%(text)s”)") % {"text": metastasis["text"]}
                )
        self.initial.setdefault("year_of_birth", preview["patient"]["year_of_birth"])
        self.initial.setdefault("sex", preview["patient"]["sex"])
        self.initial.setdefault("situation", preview.get("situation") or "")

    def _add_therapy_fields(self, preview: dict[str, Any]) -> None:
        """Per systemic episode its line number (typed, or proposed from our own export's
        number; never guessed) and position; per therapy resource the episode it goes into (or
        its own, or none); per adverse event its grade (grade 5 only with the bundle's date of
        death)."""
        items = {i["key"]: i for i in preview.get("therapy_items", [])}
        systemic = [e for e in preview.get("episodes", []) if e["kind"] == EpisodeKind.SYSTEMIC]
        names = {
            e["key"]: _("systemic episode %(n)s (%(agents)s)")
            % {
                "n": number,
                "agents": ", ".join(items[k]["text"] for k in e["items"] if k in items),
            }
            for number, e in enumerate(systemic, start=1)
        }
        for episode in systemic:
            self.fields[f"line_{episode['key']}"] = forms.IntegerField(
                label=_("Line number of %(episode)s") % {"episode": names[episode["key"]]},
                min_value=1,
                max_value=99,
                required=False,
            )
            self.fields[f"position_{episode['key']}"] = forms.ChoiceField(
                label=_("Position in the course of therapy"),
                choices=[("", "—"), *LinePosition.choices],
                required=False,
            )
            self.initial[f"position_{episode['key']}"] = episode.get("position") or ""
            # The line number our own export states, shown for the physician to keep or change.
            if episode.get("number"):
                self.initial[f"line_{episode['key']}"] = episode["number"]
        # A resource may move into an episode near it in time: its own and the systemic
        # episodes proposed just before and after it (a long bundle would otherwise offer
        # every episode to every resource).
        order = [e["key"] for e in systemic]
        places = {key: number for number, key in enumerate(order)}
        for item in preview.get("therapy_items", []):
            name = f"episode_{item['key']}"
            if item["kind"] == EpisodeKind.SYSTEMIC:
                at = places.get(item["episode"], 0)
                near = order[max(0, at - NEAR_EPISODES) : at + NEAR_EPISODES + 1]
                choices = [
                    *((key, names[key]) for key in near),
                    ("own", _("an episode of its own")),
                    ("skip", _("not imported")),
                ]
                self.fields[f"ownline_{item['key']}"] = forms.IntegerField(
                    label=_("Line number of its own episode"),
                    min_value=1,
                    max_value=99,
                    required=False,
                )
            else:
                choices = [(item["episode"], _("imported")), ("skip", _("not imported"))]
            self.fields[name] = forms.ChoiceField(
                label=_("Episode of “%(text)s”") % {"text": item["text"]}, choices=choices
            )
            self.initial[name] = item["episode"]
        died = preview.get("patient", {}).get("deceased_on")
        for event in preview.get("adverse_events", []):
            name = f"grade_{event['key']}"
            self.fields[name] = forms.ChoiceField(
                label=_("Grade of “%(term)s”") % {"term": event["term"] or event["source"]},
                choices=[("", "—"), *AeGrade.choices],
            )
            # A grade 5 (death) without a date of death is asked, never taken.
            self.initial[name] = "" if event["grade"] == "5" and not died else event["grade"]
        for name, field in self.fields.items():
            if name.startswith(("line_", "ownline_", "position_", "episode_", "grade_")):
                select = isinstance(field, forms.ChoiceField)
                field.widget.attrs["class"] = "form-select" if select else "form-control"

    def _clean_therapy(self, cleaned: dict[str, Any]) -> None:
        """The episodes as the physician grouped them: `self.episodes` maps each episode key
        (a proposed one, or "own:<item>") to its item keys; every systemic one has a line
        number."""
        self.episodes: dict[str, list[str]] = {}
        for item in self.preview.get("therapy_items", []):
            choice = cleaned.get(f"episode_{item['key']}")
            if not choice or choice == "skip":
                continue
            key = f"own:{item['key']}" if choice == "own" else choice
            self.episodes.setdefault(key, []).append(item["key"])
            if choice == "own" and cleaned.get(f"ownline_{item['key']}") is None:
                self.add_error(
                    f"ownline_{item['key']}", _("A systemic line needs its line number.")
                )
        for episode in self.preview.get("episodes", []):
            name = f"line_{episode['key']}"
            if name in self.fields and episode["key"] in self.episodes and not cleaned.get(name):
                self.add_error(name, _("A systemic line needs its line number."))
        died = self.preview.get("patient", {}).get("deceased_on")
        for event in self.preview.get("adverse_events", []):
            name = f"grade_{event['key']}"
            if cleaned.get(name) == AeGrade.G5 and not died:
                self.add_error(
                    name,
                    _(
                        "Grade 5 means death, and the bundle gives no date of death"
                        " (Patient.deceasedDateTime). Choose the grade the record supports."
                    ),
                )

    def clean(self) -> dict[str, Any]:
        """Every OncoTree answer and direct OncoTree code found in one query."""
        cleaned = super().clean() or {}
        self._clean_therapy(cleaned)
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
            ("therapy_items", "start"),
            ("therapy_items", "end"),
            ("adverse_events", "onset_on"),
            ("biomarkers", "sampled_on"),
            ("genomic_variants", "reported_on"),
            ("findings", "assessed_on"),
        ):
            for row in self.preview.get(group, []):
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

    def __init__(self, *args: Any, choices: list[tuple[str, str]] | None, **kwargs: Any) -> None:
        """`choices` None: a free-text answer (an adverse-event term), typed as in the import."""
        super().__init__(*args, **kwargs)
        if choices is None:
            self.fields["target_code"] = forms.CharField(label=_("Our text"), max_length=40)
        else:
            self.fields["target_code"].choices = choices  # type: ignore[attr-defined]
