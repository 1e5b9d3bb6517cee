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

_A76_CHECK = ("cross-checked against the A75 vs A76 execution throughput table of Arm's A76 disclosure "
              "(AnandTech, 'Arm Cortex-A76 CPU unveiled', 2018-05-31, page 3: integer arithmetic 3/cycle, loads 2, "
              "stores 2) and against slothy's Cortex-A76 model (derived from the guide's version 10.0: Q-form "
              "ASIMD integer MUL/MLA 1/2 per cycle on V0, one Q-form ASIMD store per cycle)")
_A75_VS_A76 = ("Arm Cortex-A76 disclosure, A75 vs A76 'Backend execution throughput and latency' table (AnandTech, "
               "'Arm Cortex-A76 CPU unveiled', 2018-05-31, page 3): A75 integer arithmetic/move/shift 2 per cycle "
               "(A76: 3), loads 2, stores 2, FP arithmetic 2; and the A76's two 128-bit ASIMD pipes 'double the "
               "bandwidth' of the A75's (same source), so Q-form ASIMD throughputs are half the A76 guide's rows. "
               "Arm has published no Cortex-A75 Software Optimization Guide.")
_A75_CLOCK = ("clock: Snapdragon 670 (Pixel 3a) Kryo 360 Gold at 2.0 GHz; the Pixel 3's Snapdragon 845 runs its "
              "Kryo 385 Gold cores at 2.5 GHz (PHONES)")

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
            "int_mla": 2.0, "int_mul": 2.0,       # ASIMD integer multiply (accumulate), Q-form: 1/2 per cycle (V0)
            "adalp": 1.0,                         # ASIMD pairwise add and accumulate long: 1/cycle (V1)
            "load": 0.5, "vload": 0.5,            # load register / ASIMD load 1 register: 2/cycle (L0, L1)
            "store": 0.5,                         # store register, immediate offset: 2/cycle (L0, L1)
            "vstore": 1.0,                        # ASIMD store 1 register, Q-form: 1/cycle
            "branch": 1.0,                        # branch: 1/cycle (B)
            "scalar": 1 / 3,                      # ALU basic: 3/cycle (I0, I1, I2)
        },
        class_cycles={"fp_fma": 0.5, "int8_dot": 0.5, "int_mac": 1.0, "simd_other": 0.5, "sve_sme": 0.5,
                      "load_store": 0.5, "scalar": 1 / 3},
        cpuinfo_features=("fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc "
                          "dcpop asimddp"),
        cpuinfo_part="0xd0b",
        cpuinfo_variant="0x4",
        sources=(_A76_SOG, _A76_CHECK, _A76_CLOCK),
    ),
    # Arm published no Software Optimization Guide for the Cortex-A75. Its figures come from Arm's A75 vs
    # A76 comparison (integer, load/store) and from the A76 launch's "two 128-bit ASIMD pipes, double the
    # A75's vector bandwidth": every Q-form ASIMD instruction issues at half the A76 rate. The ISA is the
    # A76's (Armv8.2 with fp16, dot product, RCpc), so qemu's cortex-a76 runs the same kernels; the guest's
    # part number (0xd0a) makes the runtimes' uarch tables pick their Cortex-A75 kernels, as on the phone.
    "cortex-a75": CoreModel(
        name="cortex-a75",
        qemu_cpu="cortex-a76",
        description="Arm Cortex-A75 big core (Snapdragon 845 Kryo 385 Gold: Pixel 3; Snapdragon 670/710 Kryo 360 "
                    "Gold: Pixel 3a; Exynos 9820 middle cores)",
        clock_ghz=2.0,
        kind_cycles={
            "fmla": 1.0, "fmla_idx": 1.0,         # ASIMD FP multiply accumulate, Q-form: half the A76's 2/cycle
            "fmadd": 0.5, "fmlal": 1.0,           # scalar FP MAC: 'FP arithmetic' 2/cycle on both cores
            "sdot": 1.0, "udot": 1.0, "usdot": 1.0,   # ASIMD dot product, Q-form: half the A76's 2/cycle
            "int_mlal": 2.0, "int_mull": 2.0,     # ASIMD multiply (accumulate) long: half the A76's 1/cycle (V0)
            "int_mla": 4.0, "int_mul": 4.0,       # ASIMD integer multiply, Q-form: half the A76's 1/2 per cycle
            "adalp": 2.0,                         # ASIMD pairwise add and accumulate long: half the A76's 1/cycle
            "load": 0.5, "vload": 0.5,            # load instructions: 2/cycle (A75 column of the comparison)
            "store": 0.5,                         # store instructions: 2/cycle (A75 column)
            "vstore": 2.0,                        # ASIMD store 1 register, Q-form: half the A76's 1/cycle
            "branch": 1.0,                        # branch: 1/cycle
            "scalar": 0.5,                        # integer arithmetic / move / shift: 2/cycle (A75 column)
        },
        class_cycles={"fp_fma": 1.0, "int8_dot": 1.0, "int_mac": 2.0, "simd_other": 1.0, "sve_sme": 1.0,
                      "load_store": 0.5, "scalar": 0.5},
        cpuinfo_features=("fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc "
                          "dcpop asimddp"),
        cpuinfo_part="0xd0a",
        cpuinfo_variant="0x2",
        sources=(_A75_VS_A76, _A76_SOG, _A75_CLOCK),
    ),
}

#: Phones with published single-thread latencies: their big core and its clock. The estimate for a phone
#: is the core model's cycles at the phone's clock (the cycle counts do not depend on the clock).
PHONES: dict[str, tuple[str, float, str]] = {
    "Pixel 3": ("cortex-a75", 2.5, "Google Pixel 3 hardware tech specs: Snapdragon 845, 2.5 GHz + 1.6 GHz "
                                   "64-bit octa-core (the Kryo 385 Gold cores are Cortex-A75 based)"),
    "Pixel 3a": ("cortex-a75", 2.0, "Google Pixel 3a hardware tech specs: Snapdragon 670, 2.0 GHz + 1.7 GHz "
                                    "64-bit octa-core (the Kryo 360 Gold cores are Cortex-A75 based)"),
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
