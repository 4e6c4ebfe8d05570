from dicom.models.ingest import IngestCursor
from dicom.models.orders import Order
from dicom.models.qc import QCResult
from dicom.models.studies import Series, Study

__all__ = ["IngestCursor", "Order", "QCResult", "Series", "Study"]
