"""Pipeline core: stages with contracts, the build directory and its manifest, atomic writes."""
from edge_kd.pipeline.atomic import atomic_dir, atomic_path, atomic_write_bytes, atomic_write_json, atomic_write_text
from edge_kd.pipeline.files import file_facts, gzip_size, sha256_file
from edge_kd.pipeline.manifest import MANIFEST_NAME, SCHEMA_VERSION, Build, read_manifest, tool_versions
from edge_kd.pipeline.stage import Artifact, Stage, content_hash, run_pipeline, validate_pipeline

__all__ = [
    "MANIFEST_NAME", "SCHEMA_VERSION", "Artifact", "Build", "Stage", "atomic_dir", "atomic_path",
    "atomic_write_bytes", "atomic_write_json", "atomic_write_text", "content_hash", "file_facts",
    "gzip_size", "read_manifest", "run_pipeline", "sha256_file", "tool_versions", "validate_pipeline",
]
