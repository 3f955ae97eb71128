/* ARM MPS2 AN385 (Cortex-M3), as QEMU's `-M mps2-an385` emulates it: CMSDK UART0 at
 * 0x40004000, 25 MHz system clock. The same file serves mps2-an386 (Cortex-M4). */
#include <stdint.h>

#include "board.h"

#define UART0 0x40004000u
#define UART_DATA (*(volatile uint32_t *)(UART0 + 0x00))
#define UART_STATE (*(volatile uint32_t *)(UART0 + 0x04))
#define UART_CTRL (*(volatile uint32_t *)(UART0 + 0x08))
#define UART_BAUDDIV (*(volatile uint32_t *)(UART0 + 0x10))
#define CPU_HZ 25000000u
#ifndef BAUD
#define BAUD 115200u
#endif

const char board_name[] = BOARD_NAME;
void systick_start(uint32_t cpu_hz);

void board_init(void)
{
    UART_BAUDDIV = CPU_HZ / BAUD;
    UART_CTRL = 3;  /* TX and RX enable */
    systick_start(CPU_HZ);
}

void board_putc(char c)
{
    while (UART_STATE & 1u) { }  /* TX buffer full */
    UART_DATA = (uint8_t)c;
}

int board_getc(void)
{
    while (!(UART_STATE & 2u)) { }  /* RX buffer empty */
    return (int)(UART_DATA & 0xFFu);
}
