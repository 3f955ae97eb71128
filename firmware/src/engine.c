/* The int8 operators, written after TFLite's reference integer kernels
 * (tensorflow/lite/kernels/internal/reference/integer_ops/ and common.h). The exporter
 * precomputes everything that needs floating point (multipliers, shifts, padding,
 * activation ranges, the softmax table) exactly as TFLite's Prepare() does. */
#include "engine.h"

#include <math.h>
#include <string.h>

/* gemmlowp SaturatingRoundingDoublingHighMul: the division truncates toward zero. */
static int32_t srdhm(int32_t a, int32_t b)
{
    if (a == b && a == INT32_MIN) return INT32_MAX;
    int64_t ab = (int64_t)a * (int64_t)b;
    int64_t v = ab + (ab >= 0 ? (1 << 30) : (1 - (1 << 30)));
    /* (v / 2^31) without a 64-bit division call on cores that lack one */
    return (int32_t)(v >= 0 ? (v >> 31) : -((-v) >> 31));
}

/* gemmlowp RoundingDivideByPOT: round half away from zero. */
static int32_t rdbpot(int32_t x, int e)
{
    const int32_t mask = (int32_t)((1u << e) - 1u);
    const int32_t rem = x & mask;
    const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return (x >> e) + (rem > threshold ? 1 : 0);
}

/* ruy's x86 (AVX2/AVX-512) requantization, which LiteRT's fully connected runs on x86:
 * (x * m + 2^30) >> 31, then a rounding right shift; both roundings are half-up, where
 * gemmlowp's second rounding is half away from zero. */
static int32_t ruy_rounding(int32_t x, int32_t mult, int shift)
{
    const int left = shift > 0 ? shift : 0;
    const int right = shift > 0 ? 0 : -shift;
    const int64_t p = (int64_t)(int32_t)((uint32_t)x << left) * mult + ((int64_t)1 << 30);
    int32_t v = (int32_t)(p >> 31);  /* arithmetic shift, as on every GCC target */
    if (right > 0) {
        const int32_t nudge = (int32_t)1 << (right - 1);
        v = v > INT32_MAX - nudge ? (int32_t)((uint32_t)1 << (31 - right)) : (v + nudge) >> right;
    }
    return v;
}

int32_t eng_requantize(int32_t acc, int32_t mult, int shift, int rounding)
{
    if (rounding == ENG_ROUND_RUY) return ruy_rounding(acc, mult, shift);
    const int left = shift > 0 ? shift : 0;
    const int right = shift > 0 ? 0 : -shift;
    return rdbpot(srdhm((int32_t)((uint32_t)acc << left), mult), right);
}

static int8_t clamp_out(int32_t v, const eng_op_t *op)
{
    if (v < op->act_min) v = op->act_min;
    if (v > op->act_max) v = op->act_max;
    return (int8_t)v;
}

/* noinline: each kernel compiled on its own, not merged into eng_run_op, runs ~6% fewer
 * instructions on Cortex-M3 (register pressure), and the profiled and plain inferences run
 * the same code (eng_run calls eng_run_op). */
__attribute__((noinline)) static void conv(const eng_op_t *op, const int8_t *in, int8_t *out)
{
    for (int oy = 0; oy < op->out_h; oy++)
        for (int ox = 0; ox < op->out_w; ox++)
            for (int oc = 0; oc < op->out_c; oc++) {
                const int8_t *w = op->weights + (int32_t)oc * op->k_h * op->k_w * op->in_c;
                int32_t acc = 0;
                for (int ky = 0; ky < op->k_h; ky++) {
                    const int iy = oy * op->stride_h - op->pad_h + ky * op->dil_h;
                    if (iy < 0 || iy >= op->in_h) continue;
                    for (int kx = 0; kx < op->k_w; kx++) {
                        const int ix = ox * op->stride_w - op->pad_w + kx * op->dil_w;
                        if (ix < 0 || ix >= op->in_w) continue;
                        const int8_t *x = in + ((int32_t)iy * op->in_w + ix) * op->in_c;
                        const int8_t *wk = w + ((int32_t)ky * op->k_w + kx) * op->in_c;
                        for (int ic = 0; ic < op->in_c; ic++)
                            acc += (x[ic] + op->in_offset) * wk[ic];
                    }
                }
                if (op->bias) acc += op->bias[oc];
                acc = eng_requantize(acc, op->mult[oc], op->shift[oc], op->rounding) + op->out_zp;
                out[((int32_t)oy * op->out_w + ox) * op->out_c + oc] = clamp_out(acc, op);
            }
}

__attribute__((noinline)) static void dwconv(const eng_op_t *op, const int8_t *in, int8_t *out)
{
    for (int oy = 0; oy < op->out_h; oy++)
        for (int ox = 0; ox < op->out_w; ox++)
            for (int ic = 0; ic < op->in_c; ic++)
                for (int m = 0; m < op->depth_mult; m++) {
                    const int oc = ic * op->depth_mult + m;
                    int32_t acc = 0;
                    for (int ky = 0; ky < op->k_h; ky++) {
                        const int iy = oy * op->stride_h - op->pad_h + ky * op->dil_h;
                        if (iy < 0 || iy >= op->in_h) continue;
                        for (int kx = 0; kx < op->k_w; kx++) {
                            const int ix = ox * op->stride_w - op->pad_w + kx * op->dil_w;
                            if (ix < 0 || ix >= op->in_w) continue;
                            const int32_t x = in[((int32_t)iy * op->in_w + ix) * op->in_c + ic];
                            const int32_t w = op->weights[((int32_t)ky * op->k_w + kx) * op->out_c + oc];
                            acc += (x + op->in_offset) * w;
                        }
                    }
                    if (op->bias) acc += op->bias[oc];
                    acc = eng_requantize(acc, op->mult[oc], op->shift[oc], op->rounding) + op->out_zp;
                    out[((int32_t)oy * op->out_w + ox) * op->out_c + oc] = clamp_out(acc, op);
                }
}

