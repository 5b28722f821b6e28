"""The landscape figures and page behind ``python -m laefast landscape``.

Three PNGs (matplotlib) and one self-contained interactive page (plotly,
its JavaScript inlined, so it opens offline).  Both libraries are the
optional ``[plot]`` extra: they are imported only here, only when called.
Every number drawn comes from laefast.landscape (closed forms) or from the
compiled solvers (trajectories, and the solver runs on the shrinkage plot).
"""

import importlib
import json
import os
import warnings

import numpy as np

from . import landscape as ls
from ._api import solve
from ._exceptions import CollapsedComponentWarning
from ._methods import GD_METHODS, METHODS

__all__ = ["write_all", "write_page", "trajectories_gif", "tied2_loss",
           "tied2_critical_points", "shrinkage_runs", "FILES"]

FILES = ("landscapes.png", "trajectories.png", "shrinkage.png",
         "landscapes.html")

_TITLES = {None: "L (unregularized)", "product": "L_pi (product)",
           "sum": "L_sigma (sum)"}
_MARK = {"minimum": ("o", "white"), "saddle": ("X", "tab:red"),
         "maximum": ("^", "tab:orange")}


def _need(module):
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ImportError(
            f"the landscape figures need {module.split('.')[0]}: "
            "pip install 'laefast[plot]'") from None


# ---------------------------------------------------------------------------
# The fourth landscape: tied weights, m = 2, k = 1

