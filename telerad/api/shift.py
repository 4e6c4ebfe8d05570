"""A reader's own shift: ``POST /api/reading/me/shift/ {"on_shift": true|false}``."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from core.exceptions import InvalidInput
from telerad.api.worklist import IsRadiologist
from telerad.selectors import radiologist_profile_for_user
from telerad.services.profiles import radiologist_shift_set


class ShiftSerializer(serializers.Serializer):
    on_shift = serializers.BooleanField()


ShiftResponse = inline_serializer("ShiftResponse", {"on_shift": serializers.BooleanField()})


class MyShiftApi(APIView):
    """Come on or go off shift. Going off escalates studies nobody on shift can now read."""

    permission_classes = [IsRadiologist]

    @extend_schema(request=ShiftSerializer, responses=ShiftResponse)
    def post(self, request):
        body = ShiftSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        profile = radiologist_profile_for_user(request.user)
        if profile is None:
            raise InvalidInput("You have no reader profile yet; an administrator creates it")
        profile = radiologist_shift_set(
            actor=request.user, radiologist=profile, on_shift=body.validated_data["on_shift"]
        )
        return Response({"on_shift": profile.on_shift})