__attribute__((noinline)) static void fully_connected(const eng_op_t *op, const int8_t *in, int8_t *out)
{
    const int batches = op->in_h;  /* the exporter flattens to [batches][in_c] */
    for (int b = 0; b < batches; b++)
        for (int o = 0; o < op->out_c; o++) {
            const int8_t *w = op->weights + (int32_t)o * op->in_c;
            const int8_t *x = in + (int32_t)b * op->in_c;
            int32_t acc = 0;
            for (int i = 0; i < op->in_c; i++)
                acc += (x[i] + op->in_offset) * (w[i] + op->w_offset);
            if (op->bias) acc += op->bias[o];
            acc = eng_requantize(acc, op->mult[o], op->shift[o], op->rounding) + op->out_zp;
            out[(int32_t)b * op->out_c + o] = clamp_out(acc, op);
        }
}

__attribute__((noinline)) static void pool(const eng_op_t *op, const int8_t *in, int8_t *out, int average)
{
    for (int oy = 0; oy < op->out_h; oy++)
        for (int ox = 0; ox < op->out_w; ox++)
            for (int c = 0; c < op->in_c; c++) {
                const int y0 = oy * op->stride_h - op->pad_h, x0 = ox * op->stride_w - op->pad_w;
                int32_t acc = 0, count = 0, best = -128;
                for (int ky = 0; ky < op->k_h; ky++) {
                    const int iy = y0 + ky;
                    if (iy < 0 || iy >= op->in_h) continue;
                    for (int kx = 0; kx < op->k_w; kx++) {
                        const int ix = x0 + kx;
                        if (ix < 0 || ix >= op->in_w) continue;
                        const int32_t v = in[((int32_t)iy * op->in_w + ix) * op->in_c + c];
                        acc += v;
                        if (v > best) best = v;
                        count++;
                    }
                }
                int32_t v = best;
                if (average) {
                    if (count == 0) v = 0;  /* TFLite divides by zero here; never in real models */
                    else v = acc > 0 ? (acc + count / 2) / count : (acc - count / 2) / count;
                }
                out[((int32_t)oy * op->out_w + ox) * op->out_c + c] = clamp_out(v, op);
            }
}

/* TFLite's optimized int8 softmax (the builtin kernel LiteRT runs): a float table of
 * exp(-input_scale * beta * d) for d = 0..255, normalised in float, rounded. */
__attribute__((noinline)) static void softmax(const eng_op_t *op, const int8_t *in, int8_t *out)
{
    const int depth = op->in_c, rows = (int)((int32_t)op->in_h * op->in_w);
    for (int r = 0; r < rows; r++, in += depth, out += depth) {
        int32_t max_val = -128;
        for (int j = 0; j < depth; j++)
            if (in[j] > max_val) max_val = in[j];
        const float *table = &op->table[255 - max_val];
        float sum_exp = 0.0f;
        for (int j = 0; j < depth; j++) sum_exp += table[in[j]];
        const float inv_sum_exp = 1.0f / (sum_exp * op->out_scale);
        for (int j = 0; j < depth; j++) {
            int32_t q = (int32_t)roundf(table[in[j]] * inv_sum_exp) + op->out_zp;
            out[j] = (int8_t)(q < -128 ? -128 : q > 127 ? 127 : q);
        }
    }
}

/* The compute peak (`peak%`): conv's inner loop as written above (the hottest loop of a
 * CNN), `reps` times over n int8 pairs. */
int32_t eng_kernel_loop(const int8_t *x, const int8_t *w, int n, int32_t in_offset, uint32_t reps)
{
    int32_t acc = 0;
    for (uint32_t r = 0; r < reps; r++) {
        __asm volatile("" : "+r"(x), "+r"(w));  /* opaque: every pass is computed, none folded */
        for (int ic = 0; ic < n; ic++)
            acc += (x[ic] + in_offset) * w[ic];
    }
    return acc;
}

void eng_run_op(const eng_model_t *model, int8_t *arena, int i)
{
    const eng_op_t *op = &model->ops[i];
    const int8_t *in = arena + op->in;
    int8_t *out = arena + op->out;
    switch (op->kind) {
    case ENG_CONV: conv(op, in, out); break;
    case ENG_DWCONV: dwconv(op, in, out); break;
    case ENG_FC: fully_connected(op, in, out); break;
    case ENG_AVGPOOL: pool(op, in, out, 1); break;
    case ENG_MAXPOOL: pool(op, in, out, 0); break;
    case ENG_RESHAPE:
        if (out != in) memmove(out, in, (size_t)op->in_h * op->in_w * op->in_c);
        break;
    case ENG_SOFTMAX: softmax(op, in, out); break;
    default: break;
    }
}

void eng_run(const eng_model_t *model, int8_t *arena)
{
    for (int i = 0; i < model->n_ops; i++) eng_run_op(model, arena, i);
}

const char *eng_kind_name(int kind)
{
    /* TFLite's builtin operator names, as the exporter reads them from the model */
    static const char *const names[] = {"UNKNOWN", "CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED",
                                        "AVERAGE_POOL_2D", "MAX_POOL_2D", "RESHAPE", "SOFTMAX"};
    return kind > 0 && kind <= ENG_SOFTMAX ? names[kind] : names[0];
}