def tied2_loss(a, b, s1, s2, lam):
    """L_sigma of the tied m = 2, k = 1 autoencoder W1 = W2^T = (a, b), on
    C = diag(s1, s2), broadcast over a and b."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    q = s1 * a * a + s2 * b * b          # w^T C w
    r = a * a + b * b                    # |w|^2
    return s1 + s2 - 2.0 * q + r * q + 2.0 * lam * r


def _tied2_hessian(w, s1, s2, lam):
    C = np.diag([s1, s2])
    w = np.asarray(w, dtype=np.float64)
    q, r = w @ C @ w, w @ w
    Cw = C @ w
    return (-4.0 * C + 2.0 * q * np.eye(2) + 4.0 * np.outer(w, Cw)
            + 2.0 * r * C + 4.0 * np.outer(Cw, w) + 4.0 * lam * np.eye(2))


def tied2_critical_points(s1, s2, lam):
    """[(a, b, type, loss)]: the origin, then +-sqrt(1 - lam/s_i) e_i for
    each s_i > lam (minima along the top direction, saddles along the
    other).  With s1 > s2 the origin is a maximum while lam < s2, a saddle
    for s2 <= lam < s1, a minimum beyond: the symmetry w -> -w and the
    choice of axis break as lam falls."""
    points = [(0.0, 0.0)]
    for i, s in enumerate((s1, s2)):
        if s > lam:
            t = np.sqrt(1.0 - lam / s)
            for sign in (1.0, -1.0):
                w = [0.0, 0.0]
                w[i] = sign * t
                points.append(tuple(w))
    out = []
    for a, b in points:
        ev = np.linalg.eigvalsh(_tied2_hessian((a, b), s1, s2, lam))
        tol = 1e-12 * max(s1, s2, lam, 1.0)
        neg = int(np.sum(ev < -tol))
        kind = "minimum" if neg == 0 else "maximum" if neg == 2 else "saddle"
        out.append((a, b, kind, float(tied2_loss(a, b, s1, s2, lam))))
    return out


# ---------------------------------------------------------------------------
# Solver runs for the shrinkage plot

SHRINK_SIGMA2 = (4.0, 2.0, 1.0)
SHRINK_RATIOS = (1.0, 1.5, 2.0)     # non-uniform lam_i = lam * ratio_i


def _map_eigenvalues(C, k, lam, regularizer, ratios, seed):
    with warnings.catch_warnings():
        # Past lam = sigma_i^2 the collapse is the point of the plot.
        warnings.simplefilter("ignore", CollapsedComponentWarning)
        if regularizer == "product":
            res = solve(C, k, lam, method="tied", regularizer="product",
                        tol=1e-14, max_iter=200_000, random_state=seed)
        else:
            penalty = lam if ratios is None else lam * np.asarray(ratios)
            res = solve(C, k, penalty, method="exact-tied", tol=1e-14,
                        max_iter=200_000, random_state=seed)
    # The map's nonzero eigenvalues are those of the k x k W1 W2.
    return np.sort(np.linalg.eigvals(res.W1 @ res.W2).real)[::-1]


def shrinkage_runs(lams, regularizer, ratios=None, sigma2=SHRINK_SIGMA2):
    """Eigenvalues of the trained map W2 W1 (decreasing), one row per lam,
    from solver runs on C = diag(sigma2) with k = len(sigma2).

    'sum' runs exact-tied; 'product' runs tied gradient descent; with
    ratios, exact-tied with the per-latent lam * ratios.
    """
    C = np.diag(np.asarray(sigma2, dtype=np.float64))
    k = C.shape[0]
    rows = []
    for i, lam in enumerate(lams):
        rows.append(_map_eigenvalues(C, k, lam, regularizer, ratios, i))
    return np.array(rows)


# ---------------------------------------------------------------------------
# PNGs

def _log_loss(z):
    return np.log10(np.maximum(z, 1e-3))


def _draw_critical(ax, sigma2, lam, regularizer, lim):
    for cp in ls.scalar_critical_points(sigma2, lam, regularizer):
        if cp.kind == "curve":
            for sign in (1.0, -1.0):
                t = sign * np.linspace(cp.product / lim, lim, 200)
                ax.plot(t, cp.curve(t), color="white", lw=1.6, ls="--")
        else:
            marker, color = _MARK[cp.type]
            ax.plot(cp.w1, cp.w2, marker=marker, color=color, ms=9,
                    mec="black", ls="none")


def _landscapes_png(path, sigma2, lam):
    plt = _need("matplotlib.pyplot")
    lim = 1.6
    w = np.linspace(-lim, lim, 241)
    W1, W2 = np.meshgrid(w, w)
    fig, axes = plt.subplots(1, 4, figsize=(17, 4.3))
    for ax, reg in zip(axes, (None, "product", "sum")):
        z = ls.scalar_loss(W1, W2, sigma2, lam, reg)
        cs = ax.contourf(W1, W2, _log_loss(z), levels=30, cmap="viridis")
        _draw_critical(ax, sigma2, lam, reg, lim)
        ax.set_title(f"{_TITLES[reg]}", fontsize=11)
        ax.set_xlabel("w1 (encoder)")
        ax.set_aspect("equal")
    axes[0].set_ylabel("w2 (decoder)")
    fig.colorbar(cs, ax=axes[2], fraction=0.046, label="log10 loss")
    ax = axes[3]
    t = np.linspace(-1.3, 1.3, 400)
    for ratio, color in zip((0.0, 0.5, 0.9, 1.0, 1.5),
                            plt.cm.plasma(np.linspace(0, 0.85, 5))):
        l = ratio * sigma2
        ax.plot(t, ls.scalar_loss(t, t, sigma2, l), color=color,
                label=f"lam = {ratio:g} sigma2")
        for cp in ls.scalar_critical_points(sigma2, l, "sum"):
            marker, _ = _MARK[cp.type]
            # A curve of minima (lam = 0) meets the diagonal at +-sqrt(c).
            at = ([cp.w1] if cp.kind == "point"
                  else [np.sqrt(cp.product), -np.sqrt(cp.product)])
            ax.plot(at, [cp.value] * len(at), marker=marker, color=color,
                    mec="black", ms=7, ls="none")
    ax.set_ylim(0, 2.2 * sigma2)
    ax.set_xlabel("w1 = w2")
    ax.set_title("L_sigma on the diagonal: the minima\n"
                 "merge into the origin as lam crosses sigma2", fontsize=10)
    ax.legend(fontsize=8, loc="upper center")
    fig.suptitle(f"The three loss landscapes, m = k = 1, sigma2 = {sigma2:g}, "
                 f"lam = {lam:g}  (o minimum, X saddle, dashed: curves of "
                 "minima)", fontsize=12)
    fig.tight_layout()
    fig.savefig(path, dpi=72)
    plt.close(fig)


TRAJECTORY_STARTS = ((1.5, -1.0), (-1.4, 0.35), (0.25, 1.5), (-0.5, -1.45))


def _trajectories(method, sigma2, lam):
    """The method's scalar iterates from each of TRAJECTORY_STARTS: 150
    steps of alpha = 0.08 / sigma2 for gradient descent, 20 iterations for
    the exact methods (the PNG and the GIF draw the same paths)."""
    gd = method in GD_METHODS
    return [ls.scalar_trajectory(method, a, b, sigma2, lam,
                                 alpha=0.08 / sigma2 if gd else None,
                                 n_iter=150 if gd else 20)
            for a, b in TRAJECTORY_STARTS]


def _trajectories_png(path, sigma2, lam):
    plt = _need("matplotlib.pyplot")
    lim = 1.6
    w = np.linspace(-lim, lim, 201)
    W1, W2 = np.meshgrid(w, w)
    z = _log_loss(ls.scalar_loss(W1, W2, sigma2, lam, "sum"))
    fig, axes = plt.subplots(2, 3, figsize=(13, 8.6))
    colors = plt.cm.autumn(np.linspace(0, 0.8, len(TRAJECTORY_STARTS)))
    for ax, method in zip(axes.ravel(), METHODS):
        ax.contourf(W1, W2, z, levels=30, cmap="viridis")
        _draw_critical(ax, sigma2, lam, "sum", lim)
        gd = method in GD_METHODS
        for pts, color in zip(_trajectories(method, sigma2, lam), colors):
            ax.plot(pts[:, 0], pts[:, 1], "-", color=color, lw=1.2)
            ax.plot(pts[:, 0], pts[:, 1], ".", color=color, ms=3)
            ax.plot(*pts[0], "s", color=color, mec="black", ms=6)
        ax.set_title(method + (" (150 steps, alpha = 0.08/sigma2)" if gd
                               else " (20 iterations)"), fontsize=10)
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.set_aspect("equal")
    fig.suptitle(f"The six methods on L_sigma, m = k = 1, sigma2 = {sigma2:g}, "
                 f"lam = {lam:g}: squares are starts (the tied methods start "
                 "from w1 = w2)", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=72)
    plt.close(fig)


def trajectories_gif(path, sigma2, lam, frames=30):
    """The six methods' trajectories growing over their iterations, as an
    animated GIF (matplotlib's Pillow writer)."""
    plt = _need("matplotlib.pyplot")
    animation = _need("matplotlib.animation")
    lim = 1.6
    w = np.linspace(-lim, lim, 161)
    W1, W2 = np.meshgrid(w, w)
    z = _log_loss(ls.scalar_loss(W1, W2, sigma2, lam, "sum"))
    fig, axes = plt.subplots(2, 3, figsize=(10.5, 7))
    colors = plt.cm.autumn(np.linspace(0, 0.8, len(TRAJECTORY_STARTS)))
    paths, lines = [], []
    for ax, method in zip(axes.ravel(), METHODS):
        ax.contourf(W1, W2, z, levels=24, cmap="viridis")
        _draw_critical(ax, sigma2, lam, "sum", lim)
        for pts, color in zip(_trajectories(method, sigma2, lam), colors):
            paths.append(pts)
            lines.append(ax.plot([], [], ".-", color=color, lw=1.2,
                                 ms=3)[0])
            ax.plot(*pts[0], "s", color=color, mec="black", ms=6)
        ax.set_title(method, fontsize=10)
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.set_aspect("equal")
    title = fig.suptitle("")
    fig.tight_layout()

    def draw(frame):
        share = (frame + 1) / frames
        for pts, line in zip(paths, lines):
            upto = 1 + int(round(share * (len(pts) - 1)))
            line.set_data(pts[:upto, 0], pts[:upto, 1])
        title.set_text(f"L_sigma, sigma2 = {sigma2:g}, lam = {lam:g}: "
                       f"{share:.0%} of the iterations")
        return lines

    movie = animation.FuncAnimation(fig, draw, frames=frames)
    movie.save(path, writer=animation.PillowWriter(fps=8), dpi=60)
    plt.close(fig)


SHRINK_RUN_LAMS = (0.25, 0.75, 1.5, 2.5, 3.5, 4.5)


def _shrinkage_png(path):
    plt = _need("matplotlib.pyplot")
    s2 = np.asarray(SHRINK_SIGMA2)
    lam = np.linspace(0, 6, 400)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.3), sharey=True)
    cases = (("sum", None, "sum: s_i^2 = 1 - lam / sigma_i^2,\n"
                           "collapsing at lam = sigma_i^2"),
             ("product", None, "product: sigma_i^2 / (sigma_i^2 + lam),\n"
                               "shrunk, never collapsed"),
             ("sum", SHRINK_RATIOS, "non-uniform: lam_i = lam x (1, 1.5, 2),\n"
                                    "collapsing at lam = sigma_i^2 / r_i"))
    colors = ("tab:blue", "tab:green", "tab:purple")
    for ax, (reg, ratios, title) in zip(axes, cases):
        runs = shrinkage_runs(SHRINK_RUN_LAMS, reg, ratios)
        for i, (s, color) in enumerate(zip(s2, colors)):
            li = lam if ratios is None else lam * ratios[i]
            ax.plot(lam, ls.shrinkage(s, li, reg), color=color,
                    label=f"sigma_{i + 1}^2 = {s:g}")
            ax.plot(SHRINK_RUN_LAMS, runs[:, i], "o", color=color, mfc="none")
            edge = s if ratios is None else s / ratios[i]
            if reg == "sum":
                ax.axvline(edge, color=color, ls=":", lw=0.8)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("lam")
    axes[0].set_ylabel("eigenvalues of W2 W1 at the minimum")
    axes[0].legend(fontsize=8)
    fig.suptitle("Shrinkage: lines from the closed forms, circles from solver "
                 "runs (exact-tied; tied GD for product) on C = "
                 "diag(4, 2, 1), k = 3", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=72)
    plt.close(fig)


