"""The demo's housekeeping: trim long timelines, delete old mail and avatar files nobody uses."""

import time
from pathlib import Path

from django.conf import settings
from django.core.files.storage import default_storage
from django.db.models import Count

from .models import Profile, TimelineEntry

# Entries kept per timeline; older ones are dropped, as LTRIM does in Redis' Twitter clone.
TIMELINE_LENGTH = 1000
MAIL_MAX_AGE_DAYS = 7


def trim_timelines(keep: int = TIMELINE_LENGTH) -> int:
    deleted = 0
    long_ones = TimelineEntry.objects.values("owner_id").annotate(n=Count("id")).filter(n__gt=keep)
    for row in long_ones:
        keep_ids = TimelineEntry.objects.filter(owner_id=row["owner_id"]).values_list("id", flat=True)[:keep]
        deleted += TimelineEntry.objects.filter(owner_id=row["owner_id"]).exclude(id__in=list(keep_ids)).delete()[0]
    return deleted


def delete_old_mail(max_age_days: int = MAIL_MAX_AGE_DAYS) -> int:
    mail_dir = Path(getattr(settings, "EMAIL_FILE_PATH", "") or "")
    if not mail_dir.is_dir():
        return 0
    cutoff = time.time() - max_age_days * 86400
    old = [path for path in mail_dir.glob("*.log") if path.stat().st_mtime < cutoff]
    for path in old:
        path.unlink(missing_ok=True)
    return len(old)


def delete_orphan_avatars() -> int:
    """Delete files under avatars/ that no profile points to (replaced uploads and thumbnails)."""
    used = set()
    for names in Profile.objects.values_list("avatar", "thumbnail_small", "thumbnail_large"):
        used.update(name for name in names if name)
    deleted = 0
    for folder in ("avatars", "avatars/thumbs"):
        if not default_storage.exists(folder):
            continue
        for filename in default_storage.listdir(folder)[1]:
            name = f"{folder}/{filename}"
            if name not in used:
                default_storage.delete(name)
                deleted += 1
    return deleted


def cleanup() -> dict[str, int]:
    """Run every housekeeping step; return how much each removed."""
    return {
        "timeline_entries": trim_timelines(),
        "mail_files": delete_old_mail(),
        "avatar_files": delete_orphan_avatars(),
    }
