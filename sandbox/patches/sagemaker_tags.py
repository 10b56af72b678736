"""SageMaker AddTags overwrites the value of a key the resource already has, as AWS does.

moto 5.2 appends instead, so a re-tagged pipeline ends up with two `build` tags. AWS:
https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_AddTags.html ("If the key already
exists for the resource, the value is updated").
"""

from __future__ import annotations

from sandbox.patching import Patch


def add_tags_overwrite() -> None:
    from moto.sagemaker.models import SageMakerModelBackend

    def add_tags(self, arn, tags):
        resource = self._get_resource_from_arn(arn)
        new = {t["Key"]: t for t in tags}
        resource.tags = [t for t in (resource.tags or []) if t["Key"] not in new] + list(new.values())
        return resource.tags

    SageMakerModelBackend.add_tags = add_tags


PATCH = Patch(
    name="sagemaker-add-tags-overwrite",
    adds=("SageMaker AddTags updates an existing key's value instead of adding a second tag with the same key"),
    overrides=("moto.sagemaker.models.SageMakerModelBackend.add_tags",),
    apply=add_tags_overwrite,
)