# ---------------------------------------------------------------------------
# The interactive page

PAGE_LAMS = tuple(round(0.1 * i, 1) for i in range(16))      # 0 .. 1.5
PAGE_SIGMA2S = (0.5, 1.0, 1.5, 2.0)
_GRID = 31
_ZMAX = 3.0
_COLOR = {"minimum": "#2ca02c", "saddle": "#ff7f0e", "maximum": "#d62728"}


def _r(x):
    return np.round(np.asarray(x, dtype=np.float64), 4)


def _cut(z):
    """The surface clipped at _ZMAX (the axes' top): flat where it is
    higher, which keeps the wells in view whatever lam and sigma2."""
    return _r(np.minimum(z, _ZMAX)).tolist()


def _page_state(sigma2, lam):
    """The traces' data for one (sigma2, lam): per scene a surface, the
    critical points and the curves of minima."""
    lim = 1.6
    w = np.linspace(-lim, lim, _GRID)
    W1, W2 = np.meshgrid(w, w)
    xs, ys, zs, colors, texts = [], [], [], [], []
    for reg in (None, "product", "sum"):
        z = ls.scalar_loss(W1, W2, sigma2, lam, reg)
        xs.append(None)
        ys.append(None)
        zs.append(_cut(z))
        colors.append(None)
        texts.append(None)
        px, py, pz, pc, pt = [], [], [], [], []
        cx, cy, cz = [], [], []
        for cp in ls.scalar_critical_points(sigma2, lam, reg):
            if cp.kind == "point":
                px.append(cp.w1)
                py.append(cp.w2)
                pz.append(min(cp.value, _ZMAX))
                pc.append(_COLOR[cp.type])
                pt.append(f"{cp.type}: {cp.description}")
            else:
                for sign in (1.0, -1.0):
                    t = sign * np.linspace(cp.product / lim, lim, 40)
                    cx += t.tolist() + [None]
                    cy += cp.curve(t).tolist() + [None]
                    cz += [cp.value] * len(t) + [None]
        xs += [_r(px).tolist(), [None if v is None else round(v, 4) for v in cx]]
        ys += [_r(py).tolist(), [None if v is None else round(v, 4) for v in cy]]
        zs += [_r(pz).tolist(), [None if v is None else round(v, 4) for v in cz]]
        colors += [pc, None]
        texts += [pt, None]
    s1, s2 = sigma2, sigma2 / 2
    z = tied2_loss(W1, W2, s1, s2, lam)
    xs.append(None)
    ys.append(None)
    zs.append(_cut(z))
    colors.append(None)
    texts.append(None)
    pts = tied2_critical_points(s1, s2, lam)
    xs.append([p[0] for p in pts])
    ys.append([p[1] for p in pts])
    zs.append([min(p[3], _ZMAX) for p in pts])
    colors.append([_COLOR[p[2]] for p in pts])
    texts.append([p[2] for p in pts])
    return {"x": xs, "y": ys, "z": zs, "color": colors, "text": texts}


