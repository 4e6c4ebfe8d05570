from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _sync_roles(sender, **kwargs) -> None:
    from core.roles import roles_sync

    roles_sync()


class CoreConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "core"
    verbose_name = "Core: organisations, users, audit"

    def ready(self) -> None:
        # Like Django's own permission creation: keep role groups in step with the code.
        post_migrate.connect(_sync_roles, dispatch_uid="core.roles_sync")
