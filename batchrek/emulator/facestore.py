"""Face collections: enough state for CreateCollection, IndexFaces and search.

Face and image ids are UUIDv5 of the collection and the image's content hash, so
indexing the same picture twice gives the same ids (the emulator's answers are a
function of the pixels, the real service's are not).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from batchrek.emulator.analysis import Box
from batchrek.emulator.apierrors import ServiceError

__all__ = ["ACCOUNT_ID", "Collection", "FaceStore", "StoredFace"]

ACCOUNT_ID = "123456789012"
_NAMESPACE = uuid.UUID("6c0b6c5e-4a7c-4e3b-9a55-0f2f6b1d2e51")


@dataclass(frozen=True, slots=True)
class StoredFace:
    face_id: str
    image_id: str
    box: Box
    confidence: float
    external_image_id: str | None = None


@dataclass(slots=True)
class Collection:
    id: str
    arn: str
    faces: dict[str, StoredFace] = field(default_factory=dict)


def image_id(digest: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"image:{digest}"))


class FaceStore:
    def __init__(self, region: str) -> None:
        self._region = region
        self._collections: dict[str, Collection] = {}

    def create(self, collection_id: str) -> Collection:
        if collection_id in self._collections:
            raise ServiceError(
                "ResourceAlreadyExistsException",
                f"The collection id: {collection_id} already exists",
            )
        arn = f"aws:rekognition:{self._region}:{ACCOUNT_ID}:collection/{collection_id}"
        found = self._collections[collection_id] = Collection(collection_id, arn)
        return found

    def get(self, collection_id: str) -> Collection:
        found = self._collections.get(collection_id)
        if found is None:
            raise ServiceError(
                "ResourceNotFoundException", f"The collection id: {collection_id} does not exist"
            )
        return found

    def delete(self, collection_id: str) -> None:
        self.get(collection_id)
        del self._collections[collection_id]

    def ids(self) -> list[str]:
        return sorted(self._collections)

    def index(
        self,
        collection: Collection,
        digest: str,
        box: Box,
        confidence: float,
        external_image_id: str | None,
    ) -> StoredFace:
        face_id = str(uuid.uuid5(_NAMESPACE, f"face:{collection.id}:{digest}"))
        face = StoredFace(face_id, image_id(digest), box, confidence, external_image_id)
        collection.faces[face_id] = face
        return face

    def clear(self) -> None:
        self._collections.clear()

    def __repr__(self) -> str:
        return f"FaceStore(collections={len(self._collections)})"
