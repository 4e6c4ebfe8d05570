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
