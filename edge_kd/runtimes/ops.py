"""Operator policies: which operators an artifact may contain on its target (no heavy imports).

The gate reads the ``ops`` record written at export/bench time and never imports a runtime, so the
policy logic lives here as plain Python over operator names:

* ``xnnpack-full-delegation`` (ExecuTorch): every compute op must run inside the XNNPACK delegate;
  an op left to ExecuTorch's portable kernels is a violation (portable kernels are slow and grow the
  app's binary). Not counted: bookkeeping ops that move no data, and ops XNNPACK has no kernel for
  by design that do no arithmetic (``ET_ALLOWED_OUTSIDE_DELEGATE``: the embedding lookup, position
  ranges, view-like copies at partition boundaries). Without that exemption no text model could ever
  meet the policy; they are still listed in ``operators`` and counted in ``not_delegated``. The
  quantized lookups (``quantized_decomposed::embedding_byte`` / ``embedding_4bit``: int8 or int4 rows
  times a per-row or per-group scale, the ExecuTorch kernels an int8/int4 table is read with) are
  allowed for the same reason: XNNPACK has no gather kernel, and the lookup is a row copy with one
  multiply per value, not compute worth delegating.
* ``ort-mobile-operators`` (ONNX Runtime Mobile): every op must be in the operator set of the ORT
  mobile package (``MOBILE_PACKAGE_OPS`` below). A custom build can include other ops through the
  model's ``required_operators.config``, but staying inside this set keeps the prebuilt package usable.
* ``tflite-builtin-only`` (LiteRT): custom ops and Flex (TensorFlow) ops are violations: they need a
  custom or TF-select runtime the app does not ship.
* ``any``: nothing is a violation.

A new policy is one function decorated with ``@register_op_policy(NAME, RUNTIME...)`` below (or in a
plugin); profiles name it in ``[ops] policy`` and a runtime's spec names its default.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from edge_kd.registry import Registry

# Operators of the ONNX Runtime Mobile package (domain -> op types), from onnxruntime's
# tools/ci_build/github/android/mobile_package.required_operators.config (MIT licence). The opset
# version is not checked: ORT registers kernels for every version of these ops that it supports.
_MOBILE_AI_ONNX = (
    "Abs,Add,And,ArgMax,ArgMin,AveragePool,Cast,Ceil,Clip,Concat,ConstantOfShape,Conv,ConvTranspose,Cos,CumSum,"
    "DepthToSpace,DequantizeLinear,Div,DynamicQuantizeLinear,Elu,Equal,Exp,Expand,Flatten,Floor,Gather,GatherND,"
    "Gemm,Greater,GreaterOrEqual,Identity,If,LRN,LeakyRelu,Less,LessOrEqual,Log,LogSoftmax,Loop,MatMul,Max,MaxPool,"
    "Mean,Min,Mul,Neg,NonMaxSuppression,NonZero,Not,Or,PRelu,Pad,Pow,QuantizeLinear,Range,Reciprocal,ReduceMax,"
    "ReduceMean,ReduceMin,ReduceProd,ReduceSum,Relu,Reshape,Resize,ReverseSequence,Round,ScatterND,Shape,Sigmoid,"
    "Sin,Size,Slice,Softmax,SpaceToDepth,Split,Sqrt,Squeeze,Sub,Sum,Tanh,ThresholdedRelu,Tile,TopK,Transpose,"
    "Unique,Unsqueeze,Where,Erf,GlobalAveragePool,InstanceNormalization,MatMulInteger,QLinearConv,QLinearMatMul,"
    "Scan,LayerNormalization,"
    # ONNX opset 20 standardised the contrib Gelu that the package has (com.microsoft::Gelu); the
    # dynamo exporter emits the standard one.
    "Gelu"
)
_MOBILE_MS = (
    "BiasGelu,DynamicQuantizeMatMul,FusedConv,FusedGemm,FusedMatMul,Gelu,MatMulIntegerToFloat,NhwcMaxPool,"
    "QLinearAdd,QLinearAveragePool,QLinearConv,QLinearGlobalAveragePool,QLinearMul,QLinearSigmoid,"
    "SkipLayerNormalization,QLinearLeakyRelu"
)
MOBILE_PACKAGE_OPS: dict[str, frozenset[str]] = {
    "ai.onnx": frozenset(_MOBILE_AI_ONNX.split(",")),
    "com.microsoft": frozenset(_MOBILE_MS.split(",")),
}

#: ExecuTorch ops that only shuffle metadata or scalars: not compute, allowed outside the delegate.
_ET_BOOKKEEPING_PREFIXES = ("executorch_prim::", "aten::sym_size", "aten::sym_numel", "aten::_assert")
#: Non-delegated ExecuTorch ops that are allowed under xnnpack-full-delegation (no arithmetic; XNNPACK
#: has no kernel for them). Matched on the op name before the overload (``aten::embedding`` etc.).
ET_ALLOWED_OUTSIDE_DELEGATE = frozenset({
    "aten::embedding", "aten::arange", "aten::full", "aten::full_like", "aten::zeros", "aten::ones",
    "aten::scalar_tensor", "aten::view_copy", "aten::expand_copy", "aten::squeeze_copy", "aten::unsqueeze_copy",
    "aten::select_copy", "aten::slice_copy", "aten::alias_copy", "aten::permute_copy", "aten::clone",
    "dim_order_ops::_to_dim_order_copy", "dim_order_ops::_clone_dim_order",
    "quantized_decomposed::embedding_byte", "quantized_decomposed::embedding_4bit",
})
#: The pseudo-op under which delegate calls are counted in the ExecuTorch op list.
ET_DELEGATE_OP = "executorch_call_delegate"


def ort_op_key(domain: str, op_type: str) -> str:
    """``Conv`` for the default ONNX domain, ``com.microsoft::FusedConv`` for others."""
    domain = domain or "ai.onnx"
    return op_type if domain == "ai.onnx" else f"{domain}::{op_type}"


@dataclass(frozen=True)
class OpPolicySpec:
    """A named operator policy: ``check`` returns the offending operator names of an artifact's op
    counts. ``runtimes``: whose operator names it reads (an artifact of another runtime satisfies none
    of it); empty for a policy that applies to every runtime."""

    name: str
    runtimes: tuple[str, ...]
    check: Callable[[dict[str, int]], list[str]]


OP_POLICIES: Registry[OpPolicySpec] = Registry("op policy")


def register_op_policy(name: str, *runtimes: str) -> Callable[[Callable], Callable]:
    """Decorator: register ``fn(operators) -> offending names`` as the policy ``name`` for ``runtimes``."""
    def decorator(fn: Callable[[dict[str, int]], list[str]]) -> Callable[[dict[str, int]], list[str]]:
        OP_POLICIES.add(name, OpPolicySpec(name, tuple(runtimes), fn))
        return fn

    return decorator


def default_policy(runtime: str) -> str:
    """The policy a runtime is checked against when the caller names none (its registry entry's)."""
    from edge_kd.runtimes.registry import runtime_spec

    return runtime_spec(runtime).op_policy


@register_op_policy("any")
def _any(operators: dict[str, int]) -> list[str]:
    return []


@register_op_policy("xnnpack-full-delegation", "executorch")
def _xnnpack_full_delegation(operators: dict[str, int]) -> list[str]:
    return [op for op in operators
            if not op.startswith(ET_DELEGATE_OP) and not op.startswith(_ET_BOOKKEEPING_PREFIXES)
            and op.split(".")[0] not in ET_ALLOWED_OUTSIDE_DELEGATE]


@register_op_policy("ort-mobile-operators", "onnxruntime")
def _ort_mobile_operators(operators: dict[str, int]) -> list[str]:
    bad = []
    for key in operators:
        domain, sep, op_type = key.rpartition("::")
        allowed = MOBILE_PACKAGE_OPS.get(domain if sep else "ai.onnx", frozenset())
        if op_type not in allowed:
            bad.append(key)
    return bad


@register_op_policy("tflite-builtin-only", "litert")
def _tflite_builtin_only(operators: dict[str, int]) -> list[str]:
    return [op for op in operators if op.startswith(("CUSTOM", "FLEX", "Flex"))]


def violations(policy: str, runtime: str, operators: dict[str, int]) -> list[str]:
    """Operator names in ``operators`` that break ``policy`` (sorted, unique)."""
    if policy not in OP_POLICIES:
        raise ValueError(f"unknown op policy {policy!r}")
    spec = OP_POLICIES.get(policy)
    if spec.runtimes and runtime not in spec.runtimes:
        return sorted(operators)  # a policy for another runtime: nothing in this artifact satisfies it
    return sorted(set(spec.check(operators)))


def ops_record(policy: str, runtime: str, operators: Iterable[str] | dict[str, int], *,
               delegated: int | None = None, not_delegated: int | None = None,
               **extra: Any) -> dict[str, Any]:
    """The ``ops`` dict recorded in build.json: what the gate checks against the profile's policy."""
    counts = dict(operators) if isinstance(operators, dict) else dict(Counter(operators))
    counts = dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
    return {"policy": policy, "operators": counts, "delegated": delegated, "not_delegated": not_delegated,
            "violations": violations(policy, runtime, counts), **extra}
