"""The pages' addresses: the landing page at ``/``, everything else under ``app/``."""

from __future__ import annotations

from django.urls import path

from server.pages import catalog, fleet, jobs, landing, leaderboard

app_name = "pages"

urlpatterns = [
    path("", landing.landing, name="landing"),
    path("app/logout/", landing.logout, name="logout"),
    path("app/", jobs.job_list, name="home"),
    path("app/jobs/new/", jobs.submit, name="submit"),
    path("app/jobs/<id:job_id>/", jobs.job_page, name="job"),
    path("app/datasets/", catalog.datasets, name="datasets"),
    path("app/groups/", catalog.groups, name="groups"),
    path("app/groups/join/", catalog.join_group, name="join-group"),
    path("app/rounds/<id:round_id>/", leaderboard.round_page, name="round"),
    path("app/rounds/<id:round_id>/join/", catalog.join_round, name="join-round"),
    path("app/fleet/", fleet.fleet, name="fleet"),
]
