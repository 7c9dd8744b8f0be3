from django.contrib import admin

from .models import Post


@admin.register(Post)
class PostAdmin(admin.ModelAdmin):
    list_display = ["id", "author", "created_at", "body"]
    list_select_related = ["author"]
    search_fields = ["body", "author__username"]
    date_hierarchy = "created_at"
