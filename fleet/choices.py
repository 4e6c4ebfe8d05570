from django.db import models


class Modality(models.TextChoices):
    """DICOM modality codes of the units we run."""

    CT = "CT", "CT"
    MR = "MR", "MRI"
    DX = "DX", "DR (digital radiography)"


class UnitStatus(models.TextChoices):
    AVAILABLE = "available", "Available"
    EN_ROUTE = "en_route", "En route"
    ON_SITE = "on_site", "On site"
    SCANNING = "scanning", "Scanning"
    RETURNING = "returning", "Returning"
    MAINTENANCE = "maintenance", "Maintenance"
    OUT_OF_SERVICE = "out_of_service", "Out of service"
    # Taken out of the fleet for good (fleet.services.withdrawal); no transition leaves it.
    WITHDRAWN = "withdrawn", "Withdrawn"


class CrewRole(models.TextChoices):
    DRIVER = "driver", "Driver"
    TECHNOLOGIST = "technologist", "Technologist"
    RADIOGRAPHER = "radiographer", "Radiographer"


class VisitStatus(models.TextChoices):
    PLANNED = "planned", "Planned"
    EN_ROUTE = "en_route", "En route"
    ON_SITE = "on_site", "On site"
    DONE = "done", "Done"
    CANCELLED = "cancelled", "Cancelled"


class SiteKind(models.TextChoices):
    HOSPITAL = "hospital", "Hospital"
    DEPOT = "depot", "Depot"


class GeofenceEventKind(models.TextChoices):
    ARRIVAL = "arrival", "Arrival"
    DEPARTURE = "departure", "Departure"


class LicenceKind(models.TextChoices):
    """Permits a unit must hold to be dispatched (which ones depend on its modality)."""

    INSTITUTION = "institution", "Medical institution licence"
    LARGE_EQUIPMENT = "large_equipment", "Large-equipment configuration permit"
    RADIATION_SAFETY = "radiation_safety", "Radiation safety licence"
    VEHICLE_REGISTRATION = "vehicle_registration", "Vehicle registration"


class CredentialKind(models.TextChoices):
    """Personal qualifications of crew members."""

    RADIOGRAPHER = "radiographer_certificate", "Radiographer certificate"
    MR_SAFETY = "mr_safety_training", "MR-safety training"
    DRIVING_LICENCE = "driving_licence", "Driving licence"


class EquipmentQCResult(models.TextChoices):
    PASS = "pass", "Pass"
    FAIL = "fail", "Fail"
