"""Fewer indexes a new task row enters, so each INSERT (and bulk()'s COPY) writes less.

task_name's own index (and, on PostgreSQL, its varchar_pattern_ops twin) is a prefix of
djtasks_task_name_enq_idx; no query filters on root_id; the lease and finished_at indexes become
partial, as a new row has neither. The admin's dead tasks get a partial index of their own (a row
enters it only when it fails), since finished_at's is no longer ordered for them. On PostgreSQL the primary key's varchar_pattern_ops index, which
only LIKE 'prefix%' on the id would use (no query does), is dropped too.
"""

from django.db import migrations, models


def _id_pattern_index(schema_editor, model):
    return schema_editor._create_index_name(model._meta.db_table, [model._meta.get_field("id").column], suffix="_like")


def drop_id_pattern_index(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    model = apps.get_model("djtasks", "TaskRecord")
    name = schema_editor.quote_name(_id_pattern_index(schema_editor, model))
    schema_editor.execute(f"DROP INDEX IF EXISTS {name}")


def create_id_pattern_index(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    model = apps.get_model("djtasks", "TaskRecord")
    schema_editor.execute(schema_editor._create_like_index_sql(model, model._meta.get_field("id")))


class Migration(migrations.Migration):
    dependencies = [
        ("djtasks", "0010_fleet_controls_and_solar_schedules"),
    ]

    operations = [
        migrations.RemoveIndex(
            model_name="taskrecord",
            name="djtasks_task_lease_idx",
        ),
        migrations.RemoveIndex(
            model_name="taskrecord",
            name="djtasks_task_root_idx",
        ),
        migrations.RemoveIndex(
            model_name="taskrecord",
            name="djtasks_task_finished_idx",
        ),
        migrations.AlterField(
            model_name="taskrecord",
            name="task_name",
            field=models.CharField(max_length=255, verbose_name="task name"),
        ),
        migrations.AddIndex(
            model_name="taskrecord",
            index=models.Index(
                condition=models.Q(("lease_expires_at__isnull", False)),
                fields=["lease_expires_at"],
                name="djtasks_task_leased_idx",
            ),
        ),
        migrations.AddIndex(
            model_name="taskrecord",
            index=models.Index(
                condition=models.Q(("finished_at__isnull", False)),
                fields=["finished_at", "state", "task_name", "started_at"],
                name="djtasks_task_finished_at_idx",
            ),
        ),
        migrations.AddIndex(
            model_name="taskrecord",
            index=models.Index(
                condition=models.Q(("state", "FAILURE")),
                fields=["-finished_at", "-id"],
                name="djtasks_task_failed_idx",
            ),
        ),
        migrations.RunPython(drop_id_pattern_index, create_id_pattern_index, elidable=False),
    ]
