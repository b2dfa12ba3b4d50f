"""An upload handler that caps every uploaded file at ``PICTURE_MAX_BYTES``.

It reads (and drops) the rest of an oversized file instead of resetting the connection, so
the client gets the view's ``413`` answer rather than a broken pipe; nothing over the cap is
kept in memory or on disk.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.core.files.uploadhandler import FileUploadHandler


class OversizedFile(UploadedFile):
    """Stands in for a file that was larger than allowed: only its name and size remain."""

    def __init__(self, name: str, size: int) -> None:
        super().__init__(file=None, name=name, content_type=None, size=size)


class SizeLimitUploadHandler(FileUploadHandler):
    """First in ``FILE_UPLOAD_HANDLERS``: passes chunks on until a file exceeds the cap."""

    received = 0

    def new_file(self, *args: Any, **kwargs: Any) -> None:
        super().new_file(*args, **kwargs)
        self.received = 0

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes | None:
        self.received += len(raw_data)
        return raw_data if self.received <= settings.PICTURE_MAX_BYTES else None

    def file_complete(self, file_size: int) -> UploadedFile | None:
        if self.received > settings.PICTURE_MAX_BYTES:
            return OversizedFile(self.file_name or "upload", self.received)
        return None
