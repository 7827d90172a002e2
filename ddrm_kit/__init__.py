"""ddrm-kit: training-free image restoration with DDRM."""
