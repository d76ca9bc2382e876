from django.urls import include, path

urlpatterns = [
    path("i18n/", include("django.conf.urls.i18n")),
    path("", include("checklist.urls")),
]

handler400 = "checklist.views.system.error_400"
handler404 = "checklist.views.system.error_404"
handler500 = "checklist.views.system.error_500"
