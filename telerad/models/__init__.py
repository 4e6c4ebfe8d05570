from telerad.models.critical import CriticalResult, Notification
from telerad.models.events import ReadingEvent
from telerad.models.peer import (
    PeerReview,
    PeerReviewReason,
    PeerReviewStatus,
    RadpeerScore,
    Significance,
)
from telerad.models.pools import Radiologist, ReadingPool
from telerad.models.reports import Addendum, Report, ReportVersion
from telerad.models.tasks import ReadingTask

__all__ = [
    "Addendum",
    "CriticalResult",
    "Notification",
    "PeerReview",
    "PeerReviewReason",
    "PeerReviewStatus",
    "RadpeerScore",
    "Radiologist",
    "ReadingEvent",
    "ReadingPool",
    "ReadingTask",
    "Report",
    "ReportVersion",
    "Significance",
]
