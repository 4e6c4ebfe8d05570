from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from core.exceptions import InvalidInput
from core.models import AuditEntry
from telerad.models import ReadingEvent, ReadingTask
from telerad.selectors import worklist_for_reader, worklist_page
from telerad.services.claims import task_claim
from tests.core.factories import UserFactory
from tests.dicom.factories import HospitalFactory, OrderFactory
from tests.telerad.factories import (
    RadiologistFactory,
    RadiologistUserFactory,
    ReadingPoolFactory,
    ReadingTaskFactory,
    RoutableStudyFactory,
)

pytestmark = pytest.mark.django_db

WORKLIST = "/api/reading/worklist/"
PAGE = "/workspace/reading/worklist/"


@pytest.fixture
def pool():
    return ReadingPoolFactory()


@pytest.fixture
def reader(pool):
    return RadiologistFactory(pools=[pool], max_concurrent=10)


def _task(pool, eligible, *, hospital=None, modality="CT", **kwargs):
    order = OrderFactory(hospital=hospital or HospitalFactory(), modality=modality)
    return ReadingTaskFactory(pool=pool, eligible=eligible, study=RoutableStudyFactory(order=order), **kwargs)


def _ids(tasks):
    return [t.pk for t in tasks]


def _state():
    return (
        list(
            ReadingTask.objects.order_by("pk").values_list(
                "status", "claimed_by", "claim_expires_at", "assigned_to"
            )
        ),
        ReadingEvent.objects.count(),
        AuditEntry.objects.count(),
    )


# --- selector ---------------------------------------------------------------------------------


def test_worklist_orders_by_priority_then_deadline_then_id(pool, reader):
    now = timezone.now()
    routine_soon = _task(pool, [reader], priority="ROUTINE", routed_at=now - timedelta(hours=23))
    stat_late = _task(pool, [reader], priority="STAT", routed_at=now)
    urgent = _task(pool, [reader], priority="URGENT", routed_at=now)
    stat_early = _task(pool, [reader], priority="STAT", routed_at=now - timedelta(minutes=30))
    stat_tie = _task(pool, [reader], priority="STAT", routed_at=now - timedelta(minutes=30))

    assert _ids(worklist_for_reader(reader.user)) == _ids(
        [stat_early, stat_tie, stat_late, urgent, routine_soon]
    )


def test_worklist_shows_only_tasks_the_reader_is_eligible_for_or_assigned_in_their_pools(pool, reader):
    other_pool = ReadingPoolFactory()
    colleague = RadiologistFactory(pools=[pool])
    mine = _task(pool, [reader, colleague])
    _task(pool, [colleague])  # same pool, not eligible
    assigned = _task(pool, [colleague, reader], assigned_to=reader)
    assigned_away = _task(pool, [colleague, reader], assigned_to=colleague)
    outsider = RadiologistFactory(pools=[other_pool])
    _task(other_pool, [outsider])
    # Eligible on paper in another pool the reader is not a member of: still never shown.
    _task(other_pool, [outsider, reader])

    assert set(_ids(worklist_for_reader(reader.user))) == {mine.pk, assigned.pk, assigned_away.pk}
    assert _ids(worklist_for_reader(outsider.user)) != [] and mine.pk not in _ids(
        worklist_for_reader(outsider.user)
    )
    assert list(worklist_for_reader(UserFactory(roles=["hospital_user"]))) == []


def test_worklist_filters(pool, reader):
    now = timezone.now()
    hospital = HospitalFactory()
    ct = _task(pool, [reader], hospital=hospital, modality="CT")
    mr = _task(pool, [reader], modality="MR")
    overdue = _task(pool, [reader], modality="DX", routed_at=now - timedelta(days=2))
    done = _task(pool, [reader], status="reported", reported_at=now)
    task_claim(actor=reader.user, task=mr)

    assert _ids(worklist_for_reader(reader.user)) == _ids([overdue, ct, mr])
    assert _ids(worklist_for_reader(reader.user, modality="MR")) == [mr.pk]
    assert _ids(worklist_for_reader(reader.user, hospital=hospital.pk)) == [ct.pk]
    assert _ids(worklist_for_reader(reader.user, status="claimed")) == [mr.pk]
    assert _ids(worklist_for_reader(reader.user, status="reported")) == [done.pk]
    assert _ids(worklist_for_reader(reader.user, overdue=True)) == [overdue.pk]
    with pytest.raises(InvalidInput):
        worklist_for_reader(reader.user, modality="XX")
    with pytest.raises(InvalidInput):
        worklist_for_reader(reader.user, status="lost")


