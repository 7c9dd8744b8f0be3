from django.contrib import admin
from django.contrib.staticfiles.urls import staticfiles_urlpatterns
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include("demo_site.social.urls")),
]

# gunicorn does not serve static files; with DEBUG=True let Django serve them
# (the admin's CSS) so the demo looks right. Adds nothing when DEBUG is False.
urlpatterns += staticfiles_urlpatterns()
