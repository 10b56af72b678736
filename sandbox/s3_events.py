"""S3 event notifications to EventBridge as AWS sends them: buckets whose notification configuration has
EventBridgeConfiguration put every object event on the bucket owner's default bus, in AWS's shape, and
asynchronously (a failed delivery never fails the S3 request).

moto's own version sends `eTag`, a `reason` of ObjectCreated, a unix `time` and delivers to every bus
synchronously; its GetBucketNotificationConfiguration leaves EventBridgeConfiguration out.
"""

from __future__ import annotations

import threading
import traceback
import uuid
from typing import Any

from sandbox.events import emit
from sandbox.patching import Patch

_lock = threading.Lock()


# -- S3 event notifications to EventBridge --------------------------------------------------------
# https://docs.aws.amazon.com/AmazonS3/latest/userguide/ev-events.html: the reason of an Object Created
# event is the API that created the object; of an Object Deleted event, DeleteObject.
S3_REASONS = {
    "s3:ObjectCreated:Put": "PutObject",
    "s3:ObjectCreated:Post": "POST Object",
    "s3:ObjectCreated:Copy": "CopyObject",
    "s3:ObjectCreated:CompleteMultipartUpload": "CompleteMultipartUpload",
    "s3:ObjectRemoved:Delete": "DeleteObject",
    "s3:ObjectRemoved:DeleteMarkerCreated": "DeleteObject",
}
_sequence = iter(range(1, 1 << 62))


def s3_event(account_id: str, bucket: Any, event_name: str, key: Any) -> dict:
    """The event S3 puts on the bucket owner's default bus for `event_name` on `key`, as AWS shapes it."""
    from moto.s3 import notifications

    detail_type = notifications._detail_type(event_name)
    obj = {"key": key.name, "etag": (key.etag or "").strip('"')}
    if detail_type != "Object Deleted":
        obj["size"] = key.size
    if getattr(key, "version_id", None) and key.version_id != "null":
        obj["version-id"] = key.version_id
    with _lock:
        obj["sequencer"] = f"{next(_sequence):016X}"
    detail = {
        "version": "0",
        "bucket": {"name": bucket.name},
        "object": obj,
        "request-id": uuid.uuid4().hex[:16].upper(),
        "requester": account_id,
        "source-ip-address": "127.0.0.1",
    }
    if event_name in S3_REASONS:
        detail["reason"] = S3_REASONS[event_name]
    return {"detail_type": detail_type, "resources": [f"arn:aws:s3:::{bucket.name}"], "detail": detail}


def patch_s3_eventbridge() -> None:
    from moto.s3 import notifications

    def send(account_id, bucket, event_name, key):
        try:
            shaped = s3_event(account_id, bucket, event_name, key)
        except ValueError:  # an event type S3 does not send to EventBridge
            return

        def deliver_later():
            try:
                emit(account_id, bucket.region_name, source="aws.s3", **shaped)
            except Exception:  # S3 delivers asynchronously: a failed delivery never fails the request
                traceback.print_exc()

        threading.Thread(target=deliver_later, name="sandbox-s3-event", daemon=True).start()

    notifications._send_event_bridge_message = send

    # moto stores EventBridgeConfiguration but GetBucketNotificationConfiguration leaves it out
    from moto.s3.responses import S3Response

    original_get = S3Response.get_bucket_notification

    def get_bucket_notification(self):
        response = original_get(self)
        configuration = self.backend.get_bucket_notification_configuration(self.bucket_name)
        if configuration is None or configuration.event_bridge is None:
            return response
        status, headers, body = response if isinstance(response, tuple) else (200, {}, response)
        text = body.decode() if isinstance(body, bytes) else str(body)
        if "<EventBridgeConfiguration" in text:
            return response
        if "</NotificationConfiguration>" in text:
            text = text.replace(
                "</NotificationConfiguration>", "<EventBridgeConfiguration/></NotificationConfiguration>"
            )
        else:
            text = (
                '<?xml version="1.0" encoding="UTF-8"?><NotificationConfiguration '
                'xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><EventBridgeConfiguration/></NotificationConfiguration>'
            )
        return status, headers, text

    S3Response.get_bucket_notification = get_bucket_notification


PATCH = Patch(
    name="s3-eventbridge-notifications",
    adds=(
        "S3 sends object events to the default EventBridge bus of buckets with EventBridgeConfiguration, in "
        "AWS's shape (etag, reason PutObject/CopyObject/..., version-id, ISO time), asynchronously like AWS"
    ),
    overrides=(
        "moto.s3.notifications._send_event_bridge_message",
        "moto.s3.responses.S3Response.get_bucket_notification",
    ),
    apply=patch_s3_eventbridge,
)
