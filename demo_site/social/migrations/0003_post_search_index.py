"""The post search index: an FTS5 virtual table on SQLite, a plain table (searched with LIKE) elsewhere."""

from django.db import migrations

SQLITE = "CREATE VIRTUAL TABLE social_post_search USING fts5(body, tokenize = 'unicode61 remove_diacritics 2')"
OTHERS = "CREATE TABLE social_post_search (rowid bigint PRIMARY KEY, body text NOT NULL)"


def create_index(apps, schema_editor):
    schema_editor.execute(SQLITE if schema_editor.connection.vendor == "sqlite" else OTHERS)


def drop_index(apps, schema_editor):
    schema_editor.execute("DROP TABLE social_post_search")


class Migration(migrations.Migration):

    dependencies = [
        ("social", "0002_social_graph"),
    ]

    operations = [
        migrations.RunPython(create_index, drop_index),
    ]
