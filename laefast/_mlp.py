"""A small multilayer perceptron trained with an alignment rule.

ReLU hidden layers, a softmax cross-entropy output, minibatch SGD with
momentum.  Each epoch is one compiled call (laefast._alignment.train_epoch):
the forward GEMMs, the backward pass through each layer's B (W for BP), the
rule's B-gradient and the momentum step all run with the GIL released on
SciPy's BLAS.  NumPy only shuffles, initializes and reads out.
"""

import sys
from dataclasses import dataclass, field

import numpy as np

from . import _alignment
from ._parallel import serial_blas
from ._params import check
from ._validation import check_array

__all__ = ["MLPResult", "train_mlp", "load_dataset", "DATASETS"]

DATASETS = ("digits", "breast_cancer")


class _Layout:
    """Offsets of every W, bias and B in the flat parameter vector."""

    def __init__(self, sizes):
        self.sizes = np.asarray(sizes, dtype=np.intp)
        L = len(sizes) - 1
        offW, offc, offB = [], [], []
        pos = 0
        for l in range(L):
            offW.append(pos)
            pos += sizes[l] * sizes[l + 1]
            offc.append(pos)
            pos += sizes[l + 1]
        self.n_wc = pos
        for l in range(L):
            if l == 0:
                offB.append(-1)
            else:
                offB.append(pos)
                pos += sizes[l] * sizes[l + 1]
        self.n_params = pos
        self.offW = np.asarray(offW, dtype=np.intp)
        self.offc = np.asarray(offc, dtype=np.intp)
        self.offB = np.asarray(offB, dtype=np.intp)

    def args(self):
        return self.sizes, self.offW, self.offc, self.offB, self.n_wc

    def views(self, theta):
        """(weights, biases, backward) lists of views into theta."""
        s = self.sizes
        Ws, cs, Bs = [], [], []
        for l in range(len(s) - 1):
            o = self.offW[l]
            Ws.append(theta[o:o + s[l + 1] * s[l]].reshape(s[l + 1], s[l]))
            o = self.offc[l]
            cs.append(theta[o:o + s[l + 1]])
            o = self.offB[l]
            # B_l is kept as B_l^T, laid out as W_l is (see
            # laefast._alignment): the view is B_l, in Fortran order.
            Bs.append(None if o < 0 else
                      theta[o:o + s[l] * s[l + 1]].reshape(s[l + 1], s[l]).T)
        return Ws, cs, Bs


@dataclass
class MLPResult:
    """A trained network and its learning curves.

    Attributes
    ----------
    rule : laefast.alignment.Rule
    sizes : tuple of int
        Layer widths, input first, classes last.
    weights, biases : list of ndarray
        W_l (n_l x n_{l-1}) and the biases, per layer.
    backward : list of ndarray or None
        B_l (n_{l-1} x n_l) for every layer after the first (None for the
        first, whose backward matrix nothing reads), in Fortran order: the
        trainer keeps B_l^T laid out as W_l is.  For BP, a copy of W_l^T.
    classes : ndarray
        The labels, in the order of the output units.
    history : dict of lists
        Per epoch: 'loss' and 'train_accuracy' (running, during the epoch),
        'test_accuracy' (None without test data), 'angles' (degrees between
        B_l and W_l^T for the layers with a B).
    """

    rule: object
    sizes: tuple
    weights: list
    biases: list
    backward: list
    classes: np.ndarray
    history: dict = field(default_factory=dict)
    _theta: np.ndarray = field(default=None, repr=False)
    _layout: object = field(default=None, repr=False)

    def decision_function(self, X):
        """Output logits (n_samples x n_classes)."""
        X = _check_X(X, self.sizes[0], self._theta.dtype)
        out = np.empty((X.shape[0], self.sizes[-1]), dtype=self._theta.dtype)
        with serial_blas():
            _alignment.predict_logits(self._theta, *self._layout.args(), X,
                                      out)
        return out

    def predict(self, X):
        """Predicted labels."""
        return self.classes[np.argmax(self.decision_function(X), axis=1)]

    def score(self, X, y):
        """Accuracy on (X, y)."""
        return float(np.mean(self.predict(X) == np.asarray(y)))

    def angles(self):
        """Degrees between B_l and W_l^T for the layers with a B."""
        from .alignment import angle
        return [angle(B, W) for W, B in zip(self.weights, self.backward)
                if B is not None]


