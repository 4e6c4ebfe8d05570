"""Peer review services: deterministic sampling, reviewer choice, QC picks, scoring, notifications, rates."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from core.exceptions import AccessDenied, Conflict, InvalidInput, NotFound
from core.models import AuditEntry
from telerad.choices import ReportStatus
from telerad.models import Notification, PeerReview, PeerReviewReason, PeerReviewStatus, Report
from telerad.selectors_peer import peer_discrepancy_rates
from telerad.services import peer_review as peer
from telerad.services.peer_review import (
    ASSIGNED_KIND,
    DISCREPANCY_KIND,
    NO_REVIEWER_COMMENT,
    peer_review_request,
    peer_review_sample,
    peer_review_selected,
    peer_review_submit,
)
from tests.telerad.peer_support import claimed_task, final_report, make_world, sign

pytestmark = pytest.mark.django_db


@pytest.fixture
def w():
    return make_world(percent=0)


def _pool_percent(w, percent):
    type(w.pool).objects.filter(pk=w.pool.pk).update(peer_review_percent=percent)


# --- sampling ---------------------------------------------------------------------------------


@pytest.mark.django_db(False)
def test_sample_share_is_the_configured_percent_and_reproducible():
    ids = range(1, 2001)
    picked = [i for i in ids if peer_review_selected(report_id=i, percent=5, seed="caravan")]
    # 5 % of 2,000 = 100; binomial sd ~ 9.7: a fair hash lands well inside +-2 sd.
    assert 80 <= len(picked) <= 120
    again = [i for i in ids if peer_review_selected(report_id=i, percent=5, seed="caravan")]
    assert again == picked
    other = [i for i in ids if peer_review_selected(report_id=i, percent=5, seed="another seed")]
    assert other != picked and 80 <= len(other) <= 120
    big = sum(peer_review_selected(report_id=i, percent=5, seed="caravan") for i in range(1, 20001))
    assert abs(big / 20000 - 0.05) < 0.005
    assert not any(peer_review_selected(report_id=i, percent=0, seed="caravan") for i in ids)
    assert all(peer_review_selected(report_id=i, percent=100, seed="caravan") for i in ids)
    # 2.5 % keeps its fraction and lies inside the 5 % sample (same hash, lower bar).
    half = [i for i in ids if peer_review_selected(report_id=i, percent="2.50", seed="caravan")]
    assert set(half) < set(picked) and 30 <= len(half) <= 70


def test_sampling_at_sign_follows_the_hash_of_seed_and_report_id(w, settings):
    settings.PEER_REVIEW_SEED = "test-seed"
    _pool_percent(w, 30)
    reports = [final_report(w) for _ in range(40)]
    reviews = {r.pk: peer_review_sample(report=r) for r in reports}
    expected = {r.pk for r in reports if peer_review_selected(report_id=r.pk, percent=30, seed="test-seed")}
    assert {pk for pk, review in reviews.items() if review is not None} == expected
    assert 0 < len(expected) < 40
    assert set(PeerReview.objects.values_list("report_id", flat=True)) == expected
    assert set(PeerReview.objects.values_list("reason", flat=True)) == {PeerReviewReason.SAMPLED}
    # Sampling again is idempotent: same reviews, nothing new.
    assert [peer_review_sample(report=r) for r in reports] == [reviews[r.pk] for r in reports]
    assert PeerReview.objects.count() == len(expected)


def test_signing_samples_the_report(w):
    _pool_percent(w, 100)
    report = sign(w)
    review = PeerReview.objects.get(report=report)
    assert (review.status, review.reason, review.first_reader, review.pool) == (
        PeerReviewStatus.ASSIGNED,
        PeerReviewReason.SAMPLED,
        w.reader,
        w.pool,
    )
    assert review.reviewer in (w.colleague, w.second)
    entry = AuditEntry.objects.get(action="peer_review.assign")
    assert entry.object_id == str(review.pk) and entry.actor_id is None


def test_signing_outside_the_sample_creates_nothing(w):
    report = sign(w)
    assert report.status == ReportStatus.FINAL
    assert PeerReview.objects.count() == 0


def test_a_failing_sampler_never_undoes_the_signature(w, monkeypatch):
    def boom(**kwargs):
        raise RuntimeError("sampler down")

    monkeypatch.setattr(peer, "peer_review_sample", boom)
    report = sign(w)
    assert Report.objects.get(pk=report.pk).status == ReportStatus.FINAL
    assert PeerReview.objects.count() == 0


# --- reviewer choice --------------------------------------------------------------------------


def test_the_reviewer_is_never_the_first_reader_and_least_loaded_first(w):
    _pool_percent(w, 100)
    first = peer_review_sample(report=final_report(w))
    second = peer_review_sample(report=final_report(w))
    third = peer_review_sample(report=final_report(w))
    # Equal load: lowest profile id (colleague), then the other, then back to the colleague.
    assert [first.reviewer, second.reviewer, third.reviewer] == [w.colleague, w.second, w.colleague]
    by_colleague = peer_review_sample(report=final_report(w, reader=w.colleague))
    # Open reviews: reader 0, second 1, colleague 2 (and the colleague wrote this one).
    assert by_colleague.reviewer == w.reader
    assert w.reader not in {first.reviewer, second.reviewer, third.reviewer}


def test_only_eligible_active_pool_members_review(w):
    _pool_percent(w, 100)
    w.second.is_active = False
    w.second.save()
    w.colleague.radiologist.pools.clear()  # left the pool since routing
    review = peer_review_sample(report=final_report(w))
    assert review.status == PeerReviewStatus.CANCELLED and review.reviewer is None
    assert review.comment == NO_REVIEWER_COMMENT
    assert AuditEntry.objects.filter(action="peer_review.unassigned", object_id=str(review.pk)).count() == 1


def test_no_colleague_eligible_for_the_study_cancels(w):
    _pool_percent(w, 100)
    review = peer_review_sample(report=final_report(w, eligible=[w.reader]))
    assert (review.status, review.reviewer, review.first_reader) == (
        PeerReviewStatus.CANCELLED,
        None,
        w.reader,
    )


def test_database_refuses_a_self_review(w):
    report = final_report(w)
    with pytest.raises(IntegrityError), transaction.atomic():
        PeerReview.objects.create(
            report=report, pool=w.pool, first_reader=w.reader, reviewer=w.reader, reason="sampled"
        )


# --- QC picks ---------------------------------------------------------------------------------


def test_a_pick_before_signing_is_honoured_at_sign_time(w):
    task = claimed_task(w)
    review, created = peer_review_request(actor=w.qc, study=task.study)
    assert (review, created) == (None, False)
    pick = AuditEntry.objects.get(action="peer_review.pick")
    assert (pick.object_type, pick.object_id, pick.actor_id) == ("dicom.study", str(task.study_id), w.qc.pk)
    report = sign(w, task)  # the pool samples 0 %
    review = PeerReview.objects.get(report=report)
    assert (review.reason, review.requested_by, review.status) == (
        PeerReviewReason.QC_PICK,
        w.qc,
        PeerReviewStatus.ASSIGNED,
    )
    assert review.reviewer in (w.colleague, w.second)


def test_a_pick_after_signing_assigns_at_once_and_is_idempotent(w):
    report = sign(w)
    review, created = peer_review_request(actor=w.group_qc, study=report.study)
    assert created and review.reason == PeerReviewReason.QC_PICK and review.requested_by == w.group_qc
    again, created_again = peer_review_request(actor=w.qc, study=report.study)
    assert (again, created_again) == (review, False)
    assert PeerReview.objects.count() == 1
    assert AuditEntry.objects.filter(action="peer_review.pick").count() == 1


def test_only_quality_staff_of_the_study_pick(w):
    task = claimed_task(w)
    before = AuditEntry.objects.count()
    with pytest.raises(AccessDenied):
        peer_review_request(actor=w.colleague, study=task.study)
    with pytest.raises(NotFound):  # another reading group's QC officer: the study is not theirs
        peer_review_request(actor=w.other_qc, study=task.study)
    with pytest.raises(NotFound):  # another operator's QC officer: not their van's study
        peer_review_request(actor=w.other_operator_qc, study=task.study)
    assert AuditEntry.objects.count() == before
    assert PeerReview.objects.count() == 0


# --- scoring ----------------------------------------------------------------------------------


@pytest.fixture
def review(w):
    _pool_percent(w, 100)
    return peer_review_sample(report=final_report(w))


@pytest.mark.parametrize(
    ("score", "significance", "comment", "field"),
    [
        (1, "a", "", "significance"),
        (2, "", "missed nodule", "significance"),
        (3, "", "missed nodule", "significance"),
        (3, "c", "missed nodule", "significance"),
        (2, "a", "  ", "comment"),
        (4, "", "", "score"),
        ("x", "", "", "score"),
        (1, "", "y" * 4001, "comment"),
    ],
)
def test_score_validation_changes_nothing(review, score, significance, comment, field):
    before = AuditEntry.objects.count()
    with pytest.raises(InvalidInput) as exc:
        peer_review_submit(
            actor=review.reviewer, review=review, score=score, significance=significance, comment=comment
        )
    assert exc.value.extra["field"] == field
    fresh = PeerReview.objects.get(pk=review.pk)
    assert (fresh.status, fresh.score, fresh.completed_at) == (PeerReviewStatus.ASSIGNED, None, None)
    assert AuditEntry.objects.count() == before


def test_only_the_reviewer_scores_and_only_once(w, review):
    for outsider in (w.reader, w.qc, w.second if review.reviewer != w.second else w.colleague):
        with pytest.raises(NotFound):
            peer_review_submit(actor=outsider, review=review, score=1)
    done = peer_review_submit(actor=review.reviewer, review=review, score=1, comment=" Agree. ")
    assert (done.status, done.score, done.significance, done.comment) == (
        PeerReviewStatus.DONE,
        1,
        "",
        "Agree.",
    )
    with pytest.raises(Conflict):
        peer_review_submit(actor=review.reviewer, review=review, score=3, significance="b", comment="x")
    assert PeerReview.objects.get(pk=review.pk).score == 1
    entry = AuditEntry.objects.get(action="peer_review.score")
    assert entry.actor_id == review.reviewer_id and '"score":1' in entry.details


def test_score_3_notifies_the_first_reader_and_the_qc_officers(w, review):
    # The reviewer was told of the assignment, without patient data or the first reader's name.
    [assigned] = Notification.objects.filter(kind=ASSIGNED_KIND)
    assert assigned.recipient_id == review.reviewer_id
    assert assigned.message == f"A CT study is waiting for your peer review (review #{review.pk})."
    Notification.objects.filter(kind=ASSIGNED_KIND).delete()
    peer_review_submit(actor=review.reviewer, review=review, score=3, significance="b", comment="Missed PE.")
    rows = Notification.objects.order_by("recipient__username")
    assert sorted(rows.values_list("recipient__username", flat=True)) == sorted(
        ["dr.firstreader", "qc", "group-qc"]
    )  # not another reading group's QC officer, nor another operator's
    assert set(rows.values_list("kind", flat=True)) == {DISCREPANCY_KIND}
    message = f"Peer review of report #{review.report_id} scored 3b: significant discrepancy."
    assert set(rows.values_list("message", flat=True)) == {message}
    assert review.reviewer.username not in message and "Missed PE" not in message


def test_score_2_notifies_nobody(review):
    peer_review_submit(actor=review.reviewer, review=review, score=2, significance="a", comment="Minor.")
    assert Notification.objects.exclude(kind=ASSIGNED_KIND).count() == 0
    assert PeerReview.objects.get(pk=review.pk).status == PeerReviewStatus.DONE


# --- rates ------------------------------------------------------------------------------------


def _done(w, *, reader, reviewer, score, when):
    report = final_report(w, reader=reader)
    return PeerReview.objects.create(
        report=report,
        pool=w.pool,
        first_reader=reader,
        reviewer=reviewer,
        reason="sampled",
        status=PeerReviewStatus.DONE,
        score=score,
        significance="" if score == 1 else "a",
        completed_at=when,
    )


def test_discrepancy_rates_per_reader_and_month(w):
    tz = timezone.get_current_timezone()
    jan = dt.datetime(2026, 1, 10, 12, tzinfo=tz)
    feb = dt.datetime(2026, 2, 3, 12, tzinfo=tz)
    for score in (1, 1, 2, 3):
        _done(w, reader=w.reader, reviewer=w.colleague, score=score, when=jan)
    for score in (1, 3):
        _done(w, reader=w.reader, reviewer=w.colleague, score=score, when=feb)
    for score in (1, 1, 1):
        _done(w, reader=w.colleague, reviewer=w.second, score=score, when=jan)
    _done(w, reader=w.colleague, reviewer=w.second, score=3, when=dt.datetime(2025, 12, 31, 12, tzinfo=tz))
    start, end = dt.datetime(2026, 1, 1, tzinfo=tz), dt.datetime(2026, 3, 1, tzinfo=tz)
    rows = peer_discrepancy_rates(start=start, end=end)
    assert [
        (r["first_reader"], r["period"], r["reviewed"], r["score_2"], r["score_3"]) for r in rows
    ] == sorted(
        [
            (w.reader.pk, dt.date(2026, 1, 1), 4, 1, 1),
            (w.colleague.pk, dt.date(2026, 1, 1), 3, 0, 0),
            (w.reader.pk, dt.date(2026, 2, 1), 2, 0, 1),
        ],
        key=lambda r: (r[1], r[0]),
    )
    rates = {(r["first_reader"], r["period"].month): r["discrepancy_rate"] for r in rows}
    assert rates == {(w.reader.pk, 1): 0.5, (w.colleague.pk, 1): 0.0, (w.reader.pk, 2): 0.5}
    assert rows[0]["first_reader_name"] in ("Yiwen Firstreader", "Ming Colleague")
    only = peer_discrepancy_rates(start=start, end=end, reader_id=w.reader.pk, bucket="day")
    assert [(r["period"], r["reviewed"]) for r in only] == [
        (dt.date(2026, 1, 10), 4),
        (dt.date(2026, 2, 3), 2),
    ]
    assert peer_discrepancy_rates(start=start, end=end, pool_id=w.pool.pk + 1000) == []
    with pytest.raises(InvalidInput):
        peer_discrepancy_rates(start=start, end=end, bucket="year")
