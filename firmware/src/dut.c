/* The EEMBC / MLPerf Tiny DUT protocol (performance mode) over the board's UART.
 * Commands end with '%'; replies are lines ending "\r\n"; every command ends "m-ready".
 * Extensions the harness uses, answered "e-[Unknown command: ...]" by other firmware:
 *   qresults%  -> m-qresults-[q0,q1,...]  the raw int8 outputs (for bit-exact checks)
 *   mem%       -> m-stack-used-N, m-stack-size-N, m-arena-bytes-N
 *   version%   -> m-fw-[FW_VERSION]
 *   opprof N%  -> per-operator CPU cycles over N inferences of the loaded input:
 *                 m-opprof-start-N, m-opprof-hz-<cycles per s>, m-opprof-probe-<cycles of N
 *                 empty timed regions>, m-opprof-total-<cycles of N whole inferences>,
 *                 m-opprof-op-<i>-<TFLite op type>-<cycles of N runs of op i> per operator,
 *                 m-opprof-pass-<cycles of the profiled inferences>, m-opprof-done
 *   peak N%    -> the engine's conv inner kernel over a fixed buffer, N passes:
 *                 m-peak-macs-<MACs>, m-peak-cycles-<cycles>, m-peak-hz-<cycles per s> */
#include <stdint.h>
#include <string.h>

#include "board.h"
#include "engine.h"
#include "model.h"  /* ARENA_BYTES, INPUT_BYTES: generated with the model */

#ifndef FW_VERSION
#define FW_VERSION "dev"
#endif
#define CMD_SIZE 80

static int8_t arena[ARENA_BYTES] __attribute__((aligned(8)));
static uint8_t db[INPUT_BYTES];
static uint32_t db_size, db_pos;

extern uint32_t _stack_bottom, _estack;  /* from the linker script */
#define STACK_PAINT 0xA5A5A5A5u

/* ---------------------------------------------------------------- output */

static void put(const char *s) { while (*s) board_putc(*s++); }

static void put_u64(uint64_t v)
{
    char buf[21];
    int i = 20;
    buf[i] = 0;
    do { buf[--i] = (char)('0' + v % 10); v /= 10; } while (v);
    put(buf + i);
}

static void put_i32(int32_t v)
{
    if (v < 0) { board_putc('-'); put_u64((uint64_t)(-(int64_t)v)); }
    else put_u64((uint64_t)v);
}

static void line(const char *s) { put(s); put("\r\n"); }

static void lap(void) { put("m-lap-us-"); put_u64(board_time_us()); put("\r\n"); }

/* %0.3f of a dequantized output, without pulling in printf */
static void put_fixed3(float f)
{
    int64_t milli = (int64_t)(f * 1000.0f + (f < 0 ? -0.5f : 0.5f));
    if (milli < 0) { board_putc('-'); milli = -milli; }
    put_u64((uint64_t)(milli / 1000));
    board_putc('.');
    int frac = (int)(milli % 1000);
    board_putc((char)('0' + frac / 100)); board_putc((char)('0' + frac / 10 % 10)); board_putc((char)('0' + frac % 10));
}

static void results(int raw)
{
    const int8_t *out = arena + eng_model.output;
    put(raw ? "m-qresults-[" : "m-results-[");
    for (uint32_t i = 0; i < eng_model.output_bytes; i++) {
        if (i) board_putc(',');
        if (raw) put_i32(out[i]);
        else put_fixed3((float)(out[i] - eng_model.output_zp) * eng_model.output_scale);
    }
    line("]");
}

/* ---------------------------------------------------------------- commands */