def page_states(lams=PAGE_LAMS, sigma2s=PAGE_SIGMA2S):
    """states[j][i]: the page's data for sigma2s[j] and lams[i]."""
    return [[_page_state(s, l) for l in lams] for s in sigma2s]


_SCRIPT = """
(function () {
  var gd = document.getElementById('{plot_id}');
  var DATA = __DATA__;
  var cur = {lam: DATA.lam0, sigma2: DATA.sigma0};
  function title() {
    var l = DATA.lams[cur.lam], s = DATA.sigma2s[cur.sigma2];
    var text = 'lam = ' + l + ', sigma2 = ' + s + ': ';
    text += l < s ? 'L_sigma has two minima, +-' +
        Math.sqrt(1 - l / s).toFixed(3) + ' on the diagonal'
      : 'L_sigma\\'s minima have merged into the origin (lam >= sigma2)';
    return text;
  }
  function apply() {
    var st = DATA.states[cur.sigma2][cur.lam];
    var upd = {z: [], x: [], y: [], 'marker.color': [], text: []};
    var idx = [];
    for (var t = 0; t < st.z.length; t++) {
      idx.push(t);
      upd.z.push(st.z[t]);
      upd.x.push(st.x[t] === null ? gd.data[t].x : st.x[t]);
      upd.y.push(st.y[t] === null ? gd.data[t].y : st.y[t]);
      upd['marker.color'].push(st.color[t] === null ?
          (gd.data[t].marker || {}).color : st.color[t]);
      upd.text.push(st.text[t] === null ? gd.data[t].text : st.text[t]);
    }
    Plotly.restyle(gd, upd, idx);
    Plotly.relayout(gd, {'title.text': title()});
    gd.setAttribute('data-lam', DATA.lams[cur.lam]);
    gd.setAttribute('data-sigma2', DATA.sigma2s[cur.sigma2]);
  }
  gd.on('plotly_sliderchange', function (e) {
    var which = e.slider.name, i = parseInt(e.step.value, 10);
    if (which === 'lam') { cur.lam = i; } else { cur.sigma2 = i; }
    apply();
  });
  gd.setAttribute('data-lam', DATA.lams[cur.lam]);
  gd.setAttribute('data-sigma2', DATA.sigma2s[cur.sigma2]);
  gd.setAttribute('data-ready', '1');
})();
"""


