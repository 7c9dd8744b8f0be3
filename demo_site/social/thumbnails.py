"""Square avatar thumbnails made with Pillow."""

from io import BytesIO
from pathlib import PurePath

from django.core.files.base import ContentFile
from PIL import Image, ImageOps

from .models import Profile

SIZES = {"thumbnail_small": 48, "thumbnail_large": 160}


def make_thumbnails(user_id: int) -> dict[str, str]:
    """Write every thumbnail of the user's avatar; return their storage names."""
    profile = Profile.objects.filter(user_id=user_id).first()
    if profile is None or not profile.avatar:
        return {}
    with profile.avatar.open("rb") as f, Image.open(f) as original:
        original.load()
    image = ImageOps.exif_transpose(original).convert("RGB")
    stem = PurePath(profile.avatar.name).stem
    written = {}
    for field, size in SIZES.items():
        thumb = ImageOps.fit(image, (size, size), Image.Resampling.LANCZOS)
        buffer = BytesIO()
        thumb.save(buffer, "JPEG", quality=85)
        old = getattr(profile, field)
        if old:
            old.delete(save=False)
        getattr(profile, field).save(f"{stem}-{size}.jpg", ContentFile(buffer.getvalue()), save=False)
        written[field] = getattr(profile, field).name
    profile.save(update_fields=list(SIZES))
    return written
