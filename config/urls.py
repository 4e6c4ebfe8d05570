from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from dicom.web import dicomweb_proxy, viewer

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/dicom/", include("dicom.api.urls")),
    path("api/reading/", include("telerad.api.urls")),
    path("api/quality/", include("telerad.api.peer_quality_urls")),  # peer review picks, rates
    path("api/", include("fleet.api.urls")),  # /api/units/..., /api/units/<id>/telemetry/
    path("api/", include("core.api.urls")),
    # The authorised DICOMweb proxy and the OHIF viewer (docs/viewer.md).
    path("dicom-web/", dicomweb_proxy.dicomweb_proxy, name="dicomweb-root"),
    re_path(r"^dicom-web/(?P<path>.+)$", dicomweb_proxy.dicomweb_proxy, name="dicomweb"),
    path("viewer/", viewer.viewer, name="viewer"),
    path("viewer/app-config.js", viewer.viewer_config, name="viewer-config"),
    path("", include("dicom.web.urls")),
    path("", include("telerad.web.urls")),
    path("", include("fleet.web.urls")),
    path("", include("core.urls")),
]
