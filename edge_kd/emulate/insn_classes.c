/*
 * edge_kd TCG plugin for qemu-user (aarch64 guests): counts the instructions executed inside marked
 * regions, by kind, decoded from the A64 encoding.
 *
 * Why the encoding and not the disassembler: qemu 7.2's capstone prints dot-product and i8mm
 * instructions (sdot, udot, usdot, smmla, ...) as ".byte", and string matching per executed
 * instruction would be slow. Each translated block is decoded once; executing it adds its per-kind
 * counts through one callback per executed block, which adds them only for the guest thread that
 * opened the region: runtimes start idle helper threads (ONNX Runtime starts four at import) and
 * their instructions must not race into the inference's counts.
 *
 * Regions: the guest calls syscall(MARK_NR, MARK_COOKIE, 1) to open and syscall(MARK_NR,
 * MARK_COOKIE, 0) to close one (the kernel and qemu answer ENOSYS; nothing else happens). Counts
 * between the two are stored per region, so the host can subtract an empty region (the marker's own
 * cost) and check that repeated inferences execute the same instructions.
 *
 * Output (argument out=PATH), written at exit, one JSON object:
 *   {"kinds": [names...], "vcpus": N, "regions": [[count per kind...], ...], "other_threads": [...]}
 * "other_threads" is what other guest threads executed during each region (approximate: they race);
 * the host reports it so a runtime that parallelizes despite threads = 1 is visible.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <qemu-plugin.h>

QEMU_PLUGIN_EXPORT int qemu_plugin_version = QEMU_PLUGIN_VERSION;

#define MARK_NR 0x4544            /* unused by Linux on arm64 (its numbers stay below 1024) */
#define MARK_COOKIE 0x65646765u   /* "edge": other programs' stray syscalls never match */
#define MAX_REGIONS 256

enum kind {
    K_SCALAR, K_BRANCH, K_LOAD, K_STORE, K_VLOAD, K_VSTORE,
    K_FMLA, K_FMLA_IDX, K_FMADD, K_FMLAL,
    K_SDOT, K_UDOT, K_USDOT, K_SMMLA, K_UMMLA, K_USMMLA,
    K_INT_MLA, K_INT_MLAL, K_INT_MULL, K_INT_MUL, K_ADALP,
    K_SIMD_OTHER, K_SVE, K_SME, K_UNALLOCATED,
    NKINDS
};

static const char *kind_names[NKINDS] = {
    "scalar", "branch", "load", "store", "vload", "vstore",
    "fmla", "fmla_idx", "fmadd", "fmlal",
    "sdot", "udot", "usdot", "smmla", "ummla", "usmmla",
    "int_mla", "int_mlal", "int_mull", "int_mul", "adalp",
    "simd_other", "sve", "sme", "unallocated",
};

static uint64_t current[NKINDS];
static uint64_t other;
static uint64_t regions[MAX_REGIONS][NKINDS];
static uint64_t others[MAX_REGIONS];
static int n_regions;
static volatile int in_region;
static int owner = -1;
static int n_vcpus;
static char *out_path;

/* Advanced SIMD and floating point (op0 = x111). */
static enum kind classify_simd(uint32_t i)
{
    unsigned u = (i >> 29) & 1, size = (i >> 22) & 3, q = (i >> 30) & 1;

