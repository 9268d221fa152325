"""Routes of the artifact store: stream objects in and out of an account's storage.

Uploads stream: the body is never read into memory, the handler hands it chunk by chunk
to the backend from a worker thread (the backends write files and sockets), and no
database transaction is open while it flows; the audit record follows the upload.
"""

from __future__ import annotations

from collections.abc import Iterator
from email.utils import format_datetime
from typing import Annotated
from urllib.parse import quote

import anyio
import anyio.from_thread
from fastapi import APIRouter, Depends, Header, Query, Request, Response, status
from fastapi.responses import StreamingResponse

from ketch import artifact_store
from ketch.api import resources
from ketch.api.deps import Guard, authorize
from ketch.api.pagination import (
    DEFAULT_MAX_RESULTS,
    MaxResults,
    NextToken,
    decode_token,
    encode_token,
)
from ketch.iam import Action
from ketch.schemas.artifacts import SHA256_HEADER, Artifact
from ketch.schemas.common import Page

router = APIRouter(tags=["artifacts"])

BINARY = "application/octet-stream"
OBJECT_PATH = "/accounts/{account_id}/artifacts/{key:path}"
_BINARY_BODY = {
    "requestBody": {
        "required": True,
        "content": {BINARY: {"schema": {"type": "string", "format": "binary"}}},
    }
}

ChecksumHeader = Annotated[
    str | None,
    Header(
        alias=SHA256_HEADER,
        max_length=64,
        description="SHA-256 of the body, hex; an upload that hashes otherwise is refused",
    ),
]


@router.put(
    OBJECT_PATH,
    summary="Upload an artifact (the body is the object's bytes)",
    openapi_extra=_BINARY_BODY,
)
async def put_artifact(
    request: Request,
    account_id: str,
    key: str,
    guard: Annotated[
        Guard,
        Depends(
            authorize(Action.PUT_ARTIFACT, resources.artifact_from_path(), body_media_type=BINARY)
        ),
    ],
    checksum: ChecksumHeader = None,
) -> Artifact:
    chunks = _body_chunks(request)

    def store() -> Artifact:
        with guard.effect():
            return artifact_store.put_artifact(
                guard.context.artifacts, account_id, key, chunks, expected_sha256=checksum
            )

    return await anyio.to_thread.run_sync(store)


@router.get(
    OBJECT_PATH,
    summary="Download an artifact",
    response_class=StreamingResponse,
    responses={200: {"content": {BINARY: {"schema": {"type": "string", "format": "binary"}}}}},
)
def get_artifact(
    account_id: str,
    key: str,
    guard: Annotated[
        Guard, Depends(authorize(Action.GET_ARTIFACT, resources.artifact_from_path()))
    ],
) -> StreamingResponse:
    artifact, chunks = artifact_store.open_artifact(guard.context.artifacts, account_id, key)
    return StreamingResponse(chunks, media_type=BINARY, headers=_object_headers(artifact))


@router.head(OBJECT_PATH, summary="Describe an artifact in headers only")
def head_artifact(
    account_id: str,
    key: str,
    guard: Annotated[
        Guard, Depends(authorize(Action.GET_ARTIFACT, resources.artifact_from_path()))
    ],
) -> Response:
    artifact = artifact_store.describe_artifact(guard.context.artifacts, account_id, key)
    return Response(headers=_object_headers(artifact), media_type=BINARY)


@router.get("/accounts/{account_id}/artifacts", summary="List artifacts under a prefix")
def list_artifacts(
    account_id: str,
    guard: Annotated[
        Guard, Depends(authorize(Action.LIST_ARTIFACTS, resources.artifacts_in_account()))
    ],
    prefix: Annotated[str, Query(max_length=1024, description="Key prefix, e.g. data/")] = "",
    max_results: MaxResults = DEFAULT_MAX_RESULTS,
    next_token: NextToken = None,
) -> Page[Artifact]:
    listing = f"artifacts/{account_id}/{prefix}"
    after = decode_token(listing, next_token) or ""
    # One more than the page: whether it comes back says if another page follows.
    items = artifact_store.list_artifacts(
        guard.context.artifacts, account_id, prefix, after=after, limit=max_results + 1
    )
    last = items[max_results - 1].key if len(items) > max_results else None
    items = items[:max_results]
    return Page[Artifact](items=items, next_token=encode_token(listing, last))


@router.delete(OBJECT_PATH, status_code=status.HTTP_204_NO_CONTENT, summary="Delete an artifact")
def delete_artifact(
    account_id: str,
    key: str,
    guard: Annotated[
        Guard, Depends(authorize(Action.DELETE_ARTIFACT, resources.artifact_from_path()))
    ],
) -> Response:
    with guard.effect():
        artifact_store.delete_artifact(guard.context.artifacts, account_id, key)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def _body_chunks(request: Request) -> Iterator[bytes]:
    """The request body as a blocking iterator, for a worker thread started by anyio."""
    stream = request.stream()

    async def next_chunk() -> bytes | None:
        return await anext(stream, None)

    while (chunk := anyio.from_thread.run(next_chunk)) is not None:
        if chunk:
            yield chunk


def _object_headers(artifact: Artifact) -> dict[str, str]:
    headers = {
        "Content-Length": str(artifact.size),
        "Last-Modified": format_datetime(artifact.modified, usegmt=True),
        "Content-Disposition": (
            f"attachment; filename*=UTF-8''{quote(artifact.key.rsplit('/', 1)[-1])}"
        ),
    }
    if artifact.sha256:
        headers[SHA256_HEADER] = artifact.sha256
        headers["ETag"] = f'"{artifact.sha256}"'
    return headers