def test_worklist_pages_merge_both_open_statuses_in_order_with_next_flags(pool, reader):
    colleague = RadiologistFactory(pools=[pool], max_concurrent=50)
    now = timezone.now()
    tasks = [
        _task(pool, [reader, colleague], priority=p, routed_at=now - timedelta(minutes=i))
        for i, p in enumerate(["STAT", "ROUTINE", "URGENT"] * 4)
    ]
    for task in tasks[::3]:
        task_claim(actor=colleague.user, task=task)
    expected = _ids(worklist_for_reader(reader.user))
    assert len(expected) == 12

    pages = [worklist_page(reader.user, page=n, page_size=5) for n in (1, 2, 3, 4)]

    assert [_ids(p.rows) for p in pages] == [expected[:5], expected[5:10], expected[10:], []]
    assert [p.has_next for p in pages] == [True, True, False, False]
    assert [p.has_previous for p in pages] == [False, True, True, True]
    assert _ids(worklist_page(reader.user, status="claimed", page_size=50).rows) == _ids(
        worklist_for_reader(reader.user, status="claimed")
    )
    assert _ids(worklist_page(reader.user, modality="CT", overdue=True).rows) == _ids(
        worklist_for_reader(reader.user, modality="CT", overdue=True)
    )


# --- API --------------------------------------------------------------------------------------


@pytest.mark.parametrize("page_size", [5, 50])
def test_worklist_api_query_count_does_not_depend_on_page_size(
    client, pool, reader, page_size, django_assert_num_queries
):
    colleagues = [RadiologistFactory(pools=[pool], max_concurrent=50) for _ in range(3)]
    tasks = [_task(pool, [reader, *colleagues]) for _ in range(60)]
    for i, task in enumerate(tasks[:30]):
        task_claim(actor=colleagues[i % 3].user, task=task)
    for task in tasks[30:40]:
        ReadingTask.objects.filter(pk=task.pk).update(assigned_to=reader)
    client.force_login(reader.user)

    # session, user, the user's groups (role check), the reader's scope, the keys of the open
    # statuses (one UNION ALL on PostgreSQL, one query per status on SQLite), the page's rows.
    key_queries = 1 if connection.features.supports_slicing_ordering_in_compound else 2
    with django_assert_num_queries(5 + key_queries):
        response = client.get(WORKLIST, {"page_size": page_size})

    assert response.status_code == 200
    body = response.json()
    assert len(body["results"]) == page_size
    assert body["next"].endswith(f"page=2&page_size={page_size}") or "page=2" in body["next"]
    assert body["previous"] is None
    assert all(row["held_by"]["name"] for row in body["results"] if row["status"] == "claimed")


def test_worklist_api_rows_carry_what_the_page_needs_and_no_patient_identifiers(client, pool, reader):
    colleague = RadiologistFactory(pools=[pool])
    now = timezone.now()
    mine = _task(pool, [reader, colleague], priority="STAT", routed_at=now - timedelta(hours=2))
    theirs = _task(pool, [reader, colleague], priority="URGENT")
    task_claim(actor=reader.user, task=mine)
    task_claim(actor=colleague.user, task=theirs)
    client.force_login(reader.user)

    rows = client.get(WORKLIST).json()["results"]

    assert [r["id"] for r in rows] == [mine.pk, theirs.pk]
    first, second = rows
    assert first["held_by_me"] is True and first["overdue"] is True and first["sla"] == "breached"
    assert first["viewer_url"] == f"/viewer/?StudyInstanceUIDs={mine.study.study_instance_uid}"
    assert first["study"]["accession_number"] == mine.study.accession_number
    assert first["hospital"] == {"id": mine.hospital_id, "name": mine.hospital.name}
    assert second["held_by"] == {"id": colleague.user_id, "name": colleague.user.get_full_name()}
    assert second["held_by_me"] is False and second["viewer_url"] is None
    assert second["overdue"] is False
    flat = str(rows)
    assert mine.study.patient_id not in flat and "ZHANG" not in flat


