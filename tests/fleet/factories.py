import factory

from core.choices import OrganisationKind
from fleet.models import Unit
from tests.core.factories import OrganisationFactory


class OperatorFactory(OrganisationFactory):
    kind = OrganisationKind.OPERATOR
    name = factory.Sequence(lambda n: f"Operator {n}")


class UnitFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Unit

    operator = factory.SubFactory(OperatorFactory)
    name = factory.Sequence(lambda n: f"CT Van {n}")
    modality = "CT"
    ae_title = factory.Sequence(lambda n: f"VAN{n:02d}")
    capacity_per_day = 40
    depot_name = "Yichang depot"
    depot_latitude = 30.69
    depot_longitude = 111.29
