from django import forms
from django.contrib.auth.forms import UserCreationForm

from .models import Profile


class PostForm(forms.Form):
    body = forms.CharField(
        label="What's new?",
        max_length=5000,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
    )


class SignUpForm(UserCreationForm):
    email = forms.EmailField(required=False, help_text="Optional: where follow notifications go.")

    class Meta(UserCreationForm.Meta):
        fields = ("username", "email")


class AvatarForm(forms.ModelForm):
    class Meta:
        model = Profile
        fields = ["avatar"]
        widgets = {"avatar": forms.FileInput(attrs={"accept": "image/*"})}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["avatar"].required = True


class ReportForm(forms.Form):
    days = forms.IntegerField(min_value=1, max_value=60, initial=14, label="Days")
