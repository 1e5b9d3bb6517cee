"""benchmarks/emulate.py renders a row whose teacher has no runtime artifact (gradient-boosted trees)."""


def _arm(insn: int, ms: float) -> dict:
    classes = {"fp_fma": insn // 4, "int8_dot": insn // 8, "int_mac": 0}
    return {"instructions": insn, "classes": classes, "estimate_ms": ms}


def test_rows_with_and_without_a_teacher_artifact(benchmark_script):
    emulate = benchmark_script("emulate")
    with_teacher = {"example": "next_purchase_online_retail", "target": "ort-mobile", "teacher_artifact": "teacher.ort",
                    "student_artifact": "model.fp32.ort", "teacher_arm": _arm(4_000_000, 1.0),
                    "student_arm": _arm(400_000, 0.1), "arm_speedup": 10.0, "arm_insn_ratio": 10.0,
                    "teacher_host_p50_ms": 0.5, "student_host_p50_ms": 0.02, "host_speedup": 25.0}
    trees = {"example": "demand_online_retail", "target": "ort-mobile", "teacher_artifact": None,
             "student_artifact": "model.fp32.ort", "teacher_arm": None, "student_arm": _arm(80_000, 0.01),
             "arm_speedup": None, "arm_insn_ratio": None, "teacher_host_p50_ms": None, "student_host_p50_ms": 0.008,
             "host_speedup": None}
    text = emulate._markdown([with_teacher, trees], ["demand_online_retail: built and emulated in 9 s"],
                             {"qemu": "qemu 7.2", "pins": {}})
    assert "| next_purchase_online_retail | ort-mobile | teacher.ort / model.fp32.ort | 4.000 (25% / 12%) |" in text
    line = next(l for l in text.splitlines() if l.startswith("| demand_online_retail"))
    assert "(no teacher artifact) / model.fp32.ort | n/a | 0.080" in line and line.endswith("| n/a |")
