"""The activity report: posts, follows and new users per day."""

from collections.abc import Callable
from datetime import timedelta

from django.utils import timezone

from .models import Follow, Post


def activity_report(user_model, days: int, step: Callable[[int, int, str], None]) -> dict:
    """Count activity per day for the last `days` days, calling step(done, total, message) before each."""
    today = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
    rows = []
    for i in range(days):
        start = today - timedelta(days=i)
        step(i, days, f"counting {start:%Y-%m-%d}")
        end = start + timedelta(days=1)
        rows.append(
            {
                "day": start.date().isoformat(),
                "posts": Post.objects.filter(created_at__gte=start, created_at__lt=end).count(),
                "follows": Follow.objects.filter(created_at__gte=start, created_at__lt=end).count(),
                "new_users": user_model.objects.filter(date_joined__gte=start, date_joined__lt=end).count(),
            }
        )
    step(days, days, "done")
    return {"days": rows, "totals": {key: sum(row[key] for row in rows) for key in ("posts", "follows", "new_users")}}
