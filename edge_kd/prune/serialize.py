"""Save a pruned (and/or low-rank factorized) model as plain data: a ModelSpec JSON + safetensors.

Nothing is pickled. The spec's factory is :func:`build_pruned`, whose kwargs hold the ORIGINAL model's
factory reference and kwargs, the attribute changes pruning made per module (``out_channels``,
``num_features``, ``embed_dim``, ...), the new shape of every resized tensor, and the list of low-rank
rewrites. Rebuilding re-creates the original network, shrinks those modules to the recorded shapes,
re-applies the rewrites, then ``ModelSpec.build`` loads the safetensors weights with strict key checking.

    >>> spec_path = save_pruned(pruned, base_spec, "out/")          # doctest: +SKIP
    >>> model = ModelSpec.load(spec_path).build()                   # doctest: +SKIP
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from edge_kd.errors import InputError
from edge_kd.models.spec import ModelSpec, import_object, save_state_dict

FORMAT = "edge_kd.pruned/1"
_SCALARS = (int, float, bool)


def _plain(value: Any) -> Any:
    if isinstance(value, _SCALARS) or value is None:
        return value
    if isinstance(value, (tuple, list)) and all(isinstance(v, _SCALARS) for v in value):
        return list(value)
    return _SKIP


_SKIP = object()


def _attrs(module: Any) -> dict[str, Any]:
    """Plain (JSON-able) attributes of one module, excluding parameters, buffers and children."""
    out = {}
    for key, value in vars(module).items():
        if key in ("training",) or key.startswith("_") and key not in ("_qkv_same_embed_dim",):
            continue
        plain = _plain(value)
        if plain is not _SKIP:
            out[key] = plain
    return out


def structure_diff(original: Any, pruned: Any) -> dict[str, Any]:
    """What differs between a freshly built model and its pruned version: per-module attributes and
    per-tensor shapes (only for modules and tensors present in both)."""
    orig_modules = dict(original.named_modules())
    attrs: dict[str, dict[str, Any]] = {}
    for name, module in pruned.named_modules():
        base = orig_modules.get(name)
        if base is None or type(base) is not type(module):
            continue
        before, after = _attrs(base), _attrs(module)
        changed = {k: v for k, v in after.items() if k in before and before[k] != v}
        if changed:
            attrs[name] = changed
    orig_state = original.state_dict()
    shapes = {k: list(v.shape) for k, v in pruned.state_dict().items()
              if k in orig_state and tuple(orig_state[k].shape) != tuple(v.shape)}
    return {"attributes": attrs, "shapes": shapes}


def _set_tensor(model: Any, key: str, shape: Sequence[int]) -> None:
    import torch
    from torch import nn

    owner_name, _, leaf = key.rpartition(".")
    owner = model.get_submodule(owner_name) if owner_name else model
    current = getattr(owner, leaf)
    empty = torch.zeros(tuple(shape), dtype=current.dtype)
    if isinstance(current, nn.Parameter):
        setattr(owner, leaf, nn.Parameter(empty, requires_grad=current.requires_grad))
    elif leaf in owner._buffers:
        owner._buffers[leaf] = empty
    else:
        raise InputError(f"pruned spec: {key} is neither a parameter nor a buffer of the rebuilt model")


def apply_structure(model: Any, attributes: dict[str, dict[str, Any]], shapes: dict[str, Sequence[int]]) -> Any:
    """Shrink ``model`` in place to recorded attributes and tensor shapes (weights are loaded afterwards)."""
    for name, changed in attributes.items():
        try:
            module = model.get_submodule(name) if name else model
        except AttributeError:
            raise InputError(f"pruned spec: the rebuilt model has no module {name!r}") from None
        for key, value in changed.items():
            old = getattr(module, key, None)
            setattr(module, key, tuple(value) if isinstance(old, tuple) and isinstance(value, list) else value)
    for key, shape in shapes.items():
        _set_tensor(model, key, shape)
    return model


def build_pruned(base_factory: str, base_kwargs: dict[str, Any] | None = None,
                 attributes: dict[str, dict[str, Any]] | None = None,
                 shapes: dict[str, Sequence[int]] | None = None,
                 rewrites: Sequence[dict[str, Any]] = (), format: str = FORMAT) -> Any:
    """Factory referenced by a pruned ModelSpec: original architecture, shrunk, rewritten (no weights)."""
    if format != FORMAT:
        raise InputError(f"pruned spec format {format!r} is not supported (expected {FORMAT!r})")
    factory = import_object(base_factory)
    model = factory(**(base_kwargs or {}))
    apply_structure(model, attributes or {}, shapes or {})
    if rewrites:
        from edge_kd.prune.lowrank import apply_rewrites

        apply_rewrites(model, rewrites)
    return model.eval()


def pruned_spec(pruned: Any, base: ModelSpec, *, rewrites: Sequence[dict[str, Any]] = (),
                weights: str | None = None) -> ModelSpec:
    """The ModelSpec of ``pruned`` relative to ``base`` (the unpruned spec it was made from).

    ``base`` may itself be a pruned spec (iterative pruning): the original factory is kept and the
    new differences are computed against the original architecture."""
    base_factory, base_kwargs = base.factory, dict(base.kwargs)
    prior_rewrites: list[dict[str, Any]] = []
    if base.factory == f"{__name__}:build_pruned":
        base_factory, base_kwargs = base.kwargs["base_factory"], dict(base.kwargs.get("base_kwargs") or {})
        prior_rewrites = list(base.kwargs.get("rewrites") or [])
    original = import_object(base_factory)(**base_kwargs)
    all_rewrites = prior_rewrites + [r for r in rewrites if r not in prior_rewrites]
    # Rewritten (factorized) modules change type, so the diff skips them; their rewrite record carries
    # their full dimensions instead.
    diff = structure_diff(original, pruned)
    kwargs = {"base_factory": base_factory, "base_kwargs": base_kwargs, "attributes": diff["attributes"],
              "shapes": diff["shapes"], "rewrites": all_rewrites, "format": FORMAT}
    return ModelSpec(f"{__name__}:build_pruned", base.inputs, kwargs, weights)


def save_pruned(pruned: Any, base: ModelSpec, out_dir: str | Path, *, rewrites: Sequence[dict[str, Any]] = (),
                name: str = "model") -> Path:
    """Write ``<name>.safetensors`` and ``<name>.json`` (a ModelSpec) into ``out_dir``; return the JSON path.

    The pair reloads with ``ModelSpec.load(path).build()`` and no unpickling."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    weights = out_dir / f"{name}.safetensors"
    spec = pruned_spec(pruned, base, rewrites=rewrites, weights=weights.name)
    save_state_dict(pruned, weights)
    return spec.save(out_dir / f"{name}.json")


def load_pruned(path: str | Path) -> Any:
    """Rebuild a saved pruned model (ModelSpec JSON path) with its weights."""
    return ModelSpec.load(path).build()