def _check_X(X, n_features, dtype):
    X = check_array(X, "X", dtype=dtype)      # laefast's one array check
    if n_features is not None and X.shape[1] != n_features:
        raise ValueError(f"X has {X.shape[1]} features, the network expects "
                         f"{n_features}")
    return np.ascontiguousarray(X)


def _check_positive_int(value, name, minimum=1):
    if (not isinstance(value, (int, np.integer)) or isinstance(value, bool)
            or value < minimum):
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_rate(value, name, upper=None):
    if not isinstance(value, (int, float, np.floating)) or isinstance(value, bool):
        raise ValueError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    if not np.isfinite(value) or value < 0 or (upper is not None and value >= upper):
        bound = f"in [0, {upper:g})" if upper is not None else ">= 0"
        raise ValueError(f"{name} must be {bound}, got {value}")
    return value


def train_mlp(X, y, rule="bp", *, hidden=(128, 64), epochs=50, batch_size=32,
              lr=0.02, momentum=0.9, X_test=None, y_test=None, seed=0,
              dtype=np.float64, progress=None):
    """Train a ReLU MLP with softmax cross-entropy, credit assigned by `rule`.

    Parameters
    ----------
    X : array_like (n_samples, n_features)
        Training inputs (standardize them first; :func:`load_dataset` does).
    y : array_like (n_samples,)
        Class labels (any values; at least two distinct).
    rule : str or laefast.alignment.Rule
        'bp', 'fa', 'sa', 'aa', 'wm', 'ia' or 'kp', or a Rule with chosen
        coefficients.
    hidden : sequence of int
        Hidden layer widths (at least one layer).
    epochs, batch_size : int
        Passes over the data, samples per SGD step.
    lr, momentum : float
        SGD step size (> 0) and heavy-ball momentum (in [0, 1)), shared by
        W, the biases and B.
    X_test, y_test : array_like or None
        Held-out data, scored after every epoch.
    seed : int
        Seeds the initialization, the shuffles and WM's noise.  W and the
        biases start the same for every rule; B starts independent of W.
    dtype : float32 or float64
    progress : callable or None
        Called after each epoch as ``progress(epoch, history)``.

    Returns
    -------
    MLPResult

    Raises
    ------
    ValueError
        Bad shapes, NaN or infinite data, fewer than two classes, unknown
        rule, negative coefficients or rates.
    FloatingPointError
        Training diverged (the loss stopped being finite): lower lr.

    Examples
    --------
    >>> import numpy as np
    >>> from laefast.alignment import train_mlp
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((200, 5)); y = (X[:, 0] > 0).astype(int)
    >>> res = train_mlp(X, y, "kp", hidden=(16,), epochs=5)
    >>> res.score(X, y) > 0.9
    True
    """
    from .alignment import get_rule
    rule = get_rule(rule)
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise ValueError(f"dtype must be float32 or float64, got {dtype}")
    X = _check_X(X, None, dtype)
    y = np.asarray(y)
    if y.ndim != 1 or y.shape[0] != X.shape[0]:
        raise ValueError(f"y must be 1-D with one label per row of X "
                         f"({X.shape[0]}), got shape {y.shape}")
    classes, y_idx = np.unique(y, return_inverse=True)
    if len(classes) < 2:
        raise ValueError("y must hold at least two classes")
    hidden = tuple(hidden)
    if not hidden:
        raise ValueError("hidden must name at least one hidden layer")
    for h in hidden:
        _check_positive_int(h, "each hidden width")
    epochs = _check_positive_int(epochs, "epochs", 0)
    batch_size = int(check("batch_size", batch_size, "train_mlp"))
    lr = _check_rate(lr, "lr")
    if lr == 0:
        raise ValueError("lr must be > 0, got 0.0")
    momentum = _check_rate(momentum, "momentum", upper=1.0)
    if (X_test is None) != (y_test is None):
        raise ValueError("pass both X_test and y_test, or neither")
    if X_test is not None:
        X_test = _check_X(X_test, X.shape[1], dtype)
        y_test = np.asarray(y_test)
        if y_test.shape != (X_test.shape[0],):
            raise ValueError(f"y_test must be 1-D with one label per row of "
                             f"X_test ({X_test.shape[0]}), got shape "
                             f"{y_test.shape}")

    sizes = (X.shape[1],) + hidden + (len(classes),)
    layout = _Layout(sizes)
    theta = np.zeros(layout.n_params, dtype=dtype)
    Ws, cs, Bs = layout.views(theta)
    rng_w, rng_b, rng_run = [np.random.default_rng(s) for s in
                             np.random.SeedSequence(seed).spawn(3)]
    for W in Ws:
        W[...] = rng_w.standard_normal(W.shape) * np.sqrt(2.0 / W.shape[1])
    for W, B in zip(Ws, Bs):
        if B is not None:
            B[...] = rng_b.standard_normal(B.shape) * np.sqrt(2.0 / W.shape[1])
    velocity = np.zeros_like(theta)
    y_idx = np.ascontiguousarray(y_idx, dtype=np.intp)
    c0, c1, c2 = rule._kernel_coefficients()
    noise_std = getattr(rule, "noise_std", 0.0)
    noise_seed = int(rng_run.integers(0, 2**63))
    history = {"loss": [], "train_accuracy": [], "test_accuracy": [],
               "angles": []}
    result = MLPResult(rule=rule, sizes=sizes, weights=Ws, biases=cs,
                       backward=Bs, classes=classes, history=history,
                       _theta=theta, _layout=layout)
    for epoch in range(epochs):
        order = rng_run.permutation(X.shape[0]).astype(np.intp)
        # Minibatch GEMMs are far too small for BLAS threads to pay, and on
        # a busy machine their spin-waiting costs up to ten times the work.
        with serial_blas():
            loss, acc, noise_seed = _alignment.train_epoch(
                rule.code, theta, velocity, *layout.args(), X, y_idx, order,
                batch_size, lr, momentum, c0, c1, c2, noise_std, noise_seed)
        if not (np.isfinite(loss) and np.isfinite(theta.sum())):
            raise FloatingPointError(
                f"training with rule {rule.name!r} diverged in epoch "
                f"{epoch + 1} (the loss or the weights stopped being finite): lower lr={lr:g}")
        history["loss"].append(float(loss))
        history["train_accuracy"].append(float(acc))
        history["test_accuracy"].append(
            result.score(X_test, y_test) if X_test is not None else None)
        history["angles"].append(_angles(rule, Ws, Bs))
        if progress is not None:
            progress(epoch + 1, history)
    if rule.name == "bp":
        for W, B in zip(Ws, Bs):
            if B is not None:
                B[...] = W.T
    return result


