"""The bundle stage: the shipped artifact's I/O contract, its preprocessing asset and golden vectors
(``edge_kd.bundle``).
"""
from __future__ import annotations

from edge_kd.pipeline import Stage, content_hash
from edge_kd.stages.context import BuildContext, _recipe_part, _rows


class BundleStage(Stage):
    """The app's preprocessing asset with the artifact's I/O contract, and golden test vectors run
    through the artifact (see :mod:`edge_kd.bundle`)."""

    name = "bundle"
    requires = ("artifact", "student_value", "target")
    provides = ("bundle",)

    def __init__(self, shared: BuildContext):
        self.shared = shared

    def cache_key(self, ctx):
        return content_hash("build-bundle-v1", ctx["artifact"].path, ctx["student_value"],
                            _recipe_part(ctx["recipe"]))

    def load_cached(self, ctx, build, record):
        from edge_kd.bundle import MANIFEST_KEY

        from edge_kd.bundle.make import demote_student_assets

        bundle = build.manifest.get(MANIFEST_KEY)
        paths = [bundle[k]["path"] for k in ("artifact", "preprocessing", "vectors")] if bundle else []
        if not paths or not all((build.root / p).is_file() for p in paths):
            return None
        demote_student_assets(build, bundle["preprocessing"]["path"])  # a re-run distill registered its own
        return {"bundle": bundle}

    def run(self, ctx, build, record):
        from edge_kd.bundle.make import asset_maker, raw_samples, vector_count, write_bundle

        value = ctx["student_value"]
        test = self.shared.load_data().test
        _, sdata = self.shared.student_data(ctx.get("student_family"))
        idx = self.shared.eval_indices("test", vector_count(test), ctx["recipe"].seed)
        prepared = sdata.prepare(test) if sdata.prepare is not None else test
        maker = asset_maker(prepared, text_spec=sdata.text_spec(value) if sdata.kind == "text" else None)
        inputs = [x for x, _ in _rows(self.shared.student_arrays("test", value, idx, family=ctx.get("student_family")),
                                      test.labels[idx])]
        bundle = write_bundle(build, ctx["artifact"].path, maker, raw_samples(test, idx), inputs)
        record["details"] = {"contract": bundle["contract"], "vectors": bundle["vectors"]["count"],
                             "tolerance": bundle["tolerance"]}
        record["outputs"] = {"preprocessing": bundle["preprocessing"]["path"], "vectors": bundle["vectors"]["path"]}
        return {"bundle": bundle}


# ---- bench --------------------------------------------------------------------------------------