    if ((i & 0xFF000000u) == 0x1F000000u) {             /* FP data-processing (3 source) */
        return K_FMADD;                                  /* fmadd fmsub fnmadd fnmsub */
    }
    if ((i & 0x9F200400u) == 0x0E200400u) {             /* three same */
        unsigned op = (i >> 11) & 0x1F;
        if (op == 0x19 && !u) return K_FMLA;             /* fmla / fmls (vector) */
        if ((op == 0x1D && !u && !(i & (1u << 22))) ||
            (op == 0x19 && u && !(i & (1u << 22)))) return K_FMLAL;   /* fmlal(2) / fmlsl(2) */
        if (op == 0x12) return K_INT_MLA;                /* mla / mls */
        if (op == 0x13 && !u) return K_INT_MUL;          /* mul */
        return K_SIMD_OTHER;
    }
    if ((i & 0x9F60C400u) == 0x0E400400u) {             /* three same (fp16) */
        if (!u && ((i >> 11) & 7) == 1) return K_FMLA;  /* fmla / fmls (half precision) */
        return K_SIMD_OTHER;
    }
    if ((i & 0x9F208400u) == 0x0E008400u) {             /* three same extra */
        unsigned op = (i >> 11) & 0xF;
        if (size == 2) {
            if (op == 2) return u ? K_UDOT : K_SDOT;
            if (op == 3 && !u) return K_USDOT;
            if (op == 4 && q) return u ? K_UMMLA : K_SMMLA;
            if (op == 5 && !u && q) return K_USMMLA;
        }
        return K_SIMD_OTHER;                             /* sqrdmlah, fcmla, bf16 forms */
    }
    if ((i & 0x9F000400u) == 0x0F000000u) {             /* vector x indexed element */
        unsigned op = (i >> 12) & 0xF;
        if (!u) {
            if ((op == 1 || op == 5) && size != 1) return K_FMLA_IDX;
            if ((op == 0 || op == 4) && size == 2) return K_FMLAL;
            if (op == 2 || op == 6 || op == 3 || op == 7) return K_INT_MLAL;   /* smlal smlsl sqdmlal sqdmlsl */
            if (op == 8) return K_INT_MUL;
            if (op == 10 || op == 11) return K_INT_MULL;                        /* smull sqdmull */
            if (op == 14 && size == 2) return K_SDOT;
            if (op == 15 && (size == 0 || size == 2)) return K_USDOT;           /* sudot / usdot */
        } else {
            if (op == 0 || op == 4) return K_INT_MLA;
            if (op == 2 || op == 6) return K_INT_MLAL;                          /* umlal umlsl */
            if (op == 10) return K_INT_MULL;                                    /* umull */
            if ((op == 8 || op == 12) && size == 2) return K_FMLAL;             /* fmlal2 fmlsl2 */
            if (op == 14 && size == 2) return K_UDOT;
        }
        return K_SIMD_OTHER;
    }
    if ((i & 0xDF000400u) == 0x5F000000u) {             /* scalar x indexed element */
        unsigned op = (i >> 12) & 0xF;
        if (!u && (op == 1 || op == 5) && size != 1) return K_FMLA_IDX;
        return K_SIMD_OTHER;
    }
    if ((i & 0x9F200C00u) == 0x0E200000u) {             /* three different */
        unsigned op = (i >> 12) & 0xF;
        if (op >= 8 && op <= 11) return K_INT_MLAL;      /* s/umlal s/umlsl sqdmlal sqdmlsl */
        if (op == 12 || op == 13) return K_INT_MULL;     /* s/umull sqdmull */
        return K_SIMD_OTHER;
    }
    if ((i & 0x9F3E0C00u) == 0x0E200800u) {             /* two-register miscellaneous */
        if (((i >> 12) & 0x1F) == 6) return K_ADALP;     /* sadalp / uadalp */
        return K_SIMD_OTHER;
    }
    return K_SIMD_OTHER;
}

static enum kind classify(uint32_t i)
{
    unsigned op0 = (i >> 25) & 0xF;

    if (op0 == 0) return (i >> 31) ? K_SME : K_UNALLOCATED;
    if (op0 == 2) return K_SVE;
    if (op0 == 1 || op0 == 3) return K_UNALLOCATED;
    if ((op0 & 0xE) == 0x8) return K_SCALAR;            /* data processing, immediate */
    if ((op0 & 0xE) == 0xA) return K_BRANCH;            /* branches, exceptions, system */
    if ((op0 & 0x5) == 0x4) {                           /* loads and stores */
        int simd = (i >> 26) & 1;
        int load = (i >> 22) & 1;
        if (((i >> 27) & 7) == 3 && ((i >> 24) & 3) == 0) load = 1;   /* load register (literal) */
        if (simd) return load ? K_VLOAD : K_VSTORE;
        return load ? K_LOAD : K_STORE;
    }
    if ((op0 & 0x7) == 0x5) return K_SCALAR;            /* data processing, register */
    return classify_simd(i);                             /* op0 = x111 */
}

/* One translated block: its non-zero kind counts, decoded once. Never freed: qemu keeps calling
 * into it for as long as the block may run, and blocks are few (thousands). */
