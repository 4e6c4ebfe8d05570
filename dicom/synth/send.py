"""Getting synthetic instances out: Part 10 bytes, C-STORE over one association, REST upload."""

from __future__ import annotations

import io
import socket
import time
from collections.abc import Callable, Iterable
from collections.abc import Sequence as SequenceABC
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydicom.dataset import Dataset
from pydicom.uid import (
    CTImageStorage,
    DigitalXRayImageStorageForPresentation,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    MRImageStorage,
    XRayRadiationDoseSRStorage,
)
from pynetdicom import AE, evt
from pynetdicom.pdu import A_ASSOCIATE_RJ

if TYPE_CHECKING:
    from dicom.orthanc_client import OrthancClient

SYNTH_SOP_CLASSES = (
    CTImageStorage,
    MRImageStorage,
    DigitalXRayImageStorageForPresentation,
    XRayRadiationDoseSRStorage,
)
_STORED_WARNINGS = (0xB000, 0xB006, 0xB007)  # stored, with coercion or discarded elements


def to_bytes(ds: Dataset) -> bytes:
    """The DICOM Part 10 file (preamble, DICM, file meta, dataset)."""
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def set_tcp_nodelay(event: evt.Event) -> None:
    # pynetdicom 3.0 has no _config switch for TCP_NODELAY, but EVT_CONN_OPEN fires after
    # connect() and before the A-ASSOCIATE-RQ is written, so every PDU goes out unbatched.
    transport = event.assoc.dul.socket
    if transport is not None and transport.socket is not None:
        transport.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


NODELAY_HANDLERS = [(evt.EVT_CONN_OPEN, set_tcp_nodelay)]


@dataclass(frozen=True)
class InstanceStatus:
    """The C-STORE outcome of one instance: a DIMSE status, or None with ``error`` if not sent."""

    sop_instance_uid: str
    sop_class_uid: str
    status: int | None
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status == 0x0000 or self.status in _STORED_WARNINGS


@dataclass
class SendResult:
    statuses: list[InstanceStatus] = field(default_factory=list)
    bytes_sent: int = 0  # on the wire, PDU headers included
    seconds: float = 0.0

    @property
    def stored(self) -> int:
        return sum(s.ok for s in self.statuses)

    @property
    def failed(self) -> list[InstanceStatus]:
        return [s for s in self.statuses if not s.ok]

    @property
    def ok(self) -> bool:
        return bool(self.statuses) and not self.failed

    @property
    def rate(self) -> float:
        """Instances per second."""
        return len(self.statuses) / self.seconds if self.seconds > 0 else 0.0


class SendError(Exception):
    """The association could not be made or broke; ``result`` holds what was sent before."""

    def __init__(self, message: str, *, result: SendResult | None = None):
        super().__init__(message)
        self.result = result or SendResult()


def send_study(
    datasets: Iterable[Dataset],
    *,
    host: str,
    port: int,
    calling_aet: str,
    called_aet: str,
    timeout: float = 30,
    bind_host: str = "",
    progress: Callable[[int], None] | None = None,
) -> SendResult:
    """C-STORE every dataset over ONE association (TCP_NODELAY on).

    Proposes a context per SOP class present (all synth classes when ``datasets`` is a lazy
    iterable, e.g. ``iter_study(spec)``), each in Explicit and Implicit VR Little Endian.
    Raises SendError when the association is refused, rejected or lost; an instance the peer
    refuses is recorded in the result's statuses instead. ``progress(n)`` after each instance.
    """
    if isinstance(datasets, SequenceABC):
        sop_classes = list(dict.fromkeys(str(ds.SOPClassUID) for ds in datasets))
    else:
        sop_classes = list(SYNTH_SOP_CLASSES)
    ae = AE(ae_title=calling_aet)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = ae.connection_timeout = timeout
    for sop_class in sop_classes:
        ae.add_requested_context(sop_class, [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
    result = SendResult()

    connected: list[bool] = []
    rejections: list[A_ASSOCIATE_RJ] = []

    def count_bytes(event: evt.Event) -> None:
        result.bytes_sent += len(event.data)

    def note_rejection(event: evt.Event) -> None:
        # pynetdicom 3.0.4 races on a fast A-ASSOCIATE-RJ: the DUL closes the socket before the
        # ACSE looks at the answer, and the association reads as aborted. The PDU tells the truth.
        if isinstance(event.pdu, A_ASSOCIATE_RJ):
            rejections.append(event.pdu)

    handlers: list[Any] = [
        *NODELAY_HANDLERS,
        (evt.EVT_CONN_OPEN, lambda event: connected.append(True)),
        (evt.EVT_DATA_SENT, count_bytes),
        (evt.EVT_PDU_RECV, note_rejection),
    ]
    started = time.perf_counter()
    peer = f"{called_aet}@{host}:{port}"
    assoc = ae.associate(host, port, ae_title=called_aet, bind_address=(bind_host, 0), evt_handlers=handlers)
    if not assoc.is_established:
        message = _refusal(assoc, peer, calling_aet, timeout, bool(connected), rejections)
        raise SendError(message, result=result)
    try:
        for ds in datasets:
            sop_uid, sop_class = str(ds.SOPInstanceUID), str(ds.SOPClassUID)
            try:
                response = assoc.send_c_store(ds)
            except ValueError as exc:  # no accepted presentation context for this SOP class
                result.statuses.append(InstanceStatus(sop_uid, sop_class, None, str(exc)))
                continue
            if "Status" not in response:
                result.seconds = time.perf_counter() - started
                raise SendError(
                    f"association with {peer} broke after {len(result.statuses)} instance(s): "
                    f"no C-STORE response for {sop_uid} within {timeout:g} s or connection lost",
                    result=result,
                )
            result.statuses.append(InstanceStatus(sop_uid, sop_class, int(response.Status)))
            if progress is not None:
                progress(len(result.statuses))
    finally:
        if assoc.is_established:
            assoc.release()
    result.seconds = time.perf_counter() - started
    return result


def _refusal(
    assoc: Any, peer: str, calling_aet: str, timeout: float, connected: bool, rejections: list[A_ASSOCIATE_RJ]
) -> str:
    if not connected:
        return f"could not associate with {peer}: connection refused or no answer within {timeout:g} s"
    if rejections or assoc.is_rejected:
        rsp = rejections[0] if rejections else assoc.acceptor.primitive
        why = f"{rsp.reason_str} ({rsp.result_str}, source: {rsp.source_str})" if rsp else "no reason given"
        return (
            f"association rejected by {peer} for calling AE title {calling_aet!r}: {why}. "
            "The calling AE title must be whitelisted for this host (ORTHANC_ALLOWED_MODALITIES) "
            "and the called AE title must be the server's."
        )
    if assoc.is_aborted:
        return (
            f"association with {peer} aborted during negotiation (calling AE {calling_aet!r}): "
            "no proposed presentation context was accepted, or the peer dropped the connection"
        )
    return f"could not associate with {peer}: no answer to the association request within {timeout:g} s"


def upload_study_rest(client: OrthancClient, datasets: Iterable[Dataset]) -> list[dict[str, Any]]:
    """POST each instance to Orthanc's /instances; Orthanc's answers, in order."""
    return [client.upload_instance(to_bytes(ds)) for ds in datasets]