@pytest.mark.parametrize(
    "params",
    [
        {"modality": "XX"},
        {"hospital": "abc"},
        {"hospital": "0"},
        {"status": "lost"},
        {"overdue": "maybe"},
        {"page_size": "1000"},
        {"page_size": "0"},
    ],
)
def test_worklist_api_bad_filter_values_are_400(client, reader, params):
    client.force_login(reader.user)

    response = client.get(WORKLIST, params)

    assert response.status_code == 400
    assert response.json()["code"] == "invalid"
    assert next(iter(params)) in response.json()["detail"]


def test_worklist_api_filters(client, pool, reader):
    hospital = HospitalFactory()
    ct = _task(pool, [reader], hospital=hospital)
    _task(pool, [reader], modality="MR")
    client.force_login(reader.user)

    response = client.get(WORKLIST, {"modality": "CT", "hospital": hospital.pk, "overdue": "false"})

    assert [r["id"] for r in response.json()["results"]] == [ct.pk]


@pytest.mark.parametrize("role", ["hospital_user", "qc_officer", "technologist", "admin", "dispatcher"])
def test_only_radiologists_reach_the_worklist_api_and_others_learn_nothing(client, pool, reader, role):
    task = _task(pool, [reader])
    client.force_login(UserFactory(roles=[role]))
    before = _state()

    responses = [
        client.get(WORKLIST),
        client.post(f"/api/reading/tasks/{task.pk}/claim/"),
        client.post(f"/api/reading/tasks/{task.pk + 1000}/claim/"),
        client.post(f"/api/reading/tasks/{task.pk}/release/"),
        client.post(f"/api/reading/tasks/{task.pk}/renew/"),
    ]

    assert [r.status_code for r in responses] == [403] * 5
    # Same answer for an existing and a made-up id.
    assert responses[1].json() == responses[2].json()
    assert _state() == before


def test_anonymous_is_refused(client, pool, reader):
    task = _task(pool, [reader])

    assert client.get(WORKLIST).status_code in (401, 403)
    assert client.post(f"/api/reading/tasks/{task.pk}/claim/").status_code in (401, 403)
    assert ReadingTask.objects.get().status == "unclaimed"


def test_claim_renew_release_through_the_api(client, pool, reader):
    task = _task(pool, [reader])
    client.force_login(reader.user)

    claimed = client.post(f"/api/reading/tasks/{task.pk}/claim/")
    renewed = client.post(f"/api/reading/tasks/{task.pk}/renew/")
    released = client.post(f"/api/reading/tasks/{task.pk}/release/")

    assert claimed.status_code == renewed.status_code == released.status_code == 200
    assert claimed.json()["held_by_me"] is True and claimed.json()["viewer_url"].startswith("/viewer/")
    assert released.json()["status"] == "unclaimed"
    assert list(ReadingEvent.objects.values_list("kind", flat=True)) == [
        "study.claimed",
        "study.claimed",
        "study.released",
    ]
    assert list(AuditEntry.objects.filter(source_ip="127.0.0.1").values_list("action", flat=True)) == [
        "task.claim",
        "task.renew",
        "task.release",
    ]


def test_api_refusals_change_nothing(client, pool, reader):
    colleague = RadiologistFactory(pools=[pool])
    held = _task(pool, [reader, colleague])
    not_eligible = _task(pool, [colleague])
    other_pool_task = _task(ReadingPoolFactory(), [RadiologistFactory()])
    task_claim(actor=colleague.user, task=held)
    client.force_login(reader.user)
    before = _state()

    conflict = client.post(f"/api/reading/tasks/{held.pk}/claim/")
    release = client.post(f"/api/reading/tasks/{held.pk}/release/")
    renew = client.post(f"/api/reading/tasks/{held.pk}/renew/")
    forbidden = client.post(f"/api/reading/tasks/{not_eligible.pk}/claim/")
    hidden = client.post(f"/api/reading/tasks/{other_pool_task.pk}/claim/")
    assign = client.post(f"/api/reading/tasks/{held.pk}/assign/", {"radiologist": reader.pk})

    name = colleague.user.get_full_name()
    assert conflict.status_code == 409
    assert conflict.json()["held_by"] == name and name in conflict.json()["detail"]
    assert conflict.json()["expires_at"]
    assert (release.status_code, renew.status_code) == (403, 409)
    assert forbidden.status_code == 403
    assert hidden.status_code == 404
    assert assign.status_code == 404  # not the lead of this pool
    assert _state() == before