static int parse_u32(const char *s, uint32_t *v)
{
    uint32_t x = 0;
    if (!*s) return 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || x > 429496728u) return 0;
        x = x * 10 + (uint32_t)(*s - '0');
    }
    *v = x;
    return 1;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static void cmd_db(char *arg)
{
    if (strncmp(arg, "load ", 5) == 0) {
        uint32_t n;
        if (!parse_u32(arg + 5, &n) || n == 0) { line("e-[Command 'db load' requires the # of bytes]"); return; }
        if (n > eng_model.input_bytes) {
            put("e-[Supplied buffer size "); put_u64(n); put(" exceeds maximum of "); put_u64(eng_model.input_bytes); line("]");
            return;
        }
        db_size = n; db_pos = 0;
        put("m-[Expecting "); put_u64(n); line(" bytes]");
        return;
    }
    if (strcmp(arg, "print") == 0) {
        for (uint32_t i = 0; i < db_pos; i += 8) {
            put("m-buffer");
            for (uint32_t j = i; j < i + 8 && j < db_pos; j++) {
                static const char hx[] = "0123456789abcdef";
                board_putc('-'); board_putc(hx[db[j] >> 4]); board_putc(hx[db[j] & 15]);
            }
            put("\r\n");
        }
        return;
    }
    size_t n = strlen(arg);
    if (n & 1) { line("e-[Insufficent number of hex digits]"); return; }  /* sic, as EEMBC */
    if (db_pos >= db_size) { line("e-[No db load in progress]"); return; }
    for (size_t i = 0; i < n; i += 2) {
        int hi = hexval(arg[i]), lo = hexval(arg[i + 1]);
        if (hi < 0 || lo < 0) { put("e-[Invalid hex digit '"); board_putc(arg[i]); board_putc(arg[i + 1]); line("']"); return; }
        db[db_pos++] = (uint8_t)(hi * 16 + lo);
        if (db_pos == db_size) { line("m-load-done"); return; }
    }
}

static void cmd_infer(char *arg)
{
    uint32_t n = 0, w = 0;
    char *space = strchr(arg, ' ');
    if (space) { *space = 0; if (!parse_u32(space + 1, &w)) { line("e-[infer: bad warmup count]"); return; } }
    if (!parse_u32(arg, &n) || n == 0) { line("e-[infer: bad inference count]"); return; }
    /* the input stays live in the arena for the whole run (the exporter plans it so) */
    memcpy(arena + eng_model.input, db, eng_model.input_bytes);
    put("m-warmup-start-"); put_u64(w); put("\r\n");
    for (uint32_t i = 0; i < w; i++) eng_run(&eng_model, arena);
    line("m-warmup-done");
    put("m-infer-start-"); put_u64(n); put("\r\n");
    lap();
    for (uint32_t i = 0; i < n; i++) eng_run(&eng_model, arena);
    lap();
    line("m-infer-done");
    results(0);
}

static uint32_t stack_used(void)
{
    const uint32_t *p = &_stack_bottom;
    while (p < &_estack && *p == STACK_PAINT) p++;
    return (uint32_t)((uintptr_t)&_estack - (uintptr_t)p);
}

static void cmd_mem(void)
{
    put("m-stack-used-"); put_u64(stack_used()); put("\r\n");
    put("m-stack-size-"); put_u64((uintptr_t)&_estack - (uintptr_t)&_stack_bottom); put("\r\n");
    put("m-arena-bytes-"); put_u64(eng_model.arena_bytes); put("\r\n");
}

static void put_field(const char *prefix, uint64_t v) { put(prefix); put_u64(v); put("\r\n"); }

/* Each operator is timed in place, one per inference: the operators before and after it
 * run untimed, so it sees the arena (and any cache) as a plain inference leaves it, and
 * only two clock reads are added to that inference. The host subtracts the cost of a
 * clock read (the probe) from each operator and divides by N. */
