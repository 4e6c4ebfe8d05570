from dicom.models.deid import DeidExport, DeidExportStatus, Pseudonym, PseudonymKind
from dicom.models.ingest import IngestCursor, ReceivingStudy
from dicom.models.orders import Order
from dicom.models.qc import QCResult
from dicom.models.studies import Series, Study

__all__ = [
    "DeidExport",
    "DeidExportStatus",
    "IngestCursor",
    "Order",
    "Pseudonym",
    "PseudonymKind",
    "QCResult",
    "ReceivingStudy",
    "Series",
    "Study",
]
