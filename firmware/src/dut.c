/* The EEMBC / MLPerf Tiny DUT protocol (performance mode) over the board's UART.
 * Commands end with '%'; replies are lines ending "\r\n"; every command ends "m-ready".
 * Extensions the harness uses, answered "e-[Unknown command: ...]" by other firmware:
 *   qresults%  -> m-qresults-[q0,q1,...]  the raw int8 outputs (for bit-exact checks)
 *   mem%       -> m-stack-used-N, m-stack-size-N, m-arena-bytes-N
 *   version%   -> m-fw-[FW_VERSION] */
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