static void cmd_opprof(char *arg)
{
    uint32_t n;
    if (!parse_u32(arg, &n) || n == 0) { line("e-[opprof: bad inference count]"); return; }
    memcpy(arena + eng_model.input, db, eng_model.input_bytes);
    put_field("m-opprof-start-", n);
    put_field("m-opprof-hz-", board_cpu_hz());
    uint64_t probe = 0;
    for (uint32_t r = 0; r < n; r++) {
        uint64_t t0 = board_time_cycles();
        probe += board_time_cycles() - t0;
    }
    put_field("m-opprof-probe-", probe);
    uint64_t t0 = board_time_cycles();
    for (uint32_t r = 0; r < n; r++) eng_run(&eng_model, arena);
    put_field("m-opprof-total-", board_time_cycles() - t0);
    uint64_t pass = 0;
    for (int k = 0; k < eng_model.n_ops; k++) {
        uint64_t cycles = 0, start = board_time_cycles();
        for (uint32_t r = 0; r < n; r++) {
            for (int i = 0; i < k; i++) eng_run_op(&eng_model, arena, i);
            uint64_t t = board_time_cycles();
            eng_run_op(&eng_model, arena, k);
            cycles += board_time_cycles() - t;
            for (int i = k + 1; i < eng_model.n_ops; i++) eng_run_op(&eng_model, arena, i);
        }
        pass += board_time_cycles() - start;  /* the printing below is not the profiler's cost */
        put("m-opprof-op-"); put_u64((uint64_t)k); board_putc('-');
        put(eng_kind_name(eng_model.ops[k].kind)); board_putc('-'); put_u64(cycles); put("\r\n");
    }
    put_field("m-opprof-pass-", pass);
    line("m-opprof-done");
}

/* The compute peak: the engine's own MAC loop over a fixed buffer in flash (where the
 * weights live), long enough that the per-pass call is a small part of it. */
#define PEAK_BYTES 256
static const int8_t peak_data[PEAK_BYTES] = {[0 ... PEAK_BYTES - 1] = 3};
static volatile int32_t peak_sink;

static void cmd_peak(char *arg)
{
    uint32_t n;
    if (!parse_u32(arg, &n) || n == 0) { line("e-[peak: bad pass count]"); return; }
    uint64_t t0 = board_time_cycles();
    peak_sink = eng_kernel_loop(peak_data, peak_data, PEAK_BYTES, 1, n);
    uint64_t cycles = board_time_cycles() - t0;
    put_field("m-peak-macs-", (uint64_t)n * PEAK_BYTES);
    put_field("m-peak-cycles-", cycles);
    put_field("m-peak-hz-", board_cpu_hz());
}

static void dispatch(char *cmd)
{
    char *arg = strchr(cmd, ' ');
    if (arg) *arg++ = 0; else arg = cmd + strlen(cmd);
    if (strcmp(cmd, "name") == 0) { put("m-name-dut-["); put(board_name); line("]"); }
    else if (strcmp(cmd, "profile") == 0) {
        line("m-profile-[ULPMark for tinyML Firmware V0.0.1]");
        put("m-model-["); put(eng_model.name); line("]");
    }
    else if (strcmp(cmd, "timestamp") == 0) lap();
    else if (strcmp(cmd, "db") == 0) cmd_db(arg);
    else if (strcmp(cmd, "infer") == 0) cmd_infer(arg);
    else if (strcmp(cmd, "results") == 0) results(0);
    else if (strcmp(cmd, "qresults") == 0) results(1);
    else if (strcmp(cmd, "mem") == 0) cmd_mem();
    else if (strcmp(cmd, "version") == 0) { put("m-fw-["); put(FW_VERSION); line("]"); }
    else if (strcmp(cmd, "opprof") == 0) cmd_opprof(arg);
    else if (strcmp(cmd, "peak") == 0) cmd_peak(arg);
    else if (cmd[0]) { put("e-[Unknown command: "); put(cmd); line("]"); }
    line("m-ready");
}

int main(void)
{
    static char cmd[CMD_SIZE + 1];
    uint32_t len = 0;
    board_init();
    line("m-timestamp-mode-performance");
    lap();
    line("m-init-done");
    line("m-ready");
    for (;;) {
        int c = board_getc();
        if (c == '%') {
            cmd[len] = 0;
            dispatch(cmd);
            len = 0;
        } else if (len < CMD_SIZE) {  /* longer commands are clamped, as EEMBC does */
            cmd[len++] = (char)c;
        }
    }
}
