"""Instruction classes and the per-core cost model that turns emulated instruction counts into an
estimated phone latency.

The qemu plugin (``insn_classes.c``) counts fine-grained *kinds* decoded from the A64 encoding;
``KIND_CLASS`` folds them into the classes reported everywhere:

    fp_fma      fp32/fp16 multiply-add: fmla/fmls (vector, by element), fmadd/fmsub, fmlal
    int8_dot    int8 dot product / matrix multiply: sdot, udot, usdot/sudot, smmla, ummla, usmmla
    int_mac     integer multiply(-accumulate) of int8 kernels without dot product: mla, mul,
                smlal/umlal (widening), smull/umull, sadalp/uadalp
    simd_other  every other Advanced SIMD / FP instruction (adds, shuffles, conversions, requantization)
    sve_sme     SVE or SME instructions (none on the cores below; reported so a wrong -cpu is visible)
    load_store  loads and stores, scalar and vector
    scalar      integer data processing and branches

Estimated cycles are ``sum(count[c] * cycles_per_insn[c])`` with ``cycles_per_insn`` the reciprocal
of the core's sustained issue throughput for that class (from the vendor's Software Optimization
Guide); latency = cycles / clock. This is an issue-throughput model: it ignores cache and memory
stalls, dependency chains and the overlap of different pipelines (the last makes it pessimistic,
the first two optimistic). Read it as a ranking and a ratio tool (int8 vs fp32, student vs teacher),
not as a measured latency.

This module is pure data (no heavy imports): the profile loader validates core names against it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

#: Classes in report order.
CLASSES = ("fp_fma", "int8_dot", "int_mac", "simd_other", "sve_sme", "load_store", "scalar")

#: Plugin kind -> class. Must name every kind the plugin reports (a test checks it).
KIND_CLASS: dict[str, str] = {
    "scalar": "scalar", "branch": "scalar", "unallocated": "scalar",
    "load": "load_store", "store": "load_store", "vload": "load_store", "vstore": "load_store",
    "fmla": "fp_fma", "fmla_idx": "fp_fma", "fmadd": "fp_fma", "fmlal": "fp_fma",
    "sdot": "int8_dot", "udot": "int8_dot", "usdot": "int8_dot",
    "smmla": "int8_dot", "ummla": "int8_dot", "usmmla": "int8_dot",
    "int_mla": "int_mac", "int_mlal": "int_mac", "int_mull": "int_mac", "int_mul": "int_mac", "adalp": "int_mac",
    "simd_other": "simd_other", "sve": "sve_sme", "sme": "sve_sme",
}


@dataclass(frozen=True)
class CoreModel:
    """One emulated phone core: what qemu emulates, what the guest's /proc/cpuinfo says, and the cost model."""

    name: str
    qemu_cpu: str
    description: str
    clock_ghz: float
    #: Cycles per instruction of each kind (reciprocal issue throughput); kinds not listed use their class's.
    kind_cycles: dict[str, float]
    class_cycles: dict[str, float]
    #: /proc/cpuinfo fields of the emulated core (runtimes pick kernels from HWCAPs and the part number).
    cpuinfo_features: str
    cpuinfo_part: str
    cpuinfo_variant: str
    sources: tuple[str, ...] = field(default=())

    def cycles_per_insn(self, kind: str) -> float:
        return self.kind_cycles.get(kind, self.class_cycles[KIND_CLASS[kind]])


_A76_SOG = ("Arm Cortex-A76 Software Optimization Guide, PJDOC-466751330-7215, version 8.0 (2019), section 3 "
            "'Instruction characteristics': cycles per instruction = 1 / 'Exec throughput' of the row named "
            "beside each constant in edge_kd/emulate/cost.py")
_A76_CLOCK = ("Qualcomm Snapdragon 855 product brief: Kryo 485 'performance' cores (Cortex-A76 based) at "
              "2.42 GHz (the prime core runs at 2.84 GHz)")

CORES: dict[str, CoreModel] = {
    "cortex-a76": CoreModel(
        name="cortex-a76",
        qemu_cpu="cortex-a76",
        description="Arm Cortex-A76 big core (Snapdragon 855/860 performance cores, Kirin 980/990, Dimensity 1000)",
        clock_ghz=2.42,
        kind_cycles={
            "fmla": 0.5, "fmla_idx": 0.5,         # ASIMD FP multiply accumulate: 2/cycle (V0, V1)
            "fmadd": 0.5, "fmlal": 0.5,           # FP multiply accumulate (scalar) / ASIMD FP16 widening MLA
            "sdot": 0.5, "udot": 0.5, "usdot": 0.5,   # ASIMD dot product: 2/cycle (V0, V1)
            "int_mlal": 1.0, "int_mull": 1.0,     # ASIMD multiply (accumulate) long: 1/cycle (V0)
            "int_mla": 1.0, "int_mul": 1.0,       # ASIMD integer multiply (accumulate): 1/cycle (V0)
            "adalp": 1.0,                         # ASIMD pairwise add and accumulate long: 1/cycle (V1)
            "load": 0.5, "vload": 0.5,            # load register / ASIMD load 1 register: 2/cycle (L0, L1)
            "store": 1.0, "vstore": 1.0,          # store register / ASIMD store 1 register: 1/cycle
            "branch": 1.0,                        # branch: 1/cycle (B)
            "scalar": 1 / 3,                      # ALU basic: 3/cycle (I0, I1, I2)
        },
        class_cycles={"fp_fma": 0.5, "int8_dot": 0.5, "int_mac": 1.0, "simd_other": 0.5, "sve_sme": 0.5,
                      "load_store": 0.5, "scalar": 1 / 3},
        cpuinfo_features=("fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc "
                          "dcpop asimddp"),
        cpuinfo_part="0xd0b",
        cpuinfo_variant="0x4",
        sources=(_A76_SOG, _A76_CLOCK),
    ),
}


def core_model(name: str) -> CoreModel:
    """The model of an emulated core by name; ValueError listing the known ones otherwise."""
    try:
        return CORES[name]
    except KeyError:
        raise ValueError(f"unknown emulated core {name!r}; known: {', '.join(sorted(CORES))}") from None


def class_histogram(kinds: dict[str, float]) -> dict[str, float]:
    """Kind counts -> class counts (every class present, in CLASSES order)."""
    out = {c: 0.0 for c in CLASSES}
    for kind, n in kinds.items():
        out[KIND_CLASS[kind]] += n
    return out


def estimate(kinds: dict[str, float], core: CoreModel) -> dict[str, float]:
    """Estimated cycles and milliseconds of one inference from its per-kind instruction counts."""
    cycles = sum(n * core.cycles_per_insn(kind) for kind, n in kinds.items())
    return {"cycles": cycles, "ms": cycles / (core.clock_ghz * 1e6), "clock_ghz": core.clock_ghz}