def test_the_pool_lead_assigns_through_the_api(client, reader):
    lead = RadiologistUserFactory()
    pool = ReadingPoolFactory(lead=lead)
    reader.pools.add(pool)
    task = _task(pool, [reader])
    client.force_login(lead)

    bad = client.post(f"/api/reading/tasks/{task.pk}/assign/", {"radiologist": "x"})
    stranger = client.post(f"/api/reading/tasks/{task.pk}/assign/", {"radiologist": RadiologistFactory().pk})
    assert (bad.status_code, stranger.status_code) == (400, 400)
    assert ReadingTask.objects.get().assigned_to is None

    response = client.post(f"/api/reading/tasks/{task.pk}/assign/", {"radiologist": reader.pk})

    assert response.status_code == 200
    assert response.json()["assigned_to"]["radiologist"] == reader.pk
    assert ReadingTask.objects.get().assigned_to == reader


# --- page -------------------------------------------------------------------------------------


def test_the_page_lists_the_worklist_with_holders_overdue_and_the_viewer_link(client, pool, reader):
    colleague = RadiologistFactory(pools=[pool])
    now = timezone.now()
    mine = _task(pool, [reader, colleague], priority="STAT", routed_at=now - timedelta(hours=3))
    theirs = _task(pool, [reader, colleague], priority="URGENT")
    waiting = _task(pool, [reader, colleague])
    task_claim(actor=reader.user, task=mine)
    task_claim(actor=colleague.user, task=theirs)
    client.force_login(reader.user)

    html = client.get(PAGE).content.decode()

    assert "js/reading-live.js" in html
    assert 'hx-trigger="reading-event from:body' in html
    assert f'data-task="{mine.pk}" data-status="claimed"' in html
    assert f"/viewer/?StudyInstanceUIDs={mine.study.study_instance_uid}" in html
    assert f"/viewer/?StudyInstanceUIDs={theirs.study.study_instance_uid}" not in html
    assert f"Claimed by <strong data-holder>{colleague.user.get_full_name()}</strong>" in html
    assert "data-overdue" in html and 'class="overdue held-by-me"' in html
    assert f'hx-post="/workspace/reading/worklist/tasks/{waiting.pk}/claim/"' in html
    assert f'hx-post="/workspace/reading/worklist/tasks/{mine.pk}/release/"' in html


def test_the_page_claims_and_releases_with_htmx(client, pool, reader):
    colleague = RadiologistFactory(pools=[pool])
    task = _task(pool, [reader, colleague])
    client.force_login(reader.user)

    claimed = client.post(f"{PAGE}tasks/{task.pk}/claim/", HTTP_HX_REQUEST="true")
    assert claimed.status_code == 200
    assert "data-worklist-message" in claimed.content.decode()
    assert "data-open-viewer" in claimed.content.decode()
    assert ReadingTask.objects.get().claimed_by == reader.user

    client.force_login(colleague.user)
    refused = client.post(f"{PAGE}tasks/{task.pk}/claim/", HTTP_HX_REQUEST="true")
    assert "Already claimed by" in refused.content.decode()
    assert ReadingTask.objects.get().claimed_by == reader.user

    client.force_login(reader.user)
    client.post(f"{PAGE}tasks/{task.pk}/release/", HTTP_HX_REQUEST="true")
    assert ReadingTask.objects.get().status == "unclaimed"


def test_the_page_is_for_radiologists_only(client, pool, reader):
    _task(pool, [reader])
    client.force_login(UserFactory(roles=["hospital_user"]))

    assert client.get(PAGE).status_code == 403
    assert client.post(f"{PAGE}tasks/1/claim/").status_code == 403


def test_the_reading_workspace_links_the_worklist(client, reader):
    client.force_login(reader.user)

    assert 'href="/workspace/reading/worklist/"' in client.get("/workspace/reading/").content.decode()
