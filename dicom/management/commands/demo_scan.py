from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from dicom.choices import OrderStatus
from dicom.models import Order
from dicom.synth import Defect, SendError, make_study, send_study, spec_from_order
from dicom.uids import new_uid


class Command(BaseCommand):
    help = (
        "Demo only: the vans 'scan' today's booked exams. Sends a small synthetic study per "
        "scheduled order to Orthanc by C-STORE from the unit's AE title (one with a missing "
        "instance, so QC fails), plus one study whose accession matches no order (it lands in "
        "the reconciliation queue)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--slices", type=int, default=24)

    def handle(self, *args, slices: int, **options):
        if settings.CARAVAN_ENV == "production":
            raise CommandError("demo_scan sends synthetic patients; it does not run in production")
        orders = list(
            Order.objects.filter(scheduled_date=timezone.localdate(), status=OrderStatus.SCHEDULED)
            .select_related("unit")
            .order_by("id")
        )
        if not orders:
            self.stdout.write("demo_scan: no scheduled orders for today (run `manage.py demo` first)")
            return
        sent = 0
        for index, order in enumerate(orders):
            defects = {Defect.INSTANCE_GAP} if index == 1 else set()
            count = None if order.modality == "DX" else slices  # a radiograph is one image
            spec = spec_from_order(order, slices_per_series=count, defects=frozenset(defects))
            sent += self._send(order.unit.ae_title, make_study(spec))
        stray = orders[0]
        spec = spec_from_order(
            stray, slices_per_series=slices, accession_number="NOORDER01",
            study_instance_uid=new_uid(["demo-stray", timezone.localdate().isoformat()]),
            patient_id="ZG-UNKNOWN", patient_name="UNKNOWN^PATIENT",
        )  # fmt: skip
        sent += self._send(stray.unit.ae_title, make_study(spec))
        self.stdout.write(f"demo_scan: sent {sent} instances for {len(orders) + 1} studies")

    def _send(self, calling_aet: str, datasets) -> int:
        try:
            result = send_study(
                datasets,
                host="127.0.0.1",
                port=settings.ORTHANC_DICOM_PORT,
                calling_aet=calling_aet,
                called_aet=settings.ORTHANC_AET,
            )
        except SendError as exc:
            raise CommandError(f"demo_scan: {exc}") from exc
        return result.stored
