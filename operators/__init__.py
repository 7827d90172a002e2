"""Degradation operators for DDRM."""
