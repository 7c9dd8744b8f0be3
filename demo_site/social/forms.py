from django import forms


class PostForm(forms.Form):
    body = forms.CharField(
        label="What's new?",
        max_length=5000,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
    )
