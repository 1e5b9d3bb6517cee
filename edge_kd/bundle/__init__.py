"""What an app developer receives with each artifact, and how to check it.

In a build folder (``OUT/<target>/``):

``artifact/model.*``           the model (role ``model``)
``bundle/preprocess.json``     the preprocessing asset of *this* artifact, with its I/O contract read
                               from the file (role ``preprocessing``; see :mod:`edge_kd.bundle.assets`)
``vectors/vectors.json``       golden test vectors (+ ``vectors/images/*.png`` for image models): real
                               test inputs, the exact tensors, the artifact's outputs in its runtime
                               (role ``vectors``: test data beside the bundle, not shipped in the app)

``build.json`` records the contract at build time (``bundle``), so the gate can check, without any
runtime, that the declared contract is the artifact's and that the files are those of the build;
``edge-kd verify`` replays the vectors through the artifact in its runtime.

    from edge_kd.bundle import verify_bundle
    result = verify_bundle("builds/demo/tflite-int8")
    result.ok, result.problems

Importing this package is light (the gate reads contracts); runtimes load when a bundle is written
or verified.
"""
from __future__ import annotations

from typing import Any

BUNDLE_DIR = "bundle"
ASSET_FILE = "preprocess.json"
VECTORS_DIR = "vectors"
VECTORS_FILE = "vectors.json"
#: Manifest key of the bundle record, and artifact roles.
MANIFEST_KEY = "bundle"
VECTORS_ROLE = "vectors"
#: The distill stage's preprocessing file describes the PyTorch student, not the artifact: it stays in
#: the build folder under this role and no longer counts as shipped.
STUDENT_PREPROCESSING_ROLE = "student-preprocessing"
#: Vectors per bundle (images: fewer, each carries a PNG).
VECTOR_COUNT = 32
IMAGE_VECTOR_COUNT = 12

__all__ = ["ASSET_FILE", "BUNDLE_DIR", "IMAGE_VECTOR_COUNT", "MANIFEST_KEY", "VECTORS_DIR", "VECTORS_FILE",
           "VECTOR_COUNT", "verify_bundle", "write_bundle"]


def __getattr__(name: str) -> Any:
    if name == "write_bundle":
        from edge_kd.bundle.make import write_bundle

        return write_bundle
    if name == "verify_bundle":
        from edge_kd.bundle.verify import verify_bundle

        return verify_bundle
    raise AttributeError(name)
