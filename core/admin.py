from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin

from core.models import AuditEntry, Organisation, User


@admin.register(Organisation)
class OrganisationAdmin(admin.ModelAdmin):
    list_display = ("name", "kind", "region_code", "is_active")
    list_filter = ("kind", "region_code", "is_active")
    search_fields = ("name",)


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    list_display = ("username", "first_name", "last_name", "organisation", "is_active")
    list_filter = ("organisation__kind", "groups", "is_active")
    fieldsets = (*(DjangoUserAdmin.fieldsets or ()), ("Caravan", {"fields": ("organisation",)}))


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    """Read-only: the audit log is append-only and written by services, never by hand."""

    list_display = ("id", "timestamp", "actor_username", "actor_role", "action", "object_type", "object_id")
    list_filter = ("action", "actor_role", "patient_data")
    search_fields = ("actor_username", "object_id", "patient_id")
    readonly_fields = [f.name for f in AuditEntry._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
