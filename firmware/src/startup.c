/* Cortex-M3/M4 start-up: vector table, .data copy, .bss clear, stack painting (for the
 * high-water mark `mem%` reports), and the SysTick-based microsecond clock. */
#include <stdint.h>

extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss, _stack_bottom, _estack;
int main(void);
void SysTick_Handler(void);

static void fault(void) { for (;;) { } }

__attribute__((naked, noreturn)) void Reset_Handler(void)
{
    /* Paint below the current stack pointer before anything uses the stack deeply. */
    __asm volatile(
        "ldr r0, =_stack_bottom\n"
        "mov r1, sp\n"
        "sub r1, r1, #64\n"
        "ldr r2, =0xA5A5A5A5\n"
        "1: cmp r0, r1\n"
        "bhs 2f\n"
        "str r2, [r0], #4\n"
        "b 1b\n"
        "2:\n"
        "b reset_c\n");
}

__attribute__((used, noreturn)) static void reset_c(void)
{
    uint32_t *src = &_sidata, *dst = &_sdata;
    while (dst < &_edata) *dst++ = *src++;
    for (dst = &_sbss; dst < &_ebss; dst++) *dst = 0;
    main();
    fault();
    for (;;) { }
}

/* Every external interrupt goes to the board's board_irq() (a board that enables none
 * need not define it). 32 covers the interrupt numbers the boards here use. */
void board_irq(void) __attribute__((weak, alias("fault")));

__attribute__((section(".isr_vector"), used))
void (*const vectors[16 + 32])(void) = {
    (void (*)(void))(&_estack), Reset_Handler, fault, fault, fault, fault, fault, 0, 0, 0, 0,
    fault, fault, 0, fault, SysTick_Handler,
    [16 ... 47] = board_irq,
};

/* ------------------------------------------------------------ SysTick clock */

#define SYST_CSR (*(volatile uint32_t *)0xE000E010)
#define SYST_RVR (*(volatile uint32_t *)0xE000E014)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018)
#define RELOAD 0xFFFFFFu  /* 24 bits: one interrupt per 2^24 cycles, a negligible load */

static volatile uint32_t wraps;
static uint32_t cycles_per_us, hz;

void SysTick_Handler(void) { wraps++; }

void systick_start(uint32_t cpu_hz)
{
    cycles_per_us = cpu_hz / 1000000u;
    hz = cpu_hz;
    SYST_RVR = RELOAD;
    SYST_CVR = 0;
    SYST_CSR = 7;  /* processor clock, interrupt, enable */
}

uint64_t board_time_cycles(void)
{
    uint32_t w, v;
    do {  /* a wrap between the two reads shows as a changed count: read again */
        w = wraps;
        v = SYST_CVR;
    } while (w != wraps);
    return ((uint64_t)w << 24) + (RELOAD - v);
}

uint64_t board_time_us(void) { return board_time_cycles() / cycles_per_us; }

uint32_t board_cpu_hz(void) { return hz; }
