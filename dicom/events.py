"""Channel-layer group names of the DICOM domain (one place, used by senders and consumers)."""


def unit_qc_group(unit_id: int) -> str:
    """The group of a unit's technologist QC view."""
    return f"unit-{unit_id}-qc"
