/* ST NUCLEO-L4R5ZI (STM32L4R5ZI, Cortex-M4F): LPUART1 on PG7 (TX) / PG8 (RX), AF8, which
 * the on-board ST-LINK exposes as its virtual COM port (/dev/ttyACM0).
 * Runs at the reset clock (MSI 4 MHz) to stay short; set up the PLL (120 MHz) and
 * CPU_HZ for full-speed figures. Builds in CI; not yet run on the board itself. */
#include <stdint.h>

#include "board.h"

#define REG(addr) (*(volatile uint32_t *)(addr))
#define RCC 0x40021000u
#define RCC_AHB2ENR REG(RCC + 0x4C)
#define RCC_APB1ENR1 REG(RCC + 0x58)
#define RCC_APB1ENR2 REG(RCC + 0x5C)
#define PWR_CR2 REG(0x40007000u + 0x04)
#define GPIOG 0x48001800u
#define GPIOG_MODER REG(GPIOG + 0x00)
#define GPIOG_AFRL REG(GPIOG + 0x20)
#define GPIOG_AFRH REG(GPIOG + 0x24)
#define LPUART1 0x40008000u
#define LPUART_CR1 REG(LPUART1 + 0x00)
#define LPUART_BRR REG(LPUART1 + 0x0C)
#define LPUART_ISR REG(LPUART1 + 0x1C)
#define LPUART_RDR REG(LPUART1 + 0x24)
#define LPUART_TDR REG(LPUART1 + 0x28)
#define CPU_HZ 4000000u
#ifndef BAUD
#define BAUD 115200u
#endif

const char board_name[] = BOARD_NAME;
void systick_start(uint32_t cpu_hz);

void board_init(void)
{
    RCC_APB1ENR1 |= 1u << 28;               /* PWR */
    PWR_CR2 |= 1u << 9;                     /* IOSV: port G[15:2] is powered from VDDIO2 */
    RCC_AHB2ENR |= 1u << 6;                 /* GPIOG */
    RCC_APB1ENR2 |= 1u << 0;                /* LPUART1, clocked from PCLK1 (reset default) */
    GPIOG_MODER = (GPIOG_MODER & ~(0xFu << 14)) | (0xAu << 14);    /* PG7, PG8: alternate */
    GPIOG_AFRL = (GPIOG_AFRL & ~(0xFu << 28)) | (8u << 28);        /* PG7: AF8 */
    GPIOG_AFRH = (GPIOG_AFRH & ~0xFu) | 8u;                         /* PG8: AF8 */
    LPUART_BRR = (uint32_t)(((uint64_t)CPU_HZ * 256u + BAUD / 2) / BAUD);
    LPUART_CR1 = (1u << 3) | (1u << 2) | 1u; /* TE, RE, UE */
    systick_start(CPU_HZ);
}

void board_putc(char c)
{
    while (!(LPUART_ISR & (1u << 7))) { }   /* TXE */
    LPUART_TDR = (uint8_t)c;
}

int board_getc(void)
{
    while (!(LPUART_ISR & (1u << 5))) { }   /* RXNE */
    return (int)(LPUART_RDR & 0xFFu);
}
