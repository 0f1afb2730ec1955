"""Fig. 1b-style strength histograms of one 1024×1024 Kaiming-normal kernel.

Drawn at every docs build by Matplotlib's plot directive (guides/how_it_works.md),
on the CPU, from fixed keys, so the figure is the same at every build. Run it
alone with ``python docs/plots/strength_histograms.py`` (it then shows or saves
nothing; the directive captures the figure).

Every panel starts from the same base draw: ``rewired`` gives the base
initializer the key itself and rewires with ``rewiring_key(key)``.
"""

import jax
import matplotlib.pyplot as plt
import numpy as np

import parewire_jax as pw
from parewire_jax.experiments import base_initializer

N = 1024
KEY = jax.random.key(0)
base = base_initializer("kaiming_normal")  # variance 2 / fan_in, untruncated (the paper's §4.1)

kernels = {
  "original": base(KEY, (N, N)),
  'pass "in" only': pw.rewired(base, passes=("in",))(KEY, (N, N)),
  'both passes ("in", "out")': pw.rewired(base)(KEY, (N, N)),
}
styles = {
  "original": dict(color="tab:blue", linewidth=1.2),
  'pass "in" only': dict(color="tab:orange", linewidth=2.2, linestyle="--"),
  'both passes ("in", "out")': dict(color="tab:red", linewidth=1.2),
}

fig, axes = plt.subplots(1, 2, figsize=(10, 4.2), sharey=True, layout="constrained")
bins = np.linspace(-6, 6, 121)
for label, w in kernels.items():
  s_in, s_out = (np.asarray(s) for s in pw.strengths(w))
  for ax, s in zip(axes, (s_in, s_out), strict=True):
    ax.hist(s, bins=bins, histtype="step", label=f"{label}: σ²(s) = {s.var():.3g}", **styles[label])
titles = ("input strengths (row sums, 1024 inputs)", "output strengths (column sums, 1024 outputs)")
for ax, title in zip(axes, titles, strict=True):
  ax.set_title(title, fontsize=10)
  ax.set_xlabel("strength s")
  ax.set_yscale("log")
  ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=1, frameon=False)
axes[0].set_ylabel("neurons per bin (log)")
fig.suptitle("Kaiming-normal 1024×1024, key 0: the values are the same, only their places differ", fontsize=10)
