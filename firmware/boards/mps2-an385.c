/* ARM MPS2 AN385 (Cortex-M3), as QEMU's `-M mps2-an385` emulates it: CMSDK UART0 at
 * 0x40004000, 25 MHz system clock. The same file serves mps2-an386 (Cortex-M4). */
#include <stdint.h>

#include "board.h"

#define UART0 0x40004000u
#define UART_DATA (*(volatile uint32_t *)(UART0 + 0x00))
#define UART_STATE (*(volatile uint32_t *)(UART0 + 0x04))
#define UART_CTRL (*(volatile uint32_t *)(UART0 + 0x08))
#define UART_INTSTATUS (*(volatile uint32_t *)(UART0 + 0x0C))
#define UART_BAUDDIV (*(volatile uint32_t *)(UART0 + 0x10))
#define NVIC_ISER0 (*(volatile uint32_t *)0xE000E100)
#define NVIC_ICPR0 (*(volatile uint32_t *)0xE000E280)
#define UART0_RX_IRQ 0  /* QEMU's mps2-an385/an386 wiring */
#define CPU_HZ 25000000u
#ifndef BAUD
#define BAUD 115200u
#endif

const char board_name[] = BOARD_NAME;
void systick_start(uint32_t cpu_hz);

void board_init(void)
{
    UART_BAUDDIV = CPU_HZ / BAUD;
    UART_CTRL = 3u | (1u << 3);  /* TX and RX enable, RX interrupt (to wake from WFI) */
    NVIC_ISER0 = 1u << UART0_RX_IRQ;
    systick_start(CPU_HZ);
}

void board_irq(void)
{
    UART_INTSTATUS = 2u;  /* the RX interrupt only wakes the core; board_getc reads the byte */
}

void board_putc(char c)
{
    while (UART_STATE & 1u) { }  /* TX buffer full */
    UART_DATA = (uint8_t)c;
}

int board_getc(void)
{
    /* Sleep until a byte arrives, so an idle emulated board does not spin the host's CPU.
     * Interrupts are masked around the check: a byte arriving just before WFI leaves its
     * interrupt pending, which ends the WFI at once instead of being missed. */
    while (!(UART_STATE & 2u)) {  /* RX buffer empty */
        __asm volatile("cpsid i" ::: "memory");
        if (!(UART_STATE & 2u)) __asm volatile("wfi" ::: "memory");
        __asm volatile("cpsie i" ::: "memory");
    }
    return (int)(UART_DATA & 0xFFu);
}
