#!/usr/bin/env bash
# Start the demo: Orthanc (background), a Celery worker when Redis is configured, and daphne.
# Called by `make run` after setup, migrate and demo. Ctrl-C stops everything it started.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
HOST="${HOST:-127.0.0.1}"
PORT="${PORT:-8000}"
export PLATFORM_URL="${PLATFORM_URL:-http://$HOST:$PORT}"
# A study is "stable" after this many seconds without new images; production keeps Orthanc's
# 60 s, the demo is quicker so its QC results show up soon after the vans "scan".
export ORTHANC_STABLE_AGE="${ORTHANC_STABLE_AGE:-10}"
# The demo vans may store to Orthanc from this machine (e.g. `python -m ... storescu`);
# production lists each van's AE title and address.
export ORTHANC_ALLOWED_MODALITIES="${ORTHANC_ALLOWED_MODALITIES:-CARAVAN_CT01@127.0.0.1:11112,CARAVAN_CT02@127.0.0.1:11113,CARAVAN_MR01@127.0.0.1:11114,CARAVAN_DX01@127.0.0.1:11115}"

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  $PY manage.py orthanc --stop >/dev/null 2>&1 || true
}
trap cleanup EXIT INT TERM

$PY manage.py orthanc
if [ -n "${REDIS_URL:-}" ]; then
  .venv/bin/celery -A config worker --loglevel=INFO --concurrency=2 >var/celery-worker.log 2>&1 &
  pids+=($!)
  .venv/bin/celery -A config beat --loglevel=INFO -s var/celerybeat-schedule >var/celery-beat.log 2>&1 &
  pids+=($!)
  echo "Celery worker and beat started (logs: var/celery-worker.log, var/celery-beat.log)"
else
  echo "No REDIS_URL: in-memory channel layer, Celery tasks run eagerly in the web process"
  # Without beat, the reconciler (the safety net under Orthanc's nudges) runs as a loop.
  $PY manage.py reconcile --loop 5 >var/reconcile.log 2>&1 &
  pids+=($!)
fi

orthanc_url=$($PY -c "import django,os;os.environ.setdefault('DJANGO_SETTINGS_MODULE','config.settings');django.setup();from django.conf import settings;print(settings.ORTHANC_URL)")
cat <<MSG

  Caravan is starting on http://$HOST:$PORT/
    API docs      http://$HOST:$PORT/api/docs/
    Health        http://$HOST:$PORT/api/health/
    Admin         http://$HOST:$PORT/admin/
    Orthanc       $orthanc_url (loopback only, HTTP auth on; users never reach it directly)

  Demo logins (password for all: caravan-demo):
    dispatcher   dispatcher      tech         technologist (CT Van 1)
    radiologist  radiologist     hospital     hospital user (Zigui County People's Hospital)
    qc           QC officer      admin        administrator (Django admin too)

MSG
# Once the web server answers, the demo vans "scan" today's booked exams (synthetic studies by
# C-STORE), so the QC page and the reconciliation queue have something to show.
(
  for _ in $(seq 1 30); do
    curl -fs "http://$HOST:$PORT/api/health/" >/dev/null 2>&1 && break
    sleep 1
  done
  $PY manage.py demo_scan >var/demo-scan.log 2>&1
) &
pids+=($!)
# No access log: request URLs carry study UIDs and, in viewer searches, patient IDs, and no
# patient data may reach application logs (docs/security.md).
$PY manage.py serve --bind "$HOST" --port "$PORT" --access-log /dev/null
