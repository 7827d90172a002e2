"""``python -m ddrm_kit.bench`` (what ``torchrun --nproc-per-node N -m ddrm_kit.bench ...`` runs): ``ddrm bench``."""

from ddrm_kit.cli.bench import bench_command

if __name__ == "__main__":
    bench_command(prog_name="ddrm bench")
