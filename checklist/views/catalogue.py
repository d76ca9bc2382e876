"""The practice's catalogue: versions, diff, and the draft that admins edit and publish."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import get_language, ngettext
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from checklist import forms, services
from checklist.access import PracticeRequest, practice_required
from checklist.models import CatalogueVersion, Category, Membership
from checklist.record import version_diff
from checklist.views.common import already_saved_message, valid


def _get_version(request: PracticeRequest, number: int) -> CatalogueVersion:
    return get_object_or_404(
        CatalogueVersion.objects.filter(practice=request.practice),
        number=number,
    )


@practice_required()
def catalogue_list(request: PracticeRequest) -> HttpResponse:
    versions = (
        CatalogueVersion.objects.filter(practice=request.practice)
        .select_related("published_by__account_profile")
        .order_by("-number")
    )
    return render(request, "checklist/catalogue_list.html", {"versions": versions})


@practice_required()
def catalogue_version(request: PracticeRequest, number: int) -> HttpResponse:
    version = _get_version(request, number)
    previous = (
        CatalogueVersion.objects.for_practice(request.practice)
        .filter(number__lt=number)
        .newest_published()
    )
    return render(
        request,
        "checklist/catalogue_version.html",
        {
            "version": version,
            "categories": version.categories.order_by("position"),
            "previous": previous,
            "diff": version_diff(previous, version) if previous else (),
            "publish_form": forms.PublishForm(),
        },
    )


@practice_required()
def catalogue_diff(request: PracticeRequest) -> HttpResponse:
    query = valid(forms.CatalogueDiffQuery(request.GET)).cleaned_data
    a, b = query["a"], query["b"]
    old, new = _get_version(request, a), _get_version(request, b)
    return render(
        request,
        "checklist/catalogue_diff.html",
        {"old": old, "new": new, "diff": version_diff(old, new)},
    )


@practice_required(role=Membership.PRACTICE_ADMIN)
@require_POST
def catalogue_draft(request: PracticeRequest) -> HttpResponse:
    try:
        if request.POST.get("source") == "shipped":
            draft = services.catalogue_import_shipped(practice=request.practice)
        elif request.POST.get("source") == "mii_therapy_types":
            draft = services.catalogue_import_template(practice=request.practice)
        else:
            draft = services.catalogue_draft_create(practice=request.practice)
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
        return redirect("catalogue_list")
    return redirect("catalogue_version", number=draft.number)


@practice_required(role=Membership.PRACTICE_ADMIN)
def catalogue_category(request: PracticeRequest, number: int, category_pk: int | None = None):
    version = _get_version(request, number)
    if not version.is_draft:
        messages.error(request, _("A published version is never changed; start a draft."))
        return redirect("catalogue_version", number=number)
    category = get_object_or_404(version.categories, pk=category_pk) if category_pk else Category()
    form = forms.CategoryForm(request.POST or None, instance=category)
    if request.method == "POST" and form.is_valid():
        try:
            services.category_save(
                category=form.save(commit=False) if category_pk else _new_category(form, version),
                acting_user=request.user,
                token=request.POST.get("submission_token"),
            )
        except services.AlreadySaved as error:
            messages.info(request, already_saved_message(error))
            return redirect("catalogue_version", number=number)
        except ValidationError as error:
            form.add_error(None, error)
        else:
            return redirect("catalogue_version", number=number)
    return render(request, "checklist/catalogue_category.html", {"form": form, "version": version})


def _new_category(form: Any, version: CatalogueVersion) -> Category:
    category: Category = form.save(commit=False)
    category.version = version
    category.practice_id = version.practice_id
    return category


@practice_required(role=Membership.PRACTICE_ADMIN)
def catalogue_merge(request: PracticeRequest, number: int) -> HttpResponse:
    """Adds chosen categories of the MII therapy-type template to the practice's own draft."""
    version = _get_version(request, number)
    if not version.is_draft:
        messages.error(request, _("A published version is never changed; start a draft."))
        return redirect("catalogue_version", number=number)
    template = services.mii_template()
    missing = services.template_categories_missing(version)
    german = (get_language() or "").startswith("de")
    choices = [
        (c["code"], f"{c['code']} · {c['name_de' if german else 'name_en']}") for c in missing
    ]
    form = forms.TemplateMergeForm(request.POST or None, choices=choices)
    if request.method == "POST" and form.is_valid():
        try:
            added = services.catalogue_merge_template(
                version=version, codes=form.cleaned_data["codes"]
            )
        except ValidationError as error:
            form.add_error(None, error)
        else:
            messages.success(
                request,
                ngettext(
                    "%(n)s category added at the end of the draft.",
                    "%(n)s categories added at the end of the draft.",
                    len(added),
                )
                % {"n": len(added)},
            )
            return redirect("catalogue_version", number=number)
    return render(
        request,
        "checklist/catalogue_merge.html",
        {"form": form, "version": version, "template": template, "missing": missing},
    )


@practice_required(role=Membership.PRACTICE_ADMIN)
@require_POST
def catalogue_category_action(
    request: PracticeRequest, number: int, category_pk: int, action: str
) -> HttpResponse:
    version = _get_version(request, number)
    category = get_object_or_404(version.categories, pk=category_pk)
    try:
        if action in ("up", "down"):
            services.category_move(category=category, up=action == "up")
        elif action in ("retire", "reactivate"):
            services.category_set_active(category=category, active=action == "reactivate")
        else:
            raise Http404
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    return redirect(reverse("catalogue_version", kwargs={"number": number}) + f"#c-{category.code}")


@practice_required(role=Membership.PRACTICE_ADMIN)
@require_POST
def catalogue_publish(request: PracticeRequest, number: int) -> HttpResponse:
    version = _get_version(request, number)
    form = forms.PublishForm(request.POST)
    if form.is_valid():
        try:
            services.catalogue_publish(
                version=version,
                change_note=form.cleaned_data["change_note"],
                acting_user=request.user,
            )
        except ValidationError as error:
            messages.error(request, " ".join(error.messages))
        else:
            messages.success(request, _("Version %(n)s is published.") % {"n": version.number})
    else:
        messages.error(request, _("Say what changed in this version."))
    return redirect("catalogue_version", number=number)


@practice_required(role=Membership.PRACTICE_ADMIN)
@require_POST
def catalogue_discard(request: PracticeRequest, number: int) -> HttpResponse:
    version = _get_version(request, number)
    try:
        services.catalogue_discard_draft(version=version)
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
        return redirect("catalogue_version", number=number)
    return redirect("catalogue_list")