struct tb_counts {
    uint64_t total;
    uint32_t n;
    uint8_t kind[NKINDS];
    uint32_t count[NKINDS];
};

static void tb_exec(unsigned int vcpu, void *udata)
{
    const struct tb_counts *t = udata;

    if (!in_region) {
        return;
    }
    if ((int)vcpu != owner) {
        other += t->total;   /* informational only: other threads race on it */
        return;
    }
    for (uint32_t j = 0; j < t->n; j++) {
        current[t->kind[j]] += t->count[j];
    }
}

static void tb_trans(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    uint32_t counts[NKINDS] = {0};
    size_t n = qemu_plugin_tb_n_insns(tb);
    struct tb_counts *t = calloc(1, sizeof(*t));

    for (size_t j = 0; j < n; j++) {
        struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, j);
        uint32_t word = 0;
        if (qemu_plugin_insn_size(insn) == 4) {
            memcpy(&word, qemu_plugin_insn_data(insn), 4);   /* A64 is little-endian on Linux */
        }
        counts[classify(word)]++;
    }
    for (int k = 0; k < NKINDS; k++) {
        if (counts[k]) {
            t->kind[t->n] = (uint8_t)k;
            t->count[t->n++] = counts[k];
            t->total += counts[k];
        }
    }
    qemu_plugin_register_vcpu_tb_exec_cb(tb, tb_exec, QEMU_PLUGIN_CB_NO_REGS, t);
}

static void on_syscall(qemu_plugin_id_t id, unsigned int vcpu, int64_t num, uint64_t a1, uint64_t a2,
                       uint64_t a3, uint64_t a4, uint64_t a5, uint64_t a6, uint64_t a7, uint64_t a8)
{
    if (num != MARK_NR || a1 != MARK_COOKIE) {
        return;
    }
    if (a2 == 1) {
        memset(current, 0, sizeof(current));
        other = 0;
        owner = (int)vcpu;
        in_region = 1;
    } else if (a2 == 0 && in_region && (int)vcpu == owner) {
        in_region = 0;
        if (n_regions < MAX_REGIONS) {
            memcpy(regions[n_regions], current, sizeof(current));
            others[n_regions] = other;
        }
        n_regions++;
    }
}

static void on_vcpu_init(qemu_plugin_id_t id, unsigned int vcpu)
{
    n_vcpus++;
}

static void write_results(qemu_plugin_id_t id, void *p)
{
    FILE *f = fopen(out_path, "w");
    if (!f) {
        return;
    }
    fprintf(f, "{\"kinds\": [");
    for (int k = 0; k < NKINDS; k++) {
        fprintf(f, "%s\"%s\"", k ? ", " : "", kind_names[k]);
    }
    fprintf(f, "], \"vcpus\": %d, \"dropped_regions\": %d, \"regions\": [",
            n_vcpus, n_regions > MAX_REGIONS ? n_regions - MAX_REGIONS : 0);
    for (int r = 0; r < n_regions && r < MAX_REGIONS; r++) {
        fprintf(f, "%s[", r ? ", " : "");
        for (int k = 0; k < NKINDS; k++) {
            fprintf(f, "%s%" PRIu64, k ? ", " : "", regions[r][k]);
        }
        fprintf(f, "]");
    }
    fprintf(f, "], \"other_threads\": [");
    for (int r = 0; r < n_regions && r < MAX_REGIONS; r++) {
        fprintf(f, "%s%" PRIu64, r ? ", " : "", others[r]);
    }
    fprintf(f, "]}\n");
    fclose(f);
}

QEMU_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc, char **argv)
{
    for (int i = 0; i < argc; i++) {
        if (strncmp(argv[i], "out=", 4) == 0) {
            out_path = strdup(argv[i] + 4);
        }
    }
    if (!out_path) {
        fprintf(stderr, "edge_kd plugin: needs out=PATH\n");
        return -1;
    }
    qemu_plugin_register_vcpu_init_cb(id, on_vcpu_init);
    qemu_plugin_register_vcpu_tb_trans_cb(id, tb_trans);
    qemu_plugin_register_vcpu_syscall_cb(id, on_syscall);
    qemu_plugin_register_atexit_cb(id, write_results, NULL);
    return 0;
}
