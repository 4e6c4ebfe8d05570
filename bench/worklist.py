"""Worklist API: latency with 100,000 studies, and a query count independent of page size.

One run:
  data        N studies with their reading tasks (bulk-created) in a few pools of readers;
              each task is eligible for half its pool's readers, some claimed, some overdue,
              some already reported (history the worklist must skip)
  bare SQL    the statements the worklist selector sends for the same page and random filters
              (reader scope, ordered keys per status, the page's joined rows), compiled outside
              the clock and run with cursor.execute: what the database alone costs for the page
  API         GET /api/reading/worklist/ through the in-process Django test Client as a
              logged-in reader (session, auth, role check, count, page, JSON), page size 50,
              random filters, p50/p95 over R requests
  queries     the number of queries of one request at page size 10 and at page size 100
Targets: API p95 <= 30 ms; the two query counts equal.
"""

from __future__ import annotations

import random
import statistics
import time
from datetime import timedelta

TARGET_P95_MS = 30.0
SUBSPECIALTIES = ["neuro", "chest", "body", "msk"]
BODY_PARTS = {"neuro": "HEAD", "chest": "CHEST", "body": "ABDOMEN", "msk": "KNEE"}
PRIORITIES = [("STAT", 0, 60), ("URGENT", 1, 240), ("ROUTINE", 2, 1440)]
MODALITIES = ["CT", "MR", "DX"]


