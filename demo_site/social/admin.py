from django.contrib import admin

from .models import Follow, Post, Profile, TimelineEntry


@admin.register(Post)
class PostAdmin(admin.ModelAdmin):
    list_display = ["id", "author", "created_at", "body"]
    list_select_related = ["author"]
    search_fields = ["body", "author__username"]
    date_hierarchy = "created_at"


@admin.register(Follow)
class FollowAdmin(admin.ModelAdmin):
    list_display = ["id", "follower", "followee", "created_at"]
    list_select_related = ["follower", "followee"]
    search_fields = ["follower__username", "followee__username"]


@admin.register(Profile)
class ProfileAdmin(admin.ModelAdmin):
    list_display = ["user", "avatar", "thumbnail_small", "thumbnail_large"]
    list_select_related = ["user"]


@admin.register(TimelineEntry)
class TimelineEntryAdmin(admin.ModelAdmin):
    list_display = ["id", "owner", "post"]
    list_select_related = ["owner", "post"]
    raw_id_fields = ["owner", "post"]
