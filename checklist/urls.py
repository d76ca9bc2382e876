"""Every URL, grouped by area in the order of `checklist/views/`."""

from django.contrib.auth import views as auth_views
from django.urls import path, register_converter
from django.views.generic import RedirectView

from checklist.views import (
    accounts,
    audit,
    case_rows,
    cases,
    catalogue,
    checklist,
    fhir,
    meetings,
    notes,
    second_factor,
    system,
)


class RowKindConverter:
    """Only the row kinds the case page knows, so `cases/<pk>/checklist/...` and
    `cases/<pk>/notes/...` can never be taken for a row, whatever the order below."""

    regex = "|".join(sorted(case_rows.ROW_KINDS))

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(RowKindConverter, "rowkind")

urlpatterns = [
    # system
    path("", RedirectView.as_view(pattern_name="case_list", permanent=False), name="home"),
    path("healthz", system.healthz, name="healthz"),
    path("ping", system.ping, name="ping"),
    # accounts
    path("login/", accounts.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("set-password/<uidb64>/<token>/", accounts.SetPasswordView.as_view(), name="set_password"),
    path("practice/switch/", accounts.practice_switch, name="practice_switch"),
    path("accounts/", accounts.account_list, name="account_list"),
    path("accounts/new/", accounts.account_create, name="account_create"),
    path("accounts/<int:pk>/", accounts.account_edit, name="account_edit"),
    path("accounts/<int:pk>/link/", accounts.account_link, name="account_link"),
    path("accounts/<int:pk>/unlock/", accounts.account_unlock, name="account_unlock"),
    path("account/", accounts.my_account, name="my_account"),
    path("session/keep-alive/", accounts.session_keep_alive, name="session_keep_alive"),
    # second factor
    path("login/code/", second_factor.otp_verify, name="otp_verify"),
    path("login/enrol/", second_factor.otp_enrol, name="otp_enrol"),
    path("reauth/", second_factor.reauth, name="reauth"),
    path(
        "practice/second-factor/",
        second_factor.practice_second_factor,
        name="practice_second_factor",
    ),
    path(
        "accounts/<int:pk>/second-factor/remove/",
        second_factor.account_second_factor_remove,
        name="account_second_factor_remove",
    ),
    # cases
    path("cases/", cases.case_list, name="case_list"),
    path("cases/new/", cases.case_create, name="case_create"),
    path("cases/<int:pk>/", cases.case_detail, name="case_detail"),
    path("cases/<int:pk>/edit/", cases.case_edit, name="case_edit"),
    path(
        "cases/<int:pk>/metastasis-status/",
        cases.case_metastasis_status,
        name="case_metastasis_status",
    ),
    path("cases/<int:pk>/prior-therapy/", cases.case_prior_therapy, name="case_prior_therapy"),
    path(
        "cases/<int:pk>/immune-not-assessed/",
        cases.case_immune_not_assessed,
        name="case_immune_not_assessed",
    ),
    path("cases/<int:pk>/<rowkind:kind>/new/", case_rows.case_row_create, name="case_row_create"),
    path(
        "cases/<int:pk>/<rowkind:kind>/<int:row_pk>/", case_rows.case_row_edit, name="case_row_edit"
    ),
    path(
        "cases/<int:pk>/<rowkind:kind>/<int:row_pk>/delete/",
        case_rows.case_row_delete,
        name="case_row_delete",
    ),
    path("oncotree/search/", case_rows.oncotree_search, name="oncotree_search"),
    path("cases/<int:pk>/history/", cases.case_history, name="case_history"),
    path("cases/<int:pk>/fhir.json", fhir.case_fhir_export, name="case_fhir_export"),
    # checklist
    path("cases/<int:pk>/checklist/", checklist.checklist_page, name="checklist"),
    path(
        "cases/<int:pk>/checklist/<int:category_pk>/",
        checklist.checklist_item,
        name="checklist_item",
    ),
    path("cases/<int:pk>/checklist/move/", checklist.checklist_move, name="checklist_move"),
    # catalogue
    path("catalogue/", catalogue.catalogue_list, name="catalogue_list"),
    path("catalogue/draft/", catalogue.catalogue_draft, name="catalogue_draft"),
    path("catalogue/diff/", catalogue.catalogue_diff, name="catalogue_diff"),
    path("catalogue/<int:number>/", catalogue.catalogue_version, name="catalogue_version"),
    path(
        "catalogue/<int:number>/categories/new/",
        catalogue.catalogue_category,
        name="catalogue_category_new",
    ),
    path(
        "catalogue/<int:number>/categories/<int:category_pk>/",
        catalogue.catalogue_category,
        name="catalogue_category",
    ),
    path(
        "catalogue/<int:number>/categories/<int:category_pk>/<slug:action>/",
        catalogue.catalogue_category_action,
        name="catalogue_category_action",
    ),
    path("catalogue/<int:number>/merge/", catalogue.catalogue_merge, name="catalogue_merge"),
    path("catalogue/<int:number>/publish/", catalogue.catalogue_publish, name="catalogue_publish"),
    path("catalogue/<int:number>/discard/", catalogue.catalogue_discard, name="catalogue_discard"),
    # notes
    path("cases/<int:pk>/notes/new/", notes.note_create, name="note_create"),
    path("notes/", notes.note_list, name="note_list"),
    path("notes/<int:pk>/", notes.note_detail, name="note_detail"),
    path("notes/<int:pk>/edit/", notes.note_edit, name="note_edit"),
    path("notes/<int:pk>/ready/", notes.note_ready, name="note_ready"),
    path("notes/<int:pk>/sign/", notes.note_sign, name="note_sign"),
    path("notes/<int:pk>/amend/", notes.note_amend, name="note_amend"),
    path("notes/<int:pk>/outcome/", notes.outcome_create, name="outcome_create"),
    path("notes/<int:pk>/v<int:number>/print/", notes.note_print, name="note_print"),
    path("notes/<int:pk>/v<int:number>/pdf/", notes.note_pdf, name="note_pdf"),
    path("notes/<int:pk>/v<int:number>/text/", notes.note_text, name="note_text"),
    # tumour-board meetings
    path("boards/", meetings.board_list, name="board_list"),
    path("boards/new/", meetings.board_create, name="board_create"),
    path("boards/<int:pk>/", meetings.board_detail, name="board_detail"),
    path("boards/<int:pk>/edit/", meetings.board_edit, name="board_edit"),
    path("boards/<int:pk>/meetings/", meetings.meeting_create, name="meeting_create"),
    path("meetings/<int:pk>/", meetings.meeting_detail, name="meeting_detail"),
    path("meetings/<int:pk>/shift/", meetings.meeting_shift, name="meeting_shift"),
    path(
        "meetings/<int:pk>/registration/",
        meetings.meeting_registration,
        name="meeting_registration",
    ),
    path(
        "meetings/<int:pk>/items/<int:item_pk>/move/",
        meetings.agenda_item_move,
        name="agenda_item_move",
    ),
    path("meetings/<int:pk>/agenda.pdf", meetings.meeting_agenda_pdf, name="meeting_agenda_pdf"),
    path("meetings/<int:pk>/summary.pdf", meetings.meeting_summary_pdf, name="meeting_summary_pdf"),
    path("meetings/<int:pk>/run/", meetings.meeting_mode, name="meeting_mode"),
    path("meetings/<int:pk>/attendance/", meetings.attendance_add, name="attendance_add"),
    path(
        "meetings/<int:pk>/attendance/<int:attendance_pk>/delete/",
        meetings.attendance_remove,
        name="attendance_remove",
    ),
    path(
        "meetings/<int:pk>/items/<int:item_pk>/decision/",
        meetings.agenda_item_decision,
        name="agenda_item_decision",
    ),
    path(
        "meetings/<int:pk>/items/<int:item_pk>/status/",
        meetings.agenda_item_status,
        name="agenda_item_status",
    ),
    # audit
    path("audit/", audit.audit_trail, name="audit_trail"),
    path("audit/export.csv", audit.audit_export, name="audit_export"),
    path("audit/reports/", audit.audit_reports, name="audit_reports"),
    path("audit/chain/", audit.audit_chain, name="audit_chain"),
    # FHIR import and the learned code map
    path("import/fhir/", fhir.fhir_upload, name="fhir_import"),
    path("import/fhir/<uuid:pk>/", fhir.fhir_preview, name="fhir_preview"),
    path("code-map/", fhir.code_mapping_list, name="code_mapping_list"),
    path("code-map/<int:pk>/", fhir.code_mapping_edit, name="code_mapping_edit"),
    path("code-map/<int:pk>/delete/", fhir.code_mapping_delete, name="code_mapping_delete"),
]
