"""The sandbox answers without four costs moto adds to requests and AWS does not have.

Every answer stays byte for byte what moto answers; only work that cannot change it is skipped. At
1,000 model versions these were a third of the server time of a Search page (100 records, ~190 KB):

- routing: moto lists its own package directory (~200 `isdir` calls) on every request to find the
  service; that directory does not change while the server runs, so it is listed once.
- request ids: moto runs a regular expression over every response body to put the request id into
  an XML `<RequestId>` element; a body without that element (every JSON answer) is left as it is,
  which is what the expression did to it.
- SageMaker field names: moto's SageMaker objects derive each field's response name (`split`,
  `title`, `join`) every time they answer, ~25 fields a record; the name depends on the attribute
  alone, so each is derived once.
- S3 byte ranges: moto reads a whole object to answer a ranged GetObject, then slices it, so the
  transfer manager's 8 MB parts of a 1 GB object read 128 GB, and a one-byte read of a 30 MB object
  reads 30 MB. A single satisfiable range is read alone; every other case (several ranges, one moto
  would answer whole or refuse, a part number, a 304) is answered by moto as before.
"""

from __future__ import annotations

import re
import threading
from typing import Any

from sandbox.patching import Patch

_REQUEST_ID_ELEMENT = "<RequestId>"


def _listed_once(original):
    listed: list[tuple[str, ...]] = []  # set once, whole (requests are served in threads)

    def list_of_moto_modules():
        if not listed:
            listed.append(tuple(original()))
        return iter(listed[0])

    list_of_moto_modules.__wrapped__ = original  # type: ignore[attr-defined]
    return list_of_moto_modules


def _request_id_where_it_goes(original):
    def enrich_response(headers: dict, body: Any) -> tuple:
        if isinstance(body, str) and _REQUEST_ID_ELEMENT not in body:
            # the headers still get the request id (and the status cast); the body has nowhere to put it
            return original(headers, "")[0], body
        return original(headers, body)

    enrich_response.__wrapped__ = original  # type: ignore[attr-defined]
    return staticmethod(enrich_response)


def _names_once(original):
    names: dict[str, str] = {}

    def camelCase(self, key: str) -> str:
        name = names.get(key)
        if name is None:
            name = names[key] = original(self, key)
        return name

    camelCase.__wrapped__ = original  # type: ignore[attr-defined]
    return camelCase


_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
_unread = threading.local()  # set while moto builds a ranged answer whose bytes are read here


def _byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(first, last) byte of a single range moto would answer with a 206, else None (moto decides)."""
    match = _RANGE.match(header or "")
    if not match or size == 0 or (not match.group(1) and not match.group(2)):
        return None
    last = size - 1
    if match.group(1):
        begin = int(match.group(1))
        end = last if not match.group(2) else min(int(match.group(2)), last)
    else:
        suffix = int(match.group(2))
        if suffix == 0:
            return None
        begin, end = size - min(suffix, size), last
    if begin > last or begin > end:
        return None
    return begin, end


def _value_unless_unread(original):
    def value(self) -> bytes:
        return b"" if getattr(_unread, "on", False) else original.fget(self)

    return property(value, original.fset)


def _ranges_read_alone(original):
    def get_object(self):
        if "range" not in self.headers or self._get_int_param("partNumber"):
            return original(self)
        key, not_modified = self._get_key()  # raises as moto's own lookup would
        span = None if not_modified else _byte_range(self.headers.get("range"), key.size)
        if span is None:
            return original(self)
        _unread.on = True
        try:
            status, headers, _ = original(self)  # the headers of the whole object, its bytes not read
        finally:
            _unread.on = False
        if status != 200:
            return status, headers, _
        begin, end = span
        with key.lock:
            key._value_buffer.seek(begin)
            content = key._value_buffer.read(end - begin + 1)
        if begin or end < key.size - 1:  # as moto's range answer: a part carries no whole-object checksum
            for name in [h for h in headers if h.startswith("x-amz-checksum-")]:
                del headers[name]
        headers["content-range"] = f"bytes {begin}-{end}/{key.size}"
        headers["content-length"] = str(len(content))
        return 206, headers, content

    get_object.__wrapped__ = original  # type: ignore[attr-defined]
    return get_object


def skip_costs_aws_does_not_have() -> None:
    from moto import backends
    from moto.core.responses import BaseResponse
    from moto.sagemaker.models import BaseObject

    backends.list_of_moto_modules = _listed_once(backends.list_of_moto_modules)
    BaseResponse._enrich_response = _request_id_where_it_goes(BaseResponse._enrich_response)
    BaseObject.camelCase = _names_once(BaseObject.camelCase)
    from moto.s3.models import FakeKey
    from moto.s3.responses import S3Response

    FakeKey.value = _value_unless_unread(FakeKey.value)
    S3Response.get_object = _ranges_read_alone(S3Response.get_object)


PATCH = Patch(
    name="serving-costs",
    adds=(
        "the same answers without moto's per-request costs: its package directory listed once, the XML "
        "request-id expression run only over XML bodies, SageMaker field names derived once, an S3 byte "
        "range read alone"
    ),
    overrides=(
        "moto.backends.list_of_moto_modules",
        "moto.core.responses.BaseResponse._enrich_response",
        "moto.sagemaker.models.BaseObject.camelCase",
        "moto.s3.models.FakeKey.value",
        "moto.s3.responses.S3Response.get_object",
    ),
    apply=skip_costs_aws_does_not_have,
)
