/* A small int8 inference engine with TFLite's integer arithmetic (per-channel
 * requantization with, per operator, the rounding of the kernel LiteRT runs: ruy's for
 * fully connected on x86, gemmlowp's elsewhere), so results are bit-identical to
 * LiteRT's builtin kernels. Portable C99; the model comes from the exporter (model.c). */
#ifndef ENGINE_H
#define ENGINE_H
#include <stdint.h>

enum eng_rounding { ENG_ROUND_GEMMLOWP = 0, ENG_ROUND_RUY = 1 };
enum eng_kind { ENG_CONV = 1, ENG_DWCONV, ENG_FC, ENG_AVGPOOL, ENG_MAXPOOL, ENG_RESHAPE, ENG_SOFTMAX };

typedef struct {
    uint8_t kind;
    uint32_t in, out;                 /* byte offsets into the arena */
    uint16_t in_h, in_w, in_c;        /* NHWC, batch 1; FC: in_c = input size */
    uint16_t out_h, out_w, out_c;
    uint8_t k_h, k_w, stride_h, stride_w, dil_h, dil_w, pad_h, pad_w, depth_mult;
    uint8_t rounding;                 /* enum eng_rounding */
    int32_t in_offset, w_offset, out_zp; /* offsets are minus the zero points */
    int32_t act_min, act_max;
    const int8_t *weights;            /* conv OHWI, depthwise 1HWO, FC [out][in] */
    const int32_t *bias;              /* may be 0 */
    const int32_t *mult;              /* per output channel */
    const int8_t *shift;
    const float *table;               /* softmax: expf table of 256 */
    float out_scale;                  /* softmax */
} eng_op_t;

typedef struct {
    const char *name;
    const eng_op_t *ops;
    uint16_t n_ops;
    uint32_t arena_bytes;
    uint32_t input, input_bytes, output, output_bytes;
    float output_scale;
    int32_t output_zp;
} eng_model_t;

extern const eng_model_t eng_model;  /* defined by the generated model.c */

int32_t eng_requantize(int32_t acc, int32_t mult, int shift, int rounding);
void eng_run(const eng_model_t *model, int8_t *arena);
void eng_run_op(const eng_model_t *model, int8_t *arena, int i);  /* operator i alone */
const char *eng_kind_name(int kind);  /* TFLite's name of an eng_kind */
/* `reps` passes of conv's inner loop over n int8 pairs (the `peak%` loop) */
int32_t eng_kernel_loop(const int8_t *x, const int8_t *w, int n, int32_t in_offset, uint32_t reps);
#endif
