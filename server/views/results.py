"""What workers send back: pictures, then the result (``update``), or both at once (``finish``).

All are idempotent. A repeated result is recognised by a digest of its normalized fields, so
a worker that never saw the answer may send it again and get ``duplicate``; the same picture
bytes twice for a job are stored once.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from django.core.files.base import ContentFile
from django.core.files.uploadedfile import UploadedFile
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from server.forms import UpdateForm
from server.models import Dataset, Job, Picture
from server.prepared import Prepared, PreparedUpdate
from server.uploads import OversizedFile
from server.views.common import ClientError, api_view, get_or_404, json_response, valid_form
from server.wire import set_sizes

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAX_PICTURES_PER_FINISH = 16
RESULT_FIELDS = (
    "score_test",
    "score_validation",
    "labels_training",
    "labels_test",
    "labels_validation",
    "extra_scores_test",
    "extra_scores_validation",
    "message",
)

# Every result reads these: compiled once (server.prepared).
_DATASET_OF_JOB = Prepared(
    lambda pk: Job.objects.filter(pk=pk).order_by().values_list("dataset_id", "dataset__version"),
    int,
)
_PICTURE_DIGESTS = Prepared(
    lambda pk: Picture.objects.filter(job_id=pk).order_by().values_list("sha256"), int
)
FINISHED_FIELDS = (*RESULT_FIELDS, "status", "finished", "update_digest")


def _finish(pk: int, *values: Any) -> tuple[QuerySet[Job], dict[str, Any]]:
    """A running job finished with ``values`` of :data:`FINISHED_FIELDS`, its lease ended."""
    return Job.objects.filter(pk=pk, status="running"), {
        **dict(zip(FINISHED_FIELDS, values, strict=True)),
        "lease_expires": None,
    }


_COLUMNS = {field.name: field for field in Job._meta.concrete_fields}
_FINISH = PreparedUpdate(_finish, int, *(_COLUMNS[name] for name in FINISHED_FIELDS))


def _locked_job(job_id: int) -> Job:
    """The job, row-locked where the database can (call inside a transaction), or 404."""
    return get_or_404(Job.objects.select_for_update(), job_id, "job")


def result_digest(data: dict[str, Any]) -> str:
    """A digest of an update's normalized fields: equal for the same result, however sent."""
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


def _refuse_finished(job: Job, digest: str) -> dict[str, Any]:
    if job.update_digest and job.update_digest == digest:
        return {"success": True, "duplicate": True}
    raise ClientError(
        409, f"job {job.pk} is already {job.status}: a different result was recorded before"
    )


@api_view(method="POST", staff=True)
def update(request: HttpRequest, job_id: int) -> HttpResponse:
    """Finish a running job with a worker's result (or failure)."""
    return json_response(_record_result(request, job_id, []))


@api_view(method="POST", staff=True)
def finish(request: HttpRequest, job_id: int) -> HttpResponse:
    """``update`` with the job's pictures in the same multipart request: one round trip.

    The pictures are stored in the transaction that finishes the job, so a job is never
    done without them. A picture that is not a PNG, or too large, is left out and named in
    ``refused``: as with ``pictures/`` then ``update/``, the result is what counts.
    """
    uploads = request.FILES.getlist("picture")
    if len(uploads) > MAX_PICTURES_PER_FINISH:
        raise ClientError(
            400,
            f"too many pictures: {len(uploads)}, at most {MAX_PICTURES_PER_FINISH} allowed",
            {"picture": f"at most {MAX_PICTURES_PER_FINISH} files"},
        )
    pictures: list[bytes] = []
    refused: list[dict[str, str]] = []
    for upload in uploads:
        try:
            pictures.append(_checked_png(upload))
        except ClientError as error:
            refused.append({"name": str(upload.name), "error": error.message})
    answer = _record_result(request, job_id, pictures)
    if not answer.get("duplicate"):
        answer["refused"] = refused
    return json_response(answer)


def _record_result(request: HttpRequest, job_id: int, pictures: list[bytes]) -> dict[str, Any]:
    """Finish the job and store its pictures in one transaction; the answer's body.

    The result is checked before the transaction, which then finishes the job only if it
    is still running, in one ``UPDATE``; only when it is not is the job read again, to
    tell a repeated result from a conflicting one.

    Leases are deliberately not swept here: a result arriving after its lease passed is
    still a good result, and taking it beats running the job again.
    """
    row = _DATASET_OF_JOB.first(job_id)
    if row is None:
        raise ClientError(404, f"no job with id {job_id}")
    dataset = Dataset.from_db(_DATASET_OF_JOB.alias, ("id", "version"), row)
    data = valid_form(UpdateForm(request.POST, set_sizes=set_sizes(dataset)))
    digest = result_digest(data)
    with transaction.atomic():
        status = "done" if data["success"] else "failed"
        results = (data[name] for name in RESULT_FIELDS)
        finished = _FINISH.run(job_id, *results, status, timezone.now(), digest)
        if not finished:
            job = _locked_job(job_id)
            if job.status in ("done", "failed"):
                return _refuse_finished(job, digest)
            raise ClientError(
                409, f"job {job_id} is {job.status}: only a running job can be updated"
            )
        _store_pictures(job_id, pictures)
    return {"success": True}


def _checked_png(upload: UploadedFile) -> bytes:
    """The bytes of an uploaded picture, if it is a PNG of at most the allowed size."""
    if isinstance(upload, OversizedFile):
        raise ClientError(
            413,
            f"picture too large: {upload.size} bytes, at most 5 MiB allowed",
            {"picture": "must be at most 5 MiB"},
        )
    data = upload.read()
    if not data.startswith(PNG_SIGNATURE):
        raise ClientError(
            400, "invalid picture: the file is not a PNG image", {"picture": "must be a PNG image"}
        )
    return data


def _store_pictures(job_id: int, pngs: list[bytes]) -> int:
    """Store PNGs for a job locked by the caller as ``jobs/<id>/<n>.png``; how many were new.

    Bytes the job already has, or that came twice, are stored once.
    """
    have = {digest for (digest,) in _PICTURE_DIGESTS.rows(job_id)}
    new = []
    for png in pngs:
        digest = hashlib.sha256(png).hexdigest()
        if digest in have:
            continue
        have.add(digest)
        picture = Picture(job_id=job_id, sha256=digest)
        picture.file.save(f"{len(have)}.png", ContentFile(png), save=False)
        new.append(picture)
    Picture.objects.bulk_create(new)
    return len(new)


@api_view(method="POST", staff=True)
def add_picture(request: HttpRequest, job_id: int) -> HttpResponse:
    """Store a PNG for a running job as ``jobs/<id>/<n>.png``."""
    if not Job.objects.filter(pk=job_id).exists():
        raise ClientError(404, f"no job with id {job_id}")
    upload = request.FILES.get("picture")
    if upload is None:
        raise ClientError(
            400,
            "invalid picture: send a PNG file in the multipart field 'picture'",
            {"picture": "is required (a PNG file)"},
        )
    data = _checked_png(upload)
    duplicate = {"success": True, "duplicate": True}
    try:
        with transaction.atomic():
            job = _locked_job(job_id)
            if job.status != "running":
                raise ClientError(409, f"job {job_id} is {job.status}: pictures only while running")
            if not _store_pictures(job_id, [data]):
                return json_response(duplicate, status=201)
    except IntegrityError:
        return json_response(duplicate, status=201)
    return json_response({"success": True}, status=201)