def _pct(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def _make_world(*, tasks: int, readers: int, pools: int, reported_fraction: float, seed: int) -> dict:
    from django.contrib.auth.models import Group
    from django.db import connection, transaction
    from django.utils import timezone

    from core.choices import OrganisationKind
    from core.models import Organisation, User
    from dicom.models import Study
    from telerad.models import Radiologist, ReadingPool, ReadingTask

    rng = random.Random(seed)
    now = timezone.now()
    batch = 5000
    with transaction.atomic():
        group = Group.objects.get_or_create(name="radiologist")[0]
        hospitals_by_pool: list[list[Organisation]] = []
        pool_objs: list[ReadingPool] = []
        readers_by_pool: list[list[Radiologist]] = []
        for p in range(pools):
            reading_group = Organisation.objects.create(
                name=f"Bench reading group {p}", kind=OrganisationKind.READING_GROUP, region_code="BW"
            )
            region = f"BW-{p:02d}"
            hospitals = Organisation.objects.bulk_create(
                Organisation(
                    name=f"Bench hospital {p}-{h}", kind=OrganisationKind.HOSPITAL, region_code=region
                )
                for h in range(10)
            )
            pool = ReadingPool.objects.create(
                reading_group=reading_group, name=f"Bench pool {p}", regions=[region], modalities=MODALITIES
            )
            members = []
            for r in range(p * readers // pools, (p + 1) * readers // pools):
                user = User.objects.create(
                    username=f"bench-reader{r}",
                    first_name=f"Reader{r}",
                    last_name="Bench",
                    organisation=reading_group,
                )
                user.groups.add(group)
                members.append(
                    Radiologist.objects.create(
                        user=user,
                        subspecialties=SUBSPECIALTIES,
                        licensed_regions=["BW"],
                        on_shift=True,
                        max_concurrent=50,
                    )
                )
            pool.readers.add(*members)
            hospitals_by_pool.append(hospitals)
            pool_objs.append(pool)
            readers_by_pool.append(members)

        studies = []
        plan = []
        for i in range(tasks):
            p = i % pools
            hospital = rng.choice(hospitals_by_pool[p])
            modality = rng.choice(MODALITIES)
            sub = rng.choice(SUBSPECIALTIES)
            studies.append(
                Study(
                    orthanc_id=f"bench-{i:010d}",
                    study_instance_uid=f"1.2.826.0.1.3680043.8.498.77.{i}",
                    accession_number=f"BW{i:09d}",
                    description=f"{modality} {BODY_PARTS[sub]}",
                    modalities=modality,
                    body_part=BODY_PARTS[sub],
                    hospital=hospital,
                    ingest_status="matched",
                    qc_outcome="pass",
                    routable_at=now,
                )
            )
            plan.append((p, hospital, modality, sub))
        studies = Study.objects.bulk_create(studies, batch_size=batch)

        task_rows = []
        eligible_sets = []
        for study, (p, hospital, modality, sub) in zip(studies, plan, strict=True):
            priority, rank, sla = rng.choices(PRIORITIES, weights=[1, 3, 12])[0]
            routed_at = now - timedelta(minutes=rng.uniform(0, 2 * sla))
            eligible = rng.sample(readers_by_pool[p], k=max(1, len(readers_by_pool[p]) // 2))
            roll = rng.random()
            fields = {}
            if roll < reported_fraction:
                fields = {"status": "reported", "reported_at": routed_at + timedelta(minutes=sla / 2)}
            elif roll < reported_fraction + (1 - reported_fraction) * 0.1:
                holder = rng.choice(eligible)
                fields = {
                    "status": "claimed",
                    "claimed_by_id": holder.user_id,
                    "claimed_at": now,
                    "claim_expires_at": now + timedelta(minutes=10),
                }
            task_rows.append(
                ReadingTask(
                    study=study,
                    pool=pool_objs[p],
                    hospital=hospital,
                    modality=modality,
                    body_part=BODY_PARTS[sub],
                    subspecialty=sub,
                    priority=priority,
                    priority_rank=rank,
                    routed_at=routed_at,
                    deadline=routed_at + timedelta(minutes=sla),
                    **fields,
                )
            )
            eligible_sets.append(eligible)
        task_rows = ReadingTask.objects.bulk_create(task_rows, batch_size=batch)
        through = ReadingTask.eligible.through
        links = [
            through(readingtask_id=task.pk, radiologist_id=reader.pk)
            for task, eligible in zip(task_rows, eligible_sets, strict=True)
            for reader in eligible
        ]
        through.objects.bulk_create(links, batch_size=batch * 4)
    # A live database is vacuumed and analysed by autovacuum; a freshly bulk-loaded one is not
    # (no statistics, no visibility map, hint bits still to be written by the first readers).
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE" if connection.vendor == "postgresql" else "ANALYZE")
    all_readers = [r for members in readers_by_pool for r in members]
    return {
        "readers": all_readers,
        "hospitals": {
            r.pk: hospitals_by_pool[i] for i, members in enumerate(readers_by_pool) for r in members
        },
        "links": len(links),
    }


def _random_filters(rng: random.Random, hospitals) -> dict:
    filters: dict = {}
    if rng.random() < 0.4:
        filters["modality"] = rng.choice(MODALITIES)
    if rng.random() < 0.3:
        filters["hospital"] = rng.choice(hospitals).pk
    if rng.random() < 0.3:
        filters["status"] = rng.choice(["unclaimed", "claimed"])
    if rng.random() < 0.2:
        filters["overdue"] = "true"
    return filters


def _selector_kwargs(filters: dict) -> dict:
    return {
        "modality": filters.get("modality"),
        "hospital": filters.get("hospital"),
        "status": filters.get("status"),
        "overdue": filters.get("overdue") == "true",
    }


def run(
    *,
    tasks: int = 100_000,
    readers: int = 30,
    pools: int = 3,
    requests: int = 300,
    reported_fraction: float = 0.9,
    seed: int = 4,
) -> dict:
    from django.conf import settings
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from telerad.models import Radiologist
    from telerad.selectors import ReaderScope, worklist_page_key_queries, worklist_rows_query

    # As in production: DEBUG off, so no per-query logging on either side of the ratio.
    settings.DEBUG = False
    started = time.perf_counter()
    world = _make_world(
        tasks=tasks, readers=readers, pools=pools, reported_fraction=reported_fraction, seed=seed
    )
    generation_s = time.perf_counter() - started

    rng = random.Random(seed + 1)
    clients = {}
    for reader in world["readers"]:
        client = Client()
        client.force_login(reader.user)
        clients[reader.pk] = client
    url = "/api/reading/worklist/"
    page_size = 50

    # The same request sequence for both sides: (reader, filters, page).
    plan = []
    for _ in range(requests):
        reader = rng.choice(world["readers"])
        filters = _random_filters(rng, world["hospitals"][reader.pk])
        plan.append((reader, filters, rng.choice([1, 1, 1, 2, 3])))

    # Warm both paths (connection, plan caches, Python imports) before timing.
    for reader, filters, _page in plan[:20]:
        clients[reader.pk].get(url, {**filters, "page_size": page_size})

    bare_ms, api_ms, rows_seen = [], [], 0
    with connection.cursor() as cursor:

        def timed(queryset) -> tuple[list, float]:
            sql, params = queryset.query.sql_with_params()
            t0 = time.perf_counter()
            cursor.execute(sql, params)
            rows = cursor.fetchall()
            return rows, time.perf_counter() - t0

        def bare(reader, filters: dict, page: int) -> float:
            # The statements the selector sends for this page, compiled outside the clock: the
            # reader's scope, the keys per status, then the page's rows with their joins.
            offset = (page - 1) * page_size
            scope_rows, spent = timed(
                Radiologist.objects.filter(user_id=reader.user_id)
                .values_list("id", "pools")
                .order_by("pools")
            )
            scope = ReaderScope(scope_rows[0][0], tuple(pool for _, pool in scope_rows))
            keys = []
            queries = worklist_page_key_queries(
                reader.user, limit=offset + page_size + 1, scope=scope, **_selector_kwargs(filters)
            )
            if len(queries) > 1 and connection.features.supports_slicing_ordering_in_compound:
                queries = [queries[0].union(*queries[1:], all=True)]  # as worklist_keys does
            for query in queries:
                rows, seconds = timed(query)
                keys += rows
                spent += seconds
            ids = [key[2] for key in sorted(keys)[offset : offset + page_size]]
            if ids:
                _rows, seconds = timed(worklist_rows_query(ids))
                spent += seconds
            return spent * 1000

        # Baseline and API alternate request by request, so whatever else the machine is doing
        # at a given moment weighs on both sides of the ratio alike.
        for reader, filters, page in plan:
            bare_ms.append(bare(reader, filters, page))
            t0 = time.perf_counter()
            response = clients[reader.pk].get(url, {**filters, "page_size": page_size, "page": page})
            api_ms.append((time.perf_counter() - t0) * 1000)
            if response.status_code != 200:
                raise RuntimeError(
                    f"worklist API answered {response.status_code}: {response.content[:200]!r}"
                )
            rows_seen += len(response.json()["results"])

    counts = {}
    reader = world["readers"][0]
    for size in (10, 100):
        with CaptureQueriesContext(connection) as captured:
            response = clients[reader.pk].get(url, {"page_size": size})
        assert response.status_code == 200 and len(response.json()["results"]) == size
        counts[size] = len(captured.captured_queries)

    return {
        "database": connection.vendor,
        "tasks": tasks,
        "readers": len(world["readers"]),
        "pools": pools,
        "links": world["links"],
        "reported_fraction": reported_fraction,
        "generation_s": generation_s,
        "requests": requests,
        "bare_ms": bare_ms,
        "api_ms": api_ms,
        "rows_per_request": rows_seen / requests,
        "query_counts": counts,
    }


def print_table(result: dict) -> bool:
    bare, api = result["bare_ms"], result["api_ms"]
    bare_p50, bare_p95 = _pct(bare, 50), _pct(bare, 95)
    api_p50, api_p95 = _pct(api, 50), _pct(api, 95)
    print(
        f"\nWorklist API: {result['tasks']:,} studies/tasks ({result['reported_fraction']:.0%} already "
        f"reported), {result['readers']} readers in {result['pools']} pools, "
        f"{result['links']:,} eligibility links (database {result['database']}; generated in "
        f"{result['generation_s']:.1f} s); {result['requests']} requests, page size 50, random filters, "
        f"{result['rows_per_request']:.1f} rows/request\n"
    )
    header = f"{'run':30} {'p50 ms':>8} {'p95 ms':>8} {'p95 ratio':>10} {'target':>10} {'met':>4}"
    print(header)
    print("-" * len(header))
    print(f"{'bare SQL of the page':30} {bare_p50:>8.2f} {bare_p95:>8.2f} {1.0:>10.2f}")
    p95_ok = api_p95 <= TARGET_P95_MS
    print(
        f"{'GET /api/reading/worklist/':30} {api_p50:>8.2f} {api_p95:>8.2f} {api_p95 / bare_p95:>10.2f}"
        f" {'<= 30 ms':>10} {'yes' if p95_ok else 'NO':>4}"
    )
    counts = result["query_counts"]
    counts_ok = counts[10] == counts[100]
    print(
        f"\nQueries per request: page size 10 -> {counts[10]}, page size 100 -> {counts[100]} "
        f"(target: equal: {'yes' if counts_ok else 'NO'})"
    )
    return p95_ok and counts_ok
