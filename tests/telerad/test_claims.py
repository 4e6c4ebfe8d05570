import threading
from collections import Counter
from datetime import timedelta

import pytest
from django.db import connection, connections
from django.utils import timezone

from core.exceptions import AccessDenied, Conflict
from core.models import AuditEntry
from core.services import audit_verify
from telerad.models import ReadingEvent, ReadingTask
from telerad.services.claims import expire_claims, sla_sweep, task_claim, task_release, task_renew
from tests.core.factories import UserFactory
from tests.telerad.factories import (
    RadiologistFactory,
    ReadingPoolFactory,
    ReadingTaskFactory,
    RoutableStudyFactory,
)

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _lease(settings):
    settings.READING_CLAIM_MINUTES = 7


LEASE = timedelta(minutes=7)


@pytest.fixture
def pool():
    return ReadingPoolFactory()


def _reader(pool, **kwargs):
    return RadiologistFactory(pools=[pool], **kwargs)


def _snapshot(task):
    task.refresh_from_db()
    return (
        task.status,
        task.claimed_by_id,
        task.claimed_at,
        task.claim_expires_at,
        ReadingEvent.objects.count(),
        AuditEntry.objects.count(),
    )


def test_an_eligible_reader_on_shift_claims_for_one_lease(pool, django_capture_on_commit_callbacks):
    reader = _reader(pool)
    task = ReadingTaskFactory(pool=pool, eligible=[reader])
    now = timezone.now()

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        claimed = task_claim(actor=reader.user, task=task, now=now)

    task.refresh_from_db()
    assert (task.status, task.claimed_by, task.claimed_at, task.claim_expires_at) == (
        "claimed",
        reader.user,
        now,
        now + LEASE,
    )
    assert claimed.claim_expires_at == now + LEASE
    event = ReadingEvent.objects.get()
    assert (event.kind, event.pool_id, event.user_id, event.task_id) == (
        "study.claimed",
        pool.pk,
        None,
        task.pk,
    )
    assert event.payload["held_by"] == {"id": reader.user_id, "name": reader.user.get_full_name()}
    assert event.payload["status"] == "claimed"
    assert event.payload["renewed"] is False
    assert event.payload["claim_expires_at"] == (now + LEASE).isoformat()
    assert len(callbacks) == 1
    audit = AuditEntry.objects.get(action="task.claim")
    assert (audit.actor_id, audit.object_type, audit.object_id) == (
        reader.user_id,
        "telerad.readingtask",
        str(task.pk),
    )


def test_a_second_claim_is_refused_with_409_naming_the_holder_and_changes_nothing(pool):
    holder, other = _reader(pool), _reader(pool)
    task = ReadingTaskFactory(pool=pool, eligible=[holder, other])
    now = timezone.now()
    task_claim(actor=holder.user, task=task, now=now)
    before = _snapshot(task)

    with pytest.raises(Conflict) as refused:
        task_claim(actor=other.user, task=task, now=now + timedelta(minutes=1))

    name = holder.user.get_full_name()
    assert refused.value.status_code == 409
    assert name in refused.value.message
    assert refused.value.extra == {"held_by": name, "expires_at": (now + LEASE).isoformat()}
    assert _snapshot(task) == before


def test_claiming_again_as_the_holder_renews_instead_of_failing(pool):
    reader = _reader(pool)
    task = ReadingTaskFactory(pool=pool, eligible=[reader])
    now = timezone.now()
    task_claim(actor=reader.user, task=task, now=now)

    again = task_claim(actor=reader.user, task=task, now=now + timedelta(minutes=2))

    assert again.claim_expires_at == now + timedelta(minutes=2) + LEASE
    assert [e.payload["renewed"] for e in ReadingEvent.objects.order_by("id")] == [False, True]


def test_shift_does_not_decide_eligibility_but_blocks_claiming(pool):
    off = _reader(pool, on_shift=False)
    task = ReadingTaskFactory(pool=pool, eligible=[off])
    before = _snapshot(task)

    with pytest.raises(AccessDenied, match="not on shift"):
        task_claim(actor=off.user, task=task)
    assert _snapshot(task) == before


def test_readers_not_eligible_and_non_radiologists_are_refused_with_403(pool):
    eligible, member = _reader(pool), _reader(pool)
    task = ReadingTaskFactory(pool=pool, eligible=[eligible])
    hospital_user = UserFactory(roles=["hospital_user"])
    before = _snapshot(task)

    with pytest.raises(AccessDenied, match="not eligible") as not_eligible:
        task_claim(actor=member.user, task=task)
    with pytest.raises(AccessDenied, match="Only radiologists"):
        task_claim(actor=hospital_user, task=task)

    assert not_eligible.value.status_code == 403
    assert _snapshot(task) == before


