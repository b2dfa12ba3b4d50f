"""Forms the pages draw: job filters and the submit form (the protocol validates submits).

The submit form only renders and refills the fields; what is accepted is decided by the
protocol's ``jobs/submit/`` view, whose field errors are put back on this form.
"""

from __future__ import annotations

from django import forms
from django.contrib.auth.models import User

from server.models import STATUSES, Dataset, Round

ANY = [("", "any")]


class JobFilterForm(forms.Form):
    """Filters of the jobs page; ``user`` only for staff, who see everyone's jobs."""

    status = forms.ChoiceField(choices=ANY + [(s, s) for s in STATUSES], required=False)
    round = forms.ModelChoiceField(Round.objects.all(), required=False, empty_label="any")
    algorithm = forms.CharField(max_length=64, required=False)
    user = forms.CharField(max_length=150, required=False, label="User name")

    def __init__(self, *args: object, staff: bool, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        if not staff:
            del self.fields["user"]


def _round_choices(user: User) -> list[tuple[str, str]]:
    """Open rounds the user may submit to: joined ones (staff: every open round)."""
    rounds = Round.objects.filter(open=True).select_related("dataset")
    if not user.is_staff:
        rounds = rounds.filter(participants=user)
    return [("", "no round")] + [
        (str(r.pk), f"{r.name} (on {r.dataset.name})") for r in rounds.order_by("id")
    ]


class SubmitPageForm(forms.Form):
    """The submit form's fields, with the names ``jobs/submit/`` reads."""

    algorithm = forms.CharField(
        max_length=64,
        help_text="An algorithm name, e.g. knn, svm, random_forest, kmeans.",
        widget=forms.TextInput(attrs={"list": "algorithms", "autocomplete": "off"}),
    )
    params = forms.CharField(
        required=False,
        initial="{}",
        label="Parameters (JSON)",
        help_text='A JSON object of hyper-parameters, e.g. {"n_neighbors": 5}.',
        widget=forms.Textarea(attrs={"rows": 4, "spellcheck": "false"}),
    )
    dataset = forms.ChoiceField()
    round = forms.ChoiceField(required=False, help_text="Only rounds you joined are listed.")

    def __init__(self, *args: object, user: User, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        dataset_field = self.fields["dataset"]
        assert isinstance(dataset_field, forms.ChoiceField)
        dataset_field.choices = [
            (str(d.pk), f"{d.name} ({d.task})") for d in Dataset.objects.order_by("id")
        ]
        round_field = self.fields["round"]
        assert isinstance(round_field, forms.ChoiceField)
        round_field.choices = _round_choices(user)