def _page_figure(states, lams, sigma2s, lam0, sigma0):
    go = _need("plotly.graph_objects")
    subplots = _need("plotly.subplots")
    names = ["L: unregularized", "L_pi: product", "L_sigma: sum",
             "tied L_sigma, m = 2, k = 1, C = diag(sigma2, sigma2 / 2)"]
    fig = subplots.make_subplots(
        rows=2, cols=2, specs=[[{"type": "scene"}] * 2] * 2,
        subplot_titles=names, horizontal_spacing=0.02, vertical_spacing=0.06)
    st = states[sigma0][lam0]
    w = _r(np.linspace(-1.6, 1.6, _GRID)).tolist()
    t = 0
    for scene in range(4):
        row, col = divmod(scene, 2)
        n_traces = 3 if scene < 3 else 2
        for j in range(n_traces):
            if j == 0:
                trace = go.Surface(x=w, y=w, z=st["z"][t], colorscale="Viridis",
                                   showscale=False, cmin=0, cmax=_ZMAX,
                                   opacity=0.92, name=names[scene])
            elif j == 1:
                trace = go.Scatter3d(
                    x=st["x"][t], y=st["y"][t], z=st["z"][t], mode="markers",
                    marker={"size": 6, "color": st["color"][t],
                            "line": {"width": 1, "color": "black"}},
                    text=st["text"][t], hoverinfo="text+x+y+z",
                    name="critical points")
            else:
                trace = go.Scatter3d(
                    x=st["x"][t], y=st["y"][t], z=st["z"][t], mode="lines",
                    line={"width": 6, "color": "white"},
                    name="curve of minima")
            fig.add_trace(trace, row=row + 1, col=col + 1)
            t += 1
    axes = {"xaxis": {"title": {"text": "w1"}, "range": [-1.6, 1.6]},
            "yaxis": {"title": {"text": "w2"}, "range": [-1.6, 1.6]},
            "zaxis": {"title": {"text": "loss"}, "range": [0, _ZMAX]},
            "aspectmode": "cube",
            "camera": {"eye": {"x": 1.4, "y": -1.4, "z": 1.3}}}
    fig.update_scenes(**axes)
    fig.update_scenes(xaxis_title_text="a = W[0]", yaxis_title_text="b = W[1]",
                      row=2, col=2)

    def slider(name, values, active, y, label):
        return {
            "name": name, "active": active, "y": y, "x": 0.05, "len": 0.9,
            "pad": {"t": 10}, "currentvalue": {"prefix": label},
            "steps": [{"label": f"{v:g}", "value": str(i), "method": "skip",
                       "args": []} for i, v in enumerate(values)]}

    fig.update_layout(
        title={"text": "", "x": 0.5},
        height=1000, showlegend=False, margin={"l": 10, "r": 10, "t": 60,
                                                "b": 110},
        sliders=[slider("lam", lams, lam0, 0.02, "lam = "),
                 slider("sigma2", sigma2s, sigma0, -0.08, "sigma2 = ")])
    return fig


