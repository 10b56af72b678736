"""The sandbox answers without three costs moto adds to requests and AWS does not have.

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
"""

from __future__ import annotations

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


def skip_costs_aws_does_not_have() -> None:
    from moto import backends
    from moto.core.responses import BaseResponse
    from moto.sagemaker.models import BaseObject

    backends.list_of_moto_modules = _listed_once(backends.list_of_moto_modules)
    BaseResponse._enrich_response = _request_id_where_it_goes(BaseResponse._enrich_response)
    BaseObject.camelCase = _names_once(BaseObject.camelCase)


PATCH = Patch(
    name="serving-costs",
    adds=(
        "the same answers without moto's per-request costs: its package directory listed once, the XML "
        "request-id expression run only over XML bodies, SageMaker field names derived once"
    ),
    overrides=(
        "moto.backends.list_of_moto_modules",
        "moto.core.responses.BaseResponse._enrich_response",
        "moto.sagemaker.models.BaseObject.camelCase",
    ),
    apply=skip_costs_aws_does_not_have,
)
