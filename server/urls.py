"""The protocol's addresses (see the protocol's endpoint table), the admin, media files."""

from __future__ import annotations

from django.contrib import admin
from django.urls import include, path, register_converter

from server.views import auth, catalog, files, jobs, results


class IdConverter:
    """Database ids: at most 18 digits, so a huge number is a 404, not an overflow."""

    regex = "[0-9]{1,18}"

    def to_python(self, value: str) -> int:
        return int(value)

    def to_url(self, value: int) -> str:
        return str(value)


register_converter(IdConverter, "id")

handler400 = "server.views.errors.bad_request"
handler403 = "server.views.errors.permission_denied"
handler404 = "server.views.errors.not_found"
handler500 = "server.views.errors.server_error"

urlpatterns = [
    path("login/", auth.login, name="login"),
    path("logout/", auth.logout, name="logout"),
    path("groups/", catalog.groups, name="groups"),
    path("groups/add/", catalog.add_group, name="add-group"),
    path("groups/join/", catalog.join_group, name="join-group"),
    path("rounds/", catalog.rounds, name="rounds"),
    path("rounds/<id:round_id>/join/", catalog.join_round, name="join-round"),
    path("datasets/", catalog.datasets, name="datasets"),
    path("datasets/<id:dataset_id>/points/", catalog.points, name="points"),
    path("jobs/submit/", jobs.submit, name="submit"),
    path("jobs/request/", jobs.request_job, name="request-job"),
    path("jobs/<id:job_id>/", jobs.details, name="job-details"),
    path("jobs/<id:job_id>/result/", jobs.result, name="job-result"),
    path("jobs/<id:job_id>/update/", results.update, name="job-update"),
    path("jobs/<id:job_id>/finish/", results.finish, name="job-finish"),
    path("jobs/<id:job_id>/pictures/", results.add_picture, name="job-pictures"),
    path("media/<path:path>", files.media, name="media"),
    path("static/<path:path>", files.static_file, name="static"),
    path("admin/", admin.site.urls),
    path("", include("server.pages.urls")),  # web pages for people, beside the protocol
]
