"""The live map's data: ``GET /api/fleet/map/`` (docs/fleet-map.md).

The same snapshot the map page embeds: the operator's units (position, status, last seen,
today's visits), depots and hospitals. The page fetches it again after a websocket reconnect,
so updates missed while offline are caught up.
"""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.permissions import BasePermission
from rest_framework.response import Response
from rest_framework.views import APIView

from fleet.selectors_map import map_operator_for_user, map_snapshot


class IsMapViewer(BasePermission):
    """Dispatchers and administrators of a fleet operator; everyone else is refused (403)."""

    message = "The fleet map is for the operator's dispatchers and administrators."

    def has_permission(self, request, view) -> bool:
        return map_operator_for_user(request.user) is not None


class FleetMapApi(APIView):
    """The operator's units, depots and hospitals as the live map draws them."""

    permission_classes = [IsMapViewer]

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request):
        operator = map_operator_for_user(request.user)
        assert operator is not None  # IsMapViewer
        return Response(map_snapshot(operator=operator))
