"""Microcontrollers: the DUT protocol client, model export, firmware build, QEMU."""
