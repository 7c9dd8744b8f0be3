from django.urls import path

from . import views

app_name = "social"

urlpatterns = [
    path("", views.home, name="home"),
    path("tasks/<str:task_id>/", views.task_status, name="task-status"),
]