def test_max_concurrent_open_claims_is_enforced_with_409(pool):
    reader = _reader(pool, max_concurrent=2)
    tasks = [ReadingTaskFactory(pool=pool, eligible=[reader]) for _ in range(3)]
    now = timezone.now()
    task_claim(actor=reader.user, task=tasks[0], now=now)
    task_claim(actor=reader.user, task=tasks[1], now=now)
    before = _snapshot(tasks[2])

    with pytest.raises(Conflict, match="limit is 2") as refused:
        task_claim(actor=reader.user, task=tasks[2], now=now)

    assert (refused.value.code, refused.value.extra) == ("too_many_claims", {"held": 2, "max_concurrent": 2})
    assert _snapshot(tasks[2]) == before
    # An expired claim no longer counts against the limit.
    assert task_claim(actor=reader.user, task=tasks[2], now=now + LEASE).status == "claimed"


def test_a_closed_task_cannot_be_claimed(pool):
    reader = _reader(pool)
    task = ReadingTaskFactory(pool=pool, eligible=[reader], status="reported", reported_at=timezone.now())

    with pytest.raises(Conflict, match="reported"):
        task_claim(actor=reader.user, task=task)


def test_lease_expiry_frees_the_claim(pool):
    reader = _reader(pool)
    task = ReadingTaskFactory(pool=pool, eligible=[reader])
    now = timezone.now()
    task_claim(actor=reader.user, task=task, now=now)

    assert expire_claims(now=now + LEASE - timedelta(seconds=1)) == 0
    assert ReadingTask.objects.get().status == "claimed"
    assert expire_claims(now=now + LEASE) == 1
    assert expire_claims(now=now + LEASE) == 0

    task.refresh_from_db()
    assert (task.status, task.claimed_by, task.claim_expires_at) == ("unclaimed", None, None)
    event = ReadingEvent.objects.order_by("id").last()
    assert (event.kind, event.pool_id, event.payload["reason"]) == ("study.released", pool.pk, "expired")
    assert event.payload["previous_holder"]["id"] == reader.user_id
    assert AuditEntry.objects.filter(action="task.expire", actor_id=None).count() == 1


def test_an_expired_lease_can_be_taken_over_before_the_sweep_runs(pool):
    first, second = _reader(pool), _reader(pool)
    task = ReadingTaskFactory(pool=pool, eligible=[first, second])
    now = timezone.now()
    task_claim(actor=first.user, task=task, now=now)

    task_claim(actor=second.user, task=task, now=now + LEASE + timedelta(seconds=1))

    task.refresh_from_db()
    assert task.claimed_by == second.user
    event = ReadingEvent.objects.order_by("id").last()
    assert event.payload["previous_holder"]["id"] == first.user_id
    # The sweep must not free the new holder's claim.
    assert expire_claims(now=now + LEASE + timedelta(seconds=2)) == 0


def test_renew_extends_the_lease_and_only_the_holder_renews(pool):
    holder, other = _reader(pool), _reader(pool)
    task = ReadingTaskFactory(pool=pool, eligible=[holder, other])
    now = timezone.now()
    task_claim(actor=holder.user, task=task, now=now)

    renewed = task_renew(actor=holder.user, task=task, now=now + timedelta(minutes=5))
    assert renewed.claim_expires_at == now + timedelta(minutes=5) + LEASE
    assert expire_claims(now=now + LEASE + timedelta(minutes=1)) == 0
    assert AuditEntry.objects.filter(action="task.renew").count() == 1

    before = _snapshot(task)
    with pytest.raises(Conflict, match="Already claimed by"):
        task_renew(actor=other.user, task=task, now=now + timedelta(minutes=6))
    assert _snapshot(task) == before


def test_an_expired_lease_cannot_be_renewed(pool):
    reader = _reader(pool)
    task = ReadingTaskFactory(pool=pool, eligible=[reader])
    now = timezone.now()
    task_claim(actor=reader.user, task=task, now=now)
    before = _snapshot(task)

    with pytest.raises(Conflict, match="expired") as refused:
        task_renew(actor=reader.user, task=task, now=now + LEASE)
    assert refused.value.code == "claim_expired"
    assert _snapshot(task) == before


def test_release_by_the_holder_and_refusal_for_anyone_else(pool):
    holder, other = _reader(pool), _reader(pool)
    task = ReadingTaskFactory(pool=pool, eligible=[holder, other])
    task_claim(actor=holder.user, task=task)
    before = _snapshot(task)

    with pytest.raises(AccessDenied, match="Only the holder"):
        task_release(actor=other.user, task=task)
    assert _snapshot(task) == before

    task_release(actor=holder.user, task=task)
    task.refresh_from_db()
    assert (task.status, task.claimed_by) == ("unclaimed", None)
    event = ReadingEvent.objects.order_by("id").last()
    assert (event.kind, event.payload["reason"], event.payload["released_by"]["id"]) == (
        "study.released",
        "released",
        holder.user_id,
    )
    with pytest.raises(Conflict, match="do not hold"):
        task_release(actor=holder.user, task=task)
    # Released, anyone eligible may claim it.
    assert task_claim(actor=other.user, task=task).claimed_by == other.user
    assert audit_verify().ok


