"""Peer review API and pages: the reviewer's queue, blinding, scoring, QC picks, rates, access."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from core.models import AuditEntry
from telerad.models import Notification, PeerReview, PeerReviewStatus, ReportVersion
from telerad.services.peer_review import ASSIGNED_KIND, DISCREPANCY_KIND, peer_review_sample
from tests.telerad.peer_support import claimed_task, final_report, make_world, sign

pytestmark = pytest.mark.django_db

BLINDED_KEYS = {"author", "first_reader", "signed_by", "saved_by", "versions", "audit", "task", "claimed_by"}


@pytest.fixture
def w():
    world = make_world(percent=100)
    world.report = sign(world)  # through the services: versions saved_by the first reader exist
    world.review = PeerReview.objects.get(report=world.report)
    return world


def _api(user):
    client = APIClient()
    client.force_authenticate(user)
    return client


def _keys(value) -> set[str]:
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in _keys(v)}
    if isinstance(value, list):
        return {k for v in value for k in _keys(v)}
    return set()


def test_queue_lists_only_the_callers_open_reviews(w):
    reviewer = w.review.reviewer
    got = _api(reviewer).get("/api/reading/peer-reviews/")
    assert got.status_code == 200
    assert [r["id"] for r in got.json()["results"]] == [w.review.pk]
    for other in (w.reader, w.qc):
        assert _api(other).get("/api/reading/peer-reviews/").json()["results"] == []
    assert _api(reviewer).get("/api/reading/peer-reviews/?status=done").json()["results"] == []
    assert _api(reviewer).get("/api/reading/peer-reviews/?status=bogus").status_code == 400


def test_the_review_payload_is_blinded_to_the_first_reader(w):
    assert ReportVersion.objects.filter(report=w.report, saved_by=w.reader).exists()
    got = _api(w.review.reviewer).get(f"/api/reading/peer-reviews/{w.review.pk}/")
    assert got.status_code == 200
    body = got.json()
    assert body["report"]["fields"]["impression"].startswith("Probably benign")
    assert body["study"]["accession_number"] == w.report.study.accession_number
    text = json.dumps(body)
    for leak in ("dr.firstreader", "Firstreader", "Yiwen", w.reader.get_full_name()):
        assert leak not in text
    assert not (_keys(body) & BLINDED_KEYS)
    # The queue row too.
    queue = json.dumps(_api(w.review.reviewer).get("/api/reading/peer-reviews/").json())
    assert "firstreader" not in queue.lower() and not (_keys(json.loads(queue)) & BLINDED_KEYS)
    view = AuditEntry.objects.get(action="peer_review.view")
    assert (view.actor_id, view.object_id, view.patient_data) == (
        w.review.reviewer_id,
        str(w.review.pk),
        True,
    )


def test_only_the_reviewer_opens_the_review(w):
    for other in (w.reader, w.qc, w.admin):
        assert _api(other).get(f"/api/reading/peer-reviews/{w.review.pk}/").status_code == 404
        assert (
            _api(other)
            .post(f"/api/reading/peer-reviews/{w.review.pk}/score/", {"score": 1}, format="json")
            .status_code
            == 404
        )
    assert PeerReview.objects.get(pk=w.review.pk).status == PeerReviewStatus.ASSIGNED


def test_scoring_through_the_api(w):
    url = f"/api/reading/peer-reviews/{w.review.pk}/score/"
    client = _api(w.review.reviewer)
    bad = client.post(url, {"score": 2, "comment": "Missed nodule"}, format="json")
    assert bad.status_code == 400 and bad.json()["field"] == "significance"
    Notification.objects.filter(kind=ASSIGNED_KIND).delete()  # the assignment's own notice
    assert Notification.objects.count() == 0
    ok = client.post(url, {"score": 3, "significance": "b", "comment": "Missed PE."}, format="json")
    assert ok.status_code == 200, ok.json()
    assert (ok.json()["status"], ok.json()["score"], ok.json()["significance"]) == ("done", 3, "b")
    assert "dr.firstreader" not in json.dumps(ok.json())
    assert sorted(Notification.objects.values_list("recipient__username", flat=True)) == sorted(
        ["dr.firstreader", "qc", "group-qc"]
    )  # not another reading group's QC officer, nor another operator's
    assert set(Notification.objects.values_list("kind", flat=True)) == {DISCREPANCY_KIND}
    again = client.post(url, {"score": 1}, format="json")
    assert again.status_code == 409 and again.json()["code"] == "review_closed"


def test_qc_picks_a_study(w):
    task = claimed_task(w)
    url = "/api/quality/peer-reviews/picks/"
    assert _api(w.colleague).post(url, {"study": task.study_id}, format="json").status_code == 403
    assert _api(w.qc).post(url, {"study": 999999}, format="json").status_code == 404
    assert _api(w.qc).post(url, {"study": "x"}, format="json").status_code == 400
    # Another operator's QC officer: not their van's study, as if it did not exist; nothing picked.
    audited = AuditEntry.objects.filter(action="peer_review.pick").count()
    assert _api(w.other_operator_qc).post(url, {"study": task.study_id}, format="json").status_code == 404
    assert AuditEntry.objects.filter(action="peer_review.pick").count() == audited
    picked = _api(w.qc).post(url, {"study": task.study_id}, format="json")
    assert picked.status_code == 201 and picked.json()["review"] is None
    report = sign(w, task)
    assert PeerReview.objects.get(report=report).reason == "qc_pick"
    # A signed study already under review: 200 with that review.
    again = _api(w.qc).post(url, {"study": w.report.study_id}, format="json")
    assert again.status_code == 200 and again.json()["review"]["id"] == w.review.pk


def test_rates_for_quality_staff_only(w):
    done = peer_review_sample(report=final_report(w))
    PeerReview.objects.filter(pk=done.pk).update(
        status=PeerReviewStatus.DONE, score=2, significance="a", completed_at=timezone.now()
    )
    url = "/api/quality/peer-reviews/rates/"
    assert _api(w.colleague).get(url).status_code == 403
    got = _api(w.qc).get(url)
    assert got.status_code == 200
    rows = got.json()["results"]
    assert [(r["first_reader"], r["reviewed"], r["score_2"], r["discrepancy_rate"]) for r in rows] == [
        (w.reader.pk, 1, 1, 1.0)
    ]
    assert _api(w.group_qc).get(url).json()["results"] == rows  # their own group's pool
    assert _api(w.other_qc).get(url).json()["results"] == []  # another group's: nothing
    assert _api(w.other_operator_qc).get(url).json()["results"] == []  # another operator's: nothing
    tomorrow = timezone.localdate() + dt.timedelta(days=1)
    assert _api(w.qc).get(url, {"start": tomorrow.isoformat()}).status_code == 400  # start >= end
    assert _api(w.qc).get(url, {"bucket": "year"}).status_code == 400


def test_reviewer_pages(w, client):
    reviewer = w.review.reviewer
    client.force_login(reviewer)
    listing = client.get("/workspace/reading/peer-reviews/")
    assert listing.status_code == 200 and f"#{w.review.pk}" in listing.content.decode()
    page = client.get(f"/workspace/reading/peer-reviews/{w.review.pk}/")
    html = page.content.decode()
    assert page.status_code == 200 and "data-peer-score-form" in html and "Probably benign" in html
    assert "firstreader" not in html.lower() and "Yiwen" not in html
    refused = client.post(f"/workspace/reading/peer-reviews/{w.review.pk}/", {"score": "3", "comment": "x"})
    assert refused.status_code == 400 and "significance" in refused.content.decode()
    posted = client.post(
        f"/workspace/reading/peer-reviews/{w.review.pk}/", {"score": "1", "significance": "", "comment": ""}
    )
    assert posted.status_code == 302
    assert PeerReview.objects.get(pk=w.review.pk).score == 1
    client.force_login(w.reader)
    assert client.get(f"/workspace/reading/peer-reviews/{w.review.pk}/").status_code == 404
    client.force_login(w.qc)
    assert client.get("/workspace/reading/peer-reviews/").status_code == 403


def test_the_reviewer_cannot_open_the_original_report_until_scored(w):
    """The reviewer may read the study (routing made them eligible), but the report itself,
    which names its author, stays closed to them while the review is open."""
    reviewer = _api(w.review.reviewer)
    url = f"/api/reading/reports/{w.report.pk}/"
    assert _api(w.reader).get(url).status_code == 200  # its author still can
    assert reviewer.get(url).status_code == 404
    assert reviewer.get(f"/api/reading/tasks/{w.report.task_id}/report/").status_code == 404
    client = Client()
    client.force_login(w.review.reviewer)
    editor = client.get(f"/workspace/reading/tasks/{w.report.task_id}/report/")
    assert editor.status_code == 404 and "firstreader" not in editor.content.decode().lower()
    done = reviewer.post(f"/api/reading/peer-reviews/{w.review.pk}/score/", {"score": 1}, format="json")
    assert done.status_code == 200
    assert reviewer.get(url).status_code == 200
    assert client.get(f"/workspace/reading/tasks/{w.report.task_id}/report/").status_code == 200
