from django.contrib import admin
from django.urls import path

from djtasks import metrics

from . import views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("signup/", views.signup),
    path("metrics/", metrics.view),
]
