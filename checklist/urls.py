from django.contrib.auth import views as auth_views
from django.urls import path
from django.views.generic import RedirectView

from checklist import views

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="case_list", permanent=False), name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("login/", views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("set-password/<uidb64>/<token>/", views.SetPasswordView.as_view(), name="set_password"),
    path("cases/", views.case_list, name="case_list"),
    path("cases/new/", views.case_create, name="case_create"),
    path("cases/<int:pk>/", views.case_detail, name="case_detail"),
    path("cases/<int:pk>/edit/", views.case_edit, name="case_edit"),
    path(
        "cases/<int:pk>/metastasis-status/",
        views.case_metastasis_status,
        name="case_metastasis_status",
    ),
    path("cases/<int:pk>/prior-therapy/", views.case_prior_therapy, name="case_prior_therapy"),
    path("cases/<int:pk>/checklist/", views.checklist_page, name="checklist"),
    path(
        "cases/<int:pk>/checklist/<int:category_pk>/",
        views.checklist_item,
        name="checklist_item",
    ),
    path("cases/<int:pk>/checklist/move/", views.checklist_move, name="checklist_move"),
    path("cases/<int:pk>/<slug:kind>/new/", views.case_row_create, name="case_row_create"),
    path("cases/<int:pk>/<slug:kind>/<int:row_pk>/", views.case_row_edit, name="case_row_edit"),
    path(
        "cases/<int:pk>/<slug:kind>/<int:row_pk>/delete/",
        views.case_row_delete,
        name="case_row_delete",
    ),
    path("oncotree/search/", views.oncotree_search, name="oncotree_search"),
    path("catalogue/", views.catalogue_list, name="catalogue_list"),
    path("catalogue/draft/", views.catalogue_draft, name="catalogue_draft"),
    path("catalogue/diff/", views.catalogue_diff, name="catalogue_diff"),
    path("catalogue/<int:number>/", views.catalogue_version, name="catalogue_version"),
    path(
        "catalogue/<int:number>/categories/new/",
        views.catalogue_category,
        name="catalogue_category_new",
    ),
    path(
        "catalogue/<int:number>/categories/<int:category_pk>/",
        views.catalogue_category,
        name="catalogue_category",
    ),
    path(
        "catalogue/<int:number>/categories/<int:category_pk>/<slug:action>/",
        views.catalogue_category_action,
        name="catalogue_category_action",
    ),
    path("catalogue/<int:number>/publish/", views.catalogue_publish, name="catalogue_publish"),
    path("catalogue/<int:number>/discard/", views.catalogue_discard, name="catalogue_discard"),
    path("practice/switch/", views.practice_switch, name="practice_switch"),
    path("accounts/", views.account_list, name="account_list"),
    path("accounts/new/", views.account_create, name="account_create"),
    path("accounts/<int:pk>/", views.account_edit, name="account_edit"),
    path("accounts/<int:pk>/link/", views.account_link, name="account_link"),
]
