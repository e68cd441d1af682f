"""Reproduce docs/real_data.md: RSA of the offline zoo on the 92-image set, and the fragility of it.

Usage: python scripts/real_data_92.py OUT_DIR [--quick]
Writes OUT_DIR/rsa.nc, OUT_DIR/fragility.nc, their CSV tables and the two figures
(OUT_DIR/real_rsa.png, OUT_DIR/real_fragility.png), and prints the tables. CPU, 2 threads:
about 2 CPU-minutes for the RSA of 8 models and 7 CPU-minutes for the fragility of 6.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch


def main() -> None:
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    quick = "--quick" in sys.argv
    torch.set_num_threads(2)
    from brainprobe.analysis import rsa_benchmark, rsa_fragility
    from brainprobe.data import load_rdm_benchmark

    bench = load_rdm_benchmark("kriegeskorte92")
    models = ["mobilenet_v2", "mobilenet_v2_robust_l2_eps1.5", "efficientnet_lite0",
              "efficientnet_lite0_robust_l2_eps1.5", "efficientnet_lite1", "efficientnet_lite2",
              "efficientnet_lite2_robust_l2_eps1.5", "vgg19"]
    pairs = ["mobilenet_v2", "mobilenet_v2_robust_l2_eps1.5", "efficientnet_lite0",
             "efficientnet_lite0_robust_l2_eps1.5", "efficientnet_lite2", "efficientnet_lite2_robust_l2_eps1.5"]
    if quick:
        models, pairs = models[:2], pairs[:2]
    t0 = time.perf_counter()
    rsa = rsa_benchmark(models, bench, n_boot=1000, seed=0, progress=True)
    rsa.to_netcdf(out / "rsa.nc", engine="h5netcdf")
    print(f"rsa: {time.perf_counter() - t0:.1f} s", flush=True)
    cols = ["layer", "rsa_human_mean", "rsa_human_ci_low", "rsa_human_ci_high", "rsa_monkey"]
    rsa[cols].to_dataframe().to_csv(out / "rsa.csv")
    print(rsa[cols].to_dataframe().to_string(float_format="%.3f"), flush=True)
    print(rsa[["best_layer", "rsa_human_best", "rsa_human_best_ci_low", "rsa_human_best_ci_high", "rsa_human_cv",
               "cv_agreement", "rsa_monkey_best"]].to_dataframe().to_string(float_format="%.3f"), flush=True)
    print({k: round(float(rsa[k]), 4) for k in rsa.data_vars if rsa[k].ndim == 0}, flush=True)
    t0 = time.perf_counter()
    frag = rsa_fragility(pairs, bench, rsa=rsa.sel(model=pairs), norms=["l2", "linf"],
                         eps={"l2": [0.1, 0.5], "linf": [1 / 255]}, steps=2)
    frag.to_netcdf(out / "fragility.nc", engine="h5netcdf")
    print(f"fragility: {time.perf_counter() - t0:.1f} s", flush=True)
    table = frag[["score"]].to_dataframe()
    table.to_csv(out / "fragility.csv")
    print(frag[["eps", "score"]].to_dataframe().to_string(float_format="%.3f"))
    print(frag[["clean_score"]].to_dataframe().to_string(float_format="%.3f"))
    print(frag[["eps_cross_next", "eps_leave_ci"]].to_dataframe().to_string(float_format="%.4f"))
    print(frag[["eps_enter_ceiling"]].to_dataframe().to_string(float_format="%.4f"))
    from brainprobe.report._style import save_figure
    from brainprobe.report.real_data import plot_fragility, plot_rsa

    save_figure(plot_rsa(rsa), out, "real_rsa")
    save_figure(plot_fragility(frag), out, "real_fragility")


if __name__ == "__main__":
    main()
