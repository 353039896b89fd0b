"""A local, Rekognition-compatible server for tests and benchmarks.

It speaks the real wire protocol (AWS JSON 1.1 on ``POST /``), so an unmodified
boto3/aioboto3 client with ``endpoint_url`` set talks to it, and it enforces the
service's rules on images (see ``batchrek.limits``) with the service's error codes.

The answers are synthetic, not recognition. They are a deterministic function of
the pixels, as displayed (JPEG EXIF orientation applied, PNG never rotated):

- The one "thing" in an image is its region of strongly red pixels (the test corpus
  draws one red rectangle). Its box is the face (DetectFaces, IndexFaces,
  SearchFacesByImage, CompareFaces, RecognizeCelebrities' unrecognized face), the
  person (DetectProtectiveEquipment), the "Red Region" label instance
  (DetectLabels), the "RED" text line (DetectText) and the "red-region" custom
  label. No red pixels: no face, no person, no such label.
- The displayed size ``<W>x<H>`` is readable with real API keys only: DetectLabels'
  "Canvas" label has it as an alias name, DetectText has it as a LINE.
- ImageProperties (Features=IMAGE_PROPERTIES) are measured brightness, contrast,
  sharpness and dominant colours. Moderation labels and celebrities are always empty.
- Face similarity is 100 x the intersection-over-union of the two red boxes.

Load is simulated too, reproducibly by seed: latency, a per-operation TPS quota
(ProvisionedThroughputExceededException), ThrottlingException, InternalServerError
and dropped connections; all can change while it runs (``/_emulator/config``).
``/_emulator/stats`` counts requests by outcome and billable analyses per image.

The account's side can be set the same way, to rehearse failures that concern a
whole run: access keys it accepts (UnrecognizedClientException otherwise), keys
whose session it calls expired (ExpiredTokenException), operations the role may not
call (AccessDeniedException), and Custom Labels models
with their status (``emulator.projects``: DescribeProjects, DescribeProjectVersions,
ResourceNotFound / ResourceNotReady from DetectCustomLabels). DescribeCollection
answers for collections.
"""

from __future__ import annotations

from batchrek.emulator.client import EmulatorControl, EmulatorControlError
from batchrek.emulator.runner import Emulator, EmulatorHandle, run_in_thread
from batchrek.emulator.settings import EmulatorSettings, SettingsError

__all__ = [
    "Emulator",
    "EmulatorControl",
    "EmulatorControlError",
    "EmulatorHandle",
    "EmulatorSettings",
    "SettingsError",
    "run_in_thread",
]
