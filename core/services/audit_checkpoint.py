"""Writing signed checkpoints of the audit chain's head outside the database.

Each checkpoint is appended to ``AUDIT_CHECKPOINT_FILE`` (one JSON line, ``O_APPEND``) and logged
on ``caravan.audit.checkpoint`` (routed to syslog by ``AUDIT_CHECKPOINT_SYSLOG``), so a copy
leaves the host. A checkpoint is written only for a head that was just verified: by
``audit_check_run`` after a whole-chain verification, and by the beat task after verifying the
entries added since the last checkpoint (see docs/audit.md).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from core.audit_chain import VerifyResult
from core.audit_checkpoints import Checkpoint, checkpoint_make
from core.audit_key import audit_keys
from core.services.audit import audit_checkpoints, audit_key_epoch_id, audit_verify, audit_verify_after

CHECKPOINT_LOGGER = "caravan.audit.checkpoint"
checkpoint_logger = logging.getLogger(CHECKPOINT_LOGGER)
logger = logging.getLogger(__name__)


def _append(path: Path, line: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    try:
        # One write() of one line: concurrent appenders do not interleave inside a line.
        os.write(fd, (line + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def audit_checkpoint_write(*, result: VerifyResult, keyed_from: int | None = None) -> Checkpoint:
    """Sign the head of a verified chain (``result.ok``), append it to the file and log it."""
    if not result.ok:
        raise ValueError("only a verified head is checkpointed")
    if keyed_from is None:
        checkpoints, _ = audit_checkpoints()
        keyed_from = min((c.keyed_from for c in checkpoints), default=None)
        if keyed_from is None:
            keyed_from = audit_key_epoch_id()
    checkpoint = checkpoint_make(
        audit_keys(),
        head_id=result.head_id,
        head_hash=result.head_hash,
        count=result.checked,
        keyed_from=keyed_from,
        at=timezone.now(),
    )
    _append(Path(settings.AUDIT_CHECKPOINT_FILE), checkpoint.line)
    checkpoint_logger.info("audit checkpoint %s", checkpoint.line)
    return checkpoint


def audit_checkpoint_run() -> Checkpoint | None:
    """The beat task's work: verify what was appended since the last checkpoint, then sign the head.

    With no good checkpoint yet, the whole chain is verified first. A failed verification
    writes nothing and logs an ERROR (the nightly check raises the alarm and names the entry).
    """
    checkpoints, _ = audit_checkpoints()
    last = max(checkpoints, key=lambda c: (c.id, c.count), default=None)
    result = audit_verify() if last is None else audit_verify_after(last)
    if not result.ok:
        logger.error(
            "audit checkpoint not written: chain broken at entry %s: %s", result.broken_id, result.reason
        )
        return None
    return audit_checkpoint_write(result=result, keyed_from=None if last is None else last.keyed_from)
