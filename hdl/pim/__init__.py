"""PIM bank logic: a channel of DRAM banks with in-bank MAC units, all-bank modes, dual row buffers
and enforced DRAM timing (specification: docs/pim.md)."""
