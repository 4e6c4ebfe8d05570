"""Peer review API: the reviewer's queue, a blinded review, scoring; QC picks and discrepancy rates.

Blinding: ``review_payload`` is the only shape a reviewer gets. It is built field by field from
the report's content and the study, never from a model serializer, so no author, signer,
version ``saved_by``, task (claimant) or audit trail can slip in when the models grow.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Any

from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.exceptions import AccessDenied, InvalidInput, NotFound
from dicom.models import Study
from dicom.study_access import study_visible_to
from telerad.models import PeerReview, PeerReviewStatus, RadpeerScore, Significance
from telerad.report_templates import template_get
from telerad.selectors_peer import (
    BUCKETS,
    peer_discrepancy_rates,
    peer_review_get_for_reviewer,
    peer_reviews_for_reviewer,
)
from telerad.services.peer_review import peer_review_request, peer_review_submit, user_is_quality_staff


def review_summary(review: PeerReview) -> dict[str, Any]:
    """A queue row: what to review, not who wrote it."""
    study = review.report.study
    task = review.report.task
    return {
        "id": review.pk,
        "status": review.status,
        "reason": review.reason,
        "assigned_at": review.assigned_at,
        "completed_at": review.completed_at,
        "score": review.score,
        "significance": review.significance,
        "study": {
            "id": study.pk,
            "accession_number": study.accession_number,
            "study_date": study.study_date,
            "modality": task.modality,
            "body_part": task.body_part,
            "hospital": study.hospital.name if study.hospital else "",
        },
    }


def review_payload(review: PeerReview, *, user) -> dict[str, Any]:
    """The whole review for its reviewer: the report's content and the study, blinded."""
    report, study = review.report, review.report.study
    template = template_get(report.template)
    body = review_summary(review)
    body["comment"] = review.comment
    body["study"].update(
        {
            "study_instance_uid": study.study_instance_uid,
            "description": study.description,
            "priority": report.task.priority,
        }
    )
    body["report"] = {
        "template": template.as_dict(),
        "fields": report.fields,
        "free_text": report.free_text,
        "critical": report.critical,
        "signed_at": report.signed_at,
    }
    body["viewer_url"] = (
        f"/viewer/?StudyInstanceUIDs={study.study_instance_uid}" if study_visible_to(user, study) else None
    )
    return body


class ScoreSerializer(serializers.Serializer):
    score = serializers.ChoiceField(choices=RadpeerScore.choices)
    significance = serializers.ChoiceField(
        choices=Significance.choices, required=False, default="", allow_blank=True
    )
    comment = serializers.CharField(required=False, allow_blank=True, default="", max_length=4000)


class QueueQuerySerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=[*PeerReviewStatus.choices, ("all", "All")], required=False)


class PeerReviewQueueApi(APIView):
    """The caller's own peer reviews: open ones by default, ``?status=done|cancelled|all``."""

    @extend_schema(
        operation_id="reading_peer_reviews_list",
        parameters=[OpenApiParameter("status", str, enum=[*PeerReviewStatus.values, "all"])],
        responses=OpenApiResponse(description="{results: [...]}"),
    )
    def get(self, request: Request) -> Response:
        query = QueueQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        wanted = query.validated_data.get("status", PeerReviewStatus.ASSIGNED)
        reviews = peer_reviews_for_reviewer(request.user, status=None if wanted == "all" else wanted)
        return Response({"results": [review_summary(r) for r in reviews[:200]]})


class PeerReviewDetailApi(APIView):
    """One of the caller's peer reviews with the report's content (first reader not shown). Audited."""

    @extend_schema(responses=OpenApiResponse(description="the blinded review"))
    def get(self, request: Request, pk: int) -> Response:
        review = peer_review_get_for_reviewer(request.user, pk, request=request)
        return Response(review_payload(review, user=request.user))


class PeerReviewScoreApi(APIView):
    """Score the review (assigned reviewer only, once): RADPEER 1, 2a/2b, 3a/3b with a comment."""

    @extend_schema(request=ScoreSerializer, responses=OpenApiResponse(description="the blinded review"))
    def post(self, request: Request, pk: int) -> Response:
        body = ScoreSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        review = peer_reviews_for_reviewer(request.user, status=None).filter(pk=pk).first()
        if review is None:
            raise NotFound("No peer review matches the given id")
        done = peer_review_submit(actor=request.user, review=review, request=request, **body.validated_data)
        fresh = peer_reviews_for_reviewer(request.user, status=None).get(pk=done.pk)
        return Response(review_payload(fresh, user=request.user))


class PickSerializer(serializers.Serializer):
    study = serializers.IntegerField(min_value=1)


class PeerReviewPickApi(APIView):
    """A QC officer picks a study for peer review: now if its report is signed, else at signing."""

    @extend_schema(request=PickSerializer, responses=OpenApiResponse(description="{picked, review}"))
    def post(self, request: Request) -> Response:
        body = PickSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        review, created = peer_review_request(
            actor=request.user, study=Study(pk=body.validated_data["study"]), request=request
        )
        answer = {
            "study": body.validated_data["study"],
            "review": (
                {
                    "id": review.pk,
                    "status": review.status,
                    "reason": review.reason,
                    "reviewer": review.reviewer_id,
                }
                if review
                else None
            ),
            "detail": (
                "Peer review assigned"
                if created
                else "Already under peer review"
                if review
                else "Picked: the report will be reviewed once it is signed"
            ),
        }
        return Response(
            answer, status=status.HTTP_201_CREATED if created or review is None else status.HTTP_200_OK
        )


class RatesQuerySerializer(serializers.Serializer):
    start = serializers.DateField(required=False)
    end = serializers.DateField(required=False, help_text="exclusive")
    pool = serializers.IntegerField(required=False, min_value=1)
    reader = serializers.IntegerField(required=False, min_value=1)
    bucket = serializers.ChoiceField(choices=list(BUCKETS), required=False, default="month")


def _midnight(day) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


class PeerReviewRatesApi(APIView):
    """Discrepancy rates per first reader and period (QC officers and administrators).

    Default window: the last 365 days. Reading-group QC officers see their group's pools only.
    """

    @extend_schema(
        parameters=[
            OpenApiParameter("start", str, description="YYYY-MM-DD, default a year ago"),
            OpenApiParameter("end", str, description="YYYY-MM-DD exclusive, default tomorrow"),
            OpenApiParameter("pool", int),
            OpenApiParameter("reader", int, description="first reader's user id"),
            OpenApiParameter("bucket", str, enum=list(BUCKETS)),
        ],
        responses=OpenApiResponse(description="{results: [...]}"),
    )
    def get(self, request: Request) -> Response:
        if not user_is_quality_staff(request.user):
            raise AccessDenied("Only QC officers and administrators see peer review rates")
        query = RatesQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        data = query.validated_data
        today = timezone.localdate()
        end = data.get("end") or today + timedelta(days=1)
        start = data.get("start") or end - timedelta(days=365)
        if start >= end:
            raise InvalidInput("end: must be after start", code="invalid_field", extra={"field": "end"})
        rows = peer_discrepancy_rates(
            start=_midnight(start),
            end=_midnight(end),
            pool_id=data.get("pool"),
            reader_id=data.get("reader"),
            bucket=data["bucket"],
            viewer=request.user,
        )
        return Response({"start": start, "end": end, "bucket": data["bucket"], "results": rows})
