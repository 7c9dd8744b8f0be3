"""The post search index: an SQLite FTS5 table, or a plain table searched with LIKE elsewhere.

Migration 0003 creates social_post_search (rowid = post id). Only the reindex_post task
writes it, so the index is eventually consistent with the posts.
"""

from django.db import connection, transaction

TABLE = "social_post_search"


def uses_fts5() -> bool:
    return connection.vendor == "sqlite"


def index_post(post_id: int, body: str) -> None:
    """Insert or replace the indexed text of one post."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {TABLE} WHERE rowid = %s", [post_id])
        cursor.execute(f"INSERT INTO {TABLE} (rowid, body) VALUES (%s, %s)", [post_id, body])


def remove_post(post_id: int) -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {TABLE} WHERE rowid = %s", [post_id])


def search(query: str, limit: int = 50) -> list[int]:
    """Return the ids of the posts matching every word of the query, newest first."""
    words = [w for w in query.split() if w]
    if not words:
        return []
    with connection.cursor() as cursor:
        if uses_fts5():
            # Each word quoted: FTS5 query syntax (AND, NEAR, *, ...) stays out of user input.
            match = " ".join('"' + w.replace('"', '""') + '"' for w in words)
            cursor.execute(
                f"SELECT rowid FROM {TABLE} WHERE {TABLE} MATCH %s ORDER BY rowid DESC LIMIT %s", [match, limit]
            )
        else:
            where = " AND ".join(["body ILIKE %s"] * len(words))
            patterns = ["%" + w.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%" for w in words]
            cursor.execute(f"SELECT rowid FROM {TABLE} WHERE {where} ORDER BY rowid DESC LIMIT %s", [*patterns, limit])
        return [row[0] for row in cursor.fetchall()]


def indexed_count() -> int:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {TABLE}")
        return cursor.fetchone()[0]