def test_sla_warning_at_80_percent_and_breach_after_the_deadline_each_once(pool):
    reader = _reader(pool)
    t0 = timezone.now()
    task = ReadingTaskFactory(
        pool=pool, eligible=[reader], routed_at=t0, deadline=t0 + timedelta(minutes=100)
    )

    assert sla_sweep(now=t0 + timedelta(minutes=79)) == {
        "routed": 0,
        "escalated": 0,
        "warned": 0,
        "breached": 0,
    }
    assert sla_sweep(now=t0 + timedelta(minutes=80)) == {
        "routed": 0,
        "escalated": 0,
        "warned": 1,
        "breached": 0,
    }
    assert sla_sweep(now=t0 + timedelta(minutes=90)) == {
        "routed": 0,
        "escalated": 0,
        "warned": 0,
        "breached": 0,
    }
    assert sla_sweep(now=t0 + timedelta(minutes=100)) == {
        "routed": 0,
        "escalated": 0,
        "warned": 0,
        "breached": 1,
    }
    assert sla_sweep(now=t0 + timedelta(minutes=200)) == {
        "routed": 0,
        "escalated": 0,
        "warned": 0,
        "breached": 0,
    }

    task.refresh_from_db()
    assert task.sla_warned_at == t0 + timedelta(minutes=80)
    assert task.sla_breached_at == t0 + timedelta(minutes=100)
    events = list(ReadingEvent.objects.order_by("id"))
    assert [(e.kind, e.pool_id) for e in events] == [("sla.warning", pool.pk), ("sla.breach", pool.pk)]
    assert events[0].payload["minutes_left"] == 20
    assert events[1].payload["overdue_minutes"] == 0
    assert AuditEntry.objects.filter(action__in=["task.sla_warning", "task.sla_breach"]).count() == 2


def test_sla_sweep_skips_reported_tasks_and_routes_pending_studies(pool):
    reader = _reader(pool)
    t0 = timezone.now() - timedelta(days=2)
    ReadingTaskFactory(
        pool=pool, eligible=[reader], routed_at=t0, deadline=t0 + timedelta(minutes=60), status="reported"
    )
    RoutableStudyFactory()

    assert sla_sweep() == {"routed": 1, "escalated": 0, "warned": 0, "breached": 0}
    assert ReadingTask.objects.count() == 2
    assert list(ReadingEvent.objects.values_list("kind", flat=True)) == ["study.added"]


def test_a_claim_rolled_back_leaves_no_event_and_no_audit(pool):
    from django.db import transaction

    reader = _reader(pool)
    task = ReadingTaskFactory(pool=pool, eligible=[reader])
    before = _snapshot(task)

    with pytest.raises(RuntimeError), transaction.atomic():
        task_claim(actor=reader.user, task=task)
        raise RuntimeError("boom")

    assert _snapshot(task) == before


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_fifty_readers_racing_for_twenty_studies_each_study_has_exactly_one_holder():
    if connection.vendor != "postgresql":
        pytest.skip("the claim race needs PostgreSQL's row locks: set DATABASE_URL=postgres://... (CI does)")
    pool = ReadingPoolFactory()
    readers = [RadiologistFactory(pools=[pool], max_concurrent=20) for _ in range(50)]
    tasks = [ReadingTaskFactory(pool=pool, eligible=readers) for _ in range(20)]
    barrier = threading.Barrier(len(readers))
    outcomes: list[tuple[int, int, str]] = []
    lock = threading.Lock()

    def race(index: int, reader) -> None:
        try:
            barrier.wait(timeout=60)
            # Each reader walks the studies from a different starting point, so every study is
            # contended from the first moment.
            order = tasks[index % len(tasks) :] + tasks[: index % len(tasks)]
            for task in order:
                try:
                    task_claim(actor=reader.user, task=task)
                    outcome = "won"
                except Conflict as exc:
                    outcome = f"conflict:{exc.code}"
                except Exception as exc:  # anything else is a failure of the test
                    outcome = f"error:{type(exc).__name__}:{exc}"
                finally:
                    # One claim is one request: its connection goes back to the pool (at most
                    # DB_POOL_SIZE in this process), so 50 readers take turns on them instead of
                    # the first ten holding them for all their claims while the rest time out.
                    connections.close_all()
                with lock:
                    outcomes.append((task.pk, reader.user_id, outcome))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=race, args=(i, r)) for i, r in enumerate(readers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=240)

    assert len(outcomes) == 50 * 20
    kinds = Counter(outcome for _, _, outcome in outcomes)
    assert kinds == {"won": 20, "conflict:claimed": 50 * 20 - 20}, kinds
    winners = {task_id: user_id for task_id, user_id, outcome in outcomes if outcome == "won"}
    assert len(winners) == 20
    for task in ReadingTask.objects.filter(pk__in=[t.pk for t in tasks]):
        assert (task.status, task.claimed_by_id) == ("claimed", winners[task.pk])
    assert ReadingEvent.objects.filter(kind="study.claimed").count() == 20
    assert AuditEntry.objects.filter(action="task.claim").count() == 20
    assert audit_verify().ok
