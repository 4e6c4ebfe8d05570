from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/dicom/", include("dicom.api.urls")),
    path("api/reading/", include("telerad.api.urls")),
    path("api/", include("core.api.urls")),
    path("", include("dicom.web.urls")),
    path("", include("telerad.web.urls")),
    path("", include("core.urls")),
]
