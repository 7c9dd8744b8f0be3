from django.conf import settings
from django.conf.urls.static import static
from django.contrib import admin
from django.contrib.staticfiles.urls import staticfiles_urlpatterns
from django.urls import include, path

import djtasks.metrics

urlpatterns = [
    path("admin/", admin.site.urls),
    # Prometheus metrics: staff users, or DJTASKS["METRICS_TOKEN"] as a bearer token.
    path("metrics/", djtasks.metrics.view),
    path("", include("demo_site.social.urls")),
]

# gunicorn does not serve files; with DEBUG=True let Django serve the static files
# (the admin's CSS) and the uploaded avatars so the demo looks right. Both helpers
# add nothing when DEBUG is False.
urlpatterns += staticfiles_urlpatterns()
urlpatterns += static(settings.MEDIA_URL, document_root=settings.MEDIA_ROOT)
