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
    path("practice/switch/", views.practice_switch, name="practice_switch"),
    path("accounts/", views.account_list, name="account_list"),
    path("accounts/new/", views.account_create, name="account_create"),
    path("accounts/<int:pk>/", views.account_edit, name="account_edit"),
    path("accounts/<int:pk>/link/", views.account_link, name="account_link"),
]