def _angles(rule, Ws, Bs):
    from .alignment import angle
    if rule.name == "bp":
        return [0.0 for B in Bs if B is not None]
    return [angle(B, W) for W, B in zip(Ws, Bs) if B is not None]


def load_dataset(name="digits", *, test_fraction=0.2, seed=0):
    """A classification data set shipped with scikit-learn, split and
    standardized.

    Parameters
    ----------
    name : {'digits', 'breast_cancer'}
        scikit-learn's 8x8 handwritten digits (1797 x 64, 10 classes) or the
        Wisconsin breast cancer data (569 x 30, 2 classes).
    test_fraction : float in (0, 1)
        Share of every class held out for testing.
    seed : int
        Seeds the split.

    Returns
    -------
    X_train, y_train, X_test, y_test : ndarray
        Features standardized with the training split's mean and standard
        deviation.

    Raises
    ------
    ValueError
        Unknown name or test_fraction outside (0, 1).
    ImportError
        scikit-learn is not installed (``pip install laefast[test]``).

    Examples
    --------
    >>> from laefast.alignment import load_dataset
    >>> Xtr, ytr, Xte, yte = load_dataset("digits")  # doctest: +SKIP
    """
    if name not in DATASETS:
        raise ValueError(f"unknown data set {name!r}; choose one of "
                         f"{', '.join(DATASETS)}")
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    try:
        import sklearn.datasets
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImportError(f"the {name} data set needs scikit-learn "
                          "(pip install 'laefast[test]')") from exc
    loader = getattr(sklearn.datasets, f"load_{name}")
    X, y = loader(return_X_y=True)
    rng = np.random.default_rng(seed)
    test = np.zeros(len(y), dtype=bool)
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        test[idx[:int(round(test_fraction * len(idx)))]] = True
    Xtr, Xte = X[~test], X[test]
    mean = Xtr.mean(axis=0)
    std = Xtr.std(axis=0)
    std[std == 0] = 1.0
    return (np.ascontiguousarray((Xtr - mean) / std), y[~test],
            np.ascontiguousarray((Xte - mean) / std), y[test])


