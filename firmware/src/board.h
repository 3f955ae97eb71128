/* What a board file provides: a byte-wide serial port and a microsecond clock.
 * Port to a new board by writing boards/<board>.c and boards/<board>.ld. */
#ifndef BOARD_H
#define BOARD_H
#include <stdint.h>

extern const char board_name[];     /* reported by `name%` */
void board_init(void);              /* clocks, UART at the YAML's baud, the timer */
void board_putc(char c);            /* blocking */
int board_getc(void);               /* blocking; a byte 0..255 */
uint64_t board_time_us(void);       /* monotonic microseconds since boot */
uint64_t board_time_cycles(void);   /* monotonic CPU cycles since boot (SysTick; startup.c) */
uint32_t board_cpu_hz(void);        /* the cycles' rate: the cpu_hz given to systick_start */
#endif
