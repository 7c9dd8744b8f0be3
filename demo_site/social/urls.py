from django.contrib.auth import views as auth_views
from django.urls import path

from . import views

app_name = "social"

urlpatterns = [
    path("", views.home, name="home"),
    path("signup/", views.signup, name="signup"),
    path("login/", auth_views.LoginView.as_view(template_name="social/login.html"), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("u/<str:username>/", views.profile, name="profile"),
    path("u/<str:username>/follow/", views.follow, name="follow"),
    path("u/<str:username>/unfollow/", views.unfollow, name="unfollow"),
    path("avatar/", views.upload_avatar, name="avatar"),
    path("search/", views.search, name="search"),
    path("reports/", views.reports, name="reports"),
    path("reports/<str:task_id>/", views.report, name="report"),
    path("tasks/<str:task_id>/", views.task_status, name="task-status"),
    path("tasks/<str:task_id>.json", views.task_json, name="task-json"),
]
