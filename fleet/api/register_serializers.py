"""Serializers of the fleet register API. Output only, or input validation; they never save."""

from __future__ import annotations

from django.utils import timezone
from rest_framework import serializers

from fleet.choices import CredentialKind, LicenceKind, UnitStatus
from fleet.models import CrewCredential, EquipmentQC, Licence, MaintenanceWindow, Unit, UnitStatusChange
from fleet.selectors import unit_dispatch_blockers, unit_qc_hold_reason, unit_qc_today


class UnitSerializer(serializers.ModelSerializer):
    """A unit with whether it may be dispatched and whether it may scan today, and why not."""

    dispatchable = serializers.SerializerMethodField()
    dispatch_blockers = serializers.SerializerMethodField()
    qc_hold = serializers.SerializerMethodField()
    qc_hold_reason = serializers.SerializerMethodField()
    qc_today = serializers.SerializerMethodField()

    class Meta:
        model = Unit
        fields = [
            "id",
            "name",
            "modality",
            "scanner_model",
            "ae_title",
            "capacity_per_day",
            "depot_name",
            "depot_latitude",
            "depot_longitude",
            "status",
            "status_changed_at",
            "dispatchable",
            "dispatch_blockers",
            "qc_hold",
            "qc_hold_reason",
            "qc_today",
        ]
        read_only_fields = fields

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Each rule is evaluated once per unit, though two fields show its result.
        self._blockers_cache: dict[int, list[str]] = {}
        self._holds_cache: dict[int, str | None] = {}

    def _blockers(self, unit: Unit) -> list[str]:
        if unit.pk not in self._blockers_cache:
            self._blockers_cache[unit.pk] = unit_dispatch_blockers(unit, at=self.context.get("at"))
        return self._blockers_cache[unit.pk]

    def _hold(self, unit: Unit) -> str | None:
        if unit.pk not in self._holds_cache:
            at = self.context.get("at") or timezone.now()
            self._holds_cache[unit.pk] = unit_qc_hold_reason(unit, day=timezone.localdate(at))
        return self._holds_cache[unit.pk]

    def get_dispatchable(self, unit: Unit) -> bool:
        return not self._blockers(unit)

    def get_dispatch_blockers(self, unit: Unit) -> list[str]:
        return self._blockers(unit)

    def get_qc_hold(self, unit: Unit) -> bool:
        return self._hold(unit) is not None

    def get_qc_hold_reason(self, unit: Unit) -> str | None:
        return self._hold(unit)

    def get_qc_today(self, unit: Unit) -> dict | None:
        at = self.context.get("at") or timezone.now()
        check = unit_qc_today(unit, day=timezone.localdate(at))
        return EquipmentQCSerializer(check).data if check else None


class TransitionSerializer(serializers.Serializer):
    to = serializers.ChoiceField(choices=UnitStatus.choices)
    reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=500)


class UnitStatusChangeSerializer(serializers.ModelSerializer):
    actor = serializers.CharField(source="actor.username", default=None, read_only=True)

    class Meta:
        model = UnitStatusChange
        fields = ["id", "from_status", "to_status", "at", "actor", "reason"]
        read_only_fields = fields


class LicenceSerializer(serializers.ModelSerializer):
    class Meta:
        model = Licence
        fields = ["id", "unit", "kind", "number", "issuer", "expires_on", "created_at"]
        read_only_fields = fields


class LicenceCreateSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=LicenceKind.choices)
    number = serializers.CharField(max_length=64)
    issuer = serializers.CharField(max_length=150)
    expires_on = serializers.DateField()


class CrewCredentialSerializer(serializers.ModelSerializer):
    class Meta:
        model = CrewCredential
        fields = ["id", "crew_member", "kind", "number", "expires_on", "created_at"]
        read_only_fields = fields


class CrewCredentialCreateSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=CredentialKind.choices)
    number = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")
    expires_on = serializers.DateField()


class MaintenanceWindowSerializer(serializers.ModelSerializer):
    class Meta:
        model = MaintenanceWindow
        fields = ["id", "unit", "starts_at", "ends_at", "reason", "created_at"]
        read_only_fields = fields


class MaintenanceWindowCreateSerializer(serializers.Serializer):
    starts_at = serializers.DateTimeField()
    ends_at = serializers.DateTimeField()
    reason = serializers.CharField(max_length=300)


class EquipmentQCSerializer(serializers.ModelSerializer):
    performed_by = serializers.CharField(source="performed_by.username", default=None, read_only=True)

    class Meta:
        model = EquipmentQC
        fields = [
            "id",
            "unit",
            "day",
            "performed_at",
            "performed_by",
            "measurements",
            "tolerances",
            "result",
            "failures",
        ]
        read_only_fields = fields


class EquipmentQCCreateSerializer(serializers.Serializer):
    # The result is never accepted from the client: the service computes it.
    measurements = serializers.JSONField(
        help_text="CT: hu_mean, noise_sd, uniformity_hu; MR: snr, piu_percent; "
        "DX: dead_pixels, uniformity_deviation_percent"
    )
    performed_at = serializers.DateTimeField(required=False)


class VisitCrewSerializer(serializers.Serializer):
    crew = serializers.ListField(child=serializers.IntegerField(min_value=1), allow_empty=True, max_length=20)
