"""Draw docs/paths.png: the three ways LAEPCA reads its data.

    python docs/make_paths_diagram.py      (needs matplotlib)
"""

import pathlib

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch  # noqa: E402

OUT = pathlib.Path(__file__).resolve().parent / "paths.png"

COLUMNS = [
    ("In memory", "LAEPCA().fit(X)", "#dbe9f6", [
        "X (n x m) in RAM",
        "one parallel pass:\nC = Xc^T Xc  (m x m)\nor products Xc^T (Xc Q)",
        "block Krylov / eigh\non C or on X",
        "components_",
    ], "memory: X + m^2 x 8 bytes\n(or X + a few m x (k+p))"),
    ("Out of core, one machine",
     "fit(memmap, batch_size=b)\npartial_fit(chunk)",
     "#e2f0d9", [
         "memmap / h5py / zarr\nor a stream of chunks",
         "slab by slab: convert,\ncheck, add to C\n(GramAccumulator.add)",
         "solve once on C\n(partial_fit(solve=False)\nthen partial_fit(None))",
         "components_",
     ], "memory: one slab (b x m x 8)\n+ m^2 x 8 bytes"),
    ("Dask cluster", "fit(dask_array)", "#fbe5d6", [
        "dask.array blocks\non the workers",
        "per block: GramAccumulator\n(tall)  or  Xc_b^T (Xc_b Q)\n(wide)",
        "tree merge (Chan) of\nm x m partials, solve\non the client",
        "components_;\ntransform -> dask array",
    ], "client: m^2 x 8 bytes\nworker: a block + m^2 x 8"),
]


def main():
    fig, ax = plt.subplots(figsize=(11, 6.2))
    ax.set_xlim(0, 3)
    ax.set_ylim(0, 6.2)
    ax.axis("off")
    for c, (title, call, color, steps, memory) in enumerate(COLUMNS):
        x = c + 0.5
        ax.text(x, 5.95, title, ha="center", va="center", fontsize=13,
                weight="bold")
        ax.text(x, 5.55, call, ha="center", va="center", fontsize=9,
                family="monospace")
        ys = [4.75, 3.6, 2.45, 1.4]
        for i, (y, text) in enumerate(zip(ys, steps)):
            box = FancyBboxPatch((x - 0.42, y - 0.38), 0.84, 0.76,
                                 boxstyle="round,pad=0.02", fc=color,
                                 ec="0.35", lw=1.0)
            ax.add_patch(box)
            ax.text(x, y, text, ha="center", va="center", fontsize=8.6)
            if i:
                ax.add_patch(FancyArrowPatch(
                    (x, ys[i - 1] - 0.4), (x, y + 0.4), arrowstyle="-|>",
                    mutation_scale=12, color="0.3"))
        ax.text(x, 0.45, memory, ha="center", va="center", fontsize=8.6,
                style="italic", color="0.25")
    fig.suptitle("LAEPCA: three paths to the same components",
                 fontsize=14, y=0.995)
    fig.tight_layout()
    fig.savefig(OUT, dpi=110)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
