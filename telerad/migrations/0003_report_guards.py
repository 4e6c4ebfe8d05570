"""Database-level guard: a final report, its versions and signed addenda refuse changes.

The ORM refuses too (telerad/models/reports.py); this catches raw SQL and any client that
bypasses the models. Errors use SQLSTATE 23001 (restrict_violation) on PostgreSQL and
RAISE(ABORT) on SQLite, so Django raises IntegrityError on both.

- telerad_report: UPDATE of a row whose stored status is 'final' is refused (every column:
  nothing about a signed report changes; critical results and addenda live in their own
  tables). PostgreSQL also refuses DELETE of a final row.
- telerad_reportversion: append-only. PostgreSQL refuses UPDATE and DELETE; SQLite UPDATE.
- telerad_addendum: UPDATE of a signed row is refused; PostgreSQL also refuses its DELETE.

DELETE is not guarded on SQLite (demo only) because Django's test flush deletes rows there;
on PostgreSQL the flush uses TRUNCATE, which fires no row trigger. TRUNCATE is left to
privileges, as for the audit log (core/migrations/0002_audit_append_only_triggers.py).

It depends on the migration that creates the report tables (telerad 0002_criticalresult_...).
"""

from django.db import migrations

from core.db_guards import vendor_sql

PG_UP = """
CREATE OR REPLACE FUNCTION telerad_report_final_guard() RETURNS trigger AS $$
BEGIN
    IF OLD.status = 'final' THEN
        RAISE EXCEPTION 'telerad_report % is final (% refused); add an addendum', OLD.id, TG_OP
            USING ERRCODE = 'restrict_violation';
    END IF;
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER telerad_report_final_guard BEFORE UPDATE OR DELETE ON telerad_report
    FOR EACH ROW EXECUTE FUNCTION telerad_report_final_guard();

CREATE OR REPLACE FUNCTION telerad_reportversion_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'telerad_reportversion is append-only (% refused)', TG_OP
        USING ERRCODE = 'restrict_violation';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER telerad_reportversion_append_only BEFORE UPDATE OR DELETE ON telerad_reportversion
    FOR EACH ROW EXECUTE FUNCTION telerad_reportversion_append_only();

CREATE OR REPLACE FUNCTION telerad_addendum_signed_guard() RETURNS trigger AS $$
BEGIN
    IF OLD.signed_at IS NOT NULL THEN
        RAISE EXCEPTION 'telerad_addendum % is signed (% refused)', OLD.id, TG_OP
            USING ERRCODE = 'restrict_violation';
    END IF;
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER telerad_addendum_signed_guard BEFORE UPDATE OR DELETE ON telerad_addendum
    FOR EACH ROW EXECUTE FUNCTION telerad_addendum_signed_guard();
"""
PG_DOWN = """
DROP TRIGGER IF EXISTS telerad_report_final_guard ON telerad_report;
DROP FUNCTION IF EXISTS telerad_report_final_guard();
DROP TRIGGER IF EXISTS telerad_reportversion_append_only ON telerad_reportversion;
DROP FUNCTION IF EXISTS telerad_reportversion_append_only();
DROP TRIGGER IF EXISTS telerad_addendum_signed_guard ON telerad_addendum;
DROP FUNCTION IF EXISTS telerad_addendum_signed_guard();
"""
SQLITE_UP = [
    """CREATE TRIGGER telerad_report_final_guard BEFORE UPDATE ON telerad_report
       WHEN OLD.status = 'final'
       BEGIN SELECT RAISE(ABORT, 'telerad_report is final (UPDATE refused); add an addendum'); END;""",
    """CREATE TRIGGER telerad_reportversion_append_only BEFORE UPDATE ON telerad_reportversion
       BEGIN SELECT RAISE(ABORT, 'telerad_reportversion is append-only (UPDATE refused)'); END;""",
    """CREATE TRIGGER telerad_addendum_signed_guard BEFORE UPDATE ON telerad_addendum
       WHEN OLD.signed_at IS NOT NULL
       BEGIN SELECT RAISE(ABORT, 'telerad_addendum is signed (UPDATE refused)'); END;""",
]
SQLITE_DOWN = [
    "DROP TRIGGER IF EXISTS telerad_report_final_guard;",
    "DROP TRIGGER IF EXISTS telerad_reportversion_append_only;",
    "DROP TRIGGER IF EXISTS telerad_addendum_signed_guard;",
]


class Migration(migrations.Migration):
    dependencies = [("telerad", "0002_criticalresult_notification_readingpool_and_more")]
    operations = [vendor_sql(pg_up=PG_UP, pg_down=PG_DOWN, sqlite_up=SQLITE_UP, sqlite_down=SQLITE_DOWN)]