def write_page(path, sigma2=1.0, lam=0.4, lams=PAGE_LAMS,
               sigma2s=PAGE_SIGMA2S):
    """landscapes.html: the four surfaces in 3D with sliders for lam and
    sigma2, critical points marked, plotly.js inlined (works offline)."""
    lam0 = int(np.argmin(np.abs(np.asarray(lams) - lam)))
    sigma0 = int(np.argmin(np.abs(np.asarray(sigma2s) - sigma2)))
    states = page_states(lams, sigma2s)
    fig = _page_figure(states, lams, sigma2s, lam0, sigma0)
    data = {"lams": list(lams), "sigma2s": list(sigma2s), "lam0": lam0,
            "sigma0": sigma0, "states": states}
    script = _SCRIPT.replace("__DATA__", json.dumps(data,
                                                    separators=(",", ":")))
    fig.update_layout(title_text=_title(lams[lam0], sigma2s[sigma0]))
    fig.write_html(path, include_plotlyjs=True, full_html=True,
                   post_script=script, div_id="landscapes",
                   config={"displaylogo": False})


def _title(lam, sigma2):
    if lam < sigma2:
        return (f"lam = {lam:g}, sigma2 = {sigma2:g}: L_sigma has two minima, "
                f"+-{np.sqrt(1 - lam / sigma2):.3f} on the diagonal")
    return (f"lam = {lam:g}, sigma2 = {sigma2:g}: L_sigma's minima have "
            "merged into the origin (lam >= sigma2)")


def write_all(out, sigma2=1.0, lam=0.4, png=True, html=True, gif=False):
    """Write the figures into the folder `out` (created if needed); returns
    the paths written."""
    os.makedirs(out, exist_ok=True)
    written = []
    if gif:
        _need("matplotlib").use("Agg")
        path = os.path.join(out, "trajectories.gif")
        trajectories_gif(path, sigma2, lam)
        written.append(path)
    if png:
        _need("matplotlib").use("Agg")
        for name, draw in (("landscapes.png", lambda p: _landscapes_png(p, sigma2, lam)),
                           ("trajectories.png", lambda p: _trajectories_png(p, sigma2, lam)),
                           ("shrinkage.png", _shrinkage_png)):
            path = os.path.join(out, name)
            draw(path)
            written.append(path)
    if html:
        path = os.path.join(out, "landscapes.html")
        write_page(path, sigma2, lam)
        written.append(path)
    return written