def _progress_printer(rule_name, stream=None):
    def report(epoch, history):
        out = sys.stderr if stream is None else stream
        test = history["test_accuracy"][-1]
        angles = " ".join(f"{a:5.1f}" for a in history["angles"][-1])
        out.write(f"  {rule_name} epoch {epoch:3d}: loss "
                     f"{history['loss'][-1]:.4f}"
                     + (f", test accuracy {test:.4f}" if test is not None else "")
                     + f", angles [{angles}]\n")
        out.flush()
    return report


def run_align(rules, *, dataset="digits", epochs=50, seed=0, json_path=None,
              plot_path=None, progress=True, stdout=None):
    """``python -m laefast align``: train one network per rule, print the
    test accuracy and the final angles, optionally write JSON and a figure.
    Arguments are validated by the caller (laefast.__main__)."""
    import json
    import time
    from .alignment import get_rule
    stdout = sys.stdout if stdout is None else stdout
    Xtr, ytr, Xte, yte = load_dataset(dataset, seed=seed)
    results = {}
    for name in rules:
        rule = get_rule(name)
        if progress:
            sys.stderr.write(f"{rule.name}: {rule!r}, {epochs} epochs on "
                             f"{dataset}\n")
        t0 = time.perf_counter()
        res = train_mlp(Xtr, ytr, rule, epochs=epochs, X_test=Xte, y_test=yte,
                        seed=seed,
                        progress=_progress_printer(rule.name) if progress else None)
        results[rule.name] = (rule, res, time.perf_counter() - t0)
    sizes = next(iter(results.values()))[1].sizes
    bp = results["bp"][1].history["test_accuracy"][-1] if "bp" in results else None
    stdout.write(f"data set {dataset}: {len(ytr)} training / {len(yte)} test "
                 f"samples; network {' -> '.join(map(str, sizes))}; "
                 f"{epochs} epochs, seed {seed}\n")
    n_b = len(sizes) - 2
    head = (f"{'rule':<5} {'test acc':>9} {'vs BP':>7} "
            + " ".join(f"{'angle L' + str(l + 2):>9}" for l in range(n_b))
            + f" {'time s':>7}\n")
    stdout.write(head)
    for name, (rule, res, secs) in results.items():
        acc = res.history["test_accuracy"][-1]
        diff = f"{100 * (acc - bp):+7.2f}" if bp is not None else f"{'-':>7}"
        angles = " ".join(f"{a:9.2f}" for a in res.history["angles"][-1])
        stdout.write(f"{name:<5} {100 * acc:9.2f} {diff} {angles} {secs:7.2f}\n")
    stdout.write("(accuracy in %; angle in degrees between layer l's B and "
                 "W^T, for the layers that have a B)\n")
    if json_path is not None:
        payload = {
            "dataset": dataset, "epochs": epochs, "seed": seed,
            "sizes": list(sizes),
            "rules": {name: {"coefficients": rule.coefficients,
                             "test_accuracy": res.history["test_accuracy"][-1],
                             "angles": res.history["angles"][-1],
                             "seconds": secs, "history": res.history}
                      for name, (rule, res, secs) in results.items()},
        }
        if json_path == "-":
            json.dump(payload, sys.stdout, indent=1)
            sys.stdout.write("\n")
        else:
            with open(json_path, "w") as f:
                json.dump(payload, f, indent=1)
    if plot_path is not None:
        _plot(results, dataset, plot_path)
    return 0


def _plot(results, dataset, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (ax_a, ax_acc) = plt.subplots(1, 2, figsize=(11, 4))
    for name, (rule, res, secs) in results.items():
        h = res.history
        epochs = np.arange(1, len(h["loss"]) + 1)
        angles = np.asarray(h["angles"])
        line, = ax_a.plot(epochs, angles.mean(axis=1), label=name.upper())
        ax_acc.plot(epochs, 100 * np.asarray(h["test_accuracy"]),
                    color=line.get_color(), label=name.upper())
    ax_a.set_xlabel("epoch")
    ax_a.set_ylabel("angle(B, W^T), degrees, mean over layers")
    ax_a.set_ylim(0, 95)
    ax_acc.set_xlabel("epoch")
    ax_acc.set_ylabel("test accuracy (%)")
    ax_acc.legend(ncol=2)
    fig.suptitle(f"alignment rules on {dataset}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
