#!/usr/bin/env bash
# Microcontroller path (issue 4): the Arm cross compiler and C library that build the
# reference firmware, and QEMU that runs it as the emulated Cortex-M3 board (devices/qemu-m3.yaml).
set -euo pipefail
need=()
command -v qemu-system-arm >/dev/null || need+=(qemu-system-arm)
command -v arm-none-eabi-gcc >/dev/null || need+=(gcc-arm-none-eabi)
[ -e /usr/lib/arm-none-eabi/newlib/libc.a ] || need+=(libnewlib-arm-none-eabi)
command -v make >/dev/null || need+=(make)
command -v cc >/dev/null || need+=(gcc)   # the engine's host build in tests/test_mcu_bitexact.py
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
