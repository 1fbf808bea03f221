"""Boards: catalogue, PLLs, UART, the self-test top, synthesis with yosys/nextpnr, cost reports."""
